"""datasets.py and digits.py: IDX files, image folders, the built-in digits, the input pipeline."""

import gzip
import logging as std_logging
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import config as config_lib
import datasets
import digits
from conftest import shared, write_idx_dataset, write_images
from errors import UserError

tf1 = tf.compat.v1


def _config(root, name, **kwargs):
  return config_lib.Config(dataset=name, data_dir=str(root), **kwargs)


def _batches(dataset, cfg, order):
  """Every batch the pipeline yields for one epoch that visits `order`."""
  with tf.Graph().as_default():
    pipeline = datasets.make_pipeline(dataset, cfg)
    fetch = [pipeline.images] + ([pipeline.labels] if pipeline.labels is not None else [])
    batches = []
    with tf1.Session() as sess:
      sess.run(pipeline.initializer, pipeline.feed(order))
      while True:
        try:
          batches.append(sess.run(fetch))
        except tf.errors.OutOfRangeError:
          return batches


@pytest.mark.parametrize('gzipped', [True, False])
def test_idx_round_trip(tmp_path, gzipped):
  array = np.random.default_rng(0).integers(0, 256, size=[4, 3, 2], dtype=np.uint8)
  path = str(tmp_path / 'a-idx3-ubyte.gz')
  datasets.write_idx(path, array)
  if not gzipped:
    raw = str(tmp_path / 'a-idx3-ubyte')
    with gzip.open(path) as f, open(raw, 'wb') as out:
      out.write(f.read())
    path = raw
  np.testing.assert_array_equal(datasets.read_idx(path), array)


def test_idx_errors_name_the_file_and_the_problem(tmp_path):
  path = str(tmp_path / 'x.gz')
  datasets.write_idx(path, np.zeros([10, 4, 4], np.uint8))
  with gzip.open(path) as f:
    data = f.read()
  for content, message in [(data[:-5], r'x has 171 bytes but its header \[10, 4, 4\] needs 176 \(truncated\)'),
                           (b'PK\x03\x04' + data[4:], 'x is not an IDX file'),
                           (data[:6], 'x is truncated: its header needs 16 bytes'),
                           (b'', r'bad magic number \(empty\)')]:
    bad = str(tmp_path / 'x')
    with open(bad, 'wb') as f:
      f.write(content)
    with pytest.raises(UserError, match=message):
      datasets.read_idx(bad)
  with open(str(tmp_path / 'y.gz'), 'wb') as f:
    f.write(b'\x1f\x8bnot really gzip')
  with pytest.raises(UserError, match='cannot read .*y.gz'):
    datasets.read_idx(str(tmp_path / 'y.gz'))


def test_idx_folder_joins_train_and_t10k_and_checks_labels(tmp_path):
  folder = tmp_path / 'm'
  train_images, train_labels = write_idx_dataset(str(folder), 30)
  datasets.write_idx(str(folder / 't10k-images-idx3-ubyte.gz'), np.full([5, 28, 28], 9, np.uint8))
  datasets.write_idx(str(folder / 't10k-labels-idx1-ubyte.gz'), np.full([5], 3, np.uint8))
  images, labels = datasets.load_idx_folder(str(folder))
  assert images.shape == (35, 28, 28) and labels.dtype == np.int32
  np.testing.assert_array_equal(images[:30], train_images)
  np.testing.assert_array_equal(labels, np.concatenate([train_labels, [3] * 5]))
  datasets.write_idx(str(folder / 't10k-labels-idx1-ubyte.gz'), np.full([4], 3, np.uint8))
  with pytest.raises(UserError, match=r'\[5, 28, 28\] and .*\[4\] are not'):
    datasets.load_idx_folder(str(folder))


def test_idx_dataset_loads_in_memory_with_labels_and_resizes(tmp_path):
  images, labels = write_idx_dataset(str(tmp_path / 'm'), 20)
  dataset = datasets.load(_config(tmp_path, 'm', output_height=28, output_width=28))
  assert (dataset.channels, dataset.num_classes, len(dataset)) == (1, 10, 20)
  np.testing.assert_array_equal(dataset.images[..., 0], images)
  resized = datasets.load(_config(tmp_path, 'm', output_height=32, output_width=20))
  assert resized.images.shape == (20, 32, 20, 1)


