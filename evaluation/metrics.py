"""Sample-quality numbers on pixels and classes, in numpy: sliced Wasserstein distance, class entropy (the numbers
on features, FID, KID, precision and recall, are in feature_metrics.py).

SWD follows the progressive GAN paper (Karras et al. 2018, appendix D): each image becomes a Laplacian pyramid
whose coarsest level is about 16x16; from every level 128 random 7x7 patches per image are taken, normalized per
channel over the whole set, and the two sets' patch distributions are compared by the mean of 1-D Wasserstein
distances along 512 random unit directions. Nothing is downloaded and the numbers repeat on a fixed seed.

$ python main.py --dataset mnist --data_dir ../shared/data --evaluate    # uses these on generated images
"""

import concurrent.futures
import os

import numpy as np
from scipy import ndimage

PATCH = 7  # pixels on a side of a patch (descriptor)
PATCHES_PER_IMAGE = 128
DIRECTIONS = 128  # random directions per repeat
REPEATS = 4
COARSEST = 16  # the pyramid stops at the first level whose larger side is at most this
SWD_SCALE = 1e3  # SWD is reported in units of 1e-3, as in the paper
_DIRECTIONS_AT_ONCE = 32  # projections held in memory at once: 32 x n x 128 floats
_BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0], np.float32) / 16.0


def _blur(images):
  """The 5x5 binomial filter over height and width of float [n, h, w, c]."""
  images = ndimage.correlate1d(images, _BINOMIAL, axis=1, mode='mirror')
  return ndimage.correlate1d(images, _BINOMIAL, axis=2, mode='mirror')


def _downsample(images):
  return _blur(images)[:, ::2, ::2]


def _upsample(images, shape):
  """Zero-insertion to `shape` (height, width), then the binomial filter times 4 to keep the brightness."""
  up = np.zeros((images.shape[0], *shape, images.shape[3]), np.float32)
  up[:, ::2, ::2] = images
  return _blur(up) * 4.0


