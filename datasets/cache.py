"""--cache (and TFDS, always): the images decoded once, cropped and resized, into a memory-mapped file per output
size and crop, in the dataset's cache folder, remade when the data or the sizes change.

$ python main.py --train --dataset celebA --crop --cache
"""

import json
import os
import struct

import numpy as np
import tensorflow as tf
from absl import logging

import utils
from errors import UserError

from . import pipeline
from .source import PixelSource

IMAGE_CACHE_FILE = 'image_cache.npy'  # --cache and TFDS: the images decoded, cropped and resized, in order
IMAGE_CACHE_LABELS = 'image_cache_labels.npy'
IMAGE_CACHE_KEY = 'image_cache.json'  # what they were made from


def fit_name(config):
  """The output size and crop in a file name: '64x64', '64x64_crop', '64x64_crop108x108'."""
  name = f'{config.output_height}x{config.output_width}'
  if config.crop:
    name += '_crop' + (f'{config.input_height}x{config.input_width}' if config.input_height else '')
  return name


def image_cache_folder(cache_dir, config):
  """Where the images decoded at one output size and crop are kept (--cache, TFDS): cache_dir/images_<fit_name>."""
  return os.path.join(cache_dir, f'images_{fit_name(config)}')


def fit_key(config):
  """What the images of a --cache file depend on beside the data."""
  return {'crop': config.crop, 'input_height': config.input_height, 'input_width': config.input_width,
          'output_height': config.output_height, 'output_width': config.output_width}


def _npy_header(shape, size=128):
  """An .npy (version 2.0) header for uint8 `shape`, always `size` bytes, so it can be rewritten in place."""
  text = repr({'descr': '|u1', 'fortran_order': False, 'shape': tuple(shape)})
  return b'\x93NUMPY\x02\x00' + struct.pack('<I', size - 12) + text.ljust(size - 13).encode('latin1') + b'\n'


def _save_npy(path, array):
  with open(path, 'wb') as f:
    np.save(f, array)


def open_image_cache(path, key):
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


def write_image_cache(data, path, key, with_labels, shape, total=None):
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
    raise UserError(f'could not decode an image while making {path}: {pipeline.decode_error_text(e)}; run again to '
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
  key = {'fingerprint': source.fingerprint(), 'count': len(source), 'channels': source.channels, **fit_key(config)}
  cached = open_image_cache(path, key)
  if cached is None:
    logging.info('decoding %d images once into %s (--cache)', len(source), path)
    indices = tf.data.Dataset.from_tensor_slices(np.arange(len(source), dtype=np.int64))
    write_image_cache(pipeline.examples(source, indices, config, 256, False).unbatch(), path, key,
                       with_labels=source.labels is not None,
                       shape=(config.output_height, config.output_width, source.channels), total=len(source))
    cached = open_image_cache(path, key)
  images, labels = cached
  return PixelSource(source.name, images, labels, source.num_classes, source.class_names)
