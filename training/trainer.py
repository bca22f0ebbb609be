"""Runs a DCGAN graph: its session, restoring and saving checkpoints, and the training loop with what runs beside it.

Beside the loop: progress, TensorBoard (scalars and histograms of the first step, every --log_freq steps and the
last; sample grids; warnings), checkpoints every --ckpt_freq steps, evaluation and the best checkpoint every
--eval_freq steps, and the guards (a signal stops after the step and saves, a NaN stops before anything of it is
saved, D winning is warned). With --strategy multi_worker each worker serves its part of the cluster here.

$ python main.py --train --dataset digits
"""

import dataclasses
import math
import os
import time
from typing import Optional

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.core.protobuf import rewriter_config_pb2

from . import checkpoints
from . import footprint
from config import save_config
import datasets
from gan import losses
import model
from . import restore
from . import safety
from common import progress
import utils
from errors import Diverged, UserError, first_line

tf1 = tf.compat.v1

SCALARS = ('d_loss', 'g_loss', 'D(x)', 'D(G(z))', 'skipped_entries')  # written to TensorBoard on the logged steps
SKIPPED_WARNINGS = 10  # skipped entries with a warning of their own; the end of the run lists SKIPPED_LISTED
SKIPPED_LISTED = 20
HISTOGRAM_BINS = 30


def session_config(device, xla=False, devices=(), precision='float32'):
  """A ConfigProto with soft placement (GPU ops fall back to the CPU), GPU memory taken as needed, XLA JIT
  compiling the step when `xla`, and Grappler's rewrite of `precision` ('float32': none; 'bfloat16': oneDNN's
  bfloat16 rewrite; 'mixed_float16': float16 on the GPU).

  On one CPU, ops run one at a time, each on every core: two convolutions at once only take turns on the same
  cores, and measured a few percent slower and less steady (bench/README.md). Replicas (`devices`) need ops to
  run side by side, since each waits for the others in the all-reduce; CPU replicas '/cpu:N' need N + 1 CPU
  devices, which a v1 session makes only when asked through device_count.
  """
  specs = [tf.DeviceSpec.from_string(name) for name in devices] or [tf.DeviceSpec.from_string(device)]
  on_cpus = all(spec.device_type == 'CPU' for spec in specs)
  on_one_cpu = on_cpus and len(specs) == 1
  cpus = 1 + max((spec.device_index or 0 for spec in specs if spec.device_type == 'CPU'), default=0)
  proto = tf1.ConfigProto(allow_soft_placement=True, inter_op_parallelism_threads=1 if on_one_cpu else 0,
                          device_count={'CPU': cpus})
  proto.gpu_options.allow_growth = True
  if xla:
    proto.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
  rewrites = proto.graph_options.rewrite_options
  if on_cpus:
    # Grappler's layout (NHWC <-> NCHW) and memory (swapping, recomputing) rewrites are for GPUs: on the CPU they
    # changed no node of the 64x64 training graph, and took a tenth of a short run's start (bench/README.md)
    rewrites.layout_optimizer = rewriter_config_pb2.RewriterConfig.OFF
    rewrites.memory_optimization = rewriter_config_pb2.RewriterConfig.NO_MEM_OPT
  if precision == 'bfloat16':
    rewrites.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
  elif precision == 'mixed_float16':  # float16 on the GPU's tensor cores (main.py refuses it on a CPU)
    rewrites.auto_mixed_precision = rewriter_config_pb2.RewriterConfig.ON
  return proto


def session(dcgan, server=None, proto=None):
  """A session of the DCGAN's graph with session_config(), on `server` when one is given."""
  cfg = dcgan.config
  proto = proto or session_config(cfg.device, cfg.xla, cfg.devices, cfg.precision)
  return tf1.Session(server.target if server else '', graph=dcgan.graph, config=proto)


