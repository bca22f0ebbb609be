"""The run modes of main.py, each a plain function of a Config that a test can call in-process.

- train(config): loads the data, completes the config from it (completion.prepare), trains.
- check_data(config): reads every entry of the dataset and prints what it found.
- The modes that use a trained generator take the config saved beside the checkpoint (trained_config()):
  sample() writes a grid, generate() N images, visualize() the pictures of an option, export() a SavedModel
  and a frozen graph, evaluate() scores the generator against the real data.

$ python main.py --train --dataset mnist                   # modes.train
$ python main.py --dataset mnist --generate 100            # modes.generate
"""

import collections
import contextlib
import dataclasses
import json
import os
import re

import tensorflow as tf
from absl import logging

from common import disk
from config import EPOCH_FIELDS, key_prefix, saved_config, square_from_one_side, training_differences
import datasets
from errors import UserError, op_error_text
import evaluation
from gan import losses
import model
from training import checkpoints
from training import restore
from training import trainer
import utils
from . import completion
from . import sampling


SMALL_BATCH = 8  # a batch below this gets a warning: batch norm's statistics over so few images are noise


def train(config, from_step=None):
  """Trains (resuming from the newest checkpoint, or from `from_step`: a step or checkpoints.BEST).

  Returns:
    (the step reached, the signal that stopped training early or None).

  Raises:
    UserError: bad data or flags, a checkpoint that does not fit or cannot be written, lost workers.
    Diverged: a loss or a weight became NaN or Inf.
  """
  config = completion.with_output_size(config)  # (the run's folders are named by it)
  for directory in (config.checkpoint_path, config.sample_path, config.log_path):
    disk.check_writable(directory)
  worker = config.worker_index  # worker 0, the chief, writes
  with checkpoints.writer_lock(config.checkpoint_path, 'training') if worker == 0 else contextlib.nullcontext():
    return _train(config, from_step, worker)


def _train(config, from_step, worker):
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()
  config, dataset = completion.prepare(config)
  _check_batch_size(config, dataset.num_images)
  logging.info('dataset %s: %d images, %d channel(s), %s', config.dataset, dataset.num_images, config.c_dim,
               f'{config.y_dim} label classes (--conditioning {config.conditioning})' if config.y_dim
               else 'unconditional')
  logging.info('config: %s', json.dumps(dataclasses.asdict(config), sort_keys=True))
  shown = model.grid_classes(config.sample_num, config.y_dim)[0] if config.y_dim else ()
  if 0 < len(shown) < config.y_dim:
    names = [config.class_names[c] if config.class_names else str(c) for c in shown]
    logging.info('sample grids: one row for each of %d of the %d classes, spread evenly: %s (--sample_num %d)',
                 len(shown), config.y_dim, ', '.join(names), config.sample_num)
  if losses.LOSSES[config.loss].floor is None:
    logging.info('--loss %s has no least value for D\'s loss: the D-has-won watch is off', config.loss)
  _warn_if_changed(config)
  evaluator = None
  if config.eval_freq and worker == 0:
    evaluator = evaluation.Evaluator(dataset, config, config.eval_samples,
                                     trainer.session_config(config.device))
  try:
    step, stopped_by = trainer.Trainer(config, dataset).train(from_step, evaluator)
  except tf.errors.OpError as e:
    if not config.multi_worker:
      raise
    raise UserError(f'worker {worker} lost the other workers (none of them answered '
                    f'within --worker_timeout {config.worker_timeout:g} s, or one failed): {op_error_text(e)}; the '
                    'chief\'s last checkpoint is intact: start every worker again to go on') from None
  finally:
    if evaluator is not None:
      evaluator.close()
  if not stopped_by and worker:
    logging.info('trained to step %d; the chief (worker 0) wrote the checkpoints, samples and logs', step)
  elif not stopped_by:
    logging.info('trained to step %d: checkpoints in %s, samples in %s, TensorBoard logs in %s', step,
                 config.checkpoint_path, config.sample_path, config.log_path)
  return step, stopped_by


