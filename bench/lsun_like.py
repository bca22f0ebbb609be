"""Synthetic LMDBs like LSUN's: encoded WebP images under 40-character hex keys (bench/lmdb_scan.py and
bench/first_step.py write them).
"""

import io
import os

import lmdb
import numpy as np
from PIL import Image


def _image(rng, height, width):
  """A smooth picture with some texture, so that WebP sizes are like a photo's, not like noise or a flat colour."""
  y, x = np.mgrid[0:height, 0:width] / max(height, width)
  base = np.stack([np.sin(x * rng.uniform(2, 9) + rng.uniform(0, 6)), np.cos(y * rng.uniform(2, 9)),
                   np.sin((x + y) * rng.uniform(2, 9))], axis=-1)
  noise = rng.normal(0, 0.15, (height, width, 3))
  return np.clip((base + noise + 1) * 127.5, 0, 255).astype(np.uint8)


def write_lmdb(folder, count, height, width, seed=0):
  """An LMDB of `count` WebP images under 40-character hex keys (as LSUN's); returns the bytes of data.mdb."""
  rng = np.random.default_rng(seed)
  templates = []
  for _ in range(64):  # encoding 100,000 distinct images would take longer than what is measured
    buffer = io.BytesIO()
    Image.fromarray(_image(rng, height, width)).save(buffer, format='WEBP', quality=75)
    templates.append(buffer.getvalue())
  env = lmdb.open(folder, map_size=1 << 40)
  with env.begin(write=True) as txn:
    for i in range(count):
      key = f'{(i * 2654435761) % (1 << 160):040x}'.encode()  # spread like hashes, not in insertion order
      txn.put(key, templates[i % len(templates)] + bytes(i % 7))  # trailing bytes: no two values alike
  env.close()
  return os.path.getsize(os.path.join(folder, 'data.mdb'))
