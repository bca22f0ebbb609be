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

from common import progress
from errors import UserError

from . import kinds, pipeline
from .idx import IdxSource
from .source import (DECODABLE_FORMATS, GRAYSCALE_MODES, EncodedSource, channels_text, folder_of, load_arrays,
                     save_arrays)

SCAN_FILE = 'data_check.npz'  # what the check of an encoded source found, keyed by its fingerprint
# Entries checked before training starts, spread evenly: a large source (LSUN's 3 million) starts at once, and
# training skips any other entry that it cannot decode (see pipeline.py); --check_data reads every one.
SAMPLE = 256


@dataclasses.dataclass
class Scan:
  """What check_entries found in the entries `indices` of an encoded source (all of them, or a sample).

  Attributes:
    indices: int64 [n], the entries read, in order; the arrays below are aligned with them.
    heights, widths: int32 [n]; 0 for a bad entry.
    formats, modes: uint8 [n], indices into format_names and mode_names.
    bad: {entry index: why} of the entries that cannot be trained on.
    count: the entries of the source (complete when the scan read them all).
  """
  indices: np.ndarray
  heights: np.ndarray
  widths: np.ndarray
  formats: np.ndarray
  modes: np.ndarray
  format_names: list
  mode_names: list
  bad: dict
  count: int

  @property
  def complete(self):
    return len(self.indices) == self.count

  def good(self):
    """Positions (into `indices` and the arrays) of the readable entries."""
    return np.flatnonzero(~np.isin(self.indices, np.fromiter(self.bad, np.int64, len(self.bad))))

  def channels(self):
    """1 when every readable entry of the opening sample (sample_indices) is grayscale, else 3: the same answer
    from a sample and from a complete scan, so that a run does not change shape once the data is checked in full."""
    good = self.good()
    good = good[np.isin(self.indices[good], sample_indices(self.count))]
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
    """The complete Scan saved at `path` for `fingerprint` and `count` entries, or None."""
    saved = load_arrays(path, fingerprint)
    if saved is None or len(saved['heights']) != count:
      return None
    return Scan(np.arange(count), saved['heights'], saved['widths'], saved['formats'], saved['modes'],
                saved['format_names'].tolist(), saved['mode_names'].tolist(),
                dict(zip(saved['bad_index'].tolist(), saved['bad_why'].tolist())), count)


def sample_indices(count):
  """The entries checked before training starts: SAMPLE of them spread evenly (all of a small source)."""
  return np.unique(np.linspace(0, count - 1, min(count, SAMPLE)).round().astype(np.int64))


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


def check_entries(source, cache_dir=None, fresh=False, indices=None):
  """Reads the header of each entry, then decodes it with TensorFlow as training will, to find the bad ones.

  Args:
    source: an EncodedSource.
    cache_dir: where to remember what a check of every entry found (data_check.npz, keyed by
      source.fingerprint()), so that it is not read again; None to remember nothing.
    fresh: read every entry even when what was found is remembered (--check_data).
    indices: the entries to read (sorted); None for all of them. A check of some is not remembered.

  Returns:
    A Scan.
  """
  count = len(source)
  complete = indices is None or len(indices) == count
  indices = np.arange(count) if indices is None else np.asarray(indices, np.int64)
  path = os.path.join(cache_dir, SCAN_FILE) if cache_dir and complete else None
  fingerprint = source.fingerprint() if path else None
  scan = Scan.read(path, fingerprint, count) if path and not fresh else None
  if scan is not None:
    return scan
  n = len(indices)
  heights, widths = np.zeros(n, np.int32), np.zeros(n, np.int32)
  formats, modes = np.zeros(n, np.uint8), np.zeros(n, np.uint8)
  names = {'format': [], 'mode': []}
  bad = {}
  step = pipeline.FETCH_BATCH
  chunks = [np.arange(start, min(start + step, n)) for start in range(0, n, step)]
  what = f'the headers of {source.name}' if complete else f'{n} sampled headers of {source.name}'
  with concurrent.futures.ThreadPoolExecutor(8) as pool, progress.Meter(n, f'reading {what}', unit='image') as meter:
    for chunk, headers in zip(chunks, pool.map(lambda chunk: _headers(source, indices[chunk]), chunks)):
      for position, header in zip(chunk, headers):
        if isinstance(header, str):
          bad[int(indices[position])] = header
          continue
        image_format, mode, widths[position], heights[position] = header
        for key, value, column in (('format', image_format, formats), ('mode', mode, modes)):
          if value not in names[key]:
            names[key].append(value)
          column[position] = names[key].index(value)
      meter.update(len(chunk))
  bad.update(_undecodable(source, indices[~np.isin(indices, np.fromiter(bad, np.int64, len(bad)))]))
  bad_positions = np.isin(indices, np.fromiter(bad, np.int64, len(bad)))
  heights[bad_positions] = widths[bad_positions] = 0
  scan = Scan(indices, heights, widths, formats, modes, names['format'], names['mode'], bad, count)
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
  with progress.stderr_to() as stderr, progress.Meter(len(indices), f'decoding {source.name}', unit='image',
                                                      stream=stderr) as meter:
    for batch, _ in data.as_numpy_iterator():
      decoded.update(batch.tolist())
      meter.update(len(batch))
    return {int(i): _decode_error(source, i) for i in indices if int(i) not in decoded}


