"""The run's configuration: one frozen dataclass that `main.py` makes from the flags.

What only the data knows (channels, label classes, the default --best_metric) is None until completion.complete()
fills it in, once, when the data is loaded; a graph is built only from a complete config. It is written as JSON
beside the checkpoints, so test mode rebuilds the generator without the dataset and a resumed run can say
exactly which flag no longer fits the saved variables.

$ python main.py --train --dataset digits    # writes checkpoint/digits_28_28/config.json
"""

import dataclasses
import difflib
import json
import os
import re
from typing import Optional

from common import disk
from errors import UserError

CONFIG_FILE = 'config.json'
DATA_CACHE_DIR = 'datasets'  # <checkpoint_dir>/datasets/<dataset>/: what runs of any size learn of the data once
RUN_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,99}')  # a --run_name: one plain folder-name part

# Fields that set the shapes of the variables: a checkpoint loads only into a graph with the same values.
SHAPE_FIELDS = ('output_height', 'output_width', 'c_dim', 'y_dim', 'conditioning', 'z_dim', 'gf_dim', 'df_dim',
                'gfc_dim', 'dfc_dim', 'spectral_norm', 'd_batch_norm', 'upsample')
# How a conditional model takes its labels (gan/networks.py); the first is the default, chosen on real MNIST
# (docs/conditioning.md). 'mnist' is what checkpoints written before the choice hold.
CONDITIONINGS = ('projection', 'concat', 'mnist')

Z_DISTRIBUTIONS = ('uniform_signed', 'normal')
# How G doubles its maps (gan/networks.py): the 2015 DCGAN's transposed 5x5 convolution, or nearest-neighbour
# upsampling then a 3x3 convolution (ops.resize_conv2d)
UPSAMPLINGS = ('deconv', 'resize')
# The names main.py's flags accept, kept here (where nothing loads TensorFlow) so that a mistake in a flag is
# reported before TensorFlow loads; each module that implements them checks at import that they match.
BUILTIN_DATASETS = ('digits',)  # datasets/digits.py renders them
MNIST_DATASET, CELEBA_DATASET = 'mnist', 'celebA'  # the folders download.py fetches them into (downloads/fetch.py)
# LSUN's scene categories and splits, as download.py fetches them (fetch.LSUN_ZIPS, which checks at import)
LSUN_CATEGORIES = ('bedroom', 'bridge', 'church_outdoor', 'classroom', 'conference_room', 'dining_room', 'kitchen',
                   'living_room', 'restaurant', 'tower')
LSUN_SPLITS = ('train', 'val')
TFDS_PREFIX = 'tfds:'  # --dataset tfds:NAME is a TensorFlow Datasets dataset
BEST_CHECKPOINT = 'best'  # --checkpoint best: the one kept by --eval_freq
LOSS_NAMES = ('non_saturating', 'minimax', 'wasserstein', 'hinge', 'least_squares')  # losses.LOSSES
VISUALIZE_OPTIONS = ('0', '1', '2', '3', '4', 'interp', 'progress')  # app/sampling.visualize
AUGMENT_POLICIES = ('color', 'translation', 'cutout')  # gan/augment.py's DiffAugment
BEST_METRICS = ('swd', 'fd', 'fid', 'kid')  # evaluation/evaluator.py: what --best_metric may pick
EVALUATE_SAMPLES = 10000  # --evaluate's default --num_samples
TRAINING_EVAL_SAMPLES = 2000  # --eval_freq's
# Fields that change what training does without changing a variable's shape: a resumed run may change them, and
# is told which it changed (modes.train). The epoch to resume at is counted with the new values of the last three.
TRAINING_FIELDS = ('data_dir', 'input_fname_pattern', 'crop', 'input_height', 'input_width', 'mirror', 'z_dist',
                   'loss', 'gradient_penalty', 'r1', 'r1_every', 'augment', 'ema', 'ema_start', 'ema_rampup',
                   'learning_rate', 'd_learning_rate', 'g_learning_rate', 'lr_decay_epochs', 'beta1', 'beta2',
                   'g_steps', 'seed', 'precision', 'batch_size', 'train_size', 'd_steps')
