"""Time to quality: the wall time ours (main.py with its default flags, --precision auto) and the PyTorch twin
(bench/torch_twin.py: the 2015 recipe as a PyTorch user writes it) take to reach the SWD the twin reaches at
--steps (936) on the 5,000 anime faces at 64x64, one run each.

Both are scored every epoch (78 steps) with the issue's yardstick: metrics.swd of 1,000 samples against the last
1,000 faces (anime_faces.py). The twin is scored in its process with the clock stopped; its time counts its
training steps only, not loading the faces. Ours checkpoints every epoch and each checkpoint is scored after the
run (the averaged G, main.py's sampler); its time is the checkpoint file's time since main.py started, so it also
counts starting up, building the graph, reading the data, sample grids and writing checkpoints.
PyTorch is a benchmark-only dependency: .venv/bin/pip install -r bench/requirements.txt

$ python experiments/small_data/time_to_quality.py --run_dir /tmp/time_to_quality
"""

import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [ROOT, os.path.join(ROOT, 'bench')]  # the project; bench/'s runs.py, suite.py and torch_twin.py

from training import runtime  # noqa: E402,F401  (first: how TensorFlow loads)

import torch  # noqa: E402
from absl import app, flags  # noqa: E402

from evaluation import metrics  # noqa: E402
from training import checkpoints  # noqa: E402
import anime_faces  # noqa: E402  (this folder)
import runs  # noqa: E402  (bench/)
import torch_twin  # noqa: E402  (bench/)

FLAGS = flags.FLAGS
flags.DEFINE_string('run_dir', '/tmp/time_to_quality', 'Folder of our run and of results.json (a run there is '
                    'reused).')
flags.DEFINE_string('data_dir', os.path.join(runs.ROOT, '..', 'shared', 'data'), 'Holds anime-faces/.')
flags.DEFINE_integer('steps', 936, 'Steps of the twin whose SWD is the bar; ours trains as many.')
flags.DEFINE_integer('every', anime_faces.STEPS_PER_EPOCH, 'Score every this many steps (default an epoch of the '
                     'faces at batch 64).')
flags.DEFINE_integer('seed', 1, '--seed of our run and the twin\'s torch seed.')
flags.DEFINE_list('extra', [], 'Flags added to our run (e.g. --augment=none).')


def twin(faces, swd_real):
  """[(step, seconds, swd)] of the twin."""
  torch.set_num_threads(os.cpu_count())
  score = lambda step, fake: metrics.swd(swd_real, fake, 0)['mean']
  return torch_twin.train_on(faces, FLAGS.steps, FLAGS.every, score, seed=FLAGS.seed)


def ours(data_dir, swd_real):
  """[(step, seconds since main.py started, swd)] of ours."""
  run_dir = os.path.join(FLAGS.run_dir, 'ours')
  ckpt = os.path.join(run_dir, 'checkpoint', f'{anime_faces.DATASET}_64_64')
  start = time.time()
  seconds = runs.train_once(['--dataset', anime_faces.DATASET, '--data_dir', data_dir, '--output_height', '64',
                             '--seed', str(FLAGS.seed)], run_dir, f'{anime_faces.DATASET}_64_64', FLAGS.steps,
                            *FLAGS.extra, '--epoch', str(-(-FLAGS.steps // anime_faces.STEPS_PER_EPOCH)),
                            '--max_to_keep', '100', ckpt_freq=FLAGS.every)
  if seconds is None:  # a run of an earlier call: its start is the time its config was written
    start = os.path.getmtime(os.path.join(ckpt, 'config.json'))
  results = []
  for step in range(FLAGS.every, FLAGS.steps + 1, FLAGS.every):
    elapsed = os.path.getmtime(checkpoints.path_of(ckpt, step) + '.index') - start
    results.append((step, elapsed, anime_faces.yardstick_swd(run_dir, step, swd_real)))
  return results


def first_reaching(results, bar):
  """(step, seconds) of the first result whose swd is at most `bar`, or None."""
  return next(((step, seconds) for step, seconds, swd in results if swd <= bar), None)


def main(argv):
  del argv
  os.makedirs(FLAGS.run_dir, exist_ok=True)
  data_dir = os.path.abspath(FLAGS.data_dir)
  faces, swd_real = anime_faces.real_faces(data_dir)
  results = {'twin': twin(faces, swd_real), 'ours': ours(data_dir, swd_real)}
  bar = results['twin'][-1][2]
  print('| step | twin s | twin swd | ours s | ours swd |\n| --- | --- | --- | --- | --- |')
  for (step, twin_s, twin_swd), (_, ours_s, ours_swd) in zip(results['twin'], results['ours']):
    print(f'| {step} | {twin_s:.0f} | {twin_swd:.1f} | {ours_s:.0f} | {ours_swd:.1f} |')
  reached = {name: first_reaching(rows, bar) for name, rows in results.items()}
  for name, hit in reached.items():
    said = f'step {hit[0]} after {hit[1]:.0f} s' if hit else f'not within {FLAGS.steps} steps'
    print(f'{name} reaches the twin\'s swd at step {FLAGS.steps} ({bar:.1f}): {said}')
  with open(os.path.join(FLAGS.run_dir, 'results.json'), 'w') as f:
    json.dump({'bar': bar, 'reached': reached, **results, 'torch': torch.__version__}, f, indent=1)


if __name__ == '__main__':
  app.run(main)
