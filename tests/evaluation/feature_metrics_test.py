"""FID, KID, precision and recall on features: against independent formulas, and where their values are known."""

import logging

import numpy as np
import pytest
from scipy import linalg

from evaluation import feature_metrics


def _gaussian(count, dims=16, seed=0, shift=0.0, scale=1.0):
  rng = np.random.default_rng(seed)
  mixing = np.random.default_rng(100).normal(size=(dims, dims)) / np.sqrt(dims)
  return (rng.normal(size=(count, dims)) @ mixing) * scale + shift


def _fid_with_sqrtm(a, b):
  """FID as TTUR's fid.py and pytorch-fid compute it: scipy's general matrix square root."""
  mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
  cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  root = linalg.sqrtm(cov_a @ cov_b).real
  return np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2 * root)


@pytest.mark.parametrize('count', [3000, 12])  # more samples than dimensions, and fewer (the data's form)
def test_frechet_distance_is_zero_for_a_set_against_itself_and_matches_the_usual_formula(count):
  a, b = _gaussian(count, seed=1), _gaussian(count - 2, seed=2, shift=0.3, scale=1.4)
  assert feature_metrics.frechet_distance_of(a, a) == pytest.approx(0, abs=1e-8)
  assert feature_metrics.frechet_distance_of(a, b) == pytest.approx(_fid_with_sqrtm(a, b), rel=1e-7)
  assert feature_metrics.frechet_distance_of(a, a + 2.0) == pytest.approx(16 * 4.0, rel=1e-9)  # the means alone


def test_frechet_distance_survives_a_feature_that_never_fires():
  features = np.random.default_rng(0).normal(size=(500, 8))
  features[:, 3] = 0.0  # a dead unit: both covariances are singular
  other = features.copy()
  other[:, 0] += 0.5
  assert feature_metrics.frechet_distance_of(features, other) == pytest.approx(0.25, rel=1e-6)


def test_a_product_too_singular_for_its_root_falls_back_as_pytorch_fid_does(caplog, monkeypatch):
  a, b = _gaussian(400, seed=3), _gaussian(400, seed=4)
  roots = []
  real_root_trace = feature_metrics._root_trace

  def first_badly_rounded(cov_a, cov_b):  # the first attempt meets a large negative eigenvalue
    roots.append(np.trace(cov_a))
    root, worst = real_root_trace(cov_a, cov_b)
    return (root, -0.01) if len(roots) == 1 else (root, worst)

  monkeypatch.setattr(feature_metrics, '_root_trace', first_badly_rounded)
  with caplog.at_level(logging.WARNING):
    value = feature_metrics.frechet_distance_of(a, b)
  assert 'the product of the two covariances is singular' in caplog.text and 'as pytorch-fid does' in caplog.text
  assert roots[1] == pytest.approx(roots[0] + 16 * feature_metrics.SINGULAR_EPSILON)  # epsilon on the diagonal
  assert value == pytest.approx(_fid_with_sqrtm(a, b), rel=1e-4)


def _mmd_by_loops(x, y):
  """The unbiased MMD^2 with the cubic kernel, written out term by term."""
  kernel = lambda u, v: (u @ v / len(u) + 1) ** 3
  m = len(x)
  within = sum(kernel(x[i], x[j]) + kernel(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
  across = sum(kernel(x[i], y[j]) for i in range(m) for j in range(m))
  return within / (m * (m - 1)) - 2 * across / m ** 2


def test_kid_is_the_unbiased_mmd_of_the_cubic_kernel_near_zero_and_of_either_sign_for_one_distribution():
  a, b = _gaussian(30, dims=4, seed=5), _gaussian(30, dims=4, seed=6, shift=0.5)
  mean, deviation = feature_metrics.kernel_distance(a, b)
  assert mean == pytest.approx(_mmd_by_loops(b, a) * 1e3, rel=1e-9) and deviation == 0  # one subset: all of it
  signs = set()
  for seed in range(8):
    same, _ = feature_metrics.kernel_distance(_gaussian(400, seed=10 + seed), _gaussian(400, seed=30 + seed),
                                              subset_size=200)
    assert abs(same) < 30.0
    signs.add(same > 0)
  assert signs == {True, False}  # unbiased: its sign goes both ways when there is nothing to find
  near, _ = feature_metrics.kernel_distance(_gaussian(400, seed=1), _gaussian(400, seed=2, shift=0.3),
                                            subset_size=200)
  far, _ = feature_metrics.kernel_distance(_gaussian(400, seed=1), _gaussian(400, seed=2, shift=1.0), subset_size=200)
  assert 100.0 < near < far / 10


def test_kid_draws_its_subsets_from_the_seed():
  a, b = _gaussian(600, seed=7), _gaussian(600, seed=8, shift=0.2)
  first = feature_metrics.kernel_distance(a, b, subsets=10, subset_size=100, seed=1)
  assert feature_metrics.kernel_distance(a, b, subsets=10, subset_size=100, seed=1) == first
  assert feature_metrics.kernel_distance(a, b, subsets=10, subset_size=100, seed=2) != first
  assert first[1] > 0


def test_precision_and_recall_are_one_for_a_set_against_itself_and_zero_for_sets_far_apart():
  a = _gaussian(300, seed=9)
  assert feature_metrics.precision_recall(a, a) == (1.0, 1.0)
  assert feature_metrics.precision_recall(a, a + 100.0) == (0.0, 0.0)


def test_precision_and_recall_by_hand_on_a_line():
  # Real points 0, 1, 2, 3, 10; each ball reaches the 3rd nearest other point: radii 3, 2, 2, 3 and 9 (for 10).
  real = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
  # Generated 0, 1, 2, 3, 2.5: every one inside a real ball; but nothing generated comes near 10 (their radii are
  # at most 3), so one real point of five is not covered
  assert feature_metrics.precision_recall(real, np.array([[0.0], [1.0], [2.0], [3.0], [2.5]])) == (1.0, 0.8)
  # Generated 0, 1, 2, 3, 20: 20 is 10 from the real 10, outside its ball of 9; its own ball (radius 19, to the
  # 3rd nearest generated point) covers the real 10, as the paper's outliers do
  assert feature_metrics.precision_recall(real, np.array([[0.0], [1.0], [2.0], [3.0], [20.0]])) == (0.8, 1.0)
  # Collapse: every sample on one real point looks real (precision 1), but covers one real point of five
  assert feature_metrics.precision_recall(real, np.zeros((5, 1))) == (1.0, 0.2)


def test_nearest_gives_each_query_its_nearest_references_in_order():
  references = np.array([[0.0, 0.0], [5.0, 0.0], [1.0, 0.0], [9.0, 9.0]])
  order, distances = feature_metrics.nearest(np.array([[0.9, 0.0], [6.0, 0.0]]), references, 2)
  assert order.tolist() == [[2, 0], [1, 2]]
  np.testing.assert_allclose(distances, [[0.1, 0.9], [1.0, 5.0]])
