"""main.py: one run end to end in a subprocess, as a user would start it; the run modes and every flag check in
process; the exit code and the one-line error of the process itself."""

import glob
import json
import logging as std_logging
import os
import resource
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from common import memory
from datasets import digits
from datasets import idx
from training import checkpoints
from conftest import (ROOT, TINY_MODEL, assert_error, assert_same_values, assert_user_error, dir_flags, encode,
                      lmdb_of_images, main_in_process, once_per_run, read_events, run_main, shared, write_images,
                      write_lmdb)

# 96 digits, batch 16, 64 per epoch: 4 steps an epoch.
TRAIN = ['--train', '--dataset', 'tiny', '--batch_size', '16', '--train_size', '64', '--sample_num', '10',
         '--sample_freq', '2', '--ckpt_freq', '2', '--log_freq', '3', *TINY_MODEL]


@pytest.fixture(scope='session')
def trained_in_a_process(tmp_path_factory, tiny_idx_root):
  """One epoch (4 steps) of training by main.py in a subprocess, made once a test run for the tests that only
  read it (they write elsewhere): (its folder, what it printed to stderr)."""
  def run(run_dir):
    result = run_main(*TRAIN, '--epoch', '1', *dir_flags(run_dir, tiny_idx_root), cwd=run_dir)
    (run_dir / 'stderr.txt').write_text(result.stderr)
    assert result.returncode == 0, result.stderr

  run_dir = once_per_run(tmp_path_factory, 'main_trained', run)
  return run_dir, (run_dir / 'stderr.txt').read_text()


def test_training_writes_checkpoint_samples_events_and_a_graph_of_a_dozen_stages(trained_in_a_process):
  tmp_path, stderr = trained_in_a_process
  assert 'started at step 0 (epoch 0, batch 0)' in stderr
  assert '10 label classes (--conditioning projection)' in stderr
  assert 'img/s' in stderr and 'ETA' in stderr
  # none of TensorFlow's noise: deprecations, a failed Grappler pass, an op on two of the precision lists
  for noise in ('deprecated', 'failed:', 'present in multiple lists'):
    assert noise not in stderr, noise
  ckpt = tmp_path / 'ckpt' / 'tiny_28_28'
  assert tf.train.latest_checkpoint(str(ckpt)).endswith('DCGAN.model-4')
  saved = json.loads((ckpt / 'config.json').read_text())
  assert (saved['c_dim'], saved['y_dim'], saved['z_dist'], saved['output_height']) == (1, 10, 'uniform_signed', 28)
  assert (saved['loss'], saved['ema'], saved['best_metric']) == ('non_saturating', 0.999, 'fd')
  samples = sorted(os.listdir(tmp_path / 'samples' / 'tiny_28_28'))
  assert samples == ['train_00_000002.png', 'train_00_000004.png']
  with Image.open(tmp_path / 'samples' / 'tiny_28_28' / samples[-1]) as grid:
    # 10 samples, one row per label: 10 rows of 1.
    assert grid.size == (28 + 4, 10 * 30 + 2) and grid.mode == 'L'
  events = read_events(str(tmp_path / 'logs' / 'tiny_28_28'))
  for tag in ('d_loss', 'g_loss', 'D(x)', 'D(G(z))', 'images_per_second'):
    assert events.scalars[tag] == [1, 3, 4], tag  # the first step, every --log_freq 3, and the last
  assert events.images == {'samples'}
  assert events.histograms == {'z': [1, 3, 4], 'D_logits_real': [1, 3, 4], 'D_logits_fake': [1, 3, 4]}
  top_level = {node.name.split('/')[0] for node in events.graph.node}
  assert len(top_level) <= 15 and {'inputs', 'generator', 'discriminator', 'losses', 'train', 'sampler'} <= top_level


def test_training_again_resumes_the_step_counter(trained_in_a_process, tiny_idx_root, caplog, tmp_path):
  run_dir = tmp_path
  tmp_path, _ = trained_in_a_process
  shutil.copytree(tmp_path / 'ckpt', run_dir / 'ckpt')
  with caplog.at_level(std_logging.INFO):
    assert main_in_process(*TRAIN, '--epoch', '2', *dir_flags(run_dir, tiny_idx_root)).returncode == 0
  assert 'at step 4 (epoch 1, batch 0)' in caplog.text and 'resumed from' in caplog.text
  assert tf.train.latest_checkpoint(str(run_dir / 'ckpt' / 'tiny_28_28')).endswith('DCGAN.model-8')
  assert sorted(os.listdir(run_dir / 'samples' / 'tiny_28_28')) == ['train_01_000006.png', 'train_01_000008.png']
  assert read_events(str(run_dir / 'logs' / 'tiny_28_28')).scalars['g_loss'] == [5, 6, 8]


