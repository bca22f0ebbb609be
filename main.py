"""Trains a DCGAN, or uses the newest checkpoint: a sample grid, N images, visualizations, export, scores.

The flags of training and using a model are defined in options.py (download.py has its own); here they are
checked before TensorFlow loads, so that a mistake is answered at once, and turned into the run's Config.

$ python main.py --train --dataset digits                      # built-in digits, conditional, 28x28
$ python download.py mnist && python main.py --train --dataset mnist
$ python main.py --train --dataset celebA --crop               # the largest centred square -> 64x64
$ python main.py --train --dataset lsun_bedroom --crop         # an LMDB from python download.py lsun
$ python main.py --train --dataset lsun --lsun_category bedroom,kitchen --crop  # one model, conditioned on the room
$ python main.py --train --dataset pets --conditioning concat  # data/pets/<class>/*.jpg: labels from class folders
$ python main.py --train --dataset tfds:cifar10                # TensorFlow Datasets, 32x32
$ python main.py --dataset celebA                              # no --train: a grid from the newest checkpoint
$ python main.py --dataset celebA --check_data                 # counts, sizes, modes and bad files; no training
$ python main.py --train --dataset celebA --checkpoint 3000    # roll back to step 3000 and train on from there
$ python main.py --dataset mnist --generate 1000 --labels all  # 1000 PNGs and manifest.json
$ python main.py --dataset mnist --export exported/mnist        # a SavedModel of the generator
$ python main.py --dataset mnist --evaluate --checkpoint best   # SWD, FD, label accuracy: a table and JSON
$ python main.py --train --dataset mnist --eval_freq 500        # evaluate while training; keep the best in best/
$ python main.py --train --dataset celebA --crop --loss hinge --run_name hinge  # a second run beside the first
"""

import os
import re

from absl import logging

from app import cli
from app.options import FLAGS, HELP_GROUPS, INTRO
import config as config_lib
from errors import UserError
from training import cluster

_POSITIVE = ('num_gpus', 'input_height', 'input_width', 'train_size', 'output_height', 'output_width', 'z_dim',
             'gf_dim', 'df_dim', 'gfc_dim', 'dfc_dim', 'batch_size', 'epoch', 'd_steps', 'g_steps', 'sample_num',
             'sample_freq', 'ckpt_freq', 'log_freq', 'max_to_keep', 'generate', 'frames', 'num_dims', 'eval_freq',
             'r1_every')
_MODES = ('generate', 'visualize', 'export', 'freeze', 'evaluate')
BEST = config_lib.BEST_CHECKPOINT
# A TensorFlow device name: [/job:J][/replica:R][/task:T]/[device:]cpu|gpu|tpu[:N]
_DEVICE = re.compile(r'(?:/job:[\w.-]+)?(?:/replica:\d+)?(?:/task:\d+)?/?(?:device:)?(cpu|gpu|tpu)(?::(\d+|\*))?',
                     re.IGNORECASE)


def _dataset():
  """--dataset, or with --dataset lsun the dataset of the --lsun_category LMDBs together (lsun_bedroom+kitchen).

  Raises:
    UserError: --dataset lsun without two or more known categories, or --lsun_category with another dataset.
  """
  if FLAGS.lsun_category is None:
    if FLAGS.dataset == 'lsun':
      raise UserError('--dataset lsun needs --lsun_category with two or more categories (a model conditioned on '
                      'the category); for one, use --dataset lsun_CATEGORY, e.g. lsun_bedroom')
    return FLAGS.dataset
  if FLAGS.dataset != 'lsun':
    raise UserError(f'--lsun_category goes with --dataset lsun, not --dataset {FLAGS.dataset}')
  config_lib.check_lsun_categories(FLAGS.lsun_category)
  if len(set(FLAGS.lsun_category)) < 2:
    raise UserError(f'--lsun_category {",".join(FLAGS.lsun_category)}: give two or more categories for a '
                    f'conditional model; for one, use --dataset lsun_{FLAGS.lsun_category[0]}')
  return config_lib.category_dataset('lsun', FLAGS.lsun_category)


