"""common/memory.py: the machine's memory (the RAM, or a cgroup's smaller limit), and work refused or warned about
by its estimate."""

import logging as std_logging

import pytest

from common import memory
from errors import UserError

GB = 10 ** 9


def machine_of(monkeypatch, tmp_path, total, available, limit=None, used=None):
  """memory.machine() reading a /proc/meminfo of `total` and `available` bytes, and a cgroup v2 limit if given."""
  meminfo = tmp_path / 'meminfo'
  meminfo.write_text(f'MemTotal:       {total // 1024} kB\nMemFree:        1 kB\n'
                     f'MemAvailable:   {available // 1024} kB\n')
  monkeypatch.setattr(memory, 'MEMINFO', str(meminfo))
  files = []
  for name, value in (('memory.max', limit), ('memory.current', used)):
    path = tmp_path / name
    path.write_text('max\n' if value is None else f'{value}\n')
    files.append(str(path))
  monkeypatch.setattr(memory, 'CGROUP_LIMITS', (files[0],))
  monkeypatch.setattr(memory, 'CGROUP_USAGES', (files[1],))


def test_the_machine_is_the_ram_or_a_smaller_cgroup_limit(monkeypatch, tmp_path):
  machine_of(monkeypatch, tmp_path, 24 * GB, 20 * GB)  # memory.max 'max': no limit
  total, available = memory.machine()
  assert abs(total - 24 * GB) < 1024 and abs(available - 20 * GB) < 1024
  machine_of(monkeypatch, tmp_path, 24 * GB, 20 * GB, limit=4 * GB, used=3 * GB)  # a container's 4 GB
  assert memory.machine() == (4 * GB, 1 * GB)
  machine_of(monkeypatch, tmp_path, 2 * GB, 1 * GB, limit=4 * GB, used=0)  # a limit above the RAM changes nothing
  assert memory.machine()[0] < 4 * GB


def test_work_beyond_the_machine_is_refused_beyond_what_is_free_warned_and_within_it_silent(monkeypatch, tmp_path,
                                                                                         caplog):
  machine_of(monkeypatch, tmp_path, 8 * GB, 2 * GB)
  with pytest.raises(UserError) as error:
    memory.check(51.2 * GB, 'a training step at 1000x1000', 'use a smaller --output_height')
  assert str(error.value) == ('a training step at 1000x1000 needs about 51.2 GB of memory, more than the 8.0 GB '
                              'this machine has: use a smaller --output_height')
  with caplog.at_level(std_logging.WARNING):
    memory.check(3 * GB, 'a training step at 512x512', 'use a smaller --output_height')
    assert 'needs about 3.0 GB of memory, and 2.0 GB are free now' in caplog.text
    caplog.clear()
    memory.check(1 * GB, 'a training step at 64x64', 'use a smaller --output_height')
    assert not caplog.text
