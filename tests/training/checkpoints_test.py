"""checkpoints.py: finding the newest complete checkpoint among broken ones, rollback, failed saves."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from errors import UserError
from training import checkpoints

tf1 = tf.compat.v1


def _write_checkpoints(directory, steps):
  """Saves a two-variable graph at each step, with the step number as the value of `w`."""
  with tf.Graph().as_default():
    w = tf1.get_variable('w', [64, 64], initializer=tf1.zeros_initializer())
    b = tf1.get_variable('b', [64], initializer=tf1.ones_initializer())
    saver = tf1.train.Saver(max_to_keep=10)
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      for step in steps:
        sess.run(w.assign(tf.fill([64, 64], float(step))))
        checkpoints.save(saver, sess, directory, step, None)
  del b


def _value(path):
  return tf.train.load_checkpoint(path).get_tensor('w')[0, 0]


def _data_file(directory, step):
  return glob.glob(checkpoints.path_of(directory, step) + '.data-*')[0]


def _truncate(directory, step):
  path = _data_file(directory, step)
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)


def _flip_a_byte(directory, step):
  path = _data_file(directory, step)
  data = bytearray(open(path, 'rb').read())
  data[len(data) // 2] ^= 0xFF
  open(path, 'wb').write(bytes(data))


def _drop_data(directory, step):
  os.remove(_data_file(directory, step))


def _empty_index(directory, step):
  open(checkpoints.path_of(directory, step) + '.index', 'wb').close()


@pytest.mark.parametrize('damage', [_truncate, _flip_a_byte, _drop_data, _empty_index])
def test_a_damaged_newest_checkpoint_is_set_aside_and_the_previous_one_found(tmp_path, damage):
  directory = str(tmp_path)
  _write_checkpoints(directory, [1, 2, 3])
  damage(directory, 3)
  assert checkpoints.problem(checkpoints.path_of(directory, 3))
  path = checkpoints.newest_complete(directory)
  assert path == checkpoints.path_of(directory, 2) and _value(path) == 2.0
  assert checkpoints.steps(directory) == [2, 1]
  kept = os.listdir(tmp_path / checkpoints.INCOMPLETE_DIR)
  assert 'DCGAN.model-3.index' in kept  # moved aside, never deleted


def test_scratch_of_a_killed_save_is_removed_and_ignored(tmp_path):
  directory = str(tmp_path)
  _write_checkpoints(directory, [1])
  os.makedirs(checkpoints.path_of(directory, 2) + '_temp')
  with open(checkpoints.path_of(directory, 2) + '.data-00000-of-00001.tempstate99', 'wb') as f:
    f.write(b'\0' * 100)
  assert checkpoints.newest_complete(directory) == checkpoints.path_of(directory, 1)
  assert sorted(os.listdir(tmp_path)) == ['DCGAN.model-1.data-00000-of-00001', 'DCGAN.model-1.index',
                                          'checkpoint']


def test_an_empty_folder_has_no_checkpoint(tmp_path):
  assert checkpoints.newest_complete(str(tmp_path)) is None
  assert checkpoints.newest_complete(str(tmp_path / 'missing')) is None


def test_a_chosen_step_must_exist_and_be_whole(tmp_path):
  directory = str(tmp_path)
  _write_checkpoints(directory, [1, 2, 3])
  assert _value(checkpoints.newest_complete(directory, 2)) == 2.0
  with pytest.raises(UserError, match=r'no checkpoint of step 7 in .* \(steps there: 3, 2, 1\)'):
    checkpoints.newest_complete(directory, 7)
  _truncate(directory, 1)
  with pytest.raises(UserError, match=r'DCGAN.model-1 is damaged'):
    checkpoints.newest_complete(directory, 1)


def test_roll_back_moves_newer_checkpoints_aside(tmp_path):
  directory = str(tmp_path)
  _write_checkpoints(directory, [1, 2, 3, 4])
  checkpoints.roll_back(directory, 2)
  assert checkpoints.steps(directory) == [2, 1]
  assert checkpoints.steps(str(tmp_path / checkpoints.ROLLED_BACK_DIR)) == [4, 3]
  assert _value(checkpoints.path_of(str(tmp_path / checkpoints.ROLLED_BACK_DIR), 4)) == 4.0


def test_managed_lists_what_the_state_file_names_and_still_exists(tmp_path):
  directory = str(tmp_path)
  _write_checkpoints(directory, [1, 2, 3])
  for file in glob.glob(checkpoints.path_of(directory, 1) + '.*'):
    os.remove(file)
  assert checkpoints.managed(directory) == [checkpoints.path_of(directory, s) for s in (2, 3)]


def test_a_failed_save_removes_its_files_and_names_the_intact_checkpoint(tmp_path):
  directory = str(tmp_path / 'ckpt')
  _write_checkpoints(directory, [1])
  with tf.Graph().as_default():
    tf1.get_variable('w', [64, 64])
    saver = tf1.train.Saver()
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      os.rename(directory, directory + '.moved')
      open(directory, 'w').close()  # the folder is now a file: every write into it fails
      with pytest.raises(UserError, match=r'could not write the checkpoint of step 2 to .*ckpt: .*; the last '
                                          r'checkpoint, .*DCGAN.model-1, is intact'):
        checkpoints.save(saver, sess, directory, 2, checkpoints.path_of(directory, 1))
  assert np.isclose(_value(checkpoints.path_of(directory + '.moved', 1)), 1.0)


def test_a_save_reaches_the_disk_before_the_state_file_names_it(tmp_path, monkeypatch):
  """The order a power cut needs: the checkpoint's files and folder synced, then the state file written, then
  it and the folder synced, then the oldest checkpoint beyond --max_to_keep deleted."""
  from tensorflow.python.checkpoint import checkpoint_management
  events, fsync, update = [], os.fsync, checkpoint_management.update_checkpoint_state_internal

  def recording_fsync(fd):
    events.append(('fsync', os.path.relpath(os.readlink(f'/proc/self/fd/{fd}'), tmp_path)))
    fsync(fd)

  def recording_update(*args, **kwargs):
    events.append(('state', os.path.basename(kwargs['model_checkpoint_path'])))
    update(*args, **kwargs)

  directory = str(tmp_path)
  with tf.Graph().as_default():
    tf1.get_variable('w', [4])
    saver = tf1.train.Saver(max_to_keep=1)
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      checkpoints.save(saver, sess, directory, 1, None)
      monkeypatch.setattr(os, 'fsync', recording_fsync)
      monkeypatch.setattr(checkpoint_management, 'update_checkpoint_state_internal', recording_update)
      checkpoints.save(saver, sess, directory, 2, checkpoints.path_of(directory, 1))
  files = sorted(('fsync', os.path.basename(p)) for p in glob.glob(checkpoints.path_of(directory, 2) + '.*'))
  assert sorted(events[:2]) == files and files == [('fsync', 'DCGAN.model-2.data-00000-of-00001'),
                                                   ('fsync', 'DCGAN.model-2.index')]
  assert events[2:] == [('fsync', '.'), ('state', 'DCGAN.model-2'), ('fsync', 'checkpoint'), ('fsync', '.')]
  assert checkpoints.steps(directory) == [2]  # step 1 deleted after all that
  assert tf.train.get_checkpoint_state(directory).all_model_checkpoint_paths == [checkpoints.path_of(directory, 2)]
