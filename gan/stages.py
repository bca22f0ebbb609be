"""The stages of one training step, as TF-GAN's `gan_model`, `gan_loss` and `gan_train_ops` build them.

inputs (GANInputs) -> model (GANModel: G once, D on real and on generated images) -> losses (GANLoss: one of
losses.LOSSES, and the gradient penalty) -> train ops (GANTrainOps: Adam for D, Adam for G). Each takes tensors and
returns tensors, so one replica's step runs under a `tf.distribute` strategy unchanged; model.DCGAN builds them
into its graph, each stage under its own name scope.

$ python main.py --train --dataset digits
"""

import collections
import re

import tensorflow as tf

from . import augment
from . import losses
from .networks import DISCRIMINATOR, GENERATOR, discriminator, generator

tf1 = tf.compat.v1

LOSS_SCALE_SCOPE = 'loss_scale'  # mixed float16's loss scales and overflow count: never in a checkpoint

GANInputs = collections.namedtuple('GANInputs', 'images labels z z_labels z_label_ids mix augment_seed')
"""images: float [batch, height, width, c_dim] in [-1, 1]; labels: their one-hot float [batch, y_dim] or None;
z: float [batch, z_dim]; z_labels: one-hot [batch, y_dim] asked of G, or None, of z_label_ids, the int32 [batch]
labels fed; mix: float [batch] in [0, 1], where the gradient penalty's images lie between real and generated, or
None without a penalty; augment_seed: int64 [2], the seed of this update's augmentations (--augment), or None.
G's inputs are fed, never read from the data iterator, so a G update does not consume a batch."""

GANModel = collections.namedtuple('GANModel', 'inputs generated real_seen real_logits fake_logits mixed '
                                              'mixed_logits')
"""generated: G(z) in [-1, 1]; real_seen: the real images as D sees them (augmented with --augment); real_logits:
D(x) [batch, 1]; fake_logits: D(G(z)) [batch, 1]: D's raw outputs (of the augmented images with --augment). For
the gradient penalty (else None): mixed, images between real and generated ones (inputs.mix of the way from G(z)
to x); mixed_logits, D on them."""

GANLoss = collections.namedtuple('GANLoss', 'd_loss g_loss penalty d_real d_fake r1')
"""Scalars: D's loss (with the weighted gradient penalty), G's loss, the penalty before its weight (0 without
one), and D(x) and D(G(z)) as the loss reads D: mean probabilities, or mean raw scores (see losses.py); r1, the R1
penalty before its weight (--r1), or None without it: D's loss adds it only in the lazy updates."""

GANTrainOps = collections.namedtuple('GANTrainOps', 'd_train d_train_r1 g_train step_inc')
"""d_train: one Adam step on D; d_train_r1: the same with --r1's penalty, r1_every times its weight, added (lazy
R1, as StyleGAN2: the trainer runs it every --r1_every steps instead of d_train), or None; g_train: one Adam step
on G, then its moving average; step_inc: adds 1 to global_step, once a step however many updates of D and G it
makes (TF-GAN's global_step_inc_op)."""


def gan_model(inputs, config):
  """Calls G once and D twice (on real images, then with shared variables on G's output), and with a gradient
  penalty a third time, on images between the real and the generated ones. With --augment, D sees every image
  augmented (augment.apply), real and generated each by draws of their own, and G's gradient flows through."""
  generated = generator(inputs.z, inputs.z_labels, config, is_training=True)
  real_seen, fake_seen = inputs.images, generated
  policies = augment.parse(config.augment)
  if policies:
    with tf.name_scope('augment'):
      real_seen = augment.apply(inputs.images, policies, inputs.augment_seed)
      fake_seen = augment.apply(generated, policies, inputs.augment_seed + tf.constant([1, 0], tf.int64))
  real_logits = discriminator(real_seen, inputs.labels, config)
  fake_logits = discriminator(fake_seen, inputs.z_labels, config, reuse=True)
  mixed = mixed_logits = None
  if inputs.mix is not None:
    with tf.name_scope('inputs/'):  # the third of D's inputs
      mix = tf.reshape(inputs.mix, [-1, 1, 1, 1])
      mixed = mix * real_seen + (1.0 - mix) * fake_seen
    mixed_logits = discriminator(mixed, inputs.labels, config, reuse=True)
  return GANModel(inputs, generated, real_seen, real_logits, fake_logits, mixed, mixed_logits)


def gan_loss(model, config):
  """The losses of --loss on D's logits, and with --gradient_penalty W, W times WGAN-GP's penalty added to D's."""
  loss = losses.LOSSES[config.loss]
  d_loss, g_loss = loss(model.real_logits, model.fake_logits)
  penalty = tf.constant(0.0)
  if config.gradient_penalty:
    penalty = losses.gradient_penalty(model.mixed, model.mixed_logits)
    d_loss += config.gradient_penalty * penalty
  shown = tf.sigmoid if loss.probability else tf.identity
  r1 = losses.r1_penalty(model.real_seen, model.real_logits) if config.r1 else None
  return GANLoss(d_loss=d_loss, g_loss=g_loss, penalty=penalty, d_real=tf.reduce_mean(shown(model.real_logits)),
                 d_fake=tf.reduce_mean(shown(model.fake_logits)), r1=r1)


