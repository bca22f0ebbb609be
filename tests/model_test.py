"""model.py and gan/networks.py: the graph builds for many sizes and every loss, G and D own disjoint variables,
update ops are split, one power iteration per D update, the graph's stages are a dozen top-level names, checkpoint
names stay those of old runs."""

import collections
import dataclasses
import re

import numpy as np
import pytest
import tensorflow as tf

from config import CONDITIONINGS, Config
import datasets
from gan import networks
from gan import stages
import model
from training import trainer
from conftest import tiny_rgb_trainer

tf1 = tf.compat.v1
SMALL = Config(gf_dim=4, df_dim=4, gfc_dim=16, dfc_dim=16, z_dim=8, c_dim=1, y_dim=0)


def _inputs(cfg, batch=None, mix=False):
  images = tf1.placeholder(tf.float32, [batch, cfg.output_height, cfg.output_width, cfg.c_dim])
  z = tf1.placeholder(tf.float32, [batch, cfg.z_dim])
  labels = tf1.placeholder(tf.float32, [batch, cfg.y_dim]) if cfg.y_dim else None
  z_labels = tf1.placeholder(tf.float32, [batch, cfg.y_dim]) if cfg.y_dim else None
  return stages.GANInputs(images=images, labels=labels, z=z, z_labels=z_labels, z_label_ids=None,
                          mix=tf1.placeholder(tf.float32, [batch]) if mix else None, augment_seed=None)


@pytest.mark.parametrize('height,width,c_dim,y_dim,loss,penalty,conditioning', [
    (28, 28, 1, 10, 'non_saturating', 0, 'mnist'), (28, 28, 1, 0, 'minimax', 0, 'projection'),
    (48, 48, 3, 0, 'hinge', 0, 'projection'), (64, 64, 3, 0, 'wasserstein', 10, 'projection'),
    (128, 128, 3, 0, 'least_squares', 1, 'projection'), (40, 56, 3, 0, 'hinge', 0, 'projection'),
    (33, 21, 1, 4, 'wasserstein', 10, 'mnist'), (64, 64, 3, 5, 'non_saturating', 0, 'projection'),
    (32, 32, 3, 3, 'hinge', 10, 'concat'), (28, 28, 1, 10, 'non_saturating', 10, 'projection')])
def test_graph_builds_for_any_size_and_loss(height, width, c_dim, y_dim, loss, penalty, conditioning):
  cfg = dataclasses.replace(SMALL, output_height=height, output_width=width, c_dim=c_dim, y_dim=y_dim, loss=loss,
                            gradient_penalty=penalty, conditioning=conditioning)
  with tf.Graph().as_default():
    gan = stages.gan_model(_inputs(cfg, mix=bool(penalty)), cfg)
    loss = stages.gan_loss(gan, cfg)
    stages.gan_train_ops(loss, cfg, tf1.train.get_or_create_global_step(), epoch_steps=1)
    assert gan.generated.shape.as_list() == [None, height, width, c_dim]
    assert gan.real_logits.shape.as_list() == [None, 1]
    assert gan.fake_logits.shape.as_list() == [None, 1]
    assert (gan.mixed_logits is not None) == bool(penalty)
    assert all(t.shape.rank == 0 for t in loss if t is not None) and loss.r1 is None  # (no --r1)


@pytest.mark.parametrize('y_dim', [0, 10])
def test_variables_and_update_ops_split_by_scope(y_dim):
  cfg = dataclasses.replace(SMALL, output_height=28, output_width=28, c_dim=1, y_dim=y_dim, gradient_penalty=10)
  with tf.Graph().as_default():
    gan = stages.gan_model(_inputs(cfg, mix=True), cfg)
    g_vars = stages.scope_collection(tf1.GraphKeys.TRAINABLE_VARIABLES, networks.GENERATOR)
    d_vars = stages.scope_collection(tf1.GraphKeys.TRAINABLE_VARIABLES, networks.DISCRIMINATOR)
    assert g_vars and d_vars
    assert not set(g_vars) & set(d_vars)
    assert set(g_vars) | set(d_vars) == set(tf1.trainable_variables())
    g_updates = stages.scope_collection(tf1.GraphKeys.UPDATE_OPS, networks.GENERATOR)
    d_updates = stages.scope_collection(tf1.GraphKeys.UPDATE_OPS, networks.DISCRIMINATOR)
    assert g_updates and d_updates and not set(g_updates) & set(d_updates)
    assert set(g_updates) | set(d_updates) == set(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS))
    # D's three calls (real, generated, the penalty's mix) move each of its averages three times, under one scope
    moves = collections.Counter(update.op.inputs[0].op.name for update in d_updates)  # the average it moves
    assert set(moves.values()) == {3} and all(update.op.name.startswith('discriminator/') for update in d_updates)
    before = len(tf1.trainable_variables())
    networks.generator(gan.inputs.z, gan.inputs.z_labels, cfg, is_training=False, reuse=True)
    assert len(tf1.trainable_variables()) == before  # the sampler shares G's variables