def test_resume_continues_inside_an_epoch(trained_in_a_process, tiny_idx_root, caplog, tmp_path):
  run_dir = tmp_path
  tmp_path, _ = trained_in_a_process
  shutil.copytree(tmp_path / 'ckpt', run_dir / 'ckpt')
  # 96 images per epoch now: 6 steps an epoch, so step 4 is epoch 0, batch 4.
  args = [a if a != '64' else '96' for a in TRAIN]
  with caplog.at_level(std_logging.INFO):
    assert main_in_process(*args, '--epoch', '1', *dir_flags(run_dir, tiny_idx_root)).returncode == 0
  assert 'at step 4 (epoch 0, batch 4)' in caplog.text
  assert tf.train.latest_checkpoint(str(run_dir / 'ckpt' / 'tiny_28_28')).endswith('DCGAN.model-6')


def test_test_mode_writes_a_grid_without_the_dataset(trained_in_a_process, tmp_path):
  run_dir, _ = trained_in_a_process
  # float32: after 4 steps G's batch-norm averages are still near their start, and its images differ from flat
  # grey by less than bfloat16 can show
  assert main_in_process('--dataset', 'tiny', '--sample_num', '20', *dir_flags(run_dir, str(tmp_path / 'no_data')),
                         '--sample_dir', str(tmp_path / 'samples'), '--precision', 'float32').returncode == 0
  with Image.open(tmp_path / 'samples' / 'tiny_28_28' / 'test_000004.png') as grid:
    pixels = np.asarray(grid)
  assert pixels.shape == (10 * 30 + 2, 2 * 30 + 2)  # 20 samples, one row per label: 10 rows of 2
  assert pixels[2:30, 2:30].std() > 0  # a generated image, not a blank cell


def test_one_writer_per_key_and_readers_work_meanwhile(trained_in_a_process, tiny_idx_root, tmp_path):
  run_dir = tmp_path
  shutil.copytree(trained_in_a_process[0] / 'ckpt', run_dir / 'ckpt')
  key_dir = run_dir / 'ckpt' / 'tiny_28_28'
  with checkpoints.writer_lock(str(key_dir), 'a test'):  # as a run in another terminal holds it
    before = sorted(os.listdir(key_dir))
    for args in ([*TRAIN, '--epoch', '2'], ['--dataset', 'tiny', '--evaluate', '--num_samples', '20']):
      error = assert_error(main_in_process(*args, *dir_flags(run_dir, tiny_idx_root)),
                           f'{key_dir} is in use: pid {os.getpid()} on {socket.gethostname()} since',
                           'wait for that run to end')
    assert f"({' '.join([os.path.basename(sys.argv[0]), *sys.argv[1:]])})" in error  # the holder's command line
    assert sorted(os.listdir(key_dir)) == before  # nothing written
    # test mode and --generate only read
    assert main_in_process('--dataset', 'tiny', *dir_flags(run_dir, tiny_idx_root)).returncode == 0
    assert main_in_process('--dataset', 'tiny', '--generate', '2', '--out_dir', str(tmp_path / 'out'),
                           *dir_flags(run_dir, tiny_idx_root)).returncode == 0
  with checkpoints.writer_lock(str(key_dir), 'a test'):  # released at the end of the run that held it
    pass


def test_checkpoint_from_other_flags_names_the_flag(trained_in_a_process, tiny_idx_root, tmp_path):
  run_dir, _ = trained_in_a_process
  args = [a if a != '32' else '48' for a in TRAIN]  # --gfc_dim 48 --dfc_dim 48, which only the mnist model has
  assert_error(main_in_process(*args, '--epoch', '2', '--z_dim', '50', '--conditioning', 'mnist',
                               *dir_flags(tmp_path, tiny_idx_root), '--checkpoint_dir', str(run_dir / 'ckpt')),
               'does not fit', '--conditioning projection (now mnist)', '--z_dim 100 (now 50)',
               '--gfc_dim 32 (now 48)', '--dfc_dim 32 (now 48)')
  assert_error(main_in_process(*TRAIN, '--epoch', '2', '--conditioning', 'concat', *dir_flags(tmp_path, tiny_idx_root),
                               '--checkpoint_dir', str(run_dir / 'ckpt')),
               'does not fit', 'trained with --conditioning projection (now concat); use the old values')
  assert tf.train.latest_checkpoint(str(run_dir / 'ckpt' / 'tiny_28_28')).endswith('DCGAN.model-4')


