"""Opening a dataset: every entry of an encoded source checked once (its header, then TensorFlow's own decoder),
what was found remembered under the data's fingerprint, and the bad entries left out; --check_data's report.

$ python main.py --dataset celebA --check_data
"""

import collections
import concurrent.futures
import dataclasses
import os

import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image

import utils
from errors import UserError

from . import kinds, pipeline
from .idx import IdxSource
from .source import (DECODABLE_FORMATS, GRAYSCALE_MODES, EncodedSource, channels_text, folder_of, load_arrays,
                     save_arrays)

SCAN_FILE = 'data_check.npz'  # what the check of an encoded source found, keyed by its fingerprint


@dataclasses.dataclass
class Scan:
  """What check_entries found in an encoded source, entry by entry.

  Attributes:
    heights, widths: int32 [count]; 0 for a bad entry.
    formats, modes: uint8 [count], indices into format_names and mode_names.
    bad: {index: why} of the entries that cannot be trained on.
  """
  heights: np.ndarray
  widths: np.ndarray
  formats: np.ndarray
  modes: np.ndarray
  format_names: list
  mode_names: list
  bad: dict

  def good(self):
    return np.setdiff1d(np.arange(len(self.heights)), np.fromiter(self.bad, np.int64, len(self.bad)))

  def channels(self, good):
    grayscale = [i for i, name in enumerate(self.mode_names) if name in GRAYSCALE_MODES]
    return 1 if len(good) and np.isin(self.modes[good], grayscale).all() else 3

  def save(self, path, fingerprint):
    bad = sorted(self.bad.items())
    save_arrays(path, fingerprint=fingerprint, heights=self.heights, widths=self.widths, formats=self.formats,
                 modes=self.modes, format_names=np.array(self.format_names, str),
                 mode_names=np.array(self.mode_names, str), bad_index=np.array([i for i, _ in bad], np.int64),
                 bad_why=np.array([why for _, why in bad], str))

  @staticmethod
  def read(path, fingerprint, count):
    """The Scan saved at `path` for `fingerprint` and `count` entries, or None (then the check runs again)."""
    saved = load_arrays(path, fingerprint)
    if saved is None or len(saved['heights']) != count:
      return None
    return Scan(saved['heights'], saved['widths'], saved['formats'], saved['modes'], saved['format_names'].tolist(),
                saved['mode_names'].tolist(), dict(zip(saved['bad_index'].tolist(), saved['bad_why'].tolist())))


def _header(file):
  """(format, mode, width, height) from an image file's header, or a string saying why there is none."""
  try:
    with file:
      if file.seek(0, os.SEEK_END) == 0:
        return 'empty file'
      file.seek(0)
      with Image.open(file) as image:
        if image.format not in DECODABLE_FORMATS:
          return f'{image.format} is not one of {", ".join(DECODABLE_FORMATS)}'
        return image.format, image.mode, image.width, image.height
  except Image.DecompressionBombError:
    return 'too many pixels'
  except (OSError, ValueError, SyntaxError) as e:
    return 'not an image' if isinstance(e, Image.UnidentifiedImageError) else f'unreadable: {e}'


def _headers(source, indices):
  return [_header(source.open_fetched(item)) for item in source.fetch(indices)]


