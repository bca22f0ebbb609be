"""Where a training step's time goes: the ops of one step of a bench case, traced (a RunMetadata's step stats),
summed by op kind, and by the layer (name scope) they belong to.

A step is bench/throughput.py's: what main.py --train does per batch with the case's recipe (bench/suite.py CASES),
on random in-memory images. Each of --steps traced steps (after --warmup untimed ones) is traced whole; an op's
time is its kernel's wall time on its thread, so with two threads at work the sum over ops exceeds the step's wall
time. The table gives each op kind's share of that sum, its milliseconds per step and its count per step.

$ .venv/bin/python bench/step_profile.py --case rgb64-default --avx2_stand_in
$ .venv/bin/python bench/step_profile.py --case mnist28-cond --by scope
"""

import collections
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from training import runtime  # noqa: E402, F401  (before tensorflow)

from absl import app, flags  # noqa: E402
import tensorflow as tf  # noqa: E402

from training import trainer  # noqa: E402
import suite  # noqa: E402  (bench/)

tf1 = tf.compat.v1

flags.DEFINE_enum('case', 'rgb64-default', list(suite.CASES), 'The bench case to trace (bench/suite.py).')
flags.DEFINE_integer('steps', 3, 'Traced steps.')
flags.DEFINE_integer('warmup', 2, 'Untimed steps before.')
flags.DEFINE_integer('batch_size', 64, 'Images per step.')
flags.DEFINE_enum('precision', 'auto', ['auto', 'float32', 'bfloat16'], "main.py --precision of the step.")
flags.DEFINE_enum('by', 'op', ['op', 'scope', 'node'], 'Sum by op kind, by the first three name scopes (the '
                  'layer), or by node (an op of the graph, with its kind).')
flags.DEFINE_integer('top', 25, 'Rows of the table.')
flags.DEFINE_boolean('avx2_stand_in', False, 'Play an AVX2-only CPU (bench/suite.py AVX2_STAND_IN).')
FLAGS = flags.FLAGS


class TracedSession:
  """A Session whose run() traces each call and keeps its step stats in `traces`."""

  def __init__(self, session):
    self.session, self.traces = session, []

  def run(self, fetches, feed_dict=None):
    metadata = tf1.RunMetadata()
    result = self.session.run(fetches, feed_dict, options=tf1.RunOptions(trace_level=tf1.RunOptions.FULL_TRACE),
                              run_metadata=metadata)
    self.traces.append(metadata.step_stats)
    return result


def op_times(step_stats, graph, by):
  """{op kind (or scope): [microseconds summed, ops]} of one run's step stats."""
  totals = collections.defaultdict(lambda: [0, 0])
  for device in step_stats.dev_stats:
    for node in device.node_stats:
      name = node.node_name.split(':')[0]
      label = node.timeline_label  # 'name = Kind(inputs)': the kernel that ran, after Grappler's rewrites
      kind = label.split(' = ', 1)[1].split('(', 1)[0] if ' = ' in label else None
      if kind is None:
        try:
          kind = graph.get_operation_by_name(name).type
        except KeyError:
          continue  # (the runtime's own nodes: _SOURCE, _Recv of feeds)
      key = {'op': kind, 'scope': '/'.join(name.split('/')[:3]), 'node': f'{name} ({kind})'}[by]
      totals[key][0] += node.all_end_rel_micros
      totals[key][1] += 1
  return totals


def main(argv):
  del argv
  if FLAGS.avx2_stand_in:
    suite.play_avx2()
  data = suite.random_case(FLAGS.case, FLAGS.batch_size * (FLAGS.warmup + 2 * FLAGS.steps))
  with tempfile.TemporaryDirectory() as scratch:
    cfg = suite.case_config(FLAGS.case, data, FLAGS.precision, batch_size=FLAGS.batch_size, checkpoint_dir=scratch,
                            conditioning='mnist')
    run = trainer.Trainer(cfg, data)
    sess = suite.started(run, FLAGS.warmup)
    untraced = []
    for step in range(FLAGS.warmup, FLAGS.warmup + FLAGS.steps):
      start = time.perf_counter()
      run.train_step(sess, step)
      untraced.append(time.perf_counter() - start)
    traced = TracedSession(sess)
    for step in range(FLAGS.warmup + FLAGS.steps, FLAGS.warmup + 2 * FLAGS.steps):
      run.train_step(traced, step)
    graph = sess.graph
    sess.close()
  totals = collections.defaultdict(lambda: [0, 0])
  for stats in traced.traces:
    for key, (micros, count) in op_times(stats, graph, FLAGS.by).items():
      totals[key][0] += micros
      totals[key][1] += count
  whole = sum(micros for micros, _ in totals.values())
  rows = sorted(totals.items(), key=lambda item: -item[1][0])
  print(json.dumps({'case': FLAGS.case, 'precision': cfg.precision, **suite.machine(),
                    'step_time_s': round(statistics.median(untraced), 4),
                    'op_ms_per_step': round(whole / 1e3 / FLAGS.steps, 1),
                    'top': {key: round(micros / 1e3 / FLAGS.steps, 1) for key, (micros, _) in rows[:FLAGS.top]}}))
  print(f'\n{suite.machine_line()}')
  print(f'{FLAGS.case} at {cfg.precision}: step {statistics.median(untraced):.3f} s untraced (median of '
        f'{FLAGS.steps}); the ops sum to {whole / 1e3 / FLAGS.steps:.0f} ms a step on their threads\n')
  print(f'| {"op kind" if FLAGS.by == "op" else "scope"} | share | ms per step | ops per step |')
  print('| --- | --- | --- | --- |')
  for key, (micros, count) in rows[:FLAGS.top]:
    print(f'| {key} | {100 * micros / whole:.1f}% | {micros / 1e3 / FLAGS.steps:.1f} | {count / FLAGS.steps:.0f} |')


if __name__ == '__main__':
  app.run(main)