def test_test_mode_without_a_checkpoint_says_where_it_looked(trained_in_a_process, tmp_path):
  run_dir, _ = trained_in_a_process
  assert_error(main_in_process('--dataset', 'tiny', '--output_height', '64', *dir_flags(tmp_path, 'data'),
                               '--checkpoint_dir', str(run_dir / 'ckpt')),
               f'no checkpoint in {run_dir / "ckpt" / "tiny_64_64"}', '--dataset tiny',
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
    (['--dataset', 'pngs', '--input_fname_pattern', '*.png', '--batch_size', '2', '--d_steps', '2'],
     ['--batch_size 2 is larger than the 1 images an epoch gives each D update', 'shared by --d_steps 2 D updates '
      'a step): lower --batch_size or lower --d_steps']),
    (['--dataset', 'pngs', '--input_fname_pattern', '*.png', '--batch_size', '2', '--train_size', '1'],
     ['--batch_size 2 is larger than the 1 images an epoch gives each D update (--train_size 1): lower '
      '--batch_size or raise --train_size']),
    (['--batch_size', '0'], ['flag --batch_size=0: 0 is not a positive integer']),
    (['--d_steps', '0'], ['flag --d_steps=0: 0 is not a positive integer']),
    (['--beta1', '1.5'], ['flag --beta1=1.5: must be in [0, 1)']),
    (['--ema', '1'], ['flag --ema=1.0: must be in [0, 1) (0: no moving average)']),
    (['--gradient_penalty', '-1'], ['flag --gradient_penalty=-1: -1.0 is not a non-negative number']),
    (['--loss', 'softmax'], ['--loss=softmax', 'non_saturating|minimax|wasserstein|hinge|least_squares']),
    (['--device', 'gpu zero'], ['flag --device=gpu zero: not a device name']),
    (['--precision', 'mixed_float16', '--device', '/cpu:0'], ['--precision mixed_float16 is for GPUs',
                                                              'use --precision auto']),
    (['--z_dist', 'cauchy'], ['z_dist', 'uniform_signed']),
    (['--keep_every_hours', '0'], ['flag --keep_every_hours=0.0: must be above 0']),
    (['--check_data', '--train'], ['--check_data only checks the dataset']),
    (['--dataset', 'tfds:'], ['flag --dataset=tfds:: must be a folder name inside --data_dir, or tfds:NAME']),
    (['--dataset', 'lsun'], ['--dataset lsun needs --lsun_category with two or more categories']),
    (['--dataset', 'lsun', '--lsun_category', 'bedroom'], ['give two or more', 'use --dataset lsun_bedroom']),
    (['--dataset', 'lsun', '--lsun_category', 'bedroom,attic'], ["'attic' is not an LSUN scene category"]),
    (['--dataset', 'pngs', '--lsun_category', 'bedroom,tower'], ['--lsun_category goes with --dataset lsun']),
    (['--dataset', 'lsun', '--lsun_category', 'bedroom,tower'],
     ['no dataset folder', 'lsun_bedroom: download it with: python download.py lsun --lsun_category bedroom']),
    (['stray'], ["unexpected argument 'stray'"]),
    (['--batch_size', '1'], ['--batch_size 1 cannot train: batch norm normalizes each feature over the batch',
                             'use 2 or more']),
    (['--input_width', '20'], ['--input_width needs --input_height: together they are the size of the --crop']),
    (['--dataset', 'pgns'], ["no dataset folder", "/data/pgns (did you mean --dataset pngs?): put the images in it"]),
    (['--run_name', '../other'], ['flag --run_name=../other: must be a plain name']),
    (['--devices', '/cpu:0,cpu1'], ["'cpu1' is not a device name"]),
])
def test_bad_input_gets_one_sentence_and_exit_code_2(tmp_path, args, fragments):
  write_images(str(tmp_path / 'data' / 'pngs'), 3)
  assert_error(main_in_process('--train', *args, *dir_flags(tmp_path, str(tmp_path / 'data'))), *fragments)
  # nothing written but what was learnt of the data, kept for the dataset: no run folder, no lock file
  assert not os.path.exists(tmp_path / 'samples') and not os.path.exists(tmp_path / 'logs')
  assert set(os.listdir(tmp_path / 'ckpt')) <= {'datasets'} if os.path.exists(tmp_path / 'ckpt') else True


def test_bfloat16_under_a_onednn_cap_below_it_is_refused_before_it_would_stop_the_process(tmp_path, monkeypatch):
  monkeypatch.setenv('ONEDNN_MAX_CPU_ISA', 'AVX2')  # (read when a step first runs: nothing here gets that far)
  write_images(str(tmp_path / 'data' / 'pngs'), 3)
  assert_error(main_in_process('--train', '--dataset', 'pngs', '--input_fname_pattern', '*.png', '--precision',
                               'bfloat16', *dir_flags(tmp_path, str(tmp_path / 'data'))),
               '--precision bfloat16 with ONEDNN_MAX_CPU_ISA=AVX2', 'use --precision float32 (auto picks it)')


