"""Trains a DCGAN, or uses the newest checkpoint: a sample grid, N images, visualizations, export.

The only module that defines flags.

$ python main.py --train --dataset digits                      # built-in digits, conditional, 28x28
$ python download.py mnist && python main.py --train --dataset mnist
$ python main.py --train --dataset celebA --crop               # the largest centred square -> 64x64
$ python main.py --train --dataset lsun_bedroom --crop         # an LMDB from python download.py lsun
$ python main.py --train --dataset tfds:cifar10                # TensorFlow Datasets, 32x32
$ python main.py --dataset celebA                              # no --train: a grid from the newest checkpoint
$ python main.py --dataset celebA --check_data                 # counts, sizes, modes and bad files; no training
$ python main.py --train --dataset celebA --checkpoint 3000    # roll back to step 3000 and train on from there
$ python main.py --dataset mnist --generate 1000 --labels all  # 1000 PNGs and manifest.json
$ python main.py --dataset mnist --export exported/mnist        # a SavedModel of the generator
$ python main.py --dataset mnist --evaluate --checkpoint best   # SWD, FD, label accuracy: a table and JSON
$ python main.py --train --dataset mnist --eval_freq 500        # evaluate while training; keep the best in best/
"""

import dataclasses
import json
import os
import re

import runtime  # noqa: F401  (first: it sets how TensorFlow loads)

from absl import flags, logging
import tensorflow as tf

import checkpoints
import cluster
import config as config_lib
import datasets
import errors
import evaluation
import generate
import model
import utils
from errors import UserError, op_error_text
from model import DCGAN

# Mode
flags.DEFINE_boolean('train', False, 'Train (resuming from the newest checkpoint). Without it, load the newest '
                     'checkpoint and write a sample grid to --sample_dir/<key>/test_<step>.png.')
flags.DEFINE_boolean('check_data', False, 'Check every file of the dataset and report counts, sizes, modes and bad '
                     'files, then exit (non-zero when the data cannot be trained on).')
flags.DEFINE_string('checkpoint', 'latest', "The checkpoint to load: 'latest', 'best' (the best by --best_metric, "
                    "kept by --eval_freq in <checkpoint_dir>/<key>/best/) or a step number. With --train, 'best' or "
                    'a step rolls the run back to it: newer checkpoints move to <checkpoint_dir>/<key>/rolled_back/.')
flags.DEFINE_boolean('evaluate', False, 'Score the generator of --checkpoint against --num_samples real images: '
                     'SWD, and for labelled grayscale data a digit classifier\'s Frechet distance, label accuracy '
                     'and class entropy. Prints a table and writes <checkpoint_dir>/<key>/eval_<step>_<N>.json and '
                     'TensorBoard scalars to <log_dir>/<key>/evaluate.')
# Using a trained model (no --train)
flags.DEFINE_integer('generate', None, 'Write this many images (any number) as PNG files, with grid.png and '
                     'manifest.json, to --out_dir.')
flags.DEFINE_string('labels', None, "Labels to generate or show for a conditional model: 'all' (every class in "
                    "turn, the default) or a comma-separated list such as 3,3,7, repeated as needed.")
flags.DEFINE_boolean('visualize', False, 'Write the pictures of --option to --out_dir.')
flags.DEFINE_enum('option', '0', generate.OPTIONS, 'With --visualize: 0 a sample grid; 1 a PNG sweeping each of '
                  'the first --num_dims dimensions of z; 2 GIFs sweeping --num_dims random dimensions; 3 GIFs '
                  'sweeping dimensions from z = 0; 4 one GIF sweeping them all at once; interp a slerp through '
                  '--seeds as a strip and a GIF; progress a GIF of the training grids in step order.')
flags.DEFINE_list('seeds', ['0', '1'], 'With --option interp: the seeds (two or more) whose z to pass through; '
                  "each is image 0 of --generate with that --seed.")
flags.DEFINE_integer('frames', 16, 'Frames of a sweep, and of each step between two --seeds of interp.')
flags.DEFINE_integer('num_dims', 10, 'Dimensions of z that --visualize options 1-4 sweep.')
flags.DEFINE_string('out_dir', None, 'Folder for --generate and --visualize; default '
                    '<sample_dir>/<key>/generated or <sample_dir>/<key>/visualize.')
