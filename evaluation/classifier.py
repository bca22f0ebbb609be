"""A small digit classifier for labelled grayscale data (MNIST-style), to score generated digits without downloads.

It is trained by this program on 90% of the dataset (a fixed split) and tested on the other 10%. Its checkpoint
and held-out accuracy are kept in checkpoint/<key>/classifier/, keyed by a hash of the images and labels, so it
is trained once and again only when the data changes. Evaluation uses its predicted classes (does a sample show
the label it was asked for; are all classes produced) and its penultimate layer as the features of the Frechet
distance.

$ python main.py --dataset mnist --data_dir ../shared/data --evaluate    # trains it on first use (~30 s on a CPU)
"""

import hashlib
import json
import math
import os

import numpy as np
import tensorflow as tf
from absl import logging
from tqdm import tqdm

from common import disk
from errors import UserError, first_line
from ops import conv2d, linear

tf1 = tf.compat.v1

DIRECTORY = 'classifier'
INFO_FILE = 'classifier.json'
PREFIX = 'classifier.model'
VERSION = 1  # bump when the network or its training changes: cached classifiers are then trained again
HELD_OUT = 0.1  # fraction of the dataset kept out of training to measure accuracy
SPLIT_SEED = 20261123  # the split and the training order do not depend on --seed: one classifier per dataset
EPOCHS = 4
BATCH = 64
LEARNING_RATE = 1e-3
FEATURES = 128
PREDICT_BATCH = 500


def _he(fan_in):
  return math.sqrt(2.0 / fan_in)


def network(images, num_classes):
  """The classifier: two strided 5x5 convolutions and a hidden layer.

  Args:
    images: uint8 [batch, height, width, 1], 0 is black.
    num_classes: the number of labels.

  Returns:
    (logits float [batch, num_classes], features float [batch, 128]: the hidden layer, after ReLU).
  """
  with tf1.variable_scope(DIRECTORY):
    net = tf.cast(images, tf.float32) / 127.5 - 1.0

    net = tf.nn.relu(conv2d(net, 32, stddev=_he(25), name='conv1'))
    # [batch, h/2, w/2, 32]

    net = tf.nn.relu(conv2d(net, 64, stddev=_he(25 * 32), name='conv2'))
    # [batch, h/4, w/4, 64]

    net = tf.reshape(net, [-1, math.prod(net.shape[1:])])
    features = tf.nn.relu(linear(net, FEATURES, stddev=_he(net.shape[1]), name='hidden'))
    # [batch, 128]

    return linear(features, num_classes, stddev=_he(FEATURES), name='logits'), features
    # [batch, num_classes]


def split(count):
  """(training indices, held-out indices) of a dataset of `count` images: a fixed 90/10 split."""
  order = np.random.default_rng(SPLIT_SEED).permutation(count)
  held_out = max(1, int(count * HELD_OUT))
  return np.sort(order[held_out:]), np.sort(order[:held_out])


def fingerprint(images, labels):
  """A hash of the data the classifier learns from, and of how it learns."""
  digest = hashlib.sha256(repr((VERSION, images.shape, EPOCHS, BATCH, LEARNING_RATE)).encode())
  digest.update(np.ascontiguousarray(images).tobytes())
  digest.update(np.ascontiguousarray(labels, np.int32).tobytes())
  return digest.hexdigest()