def _decode_error(source, index, config=None):
  """Why TensorFlow cannot train on entry `index` (decoded, and cropped and resized as `config` says, if given)."""
  # (in a graph of its own: a training session's graph is finalized, and may be the default one here)
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    image = pipeline.decode(source.tf_encoded(tf.constant(source.fetch([index])[0])), 3)
    try:
      height, width, _ = sess.run(tf.shape(image))
      if config is not None and config.crop and config.input_height and (
          height < config.input_height or width < config.input_width):
        return f'smaller than --crop {config.input_height}x{config.input_width} ({height}x{width})'
      if config is not None:
        sess.run(pipeline.fit(image, config))
    except tf.errors.OpError as e:
      return f'corrupt or truncated: {pipeline.decode_error_text(e)}'
  return 'could not be decoded'


def why_unreadable(source, index, config):
  """Why training could not use entry `index` of an encoded source: what it says in a skipped entry's line."""
  if index in source.bad or not isinstance(source, EncodedSource):
    return source.bad.get(index, 'could not be read')
  header = _header(source.open_fetched(source.fetch([index])[0]))
  return header if isinstance(header, str) else _decode_error(source, index, config)


# Opening a dataset, and --check_data

def _open_checked(config, cache_dir, fresh=False, sample=False):
  """(the source of --dataset with all its entries, the problems that stop training, the report's lines).

  With `sample`, a large source has only sample_indices() read (and what a check of every entry found before,
  if it is remembered, marks the others it found bad); otherwise every entry is read, or what was found remembered.
  """
  source = kinds.source_class(config).open(config, cache_dir)
  if not isinstance(source, EncodedSource):
    return source, [], source.describe()
  count = len(source)
  scan = source.scan = check_entries(source, cache_dir, fresh, sample_indices(count) if sample else None)
  source.channels = scan.channels()
  source.bad = dict(scan.bad)
  if not scan.complete:
    remembered = Scan.read(os.path.join(cache_dir, SCAN_FILE), source.fingerprint(), count) if cache_dir else None
    source.bad.update(remembered.bad if remembered else {})
  source.unreadable = len(scan.bad)  # (the sample's only: epochs are as long with a complete check remembered or not)
  good = scan.good()
  entries = f'{count} {source.unit}' if scan.complete else f'{len(scan.indices)} {source.unit} sampled from {count}'
  lines = [f'{source.location}: {entries}, {len(good)} readable images, {len(scan.bad)} bad']
  if len(good):
    counts = lambda column, names: _most_common(collections.Counter(names[c] for c in column[good].tolist()))
    sizes = collections.Counter({f'{h}x{w}': n for (h, w), n in image_sizes(source).items()})
    lines += [f'  formats: {counts(scan.formats, scan.format_names)}',
              f'  modes: {counts(scan.modes, scan.mode_names)} -> trained as {channels_text(source.channels)}',
              f'  sizes (height x width): {_most_common(sizes)}']
  if scan.bad:
    lines.append(f'  bad {source.unit} (skipped when training, fatal with --strict):')
    lines += [f'    {source.entry_name(i)}: {why}' for i, why in sorted(scan.bad.items())[:20]]
    lines += [f'    ... and {len(scan.bad) - 20} more'] if len(scan.bad) > 20 else []
  problems = []
  where = f'{source.unit} {source.preposition} {source.location}'
  if not len(good):
    what = f'the {count} {where}' if scan.complete else f'{len(scan.indices)} {where} sampled evenly from {count}'
    problems.append(f'none of {what} is a readable image: {_bad_summary(source, scan)}')
  elif config.crop and config.input_height:
    small = good[(scan.widths[good] < config.input_width) | (scan.heights[good] < config.input_height)]
    if len(small):
      first = small[0]
      problems.append(f'--crop {config.input_height}x{config.input_width} is larger than {len(small)} of {len(good)} '
                      f'{"" if scan.complete else "sampled "}images, e.g. {source.entry_name(scan.indices[first])} '
                      f'({scan.heights[first]}x{scan.widths[first]}); lower --input_height/--input_width, or give '
                      '--crop alone for the largest centred square')
  return source, problems, lines


