"""Training step time and images/s of the DCGAN at batch 64, one JSON line per case, then a table.

A step is what `main.py --train` does per batch: one D update, then --g_steps (2) G updates. Each case builds the
real training graph on random in-memory images of its size (the input pipeline is measured apart, elsewhere),
runs `--warmup` steps, then reports the median of `--steps` timed steps.

$ .venv/bin/python bench/throughput.py                  # both cases
$ .venv/bin/python bench/throughput.py --cases mnist28-cond --steps 20
"""

import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import config as config_lib  # noqa: E402
import datasets  # noqa: E402
from model import DCGAN  # noqa: E402

flags.DEFINE_list('cases', ['mnist28-cond', 'rgb64'], 'Cases to run: mnist28-cond, rgb64.')
flags.DEFINE_integer('steps', 10, 'Timed steps per case; the median is reported.')
flags.DEFINE_integer('warmup', 2, 'Untimed steps per case before timing.')
flags.DEFINE_integer('batch_size', 64, 'Images per step.')
FLAGS = flags.FLAGS

# name: (height, width, channels, label classes)
CASES = {'mnist28-cond': (28, 28, 1, 10), 'rgb64': (64, 64, 3, 0)}


def run_case(name, scratch):
  height, width, channels, classes = CASES[name]
  count = FLAGS.batch_size * (FLAGS.warmup + FLAGS.steps)
  rng = np.random.default_rng(0)
  dataset = datasets.Dataset(name, channels=channels, num_classes=classes,
                             images=rng.integers(0, 256, [count, height, width, channels], dtype=np.uint8),
                             labels=rng.integers(0, max(classes, 1), [count]).astype(np.int32))
  cfg = dataclasses.replace(config_lib.Config(), dataset=name, output_height=height, output_width=width,
                            c_dim=channels, y_dim=classes, batch_size=FLAGS.batch_size, checkpoint_dir=scratch)
  dcgan = DCGAN(cfg, dataset)
  times = []
  with dcgan.session() as sess:
    sess.run(dcgan.init)
    dcgan.start_epoch(sess, 0, 0)
    for step in range(FLAGS.warmup + FLAGS.steps):
      start = time.perf_counter()
      dcgan.train_step(sess, step)
      times.append(time.perf_counter() - start)
  step_time = statistics.median(times[FLAGS.warmup:])
  return {'case': name, 'batch_size': FLAGS.batch_size, 'g_steps': cfg.g_steps, 'steps': FLAGS.steps,
          'step_time_s': round(step_time, 4), 'images_per_s': round(FLAGS.batch_size / step_time, 1),
          'tensorflow': tf.__version__, 'cpus': os.cpu_count(), 'machine': platform.machine()}


def main(argv):
  del argv
  unknown = set(FLAGS.cases) - set(CASES)
  if unknown:
    raise app.UsageError(f'unknown cases {sorted(unknown)}; choose from {sorted(CASES)}')
  results = []
  with tempfile.TemporaryDirectory() as scratch:
    for name in FLAGS.cases:
      results.append(run_case(name, scratch))
      print(json.dumps(results[-1]), flush=True)
  print(f'\n| case | batch | step time (s) | images/s |\n| --- | --- | --- | --- |')
  for r in results:
    print(f"| {r['case']} | {r['batch_size']} | {r['step_time_s']:.3f} | {r['images_per_s']:.1f} |")


if __name__ == '__main__':
  app.run(main)
