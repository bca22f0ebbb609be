"""Unpacking what was fetched: zips into a dataset folder that appears only once complete, one file out of a
.tgz, and the disk space both need, checked first.
"""

import errno
import gzip
import os
import shutil
import tarfile
import zipfile
import zlib

from common import disk
from common import progress
from errors import UserError


def free_bytes(folder):
  """Free bytes on the disk of `folder` (or of its nearest existing parent)."""
  path = os.path.abspath(folder)
  while not os.path.exists(path):
    path = os.path.dirname(path)
  return shutil.disk_usage(path).free


def check_space(folder, needs):
  """Raises UserError, with the numbers, when `needs` does not fit on the disk of `folder`.

  Args:
    folder: where the bytes go.
    needs: [(bytes, what)], `what` a phrase with {} for the size, e.g. (10**9, '{} to download').
  """
  total = sum(n for n, _ in needs)
  free = free_bytes(folder)
  if total > free:
    parts = ' and '.join(what.format(progress.format_bytes(n)) for n, what in needs if n)
    raise UserError(f'not enough disk space in {folder}: it needs {parts} ({progress.format_bytes(total)} in all), but '
                    f'only {progress.format_bytes(free)} are free; free some space or use --data_dir on a larger disk')


def _members(archive):
  """The files of a zip, with their paths below its top folder, checked to stay inside it."""
  members = []
  for info in archive.infolist():
    if info.is_dir():
      continue
    parts = info.filename.replace('\\', '/').split('/')
    if info.filename.startswith('/') or '..' in parts:
      raise UserError(f'{archive.filename} holds a file outside its folder ({info.filename!r}): not unpacking it')
    inner = parts[1:] if len(parts) > 1 else parts
    members.append((info, os.path.join(*inner)))
  return members


def unpack(zip_path, folder, keep_zip=True):
  """Unpacks a zip into `folder` (its top folder stripped), which appears only once complete.

  Raises:
    UserError: the zip is damaged, or the disk is full (nothing is left half-unpacked).
  """
  staging = folder + '.unpacking'
  try:
    with zipfile.ZipFile(zip_path) as archive:
      members = _members(archive)
      check_space(os.path.dirname(folder) or '.', [(sum(info.file_size for info, _ in members), '{} to unpack')])
      shutil.rmtree(staging, ignore_errors=True)
      with progress.Meter(sum(info.file_size for info, _ in members), f'unpacking {os.path.basename(zip_path)}',
                          in_bytes=True) as meter:
        for info, inner in members:
          target = os.path.join(staging, inner)
          os.makedirs(os.path.dirname(target), exist_ok=True)
          with archive.open(info) as source, open(target, 'wb') as out:
            for block in iter(lambda: source.read(1 << 22), b''):
              out.write(block)
              meter.update(len(block))
    os.replace(staging, folder)
  except zipfile.BadZipFile as e:
    raise UserError(f'{zip_path} is not a readable zip ({e}); delete it and download it again') from None
  except OSError as e:
    if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
      raise UserError(f'disk full while unpacking {zip_path} into {folder}: {e.strerror}; free some space and run '
                      'the same command') from None
    raise
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  if not keep_zip:
    os.remove(zip_path)


class Damaged(UserError):
  """An archive that cannot be read, or does not hold what it should."""


def extract_member(archive_path, member, target):
  """Takes `member` (by name) out of the .tgz at `archive_path` into a temporary file beside `target`.

  Returns:
    The temporary file's path (the caller verifies it and renames it, or removes it).

  Raises:
    Damaged: the archive cannot be read (a cut tar, a broken gzip stream) or does not hold the member.
    UserError: the disk is full.
  """
  part = disk.temporary_name(target)
  os.makedirs(os.path.dirname(target) or '.', exist_ok=True)
  try:
    with tarfile.open(archive_path, 'r:gz') as tar:
      info = next((m for m in tar if m.isfile() and os.path.basename(m.name) == member.name), None)
      if info is None:
        raise Damaged(f'{archive_path} holds no {member.name}: not the archive download.py fetches')
      with tar.extractfile(info) as source, open(part, 'wb') as out, progress.Meter(
          info.size, f'taking {member.name} out of {os.path.basename(archive_path)}', in_bytes=True) as meter:
        for block in iter(lambda: source.read(1 << 22), b''):
          out.write(block)
          meter.update(len(block))
  except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
    if os.path.exists(part):
      os.remove(part)
    raise Damaged(f'{archive_path} is not a readable .tgz ({e})') from None
  except OSError as e:
    if os.path.exists(part):
      os.remove(part)
    if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
      raise UserError(f'disk full while taking {member.name} out of {archive_path}: {e.strerror}; free some space '
                      'and run the same command') from None
    raise
  return part
