"""Images/s of the training step on 1 and 2 replicas (MirroredStrategy, --devices), and the scaling efficiency.

On a machine without GPUs the replicas are CPU devices of one process, sharing the same cores: the figure then
shows the strategy's overhead (splitting the batch, all-reducing gradients and batch-norm statistics), not a
speed-up. On N GPUs run it with --devices /gpu:0,...

$ .venv/bin/python bench/scaling.py --case mnist28-cond
$ .venv/bin/python bench/scaling.py --case rgb64 --devices /gpu:0,/gpu:1
"""

import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import runtime  # noqa: E402,F401

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

import config as config_lib  # noqa: E402
import datasets  # noqa: E402
from model import DCGAN  # noqa: E402

flags.DEFINE_enum('case', 'mnist28-cond', ['mnist28-cond', 'rgb64'], 'The model: the conditional MNIST one or the '
                  '64x64 RGB (CelebA) one.')
flags.DEFINE_list('devices', ['/cpu:0', '/cpu:1'], 'The devices of the largest run; runs use the first 1, 2, ...')
flags.DEFINE_integer('batch_size', 64, 'Global images per step (split across the replicas).')
flags.DEFINE_integer('steps', 10, 'Timed steps per run, after --warmup.')
flags.DEFINE_integer('warmup', 2, 'Untimed steps per run.')
FLAGS = flags.FLAGS

CASES = {'mnist28-cond': (28, 28, 1, 10), 'rgb64': (64, 64, 3, 0)}


def run(devices, scratch):
  height, width, channels, classes = CASES[FLAGS.case]
  cfg = config_lib.Config(dataset=FLAGS.case, output_height=height, output_width=width, c_dim=channels,
                          y_dim=classes, batch_size=FLAGS.batch_size, checkpoint_dir=scratch, device=devices[0],
                          devices=tuple(devices) if len(devices) > 1 else ())
  count = FLAGS.batch_size * (FLAGS.warmup + FLAGS.steps)
  rng = np.random.default_rng(0)
  dataset = datasets.Dataset(FLAGS.case, channels=channels, num_classes=classes,
                             images=rng.integers(0, 256, [count, height, width, channels], dtype=np.uint8),
                             labels=rng.integers(0, max(classes, 1), [count]).astype(np.int32))
  dcgan = DCGAN(cfg, dataset)
  times = []
  with dcgan.session() as sess:
    sess.run(dcgan.init)
    dcgan.start_epoch(sess, 0, 0)
    for step in range(FLAGS.warmup + FLAGS.steps):
      start = time.perf_counter()
      dcgan.train_step(sess, step)
      if step >= FLAGS.warmup:
        times.append(time.perf_counter() - start)
  step_time = statistics.median(times)
  return {'case': FLAGS.case, 'replicas': len(devices), 'devices': devices, 'batch_size': FLAGS.batch_size,
          'step_time_s': round(step_time, 4), 'images_per_s': round(FLAGS.batch_size / step_time, 1)}


def main(_):
  if FLAGS.batch_size % len(FLAGS.devices):
    sys.exit(f'--batch_size {FLAGS.batch_size} does not split across {len(FLAGS.devices)} devices')
  records = []
  with tempfile.TemporaryDirectory() as scratch:
    for count in range(1, len(FLAGS.devices) + 1):
      record = run(FLAGS.devices[:count], scratch)
      record['efficiency'] = round(record['images_per_s'] / (count * records[0]['images_per_s']), 3) if records else 1.0
      print(json.dumps(record), flush=True)
      records.append(record)
  print(f'\n{"replicas":>8} {"step (s)":>9} {"images/s":>9} {"efficiency":>10}')
  for record in records:
    print(f'{record["replicas"]:>8} {record["step_time_s"]:>9.3f} {record["images_per_s"]:>9.1f} '
          f'{record["efficiency"]:>10.2f}')


if __name__ == '__main__':
  app.run(main)
