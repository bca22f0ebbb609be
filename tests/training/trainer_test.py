"""trainer.py: real training steps, in process, on tiny data in a temp dir: every source, the guards, XLA and the
precisions, a resumed run with every tool on bit-identical to one that never stopped, and what TensorBoard gets."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2

from app import completion
from config import saved_config
import datasets
from errors import Diverged
import hardware
from training import checkpoints
from training import runtime
from training import safety
from training import trainer
from conftest import assert_same_values, dir_flags, main_in_process
from conftest import lmdb_of_images, read_events, small_config, tiny_digits, write_idx_dataset, write_images

tf1 = tf.compat.v1


def _values(run, sess):
  """{name in the checkpoint: value} of every variable, read in one run."""
  return sess.run(run.dcgan.checkpoint_names())


@pytest.mark.parametrize('kind', ['idx', 'folder', 'lmdb', 'tfds'])
def test_one_training_step_moves_every_variable(tmp_path, kind):
  if kind == 'idx':
    write_idx_dataset(str(tmp_path / 'data' / 'tiny'), 8)
    cfg = small_config(tmp_path, 'tiny', output_height=28, output_width=28)
  elif kind == 'folder':
    write_images(str(tmp_path / 'data' / 'tiny'), 8, size=(24, 20))
    cfg = small_config(tmp_path, 'tiny', input_fname_pattern='*.png', output_height=16, output_width=12)
  elif kind == 'lmdb':
    lmdb_of_images(tmp_path / 'data' / 'tiny', 8, size=(30, 20))
    cfg = small_config(tmp_path, 'tiny', crop=True, output_height=16, output_width=16)
  else:
    cfg = small_config(tmp_path, 'tfds:mnist', output_height=28, output_width=28)
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


def test_a_nan_loss_stops_training_before_anything_of_it_is_saved(tmp_path, monkeypatch):
  cfg, dataset = tiny_digits(tmp_path, epoch=2, ckpt_freq=1)  # 4 steps per epoch
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
  cfg, dataset = tiny_digits(tmp_path)
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
  cfg, dataset = tiny_digits(tmp_path, epoch=1)
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
  cfg, dataset = tiny_digits(tmp_path, loss=loss)
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
  cfg, dataset = tiny_digits(tmp_path, epoch=3, log_freq=50, loss='wasserstein', gradient_penalty=10)  # 12 steps
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


def test_d_steps_take_a_batch_each_and_resume_counts_them(tmp_path):
  cfg, dataset = tiny_digits(tmp_path, d_steps=2, epoch=2)  # 32 digits, batch 8: 4 batches, 2 steps an epoch
  run = trainer.Trainer(cfg, dataset)
  assert run.steps_per_epoch == 2
  assert run.train() == (4, None)
  assert checkpoints.steps(cfg.checkpoint_path) == [4]
  # the step counter moved once a step, not once per D update: a resumed run goes on from step 4
  assert tf.train.load_checkpoint(checkpoints.path_of(cfg.checkpoint_path, 4)).get_tensor('global_step') == 4
  assert trainer.Trainer(dataclasses.replace(cfg, epoch=3), dataset).train() == (6, None)
  assert checkpoints.steps(cfg.checkpoint_path)[0] == 6


def test_xla_compiles_the_step_and_trains_like_the_plain_graph(tmp_path):
  cfg, dataset = tiny_digits(tmp_path)
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


@pytest.mark.skipif(not hardware.bfloat16_units(),
                    reason='the oneDNN bfloat16 rewrite applies only on CPUs with amx_bf16 or avx512_bf16')
def test_bfloat16_runs_the_matmuls_in_bfloat16_and_a_checkpoint_resumes_at_either_precision(tmp_path):
  write_idx_dataset(str(tmp_path / 'data' / 'tiny'), 16)
  cfg, dataset = completion.prepare(small_config(tmp_path, 'tiny', output_height=28, output_width=28, epoch=2))
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
  cfg, dataset = completion.prepare(small_config(tmp_path, 'tiny', output_height=28, output_width=28,
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


def test_a_resumed_run_with_every_tool_on_is_bit_identical(tmp_path):
  write_images(str(tmp_path / 'data' / 'rgb'), 16, size=(16, 16))
  run = ['--train', '--dataset', 'rgb', '--input_fname_pattern', '*.png', '--output_height', '16', '--batch_size',
         '8', '--gf_dim', '4', '--df_dim', '4', '--deterministic', '--ckpt_freq', '100', '--augment',
         'color,translation,cutout', '--mirror', '--spectral_norm', '--r1', '1', '--r1_every', '2', '--ema_start', '2',
         '--upsample', 'resize']
  whole, halves = tmp_path / 'whole', tmp_path / 'halves'
  assert main_in_process(*run, '--epoch', '4', *dir_flags(whole, tmp_path / 'data')) == (0, None)
  assert main_in_process(*run, '--epoch', '2', *dir_flags(halves, tmp_path / 'data')) == (0, None)
  assert main_in_process(*run, '--epoch', '4', *dir_flags(halves, tmp_path / 'data')) == (0, None)
  key = 'rgb_16_16'
  assert_same_values(whole / 'ckpt' / key / 'DCGAN.model-8', halves / 'ckpt' / key / 'DCGAN.model-8')