def check_weights(dcgan, sess, step, last_good):
  """Raises Diverged when a weight is NaN or Inf: such weights are never saved."""
  if not dcgan.weights_finite(sess):
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
    footprint.check_step(self.dcgan.graph, config)  # (before the session allocates anything)
    self.steps_per_epoch = self.dcgan.steps_per_epoch
    self.worker, self.num_workers = config.worker_index, config.num_workers
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
      workers = config.workers
      try:
        self.server = tf.distribute.Server(tf.train.ClusterSpec({'worker': list(workers)}), job_name='worker',
                                           task_index=self.worker, config=self.proto)
      except (tf.errors.OpError, ValueError) as e:
        raise UserError(f'worker {self.worker} could not serve on {workers[self.worker]}: {first_line(e)}') from None

  def session(self):
    return session(self.dcgan, self.server, self.proto)

  def restore(self, sess, step=None):
    """restore.restore() for training: also makes --max_to_keep count the checkpoints of earlier runs."""
    path = restore.restore(self.dcgan, sess, step)
    if path is not None:
      self.dcgan.saving.latest.set_last_checkpoints_with_time(
          [(p, os.path.getmtime(p + '.index')) for p in checkpoints.managed(self.save_dir)])
    return path

  def save(self, sess, step, last_good=None):
    """Writes checkpoint/<key>/DCGAN.model-<step>, keeping the newest --max_to_keep.

    Raises:
      Diverged: a weight is NaN or Inf; nothing is written.
      UserError: the checkpoint could not be written; `last_good` (a path or None) is left intact.
    """
    check_weights(self.dcgan, sess, step, last_good)
    return checkpoints.save(self.dcgan.saving.latest, sess, self.save_dir, step, last_good)

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
    with self._startup_watchdog() as startup, self.session() as sess, safety.GracefulStop() as stop:
      run = self._begin(sess, from_step)
      try:
        while run.step < run.total and not stop.requested:
          self._start_epoch_if_due(sess, run)
          # (1) update D --d_steps times, (2) update G --g_steps times
          with stop.step():
            run.stats = self.train_step(sess, run.step)
          run.step += 1
          self._count_skipped(run)  # the entries that D's batches had to skip
          startup.done()  # every worker took part in a step
          safety.check_finite(run.stats, run.step, run.last_good)
          # log
          self._log(run)
          # sample
          if self.is_chief and self._due(run, self.config.sample_freq):
            self._write_samples(sess, run.writer, run.step, (run.step - 1) // self.steps_per_epoch)
          # checkpoint
          if self._due(run, self.config.ckpt_freq):
            run.last_good, run.saved = self.save(sess, run.step, run.last_good), run.step
          # evaluate, keeping the best checkpoint
          if evaluator is not None and self.is_chief and self._due(run, self.config.eval_freq):
            self._evaluate(sess, run.writer, evaluator, run.step, run.last_good)
        self._end(sess, run, stop.requested)
      finally:
        run.progress.close()
        run.writer.close()
    return run.step, stop.requested

  def _startup_watchdog(self):
    """A worker restarted alone cannot join the others' run: it stops within --worker_timeout instead of waiting."""
    cfg = self.config
    return safety.Watchdog(
        cfg.worker_timeout if cfg.multi_worker else None,
        f'worker {self.worker} waited --worker_timeout {cfg.worker_timeout:g} s for the other workers to start '
        'training with it, and they did not (a worker restarted alone cannot join a run that the others left); '
        'the chief\'s last checkpoint is intact: start every worker again to go on')

  def _begin(self, sess, from_step):
    """Initializes, restores (or rolls back to `from_step`) and says where training starts; returns a _Run."""
    cfg, dcgan = self.config, self.dcgan
    sess.run(dcgan.init)
    last_good = self.restore(sess, from_step)
    step = int(sess.run(dcgan.global_step))
    if cfg.multi_worker and sess.run(dcgan.saving.step_spread) != 0:
      raise UserError(f'worker {self.worker} restored step {step} ({last_good or "no checkpoint"}), but the workers '
                      'did not all restore the same step: they would train apart. Give every worker the same '
                      'checkpoint folder (a shared one, or copies of the chief\'s) and start them all again')
    if from_step is not None and self.is_chief:
      checkpoints.roll_back(cfg.checkpoint_path, step)
    logging.info('%s at step %d (epoch %d, batch %d)', f'resumed from {last_good}' if last_good else 'started',
                 step, step // self.steps_per_epoch, step % self.steps_per_epoch * cfg.d_steps)
    if self.is_chief:
      save_config(cfg, cfg.checkpoint_path)
    total = cfg.epoch * self.steps_per_epoch
    # Where the checkpoint's last batch ended; a worker of several resumes where the step says (each skips its own)
    position = int(sess.run(dcgan.data_position))
    return _Run(step=step, start=step, total=total, saved=step, last_good=last_good,
                position=None if position < 0 or cfg.multi_worker else position,
                writer=tf1.summary.FileWriter(cfg.log_path, dcgan.graph) if self.is_chief else _NoSummaries(),
                progress=progress.Progress(step, total, self.steps_per_epoch, cfg.batch_size, cfg.log_freq),
                watch=safety.DiscriminatorWinWatch(losses.LOSSES[cfg.loss].floor), logged=(step, time.monotonic()))

  def _start_epoch_if_due(self, sess, run):
    epoch, batch = divmod(run.step, self.steps_per_epoch)
    if batch == 0 or run.step == run.start:
      run.order, run.position = self.start_epoch(sess, epoch, batch, run.position if batch else None)

  def _count_skipped(self, run):
    """Counts and names the entries that the step's batches skipped (the gaps in their positions); the first
    few get a warning each, the first SKIPPED_LISTED a line at the end (only those are read again to say why: a
    dataset with thousands of bad entries is not decoded twice). With --strict, the first stops the run."""
    positions = run.stats.pop('positions')
    skipped = np.setdiff1d(np.arange(run.position, positions.max() + 1), positions)
    run.position = int(positions.max()) + 1
    for position in skipped.tolist():
      run.skipped_count += 1
      if run.skipped_count > SKIPPED_LISTED:  # (with --strict the first one stops the run)
        continue
      entry = int(run.order[position % len(run.order)]) % len(self.dataset)
      name, why = self.dataset.entry_name(entry), datasets.why_unreadable(self.dataset, entry, self.config)
      if self.config.strict:
        raise UserError(f'{name} cannot be read ({why}): stopped at step {run.step} (--strict); the last '
                        f'checkpoint, {run.last_good or "none yet"}, is intact. Remove or repair the entry, or run '
                        'without --strict to skip such entries')
      run.skipped.append(f'{name} ({why})')
      if run.skipped_count <= SKIPPED_WARNINGS:
        logging.warning('step %d: skipped %s, which cannot be read; the batch took the next image%s', run.step,
                        run.skipped[-1], '' if run.skipped_count < SKIPPED_WARNINGS else
                        ' (further ones are counted in the progress line and listed at the end)')
    run.stats['skipped_entries'] = run.skipped_count

  @staticmethod
  def _due(run, every):
    """Whether the periodic work of every `every` steps (and of the last step) is due after this step."""
    return run.step % every == 0 or run.step == run.total

  def _log(self, run):
    """The progress line, TensorBoard's scalars (the first step of a run, every --log_freq, the last), the D-has-won
    watch."""
    cfg = self.config
    run.progress.update(run.step, run.stats, run.skipped_count)
    if run.step % cfg.log_freq == 0 or run.step in (run.start + 1, run.total):
      run.logged = self._write_summaries(run.writer, run.step, run.stats, run.logged)
    warning = run.watch.update(run.stats['d_loss'] - cfg.gradient_penalty * run.stats['gradient_penalty'])
    if warning:
      self._write_warning(run.writer, run.step, warning)

  def _end(self, sess, run, stopped_by):
    """Saves a step a signal interrupted, writes the last step's numbers, and says how training ended."""
    if stopped_by and run.step > run.saved:
      run.last_good = self.save(sess, run.step, run.last_good)
    if run.skipped_count:
      logging.warning('skipped %d entries of %s that cannot be read: %s', run.skipped_count, self.config.dataset,
                      '; '.join(run.skipped) +
                      (f'; and {run.skipped_count - len(run.skipped)} more' if run.skipped_count > len(run.skipped)
                       else ''))
    if run.stats is not None and run.logged[0] != run.step:  # the last step's numbers, whatever --log_freq
      self._write_summaries(run.writer, run.step, run.stats, run.logged)
    if stopped_by:
      logging.info('stopped by %s at step %d; %s', stopped_by, run.step,
                   f'saved {run.last_good}: run the same command to go on' if run.last_good else 'nothing to save yet')
    elif run.start >= run.total:
      logging.info('the checkpoint is at step %d, past --epoch %d (%d steps): nothing to train; raise --epoch '
                   'to go on', run.start, self.config.epoch, run.total)

  def train_step(self, sess, step):
    """One training step: (1) update D --d_steps times, each on its own batch and z, (2) update G --g_steps
    times on the step's z.

    Returns:
      dict of the numbers of the step's last D update, all from its one forward pass before D changes (so they
      agree with each other: the log line and TensorBoard show them): d_loss, g_loss, D(x), D(G(z)), the gradient
      penalty, D's logits; then g_update_loss, G's loss in its last update, z, the z of G's updates, and
      positions, where the images of D's batches were in the epoch's stream.
    """
    dcgan = self.dcgan
    loss, outputs = dcgan.loss, dcgan.model
    d_fetches = {'train': dcgan.train_ops.d_train, 'd_loss': loss.d_loss, 'g_loss': loss.g_loss, 'D(x)': loss.d_real,
                 'D(G(z))': loss.d_fake, 'gradient_penalty': loss.penalty, 'real_logits': outputs.real_logits,
                 'fake_logits': outputs.fake_logits}
    # (1) update D; the last update also counts the step (before G's, whose moving average reads the count).
    # Every --r1_every steps, the first update adds the lazy R1 penalty (StyleGAN2)
    lazy_r1 = dcgan.train_ops.d_train_r1 is not None and step % self.config.r1_every == 0
    positions = []
    for update in range(self.config.d_steps):
      fetches = dict(d_fetches, positions=dcgan.pipeline.positions)
      if update == 0 and lazy_r1:
        fetches.update(train=dcgan.train_ops.d_train_r1, r1=loss.r1)
      if update == self.config.d_steps - 1:
        fetches['step'] = dcgan.train_ops.step_inc
      try:
        stats = sess.run(fetches, dcgan.step_feed(step, update))
      except tf.errors.OutOfRangeError:
        raise UserError(f'step {step + 1}: the epoch\'s images ran out: more of the entries of {self.config.dataset} '
                        'cannot be read than the epoch could spare; run --check_data to see them') from None
      positions.append(stats['positions'])
    stats['positions'] = np.concatenate(positions)
    # (2) update G --g_steps times, so that D does not win too early
    feed = dcgan.step_feed(step)
    g_fetches = {'train': dcgan.train_ops.g_train, 'g_update_loss': loss.g_loss}
    if dcgan.overflows is not None:  # mixed float16: the updates skipped so far in this run
      g_fetches['overflowed_updates'] = dcgan.overflows
    for _ in range(self.config.g_steps):
      stats.update(sess.run(g_fetches, feed))
    stats['z'] = feed[dcgan.inputs.z]
    return stats

  def start_epoch(self, sess, epoch, step, position=None):
    """Points the input pipeline at `epoch`'s order, past the batches of its first `step` steps: at `position`
    of its stream (where the checkpoint's last batch ended), or where the step says when None.

    Returns:
      (the order this worker reads, the position it starts at).
    """
    cfg = self.config
    order = datasets.epoch_order(cfg.seed, epoch, len(self.dataset), cfg.mirror)
    share = cfg.batch_size // self.num_workers  # this worker's images of each batch
    if self.num_workers > 1:
      batches = len(order) // cfg.batch_size
      order = order[:batches * cfg.batch_size].reshape(batches, cfg.batch_size)
      order = order[:, self.worker * share:(self.worker + 1) * share].reshape(-1)
    position = step * cfg.d_steps * share if position is None else position
    sess.run(self.dcgan.pipeline.initializer, self.dcgan.pipeline.feed(order, position))
    return order, position

  def _evaluate(self, sess, writer, evaluator, step, last_good):
    """Scores the samples of `step`; if they beat the best so far by --best_metric, saves them to best/."""
    cfg = self.config
    results, path = evaluator.evaluate(model.Generator(self.dcgan, sess), step, checkpoint=None, writer=writer)
    best, value = checkpoints.best(cfg.checkpoint_path), results[cfg.best_metric]
    if best is not None and best.get('metric') != cfg.best_metric:
      best = None  # kept by another --best_metric: the first evaluation by this one replaces it
    if math.isfinite(value) and (best is None or value < best['value']):
      check_weights(self.dcgan, sess, step, last_good)
      checkpoints.save_best(self.dcgan.saving.best, sess, cfg.checkpoint_path, step,
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


@dataclasses.dataclass
class _Run:
  """Where a training run is: its step (and the step it started at, the total, the last saved), the newest good
  checkpoint, its summary writer, progress display and D-has-won watch, the step and time of the last summaries
  (for images/s), and the last step's numbers."""
  step: int
  start: int
  total: int
  saved: int
  last_good: Optional[str]
  writer: object
  progress: object
  watch: object
  logged: tuple
  position: Optional[int] = None
  order: Optional[np.ndarray] = None
  skipped_count: int = 0  # entries skipped so far in this run
  skipped: list = dataclasses.field(default_factory=list)  # 'name (why)' of the first SKIPPED_LISTED
  stats: Optional[dict] = None


class _NoSummaries:
  """The summary writer of a worker that is not the chief: only the chief writes TensorBoard files."""

  def add_summary(self, *_):
    pass

  def flush(self):
    pass

  def close(self):
    pass