def _device_type(flag, name):
  """The type ('CPU', 'GPU', 'TPU') of a device name such as /gpu:1.

  Raises:
    UserError: `name` is not a device name.
  """
  match = _DEVICE.fullmatch(name)
  if match is None:
    raise UserError(f'--{flag} {name!r} is not a device name such as /gpu:0 or /cpu:0')
  return match[1].upper()


def _checkpoint_step():
  """--checkpoint as a step number, BEST, or None for the newest."""
  if FLAGS.checkpoint == 'latest':
    return None
  if FLAGS.checkpoint == BEST:
    return BEST
  if not FLAGS.checkpoint.isdigit():
    raise UserError(f"--checkpoint must be 'latest', 'best' or a step number, not {FLAGS.checkpoint!r}")
  return int(FLAGS.checkpoint)


def _seeds():
  try:
    seeds = [int(seed) for seed in FLAGS.seeds]
  except ValueError:
    raise UserError(f'--seeds must be integers, not {",".join(FLAGS.seeds)}') from None
  if len(seeds) < 2:
    raise UserError('--seeds needs two or more seeds to interpolate between')
  return seeds


def check_flags():
  """Every check that needs nothing but the flags (and TF_CONFIG), before TensorFlow loads: a mistake is answered
  at once.

  Returns:
    The cluster.Cluster of TF_CONFIG for --strategy multi_worker with --train, else None.

  Raises:
    UserError: a flag has a value that cannot work, or flags that do not go together.
  """
  using = [f'--{name}' for name in _MODES if FLAGS[name].value]
  if FLAGS.train and FLAGS.evaluate:
    raise UserError('--train cannot be combined with --evaluate: use --eval_freq to evaluate while training')
  if FLAGS.train and using:
    raise UserError(f'--train cannot be combined with {", ".join(using)}: train first, then use the model')
  if FLAGS.evaluate and len(using) > 1:
    raise UserError(f'--evaluate cannot be combined with {", ".join(using[:-1])}: run them one at a time')
  if FLAGS.check_data and using + ['--train'] * FLAGS.train:
    raise UserError('--check_data only checks the dataset: run it on its own')
  if FLAGS.images is not None and not FLAGS.evaluate:
    raise UserError('--images goes with --evaluate: python main.py --evaluate --images DIR --dataset NAME scores '
                    'the images of DIR against the dataset')
  for name in _POSITIVE:
    if FLAGS[name].value is not None and FLAGS[name].value < 1:
      raise UserError(f'--{name} must be at least 1, not {FLAGS[name].value}')
  _checkpoint_step()
  _seeds()
  if FLAGS.num_samples is not None and FLAGS.num_samples < 2:
    raise UserError(f'--num_samples must be at least 2, not {FLAGS.num_samples}')
  if FLAGS.keep_every_hours is not None and not FLAGS.keep_every_hours > 0:
    raise UserError(f'--keep_every_hours must be above 0, not {FLAGS.keep_every_hours}')
  for name in ('learning_rate', 'd_learning_rate', 'g_learning_rate'):
    if FLAGS[name].value is not None and not FLAGS[name].value > 0:
      raise UserError(f'--{name} must be above 0, not {FLAGS[name].value}')
  if not 0 <= FLAGS.lr_decay_epochs <= FLAGS.epoch:
    raise UserError(f'--lr_decay_epochs must be 0 to --epoch ({FLAGS.epoch}), not {FLAGS.lr_decay_epochs}')
  for name in ('beta1', 'beta2'):
    if not 0 <= FLAGS[name].value < 1:
      raise UserError(f'--{name} must be in [0, 1), not {FLAGS[name].value}')
  if not FLAGS.r1 >= 0:
    raise UserError(f'--r1 must be 0 or more, not {FLAGS.r1}')
  if FLAGS.ema_start < 0:
    raise UserError(f'--ema_start must be 0 or more, not {FLAGS.ema_start}')
  if FLAGS.ema_rampup is not None and not FLAGS.ema_rampup > 0:
    raise UserError(f'--ema_rampup must be above 0, not {FLAGS.ema_rampup}')
  try:
    config_lib.augment_policies(FLAGS.augment)
  except ValueError as e:
    raise UserError(str(e)) from None
  if not 0 <= FLAGS.ema < 1:
    raise UserError(f'--ema must be in [0, 1) (0: no moving average), not {FLAGS.ema}')
  if not FLAGS.gradient_penalty >= 0:
    raise UserError(f'--gradient_penalty must be 0 or more, not {FLAGS.gradient_penalty}')
  if FLAGS.dataset.startswith(config_lib.TFDS_PREFIX):
    if not FLAGS.dataset[len(config_lib.TFDS_PREFIX):]:
      raise UserError('--dataset tfds:NAME needs the name of a TensorFlow Datasets dataset, e.g. tfds:cifar10')
  elif not FLAGS.dataset or os.sep in FLAGS.dataset or FLAGS.dataset in ('.', '..'):
    raise UserError(f'--dataset must be a folder name inside --data_dir, not {FLAGS.dataset!r}')
  _dataset()
  if FLAGS.input_width is not None and FLAGS.input_height is None:
    raise UserError('--input_width needs --input_height: together they are the size of the --crop')
  if FLAGS.input_height is not None and not FLAGS.crop:
    raise UserError(f'--input_height {FLAGS.input_height} is the height of the centre crop, and there is none: add '
                    '--crop to cut it, or drop --input_height to resize each whole image')
  if FLAGS.train and FLAGS.batch_size == 1:
    raise UserError('--batch_size 1 cannot train: batch norm normalizes each feature over the batch, and over one '
                    'image every feature becomes 0, so D scores every image the same; use 2 or more (16 to 64 train '
                    'well)')
  if FLAGS.run_name is not None and not config_lib.RUN_NAME.fullmatch(FLAGS.run_name):
    raise UserError(f'--run_name {FLAGS.run_name!r} must be a plain name of up to 100 letters, digits, ".", "_" and '
                    '"-", starting with a letter or digit (it names folders)')
  if FLAGS.device is not None:
    _device_type('device', FLAGS.device)
  _check_devices()
  if FLAGS.strategy == 'multi_worker' and FLAGS.train:
    if not FLAGS.worker_timeout > 0:
      raise UserError(f'--worker_timeout must be above 0, not {FLAGS.worker_timeout}')
    workers = cluster.from_environment()  # (TF_CONFIG: read here, once; the config carries it from here on)
    if FLAGS.batch_size % len(workers.workers):
      raise UserError(f'--batch_size {FLAGS.batch_size} does not split evenly across the {len(workers.workers)} '
                      f'workers of TF_CONFIG; use a multiple of {len(workers.workers)}')
    return workers
  return None


