"""The kinds of dataset, in the order in which they are asked whether --dataset is theirs: to add a kind, write
its Source in a module of this package and put it in SOURCES (datasets/__init__.py says how).

$ python main.py --train --dataset lsun_bedroom --crop     # LmdbSource recognizes data/lsun_bedroom/data.mdb
"""

from .categories import LmdbCategoriesSource
from .folder import FolderSource
from .idx import IdxSource
from .lmdb_source import LmdbSource
from .tfds import TfdsSource

# The first that recognizes --dataset opens it; FolderSource, which takes any folder, comes last.
SOURCES = (TfdsSource, IdxSource, LmdbSource, LmdbCategoriesSource, FolderSource)


def source_class(config):
  return next(cls for cls in SOURCES if cls.recognizes(config))


def default_output_size(config):
  """The output size of --dataset when --output_height is not given: 28 for MNIST-style data, the native size
  of small TFDS images, else 64."""
  return source_class(config).default_size(config)