flags.DEFINE_string('export', None, 'Write a SavedModel of the generator to this new folder (serving_default: '
                    'z [, labels] -> uint8 images).')
flags.DEFINE_string('freeze', None, 'Write the generator as a frozen GraphDef .pb to this file (inputs '
                    'sample_z:0 [, sample_labels:0], output sample_images:0).')
# Data
flags.DEFINE_string('dataset', 'digits', 'Dataset folder name under --data_dir (a folder of images, MNIST-style '
                    'IDX files, or an LMDB such as download.py\'s lsun_bedroom), or tfds:NAME[/CONFIG] for '
                    'TensorFlow Datasets; also the first part of the run key <dataset>_<output_height>_'
                    f'<output_width>. Built in: {", ".join(datasets.BUILTIN)}.')
flags.DEFINE_string('data_dir', 'data', 'Folder that holds the dataset folder <data_dir>/<dataset>.')
flags.DEFINE_string('tfds_data_dir', None, 'Where TensorFlow Datasets keeps what it downloads and prepares '
                    '(--dataset tfds:NAME); default its own, ~/tensorflow_datasets.')
flags.DEFINE_string('input_fname_pattern', '*.jpg', 'Glob of the image files inside the dataset folder. '
                    'Ignored for IDX, LMDB and TFDS datasets.')
flags.DEFINE_boolean('crop', False, 'Cut the centre of each image before resizing it to the output size: '
                     '--input_height x --input_width pixels, or without them the largest centred square (for a '
                     'square output). Without --crop the whole image is resized, whatever its aspect ratio.')
flags.DEFINE_integer('input_height', None, 'Height of the centre crop in pixels, with --crop; default the '
                     'largest centred square.')
flags.DEFINE_integer('input_width', None, 'Width of the centre crop in pixels; default --input_height.')
flags.DEFINE_boolean('strict', False, 'Stop with an error on any unreadable or corrupt image file instead of '
                     'skipping it with a warning.')
flags.DEFINE_boolean('cache', False, 'Decode a folder of images or an LMDB once into checkpoint/<key>/'
                     'image_cache.npy (output size x channels bytes per image) and train from it, so later epochs '
                     'and runs skip the decode; made again when the data or sizes change. IDX data is in memory '
                     'anyway, and TFDS data is always cached.')
flags.DEFINE_integer('train_size', None, 'Images per epoch, drawn afresh from a shuffle of the whole dataset '
                     'every epoch; default all.')
# Model
flags.DEFINE_integer('output_height', None, 'Height of generated images in pixels; default 28 for MNIST-style '
                     'datasets (mnist, digits, any IDX folder), else 64.')
flags.DEFINE_integer('output_width', None, 'Width of generated images in pixels; default --output_height.')
flags.DEFINE_boolean('conditional', True, 'Condition G and D on the labels when the dataset has them '
                     '(MNIST-style IDX); --noconditional ignores the labels.')
flags.DEFINE_integer('z_dim', 100, 'Length of the noise vector z.')
flags.DEFINE_enum('z_dist', 'uniform_signed', config_lib.Z_DISTRIBUTIONS, 'Distribution of z: uniform_signed '
                  'is U(-1, 1), normal is N(0, 1).')
flags.DEFINE_integer('gf_dim', 64, 'Filters of the last hidden generator layer (earlier layers have 2x, 4x, 8x).')
flags.DEFINE_integer('df_dim', 64, 'Filters of the first discriminator layer (later layers have 2x, 4x, 8x).')
flags.DEFINE_integer('gfc_dim', 1024, 'Units of the generator\'s fully connected layer (conditional model).')
flags.DEFINE_integer('dfc_dim', 1024, 'Units of the discriminator\'s fully connected layer (conditional model).')
# Optimizer
flags.DEFINE_float('learning_rate', 2e-4, 'Adam learning rate of both networks.')
flags.DEFINE_float('beta1', 0.5, 'Adam beta1 (momentum), in [0, 1).')
flags.DEFINE_integer('batch_size', 64, 'Images per training step.')
flags.DEFINE_integer('epoch', 25, 'Epochs to train in all, counting those of a resumed checkpoint.')
flags.DEFINE_integer('g_steps', 2, 'Generator updates after each discriminator update.')
# Output
flags.DEFINE_string('checkpoint_dir', 'checkpoint', 'Checkpoints go to <checkpoint_dir>/<key>/.')
flags.DEFINE_string('sample_dir', 'samples', 'Sample grids go to <sample_dir>/<key>/.')
# absl.logging already defines --log_dir (for log files, which it writes only when asked); it is ours too.
flags.FLAGS.set_default('log_dir', 'logs')
flags.FLAGS['log_dir'].help = 'TensorBoard event files go to <log_dir>/<key>/.'
flags.DEFINE_integer('sample_num', 64, 'Images in each sample grid (any number; the grid need not be square).')
flags.DEFINE_integer('sample_freq', 100, 'Write a sample grid every this many steps.')
flags.DEFINE_integer('ckpt_freq', 500, 'Write a checkpoint every this many steps (and at the end).')
flags.DEFINE_integer('log_freq', 50, 'Log a progress line and TensorBoard scalars every this many steps.')
flags.DEFINE_integer('max_to_keep', 5, 'Checkpoints to keep; older ones are deleted.')
flags.DEFINE_float('keep_every_hours', None, 'Also keep one checkpoint every this many hours of training for good, '
                   'beyond --max_to_keep, to roll back to (with --checkpoint STEP) if the run collapses later.')