def _check_devices():
  """--devices and --num_gpus, as far as the flags tell (how many GPUs are visible is asked later)."""
  if FLAGS.devices and FLAGS.num_gpus:
    raise UserError('--devices and --num_gpus both choose the devices: give one of them')
  if FLAGS.strategy == 'multi_worker' and (FLAGS.devices or FLAGS.num_gpus):
    raise UserError('--strategy multi_worker uses every GPU of each worker (or its CPU): drop --devices/--num_gpus')
  devices = FLAGS.devices or [f'/gpu:{index}' for index in range(FLAGS.num_gpus or 0)]
  for name in devices:
    _device_type('devices', name)
  if len(set(devices)) != len(devices):
    raise UserError(f'--devices names a device twice: {",".join(devices)}')
  if len(devices) > 1 and FLAGS.batch_size % len(devices):
    raise UserError(f'--batch_size {FLAGS.batch_size} does not split evenly across {len(devices)} devices; '
                    f'use a multiple of {len(devices)}')


def config_from_flags(workers=None):
  """Loads TensorFlow and turns the checked flags into a Config (completion.complete() fills in what only the data
  knows): the devices there are, the precision, the cluster `workers` (a cluster.Cluster, or None).

  Raises:
    UserError: --num_gpus asks for more GPUs than are visible, or a --precision this device cannot run.
  """
  from training import runtime  # pylint: disable=import-outside-toplevel; TensorFlow loads here, once the flags are checked
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  tf.get_logger().setLevel('WARNING')  # its INFO lines repeat what this program logs itself
  gpus = len(tf.config.list_physical_devices('GPU'))
  if FLAGS.num_gpus and FLAGS.num_gpus > gpus:
    raise UserError(f'--num_gpus {FLAGS.num_gpus}: only {gpus} GPU(s) are visible here')
  devices = tuple(FLAGS.devices or [f'/gpu:{index}' for index in range(FLAGS.num_gpus or 0)])
  devices = devices if len(devices) > 1 else ()
  # the model's device; with --devices, the first of them (the sampler's device in test mode)
  device = (FLAGS.devices[0] if FLAGS.devices else FLAGS.device) or ('/gpu:0' if gpus else '/cpu:0')
  multi_worker = workers is not None
  augment = None if FLAGS.augment is None else ','.join(config_lib.augment_policies(FLAGS.augment)) or 'none'
  return config_lib.Config(
      dataset=_dataset(), data_dir=FLAGS.data_dir, tfds_data_dir=FLAGS.tfds_data_dir,
      input_fname_pattern=FLAGS.input_fname_pattern, input_height=FLAGS.input_height,
      input_width=FLAGS.input_width or FLAGS.input_height, crop=FLAGS.crop, train_size=FLAGS.train_size,
      conditional=FLAGS.conditional, conditioning=FLAGS.conditioning, strict=FLAGS.strict, cache=FLAGS.cache,
      output_height=FLAGS.output_height, output_width=FLAGS.output_width, z_dim=FLAGS.z_dim,  # (completion.prepare)
      z_dist=FLAGS.z_dist, gf_dim=FLAGS.gf_dim, df_dim=FLAGS.df_dim, gfc_dim=FLAGS.gfc_dim, dfc_dim=FLAGS.dfc_dim,
      loss=FLAGS.loss, gradient_penalty=FLAGS.gradient_penalty, ema=FLAGS.ema, learning_rate=FLAGS.learning_rate,
      mirror=FLAGS.mirror, spectral_norm=FLAGS.spectral_norm, d_batch_norm=FLAGS.d_batch_norm, r1=FLAGS.r1,
      upsample=FLAGS.upsample,
      r1_every=FLAGS.r1_every, augment=augment,  # (None: from the data)
      ema_start=FLAGS.ema_start, ema_rampup=FLAGS.ema_rampup, d_learning_rate=FLAGS.d_learning_rate,
      g_learning_rate=FLAGS.g_learning_rate, beta2=FLAGS.beta2,
      lr_decay_epochs=FLAGS.lr_decay_epochs, beta1=FLAGS.beta1, batch_size=FLAGS.batch_size, epoch=FLAGS.epoch,
      d_steps=FLAGS.d_steps, g_steps=FLAGS.g_steps,
      run_name=FLAGS.run_name, checkpoint_dir=FLAGS.checkpoint_dir, sample_dir=FLAGS.sample_dir,
      log_dir=FLAGS.log_dir, sample_num=FLAGS.sample_num, sample_freq=FLAGS.sample_freq, ckpt_freq=FLAGS.ckpt_freq,
      log_freq=FLAGS.log_freq, max_to_keep=FLAGS.max_to_keep, keep_every_hours=FLAGS.keep_every_hours,
      eval_freq=FLAGS.eval_freq, eval_samples=FLAGS.num_samples or config_lib.TRAINING_EVAL_SAMPLES,
      best_metric=FLAGS.best_metric, inception_dir=FLAGS.inception_dir, device=device, devices=devices,
      multi_worker=multi_worker, workers=workers.workers if workers else (),
      worker_index=workers.index if workers else 0,
      worker_timeout=FLAGS.worker_timeout, seed=FLAGS.seed, deterministic=FLAGS.deterministic, xla=FLAGS.xla,
      precision=_precision(runtime, tf, device, multi_worker))


