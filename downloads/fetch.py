"""Getting datasets from the internet: the one table of what to fetch, and get(), which fetches one dataset whole.

Each file comes through transfer.py (a `.part` file, resumed, retried, checked against its size and checksum
before it takes its name) and archives.py (zips unpacked into `<folder>.unpacking`, renamed to the dataset folder
only once complete; one file out of a .tgz). Nothing here imports TensorFlow, so `download.py` starts at once.

$ python download.py mnist celebA lsun --lsun_category bedroom
"""

import collections
import contextlib
import dataclasses
import os
import shutil
from typing import Optional

from absl import logging

from common import disk
import config
from errors import UserError
from . import archives
from .transfer import (Transfer, fetch_file, keep_as, mismatch, size_of, spare_name, verify,  # noqa: F401
                                with_mirrors)  # (Transfer, with_mirrors: what download.py and the tests use)

MNIST_MIRRORS = ('https://ossci-datasets.s3.amazonaws.com/mnist/',  # torchvision's
                 'https://storage.googleapis.com/cvdf-datasets/mnist/',  # TensorFlow Datasets'
                 'http://yann.lecun.com/exdb/mnist/')  # the original, which answers 403 today
LSUN_URL = 'http://dl.yf.io/lsun/scenes/'
MIRROR_ENV = 'DCGAN_MIRROR'  # the environment's --mirror
LOCK_FILE = '.download.lock'


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
MNIST = Download(config.MNIST_DATASET, (
    _mnist('train-images-idx3-ubyte.gz', 9912422, 'f68b3c2dcbeaaa9fbdd348bbdeb94873'),
    _mnist('train-labels-idx1-ubyte.gz', 28881, 'd53e105ee54ea40749a09fcbcd1e9432'),
    _mnist('t10k-images-idx3-ubyte.gz', 1648877, '9fb629c4189551a2d022fa330f9573f3'),
    _mnist('t10k-labels-idx1-ubyte.gz', 4542, 'ec29112dd5afa0611ce80d1b7f02629c')))

# The aligned and cropped CelebA faces, 202,599 JPEGs of 178x218.
CELEBA = Download(config.CELEBA_DATASET, (Remote('img_align_celeba.zip', 1443490838,
                                                 'md5:00d2c5bc6d35e252742224ab0c1e8fcb',
                                                 drive_id='0B7EVK8r0v71pZjFTYXZWM3FlRnM'),),
                  archive=True, train='--crop')

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
LSUN_CATEGORIES, LSUN_SPLITS = config.LSUN_CATEGORIES, config.LSUN_SPLITS
if {f'{category}_{split}' for category in LSUN_CATEGORIES for split in LSUN_SPLITS} != set(LSUN_ZIPS):
  raise ImportError('fetch.LSUN_ZIPS and config.LSUN_CATEGORIES, LSUN_SPLITS must name the same zips')

# The FID paper's Inception network, as TTUR's fid.py and TF-GAN fetch it. No checksum of the archive is published
# (its size, 88,931,400 bytes, shows in many public logs); the GraphDef inside has a published size and MD5 (OpenAI's
# evaluation protocol for ADM, which serves the same file), checked once it is out of the archive.
INCEPTION_URL = 'http://download.tensorflow.org/models/image/imagenet/'
INCEPTION_GRAPH = Remote('classify_image_graph_def.pb', 95673916, 'md5:e6bb154e85f5d4331c22abcddb5dcf31')
INCEPTION = Download('inception', (Remote('inception-2015-12-05.tgz', 88931400, None, (INCEPTION_URL,)),),
                     member=INCEPTION_GRAPH)


def lsun(category, split='train'):
  """The Download of one LSUN scene category: its LMDB, unpacked into data/lsun_<category>[_val]."""
  size, sha256 = LSUN_ZIPS[f'{category}_{split}']
  remote = Remote(f'{category}_{split}_lmdb.zip', size, 'sha256:' + sha256, (LSUN_URL,))
  return Download(config.lsun_folder(category, split), (remote,), archive=True, train='--crop')


NAMES = ('mnist', 'celebA', 'lsun', 'inception')  # what download.py fetches, by name


def downloads(names, lsun_categories=('bedroom',), lsun_split='train'):
  """The Download of each name of NAMES (any case), LSUN once per category of `lsun_categories`.

  Raises:
    UserError: a name that is not in NAMES, or a category that is not LSUN's.
  """
  chosen = []
  for name in names:
    match = {known.lower(): known for known in NAMES}.get(name.lower())
    if match is None:
      raise UserError(f'download.py knows {", ".join(NAMES)}, not {name!r} (for other data: main.py --dataset '
                      'tfds:NAME, or a folder of images)')
    if match == 'lsun':
      config.check_lsun_categories(lsun_categories)
      chosen += [lsun(category, lsun_split) for category in lsun_categories]
    else:
      chosen.append({'mnist': MNIST, 'celebA': CELEBA, 'inception': INCEPTION}[match])
  return chosen


@contextlib.contextmanager
def locked(data_dir):
  """Holds the lock of data_dir (disk.exclusive_lock on .download.lock): two download.py runs never write the
  same files. A data_dir this made is removed again if the command leaves it empty."""
  try:
    with disk.exclusive_lock(os.path.join(data_dir, LOCK_FILE), 'download.py'):
      yield
  except disk.Busy as holder:
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
  remotes = [with_mirrors(r, mirrors) if mirrors else r for r in download.files]
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
    archives.unpack(from_file, folder, keep_zip=True)
    return Result(folder, True)
  target_dir = data_dir if download.archive else folder
  missing = [r for r in remotes if not os.path.exists(os.path.join(target_dir, r.name))]
  needs = [(sum(r.size - _partial(target_dir, r) for r in missing), '{} to download')]
  if download.archive:  # the images are compressed already: about as many bytes unpacked as zipped
    needs.append((sum(r.size for r in remotes), 'about {} to unpack'))
  archives.check_space(data_dir, needs)
  created = not os.path.isdir(target_dir)
  os.makedirs(target_dir, exist_ok=True)
  try:
    for remote in remotes:
      path = fetch_file(remote, target_dir, transfer, keep_mine)
      if download.archive:
        archives.unpack(path, folder, keep_zip=keep_downloads)
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
                    'again with --keep_mine', target, theirs, spare_name(target))
  created = not os.path.isdir(folder)
  downloaded = None  # the archive, when this run fetched it
  try:
    if from_file and os.path.basename(from_file) == member.name:  # the member itself, fetched by hand
      part = disk.temporary_name(target)
      os.makedirs(folder, exist_ok=True)
      shutil.copyfile(from_file, part)
    else:
      if from_file:
        problem = verify(from_file, archive)
        if problem:
          raise UserError(f'--from_file {from_file} is not {archive.name}: {problem}')
      else:
        archives.check_space(data_dir, [(archive.size - _partial(data_dir, archive), '{} to download'),
                                        (member.size, '{} for ' + member.name)])
        os.makedirs(data_dir, exist_ok=True)
        downloaded = fetch_file(archive, data_dir, transfer, keep_mine)
      try:
        part = archives.extract_member(from_file or downloaded, member, target)
      except archives.Damaged:
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
        spare = spare_name(target)
        keep_as(target, spare)
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


def _partial(folder, remote):
  return min(max(size_of(os.path.join(folder, remote.name + suffix))
                 for suffix in ('.part', '.unverified')),
             remote.size)