def check_entries(source, cache_dir=None, fresh=False):
  """Reads the header of every entry, then decodes each one with TensorFlow as training will, to find the bad.

  Args:
    source: an EncodedSource.
    cache_dir: where to remember what was found (data_check.npz, keyed by source.fingerprint()), so that a
      resumed run does not read every entry again; None to remember nothing.
    fresh: read every entry even when what was found is remembered (--check_data).

  Returns:
    A Scan.
  """
  path = os.path.join(cache_dir, SCAN_FILE) if cache_dir else None
  fingerprint = source.fingerprint()
  scan = Scan.read(path, fingerprint, len(source)) if path and not fresh else None
  if scan is not None:
    return scan
  count = len(source)
  heights, widths = np.zeros(count, np.int32), np.zeros(count, np.int32)
  formats, modes = np.zeros(count, np.uint8), np.zeros(count, np.uint8)
  names = {'format': [], 'mode': []}
  bad = {}
  step = pipeline.FETCH_BATCH
  chunks = [np.arange(start, min(start + step, count)) for start in range(0, count, step)]
  with concurrent.futures.ThreadPoolExecutor(8) as pool, utils.Meter(
      count, f'reading the headers of {source.name}', unit='image') as meter:
    for chunk, headers in zip(chunks, pool.map(lambda chunk: _headers(source, chunk), chunks)):
      for i, header in zip(chunk, headers):
        if isinstance(header, str):
          bad[int(i)] = header
          continue
        image_format, mode, widths[i], heights[i] = header
        for key, value, column in (('format', image_format, formats), ('mode', mode, modes)):
          if value not in names[key]:
            names[key].append(value)
          column[i] = names[key].index(value)
      meter.update(len(chunk))
  readable = np.setdiff1d(np.arange(count), np.fromiter(bad, np.int64, len(bad)))
  bad.update(_undecodable(source, readable))
  for i in bad:
    heights[i] = widths[i] = 0
  scan = Scan(heights, widths, formats, modes, names['format'], names['mode'], bad)
  if path:
    scan.save(path, fingerprint)
  return scan


def _undecodable(source, indices):
  """{index: why} of the entries that TensorFlow's decoder (the one training uses) rejects."""
  if not len(indices):
    return {}
  logging.info('decoding %d images of %s once to find corrupt ones', len(indices), source.name)
  fetch = lambda batch: tf.numpy_function(source.fetch, [batch], tf.string, stateful=False)
  # reduce_max reads every pixel: a static-shape result would let TensorFlow skip the decode altogether
  decode = lambda index, fetched: (index, tf.reduce_max(pipeline.decode(source.tf_encoded(fetched), 3)))
  data = tf.data.Dataset.from_tensor_slices(np.asarray(indices, np.int64)).batch(pipeline.FETCH_BATCH)
  data = data.map(lambda batch: (batch, fetch(batch))).unbatch()
  data = data.map(decode, num_parallel_calls=os.cpu_count() or 2).ignore_errors().batch(pipeline.FETCH_BATCH)
  decoded = set()
  # libjpeg and TensorFlow print a line or two for every broken file: only the progress reaches the terminal
  with utils.stderr_to() as stderr, utils.Meter(len(indices), f'decoding {source.name}', unit='image',
                                                   stream=stderr) as meter:
    for batch, _ in data.as_numpy_iterator():
      decoded.update(batch.tolist())
      meter.update(len(batch))
    return {int(i): _decode_error(source, i) for i in indices if int(i) not in decoded}


def _decode_error(source, index):
  try:
    pipeline.decode(source.tf_encoded(tf.constant(source.fetch([index])[0])), 3)
  except tf.errors.OpError as e:
    return f'corrupt or truncated: {pipeline.decode_error_text(e)}'
  return 'could not be decoded'


# Opening a dataset, and --check_data

def _open_checked(config, cache_dir, fresh=False):
  """(the source of --dataset with all its entries, the problems that stop training, the report's lines)."""
  source = kinds.source_class(config).open(config, cache_dir)
  if not isinstance(source, EncodedSource):
    return source, [], source.describe()
  scan = source.scan = check_entries(source, cache_dir, fresh)
  good = scan.good()
  lines = [f'{source.location}: {len(source)} {source.unit}, {len(good)} readable images, {len(scan.bad)} bad']
  if len(good):
    counts = lambda column, names: _most_common(collections.Counter(names[c] for c in column[good].tolist()))
    sizes = collections.Counter(zip(scan.heights[good].tolist(), scan.widths[good].tolist()))
    lines += [f'  formats: {counts(scan.formats, scan.format_names)}',
              f'  modes: {counts(scan.modes, scan.mode_names)} -> trained as {channels_text(scan.channels(good))}',
              f'  sizes (height x width): {_most_common(collections.Counter(f"{h}x{w}" for h, w in sizes.elements()))}']
  if scan.bad:
    lines.append(f'  bad {source.unit} (skipped when training, fatal with --strict):')
    lines += [f'    {source.entry_name(i)}: {why}' for i, why in sorted(scan.bad.items())[:20]]
    lines += [f'    ... and {len(scan.bad) - 20} more'] if len(scan.bad) > 20 else []
  problems = []
  if not len(good):
    problems.append(f'none of the {len(source)} {source.unit} {source.preposition} {source.location} is a readable '
                    f'image: {_bad_summary(source, scan)}')
  elif config.crop and config.input_height:
    small = good[(scan.widths[good] < config.input_width) | (scan.heights[good] < config.input_height)]
    if len(small):
      first = small[0]
      problems.append(f'--crop {config.input_height}x{config.input_width} is larger than {len(small)} of {len(good)} '
                      f'images, e.g. {source.entry_name(first)} ({scan.heights[first]}x{scan.widths[first]}); lower '
                      '--input_height/--input_width, or give --crop alone for the largest centred square')
  return source, problems, lines


