"""Checks that the quality metrics rank what they should, on real MNIST, outside the test suite.

1. Real digits against real digits, lightly blurred digits, heavily blurred digits and uniform noise: SWD, the
   classifier's FD, its label accuracy and class entropy, for each.
2. With --run_dir: a DCGAN trained on MNIST for --steps steps (trained here first unless the folder already holds
   its checkpoints), evaluated by `main.py --evaluate` at each of --steps, as a user would.

Prints one JSON line per measurement, then a table.

$ python experiments/quality_metrics/quality.py --mnist ../shared/data --num_samples 5000
$ python experiments/quality_metrics/quality.py --mnist ../shared/data --run_dir /tmp/q --steps 100,1500
"""

import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [ROOT, os.path.join(ROOT, 'bench')]  # the project; bench/'s runs.py, suite.py and torch_twin.py

from training import runtime  # noqa: E402,F401

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from scipy import ndimage  # noqa: E402

import datasets  # noqa: E402
from evaluation import classifier  # noqa: E402
from evaluation import feature_metrics  # noqa: E402
from evaluation import metrics  # noqa: E402
from training import trainer  # noqa: E402
import runs  # noqa: E402  (bench/)

flags.DEFINE_string('mnist', os.path.join(ROOT, '..', 'shared', 'data'), 'Folder that holds mnist/ (IDX files).')
flags.DEFINE_integer('num_samples', 5000, 'Images per set in part 1 (two disjoint real sets are needed).')
flags.DEFINE_string('classifier_dir', None, 'Where to keep the digit classifier; default a temporary folder.')
flags.DEFINE_string('run_dir', None, 'Part 2: the folder of a training run (made and trained if empty).')
flags.DEFINE_list('steps', ['100', '1500'], 'Part 2: the checkpoints to evaluate; the last is the training length.')
flags.DEFINE_integer('eval_samples', 10000, 'Part 2: --num_samples of main.py --evaluate.')
FLAGS = flags.FLAGS

TRAIN_SIZE = 19200  # 300 steps of 64 per epoch, so that 1500 steps are 5 whole epochs


def _blur(images, sigma):
  blurred = ndimage.gaussian_filter(images.astype(np.float32), (0, sigma, sigma, 0))
  return np.clip(np.round(blurred), 0, 255).astype(np.uint8)


def rank_damaged_digits(classifier_dir):
  images, labels = datasets.load_idx_folder(os.path.join(FLAGS.mnist, 'mnist'))
  images = images[..., np.newaxis]
  order = np.random.default_rng(0).permutation(len(images))
  n = FLAGS.num_samples
  a, b, b_labels = images[order[:n]], images[order[n:2 * n]], labels[order[n:2 * n]]
  digit_classifier, accuracy = classifier.load_or_train(images, labels, 10, classifier_dir,
                                                        trainer.session_config('/cpu:0'))
  print(json.dumps({'classifier_held_out_accuracy': accuracy}))
  _, reference_features = digit_classifier.predict(a)
  sets = {'real digits': b, 'blurred, sigma 0.7': _blur(b, 0.7), 'blurred, sigma 2': _blur(b, 2.0),
          'uniform noise': np.random.default_rng(1).integers(0, 256, b.shape, dtype=np.uint8)}
  rows = []
  for name, images_b in sets.items():
    start = time.monotonic()
    swd = metrics.swd(a, images_b)['mean']
    classes, features = digit_classifier.predict(images_b)
    row = {'set': name, 'swd': swd, 'fd': feature_metrics.frechet_distance_of(reference_features, features),
           'label_accuracy': float(np.mean(classes == b_labels)), 'class_entropy': metrics.class_entropy(classes, 10),
           'seconds': time.monotonic() - start}
    print(json.dumps(row))
    rows.append(row)
  digit_classifier.close()
  return rows


def rank_training_steps(run_dir):
  steps = [int(step) for step in FLAGS.steps]
  common = ['--dataset', 'mnist', '--data_dir', os.path.abspath(FLAGS.mnist), '--conditioning', 'mnist']  # as measured
  epochs = -(-steps[-1] // (TRAIN_SIZE // 64))  # (about 15 minutes of training on 2 cores)
  runs.train_once(common, run_dir, 'mnist_28_28', steps[-1], '--train_size', str(TRAIN_SIZE), '--epoch', str(epochs),
                  '--max_to_keep', str(len(steps) + 50), ckpt_freq=np.gcd.reduce(steps))
  rows = []
  for step in steps:
    out = runs.main_py('--evaluate', *common, '--checkpoint', str(step), '--num_samples', str(FLAGS.eval_samples),
                       cwd=run_dir).stdout
    row = {'set': f'DCGAN at step {step}', **runs.eval_metrics(run_dir, 'mnist_28_28', step, FLAGS.eval_samples)}
    print(json.dumps(row))
    print(out, file=sys.stderr)
    rows.append(row)
  return rows


def main(_):
  with tempfile.TemporaryDirectory() as scratch:
    rows = rank_damaged_digits(FLAGS.classifier_dir or scratch)
  if FLAGS.run_dir:
    rows += rank_training_steps(FLAGS.run_dir)
  print(f'\n{"set":<22} {"SWD x1e3":>9} {"FD":>9} {"label acc":>9} {"entropy":>8}')
  for row in rows:
    print(f'{row["set"]:<22} {row["swd"]:>9.2f} {row["fd"]:>9.2f} {row.get("label_accuracy", float("nan")):>9.3f} '
          f'{row["class_entropy"]:>8.3f}')


if __name__ == '__main__':
  app.run(main)