def pyramid_sizes(height, width):
  """The (height, width) of each Laplacian level: halved (rounding up) until the larger side is <= 16."""
  sizes = [(height, width)]
  while max(sizes[-1]) > COARSEST and min(sizes[-1]) >= 2 * PATCH:
    h, w = sizes[-1]
    sizes.append((-(-h // 2), -(-w // 2)))
  return sizes


def laplacian_levels(images):
  """Yields the Laplacian levels of float [n, h, w, c], finest first; the last is the blurred, shrunk image.

  One level at a time, so that a large set needs memory for two levels, not the whole pyramid.
  """
  current = np.asarray(images, np.float32)
  for _ in pyramid_sizes(*images.shape[1:3])[1:]:
    smaller = _downsample(current)
    yield current - _upsample(smaller, current.shape[1:3])
    current = smaller
  yield current


def _patches(level, rng):
  """PATCHES_PER_IMAGE random 7x7 patches of each image -> float [n * PATCHES_PER_IMAGE, 7, 7, c]."""
  count, height, width, _ = level.shape
  picks = count * PATCHES_PER_IMAGE
  image = np.repeat(np.arange(count), PATCHES_PER_IMAGE)
  top = rng.integers(0, height - PATCH + 1, picks)
  left = rng.integers(0, width - PATCH + 1, picks)
  offsets = np.arange(PATCH)
  rows = (top[:, None] + offsets)[:, :, None]  # [picks, 7, 1]
  cols = (left[:, None] + offsets)[:, None, :]  # [picks, 1, 7]
  return level[image[:, None, None], rows, cols]


def descriptors(level, seed):
  """The normalized patch descriptors of one pyramid level.

  The patch positions depend only on `seed` and the level's shape, so two sets of the same shape are sampled at
  the same places: a set against itself gives 0 exactly, and the distance is symmetric.

  Args:
    level: float [n, height, width, channels], a Laplacian level.
    seed: an int or a sequence of ints.

  Returns:
    float32 [n * 128, 7 * 7 * channels], each channel at mean 0 and deviation 1 over the whole set.
  """
  patches = _patches(level, np.random.default_rng(seed))
  patches -= patches.mean(axis=(0, 1, 2), keepdims=True)
  patches /= patches.std(axis=(0, 1, 2), keepdims=True) + 1e-8
  return patches.reshape(len(patches), -1)


def sliced_wasserstein(a, b, seed):
  """The sliced Wasserstein distance between two descriptor sets of the same size, in units of 1e-3.

  Args:
    a, b: float [count, dims] descriptors (from descriptors()).
    seed: an int or a sequence of ints; picks the random directions.

  Returns:
    The mean over REPEATS x DIRECTIONS random unit directions of the mean absolute difference between the sorted
    projections of `a` and of `b` (the 1-D Wasserstein-1 distance), times 1e3.
  """
  if a.shape != b.shape:
    raise ValueError(f'descriptor sets of different shapes: {a.shape} and {b.shape}')
  rng = np.random.default_rng(seed)
  total = 0.0
  for _ in range(REPEATS):
    directions = rng.standard_normal((a.shape[1], DIRECTIONS)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    for chunk in np.split(directions, DIRECTIONS // _DIRECTIONS_AT_ONCE, axis=1):
      # [directions, count]: each direction's projections contiguous, which numpy sorts 3x faster than columns
      projected_a, projected_b = chunk.T @ a.T, chunk.T @ b.T
      _sort_rows(projected_a, projected_b)
      projected_a -= projected_b
      total += float(np.abs(projected_a, out=projected_a).sum(dtype=np.float64))
  return total / (REPEATS * DIRECTIONS * len(a)) * SWD_SCALE


_SORTERS = []  # one thread pool for the process: starting threads for every sort cost a third of the time


def _sort_rows(*arrays):
  """Sorts each row of 2-D arrays in place, on every core (numpy's sort releases the GIL)."""
  workers = os.cpu_count() or 1
  if not _SORTERS:
    _SORTERS.append(concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix='swd_sort'))
  chunks = [array[rows[0]:rows[-1] + 1] for array in arrays
            for rows in np.array_split(np.arange(len(array)), workers) if len(rows)]
  list(_SORTERS[0].map(lambda rows: rows.sort(axis=1), chunks))


def swd(images_a, images_b, seed=0):
  """The multi-scale sliced Wasserstein distance of two image sets of the same shape.

  Memory: two Laplacian levels and two descriptor sets at a time, about 2 x (n x 128 x 49 x channels x 4 bytes)
  for the descriptors: 1.5 GB for 10,000 RGB images.

  Args:
    images_a, images_b: [n, height, width, channels], uint8 or float, any common range (the normalization of
      the patches removes it); at least 7 pixels on a side.
    seed: an int; the same seed gives the same patches and directions.

  Returns:
    {'<height>x<width>': SWD of that pyramid level (x1e3), ..., 'mean': their mean}; lower is closer, 0 for equal
    sets.
  """
  if images_a.shape != images_b.shape:
    raise ValueError(f'image sets of different shapes: {images_a.shape} and {images_b.shape}')
  if min(images_a.shape[1:3]) < PATCH:
    raise ValueError(f'images of {images_a.shape[1]}x{images_a.shape[2]} are smaller than the {PATCH}x{PATCH} '
                     'patches')
  result = {}
  for index, (level_a, level_b) in enumerate(zip(laplacian_levels(images_a), laplacian_levels(images_b))):
    height, width = level_a.shape[1:3]
    result[f'{height}x{width}'] = sliced_wasserstein(descriptors(level_a, [seed, 1, index]),
                                                     descriptors(level_b, [seed, 1, index]), [seed, 2, index])
  result['mean'] = float(np.mean(list(result.values())))
  return result


def class_entropy(predicted, num_classes):
  """The entropy in bits of the histogram of predicted classes: log2(num_classes) when every class is as common,
  0 when all images fall in one class (mode collapse).

  Args:
    predicted: int [count] class ids.
    num_classes: the number of classes.
  """
  frequency = np.bincount(predicted, minlength=num_classes) / max(len(predicted), 1)
  frequency = frequency[frequency > 0]
  return float(-np.sum(frequency * np.log2(frequency)))
