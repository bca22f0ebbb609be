"""End to end: main.py run as a user would, in a subprocess, on real files."""

import glob
import json
import os
import resource
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import (ROOT, TINY_MODEL, assert_same_values, assert_user_error, dir_flags, encode, lmdb_of_images,
                      run_main, shared, write_images, write_lmdb)

tf1 = tf.compat.v1

# 96 digits, batch 16, 64 per epoch: 4 steps an epoch.
TRAIN = ['--train', '--dataset', 'tiny', '--batch_size', '16', '--train_size', '64', '--sample_num', '10',
         '--sample_freq', '2', '--ckpt_freq', '2', '--log_freq', '1', *TINY_MODEL]


def _events(log_dir):
  """(scalar tags with their steps, image tags, histogram tags, whether a graph was written)."""
  scalars, images, histograms, graph = {}, set(), set(), False
  for path in glob.glob(os.path.join(log_dir, 'events.out.tfevents.*')):
    for event in tf1.train.summary_iterator(path):
      graph = graph or bool(event.graph_def)
      for value in event.summary.value:
        if value.HasField('simple_value'):
          scalars.setdefault(value.tag, []).append(event.step)
        elif value.HasField('image'):
          images.add(value.tag)
        elif value.HasField('histo'):
          histograms.add(value.tag)
  return scalars, images, histograms, graph


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_idx_root):
  """One epoch (4 steps) of training, shared by the tests that only read what it wrote."""
  tmp_path = tmp_path_factory.mktemp('run')
  result = run_main(*TRAIN, '--epoch', '1', *dir_flags(tmp_path, tiny_idx_root), cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  return tmp_path, result


def test_training_writes_checkpoint_samples_and_events(trained):
  tmp_path, result = trained
  assert 'started at step 0 (epoch 0, batch 0)' in result.stderr
  assert 'img/s' in result.stderr and 'ETA' in result.stderr
  ckpt = tmp_path / 'ckpt' / 'tiny_28_28'
  assert tf.train.latest_checkpoint(str(ckpt)).endswith('DCGAN.model-4')
  saved = json.loads((ckpt / 'config.json').read_text())
  assert (saved['c_dim'], saved['y_dim'], saved['z_dist'], saved['output_height']) == (1, 10, 'uniform_signed', 28)
  samples = sorted(os.listdir(tmp_path / 'samples' / 'tiny_28_28'))
  assert samples == ['train_00_000002.png', 'train_00_000004.png']
  with Image.open(tmp_path / 'samples' / 'tiny_28_28' / samples[-1]) as grid:
    # 10 samples, one row per label: 10 rows of 1.
    assert grid.size == (28 + 4, 10 * 30 + 2) and grid.mode == 'L'
  scalars, images, histograms, graph = _events(str(tmp_path / 'logs' / 'tiny_28_28'))
  for tag in ('d_loss_real', 'd_loss_fake', 'd_loss', 'g_loss', 'D(x)', 'D(G(z))'):
    assert scalars[tag] == [1, 2, 3, 4], tag
  assert images == {'samples'}
  assert histograms == {'z', 'D_logits_real', 'D_logits_fake'}
  assert graph


def test_training_again_resumes_the_step_counter(trained, tiny_idx_root):
  tmp_path, _ = trained
  run_dir = tmp_path / 'resume'
  shutil.copytree(tmp_path / 'ckpt', run_dir / 'ckpt')
  result = run_main(*TRAIN, '--epoch', '2', *dir_flags(run_dir, tiny_idx_root), cwd=run_dir)
  assert result.returncode == 0, result.stderr
  assert 'resumed from' in result.stderr and 'at step 4 (epoch 1, batch 0)' in result.stderr
  assert tf.train.latest_checkpoint(str(run_dir / 'ckpt' / 'tiny_28_28')).endswith('DCGAN.model-8')
  assert sorted(os.listdir(run_dir / 'samples' / 'tiny_28_28')) == ['train_01_000006.png', 'train_01_000008.png']
  scalars, _, _, _ = _events(str(run_dir / 'logs' / 'tiny_28_28'))
  assert scalars['g_loss'] == [5, 6, 7, 8]


def test_resume_continues_inside_an_epoch(trained, tiny_idx_root):
  tmp_path, _ = trained
  run_dir = tmp_path / 'mid'
  shutil.copytree(tmp_path / 'ckpt', run_dir / 'ckpt')
  # 96 images per epoch now: 6 steps an epoch, so step 4 is epoch 0, batch 4.
  args = [a if a != '64' else '96' for a in TRAIN]
  result = run_main(*args, '--epoch', '1', *dir_flags(run_dir, tiny_idx_root), cwd=run_dir)
  assert result.returncode == 0, result.stderr
  assert 'at step 4 (epoch 0, batch 4)' in result.stderr
  assert tf.train.latest_checkpoint(str(run_dir / 'ckpt' / 'tiny_28_28')).endswith('DCGAN.model-6')


def test_test_mode_writes_a_grid_without_the_dataset(trained):
  tmp_path, _ = trained
  result = run_main('--dataset', 'tiny', '--sample_num', '20', *dir_flags(tmp_path, str(tmp_path / 'no_data')),
                    cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  path = tmp_path / 'samples' / 'tiny_28_28' / 'test_000004.png'
  assert str(path) in result.stderr
  with Image.open(path) as grid:
    pixels = np.asarray(grid)
  assert pixels.shape == (10 * 30 + 2, 2 * 30 + 2)  # 20 samples, one row per label: 10 rows of 2
  assert pixels[2:30, 2:30].std() > 0  # a generated image, not a blank cell


def test_checkpoint_from_other_flags_names_the_flag(trained, tiny_idx_root):
  tmp_path, _ = trained
  args = [a if a != '32' else '48' for a in TRAIN]  # --gfc_dim 48 --dfc_dim 48
  result = run_main(*args, '--epoch', '2', '--z_dim', '50', *dir_flags(tmp_path, tiny_idx_root), cwd=tmp_path)
  assert_user_error(result, 'does not fit', '--z_dim 100 (now 50)', '--gfc_dim 32 (now 48)',
                     '--dfc_dim 32 (now 48)')
  assert tf.train.latest_checkpoint(str(tmp_path / 'ckpt' / 'tiny_28_28')).endswith('DCGAN.model-4')


def test_test_mode_without_a_checkpoint_says_where_it_looked(trained):
  tmp_path, _ = trained
  result = run_main('--dataset', 'tiny', '--output_height', '64', *dir_flags(tmp_path, 'data'), cwd=tmp_path)
  assert_user_error(result, f'no checkpoint in {tmp_path / "ckpt" / "tiny_64_64"}', '--dataset tiny',
                     '--output_height 64 --output_width 64', 'found instead: tiny_28_28')


@pytest.mark.parametrize('args,fragments', [
    (['--dataset', 'celebA'], ['no dataset folder', 'celebA', 'download it with: python download.py celebA']),
    (['--dataset', 'mnist'], ['no dataset folder', 'download it with: python download.py mnist']),
    (['--dataset', 'pngs'], ["no file matches", "e.g. '000.png'", '--input_fname_pattern']),
    (['--dataset', 'pngs', '--input_fname_pattern', '*.png', '--crop', '--input_height', '40'],
     ['--crop 40x40 is larger than 3 of 3 images']),
    (['--dataset', 'pngs', '--input_fname_pattern', '*.png', '--crop', '--input_width', '9'],
     ['--input_width needs --input_height']),
    (['--dataset', 'pngs', '--input_fname_pattern', '*.png', '--batch_size', '4'],
     ['--batch_size 4 is larger than the 3 images']),
    (['--batch_size', '0'], ['--batch_size must be at least 1, not 0']),
    (['--beta1', '1.5'], ['--beta1 must be in [0, 1)']),
    (['--device', 'gpu zero'], ["--device 'gpu zero' is not a device name"]),
    (['--no_such_flag'], ['Unknown command line flag', 'no_such_flag']),
    (['--z_dist', 'cauchy'], ['z_dist', 'uniform_signed']),
    (['stray'], ["unexpected argument 'stray'"]),
])
def test_bad_input_gets_one_line_and_exit_code_2(tmp_path, args, fragments):
  write_images(str(tmp_path / 'data' / 'pngs'), 3)
  result = run_main('--train', *args, *dir_flags(tmp_path, str(tmp_path / 'data')), cwd=tmp_path)
  assert_user_error(result, *fragments)
  # nothing written, apart from the record of which images decode once the data has been checked
  assert not os.path.exists(tmp_path / 'samples') and not os.path.exists(tmp_path / 'logs')
  assert not glob.glob(str(tmp_path / 'ckpt' / '*' / 'DCGAN.model*'))


def test_real_jpegs_train_a_step_at_64x64(tmp_path):
  folder = shared('anime-faces')
  result = run_main('--train', '--dataset', os.path.basename(folder), '--batch_size', '8', '--train_size', '8',
                    '--epoch', '1', '--sample_num', '8', *TINY_MODEL,
                    *dir_flags(tmp_path, os.path.dirname(folder)), cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  assert 'anime-faces: 5000 images, 3 channel(s), unconditional' in result.stderr
  key = 'anime-faces_64_64'
  assert tf.train.latest_checkpoint(str(tmp_path / 'ckpt' / key)).endswith('DCGAN.model-1')
  with Image.open(tmp_path / 'samples' / key / 'train_00_000001.png') as grid:
    assert grid.mode == 'RGB' and grid.size == (3 * 66 + 2, 3 * 66 + 2)


def test_an_output_folder_that_cannot_be_written_stops_at_start_up(tmp_path, tiny_idx_root):
  (tmp_path / 'taken').write_text('a file where a folder should be')
  result = run_main(*TRAIN, '--epoch', '1', *dir_flags(tmp_path, tiny_idx_root), '--sample_dir',
                    str(tmp_path / 'taken' / 'samples'), cwd=tmp_path)
  assert_user_error(result, f'cannot write to {tmp_path / "taken" / "samples" / "tiny_28_28"}: ',
                    f'{tmp_path / "taken"} is not a folder')
  assert not os.path.exists(tmp_path / 'ckpt')


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_a_read_only_output_folder_stops_at_start_up(tmp_path, tiny_idx_root):
  (tmp_path / 'ro').mkdir(mode=0o555)
  result = run_main(*TRAIN, '--epoch', '1', *dir_flags(tmp_path, tiny_idx_root), '--log_dir', str(tmp_path / 'ro'),
                    cwd=tmp_path)
  assert_user_error(result, 'cannot write to', 'is read-only')


def test_check_data_prints_a_report_and_strict_fails_on_bad_files(tmp_path):
  write_images(str(tmp_path / 'data' / 'f'), 3, ext='jpg')
  (tmp_path / 'data' / 'f' / 'zero.jpg').write_bytes(b'')
  result = run_main('--check_data', '--dataset', 'f', '--data_dir', str(tmp_path / 'data'), cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  assert '4 files, 3 readable images, 1 bad' in result.stdout and 'zero.jpg: empty file' in result.stdout
  result = run_main('--check_data', '--strict', '--dataset', 'f', '--data_dir', str(tmp_path / 'data'),
                    cwd=tmp_path)
  assert_user_error(result, 'cannot be trained on as it is: 1 bad files (--strict)')
  result = run_main('--train', '--strict', '--dataset', 'f', '--batch_size', '2', *TINY_MODEL,
                    *dir_flags(tmp_path, tmp_path / 'data'), cwd=tmp_path)
  assert_user_error(result, '1 of the 4 files matching', 'zero.jpg (empty file)')
  assert not glob.glob(str(tmp_path / 'ckpt' / '*' / 'DCGAN.model*'))


def test_check_data_on_idx_files_counts_labels(tiny_idx_root, tmp_path):
  result = run_main('--check_data', '--dataset', 'tiny', '--data_dir', tiny_idx_root, cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  assert '96 grayscale images of 28x28' in result.stdout and 'labels: 10 classes:' in result.stdout


@pytest.mark.parametrize('args, fragments', [
    (['--checkpoint', 'best'], ['no best checkpoint in', 'train with --eval_freq to keep one']),
    (['--keep_every_hours', '0'], ['--keep_every_hours must be above 0']),
    (['--check_data', '--train'], ['--check_data only checks the dataset']),
])
def test_checkpoint_and_data_flags_are_checked(tmp_path, tiny_idx_root, args, fragments):
  result = run_main(*TRAIN, *args, *dir_flags(tmp_path, tiny_idx_root), cwd=tmp_path)
  assert_user_error(result, *fragments)


def test_cache_trains_to_the_same_weights_and_a_full_disk_is_one_line(tmp_path):
  write_images(str(tmp_path / 'data' / 'faces'), 40, size=(40, 36))
  run = ['--train', '--dataset', 'faces', '--input_fname_pattern', '*.png', '--output_height', '32',
         '--batch_size', '8', '--epoch', '2', '--deterministic', *TINY_MODEL]
  results = {}
  for name, extra in (('decoded', []), ('cached', ['--cache']), ('reused', ['--cache'])):
    run_dir = tmp_path / ('decoded' if name == 'decoded' else 'cached')
    results[name] = run_main(*run, *extra, '--epoch', '1' if name == 'cached' else '2',
                             *dir_flags(run_dir, tmp_path / 'data'), cwd=tmp_path)
    assert results[name].returncode == 0, results[name].stderr
  assert 'decoding 40 images once into' in results['cached'].stderr
  assert 'reading the 40 decoded images from' in results['reused'].stderr
  key = 'faces_32_32'
  assert np.load(tmp_path / 'cached' / 'ckpt' / key / 'image_cache.npy').shape == (40, 32, 32, 3)
  # decoded and cached runs (the second resumed at epoch 1 from the cache) end with the same weights
  assert_same_values(tmp_path / 'decoded' / 'ckpt' / key / 'DCGAN.model-10',
                     tmp_path / 'cached' / 'ckpt' / key / 'DCGAN.model-10')
  # A 120 KB cache cannot be written where files may grow to 64 KB: one line, nothing half-written.
  full = tmp_path / 'full'
  process = subprocess.run([sys.executable, os.path.join(ROOT, 'main.py'), *run, '--cache',
                            *dir_flags(full, tmp_path / 'data')], cwd=tmp_path, capture_output=True, text=True,
                           preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10)),
                           timeout=600)
  assert 'File too large' in assert_user_error(process, 'could not write the image cache', 'without --cache')
  assert not glob.glob(str(full / 'ckpt' / key / 'image_cache*'))
  assert not glob.glob(str(full / 'ckpt' / key / 'DCGAN*'))


def test_an_lmdb_with_a_broken_entry_trains_and_resumes_at_any_image_size(tmp_path):
  folder = tmp_path / 'data' / 'lsun_tower_val'
  pixels = lmdb_of_images(folder, 20, size=(40, 30), formats=('WEBP', 'JPEG'))
  jpeg = encode(pixels[0], 'JPEG')
  write_lmdb(folder, [jpeg[:200] + bytes(range(256)) * 4], keys=[b'000007x'])  # a JPEG with broken data
  run = ['--train', '--dataset', 'lsun_tower_val', '--crop', '--output_height', '16', '--batch_size', '8',
         '--sample_num', '4', *TINY_MODEL, *dir_flags(tmp_path, tmp_path / 'data')]
  first = run_main(*run, '--epoch', '1', cwd=tmp_path)
  assert first.returncode == 0, first.stderr
  assert 'skipping 1 of 21 LMDB entries' in first.stderr and 'key 000007x (corrupt or truncated' in first.stderr
  assert 'dataset lsun_tower_val: 20 images, 3 channel(s), unconditional' in first.stderr
  key = tmp_path / 'ckpt' / 'lsun_tower_val_16_16'
  assert sorted(os.listdir(key)) == ['DCGAN.model-2.data-00000-of-00001', 'DCGAN.model-2.index', 'checkpoint',
                                     'config.json', 'data_check.npz', 'lmdb_keys.npz']
  again = run_main(*run, '--epoch', '2', cwd=tmp_path)
  assert again.returncode == 0, again.stderr
  assert 'at step 2 (epoch 1, batch 0)' in again.stderr and 'skipping 1 of 21' in again.stderr
  assert 'decoding 20 images of lsun_tower_val once' not in again.stderr  # the check was remembered
  assert tf.train.latest_checkpoint(str(key)).endswith('DCGAN.model-4')
