"""Getting datasets from the internet: the one table of what to fetch, and transfers that never leave a bad file.

Every file is written to `<name>.part`, resumed with an HTTP Range request after an interruption, retried with
backoff on connection errors and 5xx answers, moved on to the next mirror on 403/404, and checked against its
size and checksum before it is renamed to its final name. Archives are unpacked into `<folder>.unpacking` and
renamed to the dataset folder only once complete. Google Drive (CelebA) goes through gdown. Nothing here imports
TensorFlow, so `download.py` starts at once.

$ python download.py mnist celebA lsun --lsun_category bedroom
"""

import collections
import contextlib
import dataclasses
import errno
import gzip
import hashlib
import http.client
import os
import shutil
import socket
import tarfile
import time
import zipfile
import zlib
from typing import Optional

import requests
import urllib3
from absl import logging

import utils
from errors import UserError

MNIST_MIRRORS = ('https://ossci-datasets.s3.amazonaws.com/mnist/',  # torchvision's
                 'https://storage.googleapis.com/cvdf-datasets/mnist/',  # TensorFlow Datasets'
                 'http://yann.lecun.com/exdb/mnist/')  # the original, which answers 403 today
LSUN_URL = 'http://dl.yf.io/lsun/scenes/'
DRIVE_URL = 'https://drive.google.com/uc?id={id}'  # what gdown resolves; the tests point it at a loopback server
MIRROR_ENV = 'DCGAN_MIRROR'  # the environment's --mirror
LOCK_FILE = '.download.lock'
UNRESOLVED = 'cannot resolve the host name'
NO_ROUTE = 'the network is unreachable'
# Not a passing fault: such a host fails at once, and for the rest of the command, instead of being retried
_HOPELESS = (UNRESOLVED, NO_ROUTE)


@dataclasses.dataclass(frozen=True)
class Remote:
  """One file to fetch.

  Attributes:
    name: its file name, on the server and on disk.
    size: bytes.
    checksum: 'md5:<hex>' or 'sha256:<hex>'; None where none is published (the size is checked alone, and what
      is taken out of the file is checked by its own).
    bases: base URLs that end in '/', tried in order; the URL is base + name.
    drive_id: a Google Drive file id, fetched with gdown when there is no --mirror.
  """
  name: str
  size: int
  checksum: Optional[str]
  bases: tuple = ()
  drive_id: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Download:
  """A dataset as download.py fetches it.

  Attributes:
    folder: the dataset folder under --data_dir, the --dataset of main.py.
    files: the Remote files.
    archive: the files are zips to unpack into `folder` (their top folder stripped), then delete.
    train: the flags of main.py that train on it, after --dataset.
    member: the one file kept of a .tgz (the only file of `files`), with its own size and checksum; the .tgz is
      deleted once it is out.
  """
  folder: str
  files: tuple
  archive: bool = False
  train: str = ''
  member: Optional[Remote] = None


def _mnist(name, size, md5):
  return Remote(name, size, 'md5:' + md5, MNIST_MIRRORS)


# Sizes from TensorFlow Datasets' url_checksums, MD5 as torchvision lists them.
MNIST = Download('mnist', (
    _mnist('train-images-idx3-ubyte.gz', 9912422, 'f68b3c2dcbeaaa9fbdd348bbdeb94873'),
    _mnist('train-labels-idx1-ubyte.gz', 28881, 'd53e105ee54ea40749a09fcbcd1e9432'),
    _mnist('t10k-images-idx3-ubyte.gz', 1648877, '9fb629c4189551a2d022fa330f9573f3'),
    _mnist('t10k-labels-idx1-ubyte.gz', 4542, 'ec29112dd5afa0611ce80d1b7f02629c')))

# The aligned and cropped CelebA faces, 202,599 JPEGs of 178x218.
CELEBA = Download('celebA', (Remote('img_align_celeba.zip', 1443490838, 'md5:00d2c5bc6d35e252742224ab0c1e8fcb',
                                    drive_id='0B7EVK8r0v71pZjFTYXZWM3FlRnM'),), archive=True, train='--crop')

