"""gan/losses.py: every loss against values computed by hand, the gradient penalty and R1 against gradients known
in closed form, and every loss (with and without the penalty) training a few steps without NaN."""

import numpy as np
import pytest
import tensorflow as tf

from app import completion
from config import Config
from gan import losses
from training import trainer
from conftest import write_idx_dataset

REAL = np.array([[2.0], [-1.0], [0.5], [40.0]])
FAKE = np.array([[-3.0], [1.5], [0.0], [-40.0]])


def _log_sigmoid(x):
  return -np.logaddexp(0.0, -x)  # log(1 / (1 + e^-x)), exact for large |x| too


# The definitions, written out in numpy: log D is log sigmoid(logit) for the probability losses.
EXPECTED = {
    'non_saturating': (-np.mean(_log_sigmoid(REAL)) - np.mean(_log_sigmoid(-FAKE)), -np.mean(_log_sigmoid(FAKE))),
    'minimax': (-np.mean(_log_sigmoid(REAL)) - np.mean(_log_sigmoid(-FAKE)), np.mean(_log_sigmoid(-FAKE))),
    'wasserstein': (np.mean(FAKE) - np.mean(REAL), -np.mean(FAKE)),
    'hinge': (np.mean(np.maximum(0, 1 - REAL)) + np.mean(np.maximum(0, 1 + FAKE)), -np.mean(FAKE)),
    'least_squares': (0.5 * np.mean((REAL - 1) ** 2) + 0.5 * np.mean(FAKE ** 2), 0.5 * np.mean((FAKE - 1) ** 2)),
}


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_each_loss_matches_its_formula_on_fixed_logits(name):
  d_loss, g_loss = losses.LOSSES[name](tf.constant(REAL, tf.float32), tf.constant(FAKE, tf.float32))
  assert d_loss.shape.rank == 0 and g_loss.shape.rank == 0
  np.testing.assert_allclose([d_loss.numpy(), g_loss.numpy()], EXPECTED[name], rtol=1e-6)


def test_the_losses_at_reference_points():
  """Values anyone can check on paper, at D's outputs 0 (probability one half) and at the targets."""
  zero = tf.zeros([2, 1])
  log2 = np.log(2.0)
  assert [round(float(v), 6) for v in losses.non_saturating(zero, zero)] == [round(2 * log2, 6), round(log2, 6)]
  assert [round(float(v), 6) for v in losses.minimax(zero, zero)] == [round(2 * log2, 6), round(-log2, 6)]
  assert [float(v) for v in losses.hinge(tf.ones([2, 1]), -tf.ones([2, 1]))] == [0.0, 1.0]
  assert [float(v) for v in losses.least_squares(tf.ones([2, 1]), zero)] == [0.0, 0.5]
  assert [float(v) for v in losses.wasserstein(3 * tf.ones([2, 1]), tf.ones([2, 1]))] == [-2.0, -1.0]


# D's outputs on one real and one generated image, over a grid wide enough to reach every loss's least value
_GRID = np.linspace(-30.0, 30.0, 241)


_REAL_GRID, _FAKE_GRID = (a.reshape(-1, 1).astype(np.float32) for a in np.meshgrid(_GRID, _GRID))


def _d_losses(fn, real, fake):
  """fn's d_loss for each pair (real[i], fake[i]) of single-image batches, as a numpy vector."""
  return tf.vectorized_map(lambda pair: fn(pair[0][None], pair[1][None])[0], (real, fake)).numpy()


@pytest.mark.parametrize('name', sorted(losses.LOSSES))
def test_each_loss_marks_its_floor_and_how_to_read_d_truly(name):
  """`floor` is the least d_loss (what the D-has-won watch compares with), or None when d_loss has none; a
  `probability` loss's d_loss is the cross-entropy of sigmoid(D) (what the log line shows as D(x)), and another
  loss's is not."""
  fn = losses.LOSSES[name]
  d_loss = _d_losses(fn, _REAL_GRID, _FAKE_GRID)
  if fn.floor is None:
    assert d_loss.min() < -50.0 and d_loss.min() == d_loss[np.argmax(_REAL_GRID[:, 0] - _FAKE_GRID[:, 0])]
  else:
    assert d_loss.min() >= fn.floor - 1e-6
    assert d_loss.min() < fn.floor + 1e-3  # reached, at D's targets
  cross_entropy = -_log_sigmoid(_REAL_GRID[:, 0]) - _log_sigmoid(-_FAKE_GRID[:, 0])
  assert np.allclose(d_loss, cross_entropy, rtol=1e-4, atol=1e-4) == fn.probability


