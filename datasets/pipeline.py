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

InputPipeline = collections.namedtuple('InputPipeline', 'images labels positions initializer feed')
"""images: uint8 [batch, height, width, channels] from the iterator; labels: int32 [batch] or None; positions: int64
[batch], where in the epoch's stream each image was (see make_pipeline); initializer: the op that starts an epoch;
feed: feed(order, start) -> feed_dict for it."""


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


def _readable(stream, source):
  """`stream` of (position, index) without the entries source.bad knows (an index i + len(source) is entry i)."""
  if not source.bad:
    return stream
  bad = tf.constant(sorted(source.bad), tf.int64)
  count = len(source)

  def readable(position, index):
    del position
    entry = index % count
    at = tf.minimum(tf.searchsorted(bad, entry[None])[0], tf.size(bad) - 1)
    return tf.not_equal(bad[at], entry)

  return stream.filter(readable)


def examples(source, stream, config, batch_size, drop_remainder):
  """The batches of the entries that `stream` lists, in its order, without those that cannot be read.

  Args:
    source: a Source.
    stream: a tf.data.Dataset of (position, index), int64 scalars: index i + len(source) is entry i (x-flipped in
      training), and the position goes along with the image (what make_pipeline counts skipped entries by).
    config: a config.Config; reads the crop and output sizes.
    batch_size, drop_remainder: how the images are batched.

  Returns:
    A tf.data.Dataset of (images uint8 [batch, h, w, c] at the output size, labels int32 [batch], positions int64
    [batch], indices int64 [batch]) that leaves out the entries in source.bad and those whose decoding (or crop)
    fails: no error stops it.
  """
  count = len(source)
  labels = source.labels if source.labels is not None else np.zeros(count, np.int32)
  stream = _readable(stream, source)
  if source.images is not None:  # decoded: gather each batch by index
    def gather(positions, indices):
      images, batch_labels = tf.numpy_function(lambda i: (source.images[i % count], labels[i % count]), [indices],
                                               (tf.uint8, tf.int32), stateful=False)
      images.set_shape([None] + list(source.images.shape[1:]))
      batch_labels.set_shape([None])
      return images, batch_labels, positions, indices

    return stream.batch(batch_size, drop_remainder=drop_remainder).map(gather)

  def fetch(positions, indices):
    fetched, batch_labels = tf.numpy_function(lambda i: (source.fetch(i % count), labels[i % count]), [indices],
                                              (tf.string, tf.int32), stateful=False)
    return fetched, batch_labels, positions, indices

  def decoded(fetched, label, position, index):
    image = fit(decode(source.tf_encoded(fetched), source.channels), config)
    return tf.ensure_shape(image, [config.output_height, config.output_width, source.channels]), label, position, index

  data = stream.batch(FETCH_BATCH).map(fetch).unbatch()
  # (an entry that fails is left out, in place: the order of the others does not change)
  data = data.map(decoded, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors()
  return data.batch(batch_size, drop_remainder=drop_remainder)


def listed(indices):
  """The stream of examples() for `indices`: each one's position is its place in the list."""
  indices = np.asarray(indices, np.int64)
  return tf.data.Dataset.from_tensor_slices((np.arange(len(indices), dtype=np.int64), indices))


def decode_error_text(error):
  """What a decode OpError says, in one line: its first line, without TensorFlow's function and op annotations
  (and, from a session, without the lines that say where the failing node was defined)."""
  lines = (error.message or type(error).__name__).strip().splitlines()
  if lines[0].startswith('Graph execution error'):
    lines = [line for line in lines[1:] if line.strip() and not re.match(r"\s*(Detected at node|File |Node: ')", line)]
  message = lines[0] if lines else type(error).__name__
  return re.sub(r'\s*\[Op:.*$', '', re.sub(r'^\{\{[^}]*\}\}\s*', '', message))


def read_images(source, config, indices, skip=False):
  """The images `indices` of a dataset as training sees them.

  Args:
    source: a Source.
    config: a config.Config; reads the crop and output sizes.
    indices: int [n].
    skip: leave out the entries that cannot be read, instead of raising.

  Returns:
    uint8 [n, output_height, output_width, channels]; with `skip`, (those of the readable entries, their indices).

  Raises:
    UserError: (without `skip`) an entry cannot be read as an image.
  """
  indices = np.asarray(indices, np.int64)
  shape = (0, config.output_height, config.output_width, source.channels)
  batches = list(examples(source, listed(indices), config, 256, False).as_numpy_iterator())
  images = np.concatenate([b[0] for b in batches]) if batches else np.zeros(shape, np.uint8)
  positions = np.concatenate([b[2] for b in batches]) if batches else np.zeros(0, np.int64)
  if skip:
    return images, indices[positions]
  if len(positions) < len(indices):
    first = int(np.setdiff1d(np.arange(len(indices)), positions)[0])
    raise UserError(f'could not read {source.entry_name(indices[first])} as an image: run again to check the '
                    'entries anew')
  return images


def sample_images(source, config, count, rng):
  """`count` readable images of a dataset chosen at random by `rng` (fewer if it has fewer), as training sees them.

  Returns:
    (uint8 [count, output_height, output_width, channels] in the random order, their indices).
  """
  count = min(count, len(source))
  batch, left = rng.choice(len(source), count, replace=False), None
  images = [np.zeros((0, config.output_height, config.output_width, source.channels), np.uint8)]
  chosen, got = [np.zeros(0, np.int64)], 0
  while len(batch):
    read, indices = read_images(source, config, np.sort(batch), skip=True)  # in index order: memory maps, files
    at = {int(i): k for k, i in enumerate(indices)}
    keep = [at[int(i)] for i in batch if int(i) in at]  # back in the random order
    images.append(read[keep])
    chosen.append(indices[keep])
    got += len(keep)
    if left is None and got < count:  # some could not be read: the others in a random order, for more
      left = rng.permutation(np.setdiff1d(np.arange(len(source)), batch))
    batch, left = (left[:count - got], left[count - got:]) if got < count else (batch[:0], left)
  return np.concatenate(images), np.concatenate(chosen)


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

  An epoch starts by running `initializer` with `feed(order, start)`: `order` lists the dataset indices of the
  epoch (epoch_order(); with config.mirror an index i + len(source) is image i x-flipped), and the epoch's stream
  is that order and then the order again, from its position `start` on (0, or where the checkpoint's last batch
  ended). An entry that cannot be read is left out of its batch, which takes the next one instead, so the others
  keep their order; each image's position comes with it (`positions`), so the trainer sees the gaps (the entries
  skipped) and knows where to resume. The second pass only serves an epoch that skipped more entries than it
  left over. Batches are cut with drop_remainder: every batch has exactly `config.batch_size` images.

  Args:
    source: a Source.
    config: a config.Config; reads batch_size, crop sizes and output sizes.

  Returns:
    An InputPipeline.
  """
  order = tf1.placeholder(tf.int64, [None], name='epoch_order')
  start = tf1.placeholder(tf.int64, [], name='epoch_start')
  length = tf.size(order, out_type=tf.int64)
  stream = tf.data.Dataset.range(start, 2 * length).batch(FETCH_BATCH)
  stream = stream.map(lambda positions: (positions, tf.gather(order, positions % length))).unbatch()
  count = len(source)
  data = examples(source, stream, config, config.batch_size, True)
  if config.mirror:  # (epoch_order's index i + count: image i, x-flipped)
    data = data.map(lambda images, labels, positions, indices: (
        tf.where((indices >= count)[:, None, None, None], tf.reverse(images, axis=[2]), images), labels, positions))
  else:
    data = data.map(lambda images, labels, positions, indices: (images, labels, positions))
  # AUTOTUNE above picks the decode's parallelism (one call per core); the autotuner itself stays off: its
  # background thread held up closing the session by 5.5 s after a 76 s run (0.002 s without it), and the
  # decode already runs 200x faster than the rgb64 step consumes (bench/throughput.py).
  options = tf.data.Options()
  options.autotune.enabled = False
  data = data.prefetch(2).with_options(options)
  iterator = tf1.data.make_initializable_iterator(data)
  batch_images, batch_labels, positions = iterator.get_next()
  batch_images.set_shape([config.batch_size, config.output_height, config.output_width, source.channels])
  batch_labels.set_shape([config.batch_size])  # (the labels of encoded sources come through numpy_function)
  positions.set_shape([config.batch_size])
  return InputPipeline(images=batch_images, labels=batch_labels if source.num_classes else None, positions=positions,
                       initializer=iterator.initializer, feed=lambda indices, first: {order: indices, start: first})
