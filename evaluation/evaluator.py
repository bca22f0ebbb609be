"""How good are the samples: the GAN literature's numbers on the FID paper's Inception network (FID, KID, precision,
recall), SWD for any data, and a digit classifier's numbers for labelled grayscale data.

An Evaluator fixes, once per run, a sample of real images, the z (and labels) to generate from, and the random
patches, directions and subsets, so two evaluations differ only by the generated images. The protocol: N generated
images against N real training images (a sample drawn with EVAL_SEED, not --seed), each at the model's output size
as training sees it; the Inception network resizes every image to 299x299 inside its graph; features in float32,
every number in float64. The real side's Inception features are computed once per dataset, size, sample and
network file, and cached in the dataset's folder (checkpoint/datasets/<dataset>/), as TTUR's precomputed
statistics; a changed dataset (other pixels) computes them again. Every evaluation is written as JSON, as
TensorBoard scalars, and (for --evaluate) as a table on stdout.

$ python main.py --dataset mnist --data_dir ../shared/data --evaluate --num_samples 10000
$ python main.py --train --dataset mnist --data_dir ../shared/data --eval_freq 500 --best_metric fd
$ python main.py --evaluate --images samples/x_64_64/generated --dataset x     # score any folder of images
"""

import hashlib
import json
import math
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

from . import classifier
from config import EVALUATE_SAMPLES, TRAINING_EVAL_SAMPLES
import datasets
from . import feature_metrics
from . import inception
from . import metrics
from common import disk
import utils
from errors import UserError, first_line

tf1 = tf.compat.v1

EVAL_SEED = 20261124  # the real sample, z, labels, patches, directions and subsets; not --seed, so runs compare
DEFAULT_SAMPLES = EVALUATE_SAMPLES  # --evaluate
TRAINING_SAMPLES = TRAINING_EVAL_SAMPLES  # --eval_freq
INCEPTION_METRICS = ('fid', 'kid')  # of the BEST_METRICS, those that need the Inception network
SUMMARY_PREFIX = 'eval/'
NEAREST_CANDIDATES = 256  # the samples nearest.png chooses from
NEAREST_ROWS = 8  # half the samples nearest a training image, half the first others
NEAREST_NEIGHBOURS = 3

