"""Downloads MNIST, CelebA, LSUN scene categories and the FID paper's Inception network into --data_dir, checked,
ready for main.py.

A program of its own, beside main.py (the only other module with flags). The files, their sizes, checksums and
mirrors stand in one table in downloads/fetch.py. Interrupted downloads resume from their `.part` files when run again;
files already there are verified and kept, and a file that is not the right one is replaced only by a verified
download (transfer.fetch_file).

$ python download.py mnist                                  # data/mnist/*.gz, 70,000 digits (~11 MiB)
$ python download.py celebA                                 # data/celebA/*.jpg, 202,599 faces (1.3 GiB zip)
$ python download.py lsun --lsun_category bedroom --lsun_split val   # data/lsun_bedroom_val (LMDB, 4.5 MiB)
$ python download.py celebA --from_file ~/Downloads/img_align_celeba.zip   # a zip fetched by hand
$ python download.py mnist --mirror_url http://10.0.0.5:8000/   # your own mirror: <URL><file name>
$ python download.py inception                              # data/inception/classify_image_graph_def.pb: FID
"""

import os
import urllib.parse

from absl import flags, logging

from app import cli
from downloads import fetch
from errors import UserError

DATASETS = fetch.NAMES
INTRO = '''\
download.py: fetch a dataset into data/, checked against its published size and checksum, ready for main.py.

  python download.py mnist                                 data/mnist/, 11 MiB (then: main.py --train --dataset mnist)
  python download.py celebA                                data/celebA/*.jpg, a 1.3 GiB zip from Google Drive
  python download.py lsun --lsun_category bedroom          data/lsun_bedroom/, an LMDB, 43 GiB
  python download.py lsun --lsun_category bedroom --lsun_split val        300 images: a quick first try
  python download.py celebA --from_file img_align_celeba.zip              a zip you fetched in a browser
  python download.py inception                             data/inception/, the FID network (89 MB): main.py
                                                           --evaluate then reports FID, KID, precision, recall
  python download.py mnist --mirror_url http://10.0.0.5:8000/  your own mirror, serving the files by name

Run the same command again to resume an interrupted download. More: README.md, "The data".'''

HELP_GROUPS = cli.HelpGroups()
with HELP_GROUPS.group('What to fetch'):
  flags.DEFINE_list('lsun_category', ['bedroom'], 'LSUN scene categories to fetch, comma-separated: '
                    f'{", ".join(fetch.LSUN_CATEGORIES)}.')
  flags.DEFINE_enum('lsun_split', 'train', fetch.LSUN_SPLITS, 'LSUN split: train (bedroom: 3,033,042 images, 43 '
                    'GiB) or val (300 images, a few MiB: a quick first try).')
  flags.DEFINE_string('data_dir', 'data', 'Folder that receives the dataset folders (main.py --data_dir).')
  flags.DEFINE_string('inception_dir', None, 'Folder that receives the Inception network (main.py --inception_dir); '
                      'default <data_dir>/inception.')
with HELP_GROUPS.group('From where'):
  flags.DEFINE_list('mirror_url', None, 'Base URL(s) of a mirror that serves the files by name (<URL><file name>), '
                    'tried in order instead of every built-in source and Google Drive. Default: the environment '
                    f'variable {fetch.MIRROR_ENV}, else the built-in sources.')
  flags.DEFINE_string('from_file', None, 'A file you downloaded yourself (the zip of celebA or of one LSUN category, '
                      'inception-2015-12-05.tgz or classify_image_graph_def.pb): checked against the same size and '
                      'checksum and unpacked; the file is left where it is.')
  flags.DEFINE_integer('retries', 5, 'Retries of a transfer that stalls or fails with a connection error or 5xx, '
                       'before the next mirror (attempts that bring new bytes do not count).', lower_bound=0)
  flags.DEFINE_float('timeout', 60, 'Seconds to wait for a server to answer or send more bytes.')
  cli.check_flag('timeout', lambda value: value > 0, 'must be above 0')
