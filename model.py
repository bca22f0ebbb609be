"""The DCGAN graph: the stages of a training step (stages.py: inputs -> model -> losses -> train ops, each a named
tuple, as TF-GAN's `gan_model` and friends), then the moving average of G's weights, on one device or under a
`tf.distribute` strategy, each stage under its own name scope (TensorBoard's Graph tab shows a dozen boxes); the
sampler (G again, on the averaged weights, in inference mode) and what saving and checking need; and Generator, the
sampler of a restored graph in a session. Running the training step is training/trainer.py's work.

$ python main.py --train --dataset digits
"""

import collections
import dataclasses
import math
import re

import numpy as np
import tensorflow as tf

from config import steps_per_epoch
import datasets
from gan import augment
from gan import average
from gan.networks import DISCRIMINATOR, generator
from gan import stages
import ops
import utils

tf1 = tf.compat.v1

SAMPLE_Z_STREAM = 1 << 31  # seeds the fixed grid z apart from the per-step z, which uses the step number
EMA_NAME = average.EMA_NAME  # the suffix of the averaged weights' names in checkpoints
LOSS_SCALE_SCOPE = stages.LOSS_SCALE_SCOPE

Sampler = collections.namedtuple('Sampler', 'z labels images')
"""z: placeholder [None, z_dim]; labels: int32 placeholder [None] or None; images: uint8 [None, h, w, c]."""


def _to_uint8(images):
  return tf.saturate_cast(tf.round((images + 1.0) * 127.5), tf.uint8)


GRID_ROWS = 16  # the most rows (classes) a sample grid shows: 100 classes would make 64 samples a 64x1 strip


def grid_classes(count, classes):
  """The classes a grid of `count` samples shows, one row each, and its columns: every class while they fit in
  GRID_ROWS rows and every row is filled, else as many as there are filled rows, spread evenly over the classes
  (the first and the last included)."""
  rows = min(classes, count, GRID_ROWS)
  cols = math.ceil(count / rows)
  rows = math.ceil(count / cols)  # the rows that `count` samples fill
  if rows >= classes:
    return np.arange(classes), cols
  return np.round(np.linspace(0, classes - 1, rows)).astype(np.int64), cols


