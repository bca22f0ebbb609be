"""The GAN literature's numbers on two sets of features (Inception's pool_3, or the digit classifier's): FID, KID,
precision and recall. numpy, in float64.

- Frechet distance (Heusel et al. 2017; FID on Inception features): the distance between Gaussians fitted to the
  two sets, |mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2)). Lower is better; 0 for identical statistics.
- KID (Binkowski et al. 2018): the unbiased estimate of the squared maximum mean discrepancy with the cubic
  polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets of both sets; unbiased, so it can
  be slightly negative when the sets come from one distribution, and more reliable than FID below 50k samples.
  Reported x1e3, as the literature does, with its standard deviation over the subsets.
- Precision and recall (Kynkaanniemi et al. 2019): each set's manifold is the union of balls around its points,
  each of radius the distance to the point's k-th nearest neighbour (k = 3) in its own set. Precision is the
  fraction of generated samples inside the real manifold (do samples look real); recall the fraction of real
  samples inside the generated one (how much of the data's variety G covers). Precision high and recall low is
  mode collapse.

$ python main.py --dataset celebA --evaluate     # fid, kid, precision, recall in the table
"""

import numpy as np
from absl import logging

KID_SCALE = 1e3  # KID is reported x1e3, as in the papers and StyleGAN2-ADA's metrics
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
NEIGHBOURS = 3  # the k of precision and recall
SINGULAR_EPSILON = 1e-6  # added to the covariances' diagonals when their product is too singular (as pytorch-fid)
_ROWS_AT_ONCE = 1024  # rows of a distance matrix held in memory at once


def statistics(features):
  """(mean float64 [d], covariance float64 [d, d]) of float [n, d]."""
  features = np.asarray(features, np.float64)
  return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix):
  """The symmetric square root of a symmetric positive semi-definite matrix, its eigenvalues clipped at 0."""
  values, vectors = np.linalg.eigh(matrix)
  return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _root_trace(cov_a, cov_b):
  """tr((cov_a cov_b)^(1/2)), and the most negative eigenvalue met relative to the largest (rounding shows as
  tiny negative ones; a large one means the product is too singular to trust).

  The eigenvalues of cov_a cov_b are those of the symmetric A^(1/2) cov_b A^(1/2) (A = cov_a), which eigh finds
  in float64 far more stably (and several times faster) than a general matrix square root."""
  root_a = _sqrt_psd(cov_a)
  values = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
  worst = values.min() / max(values.max(), 1e-300)
  return float(np.sum(np.sqrt(np.clip(values, 0, None)))), worst


def frechet_distance(mean_a, cov_a, mean_b, cov_b):
  """|mean_a - mean_b|^2 + tr(cov_a + cov_b - 2 (cov_a cov_b)^(1/2)), in float64.

  When the product of the covariances is too singular for its square root (an eigenvalue below -1e-6 of the
  largest, beyond rounding), SINGULAR_EPSILON is added to both diagonals and it is computed again, as pytorch-fid
  does, with a warning.

  Returns:
    The distance, >= 0 up to rounding.
  """
  mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
  cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
  root_trace, worst = _root_trace(cov_a, cov_b)
  if not np.isfinite(root_trace) or worst < -1e-6:
    logging.warning('the Frechet distance: the product of the two covariances is singular (an eigenvalue of %.2g of '
                    'the largest); added %g to their diagonals, as pytorch-fid does. More samples than feature '
                    'dimensions make it well defined', worst, SINGULAR_EPSILON)
    offset = np.eye(len(cov_a)) * SINGULAR_EPSILON
    cov_a, cov_b = cov_a + offset, cov_b + offset
    root_trace, _ = _root_trace(cov_a, cov_b)
  distance = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * root_trace
  return float(distance)


