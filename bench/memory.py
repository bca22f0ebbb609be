"""The memory of a training step against training/footprint.py's estimate of it: each measurement runs in a process
of its own, builds the Trainer of a case at a size (random in-memory images), estimates, then trains --steps steps
and reads the process's peak resident memory (ru_maxrss). The estimate refuses sizes that cannot fit before any
work, so it should come out at or a little above the peak.

Measurements are `recipe:size:precision`, the recipe one of bench/suite.py's CASES (its channels, classes,
upsampling, augmentation and average) at another size.

$ .venv/bin/python bench/memory.py
$ .venv/bin/python bench/memory.py --runs rgb64-default:512:float32
"""

import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app, flags  # noqa: E402

import suite  # noqa: E402  (bench/)

flags.DEFINE_list('runs', ['mnist28-cond:28:float32', 'mnist28-cond:112:float32', 'rgb64:64:float32',
                           'rgb64:256:float32', 'rgb64-default:64:float32', 'rgb64-default:128:float32',
                           'rgb64-default:256:float32', 'rgb64-default:256:bfloat16'],
                  'recipe:size:precision of each measurement.')
flags.DEFINE_integer('steps', 2, 'Steps trained after the estimate.')
flags.DEFINE_string('one', None, 'Run one measurement in this process (what each subprocess does).')
FLAGS = flags.FLAGS


def measure(run, steps):
  """{estimate_gb, tensor_gb, peak_gb, ...} of one recipe:size:precision, in this process."""
  from training import runtime  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import; (before tensorflow)
  import numpy as np  # pylint: disable=import-outside-toplevel
  import datasets  # pylint: disable=import-outside-toplevel
  from training import footprint, trainer  # pylint: disable=import-outside-toplevel

  name, size, precision = run.split(':')
  size, case = int(size), suite.CASES[name]
  rng = np.random.default_rng(0)
  data = datasets.PixelSource(name, rng.integers(0, 256, [64, size, size, case.channels], dtype=np.uint8),
                              rng.integers(0, max(case.classes, 1), [64]).astype(np.int32) if case.classes else None,
                              case.classes or None)
  folder = tempfile.mkdtemp()
  config = dataclasses.replace(suite.case_config(name, data, precision, checkpoint_dir=folder, sample_dir=folder,
                                                log_dir=folder), output_height=size, output_width=size)
  training = trainer.Trainer(config, data)
  graph = training.dcgan.graph
  estimate, tensors = footprint.step_bytes(graph), footprint.tensor_bytes(graph)
  suite.started(training, steps)
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  return {'run': run, 'estimate_gb': round(estimate / 1e9, 3), 'tensor_gb': round(tensors / 1e9, 3),
          'peak_gb': round(peak / 1e9, 3), 'estimate_over_peak': round(estimate / peak, 3),
          'machine': suite.machine_line()}


def main(_):
  if FLAGS.one:
    print(json.dumps(measure(FLAGS.one, FLAGS.steps)))
    return
  rows = []
  for run in FLAGS.runs:
    done = subprocess.run([sys.executable, __file__, '--one', run, '--steps', str(FLAGS.steps)], check=True,
                          capture_output=True, text=True)
    rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(json.dumps(rows[-1]), flush=True)
  print(f'\n{rows[0]["machine"]}\n\n| recipe:size:precision | estimate (GB) | peak (GB) | estimate / peak |\n'
        '| --- | --- | --- | --- |')
  for row in rows:
    print(f'| {row["run"]} | {row["estimate_gb"]:.2f} | {row["peak_gb"]:.2f} | {row["estimate_over_peak"]:.2f} |')


if __name__ == '__main__':
  app.run(main)