def test_builtin_digits_are_rendered_once_and_deterministic(tmp_path, monkeypatch):
  monkeypatch.setattr(digits, 'DIGITS_COUNT', 50)
  first = datasets.load(_config(tmp_path, 'digits', output_height=28, output_width=28))
  assert len(first) == 50 and first.num_classes == 10
  assert sorted(os.listdir(tmp_path / 'digits')) == ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz']
  again_images, again_labels = digits.make_digits(50)
  np.testing.assert_array_equal(first.images[..., 0], again_images)
  np.testing.assert_array_equal(first.labels, again_labels)
  assert np.bincount(again_labels).tolist() == [5] * 10
  # Every digit has ink in the middle and a dark border, like MNIST.
  assert all(image[8:20, 8:20].max() > 200 and image[0].mean() < 30 for image in again_images)


def test_folder_of_grayscale_images_gives_one_channel_with_exact_pixels(tmp_path):
  paths = write_images(str(tmp_path / 'g'), 4, size=(20, 24), mode='L')
  cfg = _config(tmp_path, 'g', input_fname_pattern='*.png', output_height=24, output_width=20, batch_size=4)
  dataset = datasets.load(cfg)
  assert dataset.channels == 1 and dataset.num_classes == 0 and len(dataset) == 4
  (images, ), = _batches(dataset, cfg, np.arange(4))
  assert images.shape == (4, 24, 20, 1) and images.dtype == np.uint8
  for image, path in zip(images, paths):
    np.testing.assert_array_equal(image[..., 0], np.asarray(Image.open(path)))


def test_mixed_modes_are_converted_to_rgb(tmp_path):
  folder = tmp_path / 'mixed'
  folder.mkdir()
  Image.new('RGBA', (6, 6), (255, 0, 0, 40)).save(folder / 'a.png')
  Image.new('RGB', (6, 6), (0, 0, 255)).convert('P').save(folder / 'b.png')
  Image.new('L', (6, 6), 200).save(folder / 'c.png')
  Image.new('RGB', (6, 6), (0, 255, 0)).save(folder / 'd.jpg', quality=100)
  cfg = _config(tmp_path, 'mixed', input_fname_pattern='*.*g', output_height=6, output_width=6, batch_size=4)
  dataset = datasets.load(cfg)
  assert dataset.channels == 3
  (images, ), = _batches(dataset, cfg, np.arange(4))
  np.testing.assert_array_equal(images[0, 3, 3], [255, 0, 0])  # alpha dropped
  np.testing.assert_array_equal(images[1, 3, 3], [0, 0, 255])  # palette expanded
  np.testing.assert_array_equal(images[2, 3, 3], [200, 200, 200])  # grey to RGB
  assert abs(int(images[3, 3, 3, 1]) - 255) <= 2 and images[3, 3, 3, 0] <= 2  # JPEG, nearly exact


def test_crop_takes_the_centre_then_resizes(tmp_path):
  folder = tmp_path / 'c'
  folder.mkdir()
  pixels = np.zeros([10, 12, 3], np.uint8)
  pixels[3:7, 4:8] = 255  # a white 4x4 square in the centre
  Image.fromarray(pixels).save(folder / 'a.png')
  cfg = _config(tmp_path, 'c', input_fname_pattern='*.png', crop=True, input_height=4, input_width=4,
                output_height=2, output_width=2, batch_size=1)
  (images, ), = _batches(datasets.load(cfg), cfg, np.arange(1))
  np.testing.assert_array_equal(images[0], 255)


def test_crop_larger_than_the_images_is_an_error(tmp_path):
  write_images(str(tmp_path / 'small'), 3, size=(20, 24))
  with pytest.raises(UserError, match=r'--crop 30x30 is larger than 3 of 3 images, e.g. .*000.png \(24x20\)'):
    datasets.load(_config(tmp_path, 'small', input_fname_pattern='*.png', crop=True, input_height=30,
                          input_width=30))