def scope_collection(key, scope):
  """The members of a graph collection made under `scope`, including by later calls (`scope_1/`, ...)."""
  return tf1.get_collection(key, scope=re.escape(scope) + r'(_\d+)?/')


def learning_rate_scale(config, global_step, epoch_steps):
  """The factor on both learning rates at `global_step`: 1, or with --lr_decay_epochs N, falling linearly over the
  last N epochs of --epoch to 1/(N epochs' steps) at the last step (pix2pix's --n_epochs_decay)."""
  if not config.lr_decay_epochs:
    return 1.0
  left = tf.cast(config.epoch * epoch_steps - global_step, tf.float32)
  return tf.clip_by_value(left / float(config.lr_decay_epochs * epoch_steps), 0.0, 1.0)


def gan_train_ops(loss, config, global_step, epoch_steps):
  """One Adam optimizer for D and one for G (--d_learning_rate, --g_learning_rate, scaled by
  learning_rate_scale), each on its own variables and batch-norm (and spectral-norm) updates, and the op that
  counts steps.

  Raises:
    ValueError: a trainable variable or an update op belongs to neither network.
  """
  split = {}
  for key in (tf1.GraphKeys.TRAINABLE_VARIABLES, tf1.GraphKeys.UPDATE_OPS):
    split[key] = {net: scope_collection(key, net) for net in (GENERATOR, DISCRIMINATOR)}
    stray = set(tf1.get_collection(key)) - set(split[key][GENERATOR]) - set(split[key][DISCRIMINATOR])
    if stray:
      raise ValueError(f'{key} outside the {GENERATOR} and {DISCRIMINATOR} scopes: '
                       f'{sorted(x.name for x in stray)}')
  variables, updates = split[tf1.GraphKeys.TRAINABLE_VARIABLES], split[tf1.GraphKeys.UPDATE_OPS]

  overflows = None
  if config.precision == 'mixed_float16':
    with tf1.variable_scope(LOSS_SCALE_SCOPE):  # (not in checkpoints: a run resumes at any precision)
      overflows = tf1.get_variable('overflows', [], tf.int64, tf1.zeros_initializer(), trainable=False,
                                   aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
  scale = learning_rate_scale(config, global_step, epoch_steps)
  d_optimizer = _adam((config.d_learning_rate or config.learning_rate) * scale, config, 'd_adam', overflows)
  g_optimizer = _adam((config.g_learning_rate or config.learning_rate) * scale, config, 'g_adam', overflows)
  d_train = _minimize(d_optimizer, loss.d_loss, variables[DISCRIMINATOR], updates[DISCRIMINATOR], overflows)
  d_train_r1 = None
  if loss.r1 is not None:
    # Lazy R1 (StyleGAN2): every --r1_every steps this update runs instead of d_train, the penalty weighted that
    # many times; the same optimizer, so the same Adam moments
    lazy = loss.d_loss + config.r1_every * config.r1 / 2.0 * loss.r1
    d_train_r1 = _minimize(d_optimizer, lazy, variables[DISCRIMINATOR], updates[DISCRIMINATOR], overflows)
  g_train = _minimize(g_optimizer, loss.g_loss, variables[GENERATOR], updates[GENERATOR], overflows)
  return GANTrainOps(d_train=d_train, d_train_r1=d_train_r1, g_train=g_train, step_inc=global_step.assign_add(1))


def _adam(learning_rate, config, name, overflows):
  """Adam with --beta1 and --beta2; at mixed float16 (`overflows` given) inside dynamic loss scaling: float16
  gradients of the loss times a scale that grows until they overflow, then halves."""
  optimizer = tf1.train.AdamOptimizer(learning_rate, beta1=config.beta1, beta2=config.beta2, name=name)
  if overflows is None:
    return optimizer
  with tf1.variable_scope(LOSS_SCALE_SCOPE, reuse=tf1.AUTO_REUSE):
    return tf1.mixed_precision.MixedPrecisionLossScaleOptimizer(optimizer, 'dynamic')


def _minimize(optimizer, net_loss, variables, updates, overflows):
  """One step of `optimizer` on `net_loss` over `variables`, after the network's batch-norm and spectral-norm
  `updates`; at mixed float16 an update whose gradients overflowed is skipped by the optimizer, and counted."""
  with tf.control_dependencies(updates):
    gradients = optimizer.compute_gradients(net_loss, var_list=variables)
    train = optimizer.apply_gradients(gradients)
  if overflows is None:
    return train
  finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g, _ in gradients if g is not None])
  return tf.group(train, overflows.assign_add(tf.cast(tf.logical_not(finite), tf.int64)))
