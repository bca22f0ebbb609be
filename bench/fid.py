"""What the GAN literature's numbers cost here, and how much they move between evaluation seeds.

1. `--evaluate --num_samples 10000` part by part (generating, features, the statistics) on a conditional MNIST
   model trained on ../shared/data's real digits (1,500 steps), with the stand-in of the FID network
   (tests/inception_stand_in.py: these machines cannot download the real one) and the digit classifier.
2. The real network's expected cost: Inception-v3's FLOPs per 299x299 image, counted over the convolutions of
   Keras's InceptionV3 (the same architecture; random weights, nothing downloaded), times 10,000, at this machine's
   float32 matmul rate (bench/throughput.py --matmul_only); and, as a check, that architecture timed directly.
3. The spread of every number over evaluation seeds (the real sample, z, labels, patches, subsets), at 2,000 and
   10,000 samples: the stand-in's fid, kid, precision, recall and the classifier's fd, kd, digit_precision,
   digit_recall, and swd.

$ .venv/bin/python bench/fid.py --run_dir /tmp/fid_bench        # about 25 minutes on 2 cores, the training included
"""

import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from training import runtime  # noqa: E402,F401  (first: how TensorFlow loads)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from app import modes  # noqa: E402
from config import Config, saved_config  # noqa: E402
import datasets  # noqa: E402
import evaluation  # noqa: E402
from evaluation import inception  # noqa: E402
from training import trainer  # noqa: E402
import runs  # noqa: E402  (bench/)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tests'))
import inception_stand_in  # noqa: E402  (the tests' stand-in of the FID network)
import suite  # noqa: E402  (bench/)

flags.DEFINE_string('run_dir', '/tmp/fid_bench', 'Folder of the training run and of the results (reused).')
flags.DEFINE_string('data_dir', os.path.join(runs.ROOT, '..', 'shared', 'data'), 'Holds mnist/.')
flags.DEFINE_list('seeds', ['1', '2', '3'], 'Evaluation seeds (EVAL_SEED) of the spread.')
flags.DEFINE_list('samples', ['2000', '10000'], 'Sample counts of the spread.')
flags.DEFINE_integer('steps', 1500, 'Training steps of the model scored.')
FLAGS = flags.FLAGS

KEY = 'mnist_28_28'
SHOWN = ('fid', 'kid', 'precision', 'recall', 'fd', 'kd', 'digit_precision', 'digit_recall', 'swd')
KERAS_BATCH = 25


def matmul_rate():
  """float32 4096x4096 matmul GFLOP/s, the better of numpy and TensorFlow, as bench/throughput.py measures it."""
  done = subprocess.run([sys.executable, os.path.join(runs.ROOT, 'bench', 'throughput.py'), '--matmul_only'],
                        capture_output=True, text=True, check=True)
  rates = json.loads(done.stdout.strip().splitlines()[-1])
  return max(rates['numpy'], rates['tensorflow'])


def inception_v3_cost(batches=4):
  """(GFLOP per 299x299 image over the convolutions of Inception-v3, images per second of that architecture in
  float32 on the CPU, random weights)."""
  import keras  # pylint: disable=import-outside-toplevel; only here: the architecture, never its weights
  model = keras.applications.InceptionV3(weights=None, include_top=False, pooling='avg', input_shape=(299, 299, 3))
  flops = 0
  for layer in model.layers:
    if isinstance(layer, keras.layers.Conv2D):
      (kernel_h, kernel_w), channels_in = layer.kernel_size, layer.input.shape[-1]
      _, height, width, channels_out = layer.output.shape
      flops += 2 * height * width * kernel_h * kernel_w * channels_in * channels_out
  images = np.random.default_rng(0).uniform(0, 1, (KERAS_BATCH, 299, 299, 3)).astype(np.float32)
  run = tf.function(lambda x: model(x, training=False))
  run(images)  # (traced and warmed up)
  start = time.monotonic()
  for _ in range(batches):
    run(images).numpy()
  return flops / 1e9, batches * KERAS_BATCH / (time.monotonic() - start)


