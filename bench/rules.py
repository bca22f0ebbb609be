"""A rule of ops.py that is chosen by CPU kind, timed both ways: the step of a bench case with the rule on and
with it off, built side by side in one process and timed in alternating rounds (the VMs drift 10-20% within
minutes, so only a step measured beside the other compares).

Rules (each a function of ops.py that says whether a layer takes a path):
- bn_rows: batch norm's training statistics over the map's pixels as rows (ops._statistics_by_rows_pay).
- matmul_filter_grad: the weight gradient of convolutions with a small map (at most ops.SMALL_MAP_PIXELS pixels)
  by one matmul (ops._matmul_filter_grad_pays).
"on" is the rule taken by every layer it is for, "off" by none; the first line says which this CPU kind takes.

$ .venv/bin/python bench/rules.py --rule bn_rows --cases mnist28-cond,rgb64,rgb64-default --avx2_stand_in
"""

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

import ops  # noqa: E402
from training import trainer  # noqa: E402
import suite  # noqa: E402  (bench/)

tf1 = tf.compat.v1

# rule: (the function of ops.py, the rule taken wherever a layer qualifies, whatever the CPU kind)
RULES = {'bn_rows': ('_statistics_by_rows_pay', lambda gamma: True),
         'matmul_filter_grad': ('_matmul_filter_grad_pays', lambda w, small_size: None not in small_size
                                and small_size[0] * small_size[1] <= ops.SMALL_MAP_PIXELS)}

flags.DEFINE_enum('rule', 'bn_rows', list(RULES), 'The rule of ops.py to time on and off.')
flags.DEFINE_list('cases', list(suite.CASES), 'Bench cases (bench/suite.py).')
flags.DEFINE_integer('steps', 4, 'Timed steps per round and side.')
flags.DEFINE_integer('rounds', 4, 'Rounds: each times the rule on, then off (then off, then on: ABBA).')
flags.DEFINE_integer('warmup', 2, 'Untimed steps per side.')
flags.DEFINE_integer('batch_size', 64, 'Images per step.')
flags.DEFINE_enum('precision', 'auto', ['auto', 'float32', 'bfloat16'], "main.py --precision of the step.")
flags.DEFINE_boolean('avx2_stand_in', False, 'Play an AVX2-only CPU (bench/suite.py AVX2_STAND_IN).')
FLAGS = flags.FLAGS


def side(name, scratch, rule_on):
  """(trainer, session) of case `name` with the rule forced to `rule_on` while its graph is built."""
  data = suite.random_case(name, FLAGS.batch_size * (FLAGS.warmup + 2 * FLAGS.rounds * FLAGS.steps))
  cfg = suite.case_config(name, data, FLAGS.precision, batch_size=FLAGS.batch_size,
                          checkpoint_dir=os.path.join(scratch, str(rule_on)), conditioning='mnist')
  function, taken = RULES[FLAGS.rule]
  original = getattr(ops, function)
  setattr(ops, function, taken if rule_on else lambda *args: False)
  try:
    run = trainer.Trainer(cfg, data)
  finally:
    setattr(ops, function, original)
  return run, suite.started(run, FLAGS.warmup)


def picks():
  """Whether ops.py takes the rule on this CPU (for a layer on the CPU that qualifies)."""
  with tf.Graph().as_default(), tf.device('/cpu:0'):
    w = tf1.get_variable('w', [3, 3, 4, 4])
    return bool(getattr(ops, RULES[FLAGS.rule][0])(*([w] if FLAGS.rule == 'bn_rows' else [w, (2, 2)])))


def time_case(name):
  """{'on': step times, 'off': step times} of case `name`, in ABBA rounds."""
  with tempfile.TemporaryDirectory() as scratch:
    sides = {label: side(name, scratch, label == 'on') for label in ('on', 'off')}
    times, done = {'on': [], 'off': []}, {'on': FLAGS.warmup, 'off': FLAGS.warmup}
    for round_ in range(FLAGS.rounds):
      for label in (('on', 'off') if round_ % 2 == 0 else ('off', 'on')):
        run, sess = sides[label]
        for _ in range(FLAGS.steps):
          start = time.perf_counter()
          run.train_step(sess, done[label])
          times[label].append(time.perf_counter() - start)
          done[label] += 1
    for _, sess in sides.values():
      sess.close()
  return times


def main(argv):
  del argv
  if FLAGS.avx2_stand_in:
    suite.play_avx2()
  print(f'{suite.machine_line()}; rule {FLAGS.rule} (ops.{RULES[FLAGS.rule][0]}), on: taken by every layer it '
        f'is for; this CPU kind takes it: {"yes" if picks() else "no"}')
  rows = []
  for name in FLAGS.cases:
    times = time_case(name)
    on, off = statistics.median(times['on']), statistics.median(times['off'])
    record = {'case': name, 'rule': FLAGS.rule, **suite.machine(), 'timed_steps': len(times['on']),
              'on_step_time_s': round(on, 4), 'off_step_time_s': round(off, 4), 'off_over_on': round(off / on, 3)}
    print(json.dumps(record), flush=True)
    rows.append(record)
  print('\n| case | rule on: step (s) | rule off: step (s) | off / on |\n| --- | --- | --- | --- |')
  for r in rows:
    print(f"| {r['case']} | {r['on_step_time_s']:.3f} | {r['off_step_time_s']:.3f} | {r['off_over_on']:.2f}x |")


if __name__ == '__main__':
  app.run(main)
