"""Using a trained generator: N images with a manifest, visualizations, and export for serving.

Everything here runs on the sampler graph of a restored checkpoint (no dataset needed). z is drawn from the
distribution recorded in the checkpoint's config.json, as in training.

$ python main.py --dataset mnist --generate 1000 --labels all --seed 7
$ python main.py --dataset mnist --visualize --option interp --seeds 1,2,3
$ python main.py --dataset mnist --export exported/mnist --freeze exported/mnist.pb
"""

import contextlib
import glob
import json
import os
import pathlib
import re

import numpy as np
import tensorflow as tf
from absl import logging

from common import disk
from config import VISUALIZE_OPTIONS
from errors import UserError
import utils

tf1 = tf.compat.v1

GRID_COLUMNS = 16  # the most labels grid.png gives a column each
GRID_LIMIT = 64  # images in the grid beside generated files
OPTIONS = VISUALIZE_OPTIONS  # what visualize() draws for each, in its docstring
BASE_ROWS = 8  # rows of different z in the sweeps of an unconditional model
# Names in the frozen graph and the SavedModel, documented in the README and docs/outputs.md.
FROZEN_INPUTS = ('sample_z:0', 'sample_labels:0')
FROZEN_OUTPUT = 'sample_images:0'
MANIFEST = 'manifest.json'  # --generate's list of the files it wrote


def parse_labels(text, y_dim, class_names=None):
  """--labels: None or 'all' -> every class in turn; '3,3,7' -> those; with `class_names` (a folder of class
  folders), names too: 'cat,dog,3'. Returns a list of ints or None.

  Raises:
    UserError: labels for an unconditional model, an unknown name, or a label out of range.
  """
  if text is None:
    return None
  if not y_dim:
    raise UserError('--labels was given, but this model is unconditional (it was trained without labels)')
  if text == 'all':
    return list(range(y_dim))
  ids = {name: index for index, name in enumerate(class_names or ())}
  labels = []
  for part in text.split(','):
    if part in ids:
      labels.append(ids[part])
      continue
    try:
      labels.append(int(part))
    except ValueError:
      known = (f"class names ({', '.join(list(ids)[:5])}{', ...' if len(ids) > 5 else ''}) or "
               if ids else '')
      raise UserError(f"--labels must be 'all' or a comma-separated list of {known}integers; {part!r} is neither"
                      ) from None
  bad = [label for label in labels if not 0 <= label < y_dim]
  if bad:
    raise UserError(f'--labels {bad[0]} is out of range: this model knows labels 0 to {y_dim - 1}')
  return labels


def read_manifest(folder):
  """The manifest.json of an earlier --generate into `folder`, or None where there is none (or none of ours)."""
  try:
    with open(os.path.join(folder, MANIFEST)) as f:
      manifest = json.load(f)
  except (OSError, ValueError):
    return None
  return manifest if isinstance(manifest, list) and all(isinstance(e, dict) and 'file' in e for e in manifest) \
      else None


def generate(gen, count, labels, seed, out_dir, step):
  """Writes `count` PNG files, grid.png of the first ones and manifest.json into `out_dir`; the files an earlier
  --generate of the same checkpoint and seed listed beyond `count` are removed (they can be made again).

  Returns:
    The manifest: a list of {file, index, seed, step[, label[, class]]}: step is the checkpoint's, class the
    label's name when the data named its classes.
  """
  z = np.stack([gen.z_for(seed, i) for i in range(count)])
  label_ids = gen.labels_for(labels, count)
  images = gen(z, label_ids)
  width = max(5, len(str(count - 1)))
  manifest = []
  for i, image in enumerate(images):
    name = f'{i:0{width}d}.png'
    utils.save_png(os.path.join(out_dir, name), image)
    entry = {'file': name, 'index': i, 'seed': seed, 'step': step}
    if label_ids is not None:
      entry['label'] = int(label_ids[i])
      if gen.config.class_names:
        entry['class'] = gen.config.class_names[label_ids[i]]
    manifest.append(entry)
  shown = images[:GRID_LIMIT]
  # one column per label while the labels repeat every GRID_COLUMNS or fewer images, else as square as possible
  period = len(labels) if labels else gen.config.y_dim
  cols = min(len(shown), period) if label_ids is not None and period <= GRID_COLUMNS else None
  utils.save_png(os.path.join(out_dir, 'grid.png'), utils.make_grid(shown, cols))
  written = {entry['file'] for entry in manifest}
  for entry in read_manifest(out_dir) or ():
    if entry['file'] not in written and os.path.basename(entry['file']) == entry['file']:
      with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(out_dir, entry['file']))
  disk.write_text(os.path.join(out_dir, MANIFEST), json.dumps(manifest, indent=1))
  return manifest


