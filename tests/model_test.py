"""model.py: the graph builds for many sizes, G and D own disjoint variables, update ops are split."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

import config as config_lib
import model

tf1 = tf.compat.v1

SMALL = config_lib.Config(gf_dim=4, df_dim=4, gfc_dim=16, dfc_dim=16, z_dim=8)


def _inputs(cfg, batch=None):
  images = tf1.placeholder(tf.float32, [batch, cfg.output_height, cfg.output_width, cfg.c_dim])
  z = tf1.placeholder(tf.float32, [batch, cfg.z_dim])
  labels = tf1.placeholder(tf.float32, [batch, cfg.y_dim]) if cfg.y_dim else None
  z_labels = tf1.placeholder(tf.float32, [batch, cfg.y_dim]) if cfg.y_dim else None
  return model.GANInputs(images=images, labels=labels, z=z, z_labels=z_labels)


@pytest.mark.parametrize('height,width,c_dim,y_dim', [
    (28, 28, 1, 10), (28, 28, 1, 0), (48, 48, 3, 0), (64, 64, 3, 0), (96, 96, 3, 0), (128, 128, 3, 0),
    (40, 56, 3, 0), (33, 21, 1, 4)])
def test_graph_builds_for_any_size(height, width, c_dim, y_dim):
  cfg = dataclasses.replace(SMALL, output_height=height, output_width=width, c_dim=c_dim, y_dim=y_dim)
  with tf.Graph().as_default():
    gan = model.gan_model(_inputs(cfg), cfg)
    loss = model.gan_loss(gan)
    model.gan_train_ops(loss, cfg, tf1.train.get_or_create_global_step())
    assert gan.generated.shape.as_list() == [None, height, width, c_dim]
    assert gan.real_logits.shape.as_list() == [None, 1]
    assert gan.fake_logits.shape.as_list() == [None, 1]


@pytest.mark.parametrize('y_dim', [0, 10])
def test_variables_and_update_ops_split_by_scope(y_dim):
  cfg = dataclasses.replace(SMALL, output_height=28, output_width=28, c_dim=1, y_dim=y_dim)
  with tf.Graph().as_default():
    gan = model.gan_model(_inputs(cfg), cfg)
    g_vars = model.scope_collection(tf1.GraphKeys.TRAINABLE_VARIABLES, model.GENERATOR)
    d_vars = model.scope_collection(tf1.GraphKeys.TRAINABLE_VARIABLES, model.DISCRIMINATOR)
    assert g_vars and d_vars
    assert not set(g_vars) & set(d_vars)
    assert set(g_vars) | set(d_vars) == set(tf1.trainable_variables())
    g_updates = model.scope_collection(tf1.GraphKeys.UPDATE_OPS, model.GENERATOR)
    d_updates = model.scope_collection(tf1.GraphKeys.UPDATE_OPS, model.DISCRIMINATOR)
    assert g_updates and d_updates and not set(g_updates) & set(d_updates)
    assert set(g_updates) | set(d_updates) == set(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS))
    # D's second call (on G's output) adds its own updates under discriminator_1/.
    assert any(op.name.startswith('discriminator_1/') for op in d_updates)
    before = len(tf1.trainable_variables())
    model.generator(gan.inputs.z, gan.inputs.z_labels, cfg, is_training=False, reuse=True)
    assert len(tf1.trainable_variables()) == before  # the sampler shares G's variables


def test_a_variable_outside_both_scopes_is_an_error():
  cfg = dataclasses.replace(SMALL, output_height=16, output_width=16, c_dim=1)
  with tf.Graph().as_default():
    loss = model.gan_loss(model.gan_model(_inputs(cfg), cfg))
    tf1.get_variable('stray', [1])
    with pytest.raises(ValueError, match='stray'):
      model.gan_train_ops(loss, cfg, tf1.train.get_or_create_global_step())


@pytest.mark.parametrize('y_dim', [0, 10])
def test_sampler_only_graph_generates_any_batch_size(y_dim):
  cfg = dataclasses.replace(SMALL, output_height=20, output_width=12, c_dim=3, y_dim=y_dim)
  dcgan = model.DCGAN(cfg)
  with dcgan.session() as sess:
    sess.run(dcgan.init)
    for batch in (1, 7):
      feed = {dcgan.sampler.z: np.zeros([batch, cfg.z_dim], np.float32)}
      if y_dim:
        feed[dcgan.sampler.labels] = np.arange(batch) % y_dim
      images = sess.run(dcgan.sampler.images, feed)
      assert images.shape == (batch, 20, 12, 3) and images.dtype == np.uint8
  names = {v.op.name for v in dcgan.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)}
  assert all(n.startswith(model.GENERATOR + '/') or n == 'global_step' for n in names)


@pytest.mark.parametrize('count,classes,cols', [(64, 10, 7), (100, 10, 10), (5, 10, 1)])
def test_sample_labels_give_one_row_per_class(count, classes, cols):
  labels, got_cols = model.sample_labels(count, classes)
  assert got_cols == cols and len(labels) == count
  rows = [labels[i:i + cols] for i in range(0, count, cols)]
  assert all(len(set(row)) == 1 for row in rows)
  assert [row[0] for row in rows] == [r % classes for r in range(len(rows))]