def _check_batch_size(config, count):
  """Refuses a batch larger than what an epoch gives each D update, naming the flags that set both; warns of a
  batch too small for batch norm's statistics (main.py refuses a batch of one).

  Raises:
    UserError: the batch does not fit in an epoch.
  """
  limited = config.train_size is not None and config.train_size < count
  used = config.train_size if limited else count
  if config.batch_size * config.d_steps > used:
    folder = os.path.join(config.data_dir, config.dataset)
    source = f'--train_size {used}' if limited else f'the {count} images of {folder}'
    split = f', shared by --d_steps {config.d_steps} D updates a step' if config.d_steps > 1 else ''
    fixes = ['lower --batch_size'] + ['raise --train_size'] * limited + ['lower --d_steps'] * (config.d_steps > 1)
    raise UserError(f'--batch_size {config.batch_size} is larger than the {used // config.d_steps} images an epoch '
                    f'gives each D update ({source}{split}): {" or ".join(fixes)}')
  if config.batch_size < SMALL_BATCH:
    logging.warning('--batch_size %d: batch norm normalizes each feature over the batch, and its statistics over %d '
                    'images are noise, so training is unsteady and may not learn at all; %d or more is usual',
                    config.batch_size, config.batch_size, 16)


def _warn_if_changed(config):
  """A resumed run may change how it trains (not a shape: that stops it in restore.restore): says what changed."""
  saved = saved_config(config.checkpoint_path)
  resumed = saved is not None and checkpoints.steps(config.checkpoint_path)
  changed = training_differences(saved, config) if resumed else []
  if not changed:
    return
  listed = ', '.join(f'--{name} {_flag_value(new)} (it was {_flag_value(old)})' for name, old, new in changed)
  epoch_note = ('; the step count goes on, but the epoch and batch to resume at are counted with the new '
                + '/'.join(f'--{name}' for name, _, _ in changed if name in EPOCH_FIELDS))
  logging.warning('resuming %s with flags that differ from the run that wrote it: %s. Training goes on with the new '
                  'values%s', config.checkpoint_path, listed,
                  epoch_note if any(name in EPOCH_FIELDS for name, _, _ in changed) else '')


def _flag_value(value):
  if value is None:
    return 'unset'
  if isinstance(value, bool):
    return 'on' if value else 'off'
  return value


def check_data(config):
  """--check_data: reads every entry of the dataset and prints what it found.

  Returns:
    The datasets.Report.

  Raises:
    UserError: the data cannot be trained on as it is (with --strict: because of bad entries).
  """
  config = completion.with_output_size(config)
  report = datasets.check(config, cache_dir=config.data_cache_path)
  print(report.text())
  problems = report.problems + ([f'{report.bad} bad files (--strict)'] if config.strict and report.bad else [])
  if problems:
    raise UserError(f'{os.path.join(config.data_dir, config.dataset)} cannot be trained on as it is: '
                    f'{"; ".join(problems)}')
  return report


# Using a trained generator

def _trained_runs(config):
  """The runs trained on --dataset, as {folder name: (height, width, run name or None)}: the folders of
  <checkpoint_dir> named by the dataset's key that hold a checkpoint (one that a failed run left without one does
  not count)."""
  if not os.path.isdir(config.checkpoint_dir):
    return {}
  pattern = re.escape(key_prefix(config.dataset)) + r'_(\d+)_(\d+)(?:-(.+))?'
  runs = {}
  for name in sorted(os.listdir(config.checkpoint_dir)):
    match = re.fullmatch(pattern, name)
    if match and checkpoints.steps(os.path.join(config.checkpoint_dir, name)):
      runs[name] = (int(match[1]), int(match[2]), match[3])
  return runs


def _flags_of(height, width, run_name):
  return f'--output_height {height} --output_width {width}' + (f' --run_name {run_name}' if run_name else '')