def _sweep_values(distribution, frames):
  """Values a z dimension takes in a sweep: across U(-1, 1), or +-2 standard deviations of N(0, 1)."""
  limit = 1.0 if distribution == 'uniform_signed' else 2.0
  return np.linspace(-limit, limit, frames, dtype=np.float32)


def _slerp(a, b, t):
  """Spherical interpolation from a (t = 0) to b (t = 1), linear when they are parallel."""
  cos = np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
  omega = np.arccos(np.clip(cos, -1.0, 1.0))
  if np.sin(omega) < 1e-6:
    return (1 - t) * a + t * b
  return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def visualize(gen, option, out_dir, labels=None, seed=0, frames=16, num_dims=10, seeds=(0, 1)):
  """Writes the pictures of one --option into `out_dir`.

  Options: 0 the sample grid (one row per label for a conditional model); 1 for each of the first `num_dims`
  dimensions of z, a PNG whose columns sweep that dimension; 2 the same sweep as a GIF for `num_dims` random
  dimensions; 3 GIFs sweeping each of the first `num_dims` dimensions from z = 0; 4 one GIF whose frames show
  every one of the first `num_dims` dimensions swept at once; interp slerp between `seeds` as a strip and a GIF;
  progress a GIF of the training grids in the sample folder, in step order.

  Returns:
    The paths written.
  """
  cfg = gen.config
  values = _sweep_values(cfg.z_dist, frames)
  rows = len(labels) if labels else (cfg.y_dim or BASE_ROWS)
  base = np.stack([gen.z_for(seed, i) for i in range(rows)])  # [rows, z_dim]
  row_labels = gen.labels_for(labels, rows)
  files = []

  def sweep(z, d):  # [rows, z_dim] -> frames of [rows] images with z[:, d] swept: [frames, rows, h, w, c]
    batch = np.repeat(z[np.newaxis], frames, axis=0)
    batch[:, :, d] = values[:, np.newaxis]
    labels_ = None if row_labels is None else np.tile(row_labels, frames)
    return gen(batch.reshape(-1, cfg.z_dim), labels_).reshape((frames, len(z)) + _image_shape(cfg))

  def save(name, picture, gif=False):
    path = os.path.join(out_dir, name)
    (utils.save_gif if gif else utils.save_png)(path, picture)
    files.append(path)

  if option == '0':
    save('grid.png', gen.dcgan.sample_grid(gen.sess))
  elif option == '1':
    for d in range(num_dims):  # rows: different z; columns: dimension d from low to high
      save(f'sweep_z{d:03d}.png', utils.make_grid(sweep(base, d).transpose(1, 0, 2, 3, 4).reshape(
          (-1,) + _image_shape(cfg)), cols=frames))
  elif option == '2':
    for d in sorted(np.random.default_rng(seed).choice(cfg.z_dim, num_dims, replace=False)):
      save(f'sweep_z{d:03d}.gif', np.stack([utils.make_grid(f, cols=1) for f in sweep(base, d)]), gif=True)
  elif option == '3':
    zero = np.zeros_like(base[:len(row_labels) if row_labels is not None else 1])
    for d in range(num_dims):
      save(f'from_zero_z{d:03d}.gif', np.stack([utils.make_grid(f, cols=1) for f in sweep(zero, d)]), gif=True)
  elif option == '4':
    one = np.repeat(base[:1], num_dims, axis=0)
    save('merged.gif', np.stack(list(_merged_frames(gen, one, row_labels, values, num_dims))), gif=True)
  elif option == 'interp':
    files += _interpolate(gen, seeds, frames, row_labels, out_dir)
  elif option == 'progress':
    files.append(progress_gif(cfg.sample_path, out_dir))
  return files


