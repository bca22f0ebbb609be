"""Training speed of the DCGAN at batch 64 against the machine's matmul rate, its input pipeline and PyTorch.

Prints one JSON line per measurement, then a table. Measurements:
- `matmul`: 4096x4096 matmul GFLOP/s in float32 (the better of numpy and TensorFlow) and in bfloat16 (TensorFlow),
  each the best of 3: at the start and the end of the run, and after each round of each case. This VM's speed
  drifts by 10-20% over minutes, so a case's GFLOP/s is compared with the median matmul rate of its step's
  precision measured beside its own rounds (`of_matmul`).
- one line per case (`mnist28-cond`, `rgb64`, `rgb64-default`: bench/suite.py's CASES, each a size and a recipe):
  a step is what `main.py --train` does per batch (one D update, then --g_steps G updates, with the case's
  augmentation and G's moving average), built from the real training graph on random in-memory images. Step time
  is the median of --rounds x --steps timed steps after --warmup; GFLOP/s comes from the analytic FLOP count of one step
  (step_flops below); --precision picks our step's precisions (main.py's flag; auto and float32 by default, each
  timed in every round). With
  --compare_torch, bench/torch_twin.py runs the same case and recipe in a subprocess after each round of ours, in
  float32 and, where the CPU has bfloat16 units, under bfloat16 autocast (alternating, so drift hits all alike; on
  other CPUs PyTorch emulates bfloat16, minutes a step); the ratios are its step times over ours, and `vs best`
  is over the faster of its two.
- --avx2_stand_in: the whole run (PyTorch's too) with oneDNN, PyTorch's kernels, MKL and OpenBLAS held to AVX2
  (bench/suite.py AVX2_STAND_IN): an AVX2-only CPU played by this one, named so in every record.
- `pipeline-decode`, `pipeline-cache`: the input pipeline alone (datasets.make_pipeline: read, decode, resize to
  64x64, batch; or read the --cache file) on the --pipeline_data folder, in images/s, against the images/s the
  rgb64 step consumes.

$ .venv/bin/python bench/throughput.py --compare_torch      # needs: .venv/bin/pip install -r bench/requirements.txt
$ .venv/bin/python bench/throughput.py --compare_torch --avx2_stand_in --cases rgb64-default
$ .venv/bin/python bench/throughput.py --cases mnist28-cond --steps 20
"""

import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from training import runtime  # noqa: E402, F401  (before tensorflow)

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from config import CONDITIONINGS, Config  # noqa: E402
import hardware  # noqa: E402
import datasets  # noqa: E402
from training import trainer  # noqa: E402
import suite  # noqa: E402  (bench/)

tf1 = tf.compat.v1

flags.DEFINE_list('cases', list(suite.CASES), f'Cases to run, of {", ".join(suite.CASES)} (bench/suite.py).')
flags.DEFINE_integer('steps', 5, 'Timed steps per case and round.')
flags.DEFINE_integer('rounds', 3, 'Rounds per case; with --compare_torch each round of ours is followed by one of '
                     'PyTorch.')
flags.DEFINE_integer('warmup', 2, 'Untimed steps per case (and per PyTorch round) before timing.')
flags.DEFINE_integer('batch_size', 64, 'Images per step.')
flags.DEFINE_boolean('xla', False, 'Train with XLA JIT (main.py --xla).')
flags.DEFINE_multi_enum('precision', ['auto', 'float32'], ['auto', 'float32', 'bfloat16'],
                        "main.py --precision of our step; repeat the flag to time several in one run (each round "
                        "times every precision, then PyTorch's twin).")
flags.DEFINE_enum('conditioning', 'mnist', CONDITIONINGS, "main.py --conditioning of mnist28-cond; "
                  "the PyTorch twin has the classic MNIST model only, so --compare_torch needs 'mnist'.")
flags.DEFINE_boolean('avx2_stand_in', False, 'Play an AVX2-only CPU: the run again with bench/suite.py '
                     'AVX2_STAND_IN in its environment.')