# variables that only a conditioning has, with their shapes at 32x32 RGB, 3 classes, SMALL's sizes
_CONDITIONED = {
    'projection': {'generator/bn0/gamma': [3, 32], 'generator/bn3/beta': [3, 4], 'discriminator/h4_proj/w': [3, 128]},
    'concat': {'generator/h0_lin/w': [8 + 3, 128], 'discriminator/h0_conv/w': [5, 5, 3 + 3, 4]},
    'mnist': {'generator/h1_lin/w': [16 + 3, 8 * 8 * 8], 'discriminator/h2_lin/w': [(4 + 3) * 8 * 8 + 3, 16]},
}


@pytest.mark.parametrize('conditioning', CONDITIONINGS)
def test_every_conditioning_makes_g_and_d_depend_on_the_label(conditioning):
  cfg = dataclasses.replace(SMALL, output_height=32, output_width=32, c_dim=3, y_dim=3, conditioning=conditioning)
  with tf.Graph().as_default():
    tf1.set_random_seed(0)  # the same initial weights every run
    gan = stages.gan_model(_inputs(cfg), cfg)
    shapes = {v.op.name: v.shape.as_list() for v in tf1.global_variables()}
    assert {name: shapes.get(name) for name in _CONDITIONED[conditioning]} == _CONDITIONED[conditioning]
    assert all(shapes.get(name) != shape for other, names in _CONDITIONED.items() if other != conditioning
               for name, shape in names.items())
    rng = np.random.default_rng(0)
    z, images = rng.uniform(-1, 1, [2, cfg.z_dim]), rng.uniform(-1, 1, [2, 32, 32, 3])
    one_hot = np.eye(3)[[0, 2]]
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      for variable in tf1.global_variables():  # per-class gamma and beta start equal: make the classes differ
        if variable.shape.rank == 2 and '/bn' in variable.op.name:
          sess.run(variable.assign(rng.normal(1, 0.5, variable.shape.as_list())))
      # the same z and images, labels 0 and 2 -> different images and logits
      outputs = [sess.run([gan.generated, gan.fake_logits, gan.real_logits],
                          {gan.inputs.z: z, gan.inputs.z_labels: labels, gan.inputs.images: images,
                           gan.inputs.labels: labels})
                 for labels in (one_hot, one_hot[::-1])]
    for label_0_then_2, label_2_then_0 in zip(*outputs):  # G's images, D's logits on them, on the real images
      # both examples; a model that ignores the label gives exactly 0 (the MNIST D's label maps, under weights of
      # deviation 0.02, move its logits by a few 1e-4: a random start once gave 3.2e-4)
      assert np.abs(label_0_then_2 - label_2_then_0).reshape(2, -1).max(axis=1).min() > 1e-5


def test_a_variable_outside_both_scopes_is_an_error():
  cfg = dataclasses.replace(SMALL, output_height=16, output_width=16, c_dim=1)
  with tf.Graph().as_default():
    loss = stages.gan_loss(stages.gan_model(_inputs(cfg), cfg), cfg)
    tf1.get_variable('stray', [1])
    with pytest.raises(ValueError, match='stray'):
      stages.gan_train_ops(loss, cfg, tf1.train.get_or_create_global_step(), epoch_steps=1)


def test_an_incomplete_config_builds_no_graph():
  with pytest.raises(ValueError, match='the config is not complete: completion.complete'):
    model.DCGAN(Config())


@pytest.mark.parametrize('y_dim', [0, 10])
def test_sampler_only_graph_generates_any_batch_size(y_dim):
  cfg = dataclasses.replace(SMALL, output_height=20, output_width=12, c_dim=3, y_dim=y_dim)
  dcgan = model.DCGAN(cfg)
  with trainer.session(dcgan) as sess:
    sess.run(dcgan.init)
    for batch in (1, 7):
      feed = {dcgan.sampler.z: np.zeros([batch, cfg.z_dim], np.float32)}
      if y_dim:
        feed[dcgan.sampler.labels] = np.arange(batch) % y_dim
      images = sess.run(dcgan.sampler.images, feed)
      assert images.shape == (batch, 20, 12, 3) and images.dtype == np.uint8
  names = {v.op.name for v in dcgan.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)}
  assert all(n.startswith(networks.GENERATOR + '/') or n == 'global_step' for n in names)


