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
import datasets
import model
from conftest import (ROOT, TINY_MODEL, assert_same_values, assert_user_error, checkpoint_values, dir_flags, run_main,
                      write_idx_dataset)

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


def test_two_workers_end_with_the_same_weights_and_the_chief_checkpoint_loads_on_one_device(tmp_path, tiny_idx_root):
  workers = _start_workers(tmp_path, tiny_idx_root, '--train_size', '64', '--epoch', '2', '--worker_timeout', '120')
  outputs = [worker.communicate(timeout=300) for worker in workers]
  for worker, (_, stderr) in zip(workers, outputs):
    assert worker.returncode == 0, stderr
  key_dir = tmp_path / 'ckpt' / 'tiny_28_28'
  assert checkpoints.steps(str(key_dir)) == [8]
  assert_same_values(checkpoints.path_of(str(key_dir), 8), checkpoints.path_of(str(key_dir / 'worker_1'), 8))
  assert len(glob.glob(str(tmp_path / 'logs' / '**' / 'events.out.tfevents.*'), recursive=True)) == 1  # the chief's

  result = run_main('--train', '--dataset', 'tiny', '--batch_size', '16', '--train_size', '64', '--epoch', '3',
                    *TINY_MODEL, *dir_flags(tmp_path, tiny_idx_root), cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  assert 'DCGAN.model-8 at step 8' in result.stderr and checkpoints.steps(str(key_dir))[0] == 12


def test_a_worker_that_dies_stops_the_other_with_one_line(tmp_path, tiny_idx_root):
  chief, other = _start_workers(tmp_path, tiny_idx_root, '--epoch', '1000', '--worker_timeout', '20')
  try:
    deadline = time.monotonic() + 120
    while not list((tmp_path / 'samples').glob('*/train_*.png')) and time.monotonic() < deadline:
      time.sleep(0.5)  # the chief writes its first grid after --sample_freq steps: both are training
    assert chief.poll() is None and other.poll() is None
    other.send_signal(signal.SIGKILL)
    _, stderr = chief.communicate(timeout=20 + 60)  # it gives up within --worker_timeout, not never
  finally:
    for process in (chief, other):
      if process.poll() is None:
        process.kill()
  assert_user_error(subprocess.CompletedProcess([], chief.returncode, '', stderr), 'worker 0 lost the other workers',
                    'start every worker again')


def test_multi_worker_needs_tf_config(tmp_path, monkeypatch):
  monkeypatch.delenv('TF_CONFIG', raising=False)
  result = run_main('--train', '--dataset', 'tiny', '--strategy', 'multi_worker', cwd=tmp_path)
  assert_user_error(result, '--strategy multi_worker needs the TF_CONFIG environment variable')