def main(argv):
  del argv
  run_dir = os.path.abspath(FLAGS.run_dir)
  data_dir = os.path.abspath(FLAGS.data_dir)
  common = ['--dataset', 'mnist', '--data_dir', data_dir, '--conditioning', 'mnist']
  trained = runs.train_once(common, run_dir, KEY, FLAGS.steps, '--train_size', '19200',
                            '--epoch', str(-(-FLAGS.steps // 300)), '--seed', '1')
  inception_dir = os.path.join(run_dir, 'inception')
  inception_stand_in.write_stand_in(os.path.join(inception_dir, inception.GRAPH_FILE))
  base = saved_config(os.path.join(run_dir, 'checkpoint', KEY))
  cfg = modes.trained_config(Config(dataset='mnist', data_dir=data_dir, output_height=28,
                                    output_width=28, checkpoint_dir=os.path.join(run_dir, 'checkpoint'),
                                    sample_dir=os.path.join(run_dir, 'samples'),
                                    log_dir=os.path.join(run_dir, 'logs'), inception_dir=inception_dir,
                                    batch_size=256, precision='float32'))
  assert cfg.conditioning == base.conditioning
  dataset = datasets.open_dataset(cfg, cache_dir=cfg.data_cache_path)
  session_config = trainer.session_config('/cpu:0')
  records = []
  for seed in map(int, FLAGS.seeds):
    evaluation.EVAL_SEED = seed  # the real sample, z, labels, patches and subsets of this evaluation
    for count in map(int, FLAGS.samples):
      for name in os.listdir(cfg.data_cache_path) if os.path.isdir(cfg.data_cache_path) else ():
        if name.startswith('inception_'):  # so that the real side's features are timed too
          os.remove(os.path.join(cfg.data_cache_path, name))
      start = time.monotonic()
      # (made before the generator's session, as --evaluate does: that session makes its graph the default)
      with evaluation.Evaluator(dataset, cfg, count, session_config) as evaluator:
        setup = time.monotonic() - start
        with modes.trained_generator(cfg, FLAGS.steps) as (generator, step, _):
          start = time.monotonic()
          fake = generator(evaluator.z, evaluator.labels)
          generating = time.monotonic() - start
        results = evaluator.score(fake, evaluator.labels)
        record = {'seed': seed, 'samples': count, 'step': step, 'setup_s': setup, 'generating_s': generating,
                  'parts_s': evaluator.last_times, 'metrics': results}
      records.append(record)
      print(json.dumps(record), flush=True)
  gflop, keras_rate = inception_v3_cost()
  rate = matmul_rate()
  with open(os.path.join(run_dir, 'fid_bench.json'), 'w') as f:
    json.dump({'records': records, 'inception_v3_gflop': gflop, 'inception_v3_images_per_s': keras_rate,
               'matmul_gflops': rate, 'training_s': trained}, f, indent=1)

  print(f'\nCPU: {suite.machine_line()}; float32 matmul {rate:.0f} GFLOP/s')
  print(f'Inception-v3 at 299x299: {gflop:.2f} GFLOP per image (convolutions) -> 10,000 images need '
        f'{10000 * gflop:.0f} GFLOP: {10000 * gflop / rate / 60:.1f} min at the matmul rate; that architecture ran '
        f'{keras_rate:.1f} images/s here (float32, random weights): {10000 / keras_rate / 60:.1f} min for 10,000')
  print('\n| samples | part | seconds (mean over seeds) |\n| --- | --- | --- |')
  for count in map(int, FLAGS.samples):
    rows = [r for r in records if r['samples'] == count]
    parts = {'reading the real sample, classifier, real features': [r['setup_s'] for r in rows],
             'generating': [r['generating_s'] for r in rows]}
    for r in rows:
      for part, seconds in r['parts_s'].items():
        parts.setdefault(part, []).append(seconds)
    for part, values in parts.items():
      print(f'| {count:,} | {part} | {statistics.mean(values):.1f} |')
  print('\n| metric | ' + ' | '.join(f'{c:,} samples: mean +- sd over {len(FLAGS.seeds)} seeds' for c in
                                     map(int, FLAGS.samples)) + ' |')
  print('| --- |' + ' --- |' * len(FLAGS.samples))
  for name in SHOWN:
    cells = []
    for count in map(int, FLAGS.samples):
      values = [r['metrics'][name] for r in records if r['samples'] == count and name in r['metrics']]
      cells.append(f'{statistics.mean(values):.4g} +- {statistics.stdev(values):.2g}' if len(values) > 1 else '-')
    print(f'| {name} | ' + ' | '.join(cells) + ' |')


if __name__ == '__main__':
  app.run(main)