with HELP_GROUPS.group('What to keep'):
  flags.DEFINE_boolean('keep_mine', False, 'A file already in the dataset folder that is not the one download.py '
                       'fetches (your own subset, another version) is kept and used as it is; without it, it is '
                       'replaced once the right file has arrived and been verified, and kept beside it as '
                       '<name>.mine.')
  flags.DEFINE_boolean('keep_downloads', False, 'Keep the zip of celebA or LSUN after unpacking it (default: '
                       'deleted once the images are unpacked).')
# The old spelling of --mirror_url, which main.py's --mirror (an x-flip of the images) made ambiguous
flags.DEFINE_alias('mirror', 'mirror_url')
DEPRECATED = {'mirror': 'mirror_url'}  # old spelling: new one (not in --help; a warning says the new name)

FLAGS = flags.FLAGS


def _mirrors():
  """--mirror_url, else the environment's DCGAN_MIRROR, as a list of http(s) base URLs.

  Raises:
    UserError: a mirror is not an http:// or https:// URL with a host.
  """
  given = FLAGS.mirror_url is not None
  mirrors = [m.strip() for m in FLAGS.mirror_url or os.environ.get(fetch.MIRROR_ENV, '').split(',') if m.strip()]
  for mirror in mirrors:
    parts = urllib.parse.urlsplit(mirror)
    if parts.scheme not in ('http', 'https') or not parts.netloc:
      where = '--mirror_url' if given else f'the environment variable {fetch.MIRROR_ENV}'
      hint = f'; write it as http://{mirror}' if '://' not in mirror else ''
      raise UserError(f'{where} {mirror!r} is not an http:// or https:// URL{hint}')
  return mirrors


def main(argv):
  for old, new in DEPRECATED.items():
    if FLAGS[old].present:
      logging.warning('--%s is now called --%s (main.py\'s --mirror is an x-flip); the old name still works, for '
                      'now', old, new)
  if len(argv) < 2:
    raise UserError(f'name the datasets to download: {" ".join(DATASETS)} (e.g. python download.py mnist)')
  downloads = fetch.downloads(argv[1:], FLAGS.lsun_category, FLAGS.lsun_split)
  mirrors = _mirrors()
  if FLAGS.from_file:
    if len(downloads) != 1 or len(downloads[0].files) != 1:
      raise UserError('--from_file takes the file of one dataset: celebA, lsun with one --lsun_category, or '
                      'inception')
    if not os.path.isfile(FLAGS.from_file):
      raise UserError(f'--from_file {FLAGS.from_file} is not a file')
  if mirrors:
    logging.info('fetching from %s only', ', '.join(mirrors))
  transfer = fetch.Transfer(retries=FLAGS.retries, timeout=FLAGS.timeout)
  with fetch.locked(FLAGS.data_dir):
    for download in downloads:
      folder = FLAGS.inception_dir if download is fetch.INCEPTION else None
      result = fetch.get(download, FLAGS.data_dir, transfer, mirrors=mirrors, from_file=FLAGS.from_file,
                         keep_downloads=FLAGS.keep_downloads, keep_mine=FLAGS.keep_mine, folder=folder)
      if download is fetch.INCEPTION:
        where = f' --inception_dir {FLAGS.inception_dir}' if FLAGS.inception_dir else (
            f' --data_dir {FLAGS.data_dir}' if FLAGS.data_dir != 'data' else '')
        logging.info('the Inception network is ready in %s: python main.py --evaluate --dataset NAME%s reports '
                     'fid, kid, precision and recall', result.folder, where)
        continue
      command = ' '.join(['python main.py --train --dataset', download.folder, download.train]).strip()
      if FLAGS.data_dir != 'data':
        command += f' --data_dir {FLAGS.data_dir}'
      logging.info('%s is ready in %s; train on it with: %s', download.folder, result.folder, command)


if __name__ == '__main__':
  cli.run_program(main, INTRO, HELP_GROUPS, interrupted='interrupted: what was received is kept in the .part '
                  'files; run the same command to resume')
