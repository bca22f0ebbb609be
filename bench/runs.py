"""What the bench scripts that train and score through main.py share: main.py run as a user would run it, a
training run made once and reused, the metrics its --evaluate wrote, and the JSON-lines files of results that
a later invocation continues from.

$ .venv/bin/python experiments/conditioning/conditioning.py --run_dir /tmp/c   # one of the scripts that use it
"""

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main_py(*args, cwd):
  """Runs main.py with `args` in the folder `cwd`.

  Returns:
    The subprocess.CompletedProcess, stdout and stderr as text.

  Exits:
    with the command and the end of its stderr when main.py fails.
  """
  command = [sys.executable, os.path.join(ROOT, 'main.py'), *args]
  result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
  if result.returncode:
    sys.exit(f'{" ".join(command)} failed:\n{result.stderr[-2000:]}')
  return result


def train_once(common, run_dir, key, step, *args, ckpt_freq=None):
  """main.py --train with `common` and `args` in `run_dir`, unless it already holds the checkpoint of `step`
  under the run key `key` (a run of an earlier call is reused).

  Returns:
    The seconds training took, or None when the run was reused.
  """
  if os.path.exists(os.path.join(run_dir, 'checkpoint', key, f'DCGAN.model-{step}.index')):
    return None
  os.makedirs(run_dir, exist_ok=True)
  print(f'training {step} steps in {run_dir}', file=sys.stderr, flush=True)
  start = time.monotonic()
  main_py('--train', *common, *args, '--ckpt_freq', str(ckpt_freq or step), cwd=run_dir)
  return time.monotonic() - start


def eval_metrics(cwd, key, step, samples, suffix=''):
  """The metrics main.py --evaluate --checkpoint `step` --num_samples `samples` wrote in `cwd` (`suffix` '_noema'
  for those of G's own weights, --ema 0, of a model with their average)."""
  with open(os.path.join(cwd, 'checkpoint', key, f'eval_{step:06d}_{samples}{suffix}.json')) as f:
    return json.load(f)['metrics']


def evaluate(common, step, samples, key, cwd, *extra):
  """Scores the checkpoint of `step` with main.py --evaluate (`extra` flags added): its metrics."""
  main_py('--evaluate', *common, '--checkpoint', str(step), '--num_samples', str(samples), *extra, cwd=cwd)
  own_weights = any(flag == '--ema' and float(value) == 0 for flag, value in zip(extra, extra[1:]))
  return eval_metrics(cwd, key, step, samples, '_noema' if own_weights else '')


def read_records(path):
  """The records of a JSON-lines results file (a bench script's results so far): [] when it does not exist yet."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def append_record(path, record):
  """Appends `record` to the JSON-lines file at `path` as soon as it is made, and prints it."""
  with open(path, 'a') as f:
    f.write(json.dumps(record) + '\n')
  print(json.dumps(record), flush=True)
