"""Fetching one file over HTTP or from Google Drive, checked against its size and checksum.

Every file is written to `<name>.part`, resumed with an HTTP Range request after an interruption, retried with
backoff on connection errors and 5xx answers, moved on to the next mirror on 403/404, and checked against its
size and checksum before it is renamed to its final name; a file of the user's that is not the right one is kept
until then. Google Drive (CelebA) goes through gdown. What to fetch is fetch.py's table; a Remote is one of its
files.
"""

import dataclasses
import errno
import hashlib
import http.client
import os
import shutil
import socket
import time

import requests
import urllib3
from absl import logging

from common import progress
from errors import UserError

DRIVE_URL = 'https://drive.google.com/uc?id={id}'  # what gdown resolves; the tests point it at a loopback server
UNRESOLVED = 'cannot resolve the host name'
NO_ROUTE = 'the network is unreachable'
# Not a passing fault: such a host fails at once, and for the rest of the command, instead of being retried
_HOPELESS = (UNRESOLVED, NO_ROUTE)


class _NextMirror(Exception):
  """This URL cannot give the file (after any retries); the message says why. With `discard`, what it wrote
  is not the file's beginning and must not be resumed from."""

  def __init__(self, why, discard=False):
    super().__init__(why)
    self.discard = discard


def with_mirrors(remote, mirrors):
  """`remote` fetched from `mirrors` (base URLs) instead of its own URLs and Google Drive."""
  return dataclasses.replace(remote, bases=tuple(m if m.endswith('/') else m + '/' for m in mirrors), drive_id=None)


def checksum_of(path, algorithm, what=None):
  """The hex digest of a file, with progress for large files."""
  digest = hashlib.new(algorithm)
  size = os.path.getsize(path)
  what = what or f'checking {os.path.basename(path)}'
  with open(path, 'rb') as f, progress.Meter(size, what, in_bytes=True) as meter:
    for block in iter(lambda: f.read(1 << 22), b''):
      digest.update(block)
      meter.update(len(block))
  return digest.hexdigest()


def verify(path, remote):
  """None when `path` has the size and checksum of `remote`, else a sentence saying how it differs."""
  size = os.path.getsize(path)
  if size != remote.size:
    return f'it has {size:,} bytes, not {remote.size:,}'
  if remote.checksum is None:
    return None
  algorithm, expected = remote.checksum.split(':')
  actual = checksum_of(path, algorithm)
  return None if actual == expected else f'checksum mismatch ({algorithm} {actual}, expected {expected})'


def mismatch(path, remote):
  """How the file at `path` differs from `remote`, its size and checksum beside the expected ones; None when it
  matches. The checksum is computed even when the sizes differ: it is what a user compares with a published one."""
  if remote.checksum is None:
    size = os.path.getsize(path)
    return None if size == remote.size else f'it has {size:,} bytes; the file download.py fetches has {remote.size:,}'
  algorithm, expected = remote.checksum.split(':')
  size, actual = os.path.getsize(path), checksum_of(path, algorithm)
  if size == remote.size and actual == expected:
    return None
  return f'it has {size:,} bytes and {algorithm} {actual}; the file download.py fetches has {remote.size:,} bytes ' \
         f'and {algorithm} {expected}'


def reason_of(error):
  """A short reason for a requests or urllib3 exception: the innermost OS-level cause where there is one."""
  if isinstance(error, (requests.exceptions.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError)):
    return 'timed out connecting'
  if isinstance(error, (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError)):
    return 'the server stopped sending'
  if isinstance(error, (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError)):
    return 'the connection broke off'
  seen, cause = set(), error
  while cause is not None and id(cause) not in seen:
    seen.add(id(cause))
    if isinstance(cause, socket.gaierror) or 'Failed to resolve' in str(cause):
      return UNRESOLVED
    if isinstance(cause, ConnectionRefusedError):
      return 'connection refused'
    if isinstance(cause, OSError) and cause.errno == errno.ENETUNREACH:
      return NO_ROUTE
    if isinstance(cause, http.client.RemoteDisconnected):
      return 'the server closed the connection without answering'
    if isinstance(cause, http.client.BadStatusLine):
      return 'the server did not answer in HTTP'
    if isinstance(cause, ConnectionResetError):
      return 'connection reset'
    nested = [a for a in getattr(cause, 'args', ()) if isinstance(a, BaseException)]
    cause = cause.__cause__ or cause.__context__ or getattr(cause, 'reason', None) or (nested[0] if nested else None)
  text = str(error).splitlines()[0] if str(error) else type(error).__name__
  return text if len(text) < 160 else type(error).__name__