EPOCH_FIELDS = ('batch_size', 'train_size', 'd_steps')


@dataclasses.dataclass(frozen=True)
class Config:
  """Everything a run needs; each field is the flag of its name (app/options.py, docs/flags.md), where one exists."""
  # Data
  dataset: str = 'digits'
  data_dir: str = 'data'
  tfds_data_dir: Optional[str] = None  # TensorFlow Datasets' own folder; None is its default
  input_fname_pattern: str = '*.jpg'
  input_height: Optional[int] = None
  input_width: Optional[int] = None
  crop: bool = False
  train_size: Optional[int] = None
  conditional: bool = True  # condition on the data's labels when it has them
  mirror: Optional[bool] = None  # x-flips of the real images (None: from the data, completion.complete)
  strict: bool = False  # any bad image is an error
  cache: bool = False  # decode the images once into a memory-mapped file
  # Model
  output_height: int = 64
  output_width: int = 64
  c_dim: Optional[int] = None  # image channels: from the data
  y_dim: Optional[int] = None  # label classes, from the data; 0 is an unconditional model
  class_names: Optional[tuple] = None  # the name of each label class, when the data names them (class folders)
  conditioning: str = CONDITIONINGS[0]  # how a conditional model takes its labels: a name in CONDITIONINGS
  z_dim: int = 100
  z_dist: str = 'uniform_signed'
  gf_dim: int = 64
  df_dim: int = 64
  gfc_dim: int = 1024
  dfc_dim: int = 1024
  spectral_norm: bool = False  # D's weights divided by their largest singular value
  d_batch_norm: bool = True  # D's batch norms (SN-DCGAN drops them)
  upsample: Optional[str] = None  # how G doubles its maps, a name in UPSAMPLINGS (None: completion.complete)
  # Losses and optimizer
  loss: str = 'non_saturating'  # a name in losses.LOSSES
  gradient_penalty: float = 0.0  # weight of WGAN-GP's penalty in D's loss
  r1: float = 0.0  # gamma of the R1 penalty on real images; 0: none
  r1_every: int = 16  # R1 every this many steps (lazy), scaled by it
  augment: Optional[str] = None  # DiffAugment's policies, comma-separated, or none (None: from the data)
  ema: float = 0.999  # decay of the moving average of G's weights that samples use; 0: none
  ema_start: int = 0  # the step from which the average averages; before it, it follows G's weights
  ema_rampup: Optional[float] = None  # the average spans at most this fraction of the steps; None: TensorFlow's
  learning_rate: float = 2e-4
  d_learning_rate: Optional[float] = None  # D's Adam learning rate; None: learning_rate
  g_learning_rate: Optional[float] = None  # G's; None: learning_rate
  beta1: float = 0.5
  beta2: float = 0.999
  lr_decay_epochs: int = 0  # both learning rates fall linearly to 0 over the last this many epochs; 0: constant
  batch_size: int = 64
  epoch: int = 25
  d_steps: int = 1
  g_steps: int = 2
  # Output
  run_name: Optional[str] = None  # keeps this run's folders apart from other runs on the same data and size
  checkpoint_dir: str = 'checkpoint'
  sample_dir: str = 'samples'
  log_dir: str = 'logs'
  sample_num: int = 64
  sample_freq: int = 100
  ckpt_freq: int = 500
  log_freq: int = 50
  max_to_keep: int = 5
  keep_every_hours: Optional[float] = None
  # Evaluation
  eval_freq: Optional[int] = None  # None: no evaluation during training
  eval_samples: int = TRAINING_EVAL_SAMPLES
  best_metric: Optional[str] = None  # default: fd for labelled grayscale data, else fid with the network, else swd
  inception_dir: Optional[str] = None  # the FID network's folder; None: <data_dir>/inception
  # Runtime
  device: str = '/cpu:0'
  devices: tuple = ()  # two or more: one replica on each (MirroredStrategy); else the model is on `device`
  multi_worker: bool = False  # MultiWorkerMirroredStrategy over the workers of TF_CONFIG
  workers: tuple = ()  # with multi_worker, the 'host:port' of every worker, as TF_CONFIG lists them (main.py reads it)
  worker_index: int = 0  # this process's place among them; 0 is the chief, which writes checkpoints
  worker_timeout: float = 600.0  # seconds a worker waits for the others before it gives up
  seed: int = 0
  deterministic: bool = False
  xla: bool = False
  precision: str = 'float32'  # float32, bfloat16 or mixed_float16 (Grappler's rewrites); variables stay float32

  @property
  def key(self):
    """Names the run's folders: the dataset and the output size (not the batch size), then -<run_name>."""
    key = f'{key_prefix(self.dataset)}_{self.output_height}_{self.output_width}'
    return f'{key}-{self.run_name}' if self.run_name else key

  @property
  def num_workers(self):
    return len(self.workers) or 1

  @property
  def checkpoint_path(self):
    return os.path.join(self.checkpoint_dir, self.key)

  @property
  def sample_path(self):
    return os.path.join(self.sample_dir, self.key)

  @property
  def log_path(self):
    return os.path.join(self.log_dir, self.key)

  @property
  def inception_path(self):
    """The folder of the FID paper's Inception network (classify_image_graph_def.pb)."""
    return self.inception_dir or os.path.join(self.data_dir, 'inception')

  @property
  def data_cache_path(self):
    """Where what was learnt of the data itself is kept (the check of every entry, an LMDB's keys, the decoded
    images of each size): one folder per dataset, shared by runs of every size and name, and never a run's
    folder, so that --check_data or a run that fails leaves no run folder behind."""
    return os.path.join(self.checkpoint_dir, DATA_CACHE_DIR, key_prefix(self.dataset))


