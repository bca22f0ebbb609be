"""Several LMDBs as one labelled dataset, each a class: --dataset lsun --lsun_category bedroom,kitchen.

$ python main.py --train --dataset lsun --lsun_category bedroom,kitchen --crop
"""

import dataclasses
import os
import re

import numpy as np

from errors import UserError

from .lmdb_source import LmdbSource
from .source import EncodedSource, folder_of, missing



def _categories(dataset):
  """('lsun', ('bedroom', 'kitchen')) of 'lsun_bedroom+kitchen', or None for a --dataset of another form."""
  match = re.fullmatch(r'([^_+/:]+)_([^+/:]+(?:\+[^+/:]+)+)', dataset)
  return (match[1], tuple(match[2].split('+'))) if match else None


class LmdbCategoriesSource(EncodedSource):
  """Several LMDBs as one labelled dataset, the category of each image its class: --dataset lsun_bedroom+kitchen
  (main.py makes it of --dataset lsun --lsun_category bedroom,kitchen) reads data/lsun_bedroom (label 0, named
  'bedroom') and data/lsun_kitchen (label 1). Each database's keys are listed once, as for an LmdbSource.

  Args:
    name: the --dataset value.
    parts: an LmdbSource for each class, in label order.
    class_names: the categories.
    channels: 1 or 3.
  """
  kind = 'LMDBs of encoded images, one for each class'
  unit = 'LMDB entries'

  def __init__(self, name, parts, class_names, channels=3):
    sizes = [len(part) for part in parts]
    super().__init__(name, channels, np.repeat(np.arange(len(parts), dtype=np.int32), sizes), len(parts),
                     class_names)
    self.parts, self.starts = parts, np.cumsum([0] + sizes)

  def __len__(self):
    return int(self.starts[-1])

  @staticmethod
  def recognizes(config):  # (a folder of that name is a dataset of its own: images named with a +)
    return _categories(config.dataset) is not None and not os.path.isdir(folder_of(config))

  @classmethod
  def open(cls, config, cache_dir):
    prefix, categories = _categories(config.dataset)
    if len(set(categories)) < len(categories):
      raise UserError(f'--dataset {config.dataset} names a category twice')
    parts = []
    for category in categories:
      name = f'{prefix}_{category}'
      folder = os.path.join(config.data_dir, name)
      if not os.path.isfile(os.path.join(folder, 'data.mdb')):
        raise missing(dataclasses.replace(config, dataset=name))
      keys = os.path.join(cache_dir, f'lmdb_keys_{category}.npz') if cache_dir else None
      parts.append(LmdbSource.open_folder(name, folder, keys))
    return cls(config.dataset, parts, categories)

  def _split(self, indices):
    """[(part, its indices, where they are in `indices`)] for each part that `indices` (global) fall in."""
    indices = np.asarray(indices, np.int64)
    part = np.searchsorted(self.starts, indices, side='right') - 1
    return [(p, indices[part == p] - self.starts[p], np.flatnonzero(part == p)) for p in np.unique(part)]

  def fetch(self, indices):
    fetched = np.empty(len(indices), dtype=object)
    for p, local, where in self._split(indices):
      fetched[where] = self.parts[p].fetch(local)
    return fetched

  def entry_name(self, index):
    (p, (local,), _), = self._split([index])
    return self.parts[p].entry_name(local)

  def fingerprint(self):
    return '\0\0'.join(part.fingerprint() for part in self.parts)

  @property
  def location(self):
    return ', '.join(part.folder for part in self.parts)

