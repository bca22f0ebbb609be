"""Images: the noise z they are made from, sample grids, and PNG and GIF files (with Pillow), written atomically.

$ python main.py --train --dataset digits    # grids made here land in samples/digits_28_28/
"""

import io
import math

import numpy as np
from PIL import Image

from common import disk

GRID_PAD = 2
GRID_PAD_VALUE = 128  # mid grey: separates cells on black and on white backgrounds, and marks empty cells


def noise(distribution, shape, seed):
  """Draws z: 'uniform_signed' is U(-1, 1), 'normal' is N(0, 1).

  Args:
    distribution: one of config.Z_DISTRIBUTIONS.
    shape: output shape, [batch, z_dim].
    seed: an int, a sequence of ints or a numpy Generator; the same seed gives the same z.

  Returns:
    float32 array of `shape`.
  """
  rng = np.random.default_rng(seed)
  if distribution == 'uniform_signed':
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
  if distribution == 'normal':
    return rng.standard_normal(size=shape).astype(np.float32)
  raise ValueError(f'unknown z distribution {distribution!r}')


def grid_shape(count, cols=None):
  """Rows and columns of a grid for `count` images: `cols` columns, or as square as possible."""
  cols = cols or math.ceil(math.sqrt(count))
  return math.ceil(count / cols), cols


def make_grid(images, cols=None):
  """Tiles images into one picture; any count works, empty cells stay grey.

  Args:
    images: uint8 [count, height, width, channels].
    cols: columns of the grid; default as square as possible.

  Returns:
    uint8 [rows * (height + pad) + pad, cols * (width + pad) + pad, channels].
  """
  count, height, width, channels = images.shape
  rows, cols = grid_shape(count, cols)
  grid = np.full((rows * (height + GRID_PAD) + GRID_PAD, cols * (width + GRID_PAD) + GRID_PAD, channels),
                 GRID_PAD_VALUE, np.uint8)
  for i, image in enumerate(images):
    top = GRID_PAD + (i // cols) * (height + GRID_PAD)
    left = GRID_PAD + (i % cols) * (width + GRID_PAD)
    grid[top:top + height, left:left + width] = image
  return grid


def _pil(image):
  image = np.asarray(image, np.uint8)
  return Image.fromarray(image[:, :, 0] if image.shape[-1] == 1 else image)


def save_png(path, image):
  """Writes uint8 [height, width, 1 or 3] as a PNG, atomically."""
  disk.write_atomically(path, lambda temporary: _pil(image).save(temporary, format='PNG'))


def read_png(path):
  """Reads an image file as uint8 [height, width, 1 or 3]."""
  with Image.open(path) as image:
    pixels = np.asarray(image.convert('L' if image.mode in ('1', 'L', 'LA') else 'RGB'))
  return pixels[:, :, np.newaxis] if pixels.ndim == 2 else pixels


def save_gif(path, frames, seconds_per_frame=0.1):
  """Writes uint8 frames [count, height, width, 1 or 3] as a looping GIF, atomically."""
  images = [_pil(frame) for frame in frames]
  disk.write_atomically(path, lambda temporary: images[0].save(
      temporary, format='GIF', save_all=True, append_images=images[1:], duration=int(seconds_per_frame * 1000),
      loop=0))


def png_bytes(image):
  """uint8 [height, width, 1 or 3] -> PNG bytes, as TensorBoard's image summaries want."""
  buffer = io.BytesIO()
  _pil(image).save(buffer, format='PNG')
  return buffer.getvalue()
