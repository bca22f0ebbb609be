"""Never lose a run: signals, kill -9 (also inside a save), a full disk, NaN, rollback.

main.py runs in a subprocess where the process is the subject (a signal, a kill, a file-size limit), in process
otherwise. Every run here is --deterministic, so "no step lost" is checked the strict way: a run that is
stopped, killed or rolled back and then resumed ends with weights bit-identical to one uninterrupted run.
"""

import glob
import logging
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from training import checkpoints
from conftest import (ROOT, TINY_MODEL, assert_error, assert_same_values, assert_user_error, dir_flags,
                      main_in_process, once_per_run, signalled_inside_the_save_of, stalled_at)

KEY = 'tiny_28_28'
# 96 digits, batch 16, 64 per epoch: 4 steps an epoch; a checkpoint every step, so kills often land in a save.
RUN = ['--train', '--dataset', 'tiny', '--batch_size', '16', '--train_size', '64', '--ckpt_freq', '1',
       '--max_to_keep', '3', '--sample_freq', '1000', '--log_freq', '1', '--deterministic', *TINY_MODEL]
EPOCHS = 8  # 32 steps: room for a signal at step 3 or three random kills, each a few steps on
TOTAL = 4 * EPOCHS


def _ckpt(run_dir, step=None):
  directory = str(run_dir / 'ckpt' / KEY)
  return directory if step is None else checkpoints.path_of(directory, step)


def _start(run_dir, data_root, *extra, preexec_fn=None, command=None):
  """Starts main.py (or `command`) in the background; stderr goes to run_dir/stderr.txt."""
  log = open(run_dir / 'stderr.txt', 'w')
  args = command or [sys.executable, os.path.join(ROOT, 'main.py')]
  process = subprocess.Popen([*args, *RUN, '--epoch', str(EPOCHS), *dir_flags(run_dir, data_root), *extra],
                             cwd=run_dir, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL,
                             preexec_fn=preexec_fn)
  log.close()
  return process


def _wait_for(run_dir, pattern, process, timeout=120):
  """Waits until stderr.txt has a line matching `pattern`; returns the match."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    match = re.search(pattern, (run_dir / 'stderr.txt').read_text())
    if match:
      return match
    assert process.poll() is None, (run_dir / 'stderr.txt').read_text()
    time.sleep(0.01)
  raise AssertionError(f'no {pattern!r} within {timeout} s')


@pytest.fixture(scope='session')
def reference(tmp_path_factory, tiny_idx_root):
  """The final checkpoint of one uninterrupted run (made once a test run, read by every worker)."""
  def run(run_dir):
    result = main_in_process(*RUN, '--epoch', str(EPOCHS), *dir_flags(run_dir, tiny_idx_root))
    assert result.returncode == 0, result

  return _ckpt(once_per_run(tmp_path_factory, 'reference', run), TOTAL)


@pytest.fixture(scope='session')
def one_epoch(tmp_path_factory, tiny_idx_root):
  """The checkpoints (steps 2, 3 and 4) of one epoch, made once a test run; copy_to() gives a test its own."""
  def run(run_dir):
    assert main_in_process(*RUN, '--epoch', '1', *dir_flags(run_dir, tiny_idx_root)).returncode == 0

  made = once_per_run(tmp_path_factory, 'one_epoch', run)
  return lambda run_dir: shutil.copytree(made / 'ckpt', run_dir / 'ckpt')


class _Log(logging.Handler):
  """The messages logged while it is attached to absl's logger."""

  def __init__(self):
    super().__init__(logging.INFO)
    self.lines = []

  def emit(self, record):
    self.lines.append(record.getMessage())

  def __enter__(self):
    logging.getLogger('absl').addHandler(self)
    return self

  def __exit__(self, *exc_info):
    logging.getLogger('absl').removeHandler(self)


