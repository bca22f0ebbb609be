"""MNIST-style IDX files (the train pair, and the t10k pair when there), read into memory with their labels; the
built-in digits are rendered into such a folder once.

$ python main.py --train --dataset mnist --data_dir ../shared/data
"""

import gzip
import os
import pathlib
import zlib

import numpy as np
from absl import logging
from PIL import Image

from common import disk
from common import memory
from config import MNIST_DATASET
from errors import UserError
from . import digits

from .source import BUILTIN, MAX_CLASSES, PixelSource, folder_of, missing

IDX_PAIRS = (('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
             ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'))
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype('>i2'), 0x0C: np.dtype('>i4'),
              0x0D: np.dtype('>f4'), 0x0E: np.dtype('>f8')}


def _open_maybe_gzip(path):
  with open(path, 'rb') as f:
    gzipped = f.read(2) == b'\x1f\x8b'
  return gzip.open(path, 'rb') if gzipped else open(path, 'rb')


def read_idx(path):
  """Reads an IDX file (gzipped or raw), as in the MNIST distribution.

  Returns:
    numpy array with the file's dimensions and element type.

  Raises:
    UserError: the file is not a complete IDX file.
  """
  try:
    with _open_maybe_gzip(path) as f:
      data = f.read()
  except (OSError, EOFError, zlib.error) as e:
    raise UserError(f'cannot read {path}: {e}') from None
  if len(data) < 4 or data[:2] != b'\0\0' or data[2] not in _IDX_TYPES or data[3] == 0:
    raise UserError(f'{path} is not an IDX file (bad magic number {data[:4].hex() or "(empty)"})')
  dtype, ndim = np.dtype(_IDX_TYPES[data[2]]), data[3]
  header = 4 + 4 * ndim
  if len(data) < header:
    raise UserError(f'{path} is truncated: its header needs {header} bytes, the file has {len(data)}')
  shape = tuple(int(d) for d in np.frombuffer(data, '>u4', ndim, offset=4))
  expected = header + int(np.prod(shape)) * dtype.itemsize
  if len(data) != expected:
    raise UserError(f'{path} has {len(data)} bytes but its header {list(shape)} needs {expected}'
                    f'{" (truncated)" if len(data) < expected else ""}')
  return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder('='))


def write_idx(path, array):
  """Writes a uint8 array as a gzipped IDX file, replacing `path` in a single rename."""
  array = np.ascontiguousarray(array, np.uint8)
  header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, '>u4').tobytes()
  data = gzip.compress(header + array.tobytes())
  disk.write_atomically(path, lambda temporary: pathlib.Path(temporary).write_bytes(data))


def _find(folder, name):
  for candidate in (name, name + '.gz'):
    if os.path.exists(os.path.join(folder, candidate)):
      return os.path.join(folder, candidate)
  return None


def is_idx_folder(folder):
  return _find(folder, IDX_PAIRS[0][0]) is not None


def load_idx_folder(folder):
  """Loads the MNIST-style train (and, when present, t10k) images and labels of `folder`.

  Returns:
    (images uint8 [count, height, width], labels int32 [count]).

  Raises:
    UserError: a file is missing, malformed, or images and labels do not match.
  """
  images, labels = [], []
  for image_name, label_name in IDX_PAIRS:
    image_path, label_path = _find(folder, image_name), _find(folder, label_name)
    if image_path is None:
      continue
    if label_path is None:
      raise UserError(f'{image_path} has no labels file {label_name}[.gz] beside it')
    pair_images, pair_labels = read_idx(image_path), read_idx(label_path)
    if pair_images.ndim != 3 or pair_labels.ndim != 1 or len(pair_images) != len(pair_labels):
      raise UserError(f'{image_path} {list(pair_images.shape)} and {label_path} {list(pair_labels.shape)} '
                      'are not [count, height, width] images with [count] labels')
    if pair_images.dtype != np.uint8:
      raise UserError(f'{image_path} holds {pair_images.dtype} pixels; MNIST-style images are unsigned bytes')
    if len(pair_labels) and (pair_labels.min() < 0 or pair_labels.max() >= MAX_CLASSES):
      raise UserError(f'{label_path} has labels from {pair_labels.min()} to {pair_labels.max()}; labels must be '
                      f'0 to {MAX_CLASSES - 1}')
    if not len(pair_images) or 0 in pair_images.shape[1:]:
      raise UserError(f'{image_path} holds no images (its shape is {list(pair_images.shape)})')
    images.append(pair_images)
    labels.append(pair_labels.astype(np.int32))
  return np.concatenate(images), np.concatenate(labels)


def _resize_all(images, height, width, name):
  """The images resized to height x width in memory (refused first where they would not fit: memory.check)."""
  if images.shape[1:3] == (height, width):
    return images
  # the resized images twice over (Pillow's list, then the stacked array) beside the files' own
  memory.check(2 * len(images) * height * width + images.nbytes,
               f'resizing the {len(images)} images of {name} to {height}x{width} in memory',
               f'use a smaller --output_height (the images are {images.shape[1]}x{images.shape[2]})')
  return np.stack([np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
                   for image in images])


class IdxSource(PixelSource):
  """MNIST-style IDX files (train and t10k pairs, gzipped or raw) with their labels, in memory."""
  kind = 'MNIST-style IDX files'
  native_size = None  # (height, width) in the files

  @staticmethod
  def recognizes(config):
    folder = folder_of(config)
    return (config.dataset in BUILTIN or is_idx_folder(folder)
            or config.dataset == MNIST_DATASET and not os.path.isdir(folder))  # not downloaded yet

  @classmethod
  def open(cls, config, cache_dir):
    folder = folder_of(config)
    if config.dataset in BUILTIN and not is_idx_folder(folder):
      logging.info('rendering the built-in %s dataset into %s (once)', config.dataset, folder)
      os.makedirs(folder, exist_ok=True)
      images, labels = digits.make_digits(digits.DIGITS_COUNT)
      write_idx(os.path.join(folder, IDX_PAIRS[0][1] + '.gz'), labels)
      write_idx(os.path.join(folder, IDX_PAIRS[0][0] + '.gz'), images)
    if not os.path.isdir(folder):
      raise missing(config)
    images, labels = load_idx_folder(folder)
    resized = _resize_all(images, config.output_height, config.output_width, config.dataset)
    source = cls(config.dataset, resized[..., np.newaxis], labels)
    source.native_size = images.shape[1:]
    return source

  @staticmethod
  def default_size(config):
    return 28

  def describe(self):
    return [f'{self.name}: {self.kind}, {len(self)} grayscale images of {self.native_size[0]}x{self.native_size[1]}']