# Evaluation
flags.DEFINE_integer('num_samples', None, 'Images generated and real images compared per evaluation (at most the '
                     f'dataset size); default {evaluation.DEFAULT_SAMPLES} for --evaluate, '
                     f'{evaluation.TRAINING_SAMPLES} for --eval_freq.')
flags.DEFINE_integer('eval_freq', None, 'With --train: evaluate every this many steps (and at the end), and keep the '
                     'checkpoint with the best --best_metric in <checkpoint_dir>/<key>/best/. Default: never.')
flags.DEFINE_enum('best_metric', None, evaluation.BEST_METRICS, 'The metric that picks the best checkpoint (lower '
                  'is better): swd, sliced Wasserstein distance; fd, Frechet distance of digit-classifier features '
                  '(labelled grayscale data only). Default fd where it applies, else swd.')
# Runtime
flags.DEFINE_string('device', None, 'Device of the model, e.g. /gpu:1 or /cpu:0; default the first GPU when '
                    'one is visible, else the CPU. Ops with no kernel there fall back to the CPU.')
flags.DEFINE_list('devices', None, 'Train one replica on each of these devices (two or more, e.g. /gpu:0,/gpu:1) '
                  'with MirroredStrategy: each takes --batch_size / N images of every batch, and gradients and '
                  'batch-norm statistics are averaged across them. Checkpoints load on any number of devices.')
flags.DEFINE_integer('num_gpus', None, 'Train on the first N GPUs: the same as --devices /gpu:0,...,/gpu:N-1.')
flags.DEFINE_enum('strategy', 'mirrored', ['mirrored', 'multi_worker'], 'mirrored: one process, on --device or '
                  '--devices. multi_worker: one process per machine, each run with the same flags and its own '
                  'TF_CONFIG; the batch is split across all workers\' devices, worker 0 writes the checkpoints.')
flags.DEFINE_float('worker_timeout', 600, 'With --strategy multi_worker: seconds a worker waits for the others '
                   '(to start, or in a training step) before it stops with an error.')
flags.DEFINE_integer('seed', 0, 'Seeds the initial weights, the data order and z; with --generate, the z of every '
                     'image.')
flags.DEFINE_boolean('deterministic', False, "Use TensorFlow's deterministic kernels, so that a run, stopped and "
                     'resumed or not, ends with the same weights bit for bit (slower on a GPU).')
flags.DEFINE_boolean('xla', False, 'Compile the training step with XLA JIT. Off by default: on a CPU the rgb64 step '
                     'measured 10x slower with it than with the oneDNN kernels (bench/README.md); try it on a GPU.')

FLAGS = flags.FLAGS
tf.get_logger().setLevel('WARNING')  # its INFO lines repeat what this program logs itself

_POSITIVE = ('num_gpus', 'input_height', 'input_width', 'train_size', 'output_height', 'output_width', 'z_dim', 'gf_dim',
             'df_dim', 'gfc_dim', 'dfc_dim', 'batch_size', 'epoch', 'g_steps', 'sample_num', 'sample_freq',
             'ckpt_freq', 'log_freq', 'max_to_keep', 'generate', 'frames', 'num_dims', 'eval_freq')


