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
import hashlib
import json
import os
import pathlib
import re
import zlib
from typing import Optional

import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image
from tqdm import tqdm

import digits
import utils
from errors import UserError

tf1 = tf.compat.v1

BUILTIN = ('digits',)
IDX_PAIRS = (('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
             ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'))
# What tf.io.decode_image reads; other formats would fail inside the training step.
DECODABLE_FORMATS = ('JPEG', 'PNG', 'GIF', 'BMP')
DECODE_CHECK_FILE = 'data_check.json'
IMAGE_CACHE_FILE = 'image_cache.npy'  # --cache: a folder's images decoded, cropped and resized, in file order
IMAGE_CACHE_KEY = 'image_cache.json'  # what they were made from
MAX_CLASSES = 1000
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


def _header(path):
  """(format, mode, width, height) from the file's header, or a string saying why there is none."""
  try:
    if os.path.getsize(path) == 0:
      return 'empty file'
    with Image.open(path) as image:
      if image.format not in DECODABLE_FORMATS:
        return f'{image.format} is not one of {", ".join(DECODABLE_FORMATS)}'
      return image.format, image.mode, image.width, image.height
  except Image.DecompressionBombError:
    return 'too many pixels'
  except (OSError, ValueError, SyntaxError) as e:
    return 'not an image' if isinstance(e, Image.UnidentifiedImageError) else f'unreadable: {e}'


@dataclasses.dataclass
class FolderScan:
  """What is in a folder dataset.

  Attributes:
    pattern: the glob that was searched.
    paths: the files that decode, sorted.
    headers: (format, mode, width, height) of each of `paths`.
    bad: [(path, why)] of the files matching the pattern that cannot be trained on.
  """
  pattern: str
  paths: list
  headers: list
  bad: list

  @property
  def channels(self):
    return 1 if all(h[1] in GRAYSCALE_MODES for h in self.headers) else 3

  def too_small(self, config):
    """The images smaller than the crop, as [(path, width, height)]."""
    if not config.crop:
      return []
    return [(p, w, h) for p, (_, _, w, h) in zip(self.paths, self.headers)
            if w < config.input_width or h < config.input_height]

  def bad_summary(self, limit=3):
    return '; '.join(f'{path} ({why})' for path, why in self.bad[:limit]) + ('; ...' if len(self.bad) > limit
                                                                             else '')


def _matching_files(folder, pattern):
  paths = sorted(p for p in glob.glob(os.path.join(glob.escape(folder), pattern)) if os.path.isfile(p))
  if not paths:
    others = sorted(os.listdir(folder))
    hint = f'; it holds {len(others)} other entries, e.g. {others[0]!r}' if others else '; the folder is empty'
    raise UserError(f'no file matches {os.path.join(folder, pattern)}{hint} (set --input_fname_pattern)')
  return paths


def scan_folder(folder, config, cache_dir=None):
  """Reads the header of every matching file, then decodes each one as training will, to find the bad ones.

  Args:
    folder: the dataset folder.
    config: a config.Config; reads input_fname_pattern and the crop and output sizes.
    cache_dir: where to remember the files that failed to decode, keyed by the files' names, sizes and times,
      so that a resumed run does not decode every image again; None to always decode.

  Returns:
    A FolderScan.

  Raises:
    UserError: no file matches the pattern.
  """
  paths = _matching_files(folder, config.input_fname_pattern)
  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    headers = list(pool.map(_header, paths))
  bad = [(p, h) for p, h in zip(paths, headers) if isinstance(h, str)]
  good = [(p, h) for p, h in zip(paths, headers) if not isinstance(h, str)]
  scan = FolderScan(os.path.join(folder, config.input_fname_pattern), [p for p, _ in good], [h for _, h in good],
                    bad)
  if scan.paths:
    # Images smaller than the crop are an error of their own; check their pixels without cropping.
    decode_config = dataclasses.replace(config, crop=False) if scan.too_small(config) else config
    undecodable = _undecodable(scan.paths, scan.channels, decode_config, cache_dir)
    if undecodable:
      keep = [i for i, p in enumerate(scan.paths) if p not in undecodable]
      scan = FolderScan(scan.pattern, [scan.paths[i] for i in keep], [scan.headers[i] for i in keep],
                        sorted(bad + list(undecodable.items())))
  return scan


def _fingerprint(paths, channels, config):
  digest = hashlib.sha256(repr((channels, config.crop, config.input_height, config.input_width,
                                config.output_height, config.output_width)).encode())
  for path in paths:
    stat = os.stat(path)
    digest.update(f'{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n'.encode())
  return digest.hexdigest()


def _undecodable(paths, channels, config, cache_dir):
  """{path: why} of the files that TensorFlow's decoder (the one training uses) rejects."""
  cache = os.path.join(cache_dir, DECODE_CHECK_FILE) if cache_dir else None
  fingerprint = _fingerprint(paths, channels, config)
  if cache and os.path.exists(cache):
    try:
      with open(cache) as f:
        saved = json.load(f)
      if saved.get('fingerprint') == fingerprint:
        return dict(saved['undecodable'])
    except (OSError, ValueError, KeyError, TypeError):
      pass  # an unreadable cache only costs the time to decode again
  logging.info('decoding %d images once to find corrupt ones%s', len(paths),
               f' (remembered in {cache})' if cache else '')
  # reduce_max reads every pixel: a static-shape result would let TensorFlow skip the decode altogether
  data = tf.data.Dataset.from_tensor_slices(list(paths)).map(
      lambda path: (path, tf.reduce_max(_decode(path, channels, config))), num_parallel_calls=os.cpu_count() or 2)
  with utils.quiet_stderr():  # libjpeg and TensorFlow print a line or two for every broken file
    decoded = {path.decode() for path, _ in data.ignore_errors().as_numpy_iterator()}
    undecodable = {path: _decode_error(path, channels, config) for path in paths if path not in decoded}
  if cache:
    text = json.dumps({'fingerprint': fingerprint, 'undecodable': sorted(undecodable.items())})
    utils.write_text(cache, text)
  return undecodable


def cache_images(dataset, config, cache_dir):
  """Decodes a folder dataset once into cache_dir/image_cache.npy and trains from that file from then on (--cache).

  The file holds every image as training sees it (decoded, cropped, resized), in the order of `dataset.paths`,
  and is memory-mapped, so it need not fit in memory. image_cache.json beside it records the files' names, sizes
  and times and the crop and output sizes: when any of them changes, the cache is made again.

  Args:
    dataset: a Dataset from load(); one already in memory (IDX) is returned as it is.
    config: a config.Config; reads the crop and output sizes.
    cache_dir: the folder of the cache (the run's checkpoint folder).

  Returns:
    A Dataset whose `images` are uint8 [count, output_height, output_width, channels], memory-mapped.

  Raises:
    UserError: the cache could not be written (a full disk); nothing partial is left behind.
  """
  if dataset.paths is None:
    return dataset
  path, key_path = os.path.join(cache_dir, IMAGE_CACHE_FILE), os.path.join(cache_dir, IMAGE_CACHE_KEY)
  key = {'fingerprint': _fingerprint(dataset.paths, dataset.channels, config),
         'shape': [len(dataset), config.output_height, config.output_width, dataset.channels]}
  images = _open_image_cache(path, key_path, key)
  if images is None:
    _write_image_cache(dataset, config, path, key_path, key)
    images = np.load(path, mmap_mode='r')
  return Dataset(dataset.name, channels=dataset.channels, images=images)


def _open_image_cache(path, key_path, key):
  try:
    with open(key_path) as f:
      if json.load(f) != key:
        logging.info('the images or sizes changed since %s was made: making it again', path)
        return None
    images = np.load(path, mmap_mode='r')
  except (OSError, ValueError):
    return None  # none yet, or unreadable: made again
  if list(images.shape) != key['shape'] or images.dtype != np.uint8:
    return None
  logging.info('reading the %d decoded images from %s (--cache)', len(images), path)
  return images


def _write_image_cache(dataset, config, path, key_path, key):
  logging.info('decoding %d images once into %s (--cache)', len(dataset), path)
  data = _decoded(list(dataset.paths), dataset.channels, config)
  temporary = path + '.tmp'
  try:
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    # Plain writes, not a writable memmap: a full disk must raise ENOSPC here, not SIGBUS on a page later.
    with open(temporary, 'wb') as f, tqdm(total=len(dataset), unit='image', desc='caching',
                                          disable=None, leave=False) as bar:
      np.lib.format.write_array_header_2_0(f, {'descr': '|u1', 'fortran_order': False,
                                               'shape': tuple(key['shape'])})
      for batch in data.batch(256).prefetch(2).as_numpy_iterator():
        f.write(batch.tobytes())
        bar.update(len(batch))
    os.replace(temporary, path)
    utils.write_text(key_path, json.dumps(key))
  except OSError as e:
    if os.path.exists(path):
      os.remove(path)
    raise UserError(f'could not write the image cache {path}: {e.strerror or e}; free some space or train '
                    'without --cache') from None
  except tf.errors.OpError as e:  # a file changed after it was checked
    raise UserError(f'could not decode an image while making {path}: {_decode_error_text(e)}; run again to '
                    'check the files anew') from None
  finally:
    if os.path.exists(temporary):  # interrupted or failed: nothing half-written stays
      os.remove(temporary)


def _decode_error(path, channels, config):
  try:
    _decode(tf.constant(path), channels, config)
  except tf.errors.OpError as e:
    return f'corrupt or truncated: {_decode_error_text(e)}'
  return 'could not be decoded'


def _decode_error_text(error):
  """The first line of a decode OpError, without TensorFlow's function and op annotations."""
  message = (error.message or type(error).__name__).strip().splitlines()[0]
  return re.sub(r'\s*\[Op:.*$', '', re.sub(r'^\{\{[^}]*\}\}\s*', '', message))


def _find_or_render(config):
  """The dataset folder, rendering a built-in dataset into it first when needed."""
  folder = os.path.join(config.data_dir, config.dataset)
  if config.dataset in BUILTIN and not is_idx_folder(folder):
    logging.info('rendering the built-in %s dataset into %s (once)', config.dataset, folder)
    os.makedirs(folder, exist_ok=True)
    images, labels = digits.make_digits(digits.DIGITS_COUNT)
    write_idx(os.path.join(folder, IDX_PAIRS[0][1] + '.gz'), labels)
    write_idx(os.path.join(folder, IDX_PAIRS[0][0] + '.gz'), images)
  if not os.path.isdir(folder):
    raise UserError(f'no dataset folder {folder}: {_how_to_get(config.dataset)}')
  return folder


def load(config, strict=False, cache_dir=None):
  """Finds, checks and loads the dataset that `config` names.

  Files that match the pattern but are not images, or are corrupt or truncated, are skipped with one warning
  that counts them (an error with `strict`).

  Args:
    config: a config.Config; reads dataset, data_dir, input_fname_pattern, crop, input_height,
      input_width, output_height, output_width.
    strict: make any bad file an error.
    cache_dir: see scan_folder.

  Returns:
    A Dataset.

  Raises:
    UserError: the folder is missing or empty, no file matches the pattern or none is a readable image, the
      crop is larger than some images, IDX files are malformed, or (with `strict`) a file is bad.
  """
  folder = _find_or_render(config)
  if is_idx_folder(folder):
    images, labels = load_idx_folder(folder)
    images = _resize_all(images, config.output_height, config.output_width)[..., np.newaxis]
    return Dataset(config.dataset, channels=1, num_classes=int(labels.max()) + 1, images=images,
                   labels=labels)
  scan = scan_folder(folder, config, cache_dir)
  total = len(scan.paths) + len(scan.bad)
  if not scan.paths:
    raise UserError(f'none of the {total} files matching {scan.pattern} is a readable image: {scan.bad_summary()}')
  if scan.bad and strict:
    raise UserError(f'{len(scan.bad)} of the {total} files matching {scan.pattern} cannot be read as images '
                    f'(--strict): {scan.bad_summary()}')
  small = scan.too_small(config)
  if small:
    path, width, height = small[0]
    raise UserError(f'--crop {config.input_height}x{config.input_width} is larger than {len(small)} of '
                    f'{len(scan.paths)} images, e.g. {path} ({height}x{width}); '
                    'lower --input_height/--input_width or drop --crop')
  if scan.bad:
    logging.warning('skipping %d of %d files matching %s that cannot be read as images (--strict to stop '
                    'instead): %s', len(scan.bad), total, scan.pattern, scan.bad_summary())
  return Dataset(config.dataset, channels=scan.channels, paths=tuple(scan.paths))


@dataclasses.dataclass
class Report:
  """What --check_data found; `lines` is the printed report, `problems` what stops training."""
  lines: list
  problems: list
  bad: int = 0

  def text(self):
    return '\n'.join(self.lines)


def _most_common(counter, limit=5):
  return ', '.join(f'{key} x{count}' for key, count in counter.most_common(limit)) + (
      f', {len(counter) - limit} more' if len(counter) > limit else '')


def check(config):
  """--check_data: reads every file of the dataset and describes it, without training.

  Returns:
    A Report.

  Raises:
    UserError: the folder is missing, or no file matches the pattern.
  """
  folder = _find_or_render(config)
  if is_idx_folder(folder):
    try:
      images, labels = load_idx_folder(folder)
    except UserError as e:
      return Report([f'{folder}: MNIST-style IDX files', f'  problem: {e}'], [str(e)])
    histogram = collections.Counter(labels.tolist())
    return Report([f'{folder}: MNIST-style IDX files, {len(images)} grayscale images of '
                   f'{images.shape[1]}x{images.shape[2]}',
                   f'  labels: {len(histogram)} classes: ' +
                   ', '.join(f'{k} x{v}' for k, v in sorted(histogram.items()))], [])
  scan = scan_folder(folder, config)
  lines = [f'{scan.pattern}: {len(scan.paths) + len(scan.bad)} files, {len(scan.paths)} readable images, '
           f'{len(scan.bad)} bad']
  if scan.paths:
    lines += [f'  formats: {_most_common(collections.Counter(h[0] for h in scan.headers))}',
              f'  modes: {_most_common(collections.Counter(h[1] for h in scan.headers))} -> trained as '
              f'{"grayscale (1 channel)" if scan.channels == 1 else "RGB (3 channels)"}',
              f'  sizes (height x width): '
              f'{_most_common(collections.Counter(f"{h[3]}x{h[2]}" for h in scan.headers))}']
  problems = []
  if scan.bad:
    lines.append('  bad files (skipped when training, fatal with --strict):')
    lines += [f'    {path}: {why}' for path, why in scan.bad[:20]]
    lines += [f'    ... and {len(scan.bad) - 20} more'] if len(scan.bad) > 20 else []
  if not scan.paths:
    problems.append('no file is a readable image')
  small = scan.too_small(config)
  if small:
    problems.append(f'--crop {config.input_height}x{config.input_width} is larger than {len(small)} images, '
                    f'e.g. {small[0][0]} ({small[0][2]}x{small[0][1]})')
  lines += [f'  problem: {problem}' for problem in problems]
  return Report(lines, problems, bad=len(scan.bad))


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


def _decoded(paths, channels, config):
  """A tf.data.Dataset of the images of `paths` (a list or a string tensor) decoded by _decode, in order, one
  decode per core at a time."""
  return tf.data.Dataset.from_tensor_slices(paths).map(lambda path: _decode(path, channels, config),
                                                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def read_images(dataset, config, indices):
  """The images `indices` of a dataset as training sees them.

  Args:
    dataset: a Dataset.
    config: a config.Config; reads the crop and output sizes.
    indices: int [n].

  Returns:
    uint8 [n, output_height, output_width, channels].

  Raises:
    UserError: a file could not be decoded (it changed since it was checked).
  """
  if dataset.images is not None:
    return np.asarray(dataset.images[np.asarray(indices)])
  paths = [dataset.paths[i] for i in indices]
  try:
    return np.concatenate(list(_decoded(paths, dataset.channels, config).batch(256).as_numpy_iterator()))
  except tf.errors.OpError as e:
    raise UserError(f'could not decode an image of {dataset.name}: {_decode_error_text(e)}; run again to check '
                    'the files anew') from None


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
  if dataset.images is not None:  # in memory, or memory-mapped from an --cache file: gather each batch by index
    indices = tf1.placeholder(tf.int64, [None], name='epoch_indices')
    labels = dataset.labels if dataset.labels is not None else np.zeros(len(dataset), np.int32)

    def gather(batch):
      images, batch_labels = tf.numpy_function(lambda i: (dataset.images[i], labels[i]), [batch],
                                               (tf.uint8, tf.int32), stateful=False)
      images.set_shape([config.batch_size] + list(dataset.images.shape[1:]))
      batch_labels.set_shape([config.batch_size])
      return images, batch_labels

    data = tf.data.Dataset.from_tensor_slices(indices).batch(config.batch_size, drop_remainder=True)
    data = data.map(gather)
    feed = lambda order: {indices: order}
  else:
    paths = tf1.placeholder(tf.string, [None], name='epoch_files')
    data = _decoded(paths, dataset.channels, config).map(lambda image: (image, tf.constant(0, tf.int32)))
    data = data.batch(config.batch_size, drop_remainder=True)
    all_paths = np.asarray(dataset.paths)
    feed = lambda order: {paths: all_paths[order]}
  # AUTOTUNE above picks the map's parallelism (one call per core); the autotuner itself stays off: its
  # background thread held up closing the session by 5.5 s after a 76 s run (0.002 s without it), and the
  # decode already runs 200x faster than the rgb64 step consumes (bench/throughput.py).
  options = tf.data.Options()
  options.autotune.enabled = False
  data = data.prefetch(2).with_options(options)
  iterator = tf1.data.make_initializable_iterator(data)
  batch_images, batch_labels = iterator.get_next()
  return InputPipeline(images=batch_images, labels=batch_labels if dataset.num_classes else None,
                       initializer=iterator.initializer, feed=feed)
