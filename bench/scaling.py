"""Images/s of the training step on 1 and 2 replicas (MirroredStrategy, --devices) and on 2 worker processes
(MultiWorkerMirroredStrategy on loopback ports), and the scaling efficiency: images/s / (replicas x one's).

On a machine without GPUs the replicas are CPU devices of one process, and the workers processes on one machine,
all sharing the same cores: the figure then shows the strategies' overhead (splitting the batch, all-reducing
gradients and batch-norm statistics, gRPC between the workers), not a speed-up. On N GPUs run it with
--devices /gpu:0,...

$ .venv/bin/python bench/scaling.py --case mnist28-cond
$ .venv/bin/python bench/scaling.py --case rgb64 --devices /gpu:0,/gpu:1
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from training import runtime  # noqa: E402,F401

from absl import app, flags  # noqa: E402

from app import completion  # noqa: E402
from config import Config  # noqa: E402
from training import trainer  # noqa: E402
import suite  # noqa: E402  (bench/)

flags.DEFINE_enum('case', 'mnist28-cond', ['mnist28-cond', 'rgb64'], 'The model: the conditional MNIST one or the '
                  '64x64 RGB (CelebA) one.')
flags.DEFINE_list('devices', ['/cpu:0', '/cpu:1'], 'The devices of the largest run; runs use the first 1, 2, ...')
flags.DEFINE_integer('batch_size', 64, 'Global images per step (split across the replicas).')
flags.DEFINE_integer('steps', 10, 'Timed steps per run, after --warmup.')
flags.DEFINE_integer('warmup', 2, 'Untimed steps per run.')
flags.DEFINE_integer('workers', 2, 'Worker processes of the multi-worker run; 0 to skip it.')
flags.DEFINE_boolean('as_worker', False, 'Run as one worker of the multi-worker run (TF_CONFIG set by the parent).')
FLAGS = flags.FLAGS



def run(devices, scratch, multi_worker=False):
  height, width, _, _ = suite.CASES[FLAGS.case]
  dataset = suite.random_case(FLAGS.case, FLAGS.batch_size * (FLAGS.warmup + FLAGS.steps))
  cfg = completion.complete(Config(dataset=FLAGS.case, output_height=height, output_width=width,
                                   batch_size=FLAGS.batch_size, checkpoint_dir=scratch, device=devices[0],
                                   devices=tuple(devices) if len(devices) > 1 else (),
                                   multi_worker=multi_worker, conditioning='mnist',
                                   upsample='deconv'), dataset)  # (as the README's numbers)
  run_ = trainer.Trainer(cfg, dataset)
  dcgan = run_.dcgan
  times = []
  with run_.session() as sess:
    sess.run(dcgan.init)
    run_.start_epoch(sess, 0, 0)
    for step in range(FLAGS.warmup + FLAGS.steps):
      start = time.perf_counter()
      run_.train_step(sess, step)
      if step >= FLAGS.warmup:
        times.append(time.perf_counter() - start)
  step_time = statistics.median(times)
  return {'case': FLAGS.case, 'replicas': dcgan.strategy.num_replicas_in_sync if dcgan.strategy else 1,
          'setup': f'{dcgan.config.num_workers} workers' if multi_worker else ','.join(devices),
          'batch_size': FLAGS.batch_size, 'step_time_s': round(step_time, 4),
          'images_per_s': round(FLAGS.batch_size / step_time, 1)}


def run_workers(count):
  """Runs this script as `count` workers on loopback ports; returns worker 0's record."""
  ports = []
  for _ in range(count):
    with socket.socket() as sock:
      sock.bind(('127.0.0.1', 0))
      ports.append(sock.getsockname()[1])
  workers = [f'127.0.0.1:{port}' for port in ports]
  processes = []
  for index in range(count):
    env = dict(os.environ, TF_CONFIG=json.dumps({'cluster': {'worker': workers},
                                                 'task': {'type': 'worker', 'index': index}}))
    processes.append(subprocess.Popen([sys.executable, __file__, '--as_worker', '--case', FLAGS.case, '--batch_size',
                                       str(FLAGS.batch_size), '--steps', str(FLAGS.steps), '--warmup',
                                       str(FLAGS.warmup)], env=env, stdout=subprocess.PIPE, text=True))
  outputs = [process.communicate()[0] for process in processes]
  if any(process.returncode for process in processes):
    sys.exit('a worker failed')
  return json.loads(outputs[0].strip().splitlines()[-1])


def main(_):
  if FLAGS.as_worker:
    with tempfile.TemporaryDirectory() as scratch:
      print(json.dumps(run(['/cpu:0'], scratch, multi_worker=True)), flush=True)
    return
  if FLAGS.batch_size % len(FLAGS.devices):
    sys.exit(f'--batch_size {FLAGS.batch_size} does not split across {len(FLAGS.devices)} devices')
  records = []
  with tempfile.TemporaryDirectory() as scratch:
    for count in range(1, len(FLAGS.devices) + 1):
      record = run(FLAGS.devices[:count], scratch)
      record['efficiency'] = round(record['images_per_s'] / (count * records[0]['images_per_s']), 3) if records else 1.0
      print(json.dumps(record), flush=True)
      records.append(record)
  if FLAGS.workers:
    record = run_workers(FLAGS.workers)
    record['efficiency'] = round(record['images_per_s'] / (FLAGS.workers * records[0]['images_per_s']), 3)
    print(json.dumps(record), flush=True)
    records.append(record)
  print(f'\n{"setup":<16} {"replicas":>8} {"step (s)":>9} {"images/s":>9} {"efficiency":>10}')
  for record in records:
    print(f'{record["setup"]:<16} {record["replicas"]:>8} {record["step_time_s"]:>9.3f} '
          f'{record["images_per_s"]:>9.1f} {record["efficiency"]:>10.2f}')


if __name__ == '__main__':
  app.run(main)