def test_check_data_and_failed_runs_leave_nothing_that_changes_what_later_commands_find(tmp_path):
  write_images(str(tmp_path / 'data' / 'pngs'), 8)
  data = ['--dataset', 'pngs', '--input_fname_pattern', '*.png', *dir_flags(tmp_path, tmp_path / 'data')]
  assert main_in_process('--check_data', *data) == (0, None)  # (without --output_height: 64x64 by default)
  assert os.listdir(tmp_path / 'ckpt') == ['datasets']  # no run folder: what it found is kept for the dataset
  train = ['--train', *data, '--batch_size', '4', '--epoch', '1', *TINY_MODEL]
  assert main_in_process(*train, '--output_height', '16') == (0, None)
  assert_error(main_in_process(*train, '--output_height', '48', '--train_size', '2'), '--batch_size 4 is larger')
  os.makedirs(tmp_path / 'ckpt' / 'pngs_32_32')  # a folder without a checkpoint, as a killed first run leaves one
  assert sorted(os.listdir(tmp_path / 'ckpt')) == ['datasets', 'pngs_16_16', 'pngs_32_32']
  assert main_in_process(*data) == (0, None)  # test mode finds the one size trained
  assert sorted(os.listdir(tmp_path / 'samples' / 'pngs_16_16')) == ['test_000002.png', 'train_00_000002.png']
  assert checkpoints.LOCK_FILE not in os.listdir(tmp_path / 'ckpt' / 'pngs_16_16')  # released, and gone


def test_run_names_keep_two_runs_on_the_same_data_apart(tmp_path, caplog):
  write_images(str(tmp_path / 'data' / 'pngs'), 8)
  data = ['--dataset', 'pngs', '--input_fname_pattern', '*.png', *dir_flags(tmp_path, tmp_path / 'data')]
  train = ['--train', *data, '--batch_size', '4', '--epoch', '1', '--output_height', '16', *TINY_MODEL]
  assert main_in_process(*train) == (0, None)
  assert main_in_process(*train, '--run_name', 'hinge', '--loss', 'hinge') == (0, None)
  for folder in ('ckpt', 'samples', 'logs'):
    assert sorted(os.listdir(tmp_path / folder)) == (['datasets'] if folder == 'ckpt' else []) + [
        'pngs_16_16', 'pngs_16_16-hinge']
  assert json.loads((tmp_path / 'ckpt' / 'pngs_16_16-hinge' / 'config.json').read_text())['loss'] == 'hinge'
  assert json.loads((tmp_path / 'ckpt' / 'pngs_16_16' / 'config.json').read_text())['loss'] == 'non_saturating'
  assert sorted(read_events(str(tmp_path / 'logs' / 'pngs_16_16-hinge')).scalars['d_loss']) == [1, 2]
  assert sorted(read_events(str(tmp_path / 'logs' / 'pngs_16_16')).scalars['d_loss']) == [1, 2]  # not mixed
  assert main_in_process(*data, '--run_name', 'hinge') == (0, None)  # its model, found without the size
  assert sorted(os.listdir(tmp_path / 'samples' / 'pngs_16_16-hinge')) == ['test_000002.png', 'train_00_000002.png']
  assert_error(main_in_process(*data, '--run_name', 'other'), '--dataset pngs --run_name other has no checkpoint in',
               'there are: pngs_16_16 (--output_height 16 --output_width 16), pngs_16_16-hinge (--output_height 16 '
               '--output_width 16 --run_name hinge); train first with --train')
  assert_error(main_in_process(*data, '--run_name', 'other', '--output_height', '16'), 'no checkpoint in',
               'pngs_16_16-other', 'found instead: pngs_16_16 (--output_height 16 --output_width 16), '
               'pngs_16_16-hinge (--output_height 16 --output_width 16 --run_name hinge)')
  caplog.clear()
  with caplog.at_level(std_logging.WARNING):  # the named run resumes with other training flags: each is named
    assert main_in_process(*train, '--run_name', 'hinge', '--epoch', '2', '--learning_rate', '0.0001',
                           '--batch_size', '2', '--z_dist', 'normal') == (0, None)
  assert (f'resuming {tmp_path / "ckpt" / "pngs_16_16-hinge"} with flags that differ from the run that wrote it: '
          '--z_dist normal (it was uniform_signed), --loss non_saturating (it was hinge), --learning_rate 0.0001 (it '
          'was 0.0002), --batch_size 2 (it was 4). Training goes on with the new values; the step count goes on, but '
          'the epoch and batch to resume at are counted with the new --batch_size') in caplog.text
  assert '--batch_size 2: batch norm normalizes each feature over the batch, and its statistics over 2 images are ' \
         'noise' in caplog.text


