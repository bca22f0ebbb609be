"""Whether work fits in this machine's memory, asked before it starts: an estimate against what there is (the RAM,
or a cgroup's limit where the process runs under one, as in a container), so that a size that cannot fit is
refused in one line instead of swapping for minutes and being killed.

$ python main.py --train --dataset digits --output_height 1000   # refused: decoding needs ~39 GB
"""

from absl import logging

from errors import UserError

MEMINFO = '/proc/meminfo'
CGROUP_LIMITS = ('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes')  # v2, v1
CGROUP_USAGES = ('/sys/fs/cgroup/memory.current', '/sys/fs/cgroup/memory/memory.usage_in_bytes')


def _meminfo(path=None):
  """{field: bytes} of /proc/meminfo (`path`: another file of its format); {} where there is none."""
  fields = {}
  try:
    with open(path or MEMINFO) as f:
      for line in f:
        name, _, value = line.partition(':')
        parts = value.split()
        if parts and parts[0].isdigit():
          fields[name.strip()] = int(parts[0]) * (1024 if parts[1:] == ['kB'] else 1)
  except OSError:
    pass
  return fields


def _first_number(paths):
  for path in paths:
    try:
      with open(path) as f:
        text = f.read().strip()
    except OSError:
      continue
    if text.isdigit():
      return int(text)
  return None


def machine():
  """(total, available) bytes: the RAM and what is free of it now (MemAvailable), each lowered to a cgroup's limit
  (and what the limit leaves) where it is smaller; (None, None) where neither can be read."""
  info = _meminfo()
  total, available = info.get('MemTotal'), info.get('MemAvailable')
  limit = _first_number(CGROUP_LIMITS)  # ('max', or no file: none)
  if limit is not None and (total is None or limit < total):
    used = _first_number(CGROUP_USAGES) or 0
    total, available = limit, min(available or limit, max(limit - used, 0))
  return total, available


def gigabytes(count):
  return f'{count / 1e9:.1f} GB'


def check(need, what, mend):
  """Refuses work that needs more memory than the machine has, and warns where it needs more than is free now.

  Args:
    need: the estimated bytes.
    what: what needs them, for the sentence: 'decoding the 19690 images of mnist at 1000x1000'.
    mend: what makes it fit, for the sentence: 'use a smaller --output_height'.

  Raises:
    UserError: `need` is more than the machine's memory (or its cgroup's limit).
  """
  total, available = machine()
  if total is not None and need > total:
    raise UserError(f'{what} needs about {gigabytes(need)} of memory, more than the {gigabytes(total)} this '
                    f'machine has: {mend}')
  if available is not None and need > available:
    logging.warning('%s needs about %s of memory, and %s are free now: it may swap, or be stopped by the system; '
                    'to be safe, %s', what, gigabytes(need), gigabytes(available), mend)