def trained_config(config, data_dir_given=True, ema_given=False):
  """The config saved beside the newest checkpoint of the run, with this run's folders and runtime fields.

  Args:
    config: this run's config (its dataset, output size, run name, folders, batch size, device, seed are used).
      Without an output size (None), the one size trained for the dataset (and run name) is used.
    data_dir_given: the data folder was asked for; if not, the one the model was trained on.
    ema_given: --ema was given: 0 samples G's own weights instead of their average (the checkpoint has both).

  Raises:
    UserError: there is no checkpoint for the run, or no size was given and several were trained; the message
      names the flags of each run there is.
  """
  runs = _trained_runs(config)
  found = ', '.join(f'{name} ({_flags_of(*run)})' for name, run in runs.items())
  config = square_from_one_side(config)
  if config.output_height is None:
    sizes = [(height, width) for height, width, run_name in runs.values() if run_name == config.run_name]
    if len(sizes) != 1:
      named = f' --run_name {config.run_name}' if config.run_name else ''
      what = f'runs of {len(sizes)} sizes' if sizes else 'no checkpoint'
      raise UserError(f'--dataset {config.dataset}{named} has {what} in {os.path.abspath(config.checkpoint_dir)}'
                      f'{": pick one with --output_height" if sizes else ""}'
                      f'{f"; there are: {found}" if found else ""}{"" if sizes else "; train first with --train"}')
    (height, width), = sizes  # the only size trained for this dataset (and run name)
    config = dataclasses.replace(config, output_height=height, output_width=width)
  saved = saved_config(config.checkpoint_path)
  if saved is None or not checkpoints.steps(config.checkpoint_path):
    others = [f'{name} ({_flags_of(*run)})' for name, run in runs.items() if name != config.key]
    hint = f'; found instead: {", ".join(others)}' if others else ''
    made_of = _flags_of(config.output_height, config.output_width, config.run_name)
    raise UserError(f'no checkpoint in {os.path.abspath(config.checkpoint_path)} (the folder comes from --dataset '
                    f'{config.dataset} {made_of}){hint}; train first with --train')
  return dataclasses.replace(saved, checkpoint_dir=config.checkpoint_dir, sample_dir=config.sample_dir,
                             log_dir=config.log_dir, sample_num=config.sample_num, batch_size=config.batch_size,
                             run_name=config.run_name, inception_dir=config.inception_dir, device=config.device,
                             devices=config.devices, multi_worker=False, workers=(), worker_index=0, seed=config.seed,
                             precision=config.precision,
                             data_dir=config.data_dir if data_dir_given else saved.data_dir, strict=config.strict,
                             ema=config.ema if ema_given else saved.ema)


@contextlib.contextmanager
def trained_generator(config, checkpoint=None):
  """The sampler of a checkpoint in a session.

  Args:
    config: the config of the checkpoint (trained_config()).
    checkpoint: None for the newest checkpoint, a step, or checkpoints.BEST.

  Yields:
    (a model.Generator, the checkpoint's step, the checkpoint's path).

  Raises:
    UserError: no complete checkpoint, or one that does not fit the config.
  """
  dcgan = model.DCGAN(config)
  with trainer.session(dcgan) as sess:
    path = restore.restore(dcgan, sess, checkpoint)
    if path is None:  # every checkpoint there was incomplete and set aside
      raise UserError(f'no complete checkpoint in {config.checkpoint_path}; train first with --train')
    yield model.Generator(dcgan, sess), int(sess.run(dcgan.global_step)), path


def _own_weights_suffix(config):
  """'_noema' when --ema 0 samples G's own weights of a model that also has their average (whose pictures keep
  the plain names), so that the two never overwrite each other; else ''."""
  saved = saved_config(config.checkpoint_path)
  return '_noema' if not config.ema and saved is not None and saved.ema else ''


def sample(config, checkpoint=None):
  """Test mode: a grid of the fixed sample z to <sample_dir>/<key>/test_<step>.png (test_<step>_noema.png from
  G's own weights, --ema 0); returns its path."""
  with trained_generator(config, checkpoint) as (gen, step, _):
    path = os.path.join(config.sample_path, f'test_{step:06d}{_own_weights_suffix(config)}.png')
    utils.save_png(path, gen.dcgan.sample_grid(gen.sess))
  logging.info('wrote %s', path)
  return path


