"""gan/average.py: the moving average of G's weights, by hand after a few steps, from --ema_start, by its ramp-up;
its batch-norm statistics of its own; checkpoints written before it."""

import dataclasses
import logging as std_logging
import re

import numpy as np
import pytest
import tensorflow as tf

from app import completion
from app import modes
from training import trainer
from conftest import one_step, small_config, tiny_digits, tiny_rgb_trainer, write_images

tf1 = tf.compat.v1


def test_the_moving_average_of_g_is_a_hand_rolled_average_after_three_steps(tmp_path):
  decay = 0.9
  cfg, dataset = tiny_digits(tmp_path, ema=decay, g_steps=1)
  run = trainer.Trainer(cfg, dataset)
  averages = run.dcgan.averages()
  assert averages and all(v.op.name.startswith('generator/') for v, _ in averages)
  with run.session() as sess:
    sess.run(run.dcgan.init)
    run.start_epoch(sess, 0, 0)
    weights, moving = [v for v, _ in averages], [a for _, a in averages]
    expected = sess.run(weights)  # the averages start at G's initial weights
    for step in range(3):
      run.train_step(sess, step)
      # TensorFlow's warm-up: the decay is min(--ema, (1 + t) / (10 + t)), t the step count when G updates
      t = step + 1
      rate = min(decay, (1.0 + t) / (10.0 + t))
      expected = [rate * value + (1 - rate) * now for value, now in zip(expected, sess.run(weights))]
    for value, got in zip(expected, sess.run(moving)):
      np.testing.assert_allclose(got, value, rtol=1e-5, atol=1e-7)
    assert not np.allclose(sess.run(moving[0]), sess.run(weights[0]))  # an average, not G itself
    # The sampler draws with the averages: G's own weights do not reach it, the averages do.
    z = np.random.default_rng(0).uniform(-1, 1, [4, cfg.z_dim]).astype(np.float32)
    feed = {run.dcgan.sampler.z: z, run.dcgan.sampler.labels: np.arange(4) % cfg.y_dim}
    images = sess.run(run.dcgan.sampler.images, feed)
    for variable, _ in averages:
      variable.load(np.zeros(variable.shape, np.float32), sess)
    np.testing.assert_array_equal(sess.run(run.dcgan.sampler.images, feed), images)
    for variable, average in averages:
      average.load(np.zeros(variable.shape, np.float32), sess)
    assert not np.array_equal(sess.run(run.dcgan.sampler.images, feed), images)


def _statistics(run, layer):
  """{(own or average, mean or variance): variable} of G's batch norm `layer`."""
  found = {}
  for own, average in run.dcgan.average.statistics:
    if own.op.name.startswith(f'generator/{layer}/'):
      kind = own.op.name.rsplit('_', 1)[-1]
      found['own', kind], found['average', kind] = own, average
  return found


def test_the_averaged_g_has_batch_norm_statistics_of_its_own_weights(tmp_path):
  write_images(str(tmp_path / 'data' / 'rgb'), 16, size=(16, 16))
  cfg, dataset = completion.prepare(small_config(tmp_path, 'rgb', input_fname_pattern='*.png', output_height=16,
                                                 output_width=16, ema=0.9, g_steps=1, precision='float32'))
  run = trainer.Trainer(cfg, dataset)
  dcgan, bn0 = run.dcgan, _statistics(run, 'bn0')
  averaged = {v.op.name: a for v, a in dcgan.averages()}
  with run.session() as sess:
    sess.run(dcgan.init)
    run.start_epoch(sess, 0, 0)
    run.train_step(sess, 0)
    before = sess.run(bn0)
    feed = dcgan.step_feed(1)
    sess.run(dcgan.train_ops.g_train, feed)
    after, (w, b) = sess.run(bn0), sess.run([averaged['generator/h0_lin/w'], averaged['generator/h0_lin/b']])
    # bn0 normalizes G's first layer, z times the averaged weights: its batch statistics, by numpy
    h0 = (feed[dcgan.inputs.z] @ w + b).reshape(cfg.batch_size, -1, cfg.gf_dim * 8)
    batch = {'mean': h0.mean(axis=(0, 1)), 'variance': h0.var(axis=(0, 1), ddof=1)}
    for kind in ('mean', 'variance'):  # moved towards them as ops.batch_norm moves G's own (momentum 0.9)
      expected = before['average', kind] + 0.1 * (batch[kind] - before['average', kind])
      np.testing.assert_allclose(after['average', kind], expected, rtol=1e-4, atol=1e-6, err_msg=kind)
    assert not np.allclose(after['average', 'mean'], after['own', 'mean'])  # G's own are of G's own weights
  # the sampler's batch norms normalize by the average's statistics, never by G's own
  norms = [op for op in dcgan.graph.get_operations() if op.name.startswith('sampler/') and op.type.startswith(
      'FusedBatchNorm')]
  read = lambda tensor: tensor.op.inputs[0].op.name  # the variable behind a ReadVariableOp
  averages = {a.op.name for _, a in dcgan.average.statistics}
  assert len(norms) == 4 and all({read(op.inputs[3]), read(op.inputs[4])} <= averages for op in norms)


