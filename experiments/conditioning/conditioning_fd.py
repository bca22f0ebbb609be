"""Why the projection model's fd on MNIST is about 3x the classic MNIST model's: the fd of each run of
conditioning.py split into its parts, in the digit classifier's features that --evaluate uses.

For each run's checkpoint (10,000 samples of the averaged G at float32, z and labels drawn as --evaluate draws them,
against the same 10,000 real digits):
- the classifier's accuracy on held-out real digits; label accuracy, precision and recall as --evaluate wrote
  them (the fd below is --evaluate's, checked);
- fd = mean term (the squared distance of the feature means) + covariance term (the rest);
- spread: the trace of the generated features' covariance over the real ones' (under 1: less variety overall);
- within: the same per class (generated digits by the label asked for, real ones by their own label), averaged over
  the classes: the variety inside a class, which a conditional G can lose while drawing every class;
- between: the spread of the class means over the real ones' (over 1: the classes lie further apart than real
  digits' do);
- fd per class: the fd of each class's generated digits against its real ones, averaged over the classes;
- ink: each digit's mean pixel value over the real ones' (stroke width and size), and the spread of ink within
  a class over the real one's.
Prints a Markdown table; nothing here is run by the tests.

$ python experiments/conditioning/conditioning.py --run_dir /tmp/conditioning --conditionings mnist,projection --seeds 1
$ python experiments/conditioning/conditioning_fd.py --run_dir /tmp/conditioning
"""

import glob
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [ROOT, os.path.join(ROOT, 'bench')]  # the project; bench/'s runs.py, suite.py and torch_twin.py

from training import runtime  # noqa: E402,F401  (first: how TensorFlow loads)

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from app import modes  # noqa: E402
from config import Config  # noqa: E402
import datasets  # noqa: E402
import evaluation  # noqa: E402
from evaluation import feature_metrics  # noqa: E402
from training import trainer  # noqa: E402
import runs  # noqa: E402  (bench/)

flags.DEFINE_string('run_dir', None, 'The --run_dir of conditioning.py.', required=True)
flags.DEFINE_string('mnist', os.path.join(runs.ROOT, '..', 'shared', 'data'), 'Folder that holds mnist/ (IDX files).')
flags.DEFINE_integer('step', 1500, 'The checkpoint to analyse.')
flags.DEFINE_integer('samples', 10000, 'Generated and real digits, as --evaluate --num_samples.')
FLAGS = flags.FLAGS


def _trace_of_covariance(features):
  return float(np.trace(np.cov(features, rowvar=False)))


def _per_class(real, real_labels, fake, fake_labels, measure):
  """The mean over the classes of measure(real of the class, fake of the class)."""
  return float(np.mean([measure(real[real_labels == c], fake[fake_labels == c]) for c in np.unique(real_labels)]))


def _between(features, labels):
  """The trace of the covariance of the class means (each class weighted by its count): how far apart the classes
  lie in the features."""
  classes, counts = np.unique(labels, return_counts=True)
  means = np.stack([features[labels == c].mean(0) for c in classes])
  centred = means - np.average(means, axis=0, weights=counts)
  return float(np.sum(counts[:, np.newaxis] * np.square(centred)) / counts.sum())


def analyse(run_dir):
  """The row of one run of conditioning.py."""
  config = Config(dataset='mnist', data_dir=os.path.abspath(FLAGS.mnist), output_height=28,
                  output_width=28, checkpoint_dir=os.path.join(run_dir, 'checkpoint'), batch_size=500,
                  precision='float32')
  config = modes.trained_config(config)
  dataset = datasets.open_dataset(config, strict=False, cache_dir=config.data_cache_path)
  with evaluation.Evaluator(dataset, config, FLAGS.samples, trainer.session_config(config.device)) as evaluator, \
      modes.trained_generator(config, FLAGS.step) as (generate, _, _):
    fake = generate(evaluator.z, evaluator.labels)
    _, fake_features = evaluator.classifier.predict(fake)
    real, real_features, fake_labels = evaluator.real, evaluator.real_features, evaluator.labels
    real_labels = dataset.labels[evaluator.real_indices]
  fd = feature_metrics.frechet_distance_of(real_features, fake_features)
  mean_term = float(np.sum(np.square(real_features.mean(0) - fake_features.mean(0))))
  scored = runs.eval_metrics(run_dir, config.key, FLAGS.step, FLAGS.samples)  # conditioning.py's --evaluate
  assert abs(scored['fd'] - fd) < 1e-3 * scored['fd'], (scored['fd'], fd)  # the same digits as --evaluate
  ink = lambda images: images.reshape(len(images), -1).mean(1) / 255.0
  real_ink, fake_ink = ink(real), ink(fake)
  return {
      'run': os.path.basename(run_dir), 'classifier_accuracy': scored['classifier_accuracy'],
      'label_accuracy': scored['label_accuracy'],
      'precision': scored['digit_precision'], 'recall': scored['digit_recall'],
      'fd': fd, 'mean_term': mean_term, 'covariance_term': fd - mean_term,
      'spread': _trace_of_covariance(fake_features) / _trace_of_covariance(real_features),
      'within': _per_class(real_features, real_labels, fake_features, fake_labels,
                           lambda r, f: _trace_of_covariance(f) / _trace_of_covariance(r)),
      'between': _between(fake_features, fake_labels) / _between(real_features, real_labels),
      'fd_per_class': _per_class(real_features, real_labels, fake_features, fake_labels,
                                 feature_metrics.frechet_distance_of),
      'ink': float(fake_ink.mean() / real_ink.mean()),
      'ink_spread': _per_class(real_ink, real_labels, fake_ink, fake_labels, lambda r, f: f.std() / r.std()),
  }


def main(_):
  rows = [analyse(run_dir) for run_dir in sorted(glob.glob(os.path.join(FLAGS.run_dir, '*_seed*')))]
  keys = ['classifier_accuracy', 'label_accuracy', 'precision', 'recall', 'fd', 'mean_term', 'covariance_term',
          'spread', 'within', 'between', 'fd_per_class', 'ink', 'ink_spread']
  print('| run | ' + ' | '.join(keys) + ' |')
  print('| --- |' + ' --- |' * len(keys))
  for row in rows:
    print(f"| {row['run']} | " + ' | '.join(f'{row[key]:.3f}' for key in keys) + ' |')


if __name__ == '__main__':
  app.run(main)
