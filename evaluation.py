"""How good are the samples: SWD for any data, and a digit classifier's scores for labelled grayscale data.

An Evaluator fixes, once per run, a sample of real images, the z (and labels) to generate from, and the random
patches and directions of SWD, so two evaluations differ only by the generator's weights. Every evaluation is
written as JSON beside the checkpoints, as TensorBoard scalars, and (for --evaluate) as a table on stdout.

$ python main.py --dataset mnist --data_dir ../shared/data --evaluate --num_samples 10000
$ python main.py --train --dataset mnist --data_dir ../shared/data --eval_freq 500 --best_metric fd
"""

import json
import math
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

import classifier
import config as config_lib
import datasets
import metrics
import utils
from errors import UserError, first_line

tf1 = tf.compat.v1

EVAL_SEED = 20261124  # the real sample, z, labels, patches and directions; not --seed, so runs compare
DEFAULT_SAMPLES = config_lib.EVALUATE_SAMPLES  # --evaluate
TRAINING_SAMPLES = config_lib.TRAINING_EVAL_SAMPLES  # --eval_freq
BEST_METRICS = config_lib.BEST_METRICS
SUMMARY_PREFIX = 'eval/'

# name: (what it is, which way is better); the table and the README follow this order.
DESCRIPTIONS = {
    'swd': ('SWD x1e3, mean of the levels', 'lower'),
    'swd_real': ('SWD x1e3 of two halves of the real sample', 'for scale'),
    'fd': ('Frechet distance of classifier features', 'lower'),
    'fd_real': ('the same for two halves of the real sample', 'for scale'),
    'label_accuracy': ('samples the classifier reads as their label', 'higher'),
    'class_entropy': ('entropy of the predicted classes, bits', 'higher'),
    'class_entropy_real': ('the same for the real sample', 'for scale'),
    'classifier_accuracy': ('classifier accuracy on held-out real data', 'for trust'),
}


def uses_classifier(dataset):
  """The digit classifier applies to labelled grayscale data in memory (MNIST-style IDX folders, the built-in digits,
  TFDS; not yet a folder of class folders, whose images are read file by file)."""
  return dataset.num_classes > 0 and dataset.channels == 1 and dataset.images is not None


def results_path(checkpoint_path, step, num_samples, suffix=''):
  return os.path.join(checkpoint_path, f'eval_{step:06d}_{num_samples}{suffix}.json')


