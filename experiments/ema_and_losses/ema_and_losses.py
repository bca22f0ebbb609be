"""Does sampling from the moving average of G's weights help, and how does the hinge loss compare with the classic?

Part 1 (--ema): trains the conditional DCGAN on the real MNIST digits of ../shared/data for 1,500 steps, once per
seed, and scores the checkpoint with main.py --evaluate (10,000 samples) twice: from the moving average of G's
weights (the default) and from G's own weights (--ema 0). Training does not depend on --ema (the average only
watches), so the two scores of one run differ by the sampling alone.
Part 2 (--losses): trains the 64x64 DCGAN on the 5,000 anime faces of ../shared/data, once per loss, for the same
number of steps, and scores each with --evaluate (SWD; all 5,000 images).
Everything runs through main.py, as a user would; nothing here is timed or run by the tests.

$ python experiments/ema_and_losses/ema_and_losses.py --run_dir /tmp/gan_choices  # about an hour on 2 cores
$ python experiments/ema_and_losses/ema_and_losses.py --run_dir /tmp/gan_choices --nolosses  # part 1 only
"""

import json
import os
import sys

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [ROOT, os.path.join(ROOT, 'bench')]  # the project; bench/'s runs.py, suite.py and torch_twin.py

import runs  # noqa: E402  (bench/)

SHARED = os.path.join(ROOT, '..', 'shared', 'data')

flags.DEFINE_string('run_dir', None, 'Folder for the runs; runs already there are reused.', required=True)
flags.DEFINE_boolean('ema', True, 'Part 1: --ema against G\'s own weights on MNIST.')
flags.DEFINE_list('seeds', ['1', '2'], 'Part 1: the seeds, one run each.')
flags.DEFINE_integer('mnist_steps', 1500, 'Part 1: training steps.')
flags.DEFINE_integer('mnist_samples', 10000, 'Part 1: --num_samples of --evaluate.')
flags.DEFINE_boolean('losses', True, 'Part 2: the losses on the anime faces at 64x64.')
flags.DEFINE_list('loss_names', ['non_saturating', 'hinge'], 'Part 2: the losses, one run each.')
flags.DEFINE_integer('face_epochs', 8, 'Part 2: epochs of the 5,000 faces (78 steps each at batch 64).')
FLAGS = flags.FLAGS


def ema_rows():
  mnist = os.path.abspath(os.path.join(SHARED, 'mnist'))
  common = ['--dataset', 'mnist', '--data_dir', os.path.dirname(mnist), '--conditioning', 'mnist']  # as measured
  train_size = min(19200, FLAGS.mnist_steps * 64)  # 300 steps an epoch at batch 64, 5 epochs for 1,500 steps
  rows = []
  for seed in FLAGS.seeds:
    run_dir = os.path.join(FLAGS.run_dir, f'mnist_seed{seed}')
    runs.train_once(common, run_dir, 'mnist_28_28', FLAGS.mnist_steps, '--seed', seed, '--train_size',
                    str(train_size), '--epoch', str(FLAGS.mnist_steps * 64 // train_size))
    for sampled, extra in (('moving average (--ema 0.999)', ()), ("G's own weights (--ema 0)", ('--ema', '0'))):
      metrics = runs.evaluate(common, FLAGS.mnist_steps, FLAGS.mnist_samples, 'mnist_28_28', run_dir, *extra)
      row = {'part': 'ema', 'seed': int(seed), 'sampled': sampled, **metrics}
      print(json.dumps(row), flush=True)
      rows.append(row)
  return rows


def loss_rows():
  faces = os.path.abspath(os.path.join(SHARED, 'anime-faces'))
  common = ['--dataset', 'anime-faces', '--data_dir', os.path.dirname(faces), '--crop', '--cache']
  steps = FLAGS.face_epochs * (5000 // 64)
  rows = []
  for loss in FLAGS.loss_names:
    run_dir = os.path.join(FLAGS.run_dir, f'faces_{loss}')
    runs.train_once(common, run_dir, 'anime-faces_64_64', steps, '--loss', loss, '--epoch',
                    str(FLAGS.face_epochs), '--seed', '1')
    metrics = runs.evaluate(common, steps, 5000, 'anime-faces_64_64', run_dir)
    row = {'part': 'losses', 'loss': loss, 'steps': steps, **metrics}
    print(json.dumps(row), flush=True)
    rows.append(row)
  return rows


def main(_):
  rows = (ema_rows() if FLAGS.ema else []) + (loss_rows() if FLAGS.losses else [])
  print()
  for row in rows:
    if row['part'] == 'ema':
      print(f'| {row["seed"]} | {row["sampled"]} | {row["fd"]:.2f} | {row["label_accuracy"]:.4f} | '
            f'{row["swd"]:.2f} |')
    else:
      print(f'| {row["loss"]} | {row["steps"]} | {row["swd"]:.2f} | ' +
            ' | '.join(f'{row[k]:.2f}' for k in sorted(row) if k.startswith('swd_') and k != 'swd_real') + ' |')


if __name__ == '__main__':
  app.run(main)
