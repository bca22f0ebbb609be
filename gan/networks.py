"""The two networks: the DCGAN generator and discriminator, conditioned on labels in one of three ways.

Each is one function. Its variables live in one variable scope (`generator/`, `discriminator/`), and every call
puts its ops under that same name scope, so that TensorBoard's Graph tab shows one `generator` and one
`discriminator` however often they are called (D on real images, on G's output, on the gradient penalty's
interpolates; G in training and as the sampler).

$ python main.py --train --dataset celebA --crop    # builds G and D at 64x64 from these functions
"""

import contextlib
import math

import tensorflow as tf

from ops import (WEIGHT_STDDEV, batch_norm, conv2d, conv_cond_concat, deconv2d, linear, lrelu, resize_conv2d,
                 spectrally_normalized)

tf1 = tf.compat.v1

GENERATOR = 'generator'
DISCRIMINATOR = 'discriminator'


@contextlib.contextmanager
def _scope(name, reuse, custom_getter=None):
  """The variable scope `name` whose ops go into the name scope `name/` of the current one, the same one call
  after call (not `name_1/`, `name_2/`): at the top level `generator/`, inside the sampler `sampler/generator/`."""
  current = tf1.get_default_graph().get_name_scope()
  with tf1.variable_scope(name, reuse=reuse, custom_getter=custom_getter, auxiliary_name_scope=False) as scope:
    with tf.name_scope(f'{current}/{name}/' if current else f'{name}/'):
      yield scope