def _bad_summary(source, scan, limit=3):
  shown = sorted(scan.bad.items())[:limit]
  return '; '.join(f'{source.entry_name(i)} ({why})' for i, why in shown) + ('; ...' if len(scan.bad) > limit else '')


def _most_common(counter, limit=5):
  return ', '.join(f'{key} x{count}' for key, count in counter.most_common(limit)) + (
      f', {len(counter) - limit} more' if len(counter) > limit else '')


def open_dataset(config, strict=False, cache_dir=None):
  """Finds, checks and opens the dataset that `config` names.

  Entries of an encoded source that are not images, or are corrupt or truncated, are skipped with one warning
  that counts them (an error with `strict`).

  Args:
    config: a config.Config; reads dataset, data_dir, tfds_data_dir, input_fname_pattern, the crop and the
      output sizes.
    strict: make any bad entry an error.
    cache_dir: where to remember what a check found, the LMDB keys and the TFDS images (the dataset's cache
      folder, config.data_cache_path); None to remember nothing (TFDS needs it).

  Returns:
    A Source whose entries are all readable images.

  Raises:
    UserError: the dataset is missing, empty or unreadable, no entry is a readable image, the crop is larger
      than some images, or (with `strict`) an entry is bad.
  """
  source, problems, _ = _open_checked(config, cache_dir)
  if problems:
    raise UserError(problems[0])
  if not isinstance(source, EncodedSource):
    return source
  scan = source.scan
  where = f'{source.unit} {source.preposition} {source.location}'
  if scan.bad and strict:
    raise UserError(f'{len(scan.bad)} of the {len(source)} {where} cannot be read as images (--strict): '
                    f'{_bad_summary(source, scan)}')
  if scan.bad:
    logging.warning('skipping %d of %d %s that cannot be read as images (--strict to stop instead): %s',
                    len(scan.bad), len(source), where, _bad_summary(source, scan))
  good = scan.good()
  return source.subset(good, scan.channels(good))


@dataclasses.dataclass
class Report:
  """What --check_data found; `lines` is the printed report, `problems` what stops training."""
  lines: list
  problems: list
  bad: int = 0

  def text(self):
    return '\n'.join(self.lines)


def check(config, cache_dir=None):
  """--check_data: reads every entry of the dataset and describes it, without training.

  Returns:
    A Report.

  Raises:
    UserError: the dataset is missing, or nothing in it can be listed.
  """
  try:
    source, problems, lines = _open_checked(config, cache_dir, fresh=True)
  except UserError as e:
    if kinds.source_class(config) is not IdxSource or not os.path.isdir(folder_of(config)):
      raise
    return Report([f'{folder_of(config)}: {IdxSource.kind}', f'  problem: {e}'], [str(e)])
  if source.labels is not None:
    histogram = collections.Counter(source.labels.tolist())
    lines.append(f'  labels: {len(histogram)} classes: ' + ', '.join(f'{k} x{v}' for k, v in sorted(histogram.items())))
  lines += [f'  problem: {problem}' for problem in problems]
  return Report(lines, problems, bad=len(source.scan.bad) if isinstance(source, EncodedSource) else 0)
