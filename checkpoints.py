"""Checkpoint files that survive anything: find the newest complete one, write without ever breaking the last.

TensorFlow's Saver writes `DCGAN.model-<step>.data-*` through `*.tempstate*` files (or a `<prefix>_temp/` folder)
and the `.index` file last, then names the step in the `checkpoint` state file. A process killed on the way can leave a temp folder, a data
file without its index, or an index whose data is cut short. So a checkpoint counts only once every tensor in it
reads back with a good checksum; anything less is set aside (moved, never deleted) and the next older one is used.

$ python main.py --train --dataset digits    # 'resumed from .../DCGAN.model-1500 (step 1500)'
"""

import glob
import os
import re
import shutil

import tensorflow as tf
from absl import logging

from errors import UserError

PREFIX = 'DCGAN.model'
INCOMPLETE_DIR = 'incomplete'
ROLLED_BACK_DIR = 'rolled_back'
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
    return _first_line(e)
  return None


def _first_line(error):
  """The sentence that says what went wrong, without the graph-execution preamble and stack of an OpError."""
  text = getattr(error, 'message', None) or str(error) or type(error).__name__
  noise = ('Graph execution error', 'Detected at node', 'File "', 'Node:', '[[', 'Original stack trace')
  lines = [line.strip() for line in text.splitlines()]
  lines = [line for line in lines if line and not line.startswith(noise)]
  return lines[-1] if lines else type(error).__name__


def _files_of(path):
  return [p for p in glob.glob(glob.escape(path) + '.*') if os.path.isfile(p)]


def set_aside(path, reason, folder=INCOMPLETE_DIR):
  """Moves the files of checkpoint `path` into `<its folder>/<folder>/`, so that no run picks it again."""
  target = os.path.join(os.path.dirname(path), folder)
  os.makedirs(target, exist_ok=True)
  for file in _files_of(path):
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
    return saver.save(sess, os.path.join(directory, PREFIX), global_step=step, write_meta_graph=False)
  except (tf.errors.OpError, OSError, ValueError) as e:
    shutil.rmtree(prefix + '_temp', ignore_errors=True)
    for file in _files_of(prefix):
      os.remove(file)
    kept = f'the last checkpoint, {last_good}, is intact' if last_good else 'no earlier checkpoint exists'
    raise UserError(f'could not write the checkpoint of step {step} to {directory}: {_first_line(e)}; {kept}. '
                    'Free some space (or fix the folder) and run the same command to go on') from None
