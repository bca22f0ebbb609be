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

from app import completion
from config import Config, saved_config
from training import checkpoints
from training import trainer
from conftest import (ROOT, TINY_MODEL, assert_error, assert_same_values, assert_user_error, checkpoint_values,
                      dir_flags, main_in_process, signalled_inside_the_save_of, write_idx_dataset)
from conftest import write_images

tf1 = tf.compat.v1
TWO_CPUS = ('/cpu:0', '/cpu:1')


@pytest.fixture
def tiny(tmp_path):
  """A conditional config and its 64 digits; with TWO_CPUS as its devices."""
  write_idx_dataset(str(tmp_path / 'data' / 'tiny'), 64)
  cfg = Config(dataset='tiny', data_dir=str(tmp_path / 'data'), checkpoint_dir=str(tmp_path / 'ckpt'),
               sample_dir=str(tmp_path / 'samples'), log_dir=str(tmp_path / 'logs'), output_height=28,
               output_width=28, gf_dim=4, df_dim=4, gfc_dim=16, dfc_dim=16, z_dim=8, batch_size=16,
               epoch=1, sample_num=4, devices=TWO_CPUS)
  return completion.prepare(cfg)


def _replica_values(dcgan, sess):
  """{name: [value on each replica]} of every mirrored variable (all but the data position), read in one run."""
  return sess.run({v.name: list(v.values) for v in dcgan.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
                   if v.name != dcgan.data_position.name})


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

  # The checkpoint of two replicas loads on one device; one saved there without averages (as before --ema) loads
  # on both replicas, each variable through each replica's initializer
  single = trainer.Trainer(dataclasses.replace(cfg, devices=(), ema=0.0), dataset)
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
    assert not [name for name in saved if name.endswith('/ExponentialMovingAverage')]
    names = dcgan.checkpoint_names()
    values = sess.run({name: list(getattr(v, 'values', [v])) for name, v in names.items()})
    for name, value in saved.items():
      for copy in values[name]:  # every replica got the single-device weights (the data position has one copy)
        np.testing.assert_array_equal(copy, value)
    for weight, average in dcgan.averages():  # and the averages start at them
      for copy in values[average.op.name]:
        np.testing.assert_array_equal(copy, saved[weight.op.name])


def test_devices_flag_trains_and_test_mode_uses_the_checkpoint(tmp_path, tiny_idx_root):
  flags = dir_flags(tmp_path, tiny_idx_root)
  result = main_in_process('--train', '--dataset', 'tiny', '--batch_size', '16', '--train_size', '32', '--epoch',
                           '2', '--devices', ','.join(TWO_CPUS), *TINY_MODEL, *flags)
  assert result.returncode == 0, result
  assert saved_config(str(tmp_path / 'ckpt' / 'tiny_28_28')).devices == TWO_CPUS
  assert checkpoints.steps(str(tmp_path / 'ckpt' / 'tiny_28_28')) == [4]
  assert main_in_process('--dataset', 'tiny', *flags).returncode == 0  # test mode on one device
  assert (tmp_path / 'samples' / 'tiny_28_28' / 'test_000004.png').exists()


@pytest.mark.parametrize('args, fragments', [
    (['--devices', '/cpu:0,/cpu:1', '--batch_size', '15'], ['--batch_size 15 does not split evenly across 2']),
    (['--num_gpus', '2'], ['--num_gpus 2: only 0 GPU(s) are visible here']),
    (['--devices', 'gpu zero,/cpu:0'], ["'gpu zero' is not a device name"]),
])
def test_device_flags_are_checked(tmp_path, args, fragments):
  (tmp_path / 'tiny').mkdir()  # (a folder: the device flags are the subject)
  assert_error(main_in_process('--train', '--dataset', 'tiny', *args, *dir_flags(tmp_path, tmp_path)), *fragments)


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for sock in sockets:
    sock.bind(('127.0.0.1', 0))
  ports = [sock.getsockname()[1] for sock in sockets]
  for sock in sockets:
    sock.close()
  return ports