def frechet_distance_of(features_a, features_b):
  """frechet_distance() of the statistics of two feature sets, float [n, d] each (n >= 2; the counts may differ).

  With fewer samples than dimensions (both covariances then singular, as for 2,000 samples of Inception's 2048
  features), the same number comes from the centred data A, B (rows scaled by 1 / sqrt(n - 1), so cov_a = A'A):
  tr((cov_a cov_b)^(1/2)) is the sum of the singular values of A B' (the nonzero eigenvalues of A'A B'B are those
  of (A B')(A B')'), an n_a x n_b problem that is exact, real and cheap, with no square root of a singular matrix.
  """
  a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
  if max(len(a), len(b)) > a.shape[1]:
    return frechet_distance(*statistics(a), *statistics(b))
  mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
  a = (a - mean_a) / np.sqrt(len(a) - 1)
  b = (b - mean_b) / np.sqrt(len(b) - 1)
  root_trace = np.linalg.svd(a @ b.T, compute_uv=False).sum()
  return float(np.sum((mean_a - mean_b) ** 2) + np.sum(a * a) + np.sum(b * b) - 2.0 * root_trace)


def kernel_distance(real, fake, subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE, seed=0):
  """KID: the unbiased squared MMD with the kernel k(x, y) = (x.y / d + 1)^3, over `subsets` pairs of random
  subsets of m = min(subset_size, len(real), len(fake)) images of each set:

    MMD^2 = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
            - 2 sum_{i, j} k(x_i, y_j) / m^2

  Args:
    real, fake: float [n, d] features. When both have at most subset_size, every subset is the whole set: the
      value is computed once, and its deviation is 0.
    seed: the subsets are drawn from it, so that a number repeats.

  Returns:
    (the mean over the subsets, their standard deviation), both x KID_SCALE.
  """
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  dims = real.shape[1]
  size = min(subset_size, len(real), len(fake))
  if size == len(real) == len(fake):
    subsets = 1  # every subset would be the two whole sets: one value, deviation 0
  rng = np.random.default_rng(seed)
  values = []
  for _ in range(subsets):
    x = fake[rng.choice(len(fake), size, replace=False)]
    y = real[rng.choice(len(real), size, replace=False)]
    within = (x @ x.T / dims + 1) ** 3 + (y @ y.T / dims + 1) ** 3
    across = (x @ y.T / dims + 1) ** 3
    values.append((within.sum() - np.trace(within)) / (size * (size - 1)) - 2 * across.sum() / size ** 2)
  values = np.array(values) * KID_SCALE
  return float(values.mean()), float(values.std())


def _squared_norms(features):
  return np.einsum('ij,ij->i', features, features)


def _distances(a, b, rows):
  """Euclidean distances float64 [len(rows), len(b)] between a[rows] and every b, via |a|^2 + |b|^2 - 2 a.b."""
  squared = _squared_norms(a[rows])[:, None] + _squared_norms(b)[None, :] - 2.0 * a[rows] @ b.T
  return np.sqrt(np.clip(squared, 0, None))


def _radii(features, k):
  """The distance of each point to its k-th nearest other point of the same set."""
  radii = np.empty(len(features))
  for start in range(0, len(features), _ROWS_AT_ONCE):
    rows = np.arange(start, min(start + _ROWS_AT_ONCE, len(features)))
    # (each point's distance to itself, 0, is the smallest: the k-th other point is the (k + 1)-th smallest)
    radii[rows] = np.partition(_distances(features, features, rows), k, axis=1)[:, k]
  return radii


def precision_recall(real, fake, k=NEIGHBOURS):
  """Precision and recall of `fake` against `real` (float [n, d] each, n > k), as Kynkaanniemi et al. 2019.

  Returns:
    (precision, recall), each in [0, 1]: 1 and 1 for a set against itself, 0 and 0 for sets far apart.
  """
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  real_radii, fake_radii = _radii(real, k), _radii(fake, k)
  looks_real, covered = np.zeros(len(fake), bool), np.zeros(len(real), bool)
  for start in range(0, len(fake), _ROWS_AT_ONCE):  # one matrix of generated-to-real distances serves both
    rows = np.arange(start, min(start + _ROWS_AT_ONCE, len(fake)))
    distances = _distances(fake, real, rows)
    looks_real[rows] = (distances <= real_radii[None, :]).any(axis=1)
    covered |= (distances <= fake_radii[rows, None]).any(axis=0)
  return float(looks_real.mean()), float(covered.mean())


def nearest(queries, references, count):
  """The indices int [len(queries), count] of the `count` nearest references of each query, nearest first, and
  their distances."""
  queries, references = np.asarray(queries, np.float64), np.asarray(references, np.float64)
  distances = _distances(queries, references, np.arange(len(queries)))
  order = np.argsort(distances, axis=1)[:, :count]
  return order, np.take_along_axis(distances, order, axis=1)
