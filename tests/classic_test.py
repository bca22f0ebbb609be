"""The classic DCGAN-tensorflow project's own commands run here as written: its users have typed them for years.

The commands are those of the README of carpedm20/DCGAN-tensorflow (its "Usage" section: train and test on MNIST
and CelebA, and "your own dataset"), run in process in a folder that holds small data under their names, each
followed by flags that keep the model and the run tiny (as tests/readme_test.py does with our own README).
"""

import logging as std_logging
import shlex

import pytest

from conftest import TINY_MODEL, main_in_process, write_idx_dataset, write_images

# carpedm20/DCGAN-tensorflow's README, "Usage", in its order
CLASSIC = [
    'python main.py --dataset mnist --input_height=28 --output_height=28 --train',
    'python main.py --dataset celebA --input_height=108 --train --crop',
    'python main.py --dataset mnist --input_height=28 --output_height=28',
    'python main.py --dataset celebA --input_height=108 --crop',
    'python main.py --dataset DATASET_NAME --train',
    'python main.py --dataset DATASET_NAME',
    'python main.py --dataset=eyes --input_fname_pattern="*_cropped.png" --train',
]
SMALL = [*TINY_MODEL, '--epoch', '1', '--batch_size', '8', '--train_size', '16', '--sample_num', '4']


def _data(root):
  write_idx_dataset(str(root / 'data' / 'mnist'), 32)
  write_images(str(root / 'data' / 'celebA'), 16, size=(120, 130), ext='jpg')
  write_images(str(root / 'data' / 'DATASET_NAME'), 16, size=(40, 40), ext='jpg')
  write_images(str(root / 'data' / 'eyes'), 16, size=(32, 32), ext='png')
  for path in (root / 'data' / 'eyes').iterdir():
    path.rename(path.with_name(path.stem + '_cropped.png'))


def test_the_classic_readme_s_commands_run_as_written(tmp_path, monkeypatch, caplog):
  monkeypatch.chdir(tmp_path)
  _data(tmp_path)
  for line in CLASSIC:
    command = shlex.split(line)
    assert command[:2] == ['python', 'main.py']
    with caplog.at_level(std_logging.WARNING):
      result = main_in_process(*command[2:], *(SMALL if '--train' in command else []))
    assert result == (0, None), line
  assert 'no effect without --crop' not in caplog.text  # --input_height=28 is MNIST's own size and the output's
  for key in ('mnist_28_28', 'celebA_64_64', 'DATASET_NAME_64_64', 'eyes_64_64'):
    assert (tmp_path / 'checkpoint' / key / 'config.json').exists(), key
  assert sorted(p.name.split('_')[0] for p in (tmp_path / 'samples' / 'celebA_64_64').glob('test_*.png')) == ['test']


@pytest.mark.parametrize('sizes, warned', [
    (['--input_height', '96', '--output_height', '48'],
     '--input_height 96 has no effect without --crop: each whole image is resized to 48x48; add --crop to cut its '
     'centre 96x96 first'),
    (['--input_height', '40'], None),  # the images' own size
    (['--input_height', '48', '--output_height', '48'], None),  # the output's
])
def test_input_height_without_crop_trains_and_says_so_when_it_would_have_cut(tmp_path, caplog, sizes, warned):
  write_images(str(tmp_path / 'data' / 'pics'), 16, size=(40, 40), ext='jpg')
  with caplog.at_level(std_logging.WARNING):
    result = main_in_process('--train', '--dataset', 'pics', '--data_dir', str(tmp_path / 'data'), '--checkpoint_dir',
                             str(tmp_path / 'ckpt'), '--sample_dir', str(tmp_path / 'samples'), '--log_dir',
                             str(tmp_path / 'logs'), *sizes, *SMALL)
  assert result == (0, None)
  notes = [r.getMessage() for r in caplog.records if 'no effect without --crop' in r.getMessage()]
  assert notes == ([warned] if warned else [])