def _default_output_size():
  return datasets.default_output_size(config_lib.Config(dataset=FLAGS.dataset, data_dir=FLAGS.data_dir,
                                                        tfds_data_dir=FLAGS.tfds_data_dir))


def _devices():
  """--devices or --num_gpus as a tuple of device names; () for a single device."""
  if FLAGS.devices and FLAGS.num_gpus:
    raise UserError('--devices and --num_gpus both choose the devices: give one of them')
  if FLAGS.strategy == 'multi_worker' and (FLAGS.devices or FLAGS.num_gpus):
    raise UserError('--strategy multi_worker uses every GPU of each worker (or its CPU): drop --devices/--num_gpus')
  if FLAGS.num_gpus:
    visible = len(tf.config.list_physical_devices('GPU'))
    if FLAGS.num_gpus > visible:
      raise UserError(f'--num_gpus {FLAGS.num_gpus}: only {visible} GPU(s) are visible here')
    devices = [f'/gpu:{index}' for index in range(FLAGS.num_gpus)]
  else:
    devices = FLAGS.devices or []
  for name in devices:
    try:
      tf.DeviceSpec.from_string(name)
    except ValueError:
      raise UserError(f'--devices {name!r} is not a device name such as /gpu:0 or /cpu:0') from None
  if len(set(devices)) != len(devices):
    raise UserError(f'--devices names a device twice: {",".join(devices)}')
  if len(devices) > 1 and FLAGS.batch_size % len(devices):
    raise UserError(f'--batch_size {FLAGS.batch_size} does not split evenly across {len(devices)} devices; '
                    f'use a multiple of {len(devices)}')
  return tuple(devices) if len(devices) > 1 else ()


def _multi_worker():
  """Checks TF_CONFIG and the batch size for --strategy multi_worker (a training run only)."""
  if FLAGS.strategy != 'multi_worker' or not FLAGS.train:
    return False
  if not FLAGS.worker_timeout > 0:
    raise UserError(f'--worker_timeout must be above 0, not {FLAGS.worker_timeout}')
  workers = len(cluster.from_environment().workers)
  if FLAGS.batch_size % workers:
    raise UserError(f'--batch_size {FLAGS.batch_size} does not split evenly across the {workers} workers of '
                    f'TF_CONFIG; use a multiple of {workers}')
  return True


def _device():
  """--device; with --devices, the first of them (the sampler's device in test mode)."""
  device = FLAGS.devices[0] if FLAGS.devices else FLAGS.device
  if device is None:
    return '/gpu:0' if tf.config.list_physical_devices('GPU') else '/cpu:0'
  try:
    tf.DeviceSpec.from_string(device)
  except ValueError:
    flag = 'devices' if FLAGS.devices else 'device'
    raise UserError(f'--{flag} {device!r} is not a device name such as /gpu:0 or /cpu:0') from None
  return device


