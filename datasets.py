"""Training data: every kind of dataset behind one small interface, and the tf.data input pipeline.

`--dataset` (with `--data_dir`) names a dataset; the first of SOURCES that recognizes it opens it:
- TfdsSource: `tfds:NAME[/CONFIG]`, from TensorFlow Datasets, decoded once into the --cache file.
- IdxSource: a folder of MNIST-style IDX files (`train-images-idx3-ubyte[.gz]` and its labels), in memory.
- LmdbSource: a folder holding an LMDB (`data.mdb`) whose values are encoded images, as LSUN ships.
- LmdbCategoriesSource: `lsun_bedroom+kitchen`, the LMDBs of several categories, each category a label class.
- FolderSource: the image files of a folder that match --input_fname_pattern.
`digits` is built in: it is rendered into `<data_dir>/digits/` (IDX files) on first use.

Every source answers the same few questions (Source): how many images, how many channels, which labels, the
pixels or the encoded bytes of image i, and how TensorFlow decodes them. Loading, --check_data, --cache, the
input pipeline and the evaluator ask nothing else. Encoded sources (folders, LMDB) are checked entry by entry
once (headers, then TensorFlow's own decoder), and what was found is remembered beside the checkpoints.

$ python main.py --train --dataset mnist --data_dir ../shared/data
$ python main.py --train --dataset lsun_bedroom --crop
$ python main.py --train --dataset tfds:cifar10
"""

import collections
import concurrent.futures
import dataclasses
import difflib
import glob
import gzip
import hashlib
import io
import json
import os
import pathlib
import re
import struct
import zipfile
import zlib

import lmdb
import numpy as np
import requests
import tensorflow as tf
from absl import logging
from PIL import Image

import config as config_lib
import digits
import fetch
import utils
from errors import UserError, first_line

tf1 = tf.compat.v1