def test_the_penalty_of_a_linear_critic_is_the_squared_distance_of_its_gradient_norm_from_one():
  rng = np.random.default_rng(0)
  w = rng.normal(size=[1, 4, 4, 3]).astype(np.float32)  # D(x) = <w, x>: its gradient is w everywhere
  mixed = rng.normal(size=[5, 4, 4, 3]).astype(np.float32)
  with tf.Graph().as_default():  # losses.gradient_penalty is graph code (tf.gradients)
    x = tf.compat.v1.placeholder(tf.float32, [5, 4, 4, 3])
    linear = losses.gradient_penalty(x, tf.reduce_sum(w * x, axis=[1, 2, 3])[:, None])
    square = losses.gradient_penalty(x, tf.reduce_sum(x * x, axis=[1, 2, 3])[:, None])  # D(x) = |x|^2: 2x
    with tf.compat.v1.Session() as sess:
      got_linear, got_square = sess.run([linear, square], {x: mixed})
  assert got_linear == pytest.approx((np.linalg.norm(w) - 1) ** 2, rel=1e-5)
  norms = 2 * np.linalg.norm(mixed.reshape(5, -1), axis=1)
  assert got_square == pytest.approx(np.mean((norms - 1) ** 2), rel=1e-5)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
  root = tmp_path_factory.mktemp('data')
  write_idx_dataset(str(root / 'tiny'), 32)
  return str(root)


@pytest.mark.parametrize('loss, penalty, d_steps', [
    ('non_saturating', 0, 1), ('minimax', 0, 1), ('wasserstein', 10, 2), ('hinge', 0, 1), ('least_squares', 1, 1)])
def test_every_loss_trains_a_few_steps_without_nan(tmp_path, tiny, loss, penalty, d_steps):
  cfg = Config(dataset='tiny', data_dir=tiny, checkpoint_dir=str(tmp_path / 'ckpt'),
               sample_dir=str(tmp_path / 'samples'), log_dir=str(tmp_path / 'logs'), output_height=28,
               output_width=28, gf_dim=4, df_dim=4, gfc_dim=16, dfc_dim=16, z_dim=8, batch_size=8,
               epoch=2, sample_freq=100, loss=loss, gradient_penalty=penalty, d_steps=d_steps,
               conditional=loss not in ('hinge', 'least_squares'))  # both models
  cfg, dataset = completion.prepare(cfg)
  run = trainer.Trainer(cfg, dataset)
  assert run.steps_per_epoch == 4 // d_steps  # every D update takes a batch of its own
  with run.session() as sess:
    sess.run(run.dcgan.init)
    run.start_epoch(sess, 0, 0)
    stats = [run.train_step(sess, step) for step in range(run.steps_per_epoch)]
    assert run.dcgan.weights_finite(sess)
  for step in stats:
    assert all(np.isfinite(step[name]) for name in ('d_loss', 'g_loss', 'D(x)', 'D(G(z))', 'gradient_penalty'))
    assert (step['gradient_penalty'] > 0) == bool(penalty)
    if losses.LOSSES[loss].probability:
      assert 0 < step['D(x)'] < 1 and 0 < step['D(G(z))'] < 1


tf1 = tf.compat.v1


def test_r1_of_a_linear_d_is_the_squared_norm_of_its_weights():
  rng = np.random.default_rng(1)
  weights = rng.normal(size=(1, 4, 3, 2)).astype(np.float32)
  with tf.Graph().as_default():
    images = tf.constant(rng.normal(size=(5, 4, 3, 2)).astype(np.float32))
    logits = tf.reduce_sum(images * weights, axis=[1, 2, 3])[:, None] + 0.3
    with tf1.Session() as sess:
      value = sess.run(losses.r1_penalty(images, logits))
  assert value == pytest.approx(np.sum(weights ** 2), rel=1e-5)