def _finish(run_dir, data_root, reference=None, epochs=EPOCHS):
  """Runs to the end of `epochs` (in process); with `reference`, checks that the weights are those of an
  uninterrupted run. Returns what it logged."""
  with _Log() as log:
    result = main_in_process(*RUN, '--epoch', str(epochs), *dir_flags(run_dir, data_root))
  assert result.returncode == 0, result
  assert checkpoints.steps(_ckpt(run_dir))[0] == 4 * epochs
  if reference:
    assert_same_values(_ckpt(run_dir, TOTAL), reference)
  return '\n'.join(log.lines)


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
@pytest.mark.process
def test_a_signal_saves_the_current_step_and_resume_ends_bit_identical(tmp_path, tiny_idx_root, reference,
                                                                       signum):
  process = _start(tmp_path, tiny_idx_root, '--ckpt_freq', '1000')  # the only mid-run checkpoint is the signal's
  _wait_for(tmp_path, r'step 3/', process)
  process.send_signal(signum)
  assert process.wait(timeout=120) == 0
  stderr = (tmp_path / 'stderr.txt').read_text()
  stopped = re.search(r'stopped by (\w+) at step (\d+); saved (\S+): run the same command to go on', stderr)
  assert stopped, stderr
  assert stopped[1] == signal.Signals(signum).name and 'Traceback' not in stderr
  step = int(stopped[2])
  assert 3 <= step < TOTAL
  # every step that ran is in the checkpoint: the last progress line is the step it saved
  assert int(re.findall(r'step (\d+)/', stderr)[-1]) == step
  assert stopped[3] == _ckpt(tmp_path, step) and checkpoints.steps(_ckpt(tmp_path)) == [step]
  # events were flushed on the way out
  assert glob.glob(str(tmp_path / 'logs' / KEY / 'events.out.tfevents.*'))
  if signum == signal.SIGTERM:  # (one resume to the end is enough to show that nothing was lost)
    assert f'resumed from {_ckpt(tmp_path, step)} at step {step}' in _finish(tmp_path, tiny_idx_root, reference)


def _complete_steps(directory):
  """The steps whose checkpoints read back whole, newest first, judged by the test itself."""
  return [s for s in checkpoints.steps(directory) if checkpoints.problem(checkpoints.path_of(directory, s)) is None]


def _wait_until_paused(process, timeout=120):
  """Waits until `process` is stopped (by SIGSTOP), as /proc tells."""
  deadline = time.monotonic() + timeout
  while open(f'/proc/{process.pid}/stat').read().rpartition(')')[2].split()[0] != 'T':
    assert process.poll() is None and time.monotonic() < deadline
    time.sleep(0.01)


@pytest.mark.process
def test_ctrl_c_inside_a_step_that_never_ends_stops_within_seconds_and_keeps_the_last_checkpoint(tmp_path,
                                                                                                 tiny_idx_root):
  process = _start(tmp_path, tiny_idx_root, command=stalled_at(3, grace=2))
  _wait_for(tmp_path, r'step 3 stalls', process)
  signalled = time.monotonic()
  process.send_signal(signal.SIGINT)
  assert process.wait(timeout=60) == 130
  assert time.monotonic() - signalled < 15  # the grace (2 s here), not the step
  stderr = (tmp_path / 'stderr.txt').read_text()
  assert 'the step did not end within 2 s of SIGINT: stopped at once; the last checkpoint is intact' in stderr
  assert 'Traceback' not in stderr
  assert checkpoints.steps(_ckpt(tmp_path))[0] == 3  # the steps before the stalled one, saved every step
  resumed = main_in_process(*RUN, '--epoch', '1', *dir_flags(tmp_path, tiny_idx_root))
  assert resumed.returncode == 0 and checkpoints.steps(_ckpt(tmp_path))[0] == 4