# requests' errors before the body; urllib3's while reading it raw (a cut connection, a stalled server)
_CONNECTION_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                      requests.exceptions.ChunkedEncodingError, urllib3.exceptions.HTTPError)


@dataclasses.dataclass
class Transfer:
  """How to fetch: retries (per URL, counted afresh after each attempt that received bytes), seconds to wait
  for a server, and the first backoff in seconds (doubled after each failed attempt, at most 60).

  A host whose name does not resolve (or with no route to it) is not retried: it fails at once, and every
  later URL on it in the same command too, so that a machine without a network hears so in seconds."""
  retries: int = 5
  timeout: float = 60.0
  backoff: float = 1.0
  hopeless: dict = dataclasses.field(default_factory=dict)  # {host: why} of the hosts failed for good

  def _wait(self, attempt, url, why, response=None):
    delay = min(self.backoff * 2 ** attempt, 60.0)
    retry_after = response.headers.get('Retry-After', '') if response is not None else ''
    if retry_after.isdigit():
      delay = min(float(retry_after), 60.0)
    logging.warning('%s: %s; retrying in %.0f s (%d of %d)', url, why, delay, attempt + 1, self.retries)
    time.sleep(delay)

  def http(self, url, part, remote, meter):
    """Fetches `url` into `part`, resuming from the bytes already there, until it holds remote.size bytes.

    Raises:
      _NextMirror: this URL will not give the file: a 403/404, an HTML page, a file of another size, a host
        that does not resolve, or the retries ran out without the file growing.
      OSError: the file could not be written (a full disk).
    """
    host = urllib3.util.parse_url(url).host
    if host in self.hopeless:
      raise _NextMirror(self.hopeless[host])
    attempt, furthest = 0, size_of(part)
    with requests.Session() as session:
      while size_of(part) < remote.size:
        offset = size_of(part)
        headers = {'Accept-Encoding': 'identity'}  # byte offsets must count the bytes on disk
        if offset:
          headers['Range'] = f'bytes={offset}-'
        response = None
        try:
          response = session.get(url, headers=headers, stream=True, timeout=(min(self.timeout, 30.0), self.timeout))
          with response:
            why = self._receive(response, part, offset, remote, meter)
        except _CONNECTION_ERRORS as e:
          why = reason_of(e)
          if why in _HOPELESS:
            self.hopeless[host] = why
            raise _NextMirror(why) from None
        except requests.exceptions.RequestException as e:  # a bad URL, a redirect loop: no retry helps
          raise _NextMirror(reason_of(e)) from None
        if size_of(part) >= remote.size:
          return
        if size_of(part) > furthest:  # it moved on: only attempts that bring nothing new use up the retries
          attempt, furthest = 0, size_of(part)
        if attempt >= self.retries:
          raise _NextMirror(why)
        self._wait(attempt, url, why, response)
        attempt += 1

  @staticmethod
  def _receive(response, part, offset, remote, meter):
    """Writes the body of `response` (asked from byte `offset`) into `part`.

    Returns:
      Why the file is not complete yet: an answer worth another try (5xx, 429), or a connection that broke.

    Raises:
      _NextMirror: the answer says this URL will not give the file (a file of another size among them).
    """
    status = response.status_code
    if status in (408, 429) or status >= 500:
      return f'HTTP {status} {response.reason}'
    if status not in (200, 206, 416):  # 403, 404, a redirect that leads nowhere, ...
      raise _NextMirror(f'HTTP {status} {response.reason}')
    if 'text/html' in response.headers.get('Content-Type', ''):
      raise _NextMirror('it answered with an HTML page, not the file')
    if status == 416 or status == 206 and not response.headers.get('Content-Range', '').startswith(f'bytes {offset}-'):
      if os.path.exists(part):  # a range we did not ask for: start the file again
        os.truncate(part, 0)
      meter.update(-meter.done)
      return (f'HTTP {status} with Content-Range {response.headers.get("Content-Range")!r} for a resume from byte '
              f'{offset:,}')
    announced = _announced_size(response)
    if announced is not None and announced != remote.size:  # before a byte of it is written
      raise _NextMirror(_other_size(announced, remote))
    start = offset if status == 206 else 0  # a 200 is the whole file, whatever was asked
    with open(part, 'r+b' if os.path.exists(part) else 'wb') as f:
      f.truncate(start)
      f.seek(start)
      meter.update(start - meter.done)
      written = start
      # read1: what has arrived, so that a stall keeps every byte received; decode_content=False: the bytes as
      # sent, which the checksums count
      for chunk in iter(lambda: response.raw.read1(1 << 20, decode_content=False), b''):
        if written + len(chunk) > remote.size:
          raise _NextMirror(f'it sent more than the {remote.size:,} bytes of {remote.name}', discard=True)
        f.write(chunk)
        f.flush()  # on disk at once: a stall, Ctrl-C or kill -9 leaves every byte received in the .part
        written += len(chunk)
        meter.update(len(chunk))
    if written < remote.size:  # (a body cut short raises on the way: urllib3 checks Content-Length and chunks)
      raise _NextMirror(_other_size(written, remote) + '; removed what it sent', discard=True)
    return None

  def drive(self, remote, target, meter):
    """Fetches a Google Drive file into `target` with gdown (which writes `target<random>.part` on the way).

    Raises:
      UserError: Drive refused (quota, permissions): the message says how to fetch the file by hand.
      _NextMirror: the transfer failed after the retries.
    """
    import gdown  # pylint: disable=import-outside-toplevel; only CelebA needs it
    url = DRIVE_URL.format(id=remote.drive_id)
    try:
      gdown.download(url=url, output=target, quiet=True, resume=True, retries=self.retries, timeout=self.timeout,
                     progress=lambda done, _: meter.update(done - meter.done))
    except gdown.exceptions.FileURLRetrievalError:
      raise UserError(_drive_refused(remote, 'Google Drive would not give the file')) from None
    except gdown.exceptions.DownloadError as e:
      raise _NextMirror(str(e).splitlines()[0]) from None
    except requests.exceptions.RequestException as e:
      raise _NextMirror(reason_of(e)) from None
    with open(target, 'rb') as f:
      head = f.read(1024).lstrip().lower()
    if head.startswith(b'<!doctype html') or b'<html' in head:
      os.remove(target)
      raise UserError(_drive_refused(remote, 'Google Drive answered with an HTML page instead of the zip (it does '
                                             'this when the file\'s download quota is exceeded)'))