BUILTIN = config_lib.BUILTIN_DATASETS
IDX_PAIRS = (('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
             ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'))
# What tf.io.decode_image reads; other formats would fail inside the training step.
DECODABLE_FORMATS = ('JPEG', 'PNG', 'GIF', 'BMP', 'WEBP')
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.gif', '.bmp', '.webp')  # the file names of those formats
SCAN_FILE = 'data_check.npz'  # what the check of an encoded source found, keyed by its fingerprint
LMDB_KEYS_FILE = 'lmdb_keys.npz'  # the keys of an LMDB, listed once
IMAGE_CACHE_FILE = 'image_cache.npy'  # --cache and TFDS: the images decoded, cropped and resized, in order
IMAGE_CACHE_LABELS = 'image_cache_labels.npy'
IMAGE_CACHE_KEY = 'image_cache.json'  # what they were made from
MAX_CLASSES = 1000
GRAYSCALE_MODES = ('1', 'L', 'LA', 'I', 'I;16', 'F')
FETCH_BATCH = 256  # encoded images fetched per Python call in the pipeline
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype('>i2'), 0x0C: np.dtype('>i4'),
              0x0D: np.dtype('>f4'), 0x0E: np.dtype('>f8')}

InputPipeline = collections.namedtuple('InputPipeline', 'images labels initializer feed')
"""images: uint8 [batch, height, width, channels] from the iterator; labels: int32 [batch] or None;
initializer: the op that starts an epoch; feed: feed(order) -> feed_dict for it."""


# The interface

class Source:
  """What every dataset answers.

  Attributes:
    name: the --dataset value.
    channels: 1 (grayscale) or 3 (RGB).
    labels: int32 [count], the class of each image, or None.
    num_classes: label classes; 0 when unlabelled.
    class_names: the name of each class (a folder of class folders names them), or None.
    images: uint8 [count, height, width, channels] at the output size for a PixelSource, None for an
      EncodedSource.
  """
  kind = 'dataset'  # what --check_data calls it
  images = None

  def __init__(self, name, channels, labels=None, num_classes=None, class_names=None):
    self.name, self.channels, self.labels = name, channels, labels
    self.class_names = tuple(class_names) if class_names else None
    if num_classes is None:
      num_classes = len(self.class_names) if self.class_names else (
          int(labels.max()) + 1 if labels is not None and len(labels) else 0)
    self.num_classes = num_classes

  def __len__(self):
    raise NotImplementedError

  # What only some kinds of source know: how to find and open one, and what --check_data says about it.

  @staticmethod
  def recognizes(config):
    """Whether --dataset and --data_dir name a dataset of this kind."""
    raise NotImplementedError

  @classmethod
  def open(cls, config, cache_dir):
    """Opens the dataset that `config` names (every entry, bad ones included for encoded sources).

    Raises:
      UserError: it is missing or cannot be read at all.
    """
    raise NotImplementedError

  @staticmethod
  def default_size(config):
    """The output height (and width) when --output_height is not given."""
    return 64

  def describe(self):
    """The first lines of the --check_data report."""
    return [f'{self.name}: {self.kind}, {len(self)} images, {_channels_text(self.channels)}']


class PixelSource(Source):
  """Decoded images at the output size, in memory or memory-mapped, with optional labels.

  Args:
    name: the --dataset value.
    images: uint8 [count, height, width, channels].
    labels: int32 [count] or None.
    num_classes: default max(labels) + 1.
    class_names: the name of each class, or None.
  """
  kind = 'images in memory'

  def __init__(self, name, images, labels=None, num_classes=None, class_names=None):
    super().__init__(name, images.shape[-1], labels, num_classes, class_names)
    self.images = images

  def __len__(self):
    return len(self.images)


class EncodedSource(Source):
  """Encoded images (JPEG, PNG, GIF, BMP, WebP) read one by one and decoded by TensorFlow.

  Subclasses say how to fetch entry i (fetch), how TensorFlow turns what was fetched into encoded bytes
  (tf_encoded), how to open it for Pillow (open_fetched), how to name it (entry_name), and what identifies
  their content (fingerprint). `scan` holds what check_entries found.
  """
  unit = 'entries'  # what messages count: '5 of 9 files matching data/x/*.jpg'
  preposition = 'in'
  scan = None

  @property
  def location(self):
    """Where the entries are, for messages: a glob pattern or a folder."""
    raise NotImplementedError

  def fetch(self, indices):
    """What `tf_encoded` turns into the encoded images `indices`: object array [n] of bytes."""
    raise NotImplementedError

  def tf_encoded(self, fetched):
    """string tensor: the encoded bytes of one fetched item."""
    return fetched

  def open_fetched(self, fetched):
    """A binary file object of one fetched item, for Pillow."""
    return io.BytesIO(fetched)

  def entry_name(self, index):
    raise NotImplementedError

  def fingerprint(self):
    raise NotImplementedError

  def subset(self, keep, channels):
    """The same source with only the entries `keep` (sorted indices), as `channels` channels."""
    raise NotImplementedError


def _channels_text(channels):
  return 'grayscale (1 channel)' if channels == 1 else 'RGB (3 channels)'


# IDX files

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


def _resize_all(images, height, width):
  if images.shape[1:3] == (height, width):
    return images
  return np.stack([np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
                   for image in images])


class IdxSource(PixelSource):
  """MNIST-style IDX files (train and t10k pairs, gzipped or raw) with their labels, in memory."""
  kind = 'MNIST-style IDX files'
  native_size = None  # (height, width) in the files

  @staticmethod
  def recognizes(config):
    folder = _folder(config)
    return (config.dataset in BUILTIN or is_idx_folder(folder)
            or config.dataset == fetch.MNIST.folder and not os.path.isdir(folder))  # not downloaded yet

  @classmethod
  def open(cls, config, cache_dir):
    folder = _folder(config)
    if config.dataset in BUILTIN and not is_idx_folder(folder):
      logging.info('rendering the built-in %s dataset into %s (once)', config.dataset, folder)
      os.makedirs(folder, exist_ok=True)
      images, labels = digits.make_digits(digits.DIGITS_COUNT)
      write_idx(os.path.join(folder, IDX_PAIRS[0][1] + '.gz'), labels)
      write_idx(os.path.join(folder, IDX_PAIRS[0][0] + '.gz'), images)
    if not os.path.isdir(folder):
      raise _missing(config)
    images, labels = load_idx_folder(folder)
    source = cls(config.dataset, _resize_all(images, config.output_height, config.output_width)[..., np.newaxis],
                 labels)
    source.native_size = images.shape[1:]
    return source

  @staticmethod
  def default_size(config):
    return 28

  def describe(self):
    return [f'{self.name}: {self.kind}, {len(self)} grayscale images of {self.native_size[0]}x{self.native_size[1]}']


# TensorFlow Datasets

def _not_tfds_noise(record):
  return 'TensorInfo.dtype` is deprecated' not in record.getMessage()  # TFDS 4.9.10 says it for every feature


def _import_tfds():
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel; slow to import, rarely needed
  if _not_tfds_noise not in logging.get_absl_logger().filters:
    logging.get_absl_logger().addFilter(_not_tfds_noise)
  return tfds


class TfdsSource(PixelSource):
  """A dataset of TensorFlow Datasets (`--dataset tfds:NAME[/CONFIG]`, its train split).

  TFDS downloads and prepares it (in --tfds_data_dir); its images are then decoded once, cropped and resized to
  the output size into the --cache file, memory-mapped, so that training has random access and exact resume.
  Labels come along where the dataset has a ClassLabel feature.
  """
  kind = 'TensorFlow Datasets'
  PREFIX = config_lib.TFDS_PREFIX
  info = None  # the builder's DatasetInfo
  SPLIT = 'train'

  @staticmethod
  def recognizes(config):
    return config.dataset.startswith(TfdsSource.PREFIX)

  @staticmethod
  def _builder(config):
    """(the tfds module, the builder, the image feature's name, the label feature's name or None)."""
    name = config.dataset[len(TfdsSource.PREFIX):]
    if name.split('/')[0].split(':')[0] == 'lsun':
      raise UserError("TensorFlow Datasets' lsun needs tensorflow-io, which does not support this TensorFlow: "
                      'fetch LSUN with python download.py lsun --lsun_category CATEGORY, then train with '
                      '--dataset lsun_CATEGORY')
    tfds = _import_tfds()
    try:
      builder = tfds.builder(name, data_dir=config.tfds_data_dir)
    except (tfds.core.registered.DatasetNotFoundError, ValueError) as e:
      close = difflib.get_close_matches(name.split('/')[0], tfds.list_builders(), n=3)
      hint = f'; did you mean {", ".join(close)}?' if close else ''
      raise UserError(f'TensorFlow Datasets has no dataset {name!r} ({first_line(e)}){hint}') from None
    features = builder.info.features
    images = [key for key, feature in features.items() if isinstance(feature, tfds.features.Image)]
    if not images:
      raise UserError(f'tfds:{name} has no image feature (its features: {", ".join(features.keys())})')
    labels = [key for key, feature in features.items() if isinstance(feature, tfds.features.ClassLabel)]
    label = 'label' if 'label' in labels else (labels[0] if labels else None)
    return tfds, builder, images[0], label

  @staticmethod
  def default_size(config):
    """The images' own size when it is fixed and at most 64 (28 for MNIST, 32 for CIFAR-10), else 64."""
    _, builder, image, _ = TfdsSource._builder(config)
    height, width = builder.info.features[image].shape[:2]
    return height if height and height == width and height <= 64 else 64

  @classmethod
  def open(cls, config, cache_dir):
    tfds, builder, image, label = cls._builder(config)
    shape = builder.info.features[image].shape
    channels = 1 if shape[-1] == 1 else 3
    num_classes = builder.info.features[label].num_classes if label else 0
    key = {'tfds': builder.info.full_name, 'split': cls.SPLIT, 'channels': channels, 'label': label,
           **_fit_key(config)}
    path = os.path.join(image_cache_folder(cache_dir, config), IMAGE_CACHE_FILE)
    cached = _open_image_cache(path, key)
    if cached is None:
      try:
        builder.download_and_prepare()
        data = builder.as_dataset(split=cls.SPLIT, shuffle_files=False)
      except Exception as e:  # pylint: disable=broad-except; TFDS raises anything from a failed download
        why = fetch.reason_of(e) if isinstance(e, requests.exceptions.RequestException) else first_line(e)
        raise UserError(f'TensorFlow Datasets could not download or prepare tfds:{builder.info.full_name}: {why} '
                        f'(it works in {builder.data_dir})') from None

      def fit(example):
        pixels = example[image]
        if channels == 3:  # grey or grey and alpha -> RGB; RGBA -> RGB (the feature may not say which it holds)
          pixels = tf.cond(tf.shape(pixels)[-1] < 3, lambda: tf.tile(pixels[..., :1], [1, 1, 3]),
                           lambda: pixels[..., :3])
        return _fit(pixels, config), tf.cast(example[label], tf.int32) if label else tf.constant(0, tf.int32)

      logging.info('decoding tfds:%s once into %s', builder.info.full_name, path)
      _write_image_cache(data.map(fit, num_parallel_calls=tf.data.AUTOTUNE), path, key, with_labels=bool(label),
                         shape=(config.output_height, config.output_width, channels))
      cached = _open_image_cache(path, key)
    images, labels = cached
    names = builder.info.features[label].names if label else None  # ('0', ..., '9'); CIFAR-10: ('airplane', ...)
    source = cls(config.dataset, images, labels if label else None, num_classes, names)
    source.info = builder.info
    return source

  def describe(self):
    return [f'{self.name}: {self.kind} {self.info.full_name}, split {self.SPLIT}: {len(self)} images, '
            f'{_channels_text(self.channels)}, kept at {self.images.shape[1]}x{self.images.shape[2]}']


# Folders of image files

class FolderSource(EncodedSource):
  """The image files of `<data_dir>/<dataset>` that match --input_fname_pattern, or (labelled) those of its class
  folders, `<data_dir>/<dataset>/<class>/`, as torchvision's ImageFolder reads them: classes in sorted order."""
  kind = 'a folder of image files'
  unit = 'files'
  preposition = 'matching'

  def __init__(self, name, paths, channels=3, labels=None, pattern=None, class_names=None):
    super().__init__(name, channels, labels, class_names=class_names)
    self.paths, self.pattern = tuple(paths), pattern

  def __len__(self):
    return len(self.paths)

  @staticmethod
  def recognizes(config):
    return True  # the last resort: any folder, or none (then open() says how to get one)

  @classmethod
  def open(cls, config, cache_dir):
    folder = _folder(config)
    if not os.path.isdir(folder):
      raise _missing(config)
    pattern = os.path.join(folder, config.input_fname_pattern)
    paths = _matching(folder, config.input_fname_pattern)
    classes = _class_folders(folder, config.input_fname_pattern)
    if classes and paths:
      raise UserError(f'{folder} holds images both at its top ({len(paths)} files matching '
                      f'{config.input_fname_pattern}, e.g. {os.path.basename(paths[0])!r}) and in class folders '
                      f'({", ".join(list(classes)[:3])}{", ..." if len(classes) > 3 else ""}): move the top ones '
                      'into a class folder for labels, or the class folders out for one unlabelled set')
    if classes:
      return cls._labelled(config, folder, classes)
    if not paths:
      others = sorted(os.listdir(folder))
      hint = f'; it holds {len(others)} other entries, e.g. {others[0]!r}' if others else '; the folder is empty'
      command = fetch.command_for(config.dataset)
      how = f'; to download it: {command}' if command else _pattern_hint(folder)
      raise UserError(f'no file matches {pattern}{hint}{how}')
    return cls(config.dataset, paths, pattern=pattern)

  @classmethod
  def _labelled(cls, config, folder, classes):
    """The source of a folder of class folders ({class name: its matching files}, in sorted order)."""
    where = os.path.join(folder, '<class>', config.input_fname_pattern)
    empty = [name for name, files in classes.items() if not files]
    if empty:
      raise UserError(f'class folder {os.path.join(folder, empty[0])} holds no file matching '
                      f'{config.input_fname_pattern} ({len(empty)} of the {len(classes)} class folders are empty): '
                      'fill it or remove it, since a class with no images cannot be learned')
    if len(classes) < 2:
      raise UserError(f'{folder} has one class folder, {next(iter(classes))!r}: labels need two classes or more '
                      '(train with --noconditional, or add the other classes)')
    if all(len(files) == 1 for files in classes.values()):
      raise UserError(f'each of the {len(classes)} class folders in {folder} holds one image: that is a folder per '
                      'image, not per class; put the images of each class into one folder')
    if len(classes) > MAX_CLASSES:
      raise UserError(f'{folder} has {len(classes)} class folders; at most {MAX_CLASSES} classes are supported')
    paths = [path for files in classes.values() for path in files]
    labels = np.repeat(np.arange(len(classes), dtype=np.int32), [len(files) for files in classes.values()])
    if not config.conditional:
      return cls(config.dataset, paths, pattern=where)
    return cls(config.dataset, paths, labels=labels, pattern=where, class_names=list(classes))

  def describe(self):
    lines = super().describe()
    if self.class_names:
      counts = np.bincount(self.labels, minlength=len(self.class_names))
      shown = ', '.join(f'{name} {count}' for name, count in zip(self.class_names[:10], counts[:10]))
      lines.append(f'{len(self.class_names)} classes from its class folders: {shown}'
                   + (', ...' if len(self.class_names) > 10 else ''))
    return lines

  def fetch(self, indices):
    return np.array([os.fsencode(self.paths[i]) for i in indices], dtype=object)

  def tf_encoded(self, fetched):
    return tf.io.read_file(fetched)

  def open_fetched(self, fetched):
    return open(fetched, 'rb')

  def entry_name(self, index):
    return self.paths[index]

  def fingerprint(self):
    digest = hashlib.sha256()
    for path in self.paths:
      stat = os.stat(path)
      digest.update(f'{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n'.encode())
    return digest.hexdigest()

  @property
  def location(self):
    return self.pattern

  def subset(self, keep, channels):
    labels = None if self.labels is None else self.labels[keep]
    return FolderSource(self.name, [self.paths[i] for i in keep], channels, labels, self.pattern, self.class_names)


# LMDB (LSUN)

class LmdbSource(EncodedSource):
  """An LMDB (a folder holding data.mdb) whose values are encoded images, in key order, as LSUN ships them.

  The keys are listed once (that takes a while for LSUN's millions of entries) and kept beside the checkpoints
  in lmdb_keys.npz, keyed by the database's size, time and entry count. Values are sniffed, not assumed:
  LSUN's are WebP, other LMDBs hold JPEG or PNG.
  """
  kind = 'an LMDB of encoded images'
  unit = 'LMDB entries'

  def __init__(self, name, folder, env, keys, offsets, labels=None, channels=3):
    super().__init__(name, channels, labels)
    self.folder, self.env, self.keys, self.offsets = folder, env, keys, offsets

  def __len__(self):
    return len(self.offsets) - 1

  @staticmethod
  def recognizes(config):
    return os.path.isfile(os.path.join(_folder(config), 'data.mdb'))

  @classmethod
  def open(cls, config, cache_dir):
    keys = os.path.join(cache_dir, LMDB_KEYS_FILE) if cache_dir else None
    return cls.open_folder(config.dataset, _folder(config), keys)

  @classmethod
  def open_folder(cls, name, folder, path):
    """The LMDB in `folder`, its keys read from the file `path` when they were listed before, else listed and
    kept there (unless `path` is None)."""
    source = cls(name, folder, _lmdb_env(folder), np.zeros(0, np.uint8), np.zeros(1, np.int64))
    fingerprint = source.fingerprint()
    saved = load_arrays(path, fingerprint) if path else None
    if saved is not None:
      source.keys, source.offsets = saved['keys'], saved['offsets']
      return source
    source.keys, source.offsets = source._list_keys()
    if path:
      save_arrays(path, fingerprint=fingerprint, keys=source.keys, offsets=source.offsets)
    return source

  def _list_keys(self):
    """All keys in order, as one uint8 buffer and int64 offsets [count + 1]."""
    chunks, offsets, total = [], [0], 0
    entries = self.env.stat()['entries']
    try:
      with self.env.begin() as txn, txn.cursor() as cursor, utils.Meter(
          entries, f'listing the keys of {self.folder}', unit='key') as meter:
        for key in cursor.iternext(keys=True, values=False):
          chunks.append(key)
          total += len(key)
          offsets.append(total)
          if len(offsets) % 10000 == 0:
            meter.update(10000)
    except lmdb.Error as e:
      raise UserError(f'{self.folder}/data.mdb is damaged: {e}') from None
    return np.frombuffer(b''.join(chunks), np.uint8), np.asarray(offsets, np.int64)

  def _key(self, index):
    return self.keys[self.offsets[index]:self.offsets[index + 1]].tobytes()

  def fetch(self, indices):
    with self.env.begin(buffers=False) as txn:
      return np.array([txn.get(self._key(i)) or b'' for i in indices], dtype=object)

  def entry_name(self, index):
    key = self._key(index)
    text = key.decode('ascii', 'replace') if key.isascii() and key.decode('ascii').isprintable() else repr(key)
    return f'{self.folder} key {text}'

  def fingerprint(self):
    stat = os.stat(os.path.join(self.folder, 'data.mdb'))
    info = self.env.info()
    return (f'{os.path.abspath(self.folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\0{self.env.stat()["entries"]}\0'
            f'{info["last_txnid"]}')

  @property
  def location(self):
    return self.folder

  def subset(self, keep, channels):
    kept = np.zeros(len(self), bool)
    kept[keep] = True
    lengths = np.diff(self.offsets)
    offsets = np.concatenate([[0], np.cumsum(lengths[kept])]).astype(np.int64)
    labels = None if self.labels is None else self.labels[keep]
    return LmdbSource(self.name, self.folder, self.env, self.keys[np.repeat(kept, lengths)], offsets, labels,
                      channels)


category_dataset = config_lib.category_dataset


def _categories(dataset):
  """('lsun', ('bedroom', 'kitchen')) of 'lsun_bedroom+kitchen', or None for a --dataset of another form."""
  match = re.fullmatch(r'([^_+/:]+)_([^+/:]+(?:\+[^+/:]+)+)', dataset)
  return (match[1], tuple(match[2].split('+'))) if match else None


class LmdbCategoriesSource(EncodedSource):
  """Several LMDBs as one labelled dataset, the category of each image its class: --dataset lsun_bedroom+kitchen
  (main.py makes it of --dataset lsun --lsun_category bedroom,kitchen) reads data/lsun_bedroom (label 0, named
  'bedroom') and data/lsun_kitchen (label 1). Each database's keys are listed once, as for an LmdbSource.

  Args:
    name: the --dataset value.
    parts: an LmdbSource for each class, in label order.
    class_names: the categories.
    channels: 1 or 3.
  """
  kind = 'LMDBs of encoded images, one for each class'
  unit = 'LMDB entries'

  def __init__(self, name, parts, class_names, channels=3):
    sizes = [len(part) for part in parts]
    super().__init__(name, channels, np.repeat(np.arange(len(parts), dtype=np.int32), sizes), len(parts),
                     class_names)
    self.parts, self.starts = parts, np.cumsum([0] + sizes)

  def __len__(self):
    return int(self.starts[-1])

  @staticmethod
  def recognizes(config):  # (a folder of that name is a dataset of its own: images named with a +)
    return _categories(config.dataset) is not None and not os.path.isdir(_folder(config))

  @classmethod
  def open(cls, config, cache_dir):
    prefix, categories = _categories(config.dataset)
    if len(set(categories)) < len(categories):
      raise UserError(f'--dataset {config.dataset} names a category twice')
    parts = []
    for category in categories:
      name = f'{prefix}_{category}'
      folder = os.path.join(config.data_dir, name)
      if not os.path.isfile(os.path.join(folder, 'data.mdb')):
        raise _missing(dataclasses.replace(config, dataset=name))
      keys = os.path.join(cache_dir, f'lmdb_keys_{category}.npz') if cache_dir else None
      parts.append(LmdbSource.open_folder(name, folder, keys))
    return cls(config.dataset, parts, categories)

  def _split(self, indices):
    """[(part, its indices, where they are in `indices`)] for each part that `indices` (global) fall in."""
    indices = np.asarray(indices, np.int64)
    part = np.searchsorted(self.starts, indices, side='right') - 1
    return [(p, indices[part == p] - self.starts[p], np.flatnonzero(part == p)) for p in np.unique(part)]

  def fetch(self, indices):
    fetched = np.empty(len(indices), dtype=object)
    for p, local, where in self._split(indices):
      fetched[where] = self.parts[p].fetch(local)
    return fetched

  def entry_name(self, index):
    (p, (local,), _), = self._split([index])
    return self.parts[p].entry_name(local)

  def fingerprint(self):
    return '\0\0'.join(part.fingerprint() for part in self.parts)

  @property
  def location(self):
    return ', '.join(part.folder for part in self.parts)

  def subset(self, keep, channels):
    kept = {p: local for p, local, _ in self._split(keep)}
    parts = [part.subset(kept.get(p, np.zeros(0, np.int64)), channels) for p, part in enumerate(self.parts)]
    return LmdbCategoriesSource(self.name, parts, self.class_names, channels)


_LMDB_ENVS = {}  # {real path: ((size, mtime) of data.mdb, environment)}: py-lmdb opens a database once a process


def _lmdb_env(folder):
  """A read-only environment of the LMDB in `folder`, shared by every source of the process until it changes.

  Raises:
    UserError: it is not an LMDB.
  """
  path = os.path.realpath(folder)
  stat = os.stat(os.path.join(path, 'data.mdb'))
  opened, env = _LMDB_ENVS.get(path, (None, None))
  if opened == (stat.st_size, stat.st_mtime_ns):
    return env
  if env is not None:
    env.close()
  try:
    # lock=False: nothing is written, and the data may sit on a read-only disk
    env = lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False, max_readers=512)
  except lmdb.Error as e:
    raise UserError(f'{folder}/data.mdb is not a readable LMDB: {e}') from None
  _LMDB_ENVS[path] = ((stat.st_size, stat.st_mtime_ns), env)
  return env