flags.DEFINE_boolean('compare_torch', False, 'Also time bench/torch_twin.py, alternating with our rounds.')
flags.DEFINE_string('pipeline_data', os.path.join(ROOT, '..', 'shared', 'data', 'anime-faces'),
                    'Folder of images for the input pipeline measurement; skipped when absent. Empty: skip.')
flags.DEFINE_boolean('matmul_only', False, 'Only print the matmul measurement as JSON (used by the run itself).')
flags.DEFINE_integer('pipeline_batches', 40, 'Batches of the input pipeline to time, after 5 untimed.')
flags.DEFINE_alias('compare-torch', 'compare_torch')  # both spellings work
FLAGS = flags.FLAGS

MATMUL_SIZE = 4096


def _emit(record):
  print(json.dumps(record), flush=True)
  return record


def case_data(name):
  """The case's random in-memory dataset: enough images for every timed and warm-up step, with labels."""
  return suite.random_case(name, FLAGS.batch_size * (FLAGS.warmup + FLAGS.rounds * FLAGS.steps))


def case_config(name, scratch, precision):
  """The case's complete config at `precision` (main.py's --precision; auto resolved), as main.py would make it."""
  return suite.case_config(name, case_data(name), precision, batch_size=FLAGS.batch_size, checkpoint_dir=scratch,
                           xla=FLAGS.xla, conditioning=FLAGS.conditioning)