def test_g_s_own_weights_write_their_pictures_apart_from_the_average_s(trained_models, tmp_path):
  model_dir, dataset = trained_models['cond']  # (the MNIST model: its pictures differ after a few steps)
  run_dir = tmp_path
  shutil.copytree(model_dir / 'ckpt', run_dir / 'ckpt')
  flags = ['--dataset', dataset, *dir_flags(run_dir, 'data')]
  for extra in ([], ['--ema', '0']):
    assert main_in_process(*flags, *extra) == (0, None)
    assert main_in_process(*flags, *extra, '--generate', '3') == (0, None)
  samples = run_dir / 'samples' / f'{dataset}_28_28'
  assert sorted(os.listdir(samples)) == ['generated', 'generated_noema', 'test_000004.png', 'test_000004_noema.png']
  average, own = (np.asarray(Image.open(samples / name)) for name in ('test_000004.png', 'test_000004_noema.png'))
  assert not np.array_equal(average, own)
  data = ['--data_dir', str(model_dir.parent / 'data'), '--num_samples', '20']
  for extra in ([], ['--ema', '0']):
    assert main_in_process('--dataset', dataset, '--evaluate', *dir_flags(run_dir, 'data'), *data, *extra) == (0, None)
  key = run_dir / 'ckpt' / f'{dataset}_28_28'
  assert sorted(glob.glob('eval_*', root_dir=key)) == ['eval_000004_20.json', 'eval_000004_20_noema.json']
  assert sorted(os.listdir(run_dir / 'logs' / f'{dataset}_28_28')) == ['evaluate', 'evaluate_noema']


@pytest.mark.process
def test_the_process_prints_one_error_line_and_exits_2(tmp_path):
  # (a flag that does not parse takes the same way out: download_test checks it, in a process without TensorFlow)
  error = assert_user_error(run_main('--train', '--dataset', 'nowhere', cwd=tmp_path))
  assert error == f'error: no dataset folder {tmp_path}/data/nowhere: put the images in it (--input_fname_pattern ' \
                  'picks them), point --data_dir at the folder that holds nowhere/, or use a built-in dataset: digits'


def test_real_jpegs_train_a_step_at_64x64(tmp_path, caplog):
  folder = tmp_path / 'data' / 'anime-faces'  # 16 of the real faces (the whole folder scans in datasets_test)
  folder.mkdir(parents=True)
  for name in sorted(os.listdir(shared('anime-faces')))[:16]:
    os.symlink(os.path.join(shared('anime-faces'), name), folder / name)
  with caplog.at_level(std_logging.INFO):
    assert main_in_process('--train', '--dataset', 'anime-faces', '--batch_size', '8', '--train_size', '8',
                           '--epoch', '1', '--sample_num', '8', *TINY_MODEL,
                           *dir_flags(tmp_path, folder.parent)).returncode == 0
  assert 'anime-faces: 16 images, 3 channel(s), unconditional' in caplog.text
  key = 'anime-faces_64_64'
  assert tf.train.latest_checkpoint(str(tmp_path / 'ckpt' / key)).endswith('DCGAN.model-1')
  with Image.open(tmp_path / 'samples' / key / 'train_00_000001.png') as grid:
    assert grid.mode == 'RGB' and grid.size == (3 * 66 + 2, 3 * 66 + 2)


def test_an_output_folder_that_cannot_be_written_stops_at_start_up(tmp_path, tiny_idx_root):
  (tmp_path / 'taken').write_text('a file where a folder should be')
  assert_error(main_in_process(*TRAIN, '--epoch', '1', *dir_flags(tmp_path, tiny_idx_root), '--sample_dir',
                               str(tmp_path / 'taken' / 'samples')),
               f'cannot write to {tmp_path / "taken" / "samples" / "tiny_28_28"}: ',
               f'{tmp_path / "taken"} is not a folder')
  assert not os.path.exists(tmp_path / 'ckpt')


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_a_read_only_output_folder_stops_at_start_up(tmp_path, tiny_idx_root):
  (tmp_path / 'ro').mkdir(mode=0o555)
  assert_error(main_in_process(*TRAIN, '--epoch', '1', *dir_flags(tmp_path, tiny_idx_root), '--log_dir',
                               str(tmp_path / 'ro')), 'cannot write to', 'is read-only')


def test_check_data_prints_a_report_and_strict_fails_on_bad_files(tmp_path, capsys):
  write_images(str(tmp_path / 'data' / 'f'), 3, ext='jpg')
  (tmp_path / 'data' / 'f' / 'zero.jpg').write_bytes(b'')
  flags = ['--dataset', 'f', '--data_dir', str(tmp_path / 'data'), '--checkpoint_dir', str(tmp_path / 'ckpt')]
  assert main_in_process('--check_data', *flags).returncode == 0
  report = capsys.readouterr().out
  assert '4 files, 3 readable images, 1 bad' in report and 'zero.jpg: empty file' in report
  assert_error(main_in_process('--check_data', '--strict', *flags),
               'cannot be trained on as it is: 1 bad files (--strict)')
  assert_error(main_in_process('--train', '--strict', '--batch_size', '2', *TINY_MODEL,
                               *dir_flags(tmp_path, tmp_path / 'data'), '--dataset', 'f'),
               '1 of the 4 files matching', 'zero.jpg (empty file)')
  assert not glob.glob(str(tmp_path / 'ckpt' / '*' / 'DCGAN.model*'))


