"""Which conditioning should a conditional model use? The three of --conditioning on real MNIST, as a user would.

For each --conditioning and seed: main.py --train on the real MNIST digits of ../shared/data for 1,500 steps
(19,200 digits, 5 epochs at batch 64, at --precision auto), then main.py --evaluate of step 1,500 at float32 with
10,000 samples: the digit classifier's label accuracy (does G draw the digit it was asked for?) and Frechet
distance (fd: are the digits like real ones?). Runs already in --run_dir are reused. Prints one JSON line per run,
then a table with each conditioning's mean. Nothing here is run by the tests.

$ python experiments/conditioning/conditioning.py --run_dir /tmp/conditioning  # 6 runs, about an hour on 2 cores
"""

import json
import os
import sys
import statistics

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [ROOT, os.path.join(ROOT, 'bench')]  # the project; bench/'s runs.py, suite.py and torch_twin.py

import runs  # noqa: E402  (bench/)


flags.DEFINE_string('run_dir', None, 'Folder for the runs; runs already there are reused.', required=True)
flags.DEFINE_string('mnist', os.path.join(ROOT, '..', 'shared', 'data'), 'Folder that holds mnist/ (IDX files).')
flags.DEFINE_list('conditionings', ['mnist', 'concat', 'projection'], 'main.py --conditioning values to compare.')
flags.DEFINE_list('seeds', ['1', '2'], 'Seeds, one run each per conditioning.')
flags.DEFINE_integer('steps', 1500, 'Training steps: at most 300, or a multiple of 300.')
flags.DEFINE_integer('samples', 10000, '--num_samples of --evaluate.')
flags.DEFINE_string('precision', 'auto', 'main.py --precision of training (evaluation is always float32).')
FLAGS = flags.FLAGS

TRAIN_SIZE = 19200  # the most digits an epoch uses: 300 steps of 64
KEY = 'mnist_28_28'


def run(conditioning, seed):
  """Trains (unless done) and evaluates one run: its row."""
  run_dir = os.path.join(FLAGS.run_dir, f'{conditioning}_seed{seed}')
  common = ['--dataset', 'mnist', '--data_dir', os.path.abspath(FLAGS.mnist)]
  timing = os.path.join(run_dir, 'train_seconds.json')
  train_size = min(TRAIN_SIZE, FLAGS.steps * 64)  # whole epochs of --steps in all (5 of 300 steps for 1,500)
  seconds = runs.train_once(common, run_dir, KEY, FLAGS.steps, '--conditioning', conditioning, '--seed', seed,
                            '--train_size', str(train_size), '--epoch', str(FLAGS.steps * 64 // train_size),
                            '--precision', FLAGS.precision)
  if seconds is not None:
    with open(timing, 'w') as f:
      json.dump({'seconds': seconds}, f)
  metrics = runs.evaluate(common, FLAGS.steps, FLAGS.samples, KEY, run_dir, '--precision', 'float32')
  with open(timing) as f:
    seconds = json.load(f)['seconds']
  row = {'conditioning': conditioning, 'seed': int(seed), 'train_seconds': round(seconds, 1),
         'label_accuracy': metrics['label_accuracy'], 'fd': metrics['fd']}
  print(json.dumps(row), flush=True)
  return row


def main(_):
  rows = [run(conditioning, seed) for seed in FLAGS.seeds for conditioning in FLAGS.conditionings]
  print(f'\n| --conditioning | {" | ".join(f"accuracy, seed {s}" for s in FLAGS.seeds)} | '
        f'{" | ".join(f"fd, seed {s}" for s in FLAGS.seeds)} | mean accuracy | mean fd | training (s) |')
  print('|' + ' --- |' * (3 + 2 * len(FLAGS.seeds) + 1))
  for conditioning in FLAGS.conditionings:
    mine = [row for row in rows if row['conditioning'] == conditioning]
    accuracy, fd = [row['label_accuracy'] for row in mine], [row['fd'] for row in mine]
    print(f'| {conditioning} | ' + ' | '.join(f'{a:.4f}' for a in accuracy) + ' | ' +
          ' | '.join(f'{d:.2f}' for d in fd) + f' | {statistics.mean(accuracy):.4f} | {statistics.mean(fd):.2f} | ' +
          f'{statistics.mean(row["train_seconds"] for row in mine):.0f} |')


if __name__ == '__main__':
  app.run(main)
