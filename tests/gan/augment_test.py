"""gan/augment.py (DiffAugment): each policy does what it says to each image by draws of its own, the same seed
gives the same augmentation, and G learns through the augmented D."""

import numpy as np
import pytest
import tensorflow as tf

from config import Config
from gan import augment
from gan import losses
from gan import stages

tf1 = tf.compat.v1


def _augmented(images, policies, seed):
  with tf.Graph().as_default():
    out = augment.apply(tf.constant(images), policies, tf.constant(seed, tf.int64))
    with tf1.Session() as sess:
      return sess.run(out)


@pytest.fixture(scope='module')
def batch():
  """Eight copies of one 16x12 RGB image in [-1, 1]: any difference between them is the augmentation's."""
  image = np.random.default_rng(0).uniform(-1, 1, (1, 16, 12, 3)).astype(np.float32)
  return np.repeat(image, 8, axis=0)


def test_the_policies_parse_and_a_wrong_one_is_named():
  assert augment.parse('color,translation,cutout') == ('color', 'translation', 'cutout')
  assert augment.parse('none') == augment.parse('') == ()
  with pytest.raises(ValueError, match="--augment 'flip' is not one of color, translation, cutout or none"):
    augment.parse('color,flip')


def test_nothing_to_apply_is_the_identity(batch):
  assert augment.apply(batch, (), None) is batch


def test_translation_moves_each_image_by_its_own_whole_shift_with_zeros_coming_in(batch):
  out = _augmented(batch, ('translation',), [1, 2])
  assert out.shape == batch.shape
  shifts = []
  for image in out:
    found = None
    for dy in range(-2, 3):  # 16 * 1/8 = 2 rows, 12 * 1/8 = 1.5 -> 2 columns
      for dx in range(-2, 3):
        expected = np.zeros_like(batch[0])
        src = batch[0][max(0, -dy):16 - max(0, dy), max(0, -dx):12 - max(0, dx)]
        expected[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
        if np.array_equal(image, expected):
          found = (dy, dx)
    assert found is not None
    shifts.append(found)
  assert len(set(shifts)) > 1  # drawn per image


def test_cutout_zeroes_one_square_of_half_the_side_at_most_and_keeps_the_rest(batch):
  out = _augmented(batch, ('cutout',), [3, 4])
  zeroed = (out == 0).all(axis=3)
  assert np.array_equal(out[~zeroed], batch[~zeroed])  # untouched elsewhere
  counts = zeroed.sum(axis=(1, 2))
  assert counts.max() <= 8 * 6 and counts.min() > 0 and len(set(counts.tolist())) > 1  # some squares hang over


def test_color_is_an_affine_change_of_each_image_of_its_own(batch):
  out = _augmented(batch, ('color',), [5, 6])
  assert np.all(np.isfinite(out)) and np.abs(out).max() < 8
  assert len({round(float(image.mean()), 4) for image in out}) == 8  # each its own brightness and contrast
  grey = batch[0].mean(axis=2).ravel()
  for image in out:  # brightness, saturation, contrast: a * x + b * grey(x) + c, the same a, b, c per image
    x, y = batch[0][..., 0].ravel(), image[..., 0].ravel()
    design = np.stack([x, grey, np.ones_like(x)], axis=1)
    coefficients = np.linalg.lstsq(design, y, rcond=None)[0]
    np.testing.assert_allclose(design @ coefficients, y, atol=1e-4)
    other = np.stack([batch[0][..., 2].ravel(), grey, np.ones_like(x)], axis=1)
    np.testing.assert_allclose(other @ coefficients, image[..., 2].ravel(), atol=1e-4)


def test_the_same_seed_gives_the_same_augmentation_and_another_seed_another(batch):
  policies = ('color', 'translation', 'cutout')
  first = _augmented(batch, policies, [7, 8])
  np.testing.assert_array_equal(_augmented(batch, policies, [7, 8]), first)
  assert not np.allclose(_augmented(batch, policies, [7, 9]), first)


def test_g_learns_through_the_augmented_d():
  cfg = Config(output_height=16, output_width=16, c_dim=3, y_dim=0, z_dim=8, gf_dim=4, df_dim=4,
               augment='color,translation,cutout')
  with tf.Graph().as_default():
    inputs = stages.GANInputs(images=tf1.placeholder(tf.float32, [4, 16, 16, 3]), labels=None,
                              z=tf1.placeholder(tf.float32, [4, 8]), z_labels=None, z_label_ids=None, mix=None,
                              augment_seed=tf1.placeholder(tf.int64, [2]))
    gan = stages.gan_model(inputs, cfg)
    _, g_loss = losses.LOSSES['non_saturating'](gan.real_logits, gan.fake_logits)
    g_vars = stages.scope_collection(tf1.GraphKeys.TRAINABLE_VARIABLES, 'generator')
    gradients = tf.gradients(g_loss, g_vars)
    assert all(g is not None for g in gradients)
    assert any(op.name.startswith('augment/') for op in tf1.get_default_graph().get_operations())
    rng = np.random.default_rng(0)
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      feed = {inputs.images: rng.uniform(-1, 1, (4, 16, 16, 3)), inputs.z: rng.uniform(-1, 1, (4, 8)),
              inputs.augment_seed: [1, 2]}
      values = sess.run(gradients, feed)
      seen = sess.run(gan.real_seen, feed)
  assert all(np.abs(v).sum() > 0 for v in values)
  assert not np.allclose(seen, feed[inputs.images])  # D saw the real images augmented
