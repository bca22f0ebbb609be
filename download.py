"""Downloads MNIST, CelebA and LSUN scene categories into --data_dir, checked, ready for main.py.

A program of its own, beside main.py (the only other module with flags). The files, their sizes, checksums and
mirrors stand in one table in fetch.py. Interrupted downloads resume from their `.part` files when run again;
files already there are verified and kept.

$ python download.py mnist                                  # data/mnist/*.gz, 70,000 digits (~11 MiB)
$ python download.py celebA                                 # data/celebA/*.jpg, 202,599 faces (1.3 GiB zip)
$ python download.py lsun --lsun_category bedroom --lsun_split val   # data/lsun_bedroom_val (LMDB, 4.5 MiB)
$ python download.py celebA --from_file ~/Downloads/img_align_celeba.zip   # a zip fetched by hand
$ python download.py mnist --mirror http://10.0.0.5:8000/   # your own mirror: <URL><file name>
"""

import os

from absl import flags, logging

import errors
import fetch
from errors import UserError

DATASETS = ('mnist', 'celebA', 'lsun')

flags.DEFINE_string('data_dir', 'data', 'Folder that receives the dataset folders (main.py --data_dir).')
flags.DEFINE_list('lsun_category', ['bedroom'], 'LSUN scene categories to fetch, comma-separated: '
                  f'{", ".join(fetch.LSUN_CATEGORIES)}.')
flags.DEFINE_enum('lsun_split', 'train', fetch.LSUN_SPLITS, 'LSUN split: train (bedroom: 3,033,042 images, 43 GiB) '
                  'or val (300 images, a few MiB: a quick first try).')
flags.DEFINE_list('mirror', None, 'Base URL(s) of a mirror that serves the files by name (<URL><file name>), tried '
                  'in order instead of every built-in source and Google Drive. Default: the environment variable '
                  f'{fetch.MIRROR_ENV}, else the built-in sources.')
flags.DEFINE_string('from_file', None, 'A zip you downloaded yourself (celebA, or one LSUN category): checked '
                    'against the same checksum and unpacked; the file is left where it is.')
flags.DEFINE_boolean('keep_downloads', False, 'Keep the zip of celebA or LSUN after unpacking it (default: deleted '
                     'once the images are unpacked).')
flags.DEFINE_integer('retries', 5, 'Retries of a transfer that stalls or fails with a connection error or 5xx, '
                     'before the next mirror (attempts that bring new bytes do not count).')
flags.DEFINE_float('timeout', 60, 'Seconds to wait for a server to answer or send more bytes.')

FLAGS = flags.FLAGS


def _downloads(names):
  """The fetch.Download of each name (mnist, celebA, lsun; any case), LSUN once per --lsun_category."""
  chosen = []
  for name in names:
    match = {known.lower(): known for known in DATASETS}.get(name.lower())
    if match is None:
      raise UserError(f'download.py knows {", ".join(DATASETS)}, not {name!r} (for other data: main.py --dataset '
                      'tfds:NAME, or a folder of images)')
    if match == 'mnist':
      chosen.append(fetch.MNIST)
    elif match == 'celebA':
      chosen.append(fetch.CELEBA)
    else:
      for category in FLAGS.lsun_category:
        if category not in fetch.LSUN_CATEGORIES:
          raise UserError(f'--lsun_category {category!r} is not an LSUN scene category: '
                          f'{", ".join(fetch.LSUN_CATEGORIES)}')
        chosen.append(fetch.lsun(category, FLAGS.lsun_split))
  return chosen


def main(argv):
  if len(argv) < 2:
    raise UserError(f'name the datasets to download: {" ".join(DATASETS)} (e.g. python download.py mnist)')
  downloads = _downloads(argv[1:])
  mirrors = [m.strip() for m in FLAGS.mirror or os.environ.get(fetch.MIRROR_ENV, '').split(',') if m.strip()]
  if FLAGS.from_file:
    if len(downloads) != 1 or len(downloads[0].files) != 1:
      raise UserError('--from_file takes the zip of one dataset: celebA, or lsun with one --lsun_category')
    if not os.path.isfile(FLAGS.from_file):
      raise UserError(f'--from_file {FLAGS.from_file} is not a file')
  if FLAGS.retries < 0 or not FLAGS.timeout > 0:
    raise UserError('--retries must be at least 0 and --timeout above 0')
  if mirrors:
    logging.info('fetching from %s only', ', '.join(mirrors))
  transfer = fetch.Transfer(retries=FLAGS.retries, timeout=FLAGS.timeout)
  with fetch.locked(FLAGS.data_dir):
    for download in downloads:
      result = fetch.get(download, FLAGS.data_dir, transfer, mirrors=mirrors, from_file=FLAGS.from_file,
                         keep_downloads=FLAGS.keep_downloads)
      command = ' '.join(['python main.py --train --dataset', download.folder, download.train]).strip()
      if FLAGS.data_dir != 'data':
        command += f' --data_dir {FLAGS.data_dir}'
      logging.info('%s is ready in %s; train on it with: %s', download.folder, result.folder, command)


if __name__ == '__main__':
  errors.run_program(main, interrupted='interrupted: what was received is kept in the .part files; run the same '
                     'command to resume')
