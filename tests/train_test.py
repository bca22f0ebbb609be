"""trainer.py: real training steps, in process, on tiny data in a temp dir: every source, the guards, XLA, the
moving average of G's weights, old checkpoints, and what TensorBoard gets."""

import dataclasses
import logging as std_logging
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2

from app import completion
from app import modes
from config import Config, saved_config
import datasets
from errors import Diverged
from training import checkpoints
from training import runtime
from training import safety
from training import trainer
from conftest import lmdb_of_images, read_events, write_idx_dataset, write_images

tf1 = tf.compat.v1


def _small_config(tmp_path, name, **kwargs):
  fields = dict(dataset=name, data_dir=str(tmp_path / 'data'), checkpoint_dir=str(tmp_path / 'ckpt'),
                sample_dir=str(tmp_path / 'samples'), log_dir=str(tmp_path / 'logs'), gf_dim=4, df_dim=4,
                gfc_dim=16, dfc_dim=16, z_dim=8, batch_size=8, epoch=1, sample_num=6)
  return Config(**dict(fields, **kwargs))


def _values(run, sess):
  """{name in the checkpoint: value} of every variable, read in one run."""
  return sess.run(run.dcgan.checkpoint_names())


@pytest.mark.parametrize('kind', ['idx', 'folder', 'lmdb', 'tfds'])
def test_one_training_step_moves_every_variable(tmp_path, kind):
  if kind == 'idx':
    write_idx_dataset(str(tmp_path / 'data' / 'tiny'), 8)
    cfg = _small_config(tmp_path, 'tiny', output_height=28, output_width=28)
  elif kind == 'folder':
    write_images(str(tmp_path / 'data' / 'tiny'), 8, size=(24, 20))
    cfg = _small_config(tmp_path, 'tiny', input_fname_pattern='*.png', output_height=16, output_width=12)
  elif kind == 'lmdb':
    lmdb_of_images(tmp_path / 'data' / 'tiny', 8, size=(30, 20))
    cfg = _small_config(tmp_path, 'tiny', crop=True, output_height=16, output_width=16)
  else:
    cfg = _small_config(tmp_path, 'tfds:mnist', output_height=28, output_width=28)
  with datasets.import_tfds().testing.mock_data(num_examples=8):
    cfg, dataset = completion.prepare(cfg)
  # (channels, classes): 8 digits are 0-7; TFDS's mnist knows its 10 classes whatever the sample
  assert (cfg.c_dim, cfg.y_dim) == {'idx': (1, 8), 'folder': (3, 0), 'lmdb': (3, 0), 'tfds': (1, 10)}[kind]
  run = trainer.Trainer(cfg, dataset)
  with run.session() as sess:
    sess.run(run.dcgan.init)  # the seeded initial values, which train() starts from as well
    before = _values(run, sess)

  assert run.train() == (1, None)  # (step reached, no signal stopped it)

  checkpoint = tf.train.latest_checkpoint(cfg.checkpoint_path)
  assert checkpoint.endswith('DCGAN.model-1')
  reader = tf.train.load_checkpoint(checkpoint)
  assert reader.get_tensor('global_step') == 1
  trainable = [n for n in before if 'adam' not in n.lower() and 'moving' not in n.lower() and n != 'global_step'
               and not n.endswith('_power')]
  assert any(n.startswith('generator/') for n in trainable) and any(n.startswith('discriminator/') for n in trainable)
  for name in trainable + [n for n in before if 'moving_mean' in n]:
    after = reader.get_tensor(name)
    assert np.all(np.isfinite(after)), name
    assert not np.allclose(after, before[name]), f'{name} did not change'
  assert saved_config(cfg.checkpoint_path) == cfg
  assert os.listdir(cfg.sample_path) == ['train_00_000001.png']


def _digits_setup(tmp_path, **kwargs):
  write_idx_dataset(str(tmp_path / 'data' / 'tiny'), 32)
  return completion.prepare(_small_config(tmp_path, 'tiny', output_height=28, output_width=28, **kwargs))


def test_a_nan_loss_stops_training_before_anything_of_it_is_saved(tmp_path, monkeypatch):
  cfg, dataset = _digits_setup(tmp_path, epoch=2, ckpt_freq=1)  # 4 steps per epoch
  real_step = trainer.Trainer.train_step

  def step_that_diverges(self, sess, step):
    stats = real_step(self, sess, step)
    if step + 1 == 3:
      stats['d_loss'] = np.float32('nan')
    return stats

  monkeypatch.setattr(trainer.Trainer, 'train_step', step_that_diverges)
  with pytest.raises(Diverged, match=r'diverged at step 3: d_loss nan; .*The last good checkpoint is '
                                     r'.*DCGAN.model-2'):
    trainer.Trainer(cfg, dataset).train()
  assert checkpoints.steps(cfg.checkpoint_path) == [2, 1]


