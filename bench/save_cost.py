"""What a durable checkpoint costs: checkpoints.save (files, folder and state file fsync'ed in order) against the
Saver's own save (the same files, left in the page cache), alternating in one run, for the two cases of
bench/throughput.py. A save here is what training does every --ckpt_freq steps (the whole training graph's
variables: weights, Adam's slots, batch-norm statistics, G's moving averages).

Prints one JSON line per case, then a table: median milliseconds per save, each way, and the checkpoint's size.
The disk under the temporary folder sets these numbers; run it where checkpoints go (--dir).

$ .venv/bin/python bench/save_cost.py
$ .venv/bin/python bench/save_cost.py --dir checkpoint --saves 40
"""

import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from training import runtime  # noqa: E402,F401  (before tensorflow)

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from app import completion  # noqa: E402
from config import Config  # noqa: E402
from training import checkpoints  # noqa: E402
from training import trainer  # noqa: E402
import suite  # noqa: E402  (bench/)

flags.DEFINE_string('dir', None, 'Folder to save in (default: a new temporary folder).')
flags.DEFINE_integer('saves', 20, 'Saves each way per case, alternating.')
FLAGS = flags.FLAGS



def _case(name, scratch):
  height, width, _, _ = suite.CASES[name]
  data = suite.random_case(name, 256)
  cfg = completion.complete(Config(dataset=name, output_height=height, output_width=width,
                                   checkpoint_dir=scratch, max_to_keep=2, conditioning='mnist',
                                   upsample='deconv'), data)  # (as the README's numbers)
  return trainer.Trainer(cfg, data)


def _plain_save(saver, sess, directory, step):
  saver.save(sess, os.path.join(directory, checkpoints.PREFIX), global_step=step, write_meta_graph=False)


def measure(name, scratch):
  run = _case(name, scratch)
  plain_dir, durable_dir = os.path.join(scratch, name, 'plain'), os.path.join(scratch, name, 'durable')
  os.makedirs(plain_dir)
  times = {'plain': [], 'durable': []}
  with run.session() as sess:
    sess.run(run.dcgan.init)
    for step in range(1, FLAGS.saves + 1):
      for way in ('plain', 'durable') if step % 2 else ('durable', 'plain'):
        start = time.perf_counter()
        if way == 'plain':
          _plain_save(run.dcgan.saving.latest, sess, plain_dir, step)
        else:
          checkpoints.save(run.dcgan.saving.latest, sess, durable_dir, step, None)
        times[way].append(time.perf_counter() - start)
  size = sum(os.path.getsize(p) for p in checkpoints.files_of(checkpoints.path_of(durable_dir, FLAGS.saves)))
  record = {'case': name, 'checkpoint_bytes': size, 'saves': FLAGS.saves,
            **{f'{way}_ms': 1000 * statistics.median(values) for way, values in times.items()}}
  record['extra_ms'] = record['durable_ms'] - record['plain_ms']
  print(json.dumps(record), flush=True)
  return record


def main(_):
  with tempfile.TemporaryDirectory(dir=FLAGS.dir) as scratch:
    rows = [measure(name, scratch) for name in suite.CASES]
  folder = os.path.realpath(FLAGS.dir or tempfile.gettempdir())
  print(f'\n{suite.machine_line()}; tensorflow {tf.__version__}; folder {folder}')
  print('| case | checkpoint | plain save (ms) | durable save (ms) | cost of the fsyncs (ms) |')
  print('| --- | --- | --- | --- | --- |')
  for r in rows:
    print(f'| {r["case"]} | {r["checkpoint_bytes"] / 2**20:.1f} MiB | {r["plain_ms"]:.1f} | {r["durable_ms"]:.1f} | '
          f'{r["extra_ms"]:.1f} |')


if __name__ == '__main__':
  app.run(main)
