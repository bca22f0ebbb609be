"""Which tools make good images from a few thousand: the measurements behind the defaults for small datasets.

On the 5,000 real anime faces of ../shared/data at 64x64, each variant (today's default, then each tool alone,
then the best combinations) trains through main.py as a user would, at --precision auto, checkpoints every 312
steps (4 epochs of 78), and each checkpoint asked for is scored from both samplers (the average of G's weights,
and G's own with --ema 0):
- swd: metrics.swd of 1,000 samples against the last 1,000 files of the folder in name order, resized to 64x64
  with Pillow's Lanczos, seed 0 (the issue's yardstick: the PyTorch twin scores 78.6 at 936 steps, two halves of
  the real faces 11.0);
- fd, kd, precision, recall: in the features of rotation_judge.py's network (trained here to tell the rotation of the
  real faces; the FID paper's Inception network cannot be downloaded here), 5,000 samples against the 5,000 faces.
Every score goes to <run_dir>/results.jsonl as it is made, and a later invocation skips what is there: the runs
can stop and go on. Runs and grids stay in <run_dir>/<variant>_s<seed>/.

$ python experiments/small_data/small_data.py --run_dir /tmp/small_data --phase screen  # each tool alone, 936 steps
$ python experiments/small_data/small_data.py --run_dir /tmp/small_data --phase timing  # seconds per step of each
$ python experiments/small_data/small_data.py --run_dir /tmp/small_data --phase final --variants default,a,b
$ python experiments/small_data/small_data.py --run_dir /tmp/small_data --phase table  # the README's tables
$ python experiments/small_data/small_data.py --run_dir /tmp/small_data --phase curve --variants default
  # every checkpoint
$ python experiments/small_data/small_data.py --run_dir /tmp/small_data --phase done_when  # the issue's own check
$ python experiments/small_data/small_data.py --run_dir /tmp/small_data --phase lr_decay --seeds 0,1  # a late fall
"""

import json
import os
import shutil
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [ROOT, os.path.join(ROOT, 'bench')]  # the project; bench/'s runs.py, suite.py and torch_twin.py

from training import runtime  # noqa: E402,F401  (first: how TensorFlow loads)

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from evaluation import feature_metrics  # noqa: E402
from evaluation import metrics  # noqa: E402
from training import checkpoints  # noqa: E402
import anime_faces  # noqa: E402  (this folder)
import rotation_judge  # noqa: E402  (this folder)
import runs  # noqa: E402  (bench/)

flags.DEFINE_string('run_dir', '/tmp/small_data', 'Folder of the runs and of results.jsonl (reused).')
flags.DEFINE_string('data_dir', os.path.join(runs.ROOT, '..', 'shared', 'data'), 'Holds anime-faces/.')
flags.DEFINE_enum('phase', 'screen', ['screen', 'final', 'timing', 'table', 'done_when', 'curve', 'lr_decay'],
                  'What to run (see the docstring).')
flags.DEFINE_list('variants', None, 'Variants to run (names of VARIANTS, or several joined by +); default all for '
                  'screen and timing, default for final and curve.')
flags.DEFINE_list('seeds', None, 'Seeds; default 1 for screen, 1,2 for final and curve.')
flags.DEFINE_list('steps', None, 'Checkpoints to score; default 936 for screen, 936,3120 for final.')
flags.DEFINE_list('extra', [], 'Flags added to every run (e.g. --precision=float32), and to its name.')
FLAGS = flags.FLAGS

