"""Several devices in one process: two CPU devices stand in for two GPUs (MirroredStrategy, --devices)."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import config as config_lib
import datasets
import model
from conftest import (TINY_MODEL, assert_user_error, checkpoint_values, dir_flags, run_main, write_idx_dataset)

tf1 = tf.compat.v1
TWO_CPUS = ('/cpu:0', '/cpu:1')


@pytest.fixture
def tiny(tmp_path):
  """A conditional config and its 64 digits; with TWO_CPUS as its devices."""
  write_idx_dataset(str(tmp_path / 'data' / 'tiny'), 64)
  cfg = config_lib.Config(dataset='tiny', data_dir=str(tmp_path / 'data'), checkpoint_dir=str(tmp_path / 'ckpt'),
                          sample_dir=str(tmp_path / 'samples'), log_dir=str(tmp_path / 'logs'), output_height=28,
                          output_width=28, gf_dim=4, df_dim=4, gfc_dim=16, dfc_dim=16, z_dim=8, batch_size=16,
                          epoch=1, sample_num=4, devices=TWO_CPUS)
  dataset = datasets.load(cfg)
  return dataclasses.replace(cfg, c_dim=1, y_dim=dataset.num_classes), dataset


def _replica_values(dcgan, sess):
  """{name: [value on each replica]} of every mirrored variable."""
  return {v.name: sess.run(list(v.values)) for v in dcgan.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)}


def test_two_replicas_train_with_identical_weights_and_statistics(tiny):
  cfg, dataset = tiny
  cfg = dataclasses.replace(cfg, y_dim=0, gf_dim=8, df_dim=8)  # unconditional: D's loss falls within 12 steps
  dcgan = model.DCGAN(cfg, dataset)
  assert dcgan.strategy.num_replicas_in_sync == 2
  with dcgan.session() as sess:
    sess.run(dcgan.init)
    before = _replica_values(dcgan, sess)
    d_losses = []
    for step in range(12):
      if step % dcgan.steps_per_epoch == 0:
        dcgan.start_epoch(sess, step // dcgan.steps_per_epoch, 0)
      d_losses.append(dcgan.train_step(sess, step)['d_loss'])
    after = _replica_values(dcgan, sess)
    assert sess.run(dcgan.global_step) == 12  # one increment per step, not one per replica
  assert all(len(values) == 2 for values in after.values())
  differing = [name for name, values in after.items() if not np.array_equal(values[0], values[1])]
  assert not differing, differing
  moved = [name for name in after if 'moving_mean' in name and not np.array_equal(after[name][0], before[name][0])]
  assert moved  # the batch-norm statistics were updated, and stayed the same on both replicas
  assert np.mean(d_losses[-3:]) < d_losses[0] - 0.05, d_losses  # D learns to tell digits from G's images


def test_checkpoints_move_between_one_and_two_devices(tiny):
  cfg, dataset = tiny
  assert model.DCGAN(cfg, dataset).train() == (4, None)
  two = checkpoints.path_of(cfg.checkpoint_path, 4)
  single = dataclasses.replace(cfg, devices=(), epoch=2)
  dcgan = model.DCGAN(single, dataset)
  with dcgan.session() as sess:
    assert dcgan.restore(sess) == two
    saved = checkpoint_values(two)
    for variable in dcgan.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES):
      np.testing.assert_array_equal(sess.run(variable), saved[variable.op.name])
  assert dcgan.train() == (8, None)

  dcgan = model.DCGAN(dataclasses.replace(cfg, epoch=3), dataset)
  with dcgan.session() as sess:
    dcgan.restore(sess)
    saved = checkpoint_values(checkpoints.path_of(cfg.checkpoint_path, 8))
    for name, values in _replica_values(dcgan, sess).items():
      for value in values:  # every replica got the single-device weights
        np.testing.assert_array_equal(value, saved[name.split(':')[0]])


def test_devices_flag_trains_and_test_mode_uses_the_checkpoint(tmp_path, tiny_idx_root):
  flags = dir_flags(tmp_path, tiny_idx_root)
  result = run_main('--train', '--dataset', 'tiny', '--batch_size', '16', '--train_size', '32', '--epoch', '2',
                    '--devices', ','.join(TWO_CPUS), *TINY_MODEL, *flags, cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  assert '"devices": ["/cpu:0", "/cpu:1"]' in result.stderr  # the logged config
  assert checkpoints.steps(str(tmp_path / 'ckpt' / 'tiny_28_28')) == [4]
  result = run_main('--dataset', 'tiny', *flags, cwd=tmp_path)  # test mode on one device
  assert result.returncode == 0, result.stderr
  assert (tmp_path / 'samples' / 'tiny_28_28' / 'test_000004.png').exists()


@pytest.mark.parametrize('args, fragments', [
    (['--devices', '/cpu:0,/cpu:1', '--batch_size', '15'], ['--batch_size 15 does not split evenly across 2']),
    (['--num_gpus', '2'], ['--num_gpus 2: only 0 GPU(s) are visible here']),
    (['--devices', 'gpu zero,/cpu:0'], ["--devices 'gpu zero' is not a device name"]),
])
def test_device_flags_are_checked(tmp_path, args, fragments):
  assert_user_error(run_main('--train', '--dataset', 'tiny', *args, cwd=tmp_path), *fragments)
