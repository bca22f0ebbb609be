"""Training data: every kind of dataset behind one small contract, and what is done with any of them.

`--dataset` (with `--data_dir`) names a dataset; the first kind in kinds.SOURCES that recognizes it opens it:
- tfds.TfdsSource: `tfds:NAME[/CONFIG]`, from TensorFlow Datasets, decoded once into the image cache.
- idx.IdxSource: a folder of MNIST-style IDX files (`train-images-idx3-ubyte[.gz]` and its labels), in memory;
  `digits` is built in: it is rendered into `<data_dir>/digits/` (IDX files) on first use.
- lmdb_source.LmdbSource: a folder holding an LMDB (`data.mdb`) whose values are encoded images, as LSUN ships.
- categories.LmdbCategoriesSource: `lsun_bedroom+kitchen`, the LMDBs of several categories, each a label class.
- folder.FolderSource: the image files of a folder that match --input_fname_pattern, or of its class folders.

Every kind answers the same few questions (source.Source): how many images, how many channels, which labels, the
pixels (source.PixelSource) or the encoded bytes (source.EncodedSource) of image i, and how TensorFlow decodes them.
Nothing else asks more: entries.py opens a dataset and checks an encoded one entry by entry (remembering what it
found), pipeline.py feeds training, cache.py decodes once into a memory-mapped file (--cache).

To add a kind of data: write its Source in a module of its own here (recognizes, open, and for encoded data
fetch, entry_name, fingerprint; folder.py is the example to copy), and add it to kinds.SOURCES before
FolderSource. The check, the cache, the pipeline, the evaluator and --check_data need no change.

$ python main.py --train --dataset mnist --data_dir ../shared/data
$ python main.py --train --dataset lsun_bedroom --crop
$ python main.py --train --dataset tfds:cifar10
"""

from .cache import IMAGE_CACHE_FILE, cache_images, fit_name, image_cache_folder
from .categories import LmdbCategoriesSource
from .entries import (SAMPLE, SCAN_FILE, Report, Scan, check, check_entries, image_sizes, open_dataset,
                      sample_indices, why_unreadable)
from .folder import FolderSource, fit_images, read_folder
from .idx import IdxSource, is_idx_folder, load_idx_folder, read_idx, write_idx
from .kinds import SOURCES, default_output_size, source_class
from .lmdb_source import LMDB_KEYS_FILE, LmdbSource
from .pipeline import InputPipeline, epoch_order, make_pipeline, read_images, sample_images
from .source import (BUILTIN, DECODABLE_FORMATS, IMAGE_EXTENSIONS, EncodedSource, PixelSource, Source,
                     folder_of, load_arrays, save_arrays)
from .tfds import TfdsSource, import_tfds

__all__ = ['BUILTIN', 'DECODABLE_FORMATS', 'IMAGE_CACHE_FILE', 'IMAGE_EXTENSIONS', 'LMDB_KEYS_FILE', 'SAMPLE',
           'SCAN_FILE', 'SOURCES', 'EncodedSource', 'FolderSource', 'IdxSource', 'InputPipeline',
           'LmdbCategoriesSource', 'LmdbSource', 'PixelSource', 'Report', 'Scan', 'Source', 'TfdsSource',
           'cache_images', 'check', 'check_entries', 'image_sizes', 'default_output_size', 'epoch_order',
           'fit_images', 'fit_name', 'folder_of', 'image_cache_folder', 'import_tfds', 'is_idx_folder', 'load_arrays',
           'load_idx_folder', 'make_pipeline', 'open_dataset', 'read_folder', 'read_idx', 'read_images',
           'sample_images', 'sample_indices', 'save_arrays', 'source_class', 'why_unreadable', 'write_idx']