# LSUN's ten scene categories: (bytes, SHA-256) of <category>_<split>_lmdb.zip, from TensorFlow Datasets.
LSUN_ZIPS = {
    'bedroom_train': (45922737680, 'a15644c2e7153106867f0adb3491fc41224102d1f01b24494fb47d9f5d1f174e'),
    'bedroom_val': (4670661, '5d022e781b241c25ec2e1f1f769afcdb8091d7fd58362667aec03137b8114b12'),
    'bridge_train': (16478644518, '2701b2d421bbc4d8a5e9b0652ff7c3b57cd6495da8e0e85c39533275b5a925a3'),
    'bridge_val': (6176834, '83216a2974d6068c2e1d18086006e7380ff58540216f955ce87fe049b460cb0d'),
    'church_outdoor_train': (2448463466, '91128ae026840ac0c5982b4445ab5fc4e092d6847cca76793b2b1a0815c2e74a'),
    'church_outdoor_val': (5957308, '34635b7547a3e51a15f942a4a4082dd6bc9cca381a953515cb2275c0eed50584'),
    'classroom_train': (3279497022, '73a8a3e318819e1cc602f229673c3f51a68f3ece61e3764ce22df6abea4d0873'),
    'classroom_val': (5880261, '5e0e9a375d94091dfe1fa3be87d4a92f41c03f1c0b8e376acc7e05651de512d7'),
    'conference_room_train': (4048461633, 'fa0a4cf72e7acfb103392eaf33640d5508a728e971f31877b01d64e1bde6068c'),
    'conference_room_val': (5316084, '927c94df52e10b9b374748c2b83b28b5860e946b3186dfd587985e274834650f'),
    'dining_room_train': (11592966936, 'e4ee24c7c309360c3bf019123ce5bbf17434b2ba33abec2b0b07cfae715a52cb'),
    'dining_room_val': (5301030, 'bd604d4b91bb5a9611d4e0b85475efd20758390d1a4eb57b53973fcbb5aa8ab6'),
    'kitchen_train': (35791384987, 'b1993cf639aece5d207a27eb9ff872bcca9dff6472d8227a052c79d40ee753c4'),
    'kitchen_val': (4867891, '329165f35ec61c4cf49f809246de300b8baad3ffcbda1ac30c27bdd32c84369a'),
    'living_room_train': (22792405188, 'bd2c52b812c80f73ce3062a221396d13a52b5cce2f813b4cdf61937651281d7a'),
    'living_room_val': (5167755, '30a23d9a3db5414e9c97865f60ffb2ee973bfa658a23dbca7188ea514c97c9fc'),
    'restaurant_train': (13489345463, '11a0a924b960cd0900e9b7477d684fb338bd99cc5f72db1caac592e4f497e09a'),
    'restaurant_val': (6232385, 'efaa7bcb898ad6cb73b07b89fec3a9c670f4622912eea22fab3986c2cf9a1c20'),
    'tower_train': (12010237081, '440caec74c9641cb51fd235a5970c8e4931c3af875aeb044a8bcca956e106309'),
    'tower_val': (5223709, '7f5257847bc01f4e40d4a1b3e24dd8fcd37063f12ca8cf31e726c2ee0b1ae104'),
}
LSUN_CATEGORIES = tuple(sorted({name.rsplit('_', 1)[0] for name in LSUN_ZIPS}))

# The FID paper's Inception network, as TTUR's fid.py and TF-GAN fetch it. No checksum of the archive is published
# (its size, 88,931,400 bytes, shows in many public logs); the GraphDef inside has a published size and MD5 (OpenAI's
# evaluation protocol for ADM, which serves the same file), checked once it is out of the archive.
INCEPTION_URL = 'http://download.tensorflow.org/models/image/imagenet/'
INCEPTION_GRAPH = Remote('classify_image_graph_def.pb', 95673916, 'md5:e6bb154e85f5d4331c22abcddb5dcf31')
INCEPTION = Download('inception', (Remote('inception-2015-12-05.tgz', 88931400, None, (INCEPTION_URL,)),),
                     member=INCEPTION_GRAPH)
LSUN_SPLITS = ('train', 'val')


