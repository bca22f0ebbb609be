"""An LMDB (a folder holding data.mdb) whose values are encoded images, as LSUN ships each category.

$ python main.py --train --dataset lsun_bedroom --crop
"""

import os

import lmdb
import numpy as np

from common import progress
from errors import UserError

from .source import EncodedSource, folder_of, load_arrays, save_arrays

LMDB_KEYS_FILE = 'lmdb_keys.npz'  # the keys of an LMDB, listed once


class LmdbSource(EncodedSource):
  """An LMDB (a folder holding data.mdb) whose values are encoded images, in key order, as LSUN ships them.

  The keys are listed once (that takes a while for LSUN's millions of entries) and kept beside the checkpoints
  in lmdb_keys.npz, keyed by the database's size, time and entry count. Values are sniffed, not assumed:
  LSUN's are WebP, other LMDBs hold JPEG or PNG.
  """
  kind = 'an LMDB of encoded images'
  unit = 'LMDB entries'

  def __init__(self, name, folder, env, keys, offsets, labels=None, channels=3):
    super().__init__(name, channels, labels)
    self.folder, self.env, self.keys, self.offsets = folder, env, keys, offsets

  def __len__(self):
    return len(self.offsets) - 1

  @staticmethod
  def recognizes(config):
    return os.path.isfile(os.path.join(folder_of(config), 'data.mdb'))

  @classmethod
  def open(cls, config, cache_dir):
    keys = os.path.join(cache_dir, LMDB_KEYS_FILE) if cache_dir else None
    return cls.open_folder(config.dataset, folder_of(config), keys)

  @classmethod
  def open_folder(cls, name, folder, path):
    """The LMDB in `folder`, its keys read from the file `path` when they were listed before, else listed and
    kept there (unless `path` is None)."""
    source = cls(name, folder, _lmdb_env(folder), np.zeros(0, np.uint8), np.zeros(1, np.int64))
    fingerprint = source.fingerprint()
    saved = load_arrays(path, fingerprint) if path else None
    if saved is not None:
      source.keys, source.offsets = saved['keys'], saved['offsets']
      return source
    source.keys, source.offsets = source._list_keys()
    if path:
      save_arrays(path, fingerprint=fingerprint, keys=source.keys, offsets=source.offsets)
    return source

  def _list_keys(self):
    """All keys in order, as one uint8 buffer and int64 offsets [count + 1]."""
    chunks, offsets, total = [], [0], 0
    entries = self.env.stat()['entries']
    try:
      with self.env.begin() as txn, txn.cursor() as cursor, progress.Meter(
          entries, f'listing the keys of {self.folder}', unit='key') as meter:
        for key in cursor.iternext(keys=True, values=False):
          chunks.append(key)
          total += len(key)
          offsets.append(total)
          if len(offsets) % 10000 == 0:
            meter.update(10000)
    except lmdb.Error as e:
      raise UserError(f'{self.folder}/data.mdb is damaged: {e}') from None
    return np.frombuffer(b''.join(chunks), np.uint8), np.asarray(offsets, np.int64)

  def _key(self, index):
    return self.keys[self.offsets[index]:self.offsets[index + 1]].tobytes()

  def fetch(self, indices):
    with self.env.begin(buffers=False) as txn:
      return np.array([txn.get(self._key(i)) or b'' for i in indices], dtype=object)

  def entry_name(self, index):
    key = self._key(index)
    text = key.decode('ascii', 'replace') if key.isascii() and key.decode('ascii').isprintable() else repr(key)
    return f'{self.folder} key {text}'

  def fingerprint(self):
    stat = os.stat(os.path.join(self.folder, 'data.mdb'))
    info = self.env.info()
    return (f'{os.path.abspath(self.folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\0{self.env.stat()["entries"]}\0'
            f'{info["last_txnid"]}')

  @property
  def location(self):
    return self.folder


_LMDB_ENVS = {}  # {real path: ((size, mtime) of data.mdb, environment)}: py-lmdb opens a database once a process


def _lmdb_env(folder):
  """A read-only environment of the LMDB in `folder`, shared by every source of the process until it changes.

  Raises:
    UserError: it is not an LMDB.
  """
  path = os.path.realpath(folder)
  stat = os.stat(os.path.join(path, 'data.mdb'))
  opened, env = _LMDB_ENVS.get(path, (None, None))
  if opened == (stat.st_size, stat.st_mtime_ns):
    return env
  if env is not None:
    env.close()
  try:
    # lock=False: nothing is written, and the data may sit on a read-only disk
    env = lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False, max_readers=512)
  except lmdb.Error as e:
    raise UserError(f'{folder}/data.mdb is not a readable LMDB: {e}') from None
  _LMDB_ENVS[path] = ((stat.st_size, stat.st_mtime_ns), env)
  return env