def _bad_summary(source, scan, limit=3):
  shown = sorted(scan.bad.items())[:limit]
  return '; '.join(f'{source.entry_name(i)} ({why})' for i, why in shown) + ('; ...' if len(scan.bad) > limit else '')


def _most_common(counter, limit=5):
  return ', '.join(f'{key} x{count}' for key, count in counter.most_common(limit)) + (
      f', {len(counter) - limit} more' if len(counter) > limit else '')


def image_sizes(source):
  """The (height, width) of the images of `source` as they are stored, and how many have each, as a Counter: of
  the entries checked (a sample of a large encoded dataset), or of all the pixels held in memory."""
  if isinstance(source, EncodedSource):
    good = source.scan.good()
    return collections.Counter(zip(source.scan.heights[good].tolist(), source.scan.widths[good].tolist()))
  return collections.Counter({tuple(source.images.shape[1:3]): len(source)})


def open_dataset(config, strict=False, cache_dir=None):
  """Finds and opens the dataset that `config` names, checking SAMPLE of its entries spread evenly (all of a
  small dataset), so that even LSUN's millions start at once.

  Entries found bad (not images, corrupt or truncated) are in `source.bad`, skipped with one warning that counts
  them (an error with `strict`); training skips, counts and names any other entry it cannot decode
  (pipeline.py), and stops at it with `strict`.

  Args:
    config: a config.Config; reads dataset, data_dir, tfds_data_dir, input_fname_pattern, the crop and the
      output sizes.
    strict: make any bad entry an error.
    cache_dir: where to remember what a check of every entry found, the LMDB keys and the TFDS images (the
      dataset's cache folder, config.data_cache_path); None to remember nothing (TFDS needs it).

  Returns:
    A Source with every entry; its `channels` judged from the sample, its `bad` entries known.

  Raises:
    UserError: the dataset is missing, empty or unreadable, no sampled entry is a readable image, the crop is
      larger than some sampled images, or (with `strict`) a sampled entry is bad.
  """
  source, problems, _ = _open_checked(config, cache_dir, sample=True)
  if problems:
    raise UserError(problems[0])
  if not isinstance(source, EncodedSource):
    return source
  scan = source.scan
  where = f'{source.unit} {source.preposition} {source.location}'
  of = f'{len(source)}' if scan.complete else f'{len(scan.indices)} sampled'
  if scan.bad and strict:
    raise UserError(f'{len(scan.bad)} of {"the " if scan.complete else ""}{of} {where} cannot be read as images '
                    f'(--strict): {_bad_summary(source, scan)}')
  if scan.bad:
    logging.warning('skipping %d of %s %s that cannot be read as images (--strict to stop instead): %s',
                    len(scan.bad), of, where, _bad_summary(source, scan))
  return source


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
    name = lambda label: source.class_names[label] if source.class_names else str(label)  # (a folder's, TFDS's)
    lines.append(f'  labels: {len(histogram)} classes: ' + ', '.join(f'{name(k)} x{v}' for k, v in
                                                                    sorted(histogram.items())))
  lines += [f'  problem: {problem}' for problem in problems]
  return Report(lines, problems, bad=len(source.scan.bad) if isinstance(source, EncodedSource) else 0)
