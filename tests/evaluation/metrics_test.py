"""SWD and class entropy: zero on equal sets, symmetric, growing with blur and noise (the Frechet distance:
feature_metrics_test.py)."""

import math

import numpy as np
import pytest
from scipy import ndimage

import datasets
from datasets import digits
from evaluation import metrics
from conftest import shared


def _blur(images, sigma):
  blurred = ndimage.gaussian_filter(images.astype(np.float32), (0, sigma, sigma, 0))
  return np.clip(np.round(blurred), 0, 255).astype(np.uint8)


def _noisy(images, deviation, seed=0):
  noisy = images + np.random.default_rng(seed).normal(0.0, deviation, images.shape)
  return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


@pytest.fixture(scope='module')
def two_digit_sets():
  """Two different samples of 200 built-in digits, [200, 28, 28, 1] each."""
  images, _ = digits.make_digits(400, seed=3)
  return images[:200, ..., np.newaxis], images[200:, ..., np.newaxis]


def test_pyramid_levels_reach_about_16_pixels():
  assert metrics.pyramid_sizes(64, 64) == [(64, 64), (32, 32), (16, 16)]
  assert metrics.pyramid_sizes(28, 28) == [(28, 28), (14, 14)]
  assert metrics.pyramid_sizes(128, 96) == [(128, 96), (64, 48), (32, 24), (16, 12)]
  assert metrics.pyramid_sizes(16, 12) == [(16, 12)]


def test_laplacian_levels_add_back_up_to_the_image():
  images = np.random.default_rng(0).uniform(0, 255, (3, 28, 20, 3)).astype(np.float32)
  levels = list(metrics.laplacian_levels(images))
  assert [level.shape[1:3] for level in levels] == [(28, 20), (14, 10)]
  rebuilt = levels[0] + metrics._upsample(levels[1], (28, 20))
  np.testing.assert_allclose(rebuilt, images, atol=1e-3)


def test_swd_of_a_set_with_itself_is_zero_and_the_distance_is_symmetric(two_digit_sets):
  a, b = (images[:50] for images in two_digit_sets)  # (true of sets of any size)
  assert metrics.swd(a, a)['mean'] == 0.0
  forward, backward = metrics.swd(a, b), metrics.swd(b, a)
  assert forward.keys() == {'28x28', '14x14', 'mean'}
  for level in forward:
    assert forward[level] == pytest.approx(backward[level], rel=1e-6)
  assert forward['mean'] > 0


def test_swd_repeats_on_a_seed_and_descriptors_are_normalized(two_digit_sets):
  a, b = (images[:50] for images in two_digit_sets)  # (true of sets of any size)
  assert metrics.swd(a, b, seed=5) == metrics.swd(a, b, seed=5)
  assert metrics.swd(a, b, seed=5) != metrics.swd(a, b, seed=6)
  level = next(metrics.laplacian_levels(a))
  descriptors = metrics.descriptors(level, seed=0)
  assert descriptors.shape == (50 * metrics.PATCHES_PER_IMAGE, 7 * 7 * 1)
  assert descriptors.mean() == pytest.approx(0, abs=1e-4)
  assert descriptors.std() == pytest.approx(1, abs=1e-3)


def test_swd_grows_with_blur_and_with_noise(two_digit_sets):
  a, b = two_digit_sets
  undamaged = metrics.swd(a, b)['mean']
  for damage, amounts in ((_blur, (0.5, 1.0, 2.0)), (_noisy, (8, 24, 64))):
    distances = [undamaged] + [metrics.swd(a, damage(b, amount))['mean'] for amount in amounts]
    assert distances == sorted(distances), (damage.__name__, distances)
    assert distances[-1] > 3 * distances[0], (damage.__name__, distances)  # (4.6 to 7.7 on 3 seeds of digits)


def test_swd_orders_real_mnist_blur_and_noise():
  images, _ = datasets.load_idx_folder(shared('mnist'))
  images = images[..., np.newaxis]
  a, b = images[:150], images[150:300]  # (the order held at 100, 150 and 300 a set)
  noise = np.random.default_rng(0).integers(0, 256, b.shape, dtype=np.uint8)
  distances = [metrics.swd(a, x)['mean'] for x in (b, _blur(b, 0.7), _blur(b, 2.0), noise)]
  assert distances == sorted(distances), distances


def test_class_entropy_is_log2_classes_when_even_and_zero_when_collapsed():
  assert metrics.class_entropy(np.arange(1000) % 10, 10) == pytest.approx(math.log2(10))
  assert metrics.class_entropy(np.full(1000, 3), 10) == 0.0
  assert 0 < metrics.class_entropy(np.array([0] * 900 + [1] * 100), 10) < 1
