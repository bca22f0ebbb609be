"""How long a new user waits for the first training step on an LSUN-sized LMDB, and what it grows with.

Writes synthetic LMDBs of LSUN-sized (256x341) WebP images under 40-character hex keys (bench/lsun_like.py) at
each of --counts, then times, in a fresh run folder each time, the whole command a user types first:

  main.py --train --dataset <lmdb> --crop --train_size 64 --batch_size 64 --epoch 1      (one step, one save)

and, on request, the full pass (main.py --check_data). --code names more checkouts of the program to time the
same way (e.g. a worktree of an older commit): each is run with this Python. The LMDBs sit in the page cache, so
the disk is not in these numbers. Never run by the tests.

$ .venv/bin/python bench/first_step.py                                     # 5,000 and 20,000 entries
$ git worktree add /tmp/before c603d66 && .venv/bin/python bench/first_step.py --code /tmp/before --check_data
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from absl import app, flags  # noqa: E402

import lsun_like  # noqa: E402  (bench/)
import runs  # noqa: E402  (bench/)
import suite  # noqa: E402  (bench/)

flags.DEFINE_list('counts', ['5000', '20000'], 'Entries of each synthetic LMDB.')
flags.DEFINE_list('code', [], 'More checkouts of the program (folders holding main.py) to time beside this one.')
flags.DEFINE_boolean('check_data', False, 'Also time main.py --check_data, the full pass over every entry.')
flags.DEFINE_string('dir', None, 'Work folder (default a temporary one, deleted at the end).')
FLAGS = flags.FLAGS

HEIGHT, WIDTH = 256, 341  # LSUN's images: the short side 256


def timed(code, work, data_dir, name, *args):
  """Seconds main.py of the checkout `code` takes for `args` on the LMDB `name`, in a new run folder."""
  run_dir = tempfile.mkdtemp(prefix='run_', dir=work)
  start = time.perf_counter()
  result = subprocess.run([sys.executable, os.path.join(code, 'main.py'), *args, '--dataset', name, '--data_dir',
                           data_dir], cwd=run_dir, capture_output=True, text=True)
  seconds = time.perf_counter() - start
  if result.returncode:
    sys.exit(f'main.py {" ".join(args)} in {code} failed:\n{result.stderr[-2000:]}')
  shutil.rmtree(run_dir, ignore_errors=True)
  return seconds


def main(argv):
  del argv
  work = FLAGS.dir or tempfile.mkdtemp(prefix='first_step_')
  codes = [runs.ROOT, *(os.path.abspath(c) for c in FLAGS.code)]
  try:
    print(json.dumps({**suite.machine(), 'cpus': os.cpu_count()}), flush=True)
    records = []
    for count in map(int, FLAGS.counts):
      data_dir = os.path.join(work, f'data_{count}')
      name = 'lsunlike'
      folder = os.path.join(data_dir, name)
      if not os.path.exists(os.path.join(folder, 'data.mdb')):
        os.makedirs(folder, exist_ok=True)
        start = time.perf_counter()
        size = lsun_like.write_lmdb(folder, count, HEIGHT, WIDTH)
        print(json.dumps({'wrote': count, 'image': f'{HEIGHT}x{WIDTH} WebP', 'data_mdb_bytes': size,
                          'seconds': round(time.perf_counter() - start, 1)}), flush=True)
      for code in codes:
        record = {'code': code, 'entries': count, 'first_step_s': round(timed(
            code, work, data_dir, name, '--train', '--crop', '--train_size', '64', '--batch_size', '64', '--epoch',
            '1'), 1)}
        if FLAGS.check_data:
          record['check_data_s'] = round(timed(code, work, data_dir, name, '--check_data', '--crop'), 1)
        print(json.dumps(record), flush=True)
        records.append(record)
    print()
    print('| program | entries | to the first step (one step, one save) |' +
          (' --check_data (the full pass) |' if FLAGS.check_data else ''))
    print('| --- | --- | --- |' + (' --- |' if FLAGS.check_data else ''))
    for r in records:
      print(f'| {r["code"]} | {r["entries"]:,} | {r["first_step_s"]} s |' +
            (f' {r["check_data_s"]} s |' if FLAGS.check_data else ''))
  finally:
    if not FLAGS.dir:
      shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
  app.run(main)
