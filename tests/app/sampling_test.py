"""generate.py through main.py, in process: --generate, --visualize, --export and --freeze on tiny trained
models; the exported models are loaded by a process that never imports this project."""

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from app import modes
from app import sampling
from config import Config
import utils
from conftest import ROOT, TINY_MODEL, assert_error, dir_flags, main_in_process

SERVE = """
import os, sys
import numpy as np
import tensorflow as tf
assert not any('dcgan' in p or p == {root!r} for p in sys.path)
for folder in sys.argv[1:]:
  os.chdir(folder)
  z = np.load('z.npy')
  labels = np.load('labels.npy') if os.path.exists('labels.npy') else None
  model = tf.saved_model.load('exported')
  feeds = dict(z=tf.constant(z)) if labels is None else dict(z=tf.constant(z), labels=tf.constant(labels))
  np.save('saved_model.npy', model.signatures['serving_default'](**feeds)['images'].numpy())
  graph_def = tf.compat.v1.GraphDef.FromString(open('frozen.pb', 'rb').read())
  with tf.Graph().as_default() as graph:
    tf.compat.v1.import_graph_def(graph_def, name='')
    with tf.compat.v1.Session(graph=graph) as sess:
      feed = {{'sample_z:0': z}} if labels is None else {{'sample_z:0': z, 'sample_labels:0': labels}}
      np.save('frozen.npy', sess.run('sample_images:0', feed))
"""


def _use(trained_models, name, *args, then=()):
  """main.py on a trained model with `args`, its folders, then the flags `then` (which win over the folders)."""
  run_dir, dataset = trained_models[name]
  return main_in_process('--dataset', dataset, *args, *dir_flags(run_dir, run_dir / 'no_data'), *then), run_dir


def _frames(path):
  with Image.open(path) as image:
    return image.n_frames, image.size


@pytest.mark.parametrize('name', ['cond', 'cond_projection', 'cond_concat'])  # each conditioning
def test_generate_writes_n_images_a_grid_and_a_manifest(trained_models, tmp_path, name):
  result, _ = _use(trained_models, name, '--generate', '5', '--batch_size', '2', '--labels', '3,3,7', '--seed',
                   '3', '--out_dir', str(tmp_path / 'a'))
  assert result.returncode == 0, result
  manifest = json.loads((tmp_path / 'a' / 'manifest.json').read_text())
  step = manifest[0]['step']
  assert manifest == [{'file': f'{i:05d}.png', 'index': i, 'seed': 3, 'step': step, 'label': label}
                      for i, label in enumerate([3, 3, 7, 3, 3])]
  assert sorted(os.listdir(tmp_path / 'a')) == [f'{i:05d}.png' for i in range(5)] + ['grid.png', 'manifest.json']
  for entry in manifest:
    assert utils.read_png(tmp_path / 'a' / entry['file']).shape == (28, 28, 1)
  assert utils.read_png(tmp_path / 'a' / 'grid.png').shape == (2 * 30 + 2, 3 * 30 + 2, 1)  # a column per label given
  result, _ = _use(trained_models, name, '--visualize', '--option', '1', '--frames', '4', '--num_dims', '1',
                   '--labels', '2,5', '--out_dir', str(tmp_path / 'b'))
  assert result.returncode == 0, result
  assert utils.read_png(tmp_path / 'b' / 'sweep_z000.png').shape == (2 * 30 + 2, 4 * 30 + 2, 1)  # 2 labels, 4 steps


def test_generate_never_mixes_its_images_with_another_checkpoint_s(trained_models, tmp_path, caplog):
  _, dataset = trained_models['cond']
  mine = ['--sample_dir', str(tmp_path / 'samples')]  # (the models are shared: their samples stay as they are)
  first, _ = _use(trained_models, 'cond', '--generate', '6', '--seed', '1', then=mine)
  assert first.returncode == 0, first
  default = tmp_path / 'samples' / f'{dataset}_28_28' / 'generated'
  step = json.loads((default / 'manifest.json').read_text())[0]['step']
  # the same checkpoint and seed: in place
  again, _ = _use(trained_models, 'cond', '--generate', '2', '--seed', '1', then=mine)
  assert again.returncode == 0
  assert sorted(os.listdir(default)) == ['00000.png', '00001.png', 'grid.png', 'manifest.json']  # none left over
  with caplog.at_level(logging.WARNING):
    other, _ = _use(trained_models, 'cond', '--generate', '3', '--seed', '2', then=mine)  # another seed: beside
  assert other.returncode == 0
  beside = default.parent / f'generated_{step:06d}_seed2'
  assert f'holds 2 images of an earlier --generate (step {step}, seed 1; this is step {step}, seed 2): these go to ' \
         f'{beside}' in caplog.text
  assert len(json.loads((beside / 'manifest.json').read_text())) == 3 and len(os.listdir(default)) == 4
  given = tmp_path / 'mine'
  assert _use(trained_models, 'cond', '--generate', '2', '--seed', '1', '--out_dir', str(given))[0].returncode == 0
  assert_error(_use(trained_models, 'cond', '--generate', '2', '--seed', '3', '--out_dir', str(given))[0],
               f'{given} holds 2 images of an earlier --generate (step {step}, seed 1; this is step {step}, seed 3): '
               'give another --out_dir, or empty it first')


