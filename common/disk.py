"""Files on disk that survive anything: written atomically (a reader sees the old file or the whole new one) and,
when asked, durably (fsync before and after the rename); checked for writability before work starts; and the
exclusive lock that keeps two processes from writing the same folder.

$ python main.py --train --dataset digits    # checkpoint/digits_28_28/ is locked while it trains
"""

import contextlib
import datetime
import fcntl
import json
import os
import socket
import sys
import time

from errors import UserError


def ensure_writable(directory):
  """Creates `directory` and checks that files can be written there.

  Raises:
    UserError: it cannot be created or written.
  """
  try:
    os.makedirs(directory, exist_ok=True)
    probe = os.path.join(directory, '.write_test')
    with open(probe, 'w'):
      pass
    os.remove(probe)
  except OSError as e:
    raise UserError(f'cannot write to {directory}: {e.strerror}') from None


def check_writable(directory):
  """Checks, without creating anything, that `directory` exists or could be created, and can be written.

  Raises:
    UserError: a part of the path is a file, or the nearest existing folder is read-only.
  """
  path = os.path.abspath(directory)
  while not os.path.lexists(path) and os.path.dirname(path) != path:
    path = os.path.dirname(path)
  if not os.path.isdir(path):
    raise UserError(f'cannot write to {directory}: {path} is not a folder')
  if not os.access(path, os.W_OK | os.X_OK):
    raise UserError(f'cannot write to {directory}: {path} is read-only')


class Busy(Exception):
  """Another process holds the lock; the message says which ('pid P on host H since T (command)')."""


def _makedirs(folder):
  """Makes `folder` and its missing parents; returns those it made, outermost first."""
  made, path = [], os.path.abspath(folder)
  while not os.path.isdir(path) and os.path.dirname(path) != path:
    made.insert(0, path)
    path = os.path.dirname(path)
  os.makedirs(folder, exist_ok=True)
  return made


def _holder(path, tries=10):
  """What the lock file says of the process that holds it. A holder that took the lock a moment ago may not have
  written it yet: read again for up to a second."""
  for _ in range(tries):
    try:
      with open(path) as f:
        info = json.load(f)
      return f'pid {info["pid"]} on {info["host"]} since {info["started"]} ({info["command"]})'
    except (OSError, ValueError, KeyError, TypeError):
      time.sleep(0.1)
  return 'another process (it has not said which)'


@contextlib.contextmanager
def exclusive_lock(path, what):
  """Holds an exclusive lock on the file `path` while the block runs, the one way this program keeps two
  processes from writing the same files (a run's checkpoint folder, download.py's data folder).

  The lock is fcntl.flock's: the kernel drops it when the process ends, even by kill -9, so there is never a
  stale lock to clear on a local disk. The file names its holder (pid, host, start, command, `what`) for the
  other process's error. On release the file is deleted, and so are the folders this call made if nothing else
  was put in them: a command that stops before it writes anything leaves nothing behind.

  Raises:
    Busy: another process holds the lock.
  """
  made = _makedirs(os.path.dirname(path) or '.')
  while True:
    try:
      fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:  # the last holder removed the folder it had made: make it again
      made = _makedirs(os.path.dirname(path) or '.')
      continue
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      raise Busy(_holder(path)) from None
    try:  # the last holder may have deleted the file between our open and our flock: lock the one there now
      if os.fstat(fd).st_ino == os.stat(path).st_ino:
        break
    except FileNotFoundError:
      pass
    os.close(fd)
  try:
    started = datetime.datetime.now().astimezone().isoformat(timespec='seconds')
    info = {'pid': os.getpid(), 'host': socket.gethostname(), 'started': started, 'what': what,
            'command': ' '.join([os.path.basename(sys.argv[0])] + sys.argv[1:]) or what}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + '\n').encode(), 0)
    yield
  finally:
    with contextlib.suppress(OSError):
      os.remove(path)  # (still held: no other process can have taken this file meanwhile)
    os.close(fd)  # (closing the last descriptor releases the lock)
    for folder in reversed(made):
      try:
        os.rmdir(folder)  # only when empty
      except OSError:
        break


def fsync(path):
  """Makes the bytes of a file, or the names in a folder, durable: from the page cache to the disk, so that a
  power cut or a kernel crash (unlike a killed process) cannot take them back."""
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def write_atomically(path, write, durable=False):
  """Creates the parent folder, calls write(temporary_path), then renames the result to `path`.

  A reader sees the old file or the whole new one, never half of it. With `durable`, a power cut does not
  either: the new file's bytes reach the disk before the rename, and the rename before this returns.
  """
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  temporary = temporary_name(path)
  try:
    write(temporary)
    if durable:
      fsync(temporary)
    os.replace(temporary, path)
    if durable:
      fsync(os.path.dirname(path) or '.')
  finally:
    if os.path.exists(temporary):
      os.remove(temporary)


def temporary_name(path):
  """Where to write `path` before renaming it: unique to this process, so that two processes (multi-worker
  training on a shared folder) writing the same file never write into one temporary file."""
  return f'{path}.tmp{os.getpid()}'


def write_text(path, text, durable=False):
  """Writes `text` to `path` atomically (see write_atomically)."""
  def write(temporary):
    with open(temporary, 'w') as f:
      f.write(text)
  write_atomically(path, write, durable)
