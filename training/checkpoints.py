"""Checkpoint files that survive anything: find the newest complete one, write without ever breaking the last.

TensorFlow's Saver writes `DCGAN.model-<step>.data-*` through `*.tempstate*` files (or a `<prefix>_temp/` folder)
and the `.index` file last, then names the step in the `checkpoint` state file. A process killed on the way can
leave a temp folder, a data file without its index, or an index whose data is cut short. So a checkpoint counts
only once every tensor in it reads back with a good checksum; anything less is set aside (moved, never deleted)
and the next older one is used.

$ python main.py --train --dataset digits    # 'resumed from .../DCGAN.model-1500 (step 1500)'
"""

import contextlib
import glob
import json
import os
import re
import shutil

import tensorflow as tf
from tensorflow.python.checkpoint import checkpoint_management
from absl import logging

from config import BEST_CHECKPOINT
from common import disk
from errors import UserError, first_line

PREFIX = 'DCGAN.model'
INCOMPLETE_DIR = 'incomplete'
ROLLED_BACK_DIR = 'rolled_back'
BEST = BEST_CHECKPOINT  # --checkpoint best
BEST_DIR = 'best'
BEST_FILE = 'best.json'
STATE_FILE = 'checkpoint'  # the Saver's state file: the newest checkpoint and those kept
LOCK_FILE = 'run.lock'
_INDEX = re.compile(re.escape(PREFIX) + r'-(\d+)\.index')


def path_of(directory, step):
  return os.path.join(directory, f'{PREFIX}-{step}')


def steps(directory):
  """The steps that have an index file in `directory`, newest first."""
  if not os.path.isdir(directory):
    return []
  found = (_INDEX.fullmatch(name) for name in os.listdir(directory))
  return sorted((int(m[1]) for m in found if m), reverse=True)


def problem(path):
  """Why the checkpoint `path` (a prefix) cannot be loaded, or None when every tensor reads back intact."""
  try:
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)  # checks the tensor's CRC32 and that its bytes are all there
  except Exception as e:  # pylint: disable=broad-except; the reader raises OpError, IndexError, ValueError...
    return first_line(e)
  return None


def files_of(path):
  return [p for p in glob.glob(glob.escape(path) + '.*') if os.path.isfile(p)]


def set_aside(path, reason, folder=INCOMPLETE_DIR):
  """Moves the files of checkpoint `path` into `<its folder>/<folder>/`, so that no run picks it again."""
  target = os.path.join(os.path.dirname(path), folder)
  os.makedirs(target, exist_ok=True)
  for file in files_of(path):
    os.replace(file, os.path.join(target, os.path.basename(file)))
  logging.warning('set aside %s (%s) in %s', path, reason, target)


def remove_scratch(directory):
  """Deletes the `<prefix>_temp` folders and `*.tempstate*` files a killed save leaves: half-written data."""
  for scratch in glob.glob(os.path.join(glob.escape(directory), f'{PREFIX}-*_temp')):
    shutil.rmtree(scratch, ignore_errors=True)
  for scratch in glob.glob(os.path.join(glob.escape(directory), f'{PREFIX}-*.tempstate*')):
    os.remove(scratch)


def newest_complete(directory, step=None):
  """The newest checkpoint in `directory` that loads completely, setting broken newer ones aside.

  Args:
    directory: a run's checkpoint folder.
    step: only this step's checkpoint (an error if it is missing or broken); None for the newest.

  Returns:
    The checkpoint's path prefix, or None when the folder holds no checkpoint.

  Raises:
    UserError: `step` was asked for and has no complete checkpoint.
  """
  remove_scratch(directory)
  available = steps(directory)
  if step is not None:
    if step not in available:
      listed = ', '.join(map(str, available)) or 'none'
      raise UserError(f'no checkpoint of step {step} in {directory} (steps there: {listed})')
    reason = problem(path_of(directory, step))
    if reason:
      raise UserError(f'the checkpoint {path_of(directory, step)} is damaged ({reason})')
    return path_of(directory, step)
  for candidate in available:
    reason = problem(path_of(directory, candidate))
    if reason is None:
      return path_of(directory, candidate)
    set_aside(path_of(directory, candidate), reason)
  return None


def find(directory, step=None):
  """The checkpoint to load: newest_complete(directory, step), or best_path(directory) when `step` is BEST."""
  return best_path(directory) if step == BEST else newest_complete(directory, step)


def managed(directory):
  """The checkpoints that the state file lists and that still exist, oldest first (for max_to_keep)."""
  try:
    state = tf.train.get_checkpoint_state(directory)
  except (tf.errors.OpError, ValueError):  # an unreadable state file: keep every file rather than guess
    return []
  if state is None:
    return []
  paths = [os.path.join(directory, os.path.basename(p)) for p in state.all_model_checkpoint_paths]
  return [p for p in paths if os.path.exists(p + '.index')]


def roll_back(directory, step):
  """Moves every checkpoint newer than `step` into `<directory>/rolled_back/`, so training goes on from `step`."""
  for newer in steps(directory):
    if newer > step:
      set_aside(path_of(directory, newer), f'newer than --checkpoint {step}', ROLLED_BACK_DIR)