def config_from_flags():
  """Checks the flags and turns them into a Config; c_dim and y_dim are filled in from the data later.

  Raises:
    UserError: a flag has a value that cannot work.
  """
  for name in _POSITIVE:
    if FLAGS[name].value is not None and FLAGS[name].value < 1:
      raise UserError(f'--{name} must be at least 1, not {FLAGS[name].value}')
  _checkpoint_step()  # checks --checkpoint
  if FLAGS.num_samples is not None and FLAGS.num_samples < 2:
    raise UserError(f'--num_samples must be at least 2, not {FLAGS.num_samples}')
  if FLAGS.keep_every_hours is not None and not FLAGS.keep_every_hours > 0:
    raise UserError(f'--keep_every_hours must be above 0, not {FLAGS.keep_every_hours}')
  if not FLAGS.learning_rate > 0:
    raise UserError(f'--learning_rate must be above 0, not {FLAGS.learning_rate}')
  if not 0 <= FLAGS.beta1 < 1:
    raise UserError(f'--beta1 must be in [0, 1), not {FLAGS.beta1}')
  if FLAGS.dataset.startswith(datasets.TfdsSource.PREFIX):
    if not FLAGS.dataset[len(datasets.TfdsSource.PREFIX):]:
      raise UserError('--dataset tfds:NAME needs the name of a TensorFlow Datasets dataset, e.g. tfds:cifar10')
  elif not FLAGS.dataset or os.sep in FLAGS.dataset or FLAGS.dataset in ('.', '..'):
    raise UserError(f'--dataset must be a folder name inside --data_dir, not {FLAGS.dataset!r}')
  if FLAGS.input_width is not None and FLAGS.input_height is None:
    raise UserError('--input_width needs --input_height: together they are the size of the --crop')
  output_height = FLAGS.output_height or _default_output_size()
  return config_lib.Config(
      dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, tfds_data_dir=FLAGS.tfds_data_dir,
      input_fname_pattern=FLAGS.input_fname_pattern,
      input_height=FLAGS.input_height, input_width=FLAGS.input_width or FLAGS.input_height, crop=FLAGS.crop,
      train_size=FLAGS.train_size, output_height=output_height, output_width=FLAGS.output_width or output_height,
      z_dim=FLAGS.z_dim, z_dist=FLAGS.z_dist, gf_dim=FLAGS.gf_dim, df_dim=FLAGS.df_dim, gfc_dim=FLAGS.gfc_dim,
      dfc_dim=FLAGS.dfc_dim, learning_rate=FLAGS.learning_rate, beta1=FLAGS.beta1, batch_size=FLAGS.batch_size,
      epoch=FLAGS.epoch, g_steps=FLAGS.g_steps, checkpoint_dir=FLAGS.checkpoint_dir, sample_dir=FLAGS.sample_dir,
      log_dir=FLAGS.log_dir, sample_num=FLAGS.sample_num, sample_freq=FLAGS.sample_freq,
      ckpt_freq=FLAGS.ckpt_freq, log_freq=FLAGS.log_freq, max_to_keep=FLAGS.max_to_keep,
      keep_every_hours=FLAGS.keep_every_hours, eval_freq=FLAGS.eval_freq,
      eval_samples=FLAGS.num_samples or evaluation.TRAINING_SAMPLES, best_metric=FLAGS.best_metric or 'swd',
      device=_device(), devices=_devices(), multi_worker=_multi_worker(), worker_timeout=FLAGS.worker_timeout,
      seed=FLAGS.seed, deterministic=FLAGS.deterministic, xla=FLAGS.xla)


def _checkpoint_step():
  """--checkpoint as a step number, checkpoints.BEST, or None for the newest."""
  if FLAGS.checkpoint == 'latest':
    return None
  if FLAGS.checkpoint == checkpoints.BEST:
    return checkpoints.BEST
  if not FLAGS.checkpoint.isdigit():
    raise UserError(f"--checkpoint must be 'latest', 'best' or a step number, not {FLAGS.checkpoint!r}")
  return int(FLAGS.checkpoint)


def train(config):
  for directory in (config.checkpoint_path, config.sample_path, config.log_path):
    utils.check_writable(directory)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()
  dataset = datasets.load(config, strict=FLAGS.strict, cache_dir=config.checkpoint_path)
  if FLAGS.cache:
    dataset = datasets.cache_images(dataset, config, config.checkpoint_path)
  config = dataclasses.replace(config, c_dim=dataset.channels,
                               y_dim=dataset.num_classes if FLAGS.conditional else 0,
                               best_metric=_best_metric(dataset))
  used = min(len(dataset), config.train_size or len(dataset))
  if config.batch_size > used:
    raise UserError(f'--batch_size {config.batch_size} is larger than the {used} images an epoch uses '
                    f'({len(dataset)} in {os.path.join(config.data_dir, config.dataset)}); lower --batch_size')
  logging.info('dataset %s: %d images, %d channel(s), %s', config.dataset, len(dataset), config.c_dim,
               f'{config.y_dim} label classes' if config.y_dim else 'unconditional')
  logging.info('config: %s', json.dumps(dataclasses.asdict(config), sort_keys=True))
  _warn_if_epochs_move(config)
  worker = cluster.from_environment().index if config.multi_worker else 0  # worker 0 (the chief) evaluates
  evaluator = None
  if config.eval_freq and worker == 0:
    evaluator = evaluation.Evaluator(dataset, config, config.eval_samples, model.session_config(config.device))
  try:
    step, stopped_by = DCGAN(config, dataset).train(_checkpoint_step(), evaluator)
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


def _best_metric(dataset):
  """--best_metric, or its default for the dataset: fd where the digit classifier applies, else swd."""
  if FLAGS.best_metric == 'fd' and not evaluation.uses_classifier(dataset):
    raise UserError(f'--best_metric fd needs labelled grayscale data (MNIST-style IDX files) for its digit '
                    f'classifier; {dataset.name} is not: use --best_metric swd')
  return FLAGS.best_metric or ('fd' if evaluation.uses_classifier(dataset) else 'swd')