class Evaluator:
  """Scores a generator against a fixed sample of the dataset.

  Args:
    dataset: a datasets.Dataset.
    config: a config.Config of the model (reads z_dim, z_dist, y_dim, sizes, checkpoint_path).
    num_samples: images to generate, and real images to compare them with (at most the dataset's size).
    session_config: a ConfigProto for the classifier's session.

  Raises:
    UserError: the real images could not be read, or the classifier could not be trained or saved.
  """

  def __init__(self, dataset, config, num_samples, session_config):
    self.config = config
    self.num_samples = count = min(num_samples, len(dataset))
    rng = np.random.default_rng(EVAL_SEED)
    chosen = rng.choice(len(dataset), count, replace=False)
    order = np.argsort(chosen)  # read in index order (memory maps and files), keep the random order for halves
    self.real = np.empty((count, config.output_height, config.output_width, dataset.channels), np.uint8)
    self.real[order] = datasets.read_images(dataset, config, chosen[order])
    self.z = utils.noise(config.z_dist, [count, config.z_dim], rng)
    self.labels = dataset.labels[rng.integers(len(dataset), size=count)] if config.y_dim else None
    start = time.monotonic()
    half = count // 2  # the real-vs-real figures compare two halves of the real sample
    self.reference = {}
    if half >= 2:
      self.reference['swd_real'] = metrics.swd(self.real[:half], self.real[half:2 * half], EVAL_SEED)['mean']
    self.classifier = None
    if uses_classifier(dataset):
      self.classifier, accuracy = classifier.load_or_train(
          np.asarray(dataset.images), dataset.labels, dataset.num_classes,
          os.path.join(config.checkpoint_path, classifier.DIRECTORY), session_config)
      classes, self.real_features = self.classifier.predict(self.real)
      self.reference.update(class_entropy_real=metrics.class_entropy(classes, dataset.num_classes),
                            classifier_accuracy=accuracy)
      if half >= 2:
        self.reference['fd_real'] = metrics.frechet_distance(self.real_features[:half],
                                                             self.real_features[half:2 * half])
    logging.info('evaluation set: %d real images of %s, measured in %.1f s', count, dataset.name,
                 time.monotonic() - start)

  def close(self):
    if self.classifier is not None:
      self.classifier.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    self.close()

  def __call__(self, generate):
    """Generates num_samples images with `generate` and scores them.

    Args:
      generate: (z float [n, z_dim], labels int [n] or None) -> uint8 images [n, height, width, c_dim].

    Returns:
      {name: float}: 'swd' (the mean of the pyramid levels) and 'swd_<h>x<w>' per level, 'swd_real', and with
      the classifier 'fd', 'fd_real', 'class_entropy', 'class_entropy_real', 'classifier_accuracy', plus
      'label_accuracy' for a conditional model. See DESCRIPTIONS.
    """
    fake = generate(self.z, self.labels)
    swd = metrics.swd(self.real, fake, EVAL_SEED)
    results = {'swd': swd.pop('mean'), **{f'swd_{level}': value for level, value in swd.items()}}
    if self.classifier is not None:
      classes, features = self.classifier.predict(fake)
      results['fd'] = metrics.frechet_distance(features, self.real_features)
      if self.labels is not None:
        results['label_accuracy'] = float(np.mean(classes == self.labels))
      results['class_entropy'] = metrics.class_entropy(classes, self.classifier.num_classes)
    results.update(self.reference)
    return results

  def evaluate(self, generate, step, checkpoint, writer=None, suffix=''):
    """Scores `generate` (see __call__) and records the results.

    They go to checkpoint/<key>/eval_<step>_<num_samples>.json and, given a summary FileWriter, to TensorBoard
    as eval/<name> at `step`.

    Args:
      generate: see __call__.
      step: the training step of the weights.
      checkpoint: the path of the checkpoint evaluated, for the record.
      writer: a tf1.summary.FileWriter, or None.
      suffix: ends the JSON file's name ('_noema' for G's own weights of a model with their average).

    Returns:
      (the results, the JSON file's path).

    Raises:
      UserError: the JSON file could not be written.
    """
    results = self(generate)
    path = results_path(self.config.checkpoint_path, step, self.num_samples, suffix)
    record = {'step': step, 'checkpoint': checkpoint, 'num_samples': self.num_samples, 'metrics': results,
              'time': time.strftime('%Y-%m-%dT%H:%M:%S%z')}
    try:
      utils.write_text(path, json.dumps(record, indent=1, sort_keys=True) + '\n')
    except OSError as e:
      raise UserError(f'could not write the evaluation to {path}: {first_line(e)}') from None
    if writer is not None:
      writer.add_summary(summary(results), step)
      writer.flush()
    return results, path

  def log_line(self, results):
    """A compact line for the training log: the main numbers only."""
    shown = [name for name in ('swd', 'fd', 'label_accuracy', 'class_entropy') if name in results]
    return f'{self.num_samples} samples: ' + '  '.join(f'{name} {results[name]:.4g}' for name in shown)


def summary(results):
  """The results as TensorBoard scalars eval/<name>."""
  return tf1.Summary(value=[tf1.Summary.Value(tag=SUMMARY_PREFIX + name, simple_value=value)
                            for name, value in sorted(results.items())])




def table(results):
  """The results as a small text table: name, value, what it is, which way is better."""
  rows = [(name, results[name], *DESCRIPTIONS[name]) for name in DESCRIPTIONS if name in results]
  levels = sorted((name for name in results if name.startswith('swd_') and name != 'swd_real'),
                  key=lambda name: -int(name[4:].split('x')[0]))
  rows[1:1] = [(name, results[name], f'SWD x1e3 at {name[4:]} (Laplacian level)', 'lower') for name in levels]
  width = max(len(name) for name, *_ in rows)
  lines = [f'{"metric":<{width}}  {"value":>10}  {"better":<9}  meaning']
  lines += [f'{name:<{width}}  {_format(value):>10}  {better:<9}  {meaning}' for name, value, meaning, better in rows]
  return '\n'.join(lines)


def _format(value):
  return 'nan' if not math.isfinite(value) else f'{value:.4g}'
