"""The tf.data input pipeline: decoding, the crop and resize to the output size, batches in an epoch's order.

$ python main.py --train --dataset celebA --crop
"""

import collections
import re

import numpy as np
import tensorflow as tf

from errors import UserError

tf1 = tf.compat.v1

FETCH_BATCH = 256  # encoded images fetched per Python call in the pipeline

InputPipeline = collections.namedtuple('InputPipeline', 'images labels initializer feed')
"""images: uint8 [batch, height, width, channels] from the iterator; labels: int32 [batch] or None;
initializer: the op that starts an epoch; feed: feed(order) -> feed_dict for it."""


def decode(encoded, channels):
  """Encoded image bytes -> uint8 [height, width, channels], the first frame of an animation."""
  image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
  return tf.image.rgb_to_grayscale(image) if channels == 1 else image


def fit(image, config):
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


def examples(source, indices, config, batch_size, drop_remainder):
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

  def decoded(fetched, label):
    image = fit(decode(source.tf_encoded(fetched), source.channels), config)
    return tf.ensure_shape(image, [config.output_height, config.output_width, source.channels]), label

  data = indices.batch(FETCH_BATCH).map(fetch).unbatch()
  data = data.map(decoded, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return data.batch(batch_size, drop_remainder=drop_remainder)


def decode_error_text(error):
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
    batches = [images for images, _ in examples(source, indices, config, 256, False).as_numpy_iterator()]
  except tf.errors.OpError as e:
    raise UserError(f'could not decode an image of {source.name}: {decode_error_text(e)}; run again to check '
                    'the entries anew') from None
  return np.concatenate(batches)


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
  data = examples(source, positions.map(lambda i: i % count), config, config.batch_size, True)
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