@pytest.mark.process
def test_a_second_run_on_the_same_key_stops_at_once_and_the_first_ends_untouched(tmp_path, tiny_idx_root,
                                                                                 one_epoch):
  # the first pauses itself inside its save of step 3, holding the lock: the second meets it whatever the timing
  first = _start(tmp_path, tiny_idx_root, '--epoch', '1', command=signalled_inside_the_save_of(3, signal.SIGSTOP))
  try:
    _wait_until_paused(first)
    with _Log() as log:  # (the second run in this process: its exit code and sentence are the subject)
      second = main_in_process(*RUN, '--epoch', '1', *dir_flags(tmp_path, tiny_idx_root))
  finally:
    first.send_signal(signal.SIGCONT)
  assert_error(second, f'{_ckpt(tmp_path)} is in use: pid {first.pid} on {socket.gethostname()} since',
               '(main.py --train --dataset tiny', 'training does not start')
  assert not any(line.startswith('dataset tiny:') for line in log.lines)  # it stopped before reading the data
  assert first.wait(timeout=300) == 0
  assert checkpoints.steps(_ckpt(tmp_path)) == [4, 3, 2]
  one_epoch(tmp_path / 'alone')
  assert_same_values(_ckpt(tmp_path, 4), _ckpt(tmp_path / 'alone', 4))  # as if it had run alone
  assert not (tmp_path / 'ckpt' / KEY / checkpoints.LOCK_FILE).exists()  # released: no lock file names a holder


KILLS = 3  # at random moments, with a checkpoint every step (the kill inside a save is planted below)


@pytest.mark.process
def test_sigkill_at_random_moments_never_loses_a_checkpoint(tmp_path, tiny_idx_root, reference):
  rng = random.Random(20)
  directory, kills = _ckpt(tmp_path), 0
  expected = None  # the step the next run must resume from
  while kills < KILLS:
    process = _start(tmp_path, tiny_idx_root)
    started = _wait_for(tmp_path, r'(started|resumed from (\S+)) at step (\d+)', process)
    if expected is not None:
      assert started[2] == checkpoints.path_of(directory, expected), (tmp_path / 'stderr.txt').read_text()
    _wait_for(tmp_path, rf'step {int(started[3]) + 1}/', process)  # training (and saving every step) is under way
    time.sleep(rng.uniform(0, 0.25))
    process.kill()
    process.wait()
    kills += 1
    with checkpoints.writer_lock(_ckpt(tmp_path), 'a test'):  # kill -9 left no lock behind
      pass
    complete = _complete_steps(directory)
    expected = complete[0] if complete else None
  _finish(tmp_path, tiny_idx_root, reference)


@pytest.mark.process
def test_sigkill_inside_a_save_resumes_from_the_newest_complete_checkpoint(tmp_path, tiny_idx_root):
  process = _start(tmp_path, tiny_idx_root, command=signalled_inside_the_save_of(5))
  assert process.wait(timeout=120) == -signal.SIGKILL
  state = tf.train.get_checkpoint_state(_ckpt(tmp_path))
  assert state.model_checkpoint_path.endswith('-4')  # the state file never heard of step 5...
  assert checkpoints.problem(_ckpt(tmp_path, 5)) is None  # ...whose files were written: the kill hit mid-save
  assert f'resumed from {_ckpt(tmp_path, 5)} at step 5' in _finish(tmp_path, tiny_idx_root, epochs=2)