def _image_shape(cfg):
  return (cfg.output_height, cfg.output_width, cfg.c_dim)


def _merged_frames(gen, base, row_labels, values, num_dims):
  """Option 4: frame t is a grid in which image d has dimension d of one z set to values[t]."""
  label = None if row_labels is None else np.full(num_dims, row_labels[0])
  for value in values:
    z = base.copy()
    z[np.arange(num_dims), np.arange(num_dims)] = value
    yield utils.make_grid(gen(z, label))


def _interpolate(gen, seeds, frames, row_labels, out_dir):
  """Slerp through the z of each seed's image 0 (as --generate draws it): a strip PNG and a GIF."""
  cfg = gen.config
  ends = [gen.z_for(seed, 0) for seed in seeds]
  path = [_slerp(a, b, t) for a, b in zip(ends, ends[1:]) for t in np.arange(frames) / frames] + [ends[-1]]
  rows = 1 if row_labels is None else len(row_labels)
  z = np.tile(np.stack(path), (rows, 1))  # row-major: each row runs the whole path
  labels = None if row_labels is None else np.repeat(row_labels, len(path))
  images = gen(z.astype(np.float32), labels).reshape((rows, len(path)) + _image_shape(cfg))
  strip = os.path.join(out_dir, 'interp.png')
  utils.save_png(strip, utils.make_grid(images.reshape((-1,) + _image_shape(cfg)), cols=len(path)))
  gif = os.path.join(out_dir, 'interp.gif')
  utils.save_gif(gif, np.stack([utils.make_grid(images[:, t], cols=1) for t in range(len(path))]))
  return [strip, gif]


def progress_gif(sample_path, out_dir):
  """A GIF of the training grids train_EE_SSSSSS.png in `sample_path`, in step order.

  Raises:
    UserError: there are no training grids.
  """
  grids = glob.glob(os.path.join(sample_path, 'train_*_*.png'))
  grids.sort(key=lambda p: int(re.search(r'_(\d+)\.png$', p)[1]))
  if not grids:
    raise UserError(f'no training grids (train_*.png) in {sample_path}: train with --sample_freq first')
  frames = [utils.read_png(p) for p in grids]
  size = frames[-1].shape
  kept = [f for f in frames if f.shape == size]
  if len(kept) < len(frames):
    logging.warning('left out %d grids whose size differs from the newest (another --sample_num)',
                    len(frames) - len(kept))
  path = os.path.join(out_dir, 'progress.gif')
  utils.save_gif(path, np.stack(kept), seconds_per_frame=0.3)
  return path


def export_saved_model(dcgan, sess, export_dir):
  """Writes a SavedModel of G with a serving_default signature.

  The signature takes `z` float32 [batch, z_dim] (and `labels` int32 [batch] for a conditional model), any batch,
  and returns `images` uint8 [batch, height, width, channels].

  Raises:
    UserError: `export_dir` exists and is not empty.
  """
  if os.path.exists(export_dir) and os.listdir(export_dir):
    raise UserError(f'--export {export_dir} exists and is not empty: choose a new folder')
  sampler = dcgan.sampler
  inputs = {'z': sampler.z} if sampler.labels is None else {'z': sampler.z, 'labels': sampler.labels}
  signature = tf1.saved_model.signature_def_utils.predict_signature_def(inputs, {'images': sampler.images})
  builder = tf1.saved_model.Builder(export_dir)
  builder.add_meta_graph_and_variables(sess, [tf1.saved_model.SERVING], strip_default_attrs=True,
                                       signature_def_map={'serving_default': signature})
  builder.save()


def freeze(dcgan, sess, path):
  """Writes G as a frozen GraphDef: inputs sample_z:0 (and sample_labels:0), output sample_images:0."""
  output = dcgan.sampler.images.op.name
  frozen = tf1.graph_util.convert_variables_to_constants(sess, dcgan.graph.as_graph_def(), [output])
  disk.write_atomically(path, lambda temporary: pathlib.Path(temporary).write_bytes(frozen.SerializeToString()))