def _warn_if_epochs_move(config):
  """The epoch and batch to resume at follow from the step and the steps per epoch, which these flags change."""
  saved = config_lib.load(config.checkpoint_path)
  for name in ('batch_size', 'train_size'):
    if saved is not None and getattr(saved, name) != getattr(config, name):
      logging.warning('--%s is %s, the checkpoint was trained with %s: the step count goes on, but the epoch and '
                      'batch to resume at are counted with the new value', name, getattr(config, name),
                      getattr(saved, name))


def check_data(config):
  """--check_data: reads every file of the dataset and prints what it found."""
  report = datasets.check(config, cache_dir=config.checkpoint_path)
  print(report.text())
  problems = report.problems + ([f'{report.bad} bad files (--strict)'] if FLAGS.strict and report.bad else [])
  if problems:
    raise UserError(f'{os.path.join(config.data_dir, config.dataset)} cannot be trained on as it is: '
                    f'{"; ".join(problems)}')


def _saved_keys(config):
  """The output sizes of the checkpoints saved for --dataset, as {(height, width): key}."""
  if not os.path.isdir(config.checkpoint_dir):
    return {}
  pattern = re.escape(config_lib.key_prefix(config.dataset)) + r'_(\d+)_(\d+)'
  matches = (re.fullmatch(pattern, name) for name in sorted(os.listdir(config.checkpoint_dir)))
  return {(int(m[1]), int(m[2])): m[0] for m in matches if m}


def _trained_config(config):
  """The config saved beside the newest checkpoint of the key, with this run's output and runtime flags.

  Raises:
    UserError: there is no checkpoint for the key; the message names the flags that make the key.
  """
  saved_keys = _saved_keys(config)
  if FLAGS.output_height is None and FLAGS.output_width is None and len(saved_keys) == 1:
    (height, width), = saved_keys  # the only size trained for this dataset
    config = dataclasses.replace(config, output_height=height, output_width=width)
  saved = config_lib.load(config.checkpoint_path)
  if saved is None or not checkpoints.steps(config.checkpoint_path):
    others = [key for key in saved_keys.values() if key != config.key]
    hint = f'; found instead: {", ".join(others)} (set --output_height/--output_width)' if others else ''
    raise UserError(f'no checkpoint in {config.checkpoint_path} (the key comes from --dataset {config.dataset} '
                    f'--output_height {config.output_height} --output_width {config.output_width}){hint}; '
                    'train first with --train')
  data_dir = config.data_dir if FLAGS['data_dir'].present else saved.data_dir  # the data may have moved
  return dataclasses.replace(saved, checkpoint_dir=config.checkpoint_dir, sample_dir=config.sample_dir,
                             log_dir=config.log_dir, sample_num=config.sample_num, batch_size=config.batch_size,
                             device=config.device, devices=config.devices, multi_worker=False, seed=config.seed,
                             data_dir=data_dir)


def use_trained(config):
  """No --train: a test grid, or --generate, --visualize, --export, --freeze, from the newest checkpoint."""
  config = _trained_config(config)
  labels = generate.parse_labels(FLAGS.labels, config.y_dim)
  if FLAGS.visualize and FLAGS.num_dims > config.z_dim:
    raise UserError(f'--num_dims {FLAGS.num_dims} is more than the {config.z_dim} dimensions of z')
  seeds = _seeds()
  out_dir = FLAGS.out_dir or os.path.join(config.sample_path, 'generated' if FLAGS.generate else 'visualize')
  if FLAGS.generate or FLAGS.visualize:
    utils.ensure_writable(out_dir)
  dcgan = DCGAN(config)
  with dcgan.session() as sess:
    if dcgan.restore(sess, _checkpoint_step()) is None:  # every checkpoint there was incomplete and set aside
      raise UserError(f'no complete checkpoint in {config.checkpoint_path}; train first with --train')
    step = sess.run(dcgan.global_step)
    gen = generate.Generator(dcgan, sess)
    if FLAGS.generate:
      generate.generate(gen, FLAGS.generate, labels, config.seed, out_dir)
      logging.info('wrote %d images, grid.png and manifest.json to %s (step %d)', FLAGS.generate, out_dir, step)
    elif FLAGS.visualize:
      files = generate.visualize(gen, FLAGS.option, out_dir, labels=labels, seed=config.seed, frames=FLAGS.frames,
                                 num_dims=FLAGS.num_dims, seeds=seeds)
      logging.info('--option %s: wrote %d file(s) to %s (step %d)', FLAGS.option, len(files), out_dir, step)
    elif not (FLAGS.export or FLAGS.freeze):
      path = os.path.join(config.sample_path, f'test_{step:06d}.png')
      utils.save_png(path, dcgan.sample_grid(sess))
      logging.info('wrote %s', path)
    if FLAGS.export:
      generate.export_saved_model(dcgan, sess, FLAGS.export)
      logging.info('exported the generator of step %d as a SavedModel to %s', step, FLAGS.export)
    if FLAGS.freeze:
      generate.freeze(dcgan, sess, FLAGS.freeze)
      logging.info('froze the generator of step %d to %s', step, FLAGS.freeze)


