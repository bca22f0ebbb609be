"""Trains a DCGAN, or uses the newest checkpoint: a sample grid, N images, visualizations, export, scores.

The flags of training and using a model are defined in app/options.py (download.py has its own); here the checks
that involve several of them run before TensorFlow loads, so that a mistake is answered at once, and they become
the run's Config; app/modes.py runs the mode they ask for.

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

import dataclasses
import os

from absl import logging

from app import cli
from app import options
from app.options import FLAGS, HELP_GROUPS, INTRO
from config import (augment_policies, BEST_CHECKPOINT, BUILTIN_DATASETS, category_dataset, check_lsun_categories,
                    Config, EVALUATE_SAMPLES, missing_dataset, TFDS_PREFIX, TRAINING_EVAL_SAMPLES)
from errors import UserError
import hardware
from training import cluster

_MODES = ('generate', 'visualize', 'export', 'freeze', 'evaluate')
BEST = BEST_CHECKPOINT


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
  check_lsun_categories(FLAGS.lsun_category)
  if len(set(FLAGS.lsun_category)) < 2:
    raise UserError(f'--lsun_category {",".join(FLAGS.lsun_category)}: give two or more categories for a '
                    f'conditional model; for one, use --dataset lsun_{FLAGS.lsun_category[0]}')
  return category_dataset('lsun', FLAGS.lsun_category)


def _device_type(name):
  """The type ('CPU', 'GPU', 'TPU') of a device name such as /gpu:1 (the flags' own check has matched it)."""
  return options.DEVICE_NAME.fullmatch(name)[1].upper()


def _checkpoint_step():
  """--checkpoint as a step number, BEST, or None for the newest."""
  if FLAGS.checkpoint == 'latest':
    return None
  return BEST if FLAGS.checkpoint == BEST else int(FLAGS.checkpoint)


def _devices():
  """The devices of --devices or --num_gpus, in order: () for none."""
  return tuple(FLAGS.devices or [f'/gpu:{index}' for index in range(FLAGS.num_gpus or 0)])


# The checks that involve several flags (a flag's own bounds are checked as it is parsed: app/options.py). Each
# raises a UserError that says what does not go together, and how to mend it.

def _one_thing_at_a_time():
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


def _decay_within_the_run():
  if FLAGS.lr_decay_epochs > FLAGS.epoch:
    raise UserError(f'--lr_decay_epochs must be 0 to --epoch ({FLAGS.epoch}), not {FLAGS.lr_decay_epochs}')


def _crop_size():
  """(--input_height without --crop trains, as in the classic code: completion.without_a_crop_size says so.)"""
  if FLAGS.input_width is not None and FLAGS.input_height is None:
    raise UserError('--input_width needs --input_height: together they are the size of the --crop')


def _a_dataset_that_is_there():
  """A mode that reads the data (--train, --check_data, --evaluate) needs its folder: a name that is not one is
  answered before TensorFlow loads, with the name it is close to."""
  if not (FLAGS.train or FLAGS.check_data or FLAGS.evaluate) or FLAGS.lsun_category is not None:
    return
  if FLAGS.dataset.startswith(TFDS_PREFIX) or FLAGS.dataset in BUILTIN_DATASETS:
    return  # (TFDS checks its own names; the built-in ones are made on first use)
  if not os.path.exists(os.path.join(FLAGS.data_dir, FLAGS.dataset)):
    raise UserError(missing_dataset(FLAGS.dataset, FLAGS.data_dir))


def _a_batch_that_trains():
  if FLAGS.train and FLAGS.batch_size == 1:
    raise UserError('--batch_size 1 cannot train: batch norm normalizes each feature over the batch, and over one '
                    'image every feature becomes 0, so D scores every image the same; use 2 or more (16 to 64 train '
                    'well)')


def _devices_that_split_the_batch():
  """--devices and --num_gpus, as far as the flags tell (how many GPUs are visible is asked later)."""
  if FLAGS.devices and FLAGS.num_gpus:
    raise UserError('--devices and --num_gpus both choose the devices: give one of them')
  if FLAGS.strategy == 'multi_worker' and (FLAGS.devices or FLAGS.num_gpus):
    raise UserError('--strategy multi_worker uses every GPU of each worker (or its CPU): drop --devices/--num_gpus')
  devices = _devices()
  if len(devices) > 1 and FLAGS.batch_size % len(devices):
    raise UserError(f'--batch_size {FLAGS.batch_size} does not split evenly across {len(devices)} devices; '
                    f'use a multiple of {len(devices)}')


RULES = (_one_thing_at_a_time, _decay_within_the_run, _dataset, _crop_size, _a_batch_that_trains,
         _devices_that_split_the_batch)


def check_flags():
  """The RULES, and TF_CONFIG for a multi-worker run: what needs nothing but the flags, checked before TensorFlow
  loads, so that a mistake is answered at once.

  Returns:
    The cluster.Cluster of TF_CONFIG for --strategy multi_worker with --train, else None.

  Raises:
    UserError: flags that do not go together, or a TF_CONFIG that does not describe this worker's cluster.
  """
  for rule in RULES:
    rule()
  workers = None
  if FLAGS.strategy == 'multi_worker' and FLAGS.train:
    workers = cluster.from_environment()  # (TF_CONFIG: read here, once; the config carries it from here on)
    if FLAGS.batch_size % len(workers.workers):
      raise UserError(f'--batch_size {FLAGS.batch_size} does not split evenly across the {len(workers.workers)} '
                      f'workers of TF_CONFIG; use a multiple of {len(workers.workers)}')
  _a_dataset_that_is_there()  # (last: the flags' own mistakes first)
  return workers


def config_from_flags(workers=None):
  """Loads TensorFlow and turns the checked flags into a Config: each flag named as a field, by name, then the
  fields that the flags only imply (completion.complete() fills in what only the data knows): the dataset of
  --lsun_category, the crop's width, the devices there are, the precision, the cluster `workers` (a
  cluster.Cluster, or None).

  Raises:
    UserError: --num_gpus asks for more GPUs than are visible, or a --precision this device cannot run.
  """
  from training import runtime  # pylint: disable=import-outside-toplevel; TensorFlow loads here, once checked
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  tf.get_logger().setLevel('WARNING')  # its INFO lines repeat what this program logs itself
  gpus = len(tf.config.list_physical_devices('GPU'))
  if FLAGS.num_gpus and FLAGS.num_gpus > gpus:
    raise UserError(f'--num_gpus {FLAGS.num_gpus}: only {gpus} GPU(s) are visible here')
  devices = _devices()
  # the model's device; with --devices, the first of them (the sampler's device in test mode)
  device = (FLAGS.devices[0] if FLAGS.devices else FLAGS.device) or ('/gpu:0' if gpus else '/cpu:0')
  multi_worker = workers is not None
  given = {field.name: FLAGS[field.name].value for field in dataclasses.fields(Config)
           if field.name in FLAGS}
  augment = None if FLAGS.augment is None else ','.join(augment_policies(FLAGS.augment)) or 'none'
  return Config(**{
      **given, 'dataset': _dataset(), 'input_width': FLAGS.input_width or FLAGS.input_height,
      'augment': augment,  # (None: from the data)
      'eval_samples': FLAGS.num_samples or TRAINING_EVAL_SAMPLES, 'device': device,
      'devices': devices if len(devices) > 1 else (), 'multi_worker': multi_worker,
      'workers': workers.workers if workers else (), 'worker_index': workers.index if workers else 0,
      'precision': _precision(runtime, tf, device, multi_worker)})


def _precision(runtime, tf, device, multi_worker):
  """--precision, with auto resolved for `device`; says which, and why, in the log."""
  on_gpu = _device_type(device) == 'GPU' and tf.config.list_physical_devices('GPU')
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
  if FLAGS.precision == 'bfloat16' and not hardware.bfloat16_units():
    cap = hardware.onednn_isa_cap()
    if cap and not on_gpu:
      raise UserError(f'--precision bfloat16 with ONEDNN_MAX_CPU_ISA={cap}: oneDNN is held below bfloat16 there '
                      "and TensorFlow's bfloat16 kernels stop the process; use --precision float32 (auto picks "
                      'it), or unset ONEDNN_MAX_CPU_ISA')
    logging.warning('--precision bfloat16 on a CPU without bfloat16 units (no %s flag): it works, but expect it '
                    'to be slower than float32', ' or '.join(hardware.BFLOAT16_CPU_FLAGS))
  return FLAGS.precision


def use_trained(config):
  """No --train: a test grid, or --generate, --visualize, --export, --freeze, --evaluate, from a checkpoint."""
  from app import sampling  # pylint: disable=import-outside-toplevel; (after TensorFlow, as in config_from_flags)
  from app import modes  # pylint: disable=import-outside-toplevel

  if FLAGS.images is not None:  # no model: the images of a folder against the dataset
    return modes.evaluate_images(config, FLAGS.images, FLAGS.num_samples or EVALUATE_SAMPLES,
                                 FLAGS.out_dir)
  config = modes.trained_config(config, data_dir_given=FLAGS['data_dir'].present, ema_given=FLAGS['ema'].present)
  checkpoint, seeds = _checkpoint_step(), [int(seed) for seed in FLAGS.seeds]
  if FLAGS.evaluate:
    return modes.evaluate(config, FLAGS.num_samples or EVALUATE_SAMPLES, checkpoint)
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