# name: (what it is, which way is better); the table and the README follow this order.
DESCRIPTIONS = {
    'fid': ('FID: Frechet distance of Inception features', 'lower'),
    'fid_real': ('FID of two halves of the real sample', 'for scale'),
    'kid': ('KID x1e3 of Inception features (mean of subsets)', 'lower'),
    'kid_std': ('its standard deviation over the subsets', 'for trust'),
    'precision': ('samples inside the real images\' manifold (k=3)', 'higher'),
    'recall': ('real images inside the samples\' manifold (k=3)', 'higher'),
    'swd': ('SWD x1e3, mean of the levels', 'lower'),
    'swd_real': ('SWD x1e3 of two halves of the real sample', 'for scale'),
    'fd': ('Frechet distance of classifier features', 'lower'),
    'fd_real': ('the same for two halves of the real sample', 'for scale'),
    'kd': ('KID x1e3 of classifier features (scaled to RMS 1)', 'lower'),
    'kd_std': ('its standard deviation over the subsets', 'for trust'),
    'digit_precision': ('precision in classifier features (k=3)', 'higher'),
    'digit_recall': ('recall in classifier features (k=3)', 'higher'),
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


def _pixels_digest(images):
  digest = hashlib.sha256(repr(images.shape).encode())
  digest.update(np.ascontiguousarray(images).tobytes())
  return digest.hexdigest()


class Evaluator:
  """Scores generated images against a fixed sample of the dataset.

  Args:
    dataset: a datasets.Source.
    config: a config.Config of the model (reads z_dim, z_dist, y_dim, sizes, crop, checkpoint_path,
      data_cache_path, inception_path).
    num_samples: images to generate, and real images to compare them with (at most the dataset's size).
    session_config: a ConfigProto for the classifier's and the Inception network's sessions.

  Raises:
    UserError: the real images could not be read, the classifier could not be trained or saved, or the
      Inception network's file is not that network.
  """

  def __init__(self, dataset, config, num_samples, session_config):
    self.config = config
    rng = np.random.default_rng(EVAL_SEED)
    # (an unreadable entry is replaced by another); real_indices: the entries of the dataset they are
    self.real, self.real_indices = datasets.sample_images(dataset, config, num_samples, rng)
    self.num_samples = count = len(self.real)
    self.z = utils.noise(config.z_dist, [count, config.z_dim], rng)
    self.labels = dataset.labels[rng.integers(len(dataset), size=count)] if config.y_dim else None
    start = time.monotonic()
    self.halves = (slice(0, count // 2), slice(count // 2, 2 * (count // 2)))  # real vs real, for scale
    self.reference = {}
    if count // 2 >= 2:
      self.reference['swd_real'] = metrics.swd(self.real[self.halves[0]], self.real[self.halves[1]], EVAL_SEED)['mean']
    self.classifier = self.inception = None
    self.real_features = self.real_inception = self.last_fake = self.fake_inception = None
    try:
      if uses_classifier(dataset):
        self._start_classifier(dataset, session_config)
      path = inception.find(config.inception_path)
      if path is None:
        logging.warning('%s', inception.missing_sentence(config.inception_path))
      else:
        self.inception = inception.Features(path, session_config)
        self.real_inception = self._real_inception_features()
        if count // 2 > feature_metrics.NEIGHBOURS:
          halves = [self.real_inception[half] for half in self.halves]
          self.reference['fid_real'] = feature_metrics.frechet_distance_of(*halves)
    except BaseException:
      self.close()
      raise
    if count <= inception.FEATURES and self.inception is not None:
      logging.warning('%d samples, not more than the %d Inception features: FID\'s covariances are singular, so it '
                      'is biased upwards and comparable only with FIDs of the same --num_samples (10,000 or more is '
                      'the usual; KID is unbiased at any count)', count, inception.FEATURES)
    logging.info('evaluation set: %d real images of %s, measured in %.1f s', count, dataset.name,
                 time.monotonic() - start)

  def _start_classifier(self, dataset, session_config):
    self.classifier, accuracy = classifier.load_or_train(
        np.asarray(dataset.images), dataset.labels, dataset.num_classes,
        os.path.join(self.config.checkpoint_path, classifier.DIRECTORY), session_config)
    classes, self.real_features = self.classifier.predict(self.real)
    self.reference.update(class_entropy_real=metrics.class_entropy(classes, dataset.num_classes),
                          classifier_accuracy=accuracy)
    if self.num_samples // 2 >= 2:
      halves = [self.real_features[half] for half in self.halves]
      self.reference['fd_real'] = feature_metrics.frechet_distance_of(*halves)

  def _real_inception_features(self):
    """The Inception features of the real sample: read from the dataset's cache when they were computed for
    these very images with this very network, else computed and kept there."""
    name = f'inception_{datasets.fit_name(self.config)}_{self.num_samples}.npz'
    path = os.path.join(self.config.data_cache_path, name)
    key = f'{_pixels_digest(self.real)}:{self.inception.digest}'
    cached = datasets.load_arrays(path, key)
    if cached is not None:
      logging.info('reading the Inception features of the %d real images from %s', self.num_samples, path)
      return cached['features']
    features = self.inception(self.real, f'{self.num_samples} real images')
    try:
      datasets.save_arrays(path, fingerprint=key, features=features)
    except OSError as e:
      logging.warning('could not keep the real images\' Inception features in %s (%s): they will be computed again '
                      'next time', path, first_line(e))
    return features

  def close(self):
    for model in (self.classifier, self.inception):
      if model is not None:
        model.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    self.close()

  def __call__(self, generate):
    """Generates num_samples images with `generate` and scores them.

    Args:
      generate: (z float [n, z_dim], labels int [n] or None) -> uint8 images [n, height, width, c_dim].

    Returns:
      See score().
    """
    start = time.monotonic()
    fake = generate(self.z, self.labels)
    logging.info('generated %d images in %.1f s', len(fake), time.monotonic() - start)
    return self.score(fake, self.labels)

  def score(self, fake, labels=None):
    """Scores generated images against the real sample.

    Args:
      fake: uint8 [n, height, width, channels] at the real sample's size (n >= 2; n may differ from it).
      labels: int [n], the labels the images were asked for (for label_accuracy), or None.

    Returns:
      {name: float}: 'swd' (the mean of the pyramid levels) and 'swd_<h>x<w>' per level; with the Inception
      network 'fid', 'kid', 'kid_std', 'precision', 'recall'; with the classifier 'fd', 'kd', 'digit_precision',
      'digit_recall', 'class_entropy' and for a conditional model 'label_accuracy'; and the real-vs-real figures
      and the classifier's accuracy (see DESCRIPTIONS).
    """
    self.last_fake, self.fake_inception, times = fake, None, {}
    start = time.monotonic()
    swd = metrics.swd(self.real, fake, EVAL_SEED)
    results = {'swd': swd.pop('mean'), **{f'swd_{level}': value for level, value in swd.items()}}
    times['swd'] = time.monotonic() - start
    if self.inception is not None:
      start = time.monotonic()
      self.fake_inception = self.inception(fake, f'{len(fake)} generated images')
      times['Inception features'] = time.monotonic() - start
      results.update(self._feature_scores(self.real_inception, self.fake_inception, ('fid', 'kid', 'precision',
                                                                                     'recall'), times))
    if self.classifier is not None:
      start = time.monotonic()
      classes, features = self.classifier.predict(fake)
      times['classifier'] = time.monotonic() - start
      # (the cubic kernel of KID expects features of about unit size, as Inception's are; the classifier's
      # hidden units are larger, and the kernel's third power of them swamps kd with noise: 43% of its mean over
      # evaluation seeds at 2,000 MNIST samples, 20% once scaled by their root mean square over the real sample)
      results.update(self._feature_scores(self.real_features, features, ('fd', 'kd', 'digit_precision',
                                                                         'digit_recall'), times,
                                          kernel_scale=np.sqrt(np.mean(np.square(self.real_features)))))
      if labels is not None:
        results['label_accuracy'] = float(np.mean(classes == labels))
      results['class_entropy'] = metrics.class_entropy(classes, self.classifier.num_classes)
    results.update(self.reference)
    self.last_times = times
    logging.info('scored %d images: %s', len(fake), ', '.join(f'{part} {seconds:.1f} s' for part, seconds in
                                                              times.items()))
    return results

  @staticmethod
  def _feature_scores(real, fake, names, times, kernel_scale=1.0):
    """{names: the Frechet distance, KID (and its deviation as <kid name>_std), precision, recall} of two feature
    sets, KID on the features divided by `kernel_scale`; adds the seconds each took to `times`."""
    frechet, kernel, precision, recall = names
    start = time.monotonic()
    results = {frechet: feature_metrics.frechet_distance_of(real, fake)}
    middle = time.monotonic()
    results[kernel], results[f'{kernel}_std'] = feature_metrics.kernel_distance(real / kernel_scale,
                                                                                fake / kernel_scale, seed=EVAL_SEED)
    end = time.monotonic()
    times.update({frechet: middle - start, kernel: end - middle})
    if min(len(real), len(fake)) > feature_metrics.NEIGHBOURS:
      results[precision], results[recall] = feature_metrics.precision_recall(real, fake)
      times[f'{precision} and {recall}'] = time.monotonic() - end
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
    write_record(path, {'step': step, 'checkpoint': checkpoint, **self.protocol(), 'metrics': results})
    if writer is not None:
      writer.add_summary(summary(results), step)
      writer.flush()
    return results, path

  def protocol(self):
    """What the numbers were measured on, for the JSON record."""
    cfg = self.config
    return {'num_samples': self.num_samples, 'real_images': f'{self.num_samples} of {cfg.data_dir}/{cfg.dataset}, '
            f'drawn with seed {EVAL_SEED}', 'size': [cfg.output_height, cfg.output_width],
            'inception': self.inception.digest if self.inception else None}

  def nearest_grid(self, fake):
    """nearest.png: samples, each beside its NEAREST_NEIGHBOURS nearest real images (in the real sample) in
    Inception's feature space, or in pixels without it. The first rows are the samples nearest to a real image of
    the first NEAREST_CANDIDATES (if G copies training images, they show it), the rest the first others.

    Args:
      fake: the images of the last score(), uint8 [n, h, w, c].

    Returns:
      uint8 [rows * (h + pad) + pad, 4 * (w + pad) + pad, c], one row per sample: the sample, then its neighbours.
    """
    candidates = min(NEAREST_CANDIDATES, len(fake))
    if self.fake_inception is not None:
      queries, references = self.fake_inception[:candidates], self.real_inception
    else:
      queries = fake[:candidates].reshape(candidates, -1).astype(np.float32)
      references = self.real.reshape(len(self.real), -1).astype(np.float32)
    neighbours, distances = feature_metrics.nearest(queries, references, NEAREST_NEIGHBOURS)
    closest = list(np.argsort(distances[:, 0])[:NEAREST_ROWS // 2])
    rows = closest + [i for i in range(candidates) if i not in closest][:NEAREST_ROWS - len(closest)]
    tiles = [image for i in rows for image in (fake[i], *self.real[neighbours[i]])]
    return utils.make_grid(np.stack(tiles), cols=1 + NEAREST_NEIGHBOURS)

  def log_line(self, results):
    """A compact line for the training log: the main numbers only."""
    shown = [name for name in ('fid', 'kid', 'precision', 'recall', 'swd', 'fd', 'label_accuracy', 'class_entropy')
             if name in results]
    return f'{self.num_samples} samples: ' + '  '.join(f'{name} {results[name]:.4g}' for name in shown)


def write_record(path, record):
  """Writes an evaluation's record as JSON (with the time), atomically.

  Raises:
    UserError: it could not be written.
  """
  record = dict(record, time=time.strftime('%Y-%m-%dT%H:%M:%S%z'))
  try:
    disk.write_text(path, json.dumps(record, indent=1, sort_keys=True) + '\n')
  except OSError as e:
    raise UserError(f'could not write the evaluation to {path}: {first_line(e)}') from None


def summary(results):
  """The results as TensorBoard scalars eval/<name>."""
  return tf1.Summary(value=[tf1.Summary.Value(tag=SUMMARY_PREFIX + name, simple_value=value)
                            for name, value in sorted(results.items())])


def table(results):
  """The results as a small text table: name, value, which way is better, what it is."""
  rows = [(name, results[name], *DESCRIPTIONS[name]) for name in DESCRIPTIONS if name in results]
  levels = sorted((name for name in results if name.startswith('swd_') and name != 'swd_real'),
                  key=lambda name: -int(name[4:].split('x')[0]))
  at = next(i for i, row in enumerate(rows) if row[0] == 'swd') + 1
  rows[at:at] = [(name, results[name], f'SWD x1e3 at {name[4:]} (Laplacian level)', 'lower') for name in levels]
  width = max(len(name) for name, *_ in rows)
  lines = [f'{"metric":<{width}}  {"value":>10}  {"better":<9}  meaning']
  lines += [f'{name:<{width}}  {_format(value):>10}  {better:<9}  {meaning}' for name, value, meaning, better in rows]
  return '\n'.join(lines)


def _format(value):
  return 'nan' if not math.isfinite(value) else f'{value:.4g}'