def test_check_data_on_idx_files_counts_labels(tiny_idx_root, tmp_path, capsys):
  assert main_in_process('--check_data', '--dataset', 'tiny', '--data_dir', tiny_idx_root, '--checkpoint_dir',
                         str(tmp_path)).returncode == 0
  report = capsys.readouterr().out
  assert '96 grayscale images of 28x28' in report and 'labels: 10 classes:' in report


def test_check_data_on_class_folders_names_the_classes(tmp_path, capsys):
  for name in ('cat', 'dog'):
    write_images(str(tmp_path / 'data' / 'pets' / name), 3 if name == 'cat' else 2)
  assert main_in_process('--check_data', '--dataset', 'pets', '--input_fname_pattern', '*.png',
                         *dir_flags(tmp_path, tmp_path / 'data')) == (0, None)
  assert 'labels: 2 classes: cat x3, dog x2' in capsys.readouterr().out


def test_checkpoint_best_needs_a_best_checkpoint(tmp_path, tiny_idx_root):
  assert_error(main_in_process(*TRAIN, '--checkpoint', 'best', *dir_flags(tmp_path, tiny_idx_root)),
               'no best checkpoint in', 'train with --eval_freq to keep one')


def test_cache_trains_to_the_same_weights(tmp_path, caplog):
  write_images(str(tmp_path / 'data' / 'faces'), 40, size=(40, 36))
  run = ['--train', '--dataset', 'faces', '--input_fname_pattern', '*.png', '--output_height', '32',
         '--batch_size', '8', '--deterministic', *TINY_MODEL]
  for name, extra in (('decoded', []), ('cached', ['--cache']), ('reused', ['--cache'])):
    run_dir = tmp_path / ('decoded' if name == 'decoded' else 'cached')
    caplog.clear()
    with caplog.at_level(std_logging.INFO):
      result = main_in_process(*run, *extra, '--epoch', '1' if name == 'cached' else '2',
                               *dir_flags(run_dir, tmp_path / 'data'))
    assert result.returncode == 0, result
    if name == 'cached':
      assert 'decoding 40 images once into' in caplog.text
    if name == 'reused':
      assert 'reading the 40 decoded images from' in caplog.text
  key = 'faces_32_32'
  cache = tmp_path / 'cached' / 'ckpt' / 'datasets' / 'faces' / 'images_32x32' / 'image_cache.npy'
  assert np.load(cache).shape == (40, 32, 32, 3)  # kept for the dataset, not for the run
  assert not glob.glob(str(tmp_path / 'cached' / 'ckpt' / key / 'image_cache*'))
  # decoded and cached runs (the second resumed at epoch 1 from the cache) end with the same weights
  assert_same_values(tmp_path / 'decoded' / 'ckpt' / key / 'DCGAN.model-10',
                     tmp_path / 'cached' / 'ckpt' / key / 'DCGAN.model-10')


@pytest.mark.process
def test_a_cache_that_does_not_fit_on_the_disk_is_one_line(tmp_path):
  write_images(str(tmp_path / 'data' / 'faces'), 40, size=(40, 36))
  # A 120 KB cache cannot be written where files may grow to 64 KB: one line, nothing half-written.
  process = subprocess.run([sys.executable, os.path.join(ROOT, 'main.py'), '--train', '--dataset', 'faces',
                            '--input_fname_pattern', '*.png', '--output_height', '32', '--batch_size', '8',
                            '--cache', *TINY_MODEL, *dir_flags(tmp_path, tmp_path / 'data')], cwd=tmp_path,
                           capture_output=True, text=True, timeout=600,
                           preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10)))
  assert 'File too large' in assert_user_error(process, 'could not write the image cache', 'without --cache')
  assert not glob.glob(str(tmp_path / 'ckpt' / 'datasets' / 'faces' / '*' / 'image_cache*'))
  assert not os.path.exists(tmp_path / 'ckpt' / 'faces_32_32')  # the run stopped before training: no run folder


