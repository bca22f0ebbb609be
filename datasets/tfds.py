"""TensorFlow Datasets: --dataset tfds:NAME[/CONFIG], its train split, decoded once into the image cache.

$ python main.py --train --dataset tfds:cifar10
"""

import difflib
import os

import requests
import tensorflow as tf
from absl import logging

from config import TFDS_PREFIX
from downloads import transfer
from errors import UserError, first_line

from . import cache, pipeline
from .source import PixelSource, channels_text


def _not_tfds_noise(record):
  return 'TensorInfo.dtype` is deprecated' not in record.getMessage()  # TFDS 4.9.10 says it for every feature


def import_tfds():
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
  PREFIX = TFDS_PREFIX
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
    tfds = import_tfds()
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
           **cache.fit_key(config)}
    path = os.path.join(cache.image_cache_folder(cache_dir, config), cache.IMAGE_CACHE_FILE)
    cached = cache.open_image_cache(path, key)
    if cached is None:
      try:
        builder.download_and_prepare()
        data = builder.as_dataset(split=cls.SPLIT, shuffle_files=False)
      except Exception as e:  # pylint: disable=broad-except; TFDS raises anything from a failed download
        why = transfer.reason_of(e) if isinstance(e, requests.exceptions.RequestException) else first_line(e)
        raise UserError(f'TensorFlow Datasets could not download or prepare tfds:{builder.info.full_name}: {why} '
                        f'(it works in {builder.data_dir})') from None

      def fit(example):
        pixels = example[image]
        if channels == 3:  # grey or grey and alpha -> RGB; RGBA -> RGB (the feature may not say which it holds)
          pixels = tf.cond(tf.shape(pixels)[-1] < 3, lambda: tf.tile(pixels[..., :1], [1, 1, 3]),
                           lambda: pixels[..., :3])
        return pipeline.fit(pixels, config), tf.cast(example[label], tf.int32) if label else tf.constant(0, tf.int32)

      logging.info('decoding tfds:%s once into %s', builder.info.full_name, path)
      cache.write_image_cache(data.map(fit, num_parallel_calls=tf.data.AUTOTUNE), path, key, with_labels=bool(label),
                              shape=(config.output_height, config.output_width, channels))
      cached = cache.open_image_cache(path, key)
    images, labels, _ = cached
    names = builder.info.features[label].names if label else None  # ('0', ..., '9'); CIFAR-10: ('airplane', ...)
    source = cls(config.dataset, images, labels if label else None, num_classes, names)
    source.info = builder.info
    return source

  def describe(self):
    return [f'{self.name}: {self.kind} {self.info.full_name}, split {self.SPLIT}: {len(self)} images, '
            f'{channels_text(self.channels)}, kept at {self.images.shape[1]}x{self.images.shape[2]}']