def check_lsun_categories(categories):
  """Raises UserError naming the first of `categories` that is not an LSUN scene category, with the ones there are."""
  for category in categories:
    if category not in LSUN_CATEGORIES:
      raise UserError(f'--lsun_category {category!r} is not an LSUN scene category: {", ".join(LSUN_CATEGORIES)}')


def lsun(category, split='train'):
  """The Download of one LSUN scene category: its LMDB, unpacked into data/lsun_<category>[_val]."""
  size, sha256 = LSUN_ZIPS[f'{category}_{split}']
  folder = f'lsun_{category}' + ('' if split == 'train' else f'_{split}')
  return Download(folder, (Remote(f'{category}_{split}_lmdb.zip', size, 'sha256:' + sha256, (LSUN_URL,)),),
                  archive=True, train='--crop')


def command_for(folder):
  """The download.py command that makes the dataset folder `folder`, or None when it does not make it."""
  if folder == MNIST.folder:
    return 'python download.py mnist'
  if folder == CELEBA.folder:
    return 'python download.py celebA'
  for category in LSUN_CATEGORIES:
    for split in LSUN_SPLITS:
      if folder == lsun(category, split).folder:
        return f'python download.py lsun --lsun_category {category}' + ('' if split == 'train' else ' --lsun_split val')
  return None


# Transfers

class _NextMirror(Exception):
  """This URL cannot give the file (after any retries); the message says why. With `discard`, what it wrote
  is not the file's beginning and must not be resumed from."""

  def __init__(self, why, discard=False):
    super().__init__(why)
    self.discard = discard


def _with_mirrors(remote, mirrors):
  """`remote` fetched from `mirrors` (base URLs) instead of its own URLs and Google Drive."""
  return dataclasses.replace(remote, bases=tuple(m if m.endswith('/') else m + '/' for m in mirrors), drive_id=None)


def checksum_of(path, algorithm, what=None):
  """The hex digest of a file, with progress for large files."""
  digest = hashlib.new(algorithm)
  size = os.path.getsize(path)
  with open(path, 'rb') as f, utils.Meter(size, what or f'checking {os.path.basename(path)}', in_bytes=True) as meter:
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
    attempt, furthest = 0, _size(part)
    with requests.Session() as session:
      while _size(part) < remote.size:
        offset = _size(part)
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
        if _size(part) >= remote.size:
          return
        if _size(part) > furthest:  # it moved on: only attempts that bring nothing new use up the retries
          attempt, furthest = 0, _size(part)
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


def _size(path):
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
                    'again with --keep_mine (or use another --data_dir)', final, theirs, _spare_name(final))
  target = final + ('.unverified' if remote.drive_id else '.part')
  have = _size(target)
  sources = [(base + remote.name, None) for base in remote.bases] or [(None, 'Google Drive')]
  failures = []
  for url, drive in sources:
    try:
      with utils.Meter(remote.size, remote.name, in_bytes=True, done=min(have, remote.size), every=10.0) as meter:
        if drive:
          transfer.drive(remote, target, meter)
        else:
          transfer.http(url, target, remote, meter)
    except _NextMirror as e:
      failures.append((url or drive, str(e)))
      if e.discard and os.path.exists(target):
        os.remove(target)
      have = _size(target)
      continue
    except OSError as e:
      if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        raise UserError(f'disk full: could not write {target}: {e.strerror}; the {_size(target):,} bytes received '
                        'are kept there: free some space and run the same command to resume') from None
      raise
    problem = verify(target, remote)
    if problem is None:
      if theirs is not None:
        spare = _spare_name(final)
        _keep_as(final, spare)
        logging.warning('%s was not the file download.py fetches: replaced it, and kept yours as %s', final, spare)
      os.replace(target, final)
      return final
    os.remove(target)
    failures.append((url or drive, f'{problem}; removed the download'))
    have = 0
  if os.path.exists(target) and not _size(target):
    os.remove(target)  # nothing came: no .part to resume from
  sentence = _failure_sentence(remote, failures)
  if theirs is not None:
    sentence += (f'. {final}, which is not that file, is as it was: keep it with --keep_mine, or run again when a '
                 'source works to replace it')
  raise UserError(sentence)


def _spare_name(path):
  """Where the user's own file goes when a verified download replaces it: `<path>.mine`, never over another."""
  spare, number = path + '.mine', 1
  while os.path.lexists(spare):
    spare, number = f'{path}.mine{number}', number + 1
  return spare