DATASET = anime_faces.DATASET
STEPS_PER_EPOCH = anime_faces.STEPS_PER_EPOCH
CKPT_FREQ = 312
KEY = f'{DATASET}_64_64'
DECAY_EPOCHS = 20  # --phase lr_decay: 20 epochs at the default, then 20 with the rates falling (1,560 steps each)
SWD_SAMPLES = anime_faces.SWD_SAMPLES
JUDGE_SAMPLES = 5000
# name: main.py flags. 'default' is what main.py does without flags (its defaults at the time of the run: the runs
# of the README's tables named default were made before the small-data defaults, so they are the classic recipe).
VARIANTS = {
    'default': [],
    'classic': ['--augment', 'none', '--nomirror', '--upsample', 'deconv'],
    'augment': ['--augment', 'color,translation,cutout'],
    'augment_tc': ['--augment', 'translation,cutout'],
    'mirror': ['--mirror'],
    'sn': ['--spectral_norm'],
    'sn_nobn': ['--spectral_norm', '--nod_batch_norm'],
    'r1': ['--r1', '1'],
    'ttur': ['--d_learning_rate', '4e-4', '--g_learning_rate', '1e-4'],
    'hinge': ['--loss', 'hinge'],
    'ema995': ['--ema', '0.995'],
    'rampup4': ['--ema_rampup', '0.25'],
    'rampup2': ['--ema_rampup', '0.5'],
    'lr_decay6': ['--lr_decay_epochs', '6'],  # at --steps 936 (12 epochs): the rates fall over the last 6
    'own_statistics': [],  # the default after the averaged G got batch-norm statistics of its own (average.py)
    'resize': ['--upsample', 'resize'],  # (the default for colour images since it was measured: same as default)
    'deconv': ['--upsample', 'deconv'],  # the default's G layers before resize
}


def _name(variant, seed):
  extra = ''.join(flag.lstrip('-').replace('=', '_') for flag in FLAGS.extra)
  return f'{variant}{"_" + extra if extra else ""}_s{seed}'


def _flags_of(variant):
  """A variant's flags: one of VARIANTS, or several joined by '+' (augment+mirror+sn)."""
  return [flag for part in variant.split('+') for flag in VARIANTS[part]]


def _common(data_dir, seed):
  return ['--dataset', DATASET, '--data_dir', data_dir, '--output_height', '64', '--seed', str(seed), '--cache']


def score(run_dir, step, judge, real_features, swd_real):
  """{sampler: {swd, fd, kd, precision, recall}} of the checkpoint of `step`."""
  scores = {}
  for sampler, ema in (('average', True), ('own', False)):
    fake = anime_faces.samples(run_dir, step, JUDGE_SAMPLES, ema)
    features = judge.features(fake)
    scale = np.sqrt(np.mean(np.square(real_features)))
    kd, _ = feature_metrics.kernel_distance(real_features / scale, features / scale, seed=0)
    precision, recall = feature_metrics.precision_recall(real_features, features)
    scores[sampler] = {'swd': metrics.swd(swd_real, fake[:SWD_SAMPLES], 0)['mean'],
                       'fd': feature_metrics.frechet_distance_of(real_features, features), 'kd': kd,
                       'precision': precision, 'recall': recall}
  return scores