# Where the sources are listed: the first that recognizes --dataset opens it.
SOURCES = (TfdsSource, IdxSource, LmdbSource, LmdbCategoriesSource, FolderSource)


def _folder(config):
  return os.path.join(config.data_dir, config.dataset)


def _matching(folder, pattern):
  """The files directly in `folder` whose names match the glob `pattern`, sorted."""
  return sorted(p for p in glob.glob(os.path.join(glob.escape(folder), pattern)) if os.path.isfile(p))


def _pattern_hint(folder):
  """What to set --input_fname_pattern to, from the image files at the top of `folder` and in its visible
  subfolders (class folders): '; they are 40 .png files in 3 class folders: set --input_fname_pattern '*.png''."""
  found, places = collections.Counter(), collections.Counter()
  for entry in os.scandir(folder):
    children = [entry] if entry.is_file() else []
    if entry.is_dir() and not entry.name.startswith('.'):
      children = [child for child in os.scandir(entry.path) if child.is_file()]
    for child in children:
      extension = os.path.splitext(child.name)[1]
      if extension.lower() in IMAGE_EXTENSIONS:
        found[extension] += 1
        places[entry.is_dir()] += 1
  if not found:
    return '; none of them is an image file (JPEG, PNG, GIF, BMP or WebP)' if os.listdir(folder) else ''
  extension, count = found.most_common(1)[0]
  where = 'in its class folders' if places[True] >= places[False] else 'at its top'
  more = f' (and {sum(found.values()) - count} other images)' if len(found) > 1 else ''
  return f'; {count} {extension} files are {where}{more}: set --input_fname_pattern \'*{extension}\''


