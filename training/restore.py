"""Loading a checkpoint into a graph: the newest complete one (or a step's, or the best), after checking that it was
written by a configuration whose variables have these shapes and whose labels mean the same; a training graph
loads everything, a test-mode graph G alone, from the moving averages of its weights when there are some.

The files themselves (which checkpoint is complete, setting broken ones aside, saving durably) are checkpoints.py's.

$ python main.py --train --dataset digits      # 'resumed from .../DCGAN.model-1500 at step 1500'
"""

import tensorflow as tf
from absl import logging

from config import saved_config, shape_differences
from errors import UserError
import model
from . import checkpoints

tf1 = tf.compat.v1


def _describe_field(field):
  return {'c_dim': 'images with channels', 'y_dim': 'label classes'}.get(field, f'--{field}')


def restore(dcgan, sess, step=None):
  """Loads the newest complete checkpoint of the run's key (or that of `step`), after checking that it fits.

  Broken newer checkpoints (a killed save) are set aside with a warning; see checkpoints.newest_complete. A
  training graph loads everything; a checkpoint written before --ema existed has no moving averages of G, which
  then start at G's weights, one written before the average had batch-norm statistics of its own starts them at
  G's own, and one written before the data position was saved resumes where its step says. A test-mode graph
  (the sampler alone) loads G's moving averages (and their statistics) into G's variables when the checkpoint has
  them, and G's own otherwise.

  Args:
    dcgan: a model.DCGAN.
    sess: a session of its graph.
    step: None for the newest checkpoint, a step number, or checkpoints.BEST for the one in best/.

  Returns:
    The checkpoint's path, or None when there is none (then nothing is loaded).

  Raises:
    UserError: the checkpoint was written with flags that give variables of other shapes, or on classes of other
      names, or `step` has no complete checkpoint (or there is no best one).
  """
  cfg = dcgan.config
  path = checkpoints.find(cfg.checkpoint_path, step)
  if path is None:
    return None
  saved = saved_config(cfg.checkpoint_path)
  differences = shape_differences(saved, cfg) if saved else []
  if differences:
    raise UserError(f'the checkpoint in {cfg.checkpoint_path} does not fit: it was trained with ' +
                    ', '.join(f'{_describe_field(f)} {old} (now {new})' for f, old, new in differences) +
                    '; use the old values, or --run_name NAME to start a new run beside it')
  if saved and saved.class_names and cfg.class_names and saved.class_names != cfg.class_names:
    raise UserError(f'the checkpoint in {cfg.checkpoint_path} was trained on the classes '
                    f'{", ".join(saved.class_names)} (labels 0 to {len(saved.class_names) - 1}), but the data now has '
                    f'{", ".join(cfg.class_names)}: its labels would change meaning; restore the class folders, or use '
                    '--run_name NAME to start a new run beside it')
  stored = dict(tf.train.list_variables(path))
  if dcgan.training:
    _restore_training(dcgan, sess, path, stored)
    return path
  names = {}
  for variable in dcgan.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES):
    average = f'{variable.op.name}/{model.EMA_NAME}'
    names[average if cfg.ema and average in stored else variable.op.name] = variable
  _check_fit(path, stored, names)
  tf1.train.Saver(names).restore(sess, path)
  return path


def _restore_training(dcgan, sess, path, stored):
  """Everything, through the newest checkpoints' Saver; what a checkpoint of an earlier version lacks starts
  afresh, and the rest is loaded by _load."""
  names, saving = dcgan.checkpoint_names(), dcgan.saving
  before_ema = _lacking(dcgan.averages(), stored)
  before_statistics = _lacking(dcgan.average_statistics(), stored)
  position = dcgan.data_position.op.name
  missing = before_ema | before_statistics | ({position} if position not in stored else set())
  present = {n: v for n, v in names.items() if n not in missing}
  _check_fit(path, stored, present)
  if not missing:
    saving.latest.restore(sess, path)
  else:  # (the data position, when missing, stays -1: the trainer resumes where the step says)
    _load(sess, path, present)
  if before_ema:
    sess.run(saving.start_averages)
    logging.info('%s holds no moving averages of G (it was written before --ema): they start at G\'s weights',
                 path)
  elif before_statistics:
    sess.run(saving.start_statistics)
    logging.info('%s holds no batch-norm statistics of the average of G (it was written before they existed): '
                 'they start at G\'s own', path)
  sess.run(saving.sync_replicas)


def _load(sess, path, names):
  """Loads the variables of `names` (name in the checkpoint -> variable) from the checkpoint `path`, each through
  its initializer fed the saved value: the finalized training graph has no Saver of a part of its variables (one
  for each part a checkpoint of an earlier version may lack would be a few ops per variable)."""
  reader = tf.train.load_checkpoint(path)
  feeds = {}
  for name, variable in names.items():
    for copy in getattr(variable, 'values', [variable]):  # (a mirrored variable's initializer is its copies')
      feeds[copy.initializer] = reader.get_tensor(name)
  sess.run(list(feeds), {initializer.inputs[1]: value for initializer, value in feeds.items()})


def _lacking(pairs, stored):
  """The names of the averages of (variable, average) `pairs` when the checkpoint holds none of them (it was
  written before they existed); else none."""
  names = {a.op.name for _, a in pairs}
  return set() if names & set(stored) else names


def _check_fit(path, stored, names):
  for name, variable in names.items():
    shape = variable.shape.as_list()
    if stored.get(name) != shape:
      found = 'is missing' if name not in stored else f'has shape {stored[name]}'
      raise UserError(f'the checkpoint {path} does not fit this model: variable {name} {found}, '
                      f'the model needs {shape}; it was written by another configuration')
