"""The config completed from the data: the one place that asks the data what the flags leave open (the output
size, channels, label classes, the default --best_metric, and what the kind of data trains with).

$ python main.py --train --dataset anime-faces   # prepare(): 64x64, 3 channels, --augment translation,cutout
"""

import collections
import dataclasses

from absl import logging

from config import saved_config, square_from_one_side
import datasets
from errors import UserError
import evaluation
from evaluation import inception
from training import checkpoints


# What training uses where the flags leave it to the data (complete()): colour images get the tools for small
# datasets that experiments/small_data measured best on the 5,000 anime faces; grayscale data (digits, letters) keeps
# the 2015 recipe, under which the MNIST defaults were chosen. docs/small_data.md.
DataDefaults = collections.namedtuple('DataDefaults', 'augment mirror upsample')
COLOUR_DEFAULTS = DataDefaults(augment='translation,cutout', mirror=False, upsample='resize')
GRAYSCALE_DEFAULTS = DataDefaults(augment='none', mirror=False, upsample='deconv')


def complete(config, dataset):
  """The config with what only the data knows: its channels, its label classes (none with --noconditional),
  what its kind trains with where no flag says (data_defaults(); --upsample, where the run has checkpoints, what
  they were trained with), and the default --best_metric: fd where the digit classifier applies (labelled grayscale
  data), else fid where the Inception network is there, else swd.

  Raises:
    UserError: --best_metric fd for data the digit classifier cannot score, or fid or kid without the network.
  """
  classifier = evaluation.uses_classifier(dataset)
  has_inception = inception.find(config.inception_path) is not None
  if config.best_metric == 'fd' and not classifier:
    raise UserError(f'--best_metric fd needs labelled grayscale data (MNIST-style IDX files) for its digit '
                    f'classifier; {dataset.name} is not: use --best_metric swd, or fid')
  if config.best_metric in evaluation.INCEPTION_METRICS and not has_inception:
    raise UserError(f'--best_metric {config.best_metric} needs the Inception network of the FID paper in '
                    f'{config.inception_path}: python download.py inception fetches it (or use --best_metric swd)')
  default = 'fd' if classifier else 'fid' if has_inception else 'swd'
  defaults = data_defaults(dataset)
  pick = lambda given, by_data: by_data if given is None else given
  return dataclasses.replace(
      config, c_dim=dataset.channels, y_dim=dataset.num_classes if config.conditional else 0,
      class_names=dataset.class_names if config.conditional else None, best_metric=config.best_metric or default,
      mirror=pick(config.mirror, defaults.mirror), augment=pick(config.augment, defaults.augment),
      upsample=pick(config.upsample, _trained_upsample(config) or defaults.upsample))


def _trained_upsample(config):
  """The --upsample of the run's checkpoints, or None where it has none: a resumed run keeps its G's layers, which
  a default chosen since would not fit."""
  saved = saved_config(config.checkpoint_path)
  return saved.upsample if saved is not None and checkpoints.steps(config.checkpoint_path) else None


def data_defaults(dataset):
  """The DataDefaults of `dataset`'s kind: COLOUR_DEFAULTS for colour images, GRAYSCALE_DEFAULTS for the rest."""
  return COLOUR_DEFAULTS if dataset.channels == 3 else GRAYSCALE_DEFAULTS


def with_output_size(config):
  """The config with its output size: as given (one side given is a square), else the data's default (28 for
  MNIST-style data, the native size of small TFDS images, else 64: its kind says, no image is read)."""
  config = square_from_one_side(config)
  if config.output_height is not None:
    return config
  height = datasets.default_output_size(config)
  return dataclasses.replace(config, output_height=height, output_width=height)


def without_a_crop_size(config, dataset):
  """--input_height (and --input_width) without --crop: the config without them, since each whole image is resized
  and they size nothing (as in the classic DCGAN-tensorflow code, whose README gives --input_height=28 for MNIST);
  a warning says so, unless they are the output's size or the images' own."""
  if config.crop or config.input_height is None:
    return config
  given = (config.input_height, config.input_width or config.input_height)
  if given != (config.output_height, config.output_width) and set(datasets.image_sizes(dataset)) != {given}:
    logging.warning('--input_height %d%s has no effect without --crop: each whole image is resized to %dx%d; add '
                    '--crop to cut its centre %dx%d first', given[0],
                    f' --input_width {given[1]}' if given[1] != given[0] else '', config.output_height,
                    config.output_width, *given)
  return dataclasses.replace(config, input_height=None, input_width=None)


def prepare(config):
  """Opens the dataset of `config` (decoding it into the --cache file when asked) and completes the config with
  what only the data knows: the one place that does (with_output_size, without_a_crop_size, then complete).

  Returns:
    (the complete config, the datasets.Source).

  Raises:
    UserError: see datasets.open_dataset and complete.
  """
  config = with_output_size(config)
  dataset = datasets.open_dataset(config, strict=config.strict, cache_dir=config.data_cache_path)
  config = without_a_crop_size(config, dataset)
  if config.cache:
    dataset = datasets.cache_images(dataset, config, config.data_cache_path)
  return complete(config, dataset), dataset