def _training_graph(y_dim=10, **kwargs):
  rng = np.random.default_rng(0)
  source = datasets.PixelSource('x', rng.integers(0, 256, (16, 28, 28, 1), dtype=np.uint8),
                                rng.integers(0, 10, 16).astype(np.int32), y_dim)
  cfg = dataclasses.replace(SMALL, output_height=28, output_width=28, y_dim=y_dim, batch_size=8, **kwargs)
  return model.DCGAN(cfg, source)


@pytest.mark.parametrize('y_dim, kwargs, expected', [
    (10, {}, ['discriminator', 'generator', 'global_step', 'inputs', 'losses', 'sample_images',
              'sample_labels', 'sample_z', 'sampler', 'save', 'train']),
    (0, {'ema': 0}, ['discriminator', 'generator', 'global_step', 'inputs', 'losses', 'sample_images',
                     'sample_z', 'sampler', 'save', 'train']),
    # TensorFlow names the second derivatives of batch norm for the penalty gradient_tape/ itself
    (0, {'loss': 'wasserstein', 'gradient_penalty': 10}, ['discriminator', 'generator', 'global_step',
                                                          'gradient_tape', 'inputs', 'losses', 'sample_images',
                                                          'sample_z', 'sampler', 'save', 'train']),
])
def test_the_graph_shows_its_stages_as_a_dozen_top_level_names(y_dim, kwargs, expected):
  graph = _training_graph(y_dim, **kwargs).graph.as_graph_def()
  assert sorted({node.name.split('/')[0] for node in graph.node}) == expected


def test_checkpoint_names_keep_the_names_of_older_checkpoints():
  dcgan = _training_graph()
  names = dcgan.checkpoint_names()
  assert {'beta1_power', 'beta2_power', 'beta1_power_1', 'beta2_power_1', 'global_step'} <= set(names)
  assert names['beta1_power'].op.name == 'train/beta1_power'  # D's optimizer, made first
  assert names['beta2_power_1'].op.name == 'train/beta2_power_1'  # G's
  averaged = {n.removesuffix('/ExponentialMovingAverage') for n in names if n.endswith('/ExponentialMovingAverage')}
  g_weights = {v.op.name for v in dcgan.graph.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES)
               if v.op.name.startswith('generator/')}
  g_statistics = {v.op.name for v in dcgan.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
                  if re.fullmatch(r'generator/[^/]+/moving_(mean|variance)', v.op.name)}
  assert g_weights and g_statistics
  # one moving average for each of G's weights, statistics of their own for each batch norm, and nothing else
  assert averaged == g_weights | g_statistics


@pytest.mark.parametrize('count,classes,cols,shown', [
    (64, 10, 7, list(range(10))), (100, 10, 10, list(range(10))), (64, 16, 4, list(range(16))),
    (64, 100, 4, [0, 7, 13, 20, 26, 33, 40, 46, 53, 59, 66, 73, 79, 86, 92, 99]),  # 16 rows of 100 classes
    (5, 10, 1, [0, 2, 4, 7, 9]), (64, 15, 5, [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14])])  # 13 rows filled
def test_sample_labels_give_one_row_per_shown_class(count, classes, cols, shown):
  labels, got_cols = model.sample_labels(count, classes)
  assert got_cols == cols and len(labels) == count
  assert model.grid_classes(count, classes)[0].tolist() == shown
  rows = [labels[i:i + cols] for i in range(0, count, cols)]
  assert all(len(set(row)) == 1 for row in rows)
  assert [row[0] for row in rows] == shown  # every shown class has its row, in order


def test_one_power_iteration_per_d_update_and_none_in_g_s(tmp_path):
  run = tiny_rgb_trainer(tmp_path, spectral_norm=True, d_batch_norm=False)
  dcgan = run.dcgan
  vectors = [v for v in dcgan.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES) if v.op.name.endswith('/u')]
  assert sorted(v.op.name for v in vectors) == [f'discriminator/{layer}/u' for layer in
                                                ('h0_conv', 'h1_conv', 'h2_conv', 'h3_conv', 'h4_lin')]
  assert not [v for v in dcgan.checkpoint_names() if v.startswith('discriminator/bn')]  # no batch norm in D
  assert set(v.op.name for v in vectors) <= set(dcgan.checkpoint_names())
  with run.session() as sess:
    sess.run(dcgan.init)
    run.start_epoch(sess, 0, 0)
    before = sess.run(vectors)
    sess.run(dcgan.train_ops.g_train, dcgan.step_feed(0))
    after_g = sess.run(vectors)
    sess.run(dcgan.train_ops.d_train, dcgan.step_feed(0, 0))
    after_d = sess.run(vectors)
  assert all(np.array_equal(a, b) for a, b in zip(before, after_g))
  assert all(not np.allclose(a, b) for a, b in zip(before, after_d))
