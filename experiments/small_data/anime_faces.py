"""What the bench scripts on the anime faces share: the real faces as the issue's SWD yardstick reads them,
samples of a checkpoint of a run on them, and that checkpoint's score on the yardstick.

$ python experiments/small_data/small_data.py --phase table  # one of the scripts that use it
"""

import glob
import os

import numpy as np
from PIL import Image

from app import modes
from config import Config
from evaluation import metrics
import utils

DATASET = 'anime-faces'
STEPS_PER_EPOCH = 78  # 5,000 faces, batch 64
SWD_SAMPLES = 1000


def real_faces(data_dir):
  """(all 5,000 faces at 64x64, the last 1,000 files in name order at 64x64): Pillow's Lanczos, as the yardstick."""
  paths = sorted(glob.glob(os.path.join(data_dir, DATASET, '*.jpg')))
  load = lambda path: np.asarray(Image.open(path).convert('RGB').resize((64, 64), Image.LANCZOS))
  faces = np.stack([load(path) for path in paths])
  return faces, faces[-SWD_SAMPLES:]


def samples(run_dir, step, count, ema=True):
  """`count` samples (uint8) of the checkpoint of `step` of the run in `run_dir`: from the average of G's weights,
  or (ema False) G's own; z from seed 0."""
  config = Config(dataset=DATASET, output_height=64, output_width=64,
                  checkpoint_dir=os.path.join(run_dir, 'checkpoint'), batch_size=250, precision='float32',
                  ema=0.0 if not ema else 0.999)
  config = modes.trained_config(config, data_dir_given=False, ema_given=not ema)
  rng = np.random.default_rng(0)
  z = utils.noise(config.z_dist, [count, config.z_dim], rng)
  with modes.trained_generator(config, step) as (generator, _, _):
    return generator(z, None)


def yardstick_swd(run_dir, step, swd_real):
  """The issue's yardstick for the checkpoint of `step`: metrics.swd (seed 0) of SWD_SAMPLES samples of the averaged
  G against `swd_real` (real_faces' second value)."""
  return metrics.swd(swd_real, samples(run_dir, step, SWD_SAMPLES), 0)['mean']