def test_generate_is_deterministic_per_seed_and_independent_of_n(trained_models, tmp_path):
  for out, n, seed in (('a', 7, 5), ('b', 7, 5), ('c', 3, 5), ('d', 7, 6)):
    result, _ = _use(trained_models, 'cond', '--generate', str(n), '--batch_size', '4', '--seed', str(seed),
                     '--out_dir', str(tmp_path / out))
    assert result.returncode == 0, result
  read = lambda out, i: (tmp_path / out / f'{i:05d}.png').read_bytes()
  assert all(read('a', i) == read('b', i) for i in range(7))
  assert all(read('a', i) == read('c', i) for i in range(3))
  assert all(read('a', i) != read('d', i) for i in range(7))
  labels = [e['label'] for e in json.loads((tmp_path / 'a' / 'manifest.json').read_text())]
  assert labels == [0, 1, 2, 3, 4, 5, 6]


def test_generate_samples_the_average_unless_ema_is_0(trained_models, tmp_path):
  for out, extra in (('default', ()), ('average', ('--ema', '0.5')), ('weights', ('--ema', '0'))):
    result, _ = _use(trained_models, 'cond', '--generate', '3', '--seed', '4', '--out_dir', str(tmp_path / out),
                     *extra)
    assert result.returncode == 0, result
  read = lambda out, i: (tmp_path / out / f'{i:05d}.png').read_bytes()
  assert all(read('default', i) == read('average', i) for i in range(3))  # the decay only matters in training
  assert all(read('default', i) != read('weights', i) for i in range(3))


@pytest.mark.parametrize('option,expected', [
    ('0', {'grid.png': None}),
    ('1', {'sweep_z000.png': None, 'sweep_z001.png': None, 'sweep_z002.png': None}),
    ('3', {'from_zero_z000.gif': 4, 'from_zero_z001.gif': 4, 'from_zero_z002.gif': 4}),
    ('4', {'merged.gif': 4}),
    ('interp', {'interp.png': None, 'interp.gif': 2 * 4 + 1}),
    ('progress', {'progress.gif': 4}),
])
def test_visualize_options_write_readable_files(trained_models, tmp_path, option, expected):
  result, _ = _use(trained_models, 'cond', '--visualize', '--option', option, '--frames', '4', '--num_dims', '3',
                   '--seeds', '1,2,3', '--labels', '2,5', '--out_dir', str(tmp_path))
  assert result.returncode == 0, result
  assert sorted(os.listdir(tmp_path)) == sorted(expected)
  for name, frames in expected.items():
    count, _ = _frames(tmp_path / name)
    assert count == (frames or 1), name
  if option == '1':  # 2 rows (labels 2 and 5), 4 columns (the sweep)
    assert utils.read_png(tmp_path / 'sweep_z000.png').shape == (2 * 30 + 2, 4 * 30 + 2, 1)
  if option == 'interp':
    assert utils.read_png(tmp_path / 'interp.png').shape == (2 * 30 + 2, 9 * 30 + 2, 1)


def test_visualize_random_sweeps_of_an_unconditional_model(trained_models, tmp_path):
  # float32: in bfloat16 the tiny model's three frames can round to the same pixels, and a GIF merges equal frames
  result, _ = _use(trained_models, 'uncond', '--visualize', '--option', '2', '--frames', '3', '--num_dims', '2',
                   '--out_dir', str(tmp_path), '--precision', 'float32')
  assert result.returncode == 0, result
  gifs = sorted(os.listdir(tmp_path))
  assert len(gifs) == 2 and all(g.startswith('sweep_z') and g.endswith('.gif') for g in gifs)
  count, size = _frames(tmp_path / gifs[0])
  assert count == 3 and size == (12 + 4, sampling.BASE_ROWS * 18 + 2)  # one column of 8 RGB 16x12 images


