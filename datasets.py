"""Training data: MNIST-style IDX files, folders of images, the built-in digits, and the tf.data input pipeline.

A dataset is the folder `<data_dir>/<dataset>`. If it holds `train-images-idx3-ubyte[.gz]` and
`train-labels-idx1-ubyte[.gz]` (and optionally the `t10k-` pair), it is a labelled MNIST-style set kept in memory
as uint8. Otherwise it is the files matching `--input_fname_pattern`, decoded, cropped and resized by TensorFlow
in parallel. `digits` is built in: it is rendered into `<data_dir>/digits/` on first use.

$ python main.py --train --dataset mnist --data_dir ../shared/data
"""

import collections
import concurrent.futures
import dataclasses
import glob
import gzip
import os
import pathlib
from typing import Optional

import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image

import digits
import utils
from errors import UserError

tf1 = tf.compat.v1

BUILTIN = ('digits',)
IDX_PAIRS = (('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
             ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'))
# What tf.io.decode_image reads; other formats would fail inside the training step.
DECODABLE_FORMATS = ('JPEG', 'PNG', 'GIF', 'BMP')
GRAYSCALE_MODES = ('1', 'L', 'LA', 'I', 'I;16', 'F')
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype('>i2'), 0x0C: np.dtype('>i4'),
              0x0D: np.dtype('>f4'), 0x0E: np.dtype('>f8')}

InputPipeline = collections.namedtuple('InputPipeline', 'images labels initializer feed')
"""images: uint8 [batch, height, width, channels] from the iterator; labels: int32 [batch] or None;
initializer: the op that starts an epoch; feed: feed(order) -> feed_dict for it."""


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A training set: images in memory (with optional labels) or image files to decode.

  Attributes:
    name: the --dataset value.
    channels: 1 (grayscale) or 3 (RGB).
    num_classes: label classes; 0 when unlabelled.
    images: uint8 [count, height, width, channels] at the output size, or None for files.
    labels: int32 [count], or None.
    paths: the image files, sorted, or None for in-memory images.
  """
  name: str
  channels: int
  num_classes: int = 0
  images: Optional[np.ndarray] = None
  labels: Optional[np.ndarray] = None
  paths: Optional[tuple] = None

  def __len__(self):
    return len(self.paths) if self.images is None else len(self.images)


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
  except (OSError, EOFError) as e:
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
  utils.write_atomically(path, lambda temporary: pathlib.Path(temporary).write_bytes(data))


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
    images.append(pair_images.astype(np.uint8))
    labels.append(pair_labels.astype(np.int32))
  return np.concatenate(images), np.concatenate(labels)


def _resize_all(images, height, width):
  if images.shape[1:3] == (height, width):
    return images
  return np.stack([np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
                   for image in images])


def _header(path):
  """(format, mode, width, height) from the file's header, or None when Pillow cannot identify it."""
  try:
    with Image.open(path) as image:
      return image.format, image.mode, image.width, image.height
  except (OSError, ValueError, Image.DecompressionBombError):
    return None


def _scan_folder(folder, config):
  """Lists and checks the image files of a folder dataset; see load() for the errors."""
  pattern = os.path.join(folder, config.input_fname_pattern)
  paths = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
  if not paths:
    others = sorted(os.listdir(folder))
    hint = f'; it holds {len(others)} other entries, e.g. {others[0]!r}' if others else '; the folder is empty'
    raise UserError(f'no file matches {pattern}{hint} (set --input_fname_pattern)')
  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    headers = list(pool.map(_header, paths))
  bad = [p for p, h in zip(paths, headers) if h is None or h[0] not in DECODABLE_FORMATS]
  if bad:
    logging.warning('skipping %d of %d files that are not JPEG, PNG, GIF or BMP images, e.g. %s',
                    len(bad), len(paths), ', '.join(bad[:3]))
  good = [(p, h) for p, h in zip(paths, headers) if h is not None and h[0] in DECODABLE_FORMATS]
  if not good:
    raise UserError(f'none of the {len(paths)} files matching {pattern} is a readable image')
  if config.crop:
    small = [(p, w, h) for p, (_, _, w, h) in good if w < config.input_width or h < config.input_height]
    if small:
      path, width, height = small[0]
      raise UserError(f'--crop {config.input_height}x{config.input_width} is larger than {len(small)} of '
                      f'{len(good)} images, e.g. {path} ({height}x{width}); '
                      'lower --input_height/--input_width or drop --crop')
  grayscale = all(h[1] in GRAYSCALE_MODES for _, h in good)
  return tuple(p for p, _ in good), 1 if grayscale else 3


def load(config):
  """Finds, checks and loads the dataset that `config` names.

  Args:
    config: a config.Config; reads dataset, data_dir, input_fname_pattern, crop, input_height,
      input_width, output_height, output_width.

  Returns:
    A Dataset.

  Raises:
    UserError: the folder is missing or empty, no file matches the pattern, the crop is larger than the
      images, or IDX files are malformed.
  """
  folder = os.path.join(config.data_dir, config.dataset)
  if config.dataset in BUILTIN and not is_idx_folder(folder):
    logging.info('rendering the built-in %s dataset into %s (once)', config.dataset, folder)
    os.makedirs(folder, exist_ok=True)
    images, labels = digits.make_digits(digits.DIGITS_COUNT)
    write_idx(os.path.join(folder, IDX_PAIRS[0][1] + '.gz'), labels)
    write_idx(os.path.join(folder, IDX_PAIRS[0][0] + '.gz'), images)
  if not os.path.isdir(folder):
    raise UserError(f'no dataset folder {folder}: {_how_to_get(config.dataset)}')
  if is_idx_folder(folder):
    images, labels = load_idx_folder(folder)
    images = _resize_all(images, config.output_height, config.output_width)[..., np.newaxis]
    return Dataset(config.dataset, channels=1, num_classes=int(labels.max()) + 1, images=images,
                   labels=labels)
  paths, channels = _scan_folder(folder, config)
  return Dataset(config.dataset, channels=channels, paths=paths)


def _how_to_get(name):
  if name.lower() == 'mnist':
    return ('put the MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, optionally the '
            't10k- pair) there, or train on the built-in --dataset digits')
  return (f'put the images in it (--input_fname_pattern picks them), point --data_dir at the folder that holds '
          f'{name}/, or use a built-in dataset: {", ".join(BUILTIN)}')


def epoch_order(seed, epoch, count):
  """The order in which an epoch visits the dataset: a function of the seed and the epoch only."""
  return np.random.default_rng([seed, epoch]).permutation(count)


def _decode(path, channels, config):
  """Reads one image file -> uint8 [output_height, output_width, channels]."""
  image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
  if channels == 1:
    image = tf.image.rgb_to_grayscale(image)
  if config.crop:
    shape = tf.shape(image)
    image = tf.image.crop_to_bounding_box(image, (shape[0] - config.input_height) // 2,
                                          (shape[1] - config.input_width) // 2,
                                          config.input_height, config.input_width)
  image = tf.image.resize(image, [config.output_height, config.output_width], antialias=True)
  return tf.saturate_cast(tf.round(image), tf.uint8)


def make_pipeline(dataset, config):
  """Builds the tf.data pipeline that yields one batch per training step.

  An epoch starts by running `initializer` with `feed(order)`, where `order` lists the dataset indices to visit
  (a shuffle from epoch_order(), minus any batches already done when resuming). Batches are cut with
  drop_remainder, so every batch has exactly `config.batch_size` images.

  Args:
    dataset: a Dataset.
    config: a config.Config; reads batch_size, crop sizes and output sizes.

  Returns:
    An InputPipeline.
  """
  if dataset.images is not None:
    images = tf1.placeholder(tf.uint8, [None] + list(dataset.images.shape[1:]), name='epoch_images')
    labels = tf1.placeholder(tf.int32, [None], name='epoch_labels')
    data = tf.data.Dataset.from_tensor_slices((images, labels))
    feed = lambda order: {images: dataset.images[order], labels: dataset.labels[order]}
  else:
    paths = tf1.placeholder(tf.string, [None], name='epoch_files')
    data = tf.data.Dataset.from_tensor_slices(paths).map(
        lambda path: (_decode(path, dataset.channels, config), tf.constant(0, tf.int32)),
        num_parallel_calls=os.cpu_count() or 2, deterministic=True)
    all_paths = np.asarray(dataset.paths)
    feed = lambda order: {paths: all_paths[order]}
  # No autotuning: its background thread can hold up closing the session for tens of seconds after a long run.
  options = tf.data.Options()
  options.autotune.enabled = False
  data = data.batch(config.batch_size, drop_remainder=True).prefetch(2).with_options(options)
  iterator = tf1.data.make_initializable_iterator(data)
  batch_images, batch_labels = iterator.get_next()
  return InputPipeline(images=batch_images, labels=batch_labels if dataset.num_classes else None,
                       initializer=iterator.initializer, feed=feed)