def save(saver, sess, directory, step, last_good):
  """Writes checkpoint `step`; on failure removes what it wrote and leaves `last_good` as it was.

  Returns:
    The new checkpoint's path prefix.

  Raises:
    UserError: the checkpoint could not be written (a full disk, a write error).
  """
  prefix = path_of(directory, step)
  try:
    os.makedirs(directory, exist_ok=True)
    path = saver.save(sess, os.path.join(directory, PREFIX), global_step=step, write_meta_graph=False,
                      write_state=False)
    # What Saver.save does after writing with write_state=True, with fsyncs in between: the state file names
    # the new checkpoint only once its bytes and names are on the disk, so that after a power cut it never
    # names files the page cache had not written yet; older checkpoints go only once the state file is durable.
    for file in files_of(path):
      disk.fsync(file)
    disk.fsync(directory)
    saver._RecordLastCheckpoint(path)  # (the Saver's own bookkeeping of --max_to_keep)
    # (what the deprecated tf.compat.v1.train.update_checkpoint_state calls, without its deprecation warning)
    checkpoint_management.update_checkpoint_state_internal(save_dir=directory, model_checkpoint_path=path,
                                                           all_model_checkpoint_paths=saver.last_checkpoints,
                                                           save_relative_paths=False)
    disk.fsync(os.path.join(directory, STATE_FILE))
    disk.fsync(directory)
    saver._MaybeDeleteOldCheckpoints()
    return path
  except (tf.errors.OpError, OSError, ValueError) as e:
    shutil.rmtree(prefix + '_temp', ignore_errors=True)
    for file in files_of(prefix):
      os.remove(file)
    kept = f'the last checkpoint, {last_good}, is intact' if last_good else 'no earlier checkpoint exists'
    raise UserError(f'could not write the checkpoint of step {step} to {directory}: {first_line(e)}; {kept}. '
                    'Free some space (or fix the folder) and run the same command to go on') from None


# The best checkpoint by an evaluation metric (--eval_freq), in <directory>/best/, named by best/best.json.

def best_directory(directory):
  return os.path.join(directory, BEST_DIR)


def best(directory):
  """What best/best.json records: {'step', 'metric', 'value', 'results'}, or None when there is no such file."""
  try:
    with open(os.path.join(best_directory(directory), BEST_FILE)) as f:
      info = json.load(f)
  except (OSError, ValueError):
    return None
  valid = isinstance(info, dict) and isinstance(info.get('step'), int) and isinstance(info.get('value'), (int, float))
  return info if valid else None


def best_path(directory):
  """The best checkpoint's path: the step best.json names (or else the newest complete one in best/).

  Raises:
    UserError: there is no best checkpoint, or it is damaged.
  """
  folder, info = best_directory(directory), best(directory)
  if info is not None and info['step'] in steps(folder):
    return newest_complete(folder, info['step'])
  path = newest_complete(folder)
  if path is None:
    raise UserError(f'no best checkpoint in {folder}: train with --eval_freq to keep one')
  return path


def save_best(saver, sess, directory, step, info):
  """Writes checkpoint `step` into best/, then best.json with `info`, then deletes the best before it.

  Killed at any point, best/ still holds a complete best checkpoint that best.json names (or the newest there).

  Returns:
    The new best checkpoint's path prefix.

  Raises:
    UserError: the checkpoint or best.json could not be written; the previous best is left as it was.
  """
  folder = best_directory(directory)
  older = [s for s in steps(folder) if s != step]
  path = save(saver, sess, folder, step, path_of(folder, older[0]) if older else None)
  text = json.dumps({'step': step, **info}, indent=1, sort_keys=True) + '\n'
  try:
    disk.write_text(os.path.join(folder, BEST_FILE), text, durable=True)
  except OSError as e:
    raise UserError(f'could not write {os.path.join(folder, BEST_FILE)}: {first_line(e)}') from None
  for old in older:
    for file in files_of(path_of(folder, old)):
      os.remove(file)
  return path


# One writer per key: an advisory lock on <directory>/run.lock, held for the whole run.

@contextlib.contextmanager
def writer_lock(directory, what):
  """Holds the key's lock while the block runs: one run at a time writes checkpoints, config.json, best/ and
  the caches of `directory` (disk.exclusive_lock; docs/reliability.md for NFS). A run that stops before
  it writes anything leaves no folder behind.

  Args:
    directory: the key's checkpoint folder (made if missing, removed again if the run leaves it empty).
    what: what this run does, for the other run's error ('training', '--evaluate').

  Raises:
    UserError: another process holds the lock; the sentence names it.
  """
  try:
    with disk.exclusive_lock(os.path.join(directory, LOCK_FILE), what):
      yield
  except disk.Busy as holder:
    raise UserError(f'{directory} is in use: {holder} holds its lock. Two runs on one key would delete '
                    f'each other\'s checkpoints, so {what} does not start: wait for that run to end (or stop it); '
                    'test mode, --generate and --export only read and work meanwhile') from None