def test_half_written_checkpoint_is_set_aside_and_the_previous_one_used(tmp_path, tiny_idx_root, one_epoch):
  one_epoch(tmp_path)
  data = glob.glob(_ckpt(tmp_path, 4) + '.data-*')[0]
  with open(data, 'r+b') as f:  # what a kill in the middle of writing the data leaves
    f.truncate(os.path.getsize(data) // 2)
  os.makedirs(_ckpt(tmp_path, 5) + '_temp')  # scratch of a killed save, in both of the Saver's layouts
  with open(_ckpt(tmp_path, 5) + '.data-00000-of-00001.tempstate123', 'wb') as f:
    f.write(b'half')
  log = _finish(tmp_path, tiny_idx_root, epochs=2)
  assert f'resumed from {_ckpt(tmp_path, 3)} at step 3' in log
  assert re.search(r'set aside \S+DCGAN.model-4 \(.+\) in \S+incomplete', log), log
  assert os.path.exists(os.path.join(_ckpt(tmp_path), 'incomplete', os.path.basename(data)))  # moved, not deleted
  assert not glob.glob(os.path.join(_ckpt(tmp_path), '*_temp')) and not glob.glob(_ckpt(tmp_path, 5) + '*')


def _limit_file_size(size):
  return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


@pytest.mark.process
def test_a_failed_save_stops_cleanly_and_keeps_the_last_checkpoint(tmp_path, tiny_idx_root):
  # The MNIST model's big fully connected layers: a checkpoint of about 27 MB, far more than the graph, samples
  # or config files.
  big = [*RUN, '--conditioning', 'mnist', '--gfc_dim', '1024', '--dfc_dim', '1024', '--ckpt_freq', '2',
         *dir_flags(tmp_path, tiny_idx_root)]
  assert main_in_process(*big, '--epoch', '1').returncode == 0
  before = checkpoints.problem(_ckpt(tmp_path, 4))
  assert before is None
  # Files may grow to 8 MB: the next save fails with EFBIG, as a full disk fails it with ENOSPC.
  process = subprocess.run([sys.executable, os.path.join(ROOT, 'main.py'), *big, '--epoch', '2'], cwd=tmp_path,
                           capture_output=True, text=True, preexec_fn=_limit_file_size(8 << 20), timeout=600)
  error = assert_user_error(process, 'could not write the checkpoint of step 6',
                            f'the last checkpoint, {_ckpt(tmp_path, 4)}, is intact')
  assert 'File too large' in error
  assert checkpoints.steps(_ckpt(tmp_path)) == [4, 2]
  assert checkpoints.problem(_ckpt(tmp_path, 4)) is None
  assert not glob.glob(_ckpt(tmp_path, 6) + '*')


def test_nan_loss_stops_at_once_and_saves_nothing_of_it(tmp_path, tiny_idx_root, one_epoch):
  one_epoch(tmp_path)
  # An absurd learning rate sends the weights to Inf within a step, the losses to NaN.
  result = main_in_process(*RUN, '--epoch', '2', '--learning_rate', '1e30', *dir_flags(tmp_path, tiny_idx_root))
  error = assert_error(result, 'training diverged', f'The last good checkpoint is {_ckpt(tmp_path, 4)}', code=3)
  step = int(re.search(r'step (\d+)', error)[1])
  assert step == 5 and checkpoints.steps(_ckpt(tmp_path))[0] == 4
  for kept in checkpoints.steps(_ckpt(tmp_path)):
    assert checkpoints.problem(_ckpt(tmp_path, kept)) is None


def test_checkpoint_step_rolls_the_run_back_and_keeps_the_newer_ones_aside(tmp_path, tiny_idx_root, caplog):
  assert main_in_process(*RUN, '--epoch', '2', *dir_flags(tmp_path, tiny_idx_root)).returncode == 0
  assert checkpoints.steps(_ckpt(tmp_path)) == [8, 7, 6]
  assert_error(main_in_process(*RUN, '--epoch', '2', '--checkpoint', '2', *dir_flags(tmp_path, tiny_idx_root)),
               'no checkpoint of step 2', 'steps there: 8, 7, 6')
  with caplog.at_level(logging.INFO):
    result = main_in_process(*RUN, '--epoch', '2', '--checkpoint', '6', *dir_flags(tmp_path, tiny_idx_root))
  assert result.returncode == 0, result
  assert f'resumed from {_ckpt(tmp_path, 6)} at step 6' in caplog.text
  rolled_back = sorted(os.listdir(os.path.join(_ckpt(tmp_path), 'rolled_back')))
  assert [f for f in rolled_back if f.endswith('.index')] == ['DCGAN.model-7.index', 'DCGAN.model-8.index']
  # steps 7 and 8 ran again from step 6, deterministically: the same weights as the first time
  assert_same_values(_ckpt(tmp_path, 8), os.path.join(_ckpt(tmp_path), 'rolled_back', 'DCGAN.model-8'))


def test_test_mode_refuses_a_folder_of_only_broken_checkpoints(tmp_path, tiny_idx_root, one_epoch, caplog):
  one_epoch(tmp_path)
  for step in checkpoints.steps(_ckpt(tmp_path)):
    data = glob.glob(_ckpt(tmp_path, step) + '.data-*')[0]
    with open(data, 'r+b') as f:
      f.truncate(100)
  with caplog.at_level(logging.WARNING):
    result = main_in_process('--dataset', 'tiny', *dir_flags(tmp_path, tiny_idx_root))
  assert_error(result, f'no complete checkpoint in {_ckpt(tmp_path)}')
  assert 'set aside' in caplog.text
