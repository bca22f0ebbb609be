"""The contract every kind of dataset answers (Source), the two ways it gives its images (PixelSource, decoded;
EncodedSource, encoded bytes), and what every kind needs: the dataset's folder, the sentence when it is missing,
and small arrays kept on disk under a fingerprint.

$ python main.py --train --dataset faces     # a FolderSource: data/faces/*.jpg
"""

import io
import os
import zipfile

import numpy as np

from common import disk
from config import BUILTIN_DATASETS, missing_dataset
from errors import UserError

BUILTIN = BUILTIN_DATASETS
# What tf.io.decode_image reads; other formats would fail inside the training step.
DECODABLE_FORMATS = ('JPEG', 'PNG', 'GIF', 'BMP', 'WEBP')
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.gif', '.bmp', '.webp')  # the file names of those formats
MAX_CLASSES = 1000
GRAYSCALE_MODES = ('1', 'L', 'LA', 'I', 'I;16', 'F')


class Source:
  """What every dataset answers.

  Attributes:
    name: the --dataset value.
    channels: 1 (grayscale) or 3 (RGB).
    labels: int32 [count], the class of each image, or None.
    num_classes: label classes; 0 when unlabelled.
    class_names: the name of each class (a folder of class folders names them), or None.
    images: uint8 [count, height, width, channels] at the output size for a PixelSource, None for an
      EncodedSource.
    bad: {index: why} of the entries known to be unreadable: training skips them without reading them.
    unreadable: how many entries the check of the dataset's opening found bad (num_images leaves them out).
  """
  kind = 'dataset'  # what --check_data calls it
  images = None

  def __init__(self, name, channels, labels=None, num_classes=None, class_names=None):
    self.name, self.channels, self.labels = name, channels, labels
    self.bad, self.unreadable = {}, 0
    self.class_names = tuple(class_names) if class_names else None
    if num_classes is None:
      num_classes = len(self.class_names) if self.class_names else (
          int(labels.max()) + 1 if labels is not None and len(labels) else 0)
    self.num_classes = num_classes

  def __len__(self):
    raise NotImplementedError

  @property
  def num_images(self):
    """The images an epoch counts: every entry but those found bad on opening (training skips any other bad one
    it meets, and takes the next)."""
    return len(self) - self.unreadable

  def entry_name(self, index):
    """Entry `index` in messages: a file, an LMDB key."""
    return f'image {index} of {self.name}'

  # What only some kinds of source know: how to find and open one, and what --check_data says about it.

  @staticmethod
  def recognizes(config):
    """Whether --dataset and --data_dir name a dataset of this kind."""
    raise NotImplementedError

  @classmethod
  def open(cls, config, cache_dir):
    """Opens the dataset that `config` names (every entry, bad ones included for encoded sources).

    Raises:
      UserError: it is missing or cannot be read at all.
    """
    raise NotImplementedError

  @staticmethod
  def default_size(config):
    """The output height (and width) when --output_height is not given."""
    return 64

  def describe(self):
    """The first lines of the --check_data report."""
    return [f'{self.name}: {self.kind}, {len(self)} images, {channels_text(self.channels)}']


class PixelSource(Source):
  """Decoded images at the output size, in memory or memory-mapped, with optional labels.

  Args:
    name: the --dataset value.
    images: uint8 [count, height, width, channels].
    labels: int32 [count] or None.
    num_classes: default max(labels) + 1.
    class_names: the name of each class, or None.
  """
  kind = 'images in memory'

  def __init__(self, name, images, labels=None, num_classes=None, class_names=None):
    super().__init__(name, images.shape[-1], labels, num_classes, class_names)
    self.images = images

  def __len__(self):
    return len(self.images)


class EncodedSource(Source):
  """Encoded images (JPEG, PNG, GIF, BMP, WebP) read one by one and decoded by TensorFlow.

  Subclasses say how to fetch entry i (fetch), how TensorFlow turns what was fetched into encoded bytes
  (tf_encoded), how to open it for Pillow (open_fetched), how to name it (entry_name), and what identifies
  their content (fingerprint). `scan` holds what check_entries found.
  """
  unit = 'entries'  # what messages count: '5 of 9 files matching data/x/*.jpg'
  preposition = 'in'
  scan = None

  @property
  def location(self):
    """Where the entries are, for messages: a glob pattern or a folder."""
    raise NotImplementedError

  def fetch(self, indices):
    """What `tf_encoded` turns into the encoded images `indices`: object array [n] of bytes."""
    raise NotImplementedError

  def tf_encoded(self, fetched):
    """string tensor: the encoded bytes of one fetched item."""
    return fetched

  def open_fetched(self, fetched):
    """A binary file object of one fetched item, for Pillow."""
    return io.BytesIO(fetched)

  def fingerprint(self):
    raise NotImplementedError


def channels_text(channels):
  return 'grayscale (1 channel)' if channels == 1 else 'RGB (3 channels)'


def folder_of(config):
  """<data_dir>/<dataset>: where the dataset of `config` lives (the one place that says so)."""
  return os.path.join(config.data_dir, config.dataset)


def missing(config):
  """The UserError of a dataset folder that is not there (config.missing_dataset says what to do)."""
  return UserError(missing_dataset(config.dataset, config.data_dir))


def save_arrays(path, **arrays):
  """np.savez to `path` in a single rename (numpy would add '.npz' to a temporary name of its own)."""
  def write(temporary):
    with open(temporary, 'wb') as f:
      np.savez(f, **arrays)
  disk.write_atomically(path, write)


def load_arrays(path, fingerprint):
  """{name: array} saved by save_arrays with this `fingerprint`, or None (none yet, stale or unreadable)."""
  try:
    with np.load(path) as saved:
      if str(saved['fingerprint']) != fingerprint:
        return None
      return {name: saved[name] for name in saved.files}
  except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
    return None
