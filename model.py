"""The DCGAN: a static TF1 graph of generator and discriminator, its training loop, samples and checkpoints.

The graph is built in stages, each handing the next a named tuple: inputs (GANInputs) -> model (GANModel) ->
losses (GANLoss) -> train ops (GANTrainOps). `gan_model`, `gan_loss` and `gan_train_ops` take tensors and return
tensors, so one replica's step can run under a `tf.distribute` strategy unchanged.

$ python main.py --train --dataset digits
"""

import collections
import dataclasses
import math
import os
import re

import numpy as np
import tensorflow as tf
from absl import logging

import checkpoints
import cluster as cluster_lib
import config as config_lib
import datasets
import generate
import safety
import utils
from errors import Diverged, UserError, first_line
from ops import batch_norm, conv2d, conv_cond_concat, deconv2d, linear, lrelu

tf1 = tf.compat.v1

GENERATOR = 'generator'
DISCRIMINATOR = 'discriminator'
SAMPLE_Z_STREAM = 1 << 31  # seeds the fixed grid z apart from the per-step z, which uses the step number

GANInputs = collections.namedtuple('GANInputs', 'images labels z z_labels')
"""images: float [batch, height, width, c_dim] in [-1, 1]; labels: their one-hot float [batch, y_dim] or None;
z: float [batch, z_dim]; z_labels: one-hot [batch, y_dim] asked of G, or None. G's inputs are fed, never read
from the data iterator, so a G update does not consume a batch."""

GANModel = collections.namedtuple('GANModel', 'inputs generated real_logits fake_logits')
"""generated: G(z) in [-1, 1]; real_logits: D(x) [batch, 1]; fake_logits: D(G(z)) [batch, 1]."""

GANLoss = collections.namedtuple('GANLoss', 'd_loss_real d_loss_fake d_loss g_loss d_real d_fake')
"""Scalar losses, and the mean probabilities D(x) and D(G(z))."""

GANTrainOps = collections.namedtuple('GANTrainOps', 'd_train g_train')
"""d_train: one Adam step on D (and moves global_step); g_train: one Adam step on G."""

Sampler = collections.namedtuple('Sampler', 'z labels images')
"""z: placeholder [None, z_dim]; labels: int32 placeholder [None] or None; images: uint8 [None, h, w, c]."""