def test_an_lmdb_with_a_broken_entry_trains_and_resumes_at_any_image_size(tmp_path, caplog):
  folder = tmp_path / 'data' / 'lsun_tower_val'
  pixels = lmdb_of_images(folder, 20, size=(40, 30), formats=('WEBP', 'JPEG'))
  jpeg = encode(pixels[0], 'JPEG')
  write_lmdb(folder, [jpeg[:200] + bytes(range(256)) * 4], keys=[b'000007x'])  # a JPEG with broken data
  run = ['--train', '--dataset', 'lsun_tower_val', '--crop', '--output_height', '16', '--batch_size', '8',
         '--sample_num', '4', *TINY_MODEL, *dir_flags(tmp_path, tmp_path / 'data')]
  with caplog.at_level(std_logging.INFO):
    assert main_in_process(*run, '--epoch', '1').returncode == 0
  assert 'skipping 1 of 21 LMDB entries' in caplog.text and 'key 000007x (corrupt or truncated' in caplog.text
  assert 'dataset lsun_tower_val: 20 images, 3 channel(s), unconditional' in caplog.text
  key = tmp_path / 'ckpt' / 'lsun_tower_val_16_16'
  assert sorted(os.listdir(key)) == ['DCGAN.model-2.data-00000-of-00001', 'DCGAN.model-2.index', 'checkpoint',
                                     'config.json']
  # what was learnt of the data is kept for the dataset, where a run of any size finds it
  assert sorted(os.listdir(tmp_path / 'ckpt' / 'datasets' / 'lsun_tower_val')) == ['data_check.npz', 'lmdb_keys.npz']
  caplog.clear()
  with caplog.at_level(std_logging.INFO):
    assert main_in_process(*run, '--epoch', '2').returncode == 0
  assert 'at step 2 (epoch 1, batch 0)' in caplog.text and 'skipping 1 of 21' in caplog.text
  assert 'decoding 20 images of lsun_tower_val once' not in caplog.text  # the check was remembered
  caplog.clear()
  with caplog.at_level(std_logging.INFO):  # another size
    assert main_in_process(*run, '--epoch', '1', '--output_height', '8').returncode == 0
  assert 'decoding 20 images of lsun_tower_val once' not in caplog.text and 'skipping 1 of 21' in caplog.text
  assert tf.train.latest_checkpoint(str(key)).endswith('DCGAN.model-4')


def _coloured_digit_folders(folder, classes, per_class, size=32):
  """Class folders of RGB digits at `size`: folder/<name>/*.png for each (name, digit) of `classes`, each image in
  a colour of its own."""
  rng = np.random.default_rng(0)
  for name, digit in classes:
    os.makedirs(folder / name)
    for i in range(per_class):
      gray = digits.render(digit, rng).astype(np.float32) / 255.0
      colour = rng.uniform(0.3, 1.0, size=3)
      rgb = (gray[:, :, None] * colour * 255).astype(np.uint8)
      Image.fromarray(rgb).resize((size, size), Image.BILINEAR).save(folder / name / f'{i:03d}.png')


def test_class_folders_train_a_conditional_rgb_model_and_generate_by_class_name(tmp_path):
  _coloured_digit_folders(tmp_path / 'data' / 'colours', [('one', 1), ('seven', 7), ('zero', 0)], 8)
  size = ['--dataset', 'colours', '--output_height', '32']
  assert main_in_process('--train', *size, '--input_fname_pattern', '*.png', '--batch_size', '8', '--epoch', '1',
                         '--sample_num', '6', *TINY_MODEL, *dir_flags(tmp_path, tmp_path / 'data')).returncode == 0
  saved = json.loads((tmp_path / 'ckpt' / 'colours_32_32' / 'config.json').read_text())
  assert (saved['y_dim'], saved['c_dim'], saved['class_names']) == (3, 3, ['one', 'seven', 'zero'])
  out = tmp_path / 'generated'
  assert main_in_process(*size, '--generate', '6', '--labels', 'seven,zero,0', '--out_dir', str(out),
                         *dir_flags(tmp_path, tmp_path / 'data')).returncode == 0
  manifest = json.loads((out / 'manifest.json').read_text())
  assert [(entry['label'], entry['class']) for entry in manifest] == [(1, 'seven'), (2, 'zero'), (0, 'one')] * 2
  assert_error(main_in_process(*size, '--generate', '2', '--labels', 'eight', '--out_dir', str(out),
                               *dir_flags(tmp_path, tmp_path / 'data')),
               "--labels must be 'all' or a comma-separated list of class names (one, seven, zero) or integers; "
               "'eight' is neither")
  os.rename(tmp_path / 'data' / 'colours' / 'zero', tmp_path / 'data' / 'colours' / 'nil')  # label 0 now
  assert_error(main_in_process('--train', *size, '--input_fname_pattern', '*.png', '--batch_size', '8', '--epoch',
                               '2', *TINY_MODEL, *dir_flags(tmp_path, tmp_path / 'data')),
               'was trained on the classes one, seven, zero (labels 0 to 2), but the data now has nil, one, seven: '
               'its labels would change meaning')


