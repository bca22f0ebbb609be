"""A judge in a learned feature space for a folder of face images, where the Inception network cannot be
downloaded: a small convolutional network trained here to tell which way each real image was rotated (0, 90,
180 or 270 degrees; Gidaris et al. 2018). To do that it must find the eyes, the chin and the hair, so its hidden
features describe faces; small_data.py compares generated and real faces in them with FD, KID, precision and
recall, as the FID paper's network would (its numbers are not FID's, and are comparable only with each other).

Trained once on every image of the folder, kept in its own folder (a hash of the images keys it), like the digit
classifier of evaluation.py.

$ python experiments/small_data/small_data.py --run_dir /tmp/small_data  # trains it on first use (about 4 minutes)
"""

import hashlib
import json
import math
import os
import sys

import numpy as np
import tensorflow as tf
from absl import logging

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [ROOT, os.path.join(ROOT, 'bench')]  # the project; bench/'s runs.py, suite.py and torch_twin.py

from ops import batch_norm, conv2d, linear, lrelu  # noqa: E402

tf1 = tf.compat.v1

FEATURES = 256
EPOCHS = 6
BATCH = 64
SEED = 20261205
PREFIX = 'judge.model'


def _network(images, is_training):
  """uint8 [batch, 64, 64, 3] -> (rotation logits [batch, 4], features [batch, 256] after a ReLU)."""
  with tf1.variable_scope('judge', reuse=tf1.AUTO_REUSE):
    net = tf.cast(images, tf.float32) / 127.5 - 1.0
    net = lrelu(conv2d(net, 32, stddev=math.sqrt(2 / 75), name='conv1'))
    # [batch, 32, 32, 32]
    net = lrelu(batch_norm(conv2d(net, 64, stddev=math.sqrt(2 / 800), name='conv2'), is_training, name='bn2'))
    # [batch, 16, 16, 64]
    net = lrelu(batch_norm(conv2d(net, 128, stddev=math.sqrt(2 / 1600), name='conv3'), is_training, name='bn3'))
    # [batch, 8, 8, 128]
    net = lrelu(batch_norm(conv2d(net, 256, stddev=math.sqrt(2 / 3200), name='conv4'), is_training, name='bn4'))
    # [batch, 4, 4, 256]
    net = tf.reshape(net, [-1, 4 * 4 * 256])
    features = tf.nn.relu(linear(net, FEATURES, stddev=math.sqrt(2 / 4096), name='hidden'))
    return linear(features, 4, stddev=math.sqrt(2 / FEATURES), name='rotation'), features


class Judge:
  """The rotation network, trained on `images` (uint8 [n, 64, 64, 3]) once and kept in `directory`."""

  def __init__(self, images, directory):
    self.graph = tf.Graph()
    with self.graph.as_default():
      tf1.set_random_seed(SEED)
      self.images = tf1.placeholder(tf.uint8, [None, 64, 64, 3])
      self.rotations = tf1.placeholder(tf.int32, [None])
      logits, _ = _network(self.images, True)
      _, self.hidden = _network(self.images, False)
      self.predicted = tf.argmax(_network(self.images, False)[0], axis=1, output_type=tf.int32)
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=self.rotations, logits=logits))
      with tf.control_dependencies(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)):
        train = tf1.train.AdamOptimizer(1e-3).minimize(loss)
      saver = tf1.train.Saver()
      init = tf1.global_variables_initializer()
    self.sess = tf1.Session(graph=self.graph)
    key = hashlib.sha256(np.ascontiguousarray(images).tobytes() + repr((EPOCHS, BATCH, SEED)).encode()).hexdigest()
    info_path = os.path.join(directory, 'judge.json')
    try:
      with open(info_path) as f:
        info = json.load(f)
    except (OSError, ValueError):
      info = {}
    if info.get('key') == key:
      with self.graph.as_default():
        saver.restore(self.sess, os.path.join(directory, PREFIX))
      self.accuracy = info['held_out_accuracy']
      return
    self.sess.run(init)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(images))
    held_out, train_set = order[:len(images) // 10], order[len(images) // 10:]
    for epoch in range(EPOCHS):
      rng.shuffle(train_set)
      for start in range(0, len(train_set) - BATCH + 1, BATCH):
        batch, rotation = self._rotated(images[train_set[start:start + BATCH]], rng)
        self.sess.run(train, {self.images: batch, self.rotations: rotation})
      logging.info('judge: epoch %d of %d', epoch + 1, EPOCHS)
    batch, rotation = self._rotated(images[held_out], rng)
    self.accuracy = float(np.mean(self._run(self.predicted, batch) == rotation))
    logging.info('judge: %.1f%% of the rotations of %d held-out images right', 100 * self.accuracy, len(held_out))
    os.makedirs(directory, exist_ok=True)
    with self.graph.as_default():
      saver.save(self.sess, os.path.join(directory, PREFIX), write_meta_graph=False)
    with open(info_path, 'w') as f:
      json.dump({'key': key, 'held_out_accuracy': self.accuracy}, f)

  @staticmethod
  def _rotated(images, rng):
    """Each image turned by a random multiple of 90 degrees (and x-flipped half the time), and the multiple."""
    rotation = rng.integers(0, 4, len(images)).astype(np.int32)
    flips = rng.random(len(images)) < 0.5
    turned = np.stack([np.rot90(image[:, ::-1] if flip else image, k) for image, k, flip in
                       zip(images, rotation, flips)])
    return turned, rotation

  def _run(self, tensor, images):
    return np.concatenate([self.sess.run(tensor, {self.images: images[start:start + 500]})
                           for start in range(0, len(images), 500)])

  def features(self, images):
    """uint8 [n, 64, 64, 3] -> float64 [n, 256]."""
    return self._run(self.hidden, images).astype(np.float64)

  def close(self):
    self.sess.close()