def test_missing_empty_and_unmatched_folders_are_errors(tmp_path):
  with pytest.raises(UserError, match=r'no dataset folder .*celebA: put the images in it'):
    datasets.load(_config(tmp_path, 'celebA'))
  with pytest.raises(UserError, match=r'no dataset folder .*mnist: put the MNIST IDX files'):
    datasets.load(_config(tmp_path, 'mnist'))
  (tmp_path / 'empty').mkdir()
  with pytest.raises(UserError, match=r'no file matches .*empty/\*.jpg; the folder is empty'):
    datasets.load(_config(tmp_path, 'empty'))
  write_images(str(tmp_path / 'pngs'), 2)
  with pytest.raises(UserError, match=r"no file matches .*pngs/\*.jpg; it holds 2 other entries, e.g. '000.png' "
                                      r'\(set --input_fname_pattern\)'):
    datasets.load(_config(tmp_path, 'pngs'))


def test_files_that_are_not_images_are_skipped_with_a_warning(tmp_path, caplog):
  write_images(str(tmp_path / 'f'), 3)
  (tmp_path / 'f' / 'notes.png').write_text('not an image')
  with caplog.at_level(std_logging.WARNING):
    dataset = datasets.load(_config(tmp_path, 'f', input_fname_pattern='*.png'))
  assert len(dataset) == 3
  assert any('skipping 1 of 4 files' in r.getMessage() and 'notes.png' in r.getMessage() for r in caplog.records)
  for name in os.listdir(tmp_path / 'f'):
    (tmp_path / 'f' / name).write_bytes(b'')
  with pytest.raises(UserError, match='none of the 4 files matching .* is a readable image'):
    datasets.load(_config(tmp_path, 'f', input_fname_pattern='*.png'))


def test_epoch_order_depends_on_seed_and_epoch_only():
  order = datasets.epoch_order(3, 1, 100)
  assert sorted(order) == list(range(100))
  np.testing.assert_array_equal(order, datasets.epoch_order(3, 1, 100))
  assert not np.array_equal(order, datasets.epoch_order(3, 2, 100))
  assert not np.array_equal(order, datasets.epoch_order(4, 1, 100))


def test_pipeline_yields_the_order_in_full_batches(tmp_path):
  write_idx_dataset(str(tmp_path / 'm'), 30)
  cfg = _config(tmp_path, 'm', output_height=28, output_width=28, batch_size=8)
  dataset = datasets.load(cfg)
  order = datasets.epoch_order(0, 0, 30)
  batches = _batches(dataset, cfg, order)
  assert len(batches) == 3  # 30 // 8; the last 6 are dropped
  images = np.concatenate([b[0] for b in batches])
  labels = np.concatenate([b[1] for b in batches])
  np.testing.assert_array_equal(images, dataset.images[order[:24]])
  np.testing.assert_array_equal(labels, dataset.labels[order[:24]])


def test_real_mnist_loads_with_its_labels():
  folder = shared('mnist')
  images, labels = datasets.load_idx_folder(folder)
  assert images.shape == (19690, 28, 28) and labels.shape == (19690,)
  assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # the well-known start of MNIST's train set
  counts = np.bincount(labels, minlength=10)
  assert counts.sum() == 19690 and counts.min() > 1600 and counts.max() < 2400
  # An eight has more ink than a one, on average, in real handwriting.
  assert images[labels == 8].mean() > 1.5 * images[labels == 1].mean()


def test_real_jpeg_folder_scans_as_rgb():
  folder = shared('anime-faces')
  cfg = config_lib.Config(dataset=os.path.basename(folder), data_dir=os.path.dirname(folder), crop=True,
                          input_height=96, input_width=96)
  dataset = datasets.load(cfg)
  assert len(dataset) == 5000 and dataset.channels == 3 and dataset.num_classes == 0