def size_of(path):
  return os.path.getsize(path) if os.path.exists(path) else 0


def _announced_size(response):
  """The size of the whole file as the answer's headers give it (Content-Length of a 200, the total of a 206's
  Content-Range), or None when they do not say."""
  if response.status_code == 206:
    total = response.headers.get('Content-Range', '').rpartition('/')[2]
    return int(total) if total.isdigit() else None
  length = response.headers.get('Content-Length', '')
  return int(length) if length.isdigit() and not response.headers.get('Content-Encoding') else None


def _other_size(size, remote):
  return (f'it serves a file of {size:,} bytes, not the {remote.size:,} bytes of {remote.name} (another version '
          'of the file, or not the file)')


def _drive_refused(remote, what):
  return (f'{what}: open https://drive.google.com/uc?id={remote.drive_id}&export=download in a browser, save '
          f'{remote.name}, then run: python download.py celebA --from_file PATH/{remote.name}')


def fetch_file(remote, folder, transfer, keep_mine=False):
  """Fetches one file into `folder`, verified; a verified file already there is kept.

  A file already there that does not match (the user's own, another version) is never renamed or deleted before
  its replacement has arrived and been verified: the download goes to `<name>.part`, and only a verified one is
  renamed over it, in one atomic rename; the user's file stays beside it as `<name>.mine`. With `keep_mine` it is
  kept and used as it is, and nothing is fetched for it.

  Returns:
    The path of the file.

  Raises:
    UserError: every URL failed (each named with its reason), the disk is full, or Drive refused. A file of the
      user's is then exactly as it was, and the sentence says how to keep it.
  """
  final = os.path.join(folder, remote.name)
  theirs = None  # how the file already there differs from the one to fetch
  if os.path.exists(final):
    theirs = mismatch(final, remote)
    if theirs is None:
      logging.info('%s is already there (checksum ok)', final)
      return final
    if keep_mine:
      logging.warning('%s is not the file download.py fetches (%s): kept and used as it is (--keep_mine)', final,
                      theirs)
      return final
    logging.warning('%s is not the file download.py fetches (%s). It stays as it is until the right file has '
                    'arrived and been verified, then moves to %s; to keep it in place instead, stop now and run '
                    'again with --keep_mine (or use another --data_dir)', final, theirs, spare_name(final))
  target = final + ('.unverified' if remote.drive_id else '.part')
  have = size_of(target)
  sources = [(base + remote.name, None) for base in remote.bases] or [(None, 'Google Drive')]
  failures = []
  for url, drive in sources:
    try:
      with progress.Meter(remote.size, remote.name, in_bytes=True, done=min(have, remote.size), every=10.0) as meter:
        if drive:
          transfer.drive(remote, target, meter)
        else:
          transfer.http(url, target, remote, meter)
    except _NextMirror as e:
      failures.append((url or drive, str(e)))
      if e.discard and os.path.exists(target):
        os.remove(target)
      have = size_of(target)
      continue
    except OSError as e:
      if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        raise UserError(f'disk full: could not write {target}: {e.strerror}; the {size_of(target):,} bytes received '
                        'are kept there: free some space and run the same command to resume') from None
      raise
    problem = verify(target, remote)
    if problem is None:
      if theirs is not None:
        spare = spare_name(final)
        keep_as(final, spare)
        logging.warning('%s was not the file download.py fetches: replaced it, and kept yours as %s', final, spare)
      os.replace(target, final)
      return final
    os.remove(target)
    failures.append((url or drive, f'{problem}; removed the download'))
    have = 0
  if os.path.exists(target) and not size_of(target):
    os.remove(target)  # nothing came: no .part to resume from
  sentence = _failure_sentence(remote, failures)
  if theirs is not None:
    sentence += (f'. {final}, which is not that file, is as it was: keep it with --keep_mine, or run again when a '
                 'source works to replace it')
  raise UserError(sentence)


def spare_name(path):
  """Where the user's own file goes when a verified download replaces it: `<path>.mine`, never over another."""
  spare, number = path + '.mine', 1
  while os.path.lexists(spare):
    spare, number = f'{path}.mine{number}', number + 1
  return spare


def keep_as(path, spare):
  """Gives the file at `path` a second name, `spare`, so that the rename over `path` keeps its bytes."""
  try:
    os.link(path, spare)
  except OSError:  # a file system without hard links
    shutil.copy2(path, spare)


_UNREACHABLE = (UNRESOLVED, NO_ROUTE, 'connection refused', 'timed out connecting')


def _failure_sentence(remote, failures):
  if all(why in _UNREACHABLE for _, why in failures) and len(failures) > 1:
    hosts = ', '.join(f'{urllib3.util.parse_url(where).host} ({why})' for where, why in failures)
    return (f'no network? could not reach any source of {remote.name}: {hosts}; check the connection, or use '
            '--mirror with a mirror you can reach')
  if len(failures) == 1:
    (where, why), = failures
    return f'could not download {remote.name} from {where}: {why}'
  listed = '; '.join(f'{where}: {why}' for where, why in failures)
  return f'every mirror failed for {remote.name}: {listed}'
