"""Runs a DCGAN graph: its session, restoring and saving checkpoints, and the training loop with what runs beside it.

Beside the loop: progress, TensorBoard (scalars and histograms of the first step, every --log_freq steps and the
last; sample grids; warnings), checkpoints every --ckpt_freq steps, evaluation and the best checkpoint every
--eval_freq steps, and the guards (a signal stops after the step and saves, a NaN stops before anything of it is
saved, D winning is warned). With --strategy multi_worker each worker serves its part of the cluster here.

$ python main.py --train --dataset digits
"""

import math
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.core.protobuf import rewriter_config_pb2

import checkpoints
import cluster as cluster_lib
import config as config_lib
import datasets
import generate
import losses
import model
import safety
import utils
from errors import Diverged, UserError, first_line

tf1 = tf.compat.v1

SCALARS = ('d_loss', 'g_loss', 'D(x)', 'D(G(z))')  # every step's, written to TensorBoard on the logged steps
HISTOGRAM_BINS = 30


def session_config(device, xla=False, devices=(), precision='float32'):
  """A ConfigProto with soft placement (GPU ops fall back to the CPU), GPU memory taken as needed, XLA JIT
  compiling the step when `xla`, and Grappler's rewrite of `precision` ('float32': none; 'bfloat16': oneDNN's
  bfloat16 rewrite; 'mixed_float16': float16 on the GPU, or emulated on a CPU).

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
  rewrites = proto.graph_options.rewrite_options
  if precision == 'bfloat16':
    rewrites.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
  elif precision == 'mixed_float16':
    # float16 on the GPU's tensor cores; on a CPU (emulated, slow) only so that the path can be tested anywhere
    on_gpu = any(spec.device_type == 'GPU' for spec in specs)
    if on_gpu:
      rewrites.auto_mixed_precision = rewriter_config_pb2.RewriterConfig.ON
    else:
      rewrites.auto_mixed_precision_cpu = rewriter_config_pb2.RewriterConfig.ON
  return proto


def session(dcgan, server=None, proto=None):
  """A session of the DCGAN's graph with session_config(), on `server` when one is given."""
  cfg = dcgan.config
  proto = proto or session_config(cfg.device, cfg.xla, cfg.devices, cfg.precision)
  return tf1.Session(server.target if server else '', graph=dcgan.graph, config=proto)


def _describe_field(field):
  return {'c_dim': 'images with channels', 'y_dim': 'label classes'}.get(field, f'--{field}')


def restore(dcgan, sess, step=None):
  """Loads the newest complete checkpoint of the run's key (or that of `step`), after checking that it fits.

  Broken newer checkpoints (a killed save) are set aside with a warning; see checkpoints.newest_complete. A
  training graph loads everything; a checkpoint written before --ema existed has no moving averages of G, which
  then start at G's weights. A test-mode graph (the sampler alone) loads G's moving averages into G's weights
  when the checkpoint has them, and G's weights otherwise.

  Args:
    dcgan: a model.DCGAN.
    sess: a session of its graph.
    step: None for the newest checkpoint, a step number, or checkpoints.BEST for the one in best/.

  Returns:
    The checkpoint's path, or None when there is none (then nothing is loaded).

  Raises:
    UserError: the checkpoint was written with flags that give variables of other shapes, or on classes of other
      names, or `step` has no complete checkpoint (or there is no best one).
  """
  cfg = dcgan.config
  path = checkpoints.find(cfg.checkpoint_path, step)
  if path is None:
    return None
  saved = config_lib.load(cfg.checkpoint_path)
  differences = config_lib.shape_differences(saved, cfg) if saved else []
  if differences:
    raise UserError(f'the checkpoint in {cfg.checkpoint_path} does not fit: it was trained with ' +
                    ', '.join(f'{_describe_field(f)} {old} (now {new})' for f, old, new in differences) +
                    '; use the old values, or --run_name NAME to start a new run beside it')
  if saved and saved.class_names and cfg.class_names and saved.class_names != cfg.class_names:
    raise UserError(f'the checkpoint in {cfg.checkpoint_path} was trained on the classes '
                    f'{", ".join(saved.class_names)} (labels 0 to {len(saved.class_names) - 1}), but the data now has '
                    f'{", ".join(cfg.class_names)}: its labels would change meaning; restore the class folders, or use '
                    '--run_name NAME to start a new run beside it')
  stored = dict(tf.train.list_variables(path))
  if dcgan.training:
    names = dcgan.checkpoint_names()
    averages = {name for name in names if name.endswith('/' + model.EMA_NAME)}
    before_ema = bool(averages) and not averages & set(stored)
    _check_fit(path, stored, {n: v for n, v in names.items() if not (before_ema and n in averages)})
    if before_ema:
      dcgan.saver_without_averages.restore(sess, path)
      sess.run(dcgan.start_averages)
      logging.info('%s holds no moving averages of G (it was written before --ema): they start at G\'s weights',
                   path)
    else:
      dcgan.saver.restore(sess, path)
    sess.run(dcgan.sync_replicas)
    return path
  names = {}
  for variable in dcgan.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES):
    average = f'{variable.op.name}/{model.EMA_NAME}'
    names[average if cfg.ema and average in stored else variable.op.name] = variable
  _check_fit(path, stored, names)
  tf1.train.Saver(names).restore(sess, path)
  return path


