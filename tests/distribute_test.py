"""Several devices in one process (two CPU devices stand in for two GPUs), and several worker processes on loopback."""

import dataclasses
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import config as config_lib
import modes
import trainer
from conftest import (ROOT, TINY_MODEL, assert_error, assert_same_values, assert_user_error, checkpoint_values,
                      dir_flags, main_in_process, write_idx_dataset)

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
  return modes.prepare(cfg)


def _replica_values(dcgan, sess):
  """{name: [value on each replica]} of every mirrored variable, read in one run."""
  return sess.run({v.name: list(v.values) for v in dcgan.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)})


def test_two_replicas_keep_identical_weights_and_checkpoints_move_to_one_device_and_back(tiny):
  cfg, dataset = tiny
  cfg = dataclasses.replace(cfg, y_dim=0, gf_dim=8, df_dim=8)  # unconditional: D's loss falls within 12 steps
  run = trainer.Trainer(cfg, dataset)
  dcgan = run.dcgan
  assert dcgan.strategy.num_replicas_in_sync == 2
  with run.session() as sess:
    sess.run(dcgan.init)
    before = _replica_values(dcgan, sess)
    d_losses = []
    for step in range(12):
      if step % run.steps_per_epoch == 0:
        run.start_epoch(sess, step // run.steps_per_epoch, 0)
      d_losses.append(run.train_step(sess, step)['d_loss'])
    after = _replica_values(dcgan, sess)
    assert sess.run(dcgan.global_step) == 12  # one increment per step, not one per replica
    two = run.save(sess, 12)
  assert all(len(values) == 2 for values in after.values())
  differing = [name for name, values in after.items() if not np.array_equal(values[0], values[1])]
  assert not differing, differing
  moved = [name for name in after if 'moving_mean' in name and not np.array_equal(after[name][0], before[name][0])]
  assert moved  # the batch-norm statistics were updated, and stayed the same on both replicas
  averages = [name for name in after if name.endswith('/ExponentialMovingAverage:0')]
  assert averages and all(not np.array_equal(after[n][0], before[n][0]) for n in averages)  # G's averages too
  assert np.mean(d_losses[-3:]) < d_losses[0] - 0.05, d_losses  # D learns to tell digits from G's images

  # The checkpoint of two replicas loads on one device; one saved there loads on both replicas.
  single = trainer.Trainer(dataclasses.replace(cfg, devices=()), dataset)
  with single.session() as sess:
    assert single.restore(sess) == two
    saved = checkpoint_values(two)
    for name, value in sess.run(single.dcgan.checkpoint_names()).items():
      np.testing.assert_array_equal(value, saved[name])
    for variable in single.dcgan.graph.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES):  # other weights
      variable.load(sess.run(variable) + 1.0, sess)
    single.save(sess, 13)
  with run.session() as sess:
    assert run.restore(sess) == checkpoints.path_of(cfg.checkpoint_path, 13)
    saved = checkpoint_values(checkpoints.path_of(cfg.checkpoint_path, 13))
    names = dcgan.checkpoint_names()
    for name, values in sess.run({name: list(v.values) for name, v in names.items()}).items():
      for value in values:  # every replica got the single-device weights
        np.testing.assert_array_equal(value, saved[name])


def test_devices_flag_trains_and_test_mode_uses_the_checkpoint(tmp_path, tiny_idx_root):
  flags = dir_flags(tmp_path, tiny_idx_root)
  result = main_in_process('--train', '--dataset', 'tiny', '--batch_size', '16', '--train_size', '32', '--epoch',
                           '2', '--devices', ','.join(TWO_CPUS), *TINY_MODEL, *flags)
  assert result.returncode == 0, result
  assert config_lib.load(str(tmp_path / 'ckpt' / 'tiny_28_28')).devices == TWO_CPUS
  assert checkpoints.steps(str(tmp_path / 'ckpt' / 'tiny_28_28')) == [4]
  assert main_in_process('--dataset', 'tiny', *flags).returncode == 0  # test mode on one device
  assert (tmp_path / 'samples' / 'tiny_28_28' / 'test_000004.png').exists()


