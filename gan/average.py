"""The moving average of G's weights that every sample uses (--ema), with batch-norm statistics of its own.

G's batch norms normalize by moving statistics at inference. Those that training moves are the statistics of G's
own weights, not of their average, and the averaged G sampled with them drew faces under a colour cast: on the
anime faces at step 936, statistics recomputed for the averaged weights took the swd of its samples from 37.5 to
28.9 and from 44.1 to 36.9 at two seeds (BigGAN's "standing statistics" answer the same mismatch). So the average
keeps statistics of its own: after each update of G and of its average, the averaged G runs in training mode on
the update's z, and its batch norms move the average's statistics as G's own move G's.

In a checkpoint both sit beside what they average, named `<name>/ExponentialMovingAverage`; a test-mode graph
loads them into G's own variables. At mixed_float16 the average keeps G's own statistics, as before: on a CPU,
Grappler's float16 rewrite (auto_mixed_precision_cpu, TensorFlow 2.21) crashed the process on the averaged G's
training-mode pass, and the GPU's rewrite could not be tried here.
"""

import collections

import tensorflow as tf

import ops
from .networks import GENERATOR, generator

tf1 = tf.compat.v1

EMA_NAME = 'ExponentialMovingAverage'  # the suffix of the averaged weights' (and statistics') names in checkpoints

Average = collections.namedtuple('Average', 'weights statistics g_train')
"""weights: [(G's trainable weight, its moving average)]; statistics: [(a moving statistic of G's batch norms, the
same statistic of the averaged G)]; g_train: G's update, then the average's, then the average's statistics'."""


def build(config, global_step, g_train, z, z_labels):
  """The Average of G's weights, moved after each run of `g_train` (G's update on z, z_labels).

  Its decay at step t is min(--ema, (1 + t) / (10 + t)) (TensorFlow's warm-up: the average spans about t/9 steps),
  or min(--ema, r t / (r t + 1)) with --ema_rampup r (about r t steps), so that early on it follows G closely and
  sample grids are never blank; before --ema_start, decay 0: the average is G's weights (BigGAN starts late).
  """
  with tf.name_scope('train/'):
    decay, num_updates = config.ema, global_step
    if config.ema_rampup:
      span = config.ema_rampup * tf.cast(global_step, tf.float32)
      decay, num_updates = tf.minimum(config.ema, span / (span + 1.0)), None
    if config.ema_start:
      decay = tf.where(global_step < config.ema_start, 0.0, decay)
    ema = tf1.train.ExponentialMovingAverage(decay, num_updates=num_updates, name=EMA_NAME)
    own = tf1.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES, scope=GENERATOR + '/')
    with tf.control_dependencies([g_train]):
      g_train = ema.apply(own)
    weights = [(v, ema.average(v)) for v in own]
    own_statistics = tf1.get_collection(ops.BATCH_NORM_STATISTICS, scope=GENERATOR + '/')
    if config.precision == 'mixed_float16':  # (see the module's docstring)
      own_statistics = []
    statistics = [(v, _statistic_of_the_average(v)) for v in own_statistics]
    if statistics:
      updates = tf1.get_collection_ref(tf1.GraphKeys.UPDATE_OPS)
      before = len(updates)
      with tf.control_dependencies([g_train]):
        generator(z, z_labels, config, is_training=True, reuse=True, custom_getter=reading(weights + statistics))
      g_train = tf.group(updates[before:])  # (each waits for g_train)
      del updates[before:]  # moved here, never by an optimizer
  return Average(weights=weights, statistics=statistics, g_train=g_train)


def _statistic_of_the_average(statistic):
  initializer = tf1.ones_initializer() if statistic.op.name.endswith('variance') else tf1.zeros_initializer()
  return tf1.get_variable(f'{statistic.op.name}/{EMA_NAME}', statistic.shape, initializer=initializer,
                          trainable=False, aggregation=tf.VariableAggregation.MEAN)


def reading(pairs):
  """A custom variable getter that gives, for each (variable, average) of `pairs`, the average instead."""
  averages = {v.op.name: a for v, a in pairs}

  def averaged(getter, name, *args, **kwargs):  # (TensorFlow passes the next getter by that name)
    return averages[name] if name in averages else getter(name, *args, **kwargs)
  return averaged