def test_nan_weights_are_never_saved(tmp_path):
  cfg, dataset = _digits_setup(tmp_path)
  run = trainer.Trainer(cfg, dataset)
  with run.session() as sess:
    sess.run(run.dcgan.init)
    assert run.save(sess, 1).endswith('DCGAN.model-1')
    weights = [v for v in run.dcgan.graph.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES) if 'h0' in v.op.name][0]
    weights.load(np.full(weights.shape, np.inf, np.float32), sess)
    with pytest.raises(Diverged, match=r'by step 2: a weight is NaN or Inf, so it was not saved. .*DCGAN.model-1'):
      run.save(sess, 2, checkpoints.path_of(cfg.checkpoint_path, 1))
  assert checkpoints.steps(cfg.checkpoint_path) == [1]


def test_d_winning_is_warned_in_the_log_and_in_tensorboard(tmp_path, monkeypatch):
  cfg, dataset = _digits_setup(tmp_path, epoch=1)
  real_step = trainer.Trainer.train_step

  def d_wins(self, sess, step):
    return dict(real_step(self, sess, step), d_loss=0.001)

  monkeypatch.setattr(trainer.Trainer, 'train_step', d_wins)
  watch = safety.DiscriminatorWinWatch
  monkeypatch.setattr(safety, 'DiscriminatorWinWatch', lambda floor: watch(floor, steps=3))
  trainer.Trainer(cfg, dataset).train()
  texts = read_events(cfg.log_path).texts
  assert list(texts) == [3] and texts[3].startswith('D has won for 3 steps')


@pytest.mark.parametrize('loss', ['non_saturating', 'hinge'])
def test_the_numbers_of_a_step_come_from_one_forward_pass(tmp_path, loss):
  """d_loss, g_loss, D(x) and D(G(z)) (the log line, TensorBoard) all read D's logits of the step's last D update:
  G's loss agrees with D(G(z)) beside it, not with a later phase of the step."""
  cfg, dataset = _digits_setup(tmp_path, loss=loss)
  run = trainer.Trainer(cfg, dataset)
  with run.session() as sess:
    sess.run(run.dcgan.init)
    run.start_epoch(sess, 0, 0)
    stats = run.train_step(sess, 0)
  real, fake = (stats[name].astype(np.float64).ravel() for name in ('real_logits', 'fake_logits'))
  if loss == 'non_saturating':
    expected = {'D(x)': np.mean(1 / (1 + np.exp(-real))), 'D(G(z))': np.mean(1 / (1 + np.exp(-fake))),
                'g_loss': np.mean(np.log1p(np.exp(-fake))),
                'd_loss': np.mean(np.log1p(np.exp(-real))) + np.mean(np.log1p(np.exp(fake)))}
  else:
    expected = {'D(x)': np.mean(real), 'D(G(z))': np.mean(fake), 'g_loss': -np.mean(fake),
                'd_loss': np.mean(np.maximum(0, 1 - real)) + np.mean(np.maximum(0, 1 + fake))}
  for name, value in expected.items():
    assert stats[name] == pytest.approx(value, rel=2e-2, abs=2e-3), name
  assert np.isfinite(stats['g_update_loss'])  # G's own updates' loss, for the divergence check only


def test_a_short_run_writes_the_numbers_of_its_first_and_last_steps(tmp_path):
  cfg, dataset = _digits_setup(tmp_path, epoch=3, log_freq=50, loss='wasserstein', gradient_penalty=10)  # 12 steps
  trainer.Trainer(cfg, dataset).train()
  events = read_events(cfg.log_path)
  for tag in ('d_loss', 'g_loss', 'D(x)', 'D(G(z))', 'gradient_penalty', 'images_per_second'):
    assert sorted(events.scalars[tag]) == [1, 12], tag
  assert events.values['images_per_second'][12] > 0
  assert events.histograms == {'z': [1, 12], 'D_logits_real': [1, 12], 'D_logits_fake': [1, 12]}
  # a resumed run's first step is written too, then every --log_freq steps and the last
  cfg = dataclasses.replace(cfg, epoch=5, log_freq=3)
  trainer.Trainer(cfg, dataset).train()
  assert sorted(read_events(cfg.log_path).scalars['g_loss']) == [1, 12, 13, 15, 18, 20]