def _halvings(size, times):
  """[size, ceil(size / 2), ceil(size / 4), ...], the spatial sizes of the layers."""
  sizes = [size]
  for _ in range(times):
    sizes.append(-(-sizes[-1] // 2))
  return sizes


def generator(z, y, config, is_training, reuse=False):
  """G: noise (and a one-hot label) -> an image.

  Args:
    z: float [batch, z_dim].
    y: one-hot float [batch, y_dim], or None for an unconditional model.
    config: a config.Config; reads output sizes, c_dim, y_dim, gf_dim, gfc_dim.
    is_training: batch norm by batch statistics (True) or by moving averages (False, the sampler).
    reuse: share the variables made by an earlier call.

  Returns:
    float [batch, output_height, output_width, c_dim] in [-1, 1].
  """
  with tf1.variable_scope(GENERATOR, reuse=reuse):
    if config.y_dim:
      return _conditional_generator(z, y, config, is_training)
    h, w, gf = config.output_height, config.output_width, config.gf_dim
    (h, h2, h4, h8, h16), (w, w2, w4, w8, w16) = _halvings(h, 4), _halvings(w, 4)

    net = linear(z, gf * 8 * h16 * w16, name='h0_lin')
    net = tf.reshape(net, [-1, h16, w16, gf * 8])
    net = tf.nn.relu(batch_norm(net, is_training, name='bn0'))
    # [batch, h/16, w/16, gf_dim * 8]

    net = tf.nn.relu(batch_norm(deconv2d(net, (h8, w8), gf * 4, name='h1'), is_training, name='bn1'))
    # [batch, h/8, w/8, gf_dim * 4]

    net = tf.nn.relu(batch_norm(deconv2d(net, (h4, w4), gf * 2, name='h2'), is_training, name='bn2'))
    # [batch, h/4, w/4, gf_dim * 2]

    net = tf.nn.relu(batch_norm(deconv2d(net, (h2, w2), gf, name='h3'), is_training, name='bn3'))
    # [batch, h/2, w/2, gf_dim]

    return tf.nn.tanh(deconv2d(net, (h, w), config.c_dim, name='h4'))
    # [batch, h, w, c_dim]


def _conditional_generator(z, y, config, is_training):
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
  """D: an image (and a one-hot label) -> the logit that it is real.

  Always in training mode: batch norm uses the statistics of the batch it is given, so real and fake
  batches are normalized apart, as in the original DCGAN code.

  Args:
    images: float [batch, output_height, output_width, c_dim] in [-1, 1].
    y: one-hot float [batch, y_dim], or None for an unconditional model.
    config: a config.Config; reads c_dim, y_dim, df_dim, dfc_dim.
    reuse: share the variables made by an earlier call.

  Returns:
    float logits [batch, 1].
  """
  with tf1.variable_scope(DISCRIMINATOR, reuse=reuse):
    if config.y_dim:
      return _conditional_discriminator(images, y, config)
    df = config.df_dim

    net = lrelu(conv2d(images, df, name='h0_conv'))
    # [batch, h/2, w/2, df_dim]

    net = lrelu(batch_norm(conv2d(net, df * 2, name='h1_conv'), True, name='bn1'))
    # [batch, h/4, w/4, df_dim * 2]

    net = lrelu(batch_norm(conv2d(net, df * 4, name='h2_conv'), True, name='bn2'))
    # [batch, h/8, w/8, df_dim * 4]

    net = lrelu(batch_norm(conv2d(net, df * 8, name='h3_conv'), True, name='bn3'))
    # [batch, h/16, w/16, df_dim * 8]

    net = tf.reshape(net, [-1, math.prod(net.shape[1:])])
    return linear(net, 1, name='h4_lin')
    # [batch, 1]


def _conditional_discriminator(images, y, config):
  """The conditional D of the original DCGAN code's MNIST model: y joins the image and every hidden layer."""
  net = conv_cond_concat(images, y)
  net = lrelu(conv2d(net, config.c_dim + config.y_dim, name='h0_conv'))
  # [batch, h/2, w/2, c_dim + y_dim]

  net = conv_cond_concat(net, y)
  net = lrelu(batch_norm(conv2d(net, config.df_dim + config.y_dim, name='h1_conv'), True, name='bn1'))
  # [batch, h/4, w/4, df_dim + y_dim]

  net = tf.concat([tf.reshape(net, [-1, math.prod(net.shape[1:])]), y], axis=1)
  net = lrelu(batch_norm(linear(net, config.dfc_dim, name='h2_lin'), True, name='bn2'))
  # [batch, dfc_dim]

  net = tf.concat([net, y], axis=1)
  return linear(net, 1, name='h3_lin')
  # [batch, 1]


def gan_model(inputs, config):
  """Calls G once and D twice (on real images, then with shared variables on G's output)."""
  generated = generator(inputs.z, inputs.z_labels, config, is_training=True)
  real_logits = discriminator(inputs.images, inputs.labels, config)
  fake_logits = discriminator(generated, inputs.z_labels, config, reuse=True)
  return GANModel(inputs, generated, real_logits, fake_logits)


def gan_loss(model):
  """The non-saturating GAN losses by sigmoid cross-entropy on D's logits."""
  xent = tf.nn.sigmoid_cross_entropy_with_logits
  real, fake = model.real_logits, model.fake_logits
  d_loss_real = tf.reduce_mean(xent(labels=tf.ones_like(real), logits=real))
  d_loss_fake = tf.reduce_mean(xent(labels=tf.zeros_like(fake), logits=fake))
  g_loss = tf.reduce_mean(xent(labels=tf.ones_like(fake), logits=fake))
  return GANLoss(d_loss_real=d_loss_real, d_loss_fake=d_loss_fake, d_loss=d_loss_real + d_loss_fake,
                 g_loss=g_loss, d_real=tf.reduce_mean(tf.sigmoid(real)),
                 d_fake=tf.reduce_mean(tf.sigmoid(fake)))


def scope_collection(key, scope):
  """The members of a graph collection made under `scope`, including by later calls (`scope_1/`, ...)."""
  return tf1.get_collection(key, scope=re.escape(scope) + r'(_\d+)?/')


def gan_train_ops(loss, config, global_step):
  """One Adam optimizer for D and one for G, each on its own variables and batch-norm updates.

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

  d_optimizer = tf1.train.AdamOptimizer(config.learning_rate, beta1=config.beta1, name='d_adam')
  with tf.control_dependencies(updates[DISCRIMINATOR]):
    d_train = d_optimizer.minimize(loss.d_loss, var_list=variables[DISCRIMINATOR], global_step=global_step)
  g_optimizer = tf1.train.AdamOptimizer(config.learning_rate, beta1=config.beta1, name='g_adam')
  with tf.control_dependencies(updates[GENERATOR]):
    g_train = g_optimizer.minimize(loss.g_loss, var_list=variables[GENERATOR])
  return GANTrainOps(d_train=d_train, g_train=g_train)


def _to_uint8(images):
  return tf.saturate_cast(tf.round((images + 1.0) * 127.5), tf.uint8)


def session_config(device, xla=False, devices=()):
  """A ConfigProto with soft placement (GPU ops fall back to the CPU), GPU memory taken as needed, and XLA JIT
  compiling the step when `xla`.

  On one CPU, ops run one at a time, each on every core: two convolutions at once only take turns on the same
  cores, and measured a few percent slower and less steady (bench/README.md). Replicas (`devices`) need ops to
  run side by side, since each waits for the others in the all-reduce; CPU replicas '/cpu:N' need N + 1 CPU
  devices, which a v1 session makes only when asked through device_count.
  """
  specs = [tf.DeviceSpec.from_string(name) for name in devices] or [tf.DeviceSpec.from_string(device)]
  on_one_cpu = len(specs) == 1 and specs[0].device_type == 'CPU'
  cpus = 1 + max((spec.device_index or 0 for spec in specs if spec.device_type == 'CPU'), default=0)
  proto = tf1.ConfigProto(allow_soft_placement=True, inter_op_parallelism_threads=1 if on_one_cpu else 0,
                          device_count={'CPU': cpus})
  proto.gpu_options.allow_growth = True
  if xla:
    proto.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
  return proto


def sample_labels(count, classes):
  """Labels for a grid with one row per class: row r shows class r % classes."""
  cols = math.ceil(count / classes)
  return (np.arange(count) // cols) % classes, cols


class DCGAN:
  """The graph, the session and the work done with them: training, sample grids, checkpoints.

  Build with a Dataset to train; without one, the graph holds only the sampler (test mode).
  """

  def __init__(self, config, dataset=None):
    self.config = config
    self.dataset = dataset
    if dataset is not None:  # each epoch visits a fresh shuffle's first train_size images, in whole batches
      self.steps_per_epoch = min(len(dataset), config.train_size or len(dataset)) // config.batch_size
    self.cluster = cluster_lib.from_environment() if config.multi_worker else None
    self.worker, self.num_workers = (self.cluster.index, len(self.cluster.workers)) if self.cluster else (0, 1)
    self.is_chief = self.worker == 0  # writes checkpoints, samples and summaries; other workers only train
    # Each worker saves to a scratch folder of its own, so that a worker's checkpoint can be checked by hand
    self.save_dir = config.checkpoint_path if self.is_chief else os.path.join(config.checkpoint_path,
                                                                              f'worker_{self.worker}')
    self.graph = tf.Graph()
    with self.graph.as_default():
      tf1.set_random_seed(config.seed)
      # Several devices (--devices, --num_gpus) or machines (--strategy multi_worker): the same step runs as the
      # replica function of a strategy. Made inside the graph: made eagerly, it would place a variable on each
      # device of the eager context, which has no second CPU.
      self.strategy = None
      if config.multi_worker:
        self.strategy = tf1.distribute.experimental.MultiWorkerMirroredStrategy()  # reads TF_CONFIG
      elif len(config.devices) > 1:
        self.strategy = tf1.distribute.MirroredStrategy(list(config.devices))
      self.proto = self._session_config()
      if dataset is not None:
        with tf.device('/cpu:0'):  # each worker reads its own share of every batch
          local = dataclasses.replace(config, batch_size=config.batch_size // self.num_workers)
          self.pipeline = datasets.make_pipeline(dataset, local)
      with self.strategy.scope() if self.strategy else tf.device(config.device):
        self.global_step = tf1.train.get_or_create_global_step()
        if dataset is not None:
          self.inputs = self._build_inputs()
          self.model, self.loss, self.train_ops = self._build_step()
          self.histograms = tf1.summary.merge([
              tf1.summary.histogram('z', self.inputs.z),
              tf1.summary.histogram('D_logits_real', self.model.real_logits),
              tf1.summary.histogram('D_logits_fake', self.model.fake_logits)])
        self.sampler = self._build_sampler(reuse=dataset is not None)
        floats = [v for v in tf1.global_variables() if v.dtype.base_dtype.is_floating]
        self.weights_finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in floats])
      self.saver = tf1.train.Saver(max_to_keep=config.max_to_keep,
                                   keep_checkpoint_every_n_hours=config.keep_every_hours or 10000.0)
      self.best_saver = tf1.train.Saver(max_to_keep=None)  # checkpoints.save_best deletes the older best
      self.init = tf1.global_variables_initializer()
    self.server = None
    if self.cluster:
      try:
        self.server = tf.distribute.Server(tf.train.ClusterSpec({'worker': list(self.cluster.workers)}),
                                           job_name='worker', task_index=self.worker, config=self.proto)
      except (tf.errors.OpError, ValueError) as e:
        raise UserError(f'worker {self.worker} could not serve on {self.cluster.workers[self.worker]}: '
                        f'{first_line(e)}') from None
    if dataset is not None:
      self.graph.finalize()  # the training loop must not add ops (export adds some to the sampler graph)

  def _build_step(self):
    """(GANModel, GANLoss, GANTrainOps) of one training step, on one device or split across the replicas.

    With a strategy, each replica takes its own slice of the global batch (the pipeline yields it once per step,
    so no batch is read twice), gradients and batch-norm statistics are averaged across replicas by the
    strategy, the losses are their mean over replicas, and the model's tensors are the replicas' concatenated.
    """
    cfg = self.config
    if self.strategy is None:
      model = gan_model(self.inputs, cfg)
      loss = gan_loss(model)
      return model, loss, gan_train_ops(loss, cfg, self.global_step)
    replicas = self.strategy.num_replicas_in_sync
    per_replica, local_replicas = cfg.batch_size // replicas, replicas // self.num_workers

    def replica_step(inputs):
      # Replica ids run worker by worker. The images are this worker's share of the batch; z is the whole
      # step's, the same on every worker, so the run does not depend on how the replicas are spread.
      index = tf.distribute.get_replica_context().replica_id_in_sync_group
      local = index % local_replicas
      cut = lambda t, i: None if t is None else t[i * per_replica:(i + 1) * per_replica]
      model = gan_model(GANInputs(images=cut(inputs.images, local), labels=cut(inputs.labels, local),
                                  z=cut(inputs.z, index), z_labels=cut(inputs.z_labels, index)), cfg)
      loss = gan_loss(model)
      return model.generated, model.real_logits, model.fake_logits, loss, gan_train_ops(loss, cfg, self.global_step)

    generated, real_logits, fake_logits, loss, train_ops = self.strategy.extended.call_for_each_replica(
        replica_step, args=(self.inputs,))
    concat = lambda value: tf.concat(self.strategy.experimental_local_results(value), axis=0)
    mean = lambda value: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
    return (GANModel(self.inputs, concat(generated), concat(real_logits), concat(fake_logits)),
            GANLoss(*map(mean, loss)), GANTrainOps(*map(self.strategy.group, train_ops)))

  def _build_inputs(self):
    cfg = self.config
    images = tf.cast(self.pipeline.images, tf.float32) / 127.5 - 1.0
    z = tf1.placeholder(tf.float32, [None, cfg.z_dim], name='step_z')
    self.z_label_ids = tf1.placeholder(tf.int32, [None], name='step_z_labels') if cfg.y_dim else None
    if not cfg.y_dim:
      return GANInputs(images=images, labels=None, z=z, z_labels=None)
    return GANInputs(images=images, labels=tf.one_hot(self.pipeline.labels, cfg.y_dim), z=z,
                     z_labels=tf.one_hot(self.z_label_ids, cfg.y_dim))

  def _build_sampler(self, reuse):
    cfg = self.config
    z = tf1.placeholder(tf.float32, [None, cfg.z_dim], name='sample_z')
    labels = tf1.placeholder(tf.int32, [None], name='sample_labels') if cfg.y_dim else None
    y = None if labels is None else tf.one_hot(labels, cfg.y_dim)
    images = generator(z, y, cfg, is_training=False, reuse=reuse)
    return Sampler(z=z, labels=labels, images=tf.identity(_to_uint8(images), name='sample_images'))

  def _session_config(self):
    cfg = self.config
    proto = session_config(cfg.device, cfg.xla, cfg.devices)
    if cfg.multi_worker:
      proto = self.strategy.update_config_proto(proto)
      proto.inter_op_parallelism_threads = 0  # the all-reduce waits on the other workers: ops side by side
      # A worker that died leaves the others waiting in the all-reduce: give up after --worker_timeout
      proto.operation_timeout_in_ms = int(cfg.worker_timeout * 1000)
    return proto

  def session(self):
    """A session with session_config(): soft placement, GPU memory as needed, XLA JIT with --xla; on this
    worker's server with --strategy multi_worker."""
    return tf1.Session(self.server.target if self.server else '', graph=self.graph, config=self.proto)

  # Checkpoints

  def restore(self, sess, step=None):
    """Loads the newest complete checkpoint of this run's key (or that of `step`), after checking that it fits.

    Broken newer checkpoints (a killed save) are set aside with a warning; see checkpoints.newest_complete.

    Args:
      sess: a session of this graph.
      step: None for the newest checkpoint, a step number, or checkpoints.BEST for the one in best/.

    Returns:
      The checkpoint's path, or None when there is none (then nothing is loaded).

    Raises:
      UserError: the checkpoint was written with flags that give variables of other shapes, or `step` has no
        complete checkpoint (or there is no best one).
    """
    cfg = self.config
    path = checkpoints.find(cfg.checkpoint_path, step)
    if path is None:
      return None
    saved = config_lib.load(cfg.checkpoint_path)
    differences = config_lib.shape_differences(saved, cfg) if saved else []
    if differences:
      raise UserError(f'the checkpoint in {cfg.checkpoint_path} does not fit: it was trained with ' +
                      ', '.join(f'{_describe_field(f)} {old} (now {new})' for f, old, new in differences) +
                      '; use the old values or another --checkpoint_dir')
    stored = dict(tf.train.list_variables(path))
    for variable in self.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES):
      name, shape = variable.op.name, variable.shape.as_list()
      if stored.get(name) != shape:
        found = 'is missing' if name not in stored else f'has shape {stored[name]}'
        raise UserError(f'the checkpoint {path} does not fit this model: variable {name} {found}, '
                        f'the model needs {shape}; it was written by another configuration')
    self.saver.restore(sess, path)
    # --max_to_keep counts the checkpoints of earlier runs too
    self.saver.set_last_checkpoints_with_time(
        [(p, os.path.getmtime(p + '.index')) for p in checkpoints.managed(self.save_dir)])
    return path

  def save(self, sess, step, last_good=None):
    """Writes checkpoint/<key>/DCGAN.model-<step>, keeping the newest --max_to_keep.

    Raises:
      Diverged: a weight is NaN or Inf; nothing is written.
      UserError: the checkpoint could not be written; `last_good` (a path or None) is left intact.
    """
    self._check_weights(sess, step, last_good)
    return checkpoints.save(self.saver, sess, self.save_dir, step, last_good)

  def _check_weights(self, sess, step, last_good):
    """Raises Diverged when a weight is NaN or Inf: such weights are never saved."""
    if not sess.run(self.weights_finite):
      raise Diverged(f'training diverged by step {step}: a weight is NaN or Inf, so it was not saved. '
                     f'{safety.resume_hint(last_good)}')

  # Samples

  def sample_grid(self, sess):
    """The grid of the fixed sample z (one row per label for a conditional model), uint8 [H, W, c_dim]."""
    cfg = self.config
    z = utils.noise(cfg.z_dist, [cfg.sample_num, cfg.z_dim], [cfg.seed, SAMPLE_Z_STREAM])
    feed, cols = {self.sampler.z: z}, None
    if cfg.y_dim:
      labels, cols = sample_labels(cfg.sample_num, cfg.y_dim)
      feed[self.sampler.labels] = labels
    return utils.make_grid(sess.run(self.sampler.images, feed), cols)

  # Training

  def train(self, from_step=None, evaluator=None):
    """Trains until --epoch epochs are done, resuming at the epoch and batch of the newest checkpoint.

    Args:
      from_step: resume from this step's checkpoint (or checkpoints.BEST: the best one) instead, moving newer
        ones to checkpoint/<key>/rolled_back/.
      evaluator: an evaluation.Evaluator to score the samples every --eval_freq steps (and at the end), keeping
        the best checkpoint by --best_metric in checkpoint/<key>/best/; None to not evaluate.

    Returns:
      (the step reached, the signal name that stopped training early or None).

    Raises:
      Diverged: a loss or a weight became NaN or Inf (nothing of that state is saved).
      UserError: a checkpoint does not fit or could not be written.
    """
    cfg, steps_per_epoch = self.config, self.steps_per_epoch
    total_steps = cfg.epoch * steps_per_epoch
    with self.session() as sess, safety.GracefulStop() as stop:
      sess.run(self.init)
      last_good = self.restore(sess, from_step)
      step = start = saved = int(sess.run(self.global_step))
      if from_step is not None and self.is_chief:
        checkpoints.roll_back(cfg.checkpoint_path, step)
      logging.info('%s at step %d (epoch %d, batch %d)', f'resumed from {last_good}' if last_good else 'started',
                   step, step // steps_per_epoch, step % steps_per_epoch)
      if self.is_chief:
        config_lib.save(cfg, cfg.checkpoint_path)
      writer = tf1.summary.FileWriter(cfg.log_path, self.graph) if self.is_chief else _NoSummaries()
      progress = utils.Progress(start, total_steps, steps_per_epoch, cfg.batch_size, cfg.log_freq)
      watch = safety.DiscriminatorWinWatch()
      try:
        while step < total_steps and not stop.requested:
          epoch, batch = divmod(step, steps_per_epoch)
          if batch == 0 or step == start:
            self.start_epoch(sess, epoch, batch)
          # (1) update D, then (2) update G --g_steps times
          stats = self.train_step(sess, step, log=(step + 1) % cfg.log_freq == 0)
          step += 1
          safety.check_finite(stats, step, last_good)
          # log
          progress.update(step, stats)
          if 'histograms' in stats:
            self._write_summaries(writer, step, stats)
          warning = watch.update(stats)
          if warning:
            self._write_warning(writer, step, warning)
          # sample
          if self.is_chief and (step % cfg.sample_freq == 0 or step == total_steps):
            self._write_samples(sess, writer, step, epoch)
          # checkpoint
          if step % cfg.ckpt_freq == 0 or step == total_steps:
            last_good, saved = self.save(sess, step, last_good), step
          # evaluate, keeping the best checkpoint
          if evaluator is not None and self.is_chief and (step % cfg.eval_freq == 0 or step == total_steps):
            self._evaluate(sess, writer, evaluator, step, last_good)
        if stop.requested and step > saved:
          last_good = self.save(sess, step, last_good)
      finally:
        progress.close()
        writer.close()
    if stop.requested:
      logging.info('stopped by %s at step %d; %s', stop.requested, step,
                   f'saved {last_good}: run the same command to go on' if last_good else 'nothing to save yet')
    elif start >= total_steps:
      logging.info('the checkpoint is at step %d, past --epoch %d (%d steps): nothing to train; raise --epoch '
                   'to go on', start, cfg.epoch, total_steps)
    return step, stop.requested

  def train_step(self, sess, step, log=False):
    """One training step: (1) update D once, (2) update G --g_steps times, all on the same z.

    Returns:
      dict of the losses, D(x) and D(G(z)) of this step (and 'histograms', a summary, when `log`).
    """
    feed = self._generator_feed(step)
    # (1) update D
    stats = sess.run(self._d_fetches(log), feed)
    # (2) update G --g_steps times, so that D does not win too early
    for _ in range(self.config.g_steps):
      stats.update(sess.run({'train': self.train_ops.g_train, 'g_loss': self.loss.g_loss}, feed))
    return stats

  def start_epoch(self, sess, epoch, batch):
    """Points the input pipeline at `epoch`'s order, past its first `batch` batches."""
    cfg = self.config
    order = datasets.epoch_order(cfg.seed, epoch, len(self.dataset))[:self.steps_per_epoch * cfg.batch_size]
    share = cfg.batch_size // self.num_workers  # this worker's images of each batch
    batches = order.reshape(self.steps_per_epoch, cfg.batch_size)[batch:]
    order = batches[:, self.worker * share:(self.worker + 1) * share].reshape(-1)
    sess.run(self.pipeline.initializer, self.pipeline.feed(order))

  def _generator_feed(self, step):
    """G's z (and labels, drawn like the data's) for one step: a function of the seed and the step only."""
    cfg = self.config
    rng = np.random.default_rng([cfg.seed, step])
    feed = {self.inputs.z: utils.noise(cfg.z_dist, [cfg.batch_size, cfg.z_dim], rng)}
    if cfg.y_dim:
      feed[self.z_label_ids] = self.dataset.labels[rng.integers(len(self.dataset), size=cfg.batch_size)]
    return feed

  def _d_fetches(self, log):
    loss = self.loss
    fetches = {'train': self.train_ops.d_train, 'd_loss_real': loss.d_loss_real,
               'd_loss_fake': loss.d_loss_fake, 'd_loss': loss.d_loss, 'D(x)': loss.d_real,
               'D(G(z))': loss.d_fake}
    if log:
      fetches['histograms'] = self.histograms
    return fetches

  def _evaluate(self, sess, writer, evaluator, step, last_good):
    """Scores the samples of `step`; if they beat the best so far by --best_metric, saves them to best/."""
    cfg = self.config
    results, path = evaluator.evaluate(generate.Generator(self, sess), step, checkpoint=None, writer=writer)
    best, value = checkpoints.best(cfg.checkpoint_path), results[cfg.best_metric]
    if best is not None and best.get('metric') != cfg.best_metric:
      best = None  # kept by another --best_metric: the first evaluation by this one replaces it
    if math.isfinite(value) and (best is None or value < best['value']):
      self._check_weights(sess, step, last_good)
      checkpoints.save_best(self.best_saver, sess, cfg.checkpoint_path, step,
                            {'metric': cfg.best_metric, 'value': value, 'num_samples': evaluator.num_samples,
                             'results': results})
      best = {'step': step, 'value': value}
    best_text = f'best {cfg.best_metric} {best["value"]:.4g} at step {best["step"]}' if best else 'no best yet'
    logging.info('step %d: %s (%s; %s)', step, evaluator.log_line(results), best_text, path)

  def _write_summaries(self, writer, step, stats):
    writer.add_summary(stats['histograms'], step)
    scalars = [tf1.Summary.Value(tag=tag, simple_value=float(stats[tag]))
               for tag in ('d_loss_real', 'd_loss_fake', 'd_loss', 'g_loss', 'D(x)', 'D(G(z))')]
    writer.add_summary(tf1.Summary(value=scalars), step)

  def _write_warning(self, writer, step, text):
    logging.warning('step %d: %s', step, text)
    value = tf1.Summary.Value(tag='warnings', tensor=tf.make_tensor_proto(text))
    value.metadata.plugin_data.plugin_name = 'text'
    writer.add_summary(tf1.Summary(value=[value]), step)

  def _write_samples(self, sess, writer, step, epoch):
    grid = self.sample_grid(sess)
    utils.save_png(os.path.join(self.config.sample_path, f'train_{epoch:02d}_{step:06d}.png'), grid)
    image = tf1.Summary.Image(height=grid.shape[0], width=grid.shape[1], colorspace=grid.shape[2],
                              encoded_image_string=utils.png_bytes(grid))
    writer.add_summary(tf1.Summary(value=[tf1.Summary.Value(tag='samples', image=image)]), step)
    writer.flush()


class _NoSummaries:
  """The summary writer of a worker that is not the chief: only the chief writes TensorBoard files."""

  def add_summary(self, *_):
    pass

  def flush(self):
    pass

  def close(self):
    pass


def _describe_field(field):
  return {'c_dim': 'images with channels', 'y_dim': 'label classes'}.get(field, f'--{field}')
