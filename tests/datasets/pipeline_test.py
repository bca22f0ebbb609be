"""datasets/pipeline.py: the epoch's order, and --mirror's x-flips drawn by the seed."""

import numpy as np
import tensorflow as tf

import datasets
from conftest import tiny_rgb_trainer

tf1 = tf.compat.v1


def test_mirror_flips_half_the_images_each_epoch_by_the_seed(tmp_path):
  order = datasets.epoch_order(3, 1, 100, mirror=True)
  assert sorted(order % 100) == list(range(100))  # every image once
  assert 30 < np.count_nonzero(order >= 100) < 70
  np.testing.assert_array_equal(order, datasets.epoch_order(3, 1, 100, mirror=True))
  assert not np.array_equal(order >= 100, datasets.epoch_order(3, 2, 100, mirror=True) >= 100)
  np.testing.assert_array_equal(order % 100, datasets.epoch_order(3, 1, 100))  # the same order as without
  run = tiny_rgb_trainer(tmp_path, mirror=True)
  pipeline, count = run.dcgan.pipeline, len(run.dataset)
  with tf1.Session(graph=run.dcgan.graph) as sess:
    sess.run(pipeline.initializer, pipeline.feed(np.array([0, 1 + count, 2, 3 + count, 4, 5, 6, 7 + count]), 0))
    images = sess.run(pipeline.images)
  plain = datasets.read_images(run.dataset, run.config, np.arange(8))
  for i in range(8):
    expected = plain[i][:, ::-1] if i in (1, 3, 7) else plain[i]
    np.testing.assert_array_equal(images[i], expected)