def _precision(runtime, tf, device, multi_worker):
  """--precision, with auto resolved for `device`; says which, and why, in the log."""
  on_gpu = _device_type('device', device) == 'GPU' and tf.config.list_physical_devices('GPU')
  if FLAGS.precision == 'auto':
    precision, why = runtime.auto_precision(device, multi_worker)
    logging.info('precision %s (--precision auto: %s)', precision, why)
    return precision
  if FLAGS.precision == 'bfloat16' and multi_worker and not on_gpu:
    raise UserError(f'--precision bfloat16 with --strategy multi_worker: {runtime.MULTI_WORKER_NO_BFLOAT16}, so '
                    'the workers cannot run: use --precision float32 (auto picks it for multi-worker runs)')
  if FLAGS.precision == 'mixed_float16' and not on_gpu:
    raise UserError('--precision mixed_float16 is for GPUs (float16 on tensor cores), and this run is on the CPU, '
                    "where TensorFlow's float16 rewrite crashes drawing the sample grid: use --precision auto "
                    '(bfloat16 where the CPU has bfloat16 units) or float32')
  if FLAGS.precision == 'bfloat16' and not set(runtime.BFLOAT16_CPU_FLAGS) & runtime.cpu_flags():
    logging.warning('--precision bfloat16 on a CPU without bfloat16 units (no %s flag): it works, but expect it '
                    'to be slower than float32', ' or '.join(runtime.BFLOAT16_CPU_FLAGS))
  return FLAGS.precision