def generate(config, count, labels=None, out_dir=None, checkpoint=None):
  """--generate: `count` PNG files, grid.png and manifest.json in `out_dir`; returns the manifest.

  A folder that holds the images of an earlier --generate from another checkpoint or seed is not mixed with them:
  the default folder gives way to generated_<step>_seed<seed> beside it, and an --out_dir given is refused.

  Args:
    labels: --labels as given ('all', '3,3,7' or None).
  """
  label_ids = sampling.parse_labels(labels, config.y_dim, config.class_names)
  default = os.path.join(config.sample_path, 'generated' + _own_weights_suffix(config))
  disk.ensure_writable(out_dir or default)
  with trained_generator(config, checkpoint) as (gen, step, _):
    folder = _generate_folder(out_dir or default, out_dir is None, step, config.seed)
    manifest = sampling.generate(gen, count, label_ids, config.seed, folder, step)
  logging.info('wrote %d images, grid.png and manifest.json to %s (step %d)', count, folder, step)
  return manifest


def _generate_folder(out_dir, is_default, step, seed):
  """`out_dir`, unless it holds the images of an earlier --generate from another checkpoint or seed: then, for
  the default folder, generated_<step>_seed<seed> beside it (said in the log).

  Raises:
    UserError: an --out_dir given holds another checkpoint's or seed's images.
  """
  previous = sampling.read_manifest(out_dir)
  if not previous or all(entry.get('step') == step and entry.get('seed') == seed for entry in previous):
    return out_dir
  steps = sorted({entry.get('step') for entry in previous}, key=str)
  seeds = sorted({entry.get('seed') for entry in previous}, key=str)
  held = (f'{os.path.abspath(out_dir)} holds {len(previous)} images of an earlier --generate (step '
          f'{", ".join(map(str, steps))}, seed {", ".join(map(str, seeds))}; this is step {step}, seed {seed})')
  if not is_default:
    raise UserError(f'{held}: give another --out_dir, or empty it first')
  other = f'{out_dir}_{step:06d}_seed{seed}'
  logging.warning('%s: these go to %s', held, other)
  disk.ensure_writable(other)
  return _generate_folder(other, False, step, seed)


def visualize(config, option, labels=None, out_dir=None, checkpoint=None, frames=16, num_dims=10, seeds=(0, 1)):
  """--visualize: the pictures of --option (see sampling.visualize) in `out_dir`; returns their paths."""
  label_ids = sampling.parse_labels(labels, config.y_dim, config.class_names)
  if num_dims > config.z_dim:
    raise UserError(f'--num_dims {num_dims} is more than the {config.z_dim} dimensions of z')
  out_dir = out_dir or os.path.join(config.sample_path, 'visualize' + _own_weights_suffix(config))
  disk.ensure_writable(out_dir)
  with trained_generator(config, checkpoint) as (gen, step, _):
    files = sampling.visualize(gen, option, out_dir, labels=label_ids, seed=config.seed, frames=frames,
                               num_dims=num_dims, seeds=seeds)
  logging.info('--option %s: wrote %d file(s) to %s (step %d)', option, len(files), out_dir, step)
  return files


def export(config, export_dir=None, freeze=None, checkpoint=None):
  """--export DIR: a SavedModel of G; --freeze FILE: a frozen GraphDef of G; either or both."""
  with trained_generator(config, checkpoint) as (gen, step, _):
    if export_dir:
      sampling.export_saved_model(gen.dcgan, gen.sess, export_dir)
      logging.info('exported the generator of step %d as a SavedModel to %s', step, export_dir)
    if freeze:
      sampling.freeze(gen.dcgan, gen.sess, freeze)
      logging.info('froze the generator of step %d to %s', step, freeze)


def evaluate(config, num_samples=evaluation.DEFAULT_SAMPLES, checkpoint=None):
  """--evaluate: scores the generator of `checkpoint`; prints a table, writes JSON and TensorBoard scalars.

  Returns:
    {metric: value}.
  """
  # it writes eval_*.json, the classifier and the data's scan cache beside the checkpoints: one writer at a time
  with checkpoints.writer_lock(config.checkpoint_path, '--evaluate'):
    return _evaluate(config, num_samples, checkpoint)


