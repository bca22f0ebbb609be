"""The run's configuration: one frozen dataclass that `main.py` makes from the flags.

What only the data knows (channels, label classes, the default --best_metric) is None until modes.complete()
fills it in, once, when the data is loaded; a graph is built only from a complete config. It is written as JSON
beside the checkpoints, so test mode rebuilds the generator without the dataset and a resumed run can say
exactly which flag no longer fits the saved variables.

$ python main.py --train --dataset digits    # writes checkpoint/digits_28_28/config.json
"""

import dataclasses
import json
import os
import re
from typing import Optional

import utils
from errors import UserError

CONFIG_FILE = 'config.json'

# Fields that set the shapes of the variables: a checkpoint loads only into a graph with the same values.
SHAPE_FIELDS = ('output_height', 'output_width', 'c_dim', 'y_dim', 'conditioning', 'z_dim', 'gf_dim', 'df_dim',
                'gfc_dim', 'dfc_dim')
# How a conditional model takes its labels (networks.py); the first is the default, chosen on real MNIST
# (README.md, "Labels and conditioning"). 'mnist' is what checkpoints written before the choice hold.
CONDITIONINGS = ('projection', 'concat', 'mnist')

Z_DISTRIBUTIONS = ('uniform_signed', 'normal')


@dataclasses.dataclass(frozen=True)
class Config:
  """Everything a run needs; see the flags in main.py for the meaning and units of each field."""
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
  # Losses and optimizer
  loss: str = 'non_saturating'  # a name in losses.LOSSES
  gradient_penalty: float = 0.0  # weight of WGAN-GP's penalty in D's loss
  ema: float = 0.999  # decay of the moving average of G's weights that samples use; 0: none
  learning_rate: float = 2e-4
  beta1: float = 0.5
  batch_size: int = 64
  epoch: int = 25
  d_steps: int = 1
  g_steps: int = 2
  # Output
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
  eval_samples: int = 2000
  best_metric: Optional[str] = None  # default: from the data (fd for labelled grayscale data, else swd)
  # Runtime
  device: str = '/cpu:0'
  devices: tuple = ()  # two or more: one replica on each (MirroredStrategy); else the model is on `device`
  multi_worker: bool = False  # MultiWorkerMirroredStrategy over the workers of TF_CONFIG
  worker_timeout: float = 600.0  # seconds a worker waits for the others before it gives up
  seed: int = 0
  deterministic: bool = False
  xla: bool = False
  precision: str = 'float32'  # float32, bfloat16 or mixed_float16 (Grappler's rewrites); variables stay float32

  @property
  def key(self):
    """Names the run's folders: the dataset and the output size, not the batch size."""
    return f'{key_prefix(self.dataset)}_{self.output_height}_{self.output_width}'

  @property
  def checkpoint_path(self):
    return os.path.join(self.checkpoint_dir, self.key)

  @property
  def sample_path(self):
    return os.path.join(self.sample_dir, self.key)

  @property
  def log_path(self):
    return os.path.join(self.log_dir, self.key)


def key_prefix(dataset):
  """The dataset's part of a run key, a folder name: 'tfds:celeb_a/align' -> 'tfds_celeb_a_align'."""
  return re.sub(r'[:/\\]', '_', dataset)


def save(config, directory):
  """Writes `config` as `directory/config.json`, replacing any older one in a single rename."""
  text = json.dumps(dataclasses.asdict(config), indent=2, sort_keys=True) + '\n'
  path = os.path.join(directory, CONFIG_FILE)
  utils.write_text(path, text, durable=True)


def load(directory):
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
    fields.setdefault('conditioning', 'mnist')  # written before there was a choice
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