@pytest.mark.parametrize('args, fragments', [
    (['--devices', '/cpu:0,/cpu:1', '--batch_size', '15'], ['--batch_size 15 does not split evenly across 2']),
    (['--num_gpus', '2'], ['--num_gpus 2: only 0 GPU(s) are visible here']),
    (['--devices', 'gpu zero,/cpu:0'], ["--devices 'gpu zero' is not a device name"]),
])
def test_device_flags_are_checked(tmp_path, args, fragments):
  assert_error(main_in_process('--train', '--dataset', 'tiny', *args, *dir_flags(tmp_path, tmp_path)), *fragments)


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for sock in sockets:
    sock.bind(('127.0.0.1', 0))
  ports = [sock.getsockname()[1] for sock in sockets]
  for sock in sockets:
    sock.close()
  return ports


def _start_workers(run_dir, data_dir, *args, count=2):
  """Starts `count` main.py workers on loopback ports, each with its TF_CONFIG; returns the Popen objects."""
  workers = [f'127.0.0.1:{port}' for port in _free_ports(count)]
  processes = []
  for index in range(count):
    env = dict(os.environ, TF_CONFIG=json.dumps({'cluster': {'worker': workers},
                                                 'task': {'type': 'worker', 'index': index}}))
    processes.append(subprocess.Popen(
        [sys.executable, os.path.join(ROOT, 'main.py'), '--train', '--dataset', 'tiny', '--strategy', 'multi_worker',
         '--batch_size', '16', *TINY_MODEL, *dir_flags(run_dir, data_dir), *args],
        cwd=run_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  return processes


def test_two_workers_train_in_lockstep_and_one_that_dies_stops_the_other(tmp_path, tiny_idx_root):
  key_dir = tmp_path / 'ckpt' / 'tiny_28_28'
  chief, other = _start_workers(tmp_path, tiny_idx_root, '--train_size', '64', '--epoch', '1000', '--ckpt_freq', '4',
                                '--max_to_keep', '1000', '--worker_timeout', '20')
  try:
    deadline = time.monotonic() + 120
    first = lambda folder: checkpoints.steps(str(folder))[-1:]
    while not first(key_dir) == first(key_dir / 'worker_1') == [4]:
      assert time.monotonic() < deadline and chief.poll() is None and other.poll() is None
      time.sleep(0.2)
    # each worker saved step 4 on its own: the same weights, bit for bit
    for worker_dir in (key_dir, key_dir / 'worker_1'):
      while checkpoints.problem(checkpoints.path_of(str(worker_dir), 4)) is not None:  # still being written
        time.sleep(0.1)
    assert_same_values(checkpoints.path_of(str(key_dir), 4), checkpoints.path_of(str(key_dir / 'worker_1'), 4))
    other.send_signal(signal.SIGKILL)
    _, stderr = chief.communicate(timeout=20 + 60)  # it gives up within --worker_timeout, not never
  finally:
    for process in (chief, other):
      if process.poll() is None:
        process.kill()
  assert_user_error(subprocess.CompletedProcess([], chief.returncode, '', stderr), 'worker 0 lost the other workers',
                    'start every worker again')
  assert len(glob.glob(str(tmp_path / 'logs' / '**' / 'events.out.tfevents.*'), recursive=True)) == 1  # the chief's

  # the chief's newest checkpoint goes on on one device
  newest = checkpoints.steps(str(key_dir))[0]
  result = main_in_process('--train', '--dataset', 'tiny', '--batch_size', '16', '--train_size', '64', '--epoch',
                           str(newest // 4 + 1), *TINY_MODEL, *dir_flags(tmp_path, tiny_idx_root))
  assert result.returncode == 0, result
  assert checkpoints.steps(str(key_dir))[0] == newest + 4


def test_multi_worker_needs_tf_config(tmp_path, monkeypatch):
  monkeypatch.delenv('TF_CONFIG', raising=False)
  assert_error(main_in_process('--train', '--dataset', 'tiny', '--strategy', 'multi_worker'),
               '--strategy multi_worker needs the TF_CONFIG environment variable')