class Classifier:
  """A trained classifier in its own graph and session; close() when done."""

  def __init__(self, shape, num_classes, session_config):
    self.num_classes = num_classes
    self.graph = tf.Graph()
    with self.graph.as_default():
      tf1.set_random_seed(SPLIT_SEED)
      self.images = tf1.placeholder(tf.uint8, [None, *shape], name='images')
      self.labels = tf1.placeholder(tf.int32, [None], name='labels')
      self.logits, self.features = network(self.images, num_classes)
      self.loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=self.labels,
                                                                                logits=self.logits))
      self.train_op = tf1.train.AdamOptimizer(LEARNING_RATE).minimize(self.loss)
      self.saver = tf1.train.Saver(max_to_keep=1)
      init = tf1.global_variables_initializer()
    self.graph.finalize()
    self.sess = tf1.Session(graph=self.graph, config=session_config)
    self.sess.run(init)

  def close(self):
    self.sess.close()

  def save(self, prefix):
    with self.graph.as_default():
      self.saver.save(self.sess, prefix, write_meta_graph=False)

  def restore(self, prefix):
    with self.graph.as_default():
      self.saver.restore(self.sess, prefix)

  def predict(self, images):
    """uint8 [n, height, width, 1] -> (predicted classes int [n], features float64 [n, 128])."""
    classes, features = [], []
    for start in range(0, len(images), PREDICT_BATCH):
      logits, batch_features = self.sess.run([self.logits, self.features],
                                             {self.images: images[start:start + PREDICT_BATCH]})
      classes.append(np.argmax(logits, axis=1))
      features.append(batch_features.astype(np.float64))
    return np.concatenate(classes), np.concatenate(features)

  def accuracy(self, images, labels):
    return float(np.mean(self.predict(images)[0] == labels))

  def fit(self, images, labels):
    """EPOCHS epochs of Adam on shuffled batches, in an order fixed by SPLIT_SEED."""
    rng = np.random.default_rng(SPLIT_SEED)
    steps = EPOCHS * (len(images) // BATCH)
    with tqdm(total=steps, unit='step', desc='training the digit classifier', disable=None, leave=False) as bar:
      for epoch in range(EPOCHS):
        order = rng.permutation(len(images))
        for start in range(0, len(order) - BATCH + 1, BATCH):
          batch = order[start:start + BATCH]
          self.sess.run(self.train_op, {self.images: images[batch], self.labels: labels[batch]})
          bar.update(1)
        logging.info('digit classifier: epoch %d/%d done', epoch + 1, EPOCHS)


def load_or_train(images, labels, num_classes, directory, session_config):
  """The classifier of these data: restored from `directory` if it was trained on them, else trained and saved.

  Args:
    images: uint8 [count, height, width, 1], the whole dataset.
    labels: int [count] in [0, num_classes).
    num_classes: the number of labels.
    directory: checkpoint/<key>/classifier.
    session_config: a ConfigProto for its session.

  Returns:
    (a Classifier, its accuracy on the held-out 10%).

  Raises:
    UserError: the data are too few to train on, or the classifier could not be saved.
  """
  train, held_out = split(len(images))
  if len(train) < BATCH:
    raise UserError(f'the digit classifier needs at least {math.ceil(BATCH / (1 - HELD_OUT))} labelled images '
                    f'to train on; the dataset has {len(images)}')
  key = fingerprint(images, labels)
  info_path = os.path.join(directory, INFO_FILE)
  info = _read_info(info_path)
  model = Classifier(images.shape[1:], num_classes, session_config)
  if info.get('fingerprint') == key and info.get('num_classes') == num_classes:
    try:
      model.restore(os.path.join(directory, PREFIX))
      return model, info['held_out_accuracy']
    except (tf.errors.OpError, ValueError, KeyError):
      logging.warning('the digit classifier in %s could not be read: training it again', directory)
  logging.info('training a digit classifier on %d images (%d held out), once for this dataset; kept in %s',
               len(train), len(held_out), directory)
  model.fit(images[train], labels[train])
  accuracy = model.accuracy(images[held_out], labels[held_out])
  logging.info('digit classifier: %.2f%% correct on the %d held-out images', 100 * accuracy, len(held_out))
  try:
    os.makedirs(directory, exist_ok=True)
    model.save(os.path.join(directory, PREFIX))
    text = json.dumps({'fingerprint': key, 'num_classes': num_classes, 'held_out_accuracy': accuracy,
                       'trained_on': len(train), 'held_out': len(held_out)}, indent=1)
    disk.write_text(info_path, text)
  except (tf.errors.OpError, OSError) as e:
    model.close()
    raise UserError(f'could not save the digit classifier to {directory}: {first_line(e)}') from None
  return model, accuracy


def _read_info(path):
  try:
    with open(path) as f:
      info = json.load(f)
    return info if isinstance(info, dict) else {}
  except (OSError, ValueError):
    return {}