def test_lsun_categories_train_one_model_conditioned_on_the_category(tmp_path):
  for seed, category in enumerate(('tower', 'bedroom', 'kitchen')):
    lmdb_of_images(tmp_path / 'data' / f'lsun_{category}', 6, size=(20, 16), seed=seed)
  size = ['--output_height', '16', '--dataset', 'lsun', '--lsun_category', 'kitchen,bedroom']
  assert main_in_process('--train', *size, '--crop', '--batch_size', '4', '--epoch', '1', '--sample_num', '4',
                         *TINY_MODEL, *dir_flags(tmp_path, tmp_path / 'data')).returncode == 0
  key = tmp_path / 'ckpt' / 'lsun_bedroom+kitchen_16_16'
  saved = json.loads((key / 'config.json').read_text())
  assert (saved['y_dim'], saved['class_names'], saved['conditioning']) == (2, ['bedroom', 'kitchen'], 'projection')
  out = tmp_path / 'generated'
  assert main_in_process(*size, '--generate', '3', '--labels', 'kitchen', '--out_dir', str(out),
                         *dir_flags(tmp_path, tmp_path / 'data')).returncode == 0
  assert [(e['label'], e['class']) for e in json.loads((out / 'manifest.json').read_text())] == [(1, 'kitchen')] * 3


def test_more_classes_than_grid_rows_show_an_even_spread_and_say_which(tmp_path, caplog):
  for index in range(20):
    write_images(str(tmp_path / 'data' / 'many' / f'class{index:02d}'), 2, size=(16, 16), ext='png', seed=index)
  with caplog.at_level(std_logging.INFO):
    assert main_in_process('--train', '--dataset', 'many', '--input_fname_pattern', '*.png', '--output_height', '16',
                           '--batch_size', '8', '--epoch', '1', '--sample_num', '8', '--sample_freq', '5',
                           *TINY_MODEL, *dir_flags(tmp_path, tmp_path / 'data')).returncode == 0
  assert ('sample grids: one row for each of 8 of the 20 classes, spread evenly: class00, class03, class05, class08, '
          'class11, class14, class16, class19 (--sample_num 8)') in caplog.text
  with Image.open(tmp_path / 'samples' / 'many_16_16' / 'train_00_000005.png') as grid:
    assert grid.size == (18 + 2, 8 * 18 + 2)  # 8 rows (classes) of 1
  out = tmp_path / 'generated'
  assert main_in_process('--dataset', 'many', '--output_height', '16', '--generate', '40', '--out_dir', str(out),
                         *dir_flags(tmp_path, tmp_path / 'data')).returncode == 0
  assert [e['class'] for e in json.loads((out / 'manifest.json').read_text())][:21] == [
      f'class{index:02d}' for index in range(20)] + ['class00']
  with Image.open(out / 'grid.png') as grid:  # 20 labels are too many for a column each: 7 columns, not 40
    assert grid.size == (7 * 18 + 2, 6 * 18 + 2)


def test_an_output_size_that_would_not_fit_in_memory_is_refused_with_its_estimate_before_any_work(
    tmp_path, tiny_idx_root, monkeypatch):
  meminfo = tmp_path / 'meminfo'  # a machine of 24 GB, as these VMs have (memory_test covers cgroup limits)
  meminfo.write_text('MemTotal:       24000000 kB\nMemAvailable:   23000000 kB\n')
  monkeypatch.setattr(memory, 'MEMINFO', str(meminfo))
  monkeypatch.setattr(memory, 'CGROUP_LIMITS', ())
  write_images(str(tmp_path / 'data' / 'faces'), 64, size=(8, 8))
  # a folder is decoded batch by batch: its step at 1000x1000 (its graph's tensors, before any is allocated)
  error = assert_error(main_in_process('--train', '--dataset', 'faces', '--input_fname_pattern', '*.png',
                                       '--output_height', '1000', *dir_flags(tmp_path, tmp_path / 'data')),
                       'a training step at 1000x1000 with --batch_size 64 needs about',
                       'more than the 24.6 GB this machine has: use a smaller --output_height or --batch_size')
  assert float(error.split('needs about ')[1].split(' GB')[0]) > 24.6
  assert not os.path.exists(tmp_path / 'samples') and set(os.listdir(tmp_path / 'ckpt')) <= {'datasets'}
  # MNIST-style files are resized in memory when opened: that is checked before the first image is
  meminfo.write_text('MemTotal:       100000 kB\nMemAvailable:   90000 kB\n')
  resized = []
  monkeypatch.setattr(idx.Image, 'fromarray', lambda *args: resized.append(args))
  assert_error(main_in_process('--train', '--dataset', 'tiny', '--output_height', '1000',
                               *dir_flags(tmp_path, tiny_idx_root)),
               'resizing the 96 images of tiny to 1000x1000 in memory needs about 0.2 GB of memory, more than the '
               '0.1 GB this machine has: use a smaller --output_height (the images are 28x28)')
  assert not resized