def _halvings(size, times):
  """[size, ceil(size / 2), ceil(size / 4), ...], the spatial sizes of the layers."""
  sizes = [size]
  for _ in range(times):
    sizes.append(-(-sizes[-1] // 2))
  return sizes


def generator(z, y, config, is_training, reuse=False, custom_getter=None):
  """G: noise (and a one-hot label) -> an image.

  The DCGAN generator at any size; a conditional one (y given) by config.conditioning: 'projection' scales and
  offsets every batch norm by the label's own gamma and beta (class-conditional batch norm), 'concat' joins y to z,
  and 'mnist' is the original DCGAN code's conditional MNIST model (_mnist_generator). config.upsample picks how
  each layer doubles the maps: 'deconv', DCGAN's transposed 5x5 convolution, or 'resize', nearest-neighbour
  upsampling then a 3x3 convolution (ops.resize_conv2d).

  Args:
    z: float [batch, z_dim].
    y: one-hot float [batch, y_dim], or None for an unconditional model.
    config: a config.Config; reads output sizes, c_dim, y_dim, conditioning, gf_dim, gfc_dim, upsample.
    is_training: batch norm by batch statistics (True) or by moving averages (False, the sampler).
    reuse: share the variables made by an earlier call.
    custom_getter: a variable getter, e.g. one that reads the exponential moving averages of the weights.

  Returns:
    float [batch, output_height, output_width, c_dim] in [-1, 1].
  """
  with _scope(GENERATOR, reuse, custom_getter):
    conditioning = config.conditioning if config.y_dim else None
    if conditioning == 'mnist':
      return _mnist_generator(z, y, config, is_training)
    h, w, gf = config.output_height, config.output_width, config.gf_dim
    (h, h2, h4, h8, h16), (w, w2, w4, w8, w16) = _halvings(h, 4), _halvings(w, 4)
    labels = y if conditioning == 'projection' else None
    norm = lambda net, name: tf.nn.relu(batch_norm(net, is_training, labels=labels, name=name))
    up = resize_conv2d if config.upsample == 'resize' else deconv2d

    net = linear(tf.concat([z, y], axis=1) if conditioning == 'concat' else z, gf * 8 * h16 * w16, name='h0_lin')
    net = norm(tf.reshape(net, [-1, h16, w16, gf * 8]), 'bn0')
    # [batch, h/16, w/16, gf_dim * 8]

    net = norm(up(net, (h8, w8), gf * 4, name='h1'), 'bn1')
    # [batch, h/8, w/8, gf_dim * 4]

    net = norm(up(net, (h4, w4), gf * 2, name='h2'), 'bn2')
    # [batch, h/4, w/4, gf_dim * 2]

    net = norm(up(net, (h2, w2), gf, name='h3'), 'bn3')
    # [batch, h/2, w/2, gf_dim]

    return tf.nn.tanh(up(net, (h, w), config.c_dim, name='h4'))
    # [batch, h, w, c_dim]


def _mnist_generator(z, y, config, is_training):
  """The conditional G of the original DCGAN code's MNIST model: y joins z and every hidden layer."""
  h, w, gf = config.output_height, config.output_width, config.gf_dim
  (h, h2, h4), (w, w2, w4) = _halvings(h, 2), _halvings(w, 2)

  net = tf.concat([z, y], axis=1)
  net = tf.nn.relu(batch_norm(linear(net, config.gfc_dim, name='h0_lin'), is_training, name='bn0'))
  # [batch, gfc_dim]

  net = tf.concat([net, y], axis=1)
  net = tf.nn.relu(batch_norm(linear(net, gf * 2 * h4 * w4, name='h1_lin'), is_training, name='bn1'))
  net = tf.reshape(net, [-1, h4, w4, gf * 2])
  # [batch, h/4, w/4, gf_dim * 2]

  net = conv_cond_concat(net, y)
  net = tf.nn.relu(batch_norm(deconv2d(net, (h2, w2), gf * 2, name='h2'), is_training, name='bn2'))
  # [batch, h/2, w/2, gf_dim * 2]

  net = conv_cond_concat(net, y)
  return tf.nn.tanh(deconv2d(net, (h, w), config.c_dim, name='h3'))
  # [batch, h, w, c_dim]


def discriminator(images, y, config, reuse=False):
  """D: an image (and a one-hot label) -> its logit, the raw score the loss reads (see losses.py).

  The DCGAN discriminator at any size; a conditional one (y given) by config.conditioning: 'projection' adds to
  the logit the inner product of the last features with the label's own learned vector (the projection
  discriminator, Miyato and Koyama 2018), 'concat' joins y to the image as constant feature maps, and 'mnist' is
  the original DCGAN code's conditional MNIST model (_mnist_discriminator).

  Always in training mode: batch norm uses the statistics of the batch it is given, so real and fake
  batches are normalized apart, as in the original DCGAN code. --spectral_norm divides every weight by its
  largest singular value (one power iteration per D update, ops.spectrally_normalized); --nod_batch_norm drops
  D's batch norms, as SN-DCGAN does.

  Args:
    images: float [batch, output_height, output_width, c_dim] in [-1, 1].
    y: one-hot float [batch, y_dim], or None for an unconditional model.
    config: a config.Config; reads c_dim, y_dim, conditioning, df_dim, dfc_dim, spectral_norm, d_batch_norm.
    reuse: share the variables made by an earlier call.

  Returns:
    float logits [batch, 1].
  """
  with _scope(DISCRIMINATOR, reuse):
    conditioning = config.conditioning if config.y_dim else None
    if conditioning == 'mnist':
      return _mnist_discriminator(images, y, config)
    df, sn = config.df_dim, config.spectral_norm
    norm = (lambda net, name: batch_norm(net, True, name=name)) if config.d_batch_norm else (lambda net, _: net)

    net = lrelu(conv2d(conv_cond_concat(images, y) if conditioning == 'concat' else images, df, spectral_norm=sn,
                       name='h0_conv'))
    # [batch, h/2, w/2, df_dim]

    net = lrelu(norm(conv2d(net, df * 2, spectral_norm=sn, name='h1_conv'), 'bn1'))
    # [batch, h/4, w/4, df_dim * 2]

    net = lrelu(norm(conv2d(net, df * 4, spectral_norm=sn, name='h2_conv'), 'bn2'))
    # [batch, h/8, w/8, df_dim * 4]

    net = lrelu(norm(conv2d(net, df * 8, spectral_norm=sn, name='h3_conv'), 'bn3'))
    # [batch, h/16, w/16, df_dim * 8]

    features = tf.reshape(net, [-1, math.prod(net.shape[1:])])
    logits = linear(features, 1, spectral_norm=sn, name='h4_lin')
    # [batch, 1]
    if conditioning == 'projection':
      with tf1.variable_scope('h4_proj'):
        embedding = tf1.get_variable('w', [config.y_dim, features.shape[1]],
                                     initializer=tf1.random_normal_initializer(stddev=WEIGHT_STDDEV))
        if sn:
          embedding = spectrally_normalized(embedding)
      logits += tf.reduce_sum(features * tf.matmul(y, embedding), axis=1, keepdims=True)
    return logits


def _mnist_discriminator(images, y, config):
  """The conditional D of the original DCGAN code's MNIST model: y joins the image and every hidden layer."""
  sn = config.spectral_norm
  norm = (lambda net, name: batch_norm(net, True, name=name)) if config.d_batch_norm else (lambda net, _: net)
  net = conv_cond_concat(images, y)
  net = lrelu(conv2d(net, config.c_dim + config.y_dim, spectral_norm=sn, name='h0_conv'))
  # [batch, h/2, w/2, c_dim + y_dim]

  net = conv_cond_concat(net, y)
  net = lrelu(norm(conv2d(net, config.df_dim + config.y_dim, spectral_norm=sn, name='h1_conv'), 'bn1'))
  # [batch, h/4, w/4, df_dim + y_dim]

  net = tf.concat([tf.reshape(net, [-1, math.prod(net.shape[1:])]), y], axis=1)
  net = lrelu(norm(linear(net, config.dfc_dim, spectral_norm=sn, name='h2_lin'), 'bn2'))
  # [batch, dfc_dim]

  net = tf.concat([net, y], axis=1)
  return linear(net, 1, spectral_norm=sn, name='h3_lin')
  # [batch, 1]
