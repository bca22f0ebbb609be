"""How long the full pass over an LSUN-sized LMDB takes (main.py --check_data): the key listing, the header pass and
the decode check. A training run reads only the key listing and a sample (bench/first_step.py).

Writes a synthetic LMDB of --count small WebP images (and --big_count at LSUN's size, 256 x 341), then times what
main.py does the first time it opens one (datasets.LmdbSource and datasets.check_entries), and the second time
(everything remembered beside the checkpoint). Rates are extrapolated, linearly, to LSUN bedroom's 3,033,042
entries. Never run by the tests.

$ .venv/bin/python bench/lmdb_scan.py                       # 100,000 + 2,000 images, a few minutes
$ .venv/bin/python bench/lmdb_scan.py --count 20000 --big_count 500
"""

import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from training import runtime  # noqa: E402,F401  (before tensorflow)

from absl import app, flags, logging  # noqa: E402

from config import Config  # noqa: E402
import datasets  # noqa: E402
from lsun_like import write_lmdb  # noqa: E402  (bench/)
import suite  # noqa: E402  (bench/)

BEDROOM_ENTRIES = 3033042

flags.DEFINE_integer('count', 100000, 'Small images (64x64 WebP) in the synthetic LMDB.')
flags.DEFINE_integer('big_count', 2000, 'LSUN-sized images (256x341 WebP) in a second LMDB, for the decode rate.')
flags.DEFINE_string('dir', None, 'Work folder (default a temporary one, deleted at the end).')
FLAGS = flags.FLAGS


def measure(folder, name, count):
  """Times what main.py does on the first open of an LMDB (keys, then check_entries: headers, then decoding every
  image) and on the second (all of it read back from beside the checkpoint)."""
  cache = os.path.join(os.path.dirname(folder), f'ckpt_{name}')
  cfg = Config(dataset=os.path.basename(folder), data_dir=os.path.dirname(folder))
  seconds = {}
  start = time.perf_counter()
  source = datasets.LmdbSource.open(cfg, cache)
  seconds['key_listing'] = time.perf_counter() - start
  entries = datasets.entries
  undecodable = entries._undecodable

  def timed_decode(*args):
    begin = time.perf_counter()
    try:
      return undecodable(*args)
    finally:
      seconds['decode_check'] = time.perf_counter() - begin

  entries._undecodable = timed_decode
  start = time.perf_counter()
  scan = datasets.check_entries(source, cache)
  seconds['header_pass'] = time.perf_counter() - start - seconds['decode_check']
  entries._undecodable = undecodable
  assert not scan.bad, scan.bad
  start = time.perf_counter()
  again = datasets.open_dataset(cfg, cache_dir=cache)
  seconds['second_open'] = time.perf_counter() - start
  assert len(again) == count
  record = {'lmdb': name, 'entries': count, **{f'{part}_s': round(s, 3) for part, s in seconds.items()}}
  for part in ('key_listing', 'header_pass', 'decode_check'):
    rate = count / max(seconds[part], 1e-9)
    record[f'{part}_per_s'] = round(rate)
    record[f'{part}_bedroom_minutes'] = round(BEDROOM_ENTRIES / rate / 60, 1)
  print(json.dumps(record), flush=True)
  return record


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  work = FLAGS.dir or tempfile.mkdtemp(prefix='lmdb_scan_')
  try:
    print(json.dumps({**suite.machine(), 'cpus': os.cpu_count()}), flush=True)
    records = []
    for name, count, height, width in (('small', FLAGS.count, 64, 64), ('lsun-sized', FLAGS.big_count, 256, 341)):
      folder = os.path.join(work, f'data_{name}', 'lmdb')
      os.makedirs(folder, exist_ok=True)
      start = time.perf_counter()
      size = write_lmdb(folder, count, height, width)
      print(json.dumps({'wrote': name, 'entries': count, 'image': f'{height}x{width} WebP',
                        'data_mdb_bytes': size, 'seconds': round(time.perf_counter() - start, 1)}), flush=True)
      records.append(measure(folder, name, count))
    print()
    print('| LMDB | entries | key listing | header pass | decode check | second open | bedroom (3,033,042): keys / '
          'headers / decode |')
    print('| --- | --- | --- | --- | --- | --- | --- |')
    for r in records:
      print(f'| {r["lmdb"]} | {r["entries"]:,} | {r["key_listing_per_s"]:,}/s | {r["header_pass_per_s"]:,}/s | '
            f'{r["decode_check_per_s"]:,}/s | {r["second_open_s"]} s | {r["key_listing_bedroom_minutes"]} / '
            f'{r["header_pass_bedroom_minutes"]} / {r["decode_check_bedroom_minutes"]} min |')
  finally:
    if not FLAGS.dir:
      shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
  app.run(main)
