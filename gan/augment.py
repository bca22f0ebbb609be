"""Differentiable augmentation (DiffAugment, Zhao et al. 2020): the same kind of random change to every image D
sees, real and generated, in D's updates and in G's, so that D cannot memorize a small dataset and G's gradient
still flows through the change.

Policies (mit-han-lab/data-efficient-gans), each drawn per image:
- color: brightness + U(-0.5, 0.5); saturation: the distance from the image's grey x U(0, 2); contrast: the
  distance from the image's mean x U(0.5, 1.5).
- translation: a shift of up to 1/8 of the side in each direction, the uncovered pixels zero.
- cutout: one zero square of half the side, at a random place (it may hang over the edge).
The random numbers are stateless, drawn from a seed that the trainer feeds from --seed and the step, so that a
resumed run augments exactly as one that never stopped.

$ python main.py --train --dataset faces --augment color,translation,cutout
"""

import tensorflow as tf

from config import augment_policies, AUGMENT_POLICIES

POLICIES = AUGMENT_POLICIES
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5
parse = augment_policies  # 'color,translation' -> ('color', 'translation'); 'none' -> ()


def _uniform(seed, salt, shape, low=0.0, high=1.0):
  return tf.random.stateless_uniform(shape, seed=seed + tf.constant([0, salt], tf.int64), minval=low, maxval=high)


def _color(images, seed):
  batch = tf.shape(images)[0]
  per_image = lambda salt, low, high: _uniform(seed, salt, [batch, 1, 1, 1], low, high)
  images = images + per_image(1, -0.5, 0.5)  # brightness
  grey = tf.reduce_mean(images, axis=3, keepdims=True)
  images = (images - grey) * per_image(2, 0.0, 2.0) + grey  # saturation
  mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
  return (images - mean) * per_image(3, 0.5, 1.5) + mean  # contrast


def _shift(images, shifts, axis):
  """Each image moved by its own whole number of pixels along `axis` (1: rows, 2: columns), zeros coming in."""
  size = images.shape[axis]
  source = tf.range(size)[None, :] - shifts[:, None]  # [batch, size]: the pixel each one comes from
  inside = tf.cast((source >= 0) & (source < size), images.dtype)
  moved = tf.gather(images, tf.clip_by_value(source, 0, size - 1), axis=axis, batch_dims=1)
  mask_shape = [-1, size, 1, 1] if axis == 1 else [-1, 1, size, 1]
  return moved * tf.reshape(inside, mask_shape)


def _translation(images, seed):
  batch = tf.shape(images)[0]
  for axis, salt in ((1, 4), (2, 5)):
    reach = int(images.shape[axis] * TRANSLATION_RATIO + 0.5)
    shifts = tf.random.stateless_uniform([batch], seed=seed + tf.constant([0, salt], tf.int64), minval=-reach,
                                         maxval=reach + 1, dtype=tf.int32)
    images = _shift(images, shifts, axis)
  return images


def _cutout(images, seed):
  batch = tf.shape(images)[0]
  height, width = images.shape[1], images.shape[2]
  size_h, size_w = int(height * CUTOUT_RATIO + 0.5), int(width * CUTOUT_RATIO + 0.5)
  masks = []
  for length, size, salt in ((height, size_h, 6), (width, size_w, 7)):
    centre = tf.random.stateless_uniform([batch, 1], seed=seed + tf.constant([0, salt], tf.int64), minval=0,
                                         maxval=length + (1 - size % 2), dtype=tf.int32)
    start = centre - size // 2
    positions = tf.range(length)[None, :]
    masks.append((positions >= start) & (positions < start + size))  # [batch, length]
  inside = masks[0][:, :, None] & masks[1][:, None, :]  # [batch, height, width]
  return images * tf.cast(~inside, images.dtype)[:, :, :, None]


_OPS = {'color': _color, 'translation': _translation, 'cutout': _cutout}


def apply(images, policies, seed):
  """The augmentations `policies` (from parse()) of a batch, each drawn per image from `seed`.

  Args:
    images: float [batch, height, width, channels] in [-1, 1] (static height and width).
    policies: a tuple of POLICIES names, in the order to apply them; () returns `images` as they are.
    seed: int64 [2], a stateless seed; the same seed gives the same augmentation.

  Returns:
    float images of the same shape, differentiable with respect to `images`.
  """
  for name in policies:
    images = _OPS[name](images, seed)
  return images
