"""common/disk.py: a durable write reaches the disk before its rename, and the rename before it returns."""

import os

from common import disk
import utils

P = utils.GRID_PAD


def test_a_durable_write_syncs_the_bytes_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
  events, fsync, replace = [], os.fsync, os.replace
  monkeypatch.setattr(os, 'fsync', lambda fd: (events.append(('fsync', os.readlink(f'/proc/self/fd/{fd}'))),
                                               fsync(fd)))
  monkeypatch.setattr(os, 'replace', lambda a, b: (events.append(('rename', b)), replace(a, b)))
  path = tmp_path / 'config.json'
  disk.write_text(str(path), 'durable', durable=True)
  assert events == [('fsync', disk.temporary_name(str(path))), ('rename', str(path)), ('fsync', str(tmp_path))]
  assert path.read_text() == 'durable'
  events.clear()
  disk.write_text(str(path), 'fast')  # sample grids and caches: atomic, not synced
  assert events == [('rename', str(path))]