@pytest.mark.process
def test_export_round_trip_in_a_process_that_never_imports_the_project(trained_models, tmp_path):
  expected = {}
  for name in ('cond', 'cond_projection', 'cond_concat', 'uncond'):
    run_dir, _ = trained_models[name]
    folder = tmp_path / name
    result, _ = _use(trained_models, name, '--export', str(folder / 'exported'), '--freeze', str(folder / 'frozen.pb'))
    assert result.returncode == 0, result
    cfg = modes.trained_config(Config(dataset=trained_models[name][1], checkpoint_dir=str(run_dir / 'ckpt'),
                                      output_height=None, output_width=None))
    z = utils.noise(cfg.z_dist, [5, cfg.z_dim], 9)
    np.save(folder / 'z.npy', z)
    labels = np.array([0, 9, 3, 3, 1], np.int32) if cfg.y_dim else None
    if labels is not None:
      np.save(folder / 'labels.npy', labels)
    with modes.trained_generator(cfg) as (gen, _, _):
      expected[name] = gen(z, labels), cfg

  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  served = subprocess.run([sys.executable, '-c', SERVE.format(root=ROOT), *(str(tmp_path / name) for name in expected)],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
  assert served.returncode == 0, served.stderr
  for name, (images, cfg) in expected.items():
    for output in ('saved_model.npy', 'frozen.npy'):
      got = np.load(tmp_path / name / output)
      assert got.dtype == np.uint8 and got.shape == (5, cfg.output_height, cfg.output_width, cfg.c_dim)
      np.testing.assert_array_equal(got, images)
  cli = os.path.join(os.path.dirname(sys.executable), 'saved_model_cli')
  shown = subprocess.run([cli, 'show', '--all', '--dir', str(tmp_path / 'cond' / 'exported')], capture_output=True,
                         text=True, env=env)
  assert shown.returncode == 0, shown.stderr
  assert "signature_def['serving_default']" in shown.stdout and 'images' in shown.stdout and 'labels' in shown.stdout
  # exported at --precision auto (bfloat16 on a CPU with bfloat16 units), still float32 z in and uint8 images out
  assert 'DT_BFLOAT16' not in shown.stdout and 'DT_FLOAT' in shown.stdout and 'DT_UINT8' in shown.stdout


@pytest.mark.parametrize('name,args,fragment', [
    ('cond', ['--generate', '0'], 'flag --generate=0: 0 is not a positive integer'),
    ('cond', ['--generate', '-4'], 'flag --generate=-4: -4 is not a positive integer'),
    ('cond', ['--generate', '3', '--labels', '12'], '--labels 12 is out of range: this model knows labels 0 to 9'),
    ('cond', ['--generate', '3', '--labels', 'three'], "--labels must be 'all' or a comma-separated list"),
    ('uncond', ['--generate', '3', '--labels', '1'], '--labels was given, but this model is unconditional'),
    ('cond', ['--generate', '3', '--out_dir', '{run}/ckpt/tiny_28_28/config.json/out'], 'cannot write to'),
    ('cond', ['--visualize', '--option', 'interp', '--seeds', '4'], "flag --seeds=['4']: needs two or more seeds"),
    ('cond', ['--train', '--generate', '3'], '--train cannot be combined with --generate'),
    ('cond', ['--export', '{run}/ckpt'], 'exists and is not empty'),
    ('cond', ['--generate', '3', '--output_height', '32'], 'no checkpoint in'),
])
def test_bad_requests_get_one_sentence_and_exit_code_2(trained_models, name, args, fragment):
  run_dir, _ = trained_models[name]
  result, _ = _use(trained_models, name, *[a.replace('{run}', str(run_dir)) for a in args])
  assert_error(result, fragment)


def test_num_dims_is_checked_only_when_visualizing(tmp_path, tiny_idx_root):
  flags = ['--dataset', 'tiny', '--z_dim', '4', *dir_flags(tmp_path, tiny_idx_root)]
  trained = main_in_process('--train', '--batch_size', '16', '--train_size', '16', '--epoch', '1', *TINY_MODEL,
                            *flags)
  assert trained.returncode == 0, trained
  generated = main_in_process('--generate', '2', '--out_dir', str(tmp_path / 'out'), *flags)
  assert generated.returncode == 0, generated
  assert len(json.loads((tmp_path / 'out' / 'manifest.json').read_text())) == 2
  assert_error(main_in_process('--visualize', '--option', '1', *flags),
               '--num_dims 10 is more than the 4 dimensions of z')