def square_from_one_side(config):
  """The config with a missing --output_width taken from --output_height, or the height from the width: one side
  given means a square, in every mode. Both missing stay missing (the data, or the checkpoint, says)."""
  height, width = config.output_height, config.output_width
  return dataclasses.replace(config, output_height=height or width, output_width=width or height)


def steps_per_epoch(config, num_images):
  """Training steps in an epoch of `num_images` (or --train_size of them): each epoch visits a fresh shuffle in
  whole steps, and each step's D updates take a batch each."""
  batches = min(num_images, config.train_size or num_images) // config.batch_size
  return batches // config.d_steps


def augment_policies(text):
  """--augment as the tuple of AUGMENT_POLICIES it names: 'color,translation' -> ('color', 'translation'); 'none'
  or '' -> ().

  Raises:
    ValueError: a name that is not a policy (the message names the known ones).
  """
  names = [name.strip() for name in (text or '').split(',') if name.strip()]
  if names == ['none']:
    return ()
  unknown = [name for name in names if name not in AUGMENT_POLICIES]
  if unknown:
    raise ValueError(f'--augment {unknown[0]!r} is not one of {", ".join(AUGMENT_POLICIES)} or none')
  return tuple(dict.fromkeys(names))  # (in the given order, once each)


def check_lsun_categories(categories):
  """Raises UserError naming the first of `categories` that is not an LSUN scene category, with the ones there are."""
  for category in categories:
    if category not in LSUN_CATEGORIES:
      raise UserError(f'--lsun_category {category!r} is not an LSUN scene category: {", ".join(LSUN_CATEGORIES)}')


def lsun_folder(category, split='train'):
  """The dataset folder download.py unpacks an LSUN category into: lsun_<category>, lsun_<category>_val."""
  return f'lsun_{category}' + ('' if split == 'train' else f'_{split}')


def download_command(dataset):
  """The download.py command that makes the dataset folder `dataset`, or None when it does not make it: what the
  messages of a missing dataset say, without the download code (downloads/fetch.py's table, checked against this)."""
  if dataset == MNIST_DATASET:
    return 'python download.py mnist'
  if dataset == CELEBA_DATASET:
    return 'python download.py celebA'
  for category in LSUN_CATEGORIES:
    for split in LSUN_SPLITS:
      if dataset == lsun_folder(category, split):
        return f'python download.py lsun --lsun_category {category}' + ('' if split == 'train' else ' --lsun_split val')
  return None