def train_and_score(variant, seed, steps, data_dir, results_path, judge, real_features, swd_real):
  name = _name(variant, seed)
  run_dir = os.path.join(FLAGS.run_dir, name)
  done = {r['step'] for r in runs.read_records(results_path) if r['run'] == name}
  last = max(steps)
  if set(steps) <= done:
    return
  start = time.monotonic()
  seconds = runs.train_once(_common(data_dir, seed), run_dir, KEY, last, *_flags_of(variant),
                            *FLAGS.extra, '--epoch', str(-(-last // STEPS_PER_EPOCH)), '--max_to_keep', '50',
                            '--sample_freq', str(CKPT_FREQ), ckpt_freq=CKPT_FREQ)
  for step in sorted(set(steps) - done):
    scores = score(run_dir, step, judge, real_features, swd_real)
    runs.append_record(results_path, {'run': name, 'variant': variant, 'seed': seed, 'extra': FLAGS.extra,
                                      'step': step, 'training_s': seconds, 'scored_s': time.monotonic() - start,
                                      **scores})


def lr_decay(seeds, data_dir, results_path, judge, real_features, swd_real):
  """Does a learning rate that falls late hold the middle of a run's quality? Each seed's default run to 20
  epochs (1,560 steps), then two branches from its last checkpoint to 40 epochs (3,120 steps): the default
  (lr_default_s<seed>), and --lr_decay_epochs 20 (lr_decay_s<seed>: both rates falling linearly to 0 from step
  1,560). Until step 1,560 the two are one run (a resume is exact), so they share it. Each branch is scored at
  3,120 as --phase final scores; --phase curve --variants lr_default,lr_decay gives every checkpoint's swd."""
  half, total = DECAY_EPOCHS * STEPS_PER_EPOCH, 2 * DECAY_EPOCHS * STEPS_PER_EPOCH
  for seed in seeds:
    common = [*_common(data_dir, seed), '--max_to_keep', '50', '--sample_freq', str(CKPT_FREQ)]
    base = os.path.join(FLAGS.run_dir, f'lr_base_s{seed}')
    runs.train_once(common, base, KEY, half, '--epoch', str(DECAY_EPOCHS), ckpt_freq=CKPT_FREQ)
    done = {r['run'] for r in runs.read_records(results_path)}
    for variant, extra in (('lr_default', []), ('lr_decay', ['--lr_decay_epochs', str(DECAY_EPOCHS)])):
      name = _name(variant, seed)
      run_dir = os.path.join(FLAGS.run_dir, name)
      if not os.path.exists(run_dir):
        shutil.copytree(base, run_dir + '.partial')  # (a copy cut short is never taken for a branch)
        os.rename(run_dir + '.partial', run_dir)
      seconds = runs.train_once(common, run_dir, KEY, total, '--epoch', str(2 * DECAY_EPOCHS), *extra,
                                ckpt_freq=CKPT_FREQ)
      if name not in done:
        runs.append_record(results_path, {'run': name, 'variant': variant, 'seed': seed, 'extra': [],
                                          'step': total, 'training_s': seconds,
                                          **score(run_dir, total, judge, real_features, swd_real)})


def timing(data_dir):
  """Seconds per training step of each variant alone, from a short run each (its last 40 steps' images/s)."""
  results = {}
  for variant in FLAGS.variants or VARIANTS:
    run_dir = os.path.join(FLAGS.run_dir, 'timing')
    result = runs.main_py('--train', *_common(data_dir, 1), *_flags_of(variant), *FLAGS.extra, '--epoch', '1',
                          '--train_size', str(64 * 60), '--log_freq', '20', '--run_name', variant.replace('+', '-'),
                          '--checkpoint_dir', os.path.join(run_dir, 'ckpt'), '--sample_dir',
                          os.path.join(run_dir, 'samples'), '--log_dir', os.path.join(run_dir, 'logs'),
                          cwd=FLAGS.run_dir)
    rates = [float(line.split(' img/s')[0].split()[-1]) for line in result.stderr.splitlines() if 'img/s' in line]
    results[variant] = 64 / statistics.mean(rates[1:])  # (the first 20 steps include the warm-up)
    print(f'{variant}: {results[variant]:.3f} s per step', flush=True)
  with open(os.path.join(FLAGS.run_dir, f'timing{"_".join(FLAGS.extra)}.json'), 'w') as f:
    json.dump(results, f, indent=1)


def table(results_path):
  """The runs' scores as Markdown tables: per run and step, and the means and deviations over seeds."""
  records = runs.read_records(results_path)
  print('| run | step | sampler | swd | fd | kd | precision | recall |')
  print('| --- | --- | --- | --- | --- | --- | --- | --- |')
  for r in records:
    for sampler in ('average', 'own'):
      s = r[sampler]
      print(f"| {r['run']} | {r['step']} | {sampler} | {s['swd']:.1f} | {s['fd']:.2f} | {s['kd']:.2f} | "
            f"{s['precision']:.3f} | {s['recall']:.3f} |")
  groups = {}
  for r in records:
    groups.setdefault((r['variant'], tuple(r.get('extra', [])), r['step']), []).append(r)
  print('\n| variant | step | sampler | seeds | swd | fd | kd | precision | recall |')
  print('| --- | --- | --- | --- | --- | --- | --- | --- | --- |')
  for (variant, extra, step), group in sorted(groups.items()):
    for sampler in ('average', 'own'):
      cells = []
      for key in ('swd', 'fd', 'kd', 'precision', 'recall'):
        values = [r[sampler][key] for r in group]
        spread = f' +- {statistics.stdev(values):.2g}' if len(values) > 1 else ''
        cells.append(f'{statistics.mean(values):.3g}{spread}')
      label = variant + (' ' + ' '.join(extra) if extra else '')
      print(f'| {label} | {step} | {sampler} | {len(group)} | ' + ' | '.join(cells) + ' |')


def curve(variants, seeds, swd_real):
  """The swd of every checkpoint the runs of --phase final kept (1,000 samples of the averaged G, as done_when):
  how steady a run is between the steps that phase scores in full. Kept in <run_dir>/curve.jsonl (a later call
  scores only what is missing); prints a table, a row per run."""
  path = os.path.join(FLAGS.run_dir, 'curve.jsonl')
  done = {(r['run'], r['step']): r['swd'] for r in runs.read_records(path)}
  rows = {}
  for variant in variants:
    for seed in seeds:
      name = _name(variant, seed)
      run_dir = os.path.join(FLAGS.run_dir, name)
      for step in sorted(checkpoints.steps(os.path.join(run_dir, 'checkpoint', KEY))):
        if (name, step) not in done:
          done[name, step] = anime_faces.yardstick_swd(run_dir, step, swd_real)
          runs.append_record(path, {'run': name, 'step': step, 'swd': done[name, step]})
        rows.setdefault(name, {})[step] = done[name, step]
  steps = sorted({step for row in rows.values() for step in row})
  print('| run | ' + ' | '.join(f'{step:,}' for step in steps) + ' |')
  print('| --- |' + ' --- |' * len(steps))
  for name, row in rows.items():
    print(f'| {name} | ' + ' | '.join(f'{row[step]:.1f}' if step in row else '' for step in steps) + ' |')


def done_when(data_dir, swd_real):
  """The issue's check, as a user types it: main.py --train with default flags but --epoch 12 (936 steps), then
  the same with --epoch 40 (3,120 steps, resuming), and the swd of every checkpoint kept (1,000 samples of the
  averaged G). Writes <run_dir>/done_when.json and prints it."""
  run_dir = os.path.join(FLAGS.run_dir, 'done_when')
  os.makedirs(run_dir, exist_ok=True)
  ckpt = os.path.join(run_dir, 'checkpoint', KEY)
  swds = {}
  for epochs in (12, 40):
    runs.main_py('--train', '--dataset', DATASET, '--data_dir', data_dir, '--output_height', '64', '--epoch',
                 str(epochs), *FLAGS.extra, cwd=run_dir)
    for step in sorted(checkpoints.steps(ckpt)):
      if step not in swds:
        swds[step] = anime_faces.yardstick_swd(run_dir, step, swd_real)
        print(f'step {step}: swd {swds[step]:.1f}', flush=True)
  best = lambda last: min(swd for step, swd in swds.items() if step <= last)
  result = {'swd': swds, 'best_by_936': best(936), 'best_by_3120': best(3120)}
  with open(os.path.join(FLAGS.run_dir, 'done_when.json'), 'w') as f:
    json.dump(result, f, indent=1)
  print(json.dumps(result))


def main(argv):
  del argv
  os.makedirs(FLAGS.run_dir, exist_ok=True)
  data_dir = os.path.abspath(FLAGS.data_dir)
  results_path = os.path.join(FLAGS.run_dir, 'results.jsonl')
  if FLAGS.phase == 'table':
    return table(results_path)
  if FLAGS.phase == 'timing':
    return timing(data_dir)
  faces, swd_real = anime_faces.real_faces(data_dir)
  if FLAGS.phase == 'done_when':
    return done_when(data_dir, swd_real)
  seeds = [int(s) for s in FLAGS.seeds or (['1'] if FLAGS.phase == 'screen' else ['1', '2'])]
  if FLAGS.phase == 'curve':
    return curve(FLAGS.variants or ['default'], seeds, swd_real)
  judge = rotation_judge.Judge(faces, os.path.join(FLAGS.run_dir, 'judge'))
  logging.info('judge: held-out rotation accuracy %.3f', judge.accuracy)
  real_features = judge.features(faces)
  if FLAGS.phase == 'lr_decay':
    return lr_decay(seeds, data_dir, results_path, judge, real_features, swd_real)
  screen = FLAGS.phase == 'screen'
  variants = FLAGS.variants or (list(VARIANTS) if screen else ['default'])
  steps = [int(s) for s in FLAGS.steps or (['936'] if screen else ['936', '3120'])]
  for seed in seeds:
    for variant in variants:
      train_and_score(variant, seed, steps, data_dir, results_path, judge, real_features, swd_real)
  table(results_path)


if __name__ == '__main__':
  app.run(main)