def use_trained(config):
  """No --train: a test grid, or --generate, --visualize, --export, --freeze, --evaluate, from a checkpoint."""
  from app import sampling  # pylint: disable=import-outside-toplevel; (after TensorFlow, as in config_from_flags)
  from app import modes  # pylint: disable=import-outside-toplevel

  if FLAGS.images is not None:  # no model: the images of a folder against the dataset
    return modes.evaluate_images(config, FLAGS.images, FLAGS.num_samples or config_lib.EVALUATE_SAMPLES,
                                 FLAGS.out_dir)
  config = modes.trained_config(config, data_dir_given=FLAGS['data_dir'].present, ema_given=FLAGS['ema'].present)
  checkpoint, seeds = _checkpoint_step(), _seeds()
  if FLAGS.evaluate:
    return modes.evaluate(config, FLAGS.num_samples or config_lib.EVALUATE_SAMPLES, checkpoint)
  sampling.parse_labels(FLAGS.labels, config.y_dim, config.class_names)  # checks --labels before anything is written
  if FLAGS.generate:
    modes.generate(config, FLAGS.generate, FLAGS.labels, FLAGS.out_dir, checkpoint)
  elif FLAGS.visualize:
    modes.visualize(config, FLAGS.option, FLAGS.labels, FLAGS.out_dir, checkpoint, frames=FLAGS.frames,
                    num_dims=FLAGS.num_dims, seeds=seeds)
  elif not (FLAGS.export or FLAGS.freeze):
    modes.sample(config, checkpoint)
  if FLAGS.export or FLAGS.freeze:
    modes.export(config, FLAGS.export, FLAGS.freeze, checkpoint)


def main(argv):
  if len(argv) > 1:
    raise UserError(f'unexpected argument {argv[1]!r}; flags start with --')
  config = config_from_flags(check_flags())
  from app import modes  # pylint: disable=import-outside-toplevel; (after TensorFlow, as in config_from_flags)
  if FLAGS.check_data:
    modes.check_data(config)
  elif FLAGS.train:
    modes.train(config, _checkpoint_step())
  else:
    use_trained(config)


if __name__ == '__main__':
  cli.run_program(main, INTRO, HELP_GROUPS)