def missing_dataset(dataset, data_dir):
  """The sentence for a dataset folder <data_dir>/<dataset> that is not there: how to download it, or else a name
  close to it (of the datasets download.py makes, the built-in ones, the folders of data_dir) and where to put its
  images."""
  folder = os.path.abspath(os.path.join(data_dir, dataset))
  command = download_command(dataset)
  if dataset == MNIST_DATASET:
    how = (f'download it with: {command} (or put the MNIST IDX files train-images-idx3-ubyte.gz, '
           'train-labels-idx1-ubyte.gz there, or train on the built-in --dataset digits)')
  elif command:
    how = f'download it with: {command}'
  else:
    how = (f'put the images in it (--input_fname_pattern picks them), point --data_dir at the folder that holds '
           f'{dataset}/, or use a built-in dataset: {", ".join(BUILTIN_DATASETS)}')
  known = [*BUILTIN_DATASETS, MNIST_DATASET, CELEBA_DATASET, *(lsun_folder(c) for c in LSUN_CATEGORIES)]
  if os.path.isdir(data_dir):
    known += sorted(name for name in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, name)))
  close = [] if command else difflib.get_close_matches(dataset, [name for name in dict.fromkeys(known)
                                                                  if name != dataset], n=1, cutoff=0.75)
  return f'no dataset folder {folder}{f" (did you mean --dataset {close[0]}?)" if close else ""}: {how}'


def category_dataset(prefix, categories):
  """The --dataset of one model on the LMDBs data/<prefix>_<category>, one class each, in sorted order:
  ('lsun', ['kitchen', 'bedroom']) -> 'lsun_bedroom+kitchen'."""
  return f'{prefix}_{"+".join(sorted(set(categories)))}'


def key_prefix(dataset):
  """The dataset's part of a run key, a folder name: 'tfds:celeb_a/align' -> 'tfds_celeb_a_align'."""
  return re.sub(r'[:/\\]', '_', dataset)


def save_config(config, directory):
  """Writes `config` as `directory/config.json`, replacing any older one in a single rename."""
  text = json.dumps(dataclasses.asdict(config), indent=2, sort_keys=True) + '\n'
  path = os.path.join(directory, CONFIG_FILE)
  disk.write_text(path, text, durable=True)


def saved_config(directory):
  """Reads `directory/config.json`.

  Returns:
    The saved Config, or None when there is no such file.

  Raises:
    UserError: the file is not a config this program wrote.
  """
  path = os.path.join(directory, CONFIG_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      fields = json.load(f)
    fields['devices'] = tuple(fields.get('devices', ()))  # JSON has lists
    fields['workers'] = tuple(fields.get('workers', ()))
    fields.setdefault('conditioning', 'mnist')  # written before there was a choice
    fields['augment'] = fields.get('augment') or 'none'  # written before --augment: none
    fields.setdefault('upsample', 'deconv')  # written before --upsample
    if fields.get('class_names') is not None:
      fields['class_names'] = tuple(fields['class_names'])
    return Config(**fields)
  except (ValueError, TypeError) as e:
    raise UserError(f'{path} is not a config written by this program ({e})') from None


def shape_differences(saved, current):
  """The shape-setting fields whose values differ, as [(field, saved_value, current_value)], among those the
  models have: the conditioning when both are conditional, the fully connected layers' units when either is
  the conditional MNIST model."""
  unused = set()
  if not (saved.y_dim and current.y_dim):
    unused.add('conditioning')
  if not any(c.y_dim and c.conditioning == 'mnist' for c in (saved, current)):
    unused.update(('gfc_dim', 'dfc_dim'))
  return [(name, getattr(saved, name), getattr(current, name))
          for name in SHAPE_FIELDS if name not in unused and getattr(saved, name) != getattr(current, name)]


def training_differences(saved, current):
  """The TRAINING_FIELDS whose values differ, as [(field, saved_value, current_value)]; data folders are
  compared by where they lead."""
  same = lambda name, a, b: (os.path.realpath(a) == os.path.realpath(b)) if name == 'data_dir' else a == b
  return [(name, getattr(saved, name), getattr(current, name)) for name in TRAINING_FIELDS
          if not same(name, getattr(saved, name), getattr(current, name))]