def test_the_moving_average_of_g_is_a_hand_rolled_average_after_three_steps(tmp_path):
  decay = 0.9
  cfg, dataset = _digits_setup(tmp_path, ema=decay, g_steps=1)
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
  cfg, dataset = completion.prepare(_small_config(tmp_path, 'rgb', input_fname_pattern='*.png', output_height=16,
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
  cfg, dataset = _digits_setup(tmp_path, epoch=1)
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
  cfg, dataset = _digits_setup(tmp_path, ema=0.0, epoch=1)
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


def test_d_steps_take_a_batch_each_and_resume_counts_them(tmp_path):
  cfg, dataset = _digits_setup(tmp_path, d_steps=2, epoch=2)  # 32 digits, batch 8: 4 batches, 2 steps an epoch
  run = trainer.Trainer(cfg, dataset)
  assert run.steps_per_epoch == 2
  assert run.train() == (4, None)
  assert checkpoints.steps(cfg.checkpoint_path) == [4]
  # the step counter moved once a step, not once per D update: a resumed run goes on from step 4
  assert tf.train.load_checkpoint(checkpoints.path_of(cfg.checkpoint_path, 4)).get_tensor('global_step') == 4
  assert trainer.Trainer(dataclasses.replace(cfg, epoch=3), dataset).train() == (6, None)
  assert checkpoints.steps(cfg.checkpoint_path)[0] == 6


def test_xla_compiles_the_step_and_trains_like_the_plain_graph(tmp_path):
  cfg, dataset = _digits_setup(tmp_path)
  results = {}
  for xla in (False, True):
    run = trainer.Trainer(dataclasses.replace(cfg, xla=xla), dataset)
    with run.session() as sess:
      sess.run(run.dcgan.init)
      run.start_epoch(sess, 0, 0)
      metadata = tf1.RunMetadata()
      fetches = {'train': run.dcgan.train_ops.d_train, 'd_loss': run.dcgan.loss.d_loss}
      stats = sess.run(fetches, run.dcgan.step_feed(0), run_metadata=metadata,
                       options=tf1.RunOptions(trace_level=tf1.RunOptions.FULL_TRACE))
      ops = {node.timeline_label.split(' = ')[-1].split('(')[0] for device in metadata.step_stats.dev_stats
             for node in device.node_stats}
      results[xla] = stats['d_loss'], any(op.startswith('_Xla') for op in ops)
  assert results[False][1] is False and results[True][1] is True  # compiled clusters ran only with --xla
  np.testing.assert_allclose(results[True][0], results[False][0], rtol=1e-4)


def _bfloat16_ops(run, sess, fetch, feed):
  """The op types that ran with bfloat16 values (type attr T) in one run of `fetch`, read from the partition
  graphs Grappler produced."""
  metadata = tf1.RunMetadata()
  sess.run(fetch, feed, options=tf1.RunOptions(output_partition_graphs=True), run_metadata=metadata)
  return {node.op for graph in metadata.partition_graphs for node in graph.node
          if 'T' in node.attr and node.attr['T'].type == tf.bfloat16.as_datatype_enum}


@pytest.mark.skipif(not set(runtime.BFLOAT16_CPU_FLAGS) & runtime.cpu_flags(),
                    reason='the oneDNN bfloat16 rewrite applies only on CPUs with amx_bf16 or avx512_bf16')
def test_bfloat16_runs_the_matmuls_in_bfloat16_and_a_checkpoint_resumes_at_either_precision(tmp_path):
  write_idx_dataset(str(tmp_path / 'data' / 'tiny'), 16)
  cfg, dataset = completion.prepare(_small_config(tmp_path, 'tiny', output_height=28, output_width=28, epoch=2))
  steps = {}
  for epoch, precision in ((1, 'float32'), (2, 'bfloat16'), (3, 'float32')):  # each resumes the one before
    run = trainer.Trainer(dataclasses.replace(cfg, epoch=epoch, precision=precision), dataset)
    with run.session() as sess:
      sess.run(run.dcgan.init)
      run.restore(sess)
      run.start_epoch(sess, epoch - 1, 0)
      ran = _bfloat16_ops(run, sess, [run.dcgan.train_ops.d_train, run.dcgan.loss.d_loss, run.dcgan.loss.d_real],
                          run.dcgan.step_feed(0, 0))
    if precision == 'float32':
      assert not ran, ran
    else:  # the convolutions and matmuls of D and G, forward and backward; not the losses, sigmoid(D) included
      assert {op for op in ran if 'Conv2D' in op} and {op for op in ran if 'MatMul' in op}, ran
      assert not ran & set(runtime.FLOAT32_OPS), ran
    steps[precision] = run.train()[0]
  assert steps == {'float32': 6, 'bfloat16': 4}
  reader = tf.train.load_checkpoint(checkpoints.path_of(cfg.checkpoint_path, 4))  # written in bfloat16
  assert set(reader.get_variable_to_dtype_map().values()) <= {tf.float32, tf.int64}  # its variables: float32


@pytest.mark.parametrize('device, devices, gpu_rewrites', [
    ('/cpu:0', (), False), ('/cpu:0', ('/cpu:0', '/cpu:1'), False), ('/gpu:0', (), True),
    ('/cpu:0', ('/gpu:0', '/gpu:1'), True)])
def test_grappler_s_layout_and_memory_rewrites_are_left_on_only_where_a_gpu_is_named(device, devices, gpu_rewrites):
  rewrites = trainer.session_config(device, devices=devices).graph_options.rewrite_options
  config = rewriter_config_pb2.RewriterConfig
  assert (rewrites.layout_optimizer, rewrites.memory_optimization) == (
      (config.DEFAULT, config.DEFAULT_MEM_OPT) if gpu_rewrites else (config.OFF, config.NO_MEM_OPT))


def test_mixed_float16_scales_the_loss_and_skips_an_update_whose_gradients_overflow(tmp_path):
  write_idx_dataset(str(tmp_path / 'data' / 'tiny'), 16)
  cfg, dataset = completion.prepare(_small_config(tmp_path, 'tiny', output_height=28, output_width=28,
                                                  precision='mixed_float16'))
  run = trainer.Trainer(cfg, dataset)
  rewrites = run.proto.graph_options.rewrite_options
  assert rewrites.auto_mixed_precision == rewriter_config_pb2.RewriterConfig.ON  # (the GPU's: a no-op on a CPU)
  # the GPU's float16 path run on the CPU by Grappler's emulation of it, which the program itself never asks for
  rewrites.auto_mixed_precision_cpu = rewriter_config_pb2.RewriterConfig.ON
  dcgan = run.dcgan
  scales = [v for v in dcgan.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
            if v.op.name.endswith('current_loss_scale')]
  d_vars = [v for v in dcgan.graph.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES)
            if v.op.name.startswith('discriminator/')]
  assert len(scales) == 2 and d_vars
  with run.session() as sess:
    sess.run(dcgan.init)
    run.start_epoch(sess, 0, 0)

    def d_update():  # D's weights before and after one update, and the count of skipped updates
      before = sess.run(d_vars)
      sess.run(dcgan.train_ops.d_train, dcgan.step_feed(0, 0))
      return before, sess.run(d_vars), sess.run(dcgan.overflows)

    for scale in scales:  # a small scale, which this tiny model's gradients do not overflow (the first, 2^15, can)
      scale.load(128.0, sess)
    before, after, overflows = d_update()
    assert overflows == 0 and any(not np.array_equal(b, a) for b, a in zip(before, after))
    for scale in scales:  # so large that the scaled gradients overflow float32
      scale.load(3e38, sess)
    before, after, overflows = d_update()
    assert overflows == 1 and all(np.array_equal(b, a) for b, a in zip(before, after))  # skipped, and counted
    assert sorted(sess.run(scales)) == pytest.approx([1.5e38, 3e38])  # D's scale halved; G's untouched
    sess.run(dcgan.train_ops.g_train, dcgan.step_feed(0))
    assert sess.run(dcgan.overflows) == 2  # G's update overflowed too, at G's scale
    run.save(sess, 1)
    saved = dict(zip([v.op.name for v in d_vars], sess.run(d_vars)))
  # the loss scales and the count are not in the checkpoint, so that it resumes at float32
  reader = tf.train.load_checkpoint(checkpoints.path_of(cfg.checkpoint_path, 1))
  assert not [name for name in reader.get_variable_to_shape_map() if 'loss_scale' in name]
  resumed = trainer.Trainer(dataclasses.replace(cfg, precision='float32'), dataset)
  with resumed.session() as sess:
    sess.run(resumed.dcgan.init)
    assert resumed.restore(sess) == checkpoints.path_of(cfg.checkpoint_path, 1)
    restored = resumed.dcgan.graph.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES)
    for name, value in zip([v.op.name for v in restored], sess.run(restored)):
      if name in saved:
        np.testing.assert_array_equal(value, saved.pop(name))
  assert not saved