def _evaluate(config, num_samples, checkpoint):
  dataset = datasets.open_dataset(config, strict=config.strict, cache_dir=config.data_cache_path)
  if dataset.channels != config.c_dim or (config.y_dim and dataset.num_classes != config.y_dim):
    raise UserError(f'{os.path.join(config.data_dir, config.dataset)} holds images with {dataset.channels} '
                    f'channel(s) and {dataset.num_classes} label classes, but the model was trained on '
                    f'{config.c_dim} and {config.y_dim}: point --data_dir at the data it was trained on')
  if checkpoints.find(config.checkpoint_path, checkpoint) is None:  # before a classifier is trained
    raise UserError(f'no complete checkpoint in {config.checkpoint_path}; train first with --train')
  suffix = _own_weights_suffix(config)
  log_path = os.path.join(config.log_path, 'evaluate' + suffix)
  with evaluation.Evaluator(dataset, config, num_samples, trainer.session_config(config.device)) as evaluator, \
      trained_generator(config, checkpoint) as (gen, step, path):
    writer = tf.compat.v1.summary.FileWriter(log_path)
    try:
      results, json_path = evaluator.evaluate(gen, step, checkpoint=path, writer=writer, suffix=suffix)
    finally:
      writer.close()
    nearest = os.path.join(config.sample_path, f'nearest_{step:06d}{suffix}.png')
    utils.save_png(nearest, evaluator.nearest_grid(evaluator.last_fake))
  weights = ", G's own weights (--ema 0)" if suffix else ''
  print(f'{path} (step {step}{weights}): {_protocol_line(evaluator, config)}')
  print(evaluation.table(results))
  logging.info('wrote %s, TensorBoard scalars to %s, and %s: samples beside their nearest real images', json_path,
               log_path, nearest)
  return results


def _protocol_line(evaluator, config):
  space = ('; Inception features at 299x299 (resized inside the network)' if evaluator.inception else '')
  return (f'{evaluator.num_samples} generated against {evaluator.num_samples} real images of '
          f'{os.path.join(config.data_dir, config.dataset)} at {config.output_height}x{config.output_width}{space}')


def evaluate_images(config, images_dir, num_samples=evaluation.DEFAULT_SAMPLES, out_dir=None):
  """--evaluate --images DIR: scores a folder of image files (another tool's samples, --generate's) against the
  dataset, with the numbers and the cached real features of --evaluate.

  The images are compared at --output_height x --output_width when given (one of them: a square), else at the
  size most of them have; images of another size are resized to it, with a note. The first num_samples of them
  (in name order; the files of manifest.json for a --generate folder) are scored against as many real images.

  Returns:
    {metric: value}.

  Raises:
    UserError: the folder is missing or holds no readable image, or the dataset cannot be read.
  """
  images, notes = datasets.read_folder(images_dir, limit=num_samples, strict=config.strict)
  for note in notes:
    logging.warning('%s', note)
  config = square_from_one_side(config)
  if config.output_height is None:
    sizes = collections.Counter(image.shape[:2] for image in images)
    (height, width), _ = sizes.most_common(1)[0]
    config = dataclasses.replace(config, output_height=height, output_width=width)
  dataset = datasets.open_dataset(config, strict=config.strict, cache_dir=config.data_cache_path)
  config = dataclasses.replace(config, c_dim=dataset.channels, y_dim=0, z_dim=1)
  fake, resized = datasets.fit_images(images, config.output_height, config.output_width, dataset.channels)
  if resized:
    logging.warning('%d of the %d images in %s are not %dx%d: resized to it (the whole image, with Pillow\'s '
                    'Lanczos filter) to compare them with the real images at that size', resized, len(images),
                    images_dir, config.output_height, config.output_width)
  count = min(num_samples, len(fake))
  out_dir = out_dir or os.path.join(config.sample_path, f'evaluate_{os.path.basename(os.path.normpath(images_dir))}')
  disk.ensure_writable(out_dir)
  with evaluation.Evaluator(dataset, config, count, trainer.session_config(config.device)) as evaluator:
    results = evaluator.score(fake[:evaluator.num_samples])
    json_path = os.path.join(out_dir, f'eval_{evaluator.num_samples}.json')
    evaluation.write_record(json_path, {'images': os.path.abspath(images_dir), **evaluator.protocol(),
                                        'metrics': results})
    nearest = os.path.join(out_dir, 'nearest.png')
    utils.save_png(nearest, evaluator.nearest_grid(evaluator.last_fake))
  print(f'{images_dir}: {_protocol_line(evaluator, config).replace("generated", "images")}')
  print(evaluation.table(results))
  logging.info('wrote %s and %s: the images beside their nearest real images', json_path, nearest)
  return results