def evaluate(config):
  """--evaluate: scores the generator of --checkpoint; prints a table, writes JSON and TensorBoard scalars."""
  config = _trained_config(config)
  dataset = datasets.load(config, strict=FLAGS.strict, cache_dir=config.checkpoint_path)
  if dataset.channels != config.c_dim or (config.y_dim and dataset.num_classes != config.y_dim):
    raise UserError(f'{os.path.join(config.data_dir, config.dataset)} holds images with {dataset.channels} '
                    f'channel(s) and {dataset.num_classes} label classes, but the model was trained on '
                    f'{config.c_dim} and {config.y_dim}: point --data_dir at the data it was trained on')
  if checkpoints.find(config.checkpoint_path, _checkpoint_step()) is None:  # before a classifier is trained
    raise UserError(f'no complete checkpoint in {config.checkpoint_path}; train first with --train')
  dcgan = DCGAN(config)
  with evaluation.Evaluator(dataset, config, FLAGS.num_samples or evaluation.DEFAULT_SAMPLES,
                            model.session_config(config.device)) as evaluator, dcgan.session() as sess:
    path = dcgan.restore(sess, _checkpoint_step())
    step = int(sess.run(dcgan.global_step))
    writer = tf.compat.v1.summary.FileWriter(os.path.join(config.log_path, 'evaluate'))
    try:
      results, json_path = evaluator.evaluate(generate.Generator(dcgan, sess), step, checkpoint=path,
                                              writer=writer)
    finally:
      writer.close()
  print(f'{path} (step {step}): {evaluator.num_samples} generated against {evaluator.num_samples} real images '
        f'of {os.path.join(config.data_dir, config.dataset)}')
  print(evaluation.table(results))
  logging.info('wrote %s and TensorBoard scalars to %s', json_path, os.path.join(config.log_path, 'evaluate'))


def _seeds():
  try:
    seeds = [int(seed) for seed in FLAGS.seeds]
  except ValueError:
    raise UserError(f'--seeds must be integers, not {",".join(FLAGS.seeds)}') from None
  if len(seeds) < 2:
    raise UserError('--seeds needs two or more seeds to interpolate between')
  return seeds


def main(argv):
  if len(argv) > 1:
    raise UserError(f'unexpected argument {argv[1]!r}; flags start with --')
  using = [f'--{name}' for name in ('generate', 'visualize', 'export', 'freeze', 'evaluate') if FLAGS[name].value]
  if FLAGS.train and FLAGS.evaluate:
    raise UserError('--train cannot be combined with --evaluate: use --eval_freq to evaluate while training')
  if FLAGS.train and using:
    raise UserError(f'--train cannot be combined with {", ".join(using)}: train first, then use the model')
  if FLAGS.evaluate and len(using) > 1:
    raise UserError(f'--evaluate cannot be combined with {", ".join(using[:-1])}: run them one at a time')
  if FLAGS.check_data and using + ['--train'] * FLAGS.train:
    raise UserError('--check_data only checks the dataset: run it on its own')
  config = config_from_flags()
  if FLAGS.check_data:
    check_data(config)
  elif FLAGS.train:
    train(config)
  elif FLAGS.evaluate:
    evaluate(config)
  else:
    use_trained(config)


if __name__ == '__main__':
  errors.run_program(main)