def sample_labels(count, classes):
  """Labels for a grid with one row per shown class (grid_classes), and its columns."""
  shown, cols = grid_classes(count, classes)
  return shown[np.arange(count) // cols], cols


def _keeping_all(saver_def):
  """A copy of a Saver's SaverDef that keeps every checkpoint it writes: a Saver made from it writes through the
  same ops, and deletes nothing (checkpoints.save_best deletes the older best itself)."""
  copy = tf1.train.SaverDef()
  copy.CopyFrom(saver_def)
  copy.max_to_keep, copy.keep_checkpoint_every_n_hours = 0, 10000.0
  return copy


GANSaving = collections.namedtuple('GANSaving', 'latest best start_averages start_statistics sync_replicas '
                                                'step_spread')
"""What writing and reading checkpoints needs (names as DCGAN.checkpoint_names gives them): latest, the Saver of
the newest --max_to_keep checkpoints, which restores them too; best, that of best/ (checkpoints.save_best deletes
the older); start_averages, the op that starts G's moving averages and their batch-norm statistics at G's own (for
a checkpoint written before --ema), and start_statistics, that of the statistics alone (one written before they
existed); sync_replicas, the op that copies a restored variable's first replica to every replica (a Saver given
names reads that one only); step_spread, the variance of global_step across the workers' replicas, which must be
0 before the first step (workers that restored different steps would train apart)."""


class DCGAN:
  """The graph of a run: built with a dataset, the training step; without one, only the sampler (test mode).

  Attributes:
    config, dataset, graph, strategy (None on one device), global_step; steps_per_epoch (with a dataset).
    pipeline, inputs, model, loss, train_ops: the training step's stages (with a dataset).
    data_position: where the last D update's batch ended in its epoch's stream (datasets.make_pipeline), saved
      with the checkpoints, so that a run that skipped unreadable entries resumes exactly; -1 before any.
    average: the average.Average of G's weights (--ema), or None; overflows: at mixed float16, the
      count of updates skipped because their gradients overflowed, or None.
    sampler: a Sampler: G in inference mode on the averaged weights, for grids, --generate and export.
    init: initializes every variable.
    saving: a GANSaving (with a dataset; test mode's graph makes its Saver when it knows what the checkpoint holds).
  """

  def __init__(self, config, dataset=None):
    if config.c_dim is None or config.y_dim is None:
      raise ValueError('the config is not complete: completion.complete() fills in c_dim and y_dim from the data')
    self.config, self.dataset = config, dataset
    self.training = dataset is not None
    self.graph = tf.Graph()
    self.average = self.overflows = self.saving = None
    with self.graph.as_default():
      tf1.set_random_seed(config.seed)
      self.strategy = self._make_strategy()
      if self.training:
        with tf.name_scope('inputs'), tf.device('/cpu:0'):  # each worker reads its own share of every batch
          local = dataclasses.replace(config, batch_size=config.batch_size // config.num_workers)
          self.pipeline = datasets.make_pipeline(dataset, local)
          self.data_position = tf1.Variable(-1, dtype=tf.int64, trainable=False, name='data_position')
        self.steps_per_epoch = steps_per_epoch(config, dataset.num_images)
      with self.strategy.scope() if self.strategy else tf.device(config.device):
        self.global_step = tf1.train.get_or_create_global_step()
        if self.training:
          self._build_training()
        self.sampler = self._build_sampler()
        with tf.name_scope('train/'):
          self.init = tf1.global_variables_initializer()
      if self.training:  # (test mode's graph makes its Saver when it knows what the checkpoint holds, and export
        with tf.name_scope('save'):  # adds ops to the sampler's graph)
          self.saving = self._build_saving()
        self.graph.finalize()  # the training loop must not add ops

  def _make_strategy(self):
    """Several devices (--devices, --num_gpus) or machines (--strategy multi_worker): the same step runs as the
    replica function of a strategy; None on one device. Made inside the graph: made eagerly, it would place a
    variable on each device of the eager context, which has no second CPU."""
    cfg = self.config
    if cfg.multi_worker:
      resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
          tf.train.ClusterSpec({'worker': list(cfg.workers)}), task_type='worker', task_id=cfg.worker_index)
      return tf1.distribute.experimental.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    return tf1.distribute.MirroredStrategy(list(cfg.devices)) if len(cfg.devices) > 1 else None

  def _build_training(self):
    """The training step's stages, the overflow count of mixed float16, and the moving average of G."""
    with tf.name_scope('inputs/'):  # the stage's scope again, not inputs_1/
      self.inputs = self._build_inputs()
    self.model, self.loss, self.train_ops = self._build_step()
    with tf.name_scope('inputs/'):  # each D update records where its batch ended (G's take no images)
      record = lambda train: None if train is None else tf.group(
          train, self.data_position.assign(tf.reduce_max(self.pipeline.positions) + 1))
      self.train_ops = self.train_ops._replace(d_train=record(self.train_ops.d_train),
                                               d_train_r1=record(self.train_ops.d_train_r1))
    self.overflows = next((v for v in tf1.global_variables() if v.op.name == f'{LOSS_SCALE_SCOPE}/overflows'), None)
    if self.config.ema:
      self.average = average.build(self.config, self.global_step, self.train_ops.g_train, self.inputs.z,
                                   self.inputs.z_labels)
      self.train_ops = self.train_ops._replace(g_train=self.average.g_train)

  def _build_saving(self):
    """The GANSaving of the training graph."""
    cfg, names = self.config, self.checkpoint_names()
    latest = tf1.train.Saver(names, max_to_keep=cfg.max_to_keep, name='latest',
                             keep_checkpoint_every_n_hours=cfg.keep_every_hours or 10000.0)
    best = tf1.train.Saver(saver_def=_keeping_all(latest.saver_def))  # latest's ops, another list of files
    weights, statistics = self.averages(), self.average_statistics()
    start = lambda pairs, name: tf.group([a.assign(v) for v, a in pairs], name=name)
    sync_replicas, step_spread = tf.no_op(name='sync_replicas'), tf.constant(0.0, tf.float64)
    if self.strategy:
      with self.strategy.scope():  # (in the cross-replica context, assign writes every replica)
        sync_replicas = tf.group([v.assign(v.read_value()) for v in names.values()], name='sync_replicas')
        if cfg.multi_worker:
          def step_and_square():
            step = tf.cast(self.global_step.read_value(), tf.float64)
            return step, step * step
          steps, squares = self.strategy.extended.call_for_each_replica(step_and_square)
          mean = lambda value: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
          step_spread = mean(squares) - tf.square(mean(steps))
    return GANSaving(latest=latest, best=best, start_averages=start(weights + statistics, 'start_averages'),
                     start_statistics=start(statistics, 'start_statistics'), sync_replicas=sync_replicas,
                     step_spread=step_spread)

  def _build_step(self):
    """(GANModel, GANLoss, GANTrainOps) of one training step, on one device or split across the replicas.

    With a strategy, each replica takes its own slice of the global batch (the pipeline yields it once per step,
    so no batch is read twice), gradients and batch-norm statistics are averaged across replicas by the
    strategy, the losses are their mean over replicas, and the model's tensors are the replicas' concatenated.
    """
    cfg = self.config

    def step(inputs):
      model = stages.gan_model(inputs, cfg)
      with tf.name_scope('losses'):
        loss = stages.gan_loss(model, cfg)
      with tf.name_scope('train'):
        return model, loss, stages.gan_train_ops(loss, cfg, self.global_step, self.steps_per_epoch)

    if self.strategy is None:
      return self._with_power_iterations(*step(self.inputs))
    replicas = self.strategy.num_replicas_in_sync
    per_replica, local_replicas = cfg.batch_size // replicas, replicas // cfg.num_workers

    def replica_step(inputs):
      # Replica ids run worker by worker. The images are this worker's share of the batch; z is the whole
      # step's, the same on every worker, so the run does not depend on how the replicas are spread.
      index = tf.distribute.get_replica_context().replica_id_in_sync_group
      local = index % local_replicas
      cut = lambda t, i: None if t is None else t[i * per_replica:(i + 1) * per_replica]
      # each replica augments its share by draws of its own (its real and generated images: 2 index and 2 index + 1)
      seed = None if inputs.augment_seed is None else inputs.augment_seed + tf.cast([2 * index, 0], tf.int64)
      model, loss, train_ops = step(stages.GANInputs(
          images=cut(inputs.images, local), labels=cut(inputs.labels, local), z=cut(inputs.z, index),
          z_labels=cut(inputs.z_labels, index), z_label_ids=None, mix=cut(inputs.mix, index), augment_seed=seed))
      return model.generated, model.real_seen, model.real_logits, model.fake_logits, loss, train_ops

    generated, real_seen, real_logits, fake_logits, loss, train_ops = self.strategy.extended.call_for_each_replica(
        replica_step, args=(self.inputs,))
    concat = lambda value: tf.concat(self.strategy.experimental_local_results(value), axis=0)
    mean = lambda value: None if value is None else self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value,
                                                                         axis=None)
    group = lambda value: None if value is None else self.strategy.group(value)
    # (the penalty's images stay inside the replicas: only their loss leaves)
    return self._with_power_iterations(
        stages.GANModel(self.inputs, concat(generated), concat(real_seen), concat(real_logits), concat(fake_logits),
                        None, None),
        stages.GANLoss(*map(mean, loss)), stages.GANTrainOps(*map(group, train_ops)))

  def _with_power_iterations(self, model, loss, train_ops):
    """The stages; with --spectral_norm, each of D's updates followed by one power iteration of each of D's
    weights (ops.power_iteration_updates, made here, outside the replicas, so that a strategy runs them once)."""
    if not self.config.spectral_norm:
      return model, loss, train_ops
    d_variables = stages.scope_collection(tf1.GraphKeys.GLOBAL_VARIABLES, DISCRIMINATOR)

    def then_iterate(train):
      if train is None:
        return None
      with tf.name_scope('train/'), tf.control_dependencies([train]):
        return tf.group(train, *ops.power_iteration_updates(d_variables))

    return model, loss, train_ops._replace(d_train=then_iterate(train_ops.d_train),
                                           d_train_r1=then_iterate(train_ops.d_train_r1))

  def weights_finite(self, sess):
    """Whether every floating-point variable (weights, their averages, optimizer slots) is finite. Fetched
    through the variables' own read ops (a copy of them in memory for a moment): checks in the graph took three
    ops per variable, an eighth of the training graph."""
    floats = [v for v in self.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES) if v.dtype.base_dtype.is_floating]
    return all(np.isfinite(value).all() for value in sess.run(floats))

  def averages(self):
    """[(G's weight, its moving average)]; empty without --ema."""
    return self.average.weights if self.average else []

  def average_statistics(self):
    """[(a batch-norm statistic of G, that of the averaged G)]; empty without --ema, and at mixed_float16."""
    return self.average.statistics if self.average else []

  def _build_inputs(self):
    cfg = self.config
    images = tf.cast(self.pipeline.images, tf.float32) / 127.5 - 1.0
    z = tf1.placeholder(tf.float32, [None, cfg.z_dim], name='step_z')
    mix = tf1.placeholder(tf.float32, [None], name='step_mix') if cfg.gradient_penalty else None
    seed = tf1.placeholder(tf.int64, [2], name='step_augment_seed') if augment.parse(cfg.augment) else None
    if not cfg.y_dim:
      return stages.GANInputs(images=images, labels=None, z=z, z_labels=None, z_label_ids=None, mix=mix,
                              augment_seed=seed)
    label_ids = tf1.placeholder(tf.int32, [None], name='step_z_labels')
    return stages.GANInputs(images=images, labels=tf.one_hot(self.pipeline.labels, cfg.y_dim), z=z,
                            z_labels=tf.one_hot(label_ids, cfg.y_dim), z_label_ids=label_ids, mix=mix,
                            augment_seed=seed)

  def _build_sampler(self):
    """G in inference mode on its moving averages (when training with --ema; a test-mode graph loads the
    averages into G's own variables instead). Its inputs and output keep the names of the frozen graph."""
    cfg = self.config
    z = tf1.placeholder(tf.float32, [None, cfg.z_dim], name='sample_z')
    labels = tf1.placeholder(tf.int32, [None], name='sample_labels') if cfg.y_dim else None
    averaged = average.reading(self.averages() + self.average_statistics()) if self.average else None
    with tf.name_scope('sampler'):
      y = None if labels is None else tf.one_hot(labels, cfg.y_dim)
      images = _to_uint8(generator(z, y, cfg, is_training=False, reuse=self.training, custom_getter=averaged))
    return Sampler(z=z, labels=labels, images=tf.identity(images, name='sample_images'))

  def checkpoint_names(self):
    """{name in the checkpoint: variable}: each variable's own name, but Adam's accumulators, made in the `train`
    name scope, keep the names the first checkpoints of this program gave them (D's made first: beta1_power,
    beta2_power; then G's: beta1_power_1, beta2_power_1), so that a checkpoint of any version loads."""
    names = {}
    for variable in self.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES):
      name = variable.op.name
      if re.search(rf'(^|/){LOSS_SCALE_SCOPE}(_\d+)?/', name):
        continue  # (made anew by each run at mixed float16, so that a checkpoint resumes at any precision)
      names[name.removeprefix('train/') if re.fullmatch(r'train/beta[12]_power(_1)?', name) else name] = variable
    return names

  def step_feed(self, step, update=0):
    """G's z (and labels, drawn like the data's, the penalty's mix and the augmentations' seed) for one D or G
    update of a step: a function of the seed, the step and the update only, so that a resumed run feeds what it
    would have."""
    cfg = self.config
    rng = np.random.default_rng([cfg.seed, step] + ([update] if update else []))
    feed = {self.inputs.z: utils.noise(cfg.z_dist, [cfg.batch_size, cfg.z_dim], rng)}
    if cfg.y_dim:
      feed[self.inputs.z_label_ids] = self.dataset.labels[rng.integers(len(self.dataset), size=cfg.batch_size)]
    if self.inputs.mix is not None:
      feed[self.inputs.mix] = rng.uniform(size=cfg.batch_size).astype(np.float32)
    if self.inputs.augment_seed is not None:
      feed[self.inputs.augment_seed] = rng.integers(0, 1 << 62, size=2)
    return feed

  def sample_grid(self, sess):
    """The grid of the fixed sample z (one row per label for a conditional model), uint8 [H, W, c_dim]."""
    cfg = self.config
    z = utils.noise(cfg.z_dist, [cfg.sample_num, cfg.z_dim], [cfg.seed, SAMPLE_Z_STREAM])
    feed, cols = {self.sampler.z: z}, None
    if cfg.y_dim:
      labels, cols = sample_labels(cfg.sample_num, cfg.y_dim)
      feed[self.sampler.labels] = labels
    return utils.make_grid(sess.run(self.sampler.images, feed), cols)


class Generator:
  """G of a restored checkpoint: z (and labels) in, uint8 images out, in batches of any size."""

  def __init__(self, dcgan, sess):
    self.dcgan, self.sess, self.config = dcgan, sess, dcgan.config

  def __call__(self, z, labels=None):
    """z float [n, z_dim], labels int [n] (conditional) -> uint8 [n, height, width, c_dim]."""
    sampler, batch = self.dcgan.sampler, self.config.batch_size
    chunks = []
    for start in range(0, len(z), batch):
      feed = {sampler.z: z[start:start + batch]}
      if sampler.labels is not None:
        feed[sampler.labels] = np.asarray(labels)[start:start + batch]
      chunks.append(self.sess.run(sampler.images, feed))
    return np.concatenate(chunks)

  def z_for(self, seed, index):
    """The z of image `index` under `seed`: the same whatever N or the batch size."""
    return utils.noise(self.config.z_dist, [self.config.z_dim], [seed, index])

  def labels_for(self, labels, count):
    """`labels` repeated to `count`, or None for an unconditional model; None labels mean every class."""
    if not self.config.y_dim:
      return None
    labels = labels or list(range(self.config.y_dim))
    return np.resize(np.asarray(labels, np.int32), count)