def _class_folders(folder, pattern):
  """{class folder name: its files matching `pattern`} for the visible subfolders of `folder`, sorted by name;
  empty when no subfolder holds a matching file (then they are not class folders)."""
  names = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith('.'))
  classes = {name: _matching(os.path.join(folder, name), pattern) for name in names}
  return classes if any(classes.values()) else {}


def save_arrays(path, **arrays):
  """np.savez to `path` in a single rename (numpy would add '.npz' to a temporary name of its own)."""
  def write(temporary):
    with open(temporary, 'wb') as f:
      np.savez(f, **arrays)
  utils.write_atomically(path, write)


def load_arrays(path, fingerprint):
  """{name: array} saved by save_arrays with this `fingerprint`, or None (none yet, stale or unreadable)."""
  try:
    with np.load(path) as saved:
      if str(saved['fingerprint']) != fingerprint:
        return None
      return {name: saved[name] for name in saved.files}
  except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
    return None


def source_class(config):
  return next(cls for cls in SOURCES if cls.recognizes(config))


def default_output_size(config):
  """The output size of --dataset when --output_height is not given: 28 for MNIST-style data, the native size
  of small TFDS images, else 64."""
  return source_class(config).default_size(config)


def _missing(config):
  folder = _folder(config)
  command = fetch.command_for(config.dataset)
  if config.dataset == fetch.MNIST.folder:
    how = (f'download it with: {command} (or put the MNIST IDX files train-images-idx3-ubyte.gz, '
           'train-labels-idx1-ubyte.gz there, or train on the built-in --dataset digits)')
  elif command:
    how = f'download it with: {command}'
  else:
    how = (f'put the images in it (--input_fname_pattern picks them), point --data_dir at the folder that holds '
           f'{config.dataset}/, or use a built-in dataset: {", ".join(BUILTIN)}')
  return UserError(f'no dataset folder {folder}: {how}')


