"""utils.py: grids of any count, PNG round trips, noise."""

import numpy as np
import pytest
from PIL import Image

import utils

P = utils.GRID_PAD


def _images(count, height=2, width=3, channels=1):
  return (np.arange(count)[:, None, None, None] % 25 * 10 + np.zeros([count, height, width, channels])).astype(np.uint8)


@pytest.mark.parametrize('count,cols,shape', [(7, None, (3, 3)), (64, 10, (7, 10)), (1, None, (1, 1)),
                                              (10, None, (3, 4)), (5, 5, (1, 5))])
def test_grid_of_any_count(count, cols, shape):
  grid = utils.make_grid(_images(count), cols)
  rows, columns = shape
  assert grid.shape == (rows * (2 + P) + P, columns * (3 + P) + P, 1)
  for i in range(count):
    top, left = P + (i // columns) * (2 + P), P + (i % columns) * (3 + P)
    assert np.all(grid[top:top + 2, left:left + 3] == i % 25 * 10)
  empty = rows * columns - count
  if empty:  # the last cell stays grey
    assert np.all(grid[-2 - P:-P, -3 - P:-P] == utils.GRID_PAD_VALUE)


@pytest.mark.parametrize('channels,mode', [(1, 'L'), (3, 'RGB')])
def test_save_png_round_trip(tmp_path, channels, mode):
  image = np.random.default_rng(0).integers(0, 256, size=[5, 7, channels], dtype=np.uint8)
  path = str(tmp_path / 'sub' / 'x.png')
  utils.save_png(path, image)
  with Image.open(path) as loaded:
    assert loaded.mode == mode
    np.testing.assert_array_equal(np.asarray(loaded).reshape(image.shape), image)
  assert not (tmp_path / 'sub' / 'x.png.tmp').exists()


def test_noise_distributions_and_determinism():
  uniform = utils.noise('uniform_signed', [1000, 4], 3)
  assert uniform.dtype == np.float32 and uniform.min() >= -1 and uniform.max() <= 1 and uniform.min() < -0.9
  normal = utils.noise('normal', [1000, 4], 3)
  assert normal.min() < -2 and abs(normal.mean()) < 0.1
  np.testing.assert_array_equal(utils.noise('normal', [3, 2], [1, 5]), utils.noise('normal', [3, 2], [1, 5]))
  assert not np.array_equal(utils.noise('normal', [3, 2], [1, 5]), utils.noise('normal', [3, 2], [1, 6]))
  with pytest.raises(ValueError, match='unknown z distribution'):
    utils.noise('cauchy', [1, 1], 0)