def layer_flops(cfg):
  """Forward multiply-adds x 2 per image of each weight layer of G and of D, in the order data flows.

  Returns:
    (G's list, D's list) of (layer name, FLOPs per image). Only convolutions and matmuls count; batch norm,
    activations and Adam are under 1% of the step.
  """
  conv = lambda out_h, out_w, c_in, c_out, taps=25: 2 * out_h * out_w * taps * c_in * c_out  # 5x5 kernels
  # G's layers, at their input's size: a transposed 5x5 conv costs the conv from its output back; ops.resize_conv2d
  # is a 3x3 conv there with four kernels (one per output parity) side by side
  up = (lambda h_in, w_in, c_in, c_out: conv(h_in, w_in, c_in, 4 * c_out, taps=9)) if cfg.upsample == 'resize' \
      else conv
  h, w, c, y, gf, df = cfg.output_height, cfg.output_width, cfg.c_dim, cfg.y_dim, cfg.gf_dim, cfg.df_dim
  if y and cfg.conditioning == 'mnist':  # the conditional MNIST model (networks._mnist_generator, _mnist_discriminator)
    h2, w2, h4, w4 = -(-h // 2), -(-w // 2), -(-h // 4), -(-w // 4)
    g = [('h0_lin', 2 * (cfg.z_dim + y) * cfg.gfc_dim), ('h1_lin', 2 * (cfg.gfc_dim + y) * gf * 2 * h4 * w4),
         ('h2', conv(h4, w4, gf * 2 + y, gf * 2)),  # a transposed conv costs the conv from its output back
         ('h3', conv(h2, w2, gf * 2 + y, c))]
    d = [('h0_conv', conv(h2, w2, c + y, c + y)), ('h1_conv', conv(h4, w4, c + 2 * y, df + y)),
         ('h2_lin', 2 * ((df + y) * h4 * w4 + y) * cfg.dfc_dim), ('h3_lin', 2 * (cfg.dfc_dim + y))]
    return g, d
  sizes = [(-(-h // 2 ** i), -(-w // 2 ** i)) for i in range(5)]
  joined = y if cfg.conditioning == 'concat' else 0  # the label joined to z and to D's input
  g = [('h0_lin', 2 * (cfg.z_dim + joined) * gf * 8 * sizes[4][0] * sizes[4][1])]
  g += [(f'h{i}', up(*sizes[5 - i], ch_in, ch_out))
        for i, (ch_in, ch_out) in enumerate([(gf * 8, gf * 4), (gf * 4, gf * 2), (gf * 2, gf), (gf, c)], 1)]
  d = [(f'h{i}_conv', conv(*sizes[i + 1], ch_in, ch_out))
       for i, (ch_in, ch_out) in enumerate([(c + joined, df), (df, df * 2), (df * 2, df * 4), (df * 4, df * 8)])]
  d.append(('h4_lin', 2 * df * 8 * sizes[4][0] * sizes[4][1]))
  return g, d


def step_flops(cfg):
  """FLOPs of one training step, from layer_flops: a layer's backward pass is a weight gradient and an input
  gradient, each as costly as its forward pass, and only the gradients the update needs are computed.

  (1) D update: G forward; D forward on real and on fake; D weight gradients for both; D input gradients for both
      but the first layer's (nothing upstream of the images is trained).
  (2) each G update: G forward; D forward on fake; D input gradients of every layer (they flow into G); G weight
      gradients; G input gradients but the first layer's (z is not trained); with G's moving average (--ema), one
      more G forward, the average's, on the update's z (gan/average.py).
  """
  g, d = layer_flops(cfg)
  g_fwd, d_fwd = sum(f for _, f in g), sum(f for _, f in d)
  d_update = g_fwd + 2 * d_fwd + 2 * d_fwd + 2 * (d_fwd - d[0][1])
  g_update = g_fwd + d_fwd + d_fwd + g_fwd + (g_fwd - g[0][1]) + (g_fwd if cfg.ema else 0)
  return cfg.batch_size * (d_update + cfg.g_steps * g_update)


def matmul_gflops():
  """float32 matmul GFLOP/s of numpy and of TensorFlow, each the best of 3, measured in a subprocess so that
  neither library's threads linger (spinning) beside the training session."""
  done = subprocess.run([sys.executable, os.path.abspath(__file__), '--matmul_only'], capture_output=True,
                        text=True, check=True)
  return json.loads(done.stdout.strip().splitlines()[-1])


def _measure_matmul():
  a = np.random.default_rng(0).random([MATMUL_SIZE, MATMUL_SIZE], dtype=np.float32)
  flops = 2 * MATMUL_SIZE ** 3
  best = {'numpy': 0.0, 'tensorflow': 0.0}
  for _ in range(3):
    start = time.perf_counter()
    np.dot(a, a)
    best['numpy'] = max(best['numpy'], flops / (time.perf_counter() - start) / 1e9)
  # (bfloat16 only where the CPU has its units: under a oneDNN cap below it, the matmul would stop the process)
  precisions = (('tensorflow', tf.float32), ('tensorflow_bfloat16', tf.bfloat16))
  for key, dtype in precisions[:2 if hardware.bfloat16_units() else 1]:
    best[key] = 0.0
    with tf.Graph().as_default():
      x = tf1.get_variable('x', initializer=a)  # a variable, not a constant that Grappler would fold away
      y = tf.cast(x, dtype)
      product = tf.reduce_sum(tf.cast(tf.matmul(y, y), tf.float32))
      with tf1.Session() as sess:
        sess.run(x.initializer)
        sess.run(product)
        for _ in range(3):
          start = time.perf_counter()
          sess.run(product)
          best[key] = max(best[key], flops / (time.perf_counter() - start) / 1e9)
  print(json.dumps({k: round(v, 1) for k, v in best.items()}))


def torch_round(name, autocast=False):
  """One round of bench/torch_twin.py in a subprocess (with `autocast`, under bfloat16 autocast); returns its
  step times."""
  command = [sys.executable, os.path.join(ROOT, 'bench', 'torch_twin.py'), '--case', name, '--steps',
             str(FLAGS.steps), '--warmup', str(FLAGS.warmup), '--batch_size', str(FLAGS.batch_size)]
  command += ['--autocast'] if autocast else []
  done = subprocess.run(command, capture_output=True, text=True)
  if done.returncode != 0:
    raise app.UsageError(f'bench/torch_twin.py failed ({done.stderr.strip().splitlines()[-1:]}); PyTorch is a '
                         f'benchmark-only dependency: .venv/bin/pip install -r bench/requirements.txt')
  return json.loads(done.stdout.strip().splitlines()[-1])['step_times_s']


def run_case(name, scratch):
  """Times the case at each --precision and, with --compare_torch, PyTorch's twin; one record per precision."""
  first_flag = {}  # each step precision once, under the first flag that means it (auto: float32 on some CPUs)
  for flag in FLAGS.precision:
    first_flag.setdefault(suite.precision_of(flag), flag)
  precisions = list(first_flag.values())
  runs = {precision: trainer.Trainer(case_config(name, scratch, precision), case_data(name))
          for precision in precisions}
  sessions = {precision: suite.started(run, FLAGS.warmup) for precision, run in runs.items()}
  ours = {precision: [] for precision in precisions}
  matmul = {precision: [] for precision in precisions}  # the best matmul GFLOP/s of the step's precision
  theirs, theirs_bf16 = [], []
  for round_ in range(FLAGS.rounds):  # each round: ours at each precision, the matmul rates, then PyTorch's
    for precision, run in runs.items():
      for step in range(FLAGS.steps):
        start = time.perf_counter()
        run.train_step(sessions[precision], FLAGS.warmup + round_ * FLAGS.steps + step)
        ours[precision].append(time.perf_counter() - start)
    rates = matmul_gflops()
    for precision, run in runs.items():
      matmul[precision].append(rates.get('tensorflow_bfloat16', 0.0) if run.config.precision == 'bfloat16' else
                               max(rates['numpy'], rates['tensorflow']))
    if FLAGS.compare_torch:
      theirs.extend(torch_round(name))
      if hardware.bfloat16_units():
        theirs_bf16.extend(torch_round(name, autocast=True))
  for sess in sessions.values():
    sess.close()
  records = []
  for precision, run in runs.items():
    cfg = run.config
    step_time, flops, rate = statistics.median(ours[precision]), step_flops(cfg), statistics.median(matmul[precision])
    record = {'case': name, 'precision_flag': precision, 'precision': cfg.precision, 'batch_size': cfg.batch_size,
              'g_steps': cfg.g_steps, 'xla': cfg.xla, 'timed_steps': len(ours[precision]),
              'step_time_s': round(step_time, 4), 'images_per_s': round(cfg.batch_size / step_time, 1),
              'step_gflop': round(flops / 1e9, 1), 'gflops': round(flops / step_time / 1e9, 1),
              'matmul_gflops': round(rate, 1), 'of_matmul': round(flops / step_time / 1e9 / rate, 3)}
    for prefix, times in (('torch', theirs), ('torch_bf16', theirs_bf16)):
      if times:
        torch_time = statistics.median(times)
        record.update({f'{prefix}_step_time_s': round(torch_time, 4),
                       f'{prefix}_images_per_s': round(cfg.batch_size / torch_time, 1),
                       f'speedup_vs_{prefix}': round(torch_time / step_time, 3)})
    if theirs:  # over PyTorch's best precision here
      best = min(statistics.median(times) for times in (theirs, theirs_bf16) if times)
      record.update(speedup_vs_torch_best=round(best / step_time, 3))
    records.append(_emit(record))
  return records


def run_pipeline(folder, consumed_images_per_s, scratch):
  """Images/s of the input pipeline alone on a folder of images resized to 64x64: decoding every file, and
  reading main.py --cache's file of decoded images."""
  cfg = dataclasses.replace(Config(), dataset=os.path.basename(folder), data_dir=os.path.dirname(folder),
                            input_fname_pattern='*.jpg', output_height=64, output_width=64,
                            batch_size=FLAGS.batch_size)
  files = datasets.open_dataset(cfg)
  records = []
  for source, dataset in (('decode', files), ('cache', datasets.cache_images(files, cfg, scratch))):
    batches = 5 + FLAGS.pipeline_batches
    with tf.Graph().as_default():
      pipeline = datasets.make_pipeline(dataset, cfg)
      order = np.resize(datasets.epoch_order(cfg.seed, 0, len(dataset)), batches * cfg.batch_size)
      with tf1.Session() as sess:
        sess.run(pipeline.initializer, pipeline.feed(order, 0))
        for _ in range(5):
          sess.run(pipeline.images)
        start = time.perf_counter()
        for _ in range(FLAGS.pipeline_batches):
          sess.run(pipeline.images)
        seconds = time.perf_counter() - start
    rate = FLAGS.pipeline_batches * cfg.batch_size / seconds
    record = {'case': f'pipeline-{source}', 'folder': folder, 'files': len(dataset), 'output': '64x64x3',
              'images_per_s': round(rate, 1)}
    if consumed_images_per_s:
      record.update(rgb64_step_images_per_s=consumed_images_per_s,
                    headroom=round(rate / consumed_images_per_s, 1))
    records.append(_emit(record))
  return records


def main(argv):
  del argv
  if FLAGS.avx2_stand_in:
    suite.play_avx2()
  if FLAGS.matmul_only:
    return _measure_matmul()
  unknown = set(FLAGS.cases) - set(suite.CASES)
  if unknown:
    raise app.UsageError(f'unknown cases {sorted(unknown)}; choose from {sorted(suite.CASES)}')
  if FLAGS.compare_torch and FLAGS.conditioning != 'mnist':
    raise app.UsageError('--compare_torch needs --conditioning mnist: the PyTorch twin has that model only')
  _emit({'case': 'machine', 'tensorflow': tf.__version__, 'cpus': os.cpu_count(), 'machine': platform.machine(),
         **suite.machine(),
         'onednn': os.environ.get('TF_ENABLE_ONEDNN_OPTS')})
  matmul = [_emit(dict(case='matmul', when='start', **matmul_gflops()))]
  results = []
  with tempfile.TemporaryDirectory() as scratch:
    for name in FLAGS.cases:
      results.extend(run_case(name, scratch))
  matmul.append(_emit(dict(case='matmul', when='end', **matmul_gflops())))
  peak = max(max(m['numpy'], m['tensorflow']) for m in matmul)
  rgb64 = next((r['images_per_s'] for r in results if r['case'] == 'rgb64'), None)  # (the first precision's)
  pipeline = []
  if FLAGS.pipeline_data and os.path.isdir(FLAGS.pipeline_data):
    with tempfile.TemporaryDirectory() as scratch:
      pipeline = run_pipeline(FLAGS.pipeline_data, rgb64, scratch)

  peak_bf16 = max(m.get('tensorflow_bfloat16', 0.0) for m in matmul)
  print(f'\n{suite.machine_line()}')
  print(f'matmul {MATMUL_SIZE}x{MATMUL_SIZE}: best float32 {peak:.0f} GFLOP/s, bfloat16 {peak_bf16:.0f} GFLOP/s over '
        'the run; "matmul GFLOP/s" below is the median of those of the step\'s precision measured right after each '
        'round of the case\n')
  print('| case | precision | step time (s) | images/s | GFLOP/s | matmul GFLOP/s | of matmul | PyTorch float32 '
        'images/s | vs it | PyTorch bfloat16 autocast images/s | vs it | vs its best |')
  print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
  for r in results:
    torch_cells = ' | '.join(
        f"{r[f'{prefix}_images_per_s']:.1f} | {r[f'speedup_vs_{prefix}']:.2f}x" if f'speedup_vs_{prefix}' in r
        else '- | -' for prefix in ('torch', 'torch_bf16'))
    print(f"| {r['case']} | {r['precision_flag']}: {r['precision']} | {r['step_time_s']:.3f} | "
          f"{r['images_per_s']:.1f} | "
          f"{r['gflops']:.0f} | {r['matmul_gflops']:.0f} | {100 * r['of_matmul']:.0f}% | {torch_cells} | "
          + (f"{r['speedup_vs_torch_best']:.2f}x |" if 'speedup_vs_torch_best' in r else '- |'))
  for p in pipeline:
    print(f"\ninput pipeline ({p['case']}) on {p['files']} files: {p['images_per_s']:.0f} images/s"
          + (f", {p['headroom']:.0f}x what the rgb64 step consumes" if 'headroom' in p else ''), end='')
  print()


if __name__ == '__main__':
  app.run(main)