def test_a_checkpoint_without_the_averages_statistics_starts_them_at_g_s_own(tmp_path, caplog):
  cfg, dataset = tiny_digits(tmp_path, epoch=1)
  trainer.Trainer(cfg, dataset).train()
  path = tf.train.latest_checkpoint(cfg.checkpoint_path)
  reader = tf.train.load_checkpoint(path)
  older = [n for n in reader.get_variable_to_shape_map() if not re.search(r'moving_\w+/ExponentialMovingAverage$', n)]
  assert len(older) < len(reader.get_variable_to_shape_map())
  with tf.Graph().as_default(), tf1.Session() as sess:  # the checkpoint as written before the statistics existed
    saver = tf1.train.Saver({n: tf1.Variable(reader.get_tensor(n), name=n) for n in older})
    sess.run(tf1.global_variables_initializer())
    saver.save(sess, path, write_meta_graph=False, write_state=False)
  run = trainer.Trainer(dataclasses.replace(cfg, epoch=2), dataset)
  with run.session() as sess, caplog.at_level(std_logging.INFO):
    sess.run(run.dcgan.init)
    assert run.restore(sess) == path
    for own, average in sess.run(run.dcgan.average.statistics):
      np.testing.assert_array_equal(average, own)
    for _, average in run.dcgan.averages():  # while the averages of the weights are read as saved
      np.testing.assert_array_equal(sess.run(average), reader.get_tensor(average.op.name))
  assert 'holds no batch-norm statistics of the average of G' in caplog.text


def test_a_checkpoint_without_averages_loads_and_test_mode_samples_the_averages(tmp_path):
  cfg, dataset = tiny_digits(tmp_path, ema=0.0, epoch=1)
  trainer.Trainer(cfg, dataset).train()  # a checkpoint as runs before --ema existed wrote them
  assert not [n for n, _ in tf.train.list_variables(cfg.checkpoint_path) if 'ExponentialMovingAverage' in n]
  cfg = dataclasses.replace(cfg, ema=0.99, epoch=2)
  run = trainer.Trainer(cfg, dataset)
  with run.session() as sess:
    sess.run(run.dcgan.init)
    assert run.restore(sess).endswith('DCGAN.model-4')
    # the averages start at G's weights, and their batch-norm statistics at G's own
    for weight, average in sess.run(run.dcgan.averages() + run.dcgan.average.statistics):
      np.testing.assert_array_equal(average, weight)
  assert trainer.Trainer(cfg, dataset).train() == (8, None)
  saved = dict(tf.train.list_variables(cfg.checkpoint_path))
  assert 'generator/h0_lin/w/ExponentialMovingAverage' in saved

  # Test mode loads the averages into G: its grid is the grid the training graph's sampler draws
  with run.session() as sess:
    run.restore(sess)
    training_grid = run.dcgan.sample_grid(sess)
  with modes.trained_generator(cfg) as (gen, step, _):
    assert step == 8
    np.testing.assert_array_equal(gen.dcgan.sample_grid(gen.sess), training_grid)
  with modes.trained_generator(dataclasses.replace(cfg, ema=0.0)) as (gen, _, _):  # G's own weights differ
    assert not np.array_equal(gen.dcgan.sample_grid(gen.sess), training_grid)


def test_the_average_follows_g_until_ema_start(tmp_path):
  run = tiny_rgb_trainer(tmp_path, ema=0.9, ema_start=3)
  pairs = run.dcgan.averages()
  with run.session() as sess:
    sess.run(run.dcgan.init)
    for step in range(4):
      one_step(run, sess, step)
      weights, averages = zip(*sess.run(pairs))
      same = all(np.array_equal(w, a) for w, a in zip(weights, averages))
      assert same == (step < 2), step  # the average starts averaging at step 3 (after its third G update)


@pytest.mark.parametrize('rampup, decay_at', [(None, lambda t: (1 + t) / (10 + t)), (0.5, lambda t: t / (t + 2))])
def test_the_average_decays_by_its_ramp_up(tmp_path, rampup, decay_at):
  run = tiny_rgb_trainer(tmp_path, ema=0.99, ema_rampup=rampup, g_steps=1)
  pairs = run.dcgan.averages()
  with run.session() as sess:
    sess.run(run.dcgan.init)
    before = [a for _, a in sess.run(pairs)]
    for step in range(4):
      one_step(run, sess, step)
      weights, averages = zip(*sess.run(pairs))
      w, a, b = (np.concatenate([x.ravel() for x in xs]).astype(np.float64) for xs in (weights, averages, before))
      moved = np.abs(b - w) > 1e-3
      decay = (a[moved] - w[moved]) / (b[moved] - w[moved])  # a = decay * b + (1 - decay) * w
      np.testing.assert_allclose(decay, decay_at(step + 1), atol=1e-3, err_msg=f'step {step}')
      before = averages