def _check_fit(path, stored, names):
  for name, variable in names.items():
    shape = variable.shape.as_list()
    if stored.get(name) != shape:
      found = 'is missing' if name not in stored else f'has shape {stored[name]}'
      raise UserError(f'the checkpoint {path} does not fit this model: variable {name} {found}, '
                      f'the model needs {shape}; it was written by another configuration')


def check_weights(dcgan, sess, step, last_good):
  """Raises Diverged when a weight is NaN or Inf: such weights are never saved."""
  if not sess.run(dcgan.weights_finite):
    raise Diverged(f'training diverged by step {step}: a weight is NaN or Inf, so it was not saved. '
                   f'{safety.resume_hint(last_good)}')


def histogram(values):
  """A TensorBoard histogram of `values` (any shape)."""
  values = np.asarray(values, np.float64).ravel()
  counts, edges = np.histogram(values, HISTOGRAM_BINS)
  return tf1.HistogramProto(min=values.min(), max=values.max(), num=values.size, sum=values.sum(),
                            sum_squares=np.square(values).sum(), bucket_limit=edges[1:].tolist(),
                            bucket=counts.tolist())


class Trainer:
  """Trains a DCGAN on a dataset: builds its graph, and with --strategy multi_worker this worker's server.

  A step is --d_steps updates of D, each on a batch of its own, then --g_steps updates of G on the step's z.

  Args:
    config: a complete config.Config (the data's channels and classes filled in).
    dataset: a datasets.Source.
  """

  def __init__(self, config, dataset):
    self.config, self.dataset = config, dataset
    self.dcgan = model.DCGAN(config, dataset)
    batches = min(len(dataset), config.train_size or len(dataset)) // config.batch_size
    self.steps_per_epoch = batches // config.d_steps  # each epoch visits a fresh shuffle, in whole steps
    self.worker, self.num_workers = self.dcgan.worker, self.dcgan.num_workers
    self.is_chief = self.worker == 0  # writes checkpoints, samples and summaries; other workers only train
    # Each worker saves to a scratch folder of its own, so that a worker's checkpoint can be checked by hand
    self.save_dir = config.checkpoint_path if self.is_chief else os.path.join(config.checkpoint_path,
                                                                              f'worker_{self.worker}')
    self.proto = session_config(config.device, config.xla, config.devices, config.precision)
    self.server = None
    if config.multi_worker:
      self.proto = self.dcgan.strategy.update_config_proto(self.proto)
      self.proto.inter_op_parallelism_threads = 0  # the all-reduce waits on the other workers: ops side by side
      # A worker that died leaves the others waiting in the all-reduce: give up after --worker_timeout
      self.proto.operation_timeout_in_ms = int(config.worker_timeout * 1000)
      workers = cluster_lib.from_environment().workers
      try:
        self.server = tf.distribute.Server(tf.train.ClusterSpec({'worker': list(workers)}), job_name='worker',
                                           task_index=self.worker, config=self.proto)
      except (tf.errors.OpError, ValueError) as e:
        raise UserError(f'worker {self.worker} could not serve on {workers[self.worker]}: {first_line(e)}') from None

  def session(self):
    return session(self.dcgan, self.server, self.proto)

  def restore(self, sess, step=None):
    """restore() for training: also makes --max_to_keep count the checkpoints of earlier runs."""
    path = restore(self.dcgan, sess, step)
    if path is not None:
      self.dcgan.saver.set_last_checkpoints_with_time(
          [(p, os.path.getmtime(p + '.index')) for p in checkpoints.managed(self.save_dir)])
    return path

  def save(self, sess, step, last_good=None):
    """Writes checkpoint/<key>/DCGAN.model-<step>, keeping the newest --max_to_keep.

    Raises:
      Diverged: a weight is NaN or Inf; nothing is written.
      UserError: the checkpoint could not be written; `last_good` (a path or None) is left intact.
    """
    check_weights(self.dcgan, sess, step, last_good)
    return checkpoints.save(self.dcgan.saver, sess, self.save_dir, step, last_good)

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
    cfg, dcgan, steps_per_epoch = self.config, self.dcgan, self.steps_per_epoch
    total_steps = cfg.epoch * steps_per_epoch
    # A worker restarted alone cannot join the others' run: it stops within --worker_timeout instead of waiting
    startup = safety.Watchdog(
        cfg.worker_timeout if cfg.multi_worker else None,
        f'worker {self.worker} waited --worker_timeout {cfg.worker_timeout:g} s for the other workers to start '
        'training with it, and they did not (a worker restarted alone cannot join a run that the others left); '
        'the chief\'s last checkpoint is intact: start every worker again to go on')
    with startup, self.session() as sess, safety.GracefulStop() as stop:
      sess.run(dcgan.init)
      last_good = self.restore(sess, from_step)
      step = start = saved = int(sess.run(dcgan.global_step))
      if cfg.multi_worker and sess.run(dcgan.step_spread) != 0:
        raise UserError(f'worker {self.worker} restored step {step} ({last_good or "no checkpoint"}), but the workers '
                        'did not all restore the same step: they would train apart. Give every worker the same '
                        'checkpoint folder (a shared one, or copies of the chief\'s) and start them all again')
      if from_step is not None and self.is_chief:
        checkpoints.roll_back(cfg.checkpoint_path, step)
      logging.info('%s at step %d (epoch %d, batch %d)', f'resumed from {last_good}' if last_good else 'started',
                   step, step // steps_per_epoch, step % steps_per_epoch * cfg.d_steps)
      if self.is_chief:
        config_lib.save(cfg, cfg.checkpoint_path)
      writer = tf1.summary.FileWriter(cfg.log_path, dcgan.graph) if self.is_chief else _NoSummaries()
      progress = utils.Progress(start, total_steps, steps_per_epoch, cfg.batch_size, cfg.log_freq)
      watch = safety.DiscriminatorWinWatch(losses.LOSSES[cfg.loss].floor)
      logged = (start, time.monotonic())  # the step and time of the last summaries, for images/s
      stats = None
      try:
        while step < total_steps and not stop.requested:
          epoch, batch = divmod(step, steps_per_epoch)
          if batch == 0 or step == start:
            self.start_epoch(sess, epoch, batch)
          # (1) update D --d_steps times, (2) update G --g_steps times
          stats = self.train_step(sess, step)
          step += 1
          startup.done()  # every worker took part in a step
          safety.check_finite(stats, step, last_good)
          # log
          progress.update(step, stats)
          if step % cfg.log_freq == 0 or step in (start + 1, total_steps):
            logged = self._write_summaries(writer, step, stats, logged)
          warning = watch.update(stats['d_loss'] - cfg.gradient_penalty * stats['gradient_penalty'])
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
        if stats is not None and logged[0] != step:  # the last step's numbers, whatever --log_freq
          self._write_summaries(writer, step, stats, logged)
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

  def train_step(self, sess, step):
    """One training step: (1) update D --d_steps times, each on its own batch and z, (2) update G --g_steps
    times on the step's z.

    Returns:
      dict of the numbers of the step's last D update, all from its one forward pass before D changes (so they
      agree with each other: the log line and TensorBoard show them): d_loss, g_loss, D(x), D(G(z)), the gradient
      penalty, D's logits; then g_update_loss, G's loss in its last update, and z, the z of G's updates.
    """
    dcgan = self.dcgan
    loss, model_ = dcgan.loss, dcgan.model
    d_fetches = {'train': dcgan.train_ops.d_train, 'd_loss': loss.d_loss, 'g_loss': loss.g_loss, 'D(x)': loss.d_real,
                 'D(G(z))': loss.d_fake, 'gradient_penalty': loss.penalty, 'real_logits': model_.real_logits,
                 'fake_logits': model_.fake_logits}
    # (1) update D; the last update also counts the step (before G's, whose moving average reads the count).
    # Every --r1_every steps, the first update adds the lazy R1 penalty (StyleGAN2)
    lazy_r1 = dcgan.train_ops.d_train_r1 is not None and step % self.config.r1_every == 0
    for update in range(self.config.d_steps):
      fetches = dict(d_fetches)
      if update == 0 and lazy_r1:
        fetches.update(train=dcgan.train_ops.d_train_r1, r1=loss.r1)
      if update == self.config.d_steps - 1:
        fetches['step'] = dcgan.train_ops.step_inc
      stats = sess.run(fetches, dcgan.step_feed(step, update))
    # (2) update G --g_steps times, so that D does not win too early
    feed = dcgan.step_feed(step)
    g_fetches = {'train': dcgan.train_ops.g_train, 'g_update_loss': loss.g_loss}
    if dcgan.overflows is not None:  # mixed float16: the updates skipped so far in this run
      g_fetches['overflowed_updates'] = dcgan.overflows
    for _ in range(self.config.g_steps):
      stats.update(sess.run(g_fetches, feed))
    stats['z'] = feed[dcgan.inputs.z]
    return stats

  def start_epoch(self, sess, epoch, step):
    """Points the input pipeline at `epoch`'s order, past the batches of its first `step` steps."""
    cfg = self.config
    batches = self.steps_per_epoch * cfg.d_steps
    order = datasets.epoch_order(cfg.seed, epoch, len(self.dataset), cfg.mirror)[:batches * cfg.batch_size]
    share = cfg.batch_size // self.num_workers  # this worker's images of each batch
    order = order.reshape(batches, cfg.batch_size)[step * cfg.d_steps:]
    order = order[:, self.worker * share:(self.worker + 1) * share].reshape(-1)
    sess.run(self.dcgan.pipeline.initializer, self.dcgan.pipeline.feed(order))

  def _evaluate(self, sess, writer, evaluator, step, last_good):
    """Scores the samples of `step`; if they beat the best so far by --best_metric, saves them to best/."""
    cfg = self.config
    results, path = evaluator.evaluate(generate.Generator(self.dcgan, sess), step, checkpoint=None, writer=writer)
    best, value = checkpoints.best(cfg.checkpoint_path), results[cfg.best_metric]
    if best is not None and best.get('metric') != cfg.best_metric:
      best = None  # kept by another --best_metric: the first evaluation by this one replaces it
    if math.isfinite(value) and (best is None or value < best['value']):
      check_weights(self.dcgan, sess, step, last_good)
      checkpoints.save_best(self.dcgan.best_saver, sess, cfg.checkpoint_path, step,
                            {'metric': cfg.best_metric, 'value': value, 'num_samples': evaluator.num_samples,
                             'results': results})
      best = {'step': step, 'value': value}
    best_text = f'best {cfg.best_metric} {best["value"]:.4g} at step {best["step"]}' if best else 'no best yet'
    logging.info('step %d: %s (%s; %s)', step, evaluator.log_line(results), best_text, path)

  def _write_summaries(self, writer, step, stats, logged):
    """The step's scalars (losses, D(x), D(G(z)), the penalty, images/s) and histograms (z, D's logits).

    Returns:
      (step, now), the new `logged`.
    """
    since, then = logged
    now = time.monotonic()
    scalars = {tag: stats[tag] for tag in SCALARS}
    if self.config.gradient_penalty:
      scalars['gradient_penalty'] = stats['gradient_penalty']
    if 'r1' in stats:  # (measured on the lazy steps only)
      scalars['r1_penalty'] = stats['r1']
    if 'overflowed_updates' in stats:
      scalars['overflowed_updates'] = stats['overflowed_updates']
    if step > since:
      scalars['images_per_second'] = (step - since) * self.config.batch_size / max(now - then, 1e-9)
    values = [tf1.Summary.Value(tag=tag, simple_value=float(value)) for tag, value in scalars.items()]
    values += [tf1.Summary.Value(tag=tag, histo=histogram(stats[key]))
               for tag, key in (('z', 'z'), ('D_logits_real', 'real_logits'), ('D_logits_fake', 'fake_logits'))]
    writer.add_summary(tf1.Summary(value=values), step)
    return step, now

  def _write_warning(self, writer, step, text):
    logging.warning('step %d: %s', step, text)
    value = tf1.Summary.Value(tag='warnings', tensor=tf.make_tensor_proto(text))
    value.metadata.plugin_data.plugin_name = 'text'
    writer.add_summary(tf1.Summary(value=[value]), step)

  def _write_samples(self, sess, writer, step, epoch):
    grid = self.dcgan.sample_grid(sess)
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