def _start_worker(run_dir, data_dir, addresses, index, *args, command=None):
  """Starts worker `index` of the workers at `addresses` (a list of 'host:port'); returns its Popen object."""
  env = dict(os.environ, TF_CONFIG=json.dumps({'cluster': {'worker': addresses},
                                               'task': {'type': 'worker', 'index': index}}))
  return subprocess.Popen(
      [*(command or [sys.executable, os.path.join(ROOT, 'main.py')]), '--train', '--dataset', 'tiny', '--strategy',
       'multi_worker', '--batch_size', '16', *TINY_MODEL, *dir_flags(run_dir, data_dir), *args],
      cwd=run_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _outcome(worker):
  """Waits for a worker's end; returns it as a CompletedProcess (stdout dropped)."""
  _, stderr = worker.communicate(timeout=300)
  return subprocess.CompletedProcess(worker.args, worker.returncode, '', stderr)


@pytest.mark.process
def test_workers_that_fail_and_come_back(tmp_path, tiny_idx_root):
  """Two workers on loopback through one story: the chief killed inside a save, restarted alone, restarted with
  the other reading a folder of its own, then restarted with it. (A checkpoint of several replicas going on on one
  device: test_two_replicas_keep_identical_weights_and_checkpoints_move_to_one_device_and_back.)"""
  key_dir = tmp_path / 'ckpt' / 'tiny_28_28'
  addresses = [f'127.0.0.1:{port}' for port in _free_ports(2)]
  run = ['--train_size', '64', '--epoch', '2', '--ckpt_freq', '1', '--max_to_keep', '3', '--deterministic',
         '--worker_timeout', '10']
  start = lambda index, *extra, command=None: _start_worker(tmp_path, tiny_idx_root, addresses, index, *run, *extra,
                                                            command=command)

  # (1) the chief dies inside the save of step 5, and the other stops within --worker_timeout, not never
  chief, other = start(0, command=signalled_inside_the_save_of(5)), start(1)
  try:
    assert chief.wait(timeout=300) == -signal.SIGKILL
    # (2) the chief restarted alone: the other has left the run, so it stops instead of waiting for it forever
    chief = start(0, '--worker_timeout', '1')
    assert_user_error(_outcome(other), 'worker 1 lost the other workers', 'start every worker again')
    assert_user_error(_outcome(chief), 'worker 0 waited --worker_timeout 1 s for the other workers',
                      'start every worker again')
  finally:
    for worker in (chief, other):
      worker.kill()
      worker.communicate()
  assert tf.train.get_checkpoint_state(str(key_dir)).model_checkpoint_path.endswith('-4')  # unlisted: step 5
  assert checkpoints.problem(checkpoints.path_of(str(key_dir), 5)) is None  # whose files were written
  assert checkpoints.steps(str(key_dir))[0] == 5  # the lone chief saved nothing

  # (3) restarted with the other reading a folder of its own (empty): both stop before the first step
  own = tmp_path / 'own'
  for index, worker in enumerate([start(0), start(1, '--checkpoint_dir', str(own))]):
    result, step = _outcome(worker), (5, 0)[index]
    assert_user_error(result, f'worker {index} restored step {step}', 'did not all restore the same step',
                      'start them all again')
    assert f'step {step + 1}/' not in result.stderr
  assert checkpoints.steps(str(key_dir))[0] == 5 and not checkpoints.steps(str(own / 'tiny_28_28'))

  # (4) both restarted, the other a moment later: they resume together from the newest complete checkpoint
  chief = start(0)
  time.sleep(0.5)
  for index, result in enumerate(map(_outcome, [chief, start(1)])):
    assert result.returncode == 0, result.stderr
    assert f'resumed from {checkpoints.path_of(str(key_dir), 5)} at step 5' in result.stderr, index
  # in lockstep from the same checkpoint: the same weights, bit for bit
  assert_same_values(checkpoints.path_of(str(key_dir), 8), checkpoints.path_of(str(key_dir / 'worker_1'), 8))
  events = glob.glob(str(tmp_path / 'logs' / '**' / 'events.out.tfevents.*'), recursive=True)
  assert len(events) == 2  # the chief's of (1) and (4): the other worker writes none


def test_multi_worker_needs_tf_config(tmp_path, monkeypatch):
  monkeypatch.delenv('TF_CONFIG', raising=False)
  assert_error(main_in_process('--train', '--dataset', 'tiny', '--strategy', 'multi_worker'),
               '--strategy multi_worker needs the TF_CONFIG environment variable')


def test_multi_worker_on_a_cpu_refuses_bfloat16(tmp_path, monkeypatch):
  monkeypatch.setenv('TF_CONFIG', json.dumps({'cluster': {'worker': ['127.0.0.1:1', '127.0.0.1:2']},
                                              'task': {'type': 'worker', 'index': 0}}))
  (tmp_path / 'tiny').mkdir()  # (the data is not read: the precision is refused first)
  assert_error(main_in_process('--train', '--dataset', 'tiny', '--strategy', 'multi_worker', '--device', '/cpu:0',
                               '--precision', 'bfloat16', *dir_flags(tmp_path, tmp_path)),
               '--precision bfloat16 with --strategy multi_worker', 'use --precision float32')


def test_the_tools_train_on_two_replicas_at_the_cpus_precision(tmp_path):
  """Each replica augments its share with draws of its own, and the power iterations run once per D update outside
  the replicas: the tools work under a strategy, at --precision auto (bfloat16 where the CPU has bfloat16 units)."""
  write_images(str(tmp_path / 'data' / 'rgb'), 16, size=(16, 16))
  run = ['--train', '--dataset', 'rgb', '--input_fname_pattern', '*.png', '--output_height', '16', '--batch_size',
         '8', '--gf_dim', '4', '--df_dim', '4', '--augment', 'color,translation,cutout', '--mirror',
         '--spectral_norm', '--nod_batch_norm', '--r1', '1', '--r1_every', '2', *dir_flags(tmp_path, tmp_path / 'data')]
  assert main_in_process(*run, '--epoch', '2', '--ckpt_freq', '2', '--devices', '/cpu:0,/cpu:1', '--precision',
                         'auto') == (0, None)
  key = tmp_path / 'ckpt' / 'rgb_16_16'
  half, whole = (tf.train.load_checkpoint(str(key / f'DCGAN.model-{step}')) for step in (2, 4))
  stored = dict(tf.train.list_variables(str(key / 'DCGAN.model-4')))
  assert sorted(name for name in stored if name.endswith('/u')) == [
      f'discriminator/{layer}/u' for layer in ('h0_conv', 'h1_conv', 'h2_conv', 'h3_conv', 'h4_lin')]
  for name in stored:
    assert np.all(np.isfinite(whole.get_tensor(name))), name
  # the power iterations went on (the last layer's u has one entry: always 1)
  for name in ('h0_conv', 'h1_conv', 'h2_conv', 'h3_conv'):
    assert not np.allclose(half.get_tensor(f'discriminator/{name}/u'), whole.get_tensor(f'discriminator/{name}/u'))
