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

from common import disk
from common import progress
from errors import UserError

from . import pipeline
from .source import PixelSource

IMAGE_CACHE_FILE = 'image_cache.npy'  # --cache and TFDS: the images decoded, cropped and resized, in order
IMAGE_CACHE_LABELS = 'image_cache_labels.npy'
IMAGE_CACHE_BAD = 'image_cache_bad.npy'  # the entries that could not be decoded: black in the cache, skipped
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
  """(images uint8 memory-mapped, labels int32 or None, the indices of the unreadable entries) of the cache at
  `path` if it was made from `key`, else None."""
  folder = os.path.dirname(path)
  try:
    with open(os.path.join(folder, IMAGE_CACHE_KEY)) as f:
      if json.load(f) != key:
        logging.info('the data or sizes changed since %s was made: making it again', path)
        return None
    images = np.load(path, mmap_mode='r')
    labels_path, bad_path = os.path.join(folder, IMAGE_CACHE_LABELS), os.path.join(folder, IMAGE_CACHE_BAD)
    labels = np.load(labels_path) if os.path.exists(labels_path) else None
    bad = np.load(bad_path) if os.path.exists(bad_path) else np.zeros(0, np.int64)
  except (OSError, ValueError):
    return None  # none yet, or unreadable: made again
  if images.dtype != np.uint8 or images.ndim != 4 or labels is not None and len(labels) != len(images):
    return None
  logging.info('reading the %d decoded images from %s', len(images), path)
  return images, labels, bad


def write_image_cache(data, path, key, with_labels, shape, total=None, indexed=False):
  """Writes the elements of the tf.data.Dataset `data` to the cache at `path`, then its key.

  Args:
    data: (image, label) elements; (image, label, index) when `indexed`.
    path, key: the cache file, and what it is made from (image_cache.json, written last).
    with_labels: write the labels too.
    shape: (height, width, channels) of an image.
    total: the elements expected, for the progress line.
    indexed: an index that `data` skips (up to `total`) is an entry that could not be read: its image is left
      black, and it is listed in image_cache_bad.npy.

  Raises:
    UserError: it could not be written (a full disk), or a TFDS record could not be read; nothing partial is left.
  """
  folder = os.path.dirname(path) or '.'
  temporary = disk.temporary_name(path)
  labels, bad = [], []
  try:
    os.makedirs(folder, exist_ok=True)
    for name in (IMAGE_CACHE_KEY, IMAGE_CACHE_LABELS, IMAGE_CACHE_BAD):  # the old key goes first: never a stale set
      if os.path.exists(os.path.join(folder, name)):
        os.remove(os.path.join(folder, name))
    # Plain writes, not a writable memmap: a full disk must raise ENOSPC here, not SIGBUS on a page later.
    with open(temporary, 'wb') as f, progress.Meter(total, f'caching {os.path.basename(path)}', unit='image') as meter:
      f.write(_npy_header((0, *shape)))
      count = 0

      def skip_to(index):  # black images (label 0) for the entries that could not be read
        nonlocal count
        bad.extend(range(count, index))
        f.write(bytes(int(np.prod(shape)) * (index - count)))
        labels.append(np.zeros(index - count, np.int32))
        count = index

      for batch in data.batch(256).prefetch(2).as_numpy_iterator():
        images, batch_labels = batch[:2]
        if not indexed:
          f.write(images.tobytes())
          labels.append(batch_labels)
          count += len(images)
        else:
          for image, label, index in zip(*batch):
            skip_to(int(index))
            f.write(image.tobytes())
            labels.append(np.array([label], np.int32))
            count += 1
        meter.update(len(images))
      if indexed and total is not None:
        skip_to(total)
      f.seek(0)
      f.write(_npy_header((count, *shape)))
    if with_labels:
      labels = np.concatenate(labels).astype(np.int32) if labels else np.zeros(0, np.int32)
      disk.write_atomically(os.path.join(folder, IMAGE_CACHE_LABELS), lambda temporary_labels: _save_npy(
          temporary_labels, labels))
    if bad:
      disk.write_atomically(os.path.join(folder, IMAGE_CACHE_BAD), lambda temporary_bad: _save_npy(
          temporary_bad, np.array(bad, np.int64)))
    os.replace(temporary, path)
    disk.write_text(os.path.join(folder, IMAGE_CACHE_KEY), json.dumps(key))
  except OSError as e:
    if os.path.exists(path):
      os.remove(path)
    raise UserError(f'could not write the image cache {path}: {e.strerror or e}; free some space or train '
                    'without --cache') from None
  except tf.errors.OpError as e:  # (TFDS: a record it cannot read)
    raise UserError(f'could not decode an image while making {path}: {pipeline.decode_error_text(e)}') from None
  finally:
    if os.path.exists(temporary):  # interrupted or failed: nothing half-written stays
      os.remove(temporary)


def cache_images(source, config, cache_dir):
  """Decodes an encoded source once into the image cache of cache_dir (image_cache_folder) and trains from that
  file from then on (--cache).

  The file holds every image as training sees it (decoded, cropped, resized), in the source's order, and is
  memory-mapped, so it need not fit in memory; an entry that cannot be decoded stays black in it and is listed as
  bad (training skips it, as it would without --cache). image_cache.json beside it records the source's
  fingerprint and the crop and output sizes: when any of them changes, the cache is made again.

  Args:
    source: a Source from open_dataset(); one already decoded (IDX, TFDS) is returned as it is.
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
    listed = pipeline.examples(source, pipeline.listed(np.arange(len(source))), config, 256, False).unbatch()
    write_image_cache(listed.map(lambda image, label, position, index: (image, label, index)), path, key,
                      with_labels=source.labels is not None,
                      shape=(config.output_height, config.output_width, source.channels), total=len(source),
                      indexed=True)
    cached = open_image_cache(path, key)
  images, labels, bad = cached
  cached = PixelSource(source.name, images, labels, source.num_classes, source.class_names)
  cached.bad = {**{int(i): 'could not be decoded when the --cache file was made' for i in bad}, **source.bad}
  cached.unreadable = source.unreadable  # (epochs as long as without --cache)
  if len(bad):
    logging.warning('%d of the %d entries of %s could not be decoded into the cache: they are skipped',
                    len(bad), len(source), source.name)
  return cached