# Decoding

def _decode(encoded, channels):
  """Encoded image bytes -> uint8 [height, width, channels], the first frame of an animation."""
  image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
  return tf.image.rgb_to_grayscale(image) if channels == 1 else image


def _fit(image, config):
  """uint8 [height, width, channels] -> uint8 [output_height, output_width, channels]: the crop, then a resize.

  --crop with --input_height cuts that many pixels from the centre; --crop alone cuts the largest centred part
  with the output's aspect ratio (a square for a square output); without --crop the whole image is resized.
  """
  if config.crop:
    shape = tf.shape(image)
    if config.input_height:
      height, width = config.input_height, config.input_width
    else:
      height = tf.minimum(shape[0], shape[1] * config.output_height // config.output_width)
      width = tf.minimum(shape[1], shape[0] * config.output_width // config.output_height)
      height, width = tf.maximum(height, 1), tf.maximum(width, 1)
    image = tf.image.crop_to_bounding_box(image, (shape[0] - height) // 2, (shape[1] - width) // 2, height, width)
  image = tf.image.resize(image, [config.output_height, config.output_width], antialias=True)
  return tf.saturate_cast(tf.round(image), tf.uint8)


def fit_name(config):
  """The output size and crop in a file name: '64x64', '64x64_crop', '64x64_crop108x108'."""
  name = f'{config.output_height}x{config.output_width}'
  if config.crop:
    name += '_crop' + (f'{config.input_height}x{config.input_width}' if config.input_height else '')
  return name


def image_cache_folder(cache_dir, config):
  """Where the images decoded at one output size and crop are kept (--cache, TFDS): cache_dir/images_<fit_name>."""
  return os.path.join(cache_dir, f'images_{fit_name(config)}')


def _fit_key(config):
  """What the images of a --cache file depend on beside the data."""
  return {'crop': config.crop, 'input_height': config.input_height, 'input_width': config.input_width,
          'output_height': config.output_height, 'output_width': config.output_width}


def _examples(source, indices, config, batch_size, drop_remainder):
  """A tf.data.Dataset of (images uint8 [batch, h, w, c] at the output size, labels int32 [batch]) for the
  entries that the tf.data.Dataset `indices` (int64) lists, in its order."""
  labels = source.labels if source.labels is not None else np.zeros(len(source), np.int32)
  if source.images is not None:  # decoded: gather each batch by index
    def gather(batch):
      images, batch_labels = tf.numpy_function(lambda i: (source.images[i], labels[i]), [batch],
                                               (tf.uint8, tf.int32), stateful=False)
      images.set_shape([None] + list(source.images.shape[1:]))
      batch_labels.set_shape([None])
      return images, batch_labels

    return indices.batch(batch_size, drop_remainder=drop_remainder).map(gather)

  def fetch(batch):
    return tf.numpy_function(lambda i: (source.fetch(i), labels[i]), [batch], (tf.string, tf.int32), stateful=False)

  def decode(fetched, label):
    image = _fit(_decode(source.tf_encoded(fetched), source.channels), config)
    return tf.ensure_shape(image, [config.output_height, config.output_width, source.channels]), label

  data = indices.batch(FETCH_BATCH).map(fetch).unbatch()
  data = data.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return data.batch(batch_size, drop_remainder=drop_remainder)


def _decode_error_text(error):
  """The first line of a decode OpError, without TensorFlow's function and op annotations."""
  message = (error.message or type(error).__name__).strip().splitlines()[0]
  return re.sub(r'\s*\[Op:.*$', '', re.sub(r'^\{\{[^}]*\}\}\s*', '', message))


def read_images(source, config, indices):
  """The images `indices` of a dataset as training sees them.

  Args:
    source: a Source.
    config: a config.Config; reads the crop and output sizes.
    indices: int [n].

  Returns:
    uint8 [n, output_height, output_width, channels].

  Raises:
    UserError: an image could not be decoded (it changed since it was checked).
  """
  indices = tf.data.Dataset.from_tensor_slices(np.asarray(indices, np.int64))
  try:
    batches = [images for images, _ in _examples(source, indices, config, 256, False).as_numpy_iterator()]
  except tf.errors.OpError as e:
    raise UserError(f'could not decode an image of {source.name}: {_decode_error_text(e)}; run again to check '
                    'the entries anew') from None
  return np.concatenate(batches)


# A folder of image files to score (--evaluate --images)

def _listed_files(folder):
  """The image files of `folder` to score: those manifest.json lists when there is one (a --generate folder,
  whose grid.png is not a sample), else every file with an image's extension, in name order."""
  manifest = os.path.join(folder, 'manifest.json')
  if os.path.isfile(manifest):
    try:
      with open(manifest) as f:
        return [os.path.join(folder, entry['file']) for entry in json.load(f)]
    except (OSError, ValueError, KeyError, TypeError):
      logging.warning('%s is not a manifest of --generate: scoring every image file of %s', manifest, folder)
  return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS)


def read_folder(folder, limit=None, strict=False):
  """Reads the image files of a folder as they are (see _listed_files), with Pillow.

  Args:
    folder: the folder.
    limit: read at most this many readable images.
    strict: a file that is not a readable image is an error, not a note.

  Returns:
    ([uint8 [height, width, 1 or 3] per image, in name order], [notes for the user: the files skipped]).

  Raises:
    UserError: the folder is missing or holds no readable image file (with strict: any unreadable one).
  """
  if not os.path.isdir(folder):
    raise UserError(f'--images {folder} is not a folder')
  images, bad = [], []
  for path in _listed_files(folder):
    if limit is not None and len(images) >= limit:
      break
    try:
      with Image.open(path) as image:
        grey = image.mode in GRAYSCALE_MODES
        pixels = np.asarray(image.convert('L' if grey else 'RGB'))
      images.append(pixels[:, :, np.newaxis] if grey else pixels)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
      bad.append(f'{os.path.basename(path)} ({first_line(e)})')
  if bad and strict:
    raise UserError(f'{len(bad)} files in {folder} cannot be read as images (--strict): {"; ".join(bad[:3])}')
  if not images:
    found = f'{len(bad)} files that cannot be read as images, e.g. {bad[0]}' if bad else 'no image file'
    raise UserError(f'--images {folder} holds {found} ({", ".join(IMAGE_EXTENSIONS)} files are read)')
  notes = [f'skipping {len(bad)} files in {folder} that cannot be read as images: {"; ".join(bad[:3])}'
           + ('; ...' if len(bad) > 3 else '')] if bad else []
  return images, notes


def fit_images(images, height, width, channels):
  """Images of any sizes and channels -> uint8 [n, height, width, channels]: grey to RGB or RGB to grey, and the
  whole image resized (Pillow's Lanczos) where its size differs.

  Returns:
    (the array, how many images were resized).
  """
  out = np.empty((len(images), height, width, channels), np.uint8)
  resized = 0
  for i, pixels in enumerate(images):
    image = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    image = image.convert('L' if channels == 1 else 'RGB')
    if image.size != (width, height):
      image, resized = image.resize((width, height), Image.LANCZOS), resized + 1
    array = np.asarray(image)
    out[i] = array[:, :, np.newaxis] if channels == 1 else array
  return out, resized


# Checking every entry of an encoded source

@dataclasses.dataclass
class Scan:
  """What check_entries found in an encoded source, entry by entry.

  Attributes:
    heights, widths: int32 [count]; 0 for a bad entry.
    formats, modes: uint8 [count], indices into format_names and mode_names.
    bad: {index: why} of the entries that cannot be trained on.
  """
  heights: np.ndarray
  widths: np.ndarray
  formats: np.ndarray
  modes: np.ndarray
  format_names: list
  mode_names: list
  bad: dict

  def good(self):
    return np.setdiff1d(np.arange(len(self.heights)), np.fromiter(self.bad, np.int64, len(self.bad)))

  def channels(self, good):
    grayscale = [i for i, name in enumerate(self.mode_names) if name in GRAYSCALE_MODES]
    return 1 if len(good) and np.isin(self.modes[good], grayscale).all() else 3

  def save(self, path, fingerprint):
    bad = sorted(self.bad.items())
    save_arrays(path, fingerprint=fingerprint, heights=self.heights, widths=self.widths, formats=self.formats,
                 modes=self.modes, format_names=np.array(self.format_names, str),
                 mode_names=np.array(self.mode_names, str), bad_index=np.array([i for i, _ in bad], np.int64),
                 bad_why=np.array([why for _, why in bad], str))

  @staticmethod
  def load(path, fingerprint, count):
    """The Scan saved at `path` for `fingerprint` and `count` entries, or None (then the check runs again)."""
    saved = load_arrays(path, fingerprint)
    if saved is None or len(saved['heights']) != count:
      return None
    return Scan(saved['heights'], saved['widths'], saved['formats'], saved['modes'], saved['format_names'].tolist(),
                saved['mode_names'].tolist(), dict(zip(saved['bad_index'].tolist(), saved['bad_why'].tolist())))


def _header(file):
  """(format, mode, width, height) from an image file's header, or a string saying why there is none."""
  try:
    with file:
      if file.seek(0, os.SEEK_END) == 0:
        return 'empty file'
      file.seek(0)
      with Image.open(file) as image:
        if image.format not in DECODABLE_FORMATS:
          return f'{image.format} is not one of {", ".join(DECODABLE_FORMATS)}'
        return image.format, image.mode, image.width, image.height
  except Image.DecompressionBombError:
    return 'too many pixels'
  except (OSError, ValueError, SyntaxError) as e:
    return 'not an image' if isinstance(e, Image.UnidentifiedImageError) else f'unreadable: {e}'


def _headers(source, indices):
  return [_header(source.open_fetched(item)) for item in source.fetch(indices)]


def check_entries(source, cache_dir=None, fresh=False):
  """Reads the header of every entry, then decodes each one with TensorFlow as training will, to find the bad.

  Args:
    source: an EncodedSource.
    cache_dir: where to remember what was found (data_check.npz, keyed by source.fingerprint()), so that a
      resumed run does not read every entry again; None to remember nothing.
    fresh: read every entry even when what was found is remembered (--check_data).

  Returns:
    A Scan.
  """
  path = os.path.join(cache_dir, SCAN_FILE) if cache_dir else None
  fingerprint = source.fingerprint()
  scan = Scan.load(path, fingerprint, len(source)) if path and not fresh else None
  if scan is not None:
    return scan
  count = len(source)
  heights, widths = np.zeros(count, np.int32), np.zeros(count, np.int32)
  formats, modes = np.zeros(count, np.uint8), np.zeros(count, np.uint8)
  names = {'format': [], 'mode': []}
  bad = {}
  chunks = [np.arange(start, min(start + FETCH_BATCH, count)) for start in range(0, count, FETCH_BATCH)]
  with concurrent.futures.ThreadPoolExecutor(8) as pool, utils.Meter(
      count, f'reading the headers of {source.name}', unit='image') as meter:
    for chunk, headers in zip(chunks, pool.map(lambda chunk: _headers(source, chunk), chunks)):
      for i, header in zip(chunk, headers):
        if isinstance(header, str):
          bad[int(i)] = header
          continue
        image_format, mode, widths[i], heights[i] = header
        for key, value, column in (('format', image_format, formats), ('mode', mode, modes)):
          if value not in names[key]:
            names[key].append(value)
          column[i] = names[key].index(value)
      meter.update(len(chunk))
  readable = np.setdiff1d(np.arange(count), np.fromiter(bad, np.int64, len(bad)))
  bad.update(_undecodable(source, readable))
  for i in bad:
    heights[i] = widths[i] = 0
  scan = Scan(heights, widths, formats, modes, names['format'], names['mode'], bad)
  if path:
    scan.save(path, fingerprint)
  return scan


def _undecodable(source, indices):
  """{index: why} of the entries that TensorFlow's decoder (the one training uses) rejects."""
  if not len(indices):
    return {}
  logging.info('decoding %d images of %s once to find corrupt ones', len(indices), source.name)
  fetch = lambda batch: tf.numpy_function(source.fetch, [batch], tf.string, stateful=False)
  # reduce_max reads every pixel: a static-shape result would let TensorFlow skip the decode altogether
  decode = lambda index, fetched: (index, tf.reduce_max(_decode(source.tf_encoded(fetched), 3)))
  data = tf.data.Dataset.from_tensor_slices(np.asarray(indices, np.int64)).batch(FETCH_BATCH)
  data = data.map(lambda batch: (batch, fetch(batch))).unbatch()
  data = data.map(decode, num_parallel_calls=os.cpu_count() or 2).ignore_errors().batch(FETCH_BATCH)
  decoded = set()
  # libjpeg and TensorFlow print a line or two for every broken file: only the progress reaches the terminal
  with utils.quiet_stderr() as stderr, utils.Meter(len(indices), f'decoding {source.name}', unit='image',
                                                   stream=stderr) as meter:
    for batch, _ in data.as_numpy_iterator():
      decoded.update(batch.tolist())
      meter.update(len(batch))
    return {int(i): _decode_error(source, i) for i in indices if int(i) not in decoded}


def _decode_error(source, index):
  try:
    _decode(source.tf_encoded(tf.constant(source.fetch([index])[0])), 3)
  except tf.errors.OpError as e:
    return f'corrupt or truncated: {_decode_error_text(e)}'
  return 'could not be decoded'


# Loading and checking, for every source

def _open(config, cache_dir, fresh=False):
  """(the source of --dataset with all its entries, the problems that stop training, the report's lines)."""
  source = source_class(config).open(config, cache_dir)
  if not isinstance(source, EncodedSource):
    return source, [], source.describe()
  scan = source.scan = check_entries(source, cache_dir, fresh)
  good = scan.good()
  lines = [f'{source.location}: {len(source)} {source.unit}, {len(good)} readable images, {len(scan.bad)} bad']
  if len(good):
    counts = lambda column, names: _most_common(collections.Counter(names[c] for c in column[good].tolist()))
    sizes = collections.Counter(zip(scan.heights[good].tolist(), scan.widths[good].tolist()))
    lines += [f'  formats: {counts(scan.formats, scan.format_names)}',
              f'  modes: {counts(scan.modes, scan.mode_names)} -> trained as {_channels_text(scan.channels(good))}',
              f'  sizes (height x width): {_most_common(collections.Counter(f"{h}x{w}" for h, w in sizes.elements()))}']
  if scan.bad:
    lines.append(f'  bad {source.unit} (skipped when training, fatal with --strict):')
    lines += [f'    {source.entry_name(i)}: {why}' for i, why in sorted(scan.bad.items())[:20]]
    lines += [f'    ... and {len(scan.bad) - 20} more'] if len(scan.bad) > 20 else []
  problems = []
  if not len(good):
    problems.append(f'none of the {len(source)} {source.unit} {source.preposition} {source.location} is a readable '
                    f'image: {_bad_summary(source, scan)}')
  elif config.crop and config.input_height:
    small = good[(scan.widths[good] < config.input_width) | (scan.heights[good] < config.input_height)]
    if len(small):
      first = small[0]
      problems.append(f'--crop {config.input_height}x{config.input_width} is larger than {len(small)} of {len(good)} '
                      f'images, e.g. {source.entry_name(first)} ({scan.heights[first]}x{scan.widths[first]}); lower '
                      '--input_height/--input_width, or give --crop alone for the largest centred square')
  return source, problems, lines


def _bad_summary(source, scan, limit=3):
  shown = sorted(scan.bad.items())[:limit]
  return '; '.join(f'{source.entry_name(i)} ({why})' for i, why in shown) + ('; ...' if len(scan.bad) > limit else '')


def _most_common(counter, limit=5):
  return ', '.join(f'{key} x{count}' for key, count in counter.most_common(limit)) + (
      f', {len(counter) - limit} more' if len(counter) > limit else '')


def load(config, strict=False, cache_dir=None):
  """Finds, checks and opens the dataset that `config` names.

  Entries of an encoded source that are not images, or are corrupt or truncated, are skipped with one warning
  that counts them (an error with `strict`).

  Args:
    config: a config.Config; reads dataset, data_dir, tfds_data_dir, input_fname_pattern, the crop and the
      output sizes.
    strict: make any bad entry an error.
    cache_dir: where to remember what a check found, the LMDB keys and the TFDS images (the dataset's cache
      folder, config.data_cache_path); None to remember nothing (TFDS needs it).

  Returns:
    A Source whose entries are all readable images.

  Raises:
    UserError: the dataset is missing, empty or unreadable, no entry is a readable image, the crop is larger
      than some images, or (with `strict`) an entry is bad.
  """
  source, problems, _ = _open(config, cache_dir)
  if problems:
    raise UserError(problems[0])
  if not isinstance(source, EncodedSource):
    return source
  scan = source.scan
  where = f'{source.unit} {source.preposition} {source.location}'
  if scan.bad and strict:
    raise UserError(f'{len(scan.bad)} of the {len(source)} {where} cannot be read as images (--strict): '
                    f'{_bad_summary(source, scan)}')
  if scan.bad:
    logging.warning('skipping %d of %d %s that cannot be read as images (--strict to stop instead): %s',
                    len(scan.bad), len(source), where, _bad_summary(source, scan))
  good = scan.good()
  return source.subset(good, scan.channels(good))


@dataclasses.dataclass
class Report:
  """What --check_data found; `lines` is the printed report, `problems` what stops training."""
  lines: list
  problems: list
  bad: int = 0

  def text(self):
    return '\n'.join(self.lines)


def check(config, cache_dir=None):
  """--check_data: reads every entry of the dataset and describes it, without training.

  Returns:
    A Report.

  Raises:
    UserError: the dataset is missing, or nothing in it can be listed.
  """
  try:
    source, problems, lines = _open(config, cache_dir, fresh=True)
  except UserError as e:
    if source_class(config) is not IdxSource or not os.path.isdir(_folder(config)):
      raise
    return Report([f'{_folder(config)}: {IdxSource.kind}', f'  problem: {e}'], [str(e)])
  if source.labels is not None:
    histogram = collections.Counter(source.labels.tolist())
    lines.append(f'  labels: {len(histogram)} classes: ' + ', '.join(f'{k} x{v}' for k, v in sorted(histogram.items())))
  lines += [f'  problem: {problem}' for problem in problems]
  return Report(lines, problems, bad=len(source.scan.bad) if isinstance(source, EncodedSource) else 0)


# --cache and TFDS: images decoded once into a memory-mapped file

def _npy_header(shape, size=128):
  """An .npy (version 2.0) header for uint8 `shape`, always `size` bytes, so it can be rewritten in place."""
  text = repr({'descr': '|u1', 'fortran_order': False, 'shape': tuple(shape)})
  return b'\x93NUMPY\x02\x00' + struct.pack('<I', size - 12) + text.ljust(size - 13).encode('latin1') + b'\n'


def _save_npy(path, array):
  with open(path, 'wb') as f:
    np.save(f, array)


def _open_image_cache(path, key):
  """(images uint8 memory-mapped, labels int32 or None) of the cache at `path` if it was made from `key`."""
  key_path = os.path.join(os.path.dirname(path), IMAGE_CACHE_KEY)
  try:
    with open(key_path) as f:
      if json.load(f) != key:
        logging.info('the data or sizes changed since %s was made: making it again', path)
        return None
    images = np.load(path, mmap_mode='r')
    labels_path = os.path.join(os.path.dirname(path), IMAGE_CACHE_LABELS)
    labels = np.load(labels_path) if os.path.exists(labels_path) else None
  except (OSError, ValueError):
    return None  # none yet, or unreadable: made again
  if images.dtype != np.uint8 or images.ndim != 4 or labels is not None and len(labels) != len(images):
    return None
  logging.info('reading the %d decoded images from %s', len(images), path)
  return images, labels


def _write_image_cache(data, path, key, with_labels, shape, total=None):
  """Writes the (image, label) elements of the tf.data.Dataset `data` to the cache at `path`, then its key.

  Raises:
    UserError: it could not be written (a full disk) or an image could not be decoded; nothing partial is left.
  """
  folder = os.path.dirname(path) or '.'
  temporary = utils.temporary_name(path)
  labels = []
  try:
    os.makedirs(folder, exist_ok=True)
    for name in (IMAGE_CACHE_KEY, IMAGE_CACHE_LABELS):  # the old key and labels go first: never a stale pair
      if os.path.exists(os.path.join(folder, name)):
        os.remove(os.path.join(folder, name))
    # Plain writes, not a writable memmap: a full disk must raise ENOSPC here, not SIGBUS on a page later.
    with open(temporary, 'wb') as f, utils.Meter(total, f'caching {os.path.basename(path)}', unit='image') as meter:
      f.write(_npy_header((0, *shape)))
      count = 0
      for images, batch_labels in data.batch(256).prefetch(2).as_numpy_iterator():
        f.write(images.tobytes())
        labels.append(batch_labels)
        count += len(images)
        meter.update(len(images))
      f.seek(0)
      f.write(_npy_header((count, *shape)))
    if with_labels:
      labels = np.concatenate(labels).astype(np.int32) if labels else np.zeros(0, np.int32)
      utils.write_atomically(os.path.join(folder, IMAGE_CACHE_LABELS), lambda temporary_labels: _save_npy(
          temporary_labels, labels))
    os.replace(temporary, path)
    utils.write_text(os.path.join(folder, IMAGE_CACHE_KEY), json.dumps(key))
  except OSError as e:
    if os.path.exists(path):
      os.remove(path)
    raise UserError(f'could not write the image cache {path}: {e.strerror or e}; free some space or train '
                    'without --cache') from None
  except tf.errors.OpError as e:  # a file changed after it was checked
    raise UserError(f'could not decode an image while making {path}: {_decode_error_text(e)}; run again to '
                    'check the entries anew') from None
  finally:
    if os.path.exists(temporary):  # interrupted or failed: nothing half-written stays
      os.remove(temporary)


def cache_images(source, config, cache_dir):
  """Decodes an encoded source once into the image cache of cache_dir (image_cache_folder) and trains from that
  file from then on (--cache).

  The file holds every image as training sees it (decoded, cropped, resized), in the source's order, and is
  memory-mapped, so it need not fit in memory. image_cache.json beside it records the source's fingerprint and
  the crop and output sizes: when any of them changes, the cache is made again.

  Args:
    source: a Source from load(); one already decoded (IDX, TFDS) is returned as it is.
    config: a config.Config; reads the crop and output sizes.
    cache_dir: the dataset's cache folder (config.data_cache_path), shared by its runs of every size.

  Returns:
    A PixelSource whose `images` are uint8 [count, output_height, output_width, channels], memory-mapped.

  Raises:
    UserError: the cache could not be written (a full disk); nothing partial is left behind.
  """
  if source.images is not None:
    return source
  path = os.path.join(image_cache_folder(cache_dir, config), IMAGE_CACHE_FILE)
  key = {'fingerprint': source.fingerprint(), 'count': len(source), 'channels': source.channels, **_fit_key(config)}
  cached = _open_image_cache(path, key)
  if cached is None:
    logging.info('decoding %d images once into %s (--cache)', len(source), path)
    indices = tf.data.Dataset.from_tensor_slices(np.arange(len(source), dtype=np.int64))
    _write_image_cache(_examples(source, indices, config, 256, False).unbatch(), path, key,
                       with_labels=source.labels is not None,
                       shape=(config.output_height, config.output_width, source.channels), total=len(source))
    cached = _open_image_cache(path, key)
  images, labels = cached
  return PixelSource(source.name, images, labels, source.num_classes, source.class_names)


# The input pipeline

def epoch_order(seed, epoch, count, mirror=False):
  """The order in which an epoch visits the dataset: a function of the seed and the epoch only.

  With `mirror`, each position also says whether the image is seen x-flipped, half of them at random (their own
  draw from the seed and the epoch): index i + count is image i flipped (make_pipeline reads it so)."""
  order = np.random.default_rng([seed, epoch]).permutation(count)
  if mirror:
    order = order + count * (np.random.default_rng([seed, epoch, 1]).random(count) < 0.5)
  return order


def make_pipeline(source, config):
  """Builds the tf.data pipeline that yields one batch per training step.

  An epoch starts by running `initializer` with `feed(order)`, where `order` lists the dataset indices to visit
  (a shuffle from epoch_order(), minus any batches already done when resuming; with config.mirror an index
  i + len(source) is image i x-flipped). Batches are cut with drop_remainder, so every batch has exactly
  `config.batch_size` images.

  Args:
    source: a Source.
    config: a config.Config; reads batch_size, crop sizes and output sizes.

  Returns:
    An InputPipeline.
  """
  indices = tf1.placeholder(tf.int64, [None], name='epoch_indices')
  positions = tf.data.Dataset.from_tensor_slices(indices)
  count = len(source)
  data = _examples(source, positions.map(lambda i: i % count), config, config.batch_size, True)
  if config.mirror:  # (epoch_order's index i + count: image i, x-flipped)
    flips = positions.map(lambda i: i >= count).batch(config.batch_size, drop_remainder=True)
    data = tf.data.Dataset.zip((data, flips)).map(
        lambda batch, flip: (tf.where(flip[:, None, None, None], tf.reverse(batch[0], axis=[2]), batch[0]),
                             batch[1]))
  # AUTOTUNE above picks the decode's parallelism (one call per core); the autotuner itself stays off: its
  # background thread held up closing the session by 5.5 s after a 76 s run (0.002 s without it), and the
  # decode already runs 200x faster than the rgb64 step consumes (bench/throughput.py).
  options = tf.data.Options()
  options.autotune.enabled = False
  data = data.prefetch(2).with_options(options)
  iterator = tf1.data.make_initializable_iterator(data)
  batch_images, batch_labels = iterator.get_next()
  batch_images.set_shape([config.batch_size, config.output_height, config.output_width, source.channels])
  batch_labels.set_shape([config.batch_size])  # (the labels of encoded sources come through numpy_function)
  return InputPipeline(images=batch_images, labels=batch_labels if source.num_classes else None,
                       initializer=iterator.initializer, feed=lambda order: {indices: order})