def _keep_as(path, spare):
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


# Disk space and archives

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
    parts = ' and '.join(what.format(utils.format_bytes(n)) for n, what in needs if n)
    raise UserError(f'not enough disk space in {folder}: it needs {parts} ({utils.format_bytes(total)} in all), but '
                    f'only {utils.format_bytes(free)} are free; free some space or use --data_dir on a larger disk')


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
      with utils.Meter(sum(info.file_size for info, _ in members), f'unpacking {os.path.basename(zip_path)}',
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


@contextlib.contextmanager
def locked(data_dir):
  """Holds the lock of data_dir (utils.exclusive_lock on .download.lock): two download.py runs never write the
  same files. A data_dir this made is removed again if the command leaves it empty."""
  try:
    with utils.exclusive_lock(os.path.join(data_dir, LOCK_FILE), 'download.py'):
      yield
  except utils.Busy as holder:
    raise UserError(f'another download.py is running in {data_dir} ({holder}); wait for it to finish') from None


Result = collections.namedtuple('Result', 'folder fetched')
"""folder: the dataset folder; fetched: False when it was there already."""


def get(download, data_dir, transfer, mirrors=(), from_file=None, keep_downloads=False, keep_mine=False, folder=None):
  """Fetches, verifies and (for archives) unpacks one dataset into data_dir/<download.folder>.

  Args:
    download: a Download.
    data_dir: the folder that holds the dataset folders.
    transfer: a Transfer.
    mirrors: base URLs that replace every built-in source, tried in order.
    from_file: an archive the user downloaded, checked and unpacked instead (archives of one file only); for a
      Download with a member, that member itself will do too.
    keep_downloads: keep the zip after unpacking it.
    keep_mine: a file already there that does not match is used as it is, not replaced (see fetch_file).
    folder: the dataset folder, if not data_dir/<download.folder>.

  Returns:
    A Result.

  Raises:
    UserError: see fetch_file and unpack; also a --from_file that does not match.
  """
  folder = folder or os.path.join(data_dir, download.folder)
  remotes = [_with_mirrors(r, mirrors) if mirrors else r for r in download.files]
  if download.member:
    return _get_member(download.member, remotes[0], folder, data_dir, transfer, from_file, keep_downloads, keep_mine)
  if download.archive and os.path.isdir(folder):
    logging.info('%s is there already: nothing to download (delete it to fetch it again)', folder)
    return Result(folder, False)
  if from_file:
    remote, = remotes
    problem = verify(from_file, remote)
    if problem:
      raise UserError(f'--from_file {from_file} is not {remote.name}: {problem}')
    unpack(from_file, folder, keep_zip=True)
    return Result(folder, True)
  target_dir = data_dir if download.archive else folder
  missing = [r for r in remotes if not os.path.exists(os.path.join(target_dir, r.name))]
  needs = [(sum(r.size - _partial(target_dir, r) for r in missing), '{} to download')]
  if download.archive:  # the images are compressed already: about as many bytes unpacked as zipped
    needs.append((sum(r.size for r in remotes), 'about {} to unpack'))
  check_space(data_dir, needs)
  created = not os.path.isdir(target_dir)
  os.makedirs(target_dir, exist_ok=True)
  try:
    for remote in remotes:
      path = fetch_file(remote, target_dir, transfer, keep_mine)
      if download.archive:
        unpack(path, folder, keep_zip=keep_downloads)
  except BaseException:
    if created and not os.listdir(target_dir):  # an empty dataset folder would look like an empty dataset
      os.rmdir(target_dir)
    raise
  return Result(folder, True)


def _get_member(member, archive, folder, data_dir, transfer, from_file, keep_downloads, keep_mine):
  """get() of a Download whose one kept file, `member`, comes out of the .tgz `archive` into `folder`.

  A verified member already there is kept; one that is not the right file is treated as fetch_file() treats a
  file of the user's (kept with keep_mine, else replaced only by a verified one, and kept beside it as .mine).
  """
  target = os.path.join(folder, member.name)
  theirs = mismatch(target, member) if os.path.exists(target) else None
  if os.path.exists(target) and theirs is None:
    logging.info('%s is already there (checksum ok)', target)
    return Result(folder, False)
  if theirs is not None and keep_mine:
    logging.warning('%s is not the file download.py fetches (%s): kept and used as it is (--keep_mine)', target,
                    theirs)
    return Result(folder, False)
  if theirs is not None:
    logging.warning('%s is not the file download.py fetches (%s). It stays as it is until the right file has '
                    'arrived and been verified, then moves to %s; to keep it in place instead, stop now and run '
                    'again with --keep_mine', target, theirs, _spare_name(target))
  created = not os.path.isdir(folder)
  downloaded = None  # the archive, when this run fetched it
  try:
    if from_file and os.path.basename(from_file) == member.name:  # the member itself, fetched by hand
      part = utils.temporary_name(target)
      os.makedirs(folder, exist_ok=True)
      shutil.copyfile(from_file, part)
    else:
      if from_file:
        problem = verify(from_file, archive)
        if problem:
          raise UserError(f'--from_file {from_file} is not {archive.name}: {problem}')
      else:
        check_space(data_dir, [(archive.size - _partial(data_dir, archive), '{} to download'),
                               (member.size, '{} for ' + member.name)])
        os.makedirs(data_dir, exist_ok=True)
        downloaded = fetch_file(archive, data_dir, transfer, keep_mine)
      try:
        part = _extract(from_file or downloaded, member, target)
      except _Damaged:
        if downloaded:  # (its size was right, but it cannot be read: never kept, as a file of wrong checksum)
          os.remove(downloaded)
        raise
    try:
      problem = verify(part, member)
      if problem:
        if downloaded:  # (its size was right, but what is in it is not: never kept, as a file of wrong checksum)
          os.remove(downloaded)
        raise UserError(f'{member.name} from {from_file or archive.name} is not the file download.py fetches: '
                        f'{problem}; removed it{" and the archive" if downloaded else ""}')
      if theirs is not None:
        spare = _spare_name(target)
        _keep_as(target, spare)
        logging.warning('%s was not the file download.py fetches: replaced it, and kept yours as %s', target, spare)
      os.replace(part, target)
    finally:
      if os.path.exists(part):
        os.remove(part)
  except BaseException:
    if created and os.path.isdir(folder) and not os.listdir(folder):
      os.rmdir(folder)
    raise
  if downloaded and not keep_downloads:
    os.remove(downloaded)
  return Result(folder, True)


class _Damaged(UserError):
  """An archive that cannot be read, or does not hold what it should."""


def _extract(archive_path, member, target):
  """Takes `member` (by name) out of the .tgz at `archive_path` into a temporary file beside `target`.

  Returns:
    The temporary file's path (the caller verifies it and renames it, or removes it).

  Raises:
    _Damaged: the archive cannot be read (a cut tar, a broken gzip stream) or does not hold the member.
    UserError: the disk is full.
  """
  part = utils.temporary_name(target)
  os.makedirs(os.path.dirname(target) or '.', exist_ok=True)
  try:
    with tarfile.open(archive_path, 'r:gz') as tar:
      info = next((m for m in tar if m.isfile() and os.path.basename(m.name) == member.name), None)
      if info is None:
        raise _Damaged(f'{archive_path} holds no {member.name}: not the archive download.py fetches')
      with tar.extractfile(info) as source, open(part, 'wb') as out, utils.Meter(
          info.size, f'taking {member.name} out of {os.path.basename(archive_path)}', in_bytes=True) as meter:
        for block in iter(lambda: source.read(1 << 22), b''):
          out.write(block)
          meter.update(len(block))
  except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
    if os.path.exists(part):
      os.remove(part)
    raise _Damaged(f'{archive_path} is not a readable .tgz ({e})') from None
  except OSError as e:
    if os.path.exists(part):
      os.remove(part)
    if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
      raise UserError(f'disk full while taking {member.name} out of {archive_path}: {e.strerror}; free some space '
                      'and run the same command') from None
    raise
  return part


def _partial(folder, remote):
  return min(max(_size(os.path.join(folder, remote.name + suffix)) for suffix in ('.part', '.unverified')),
             remote.size)
