"""datasets.py and digits.py: IDX files, image folders, the built-in digits, the input pipeline."""

import dataclasses
import gzip
import io
import json
import logging as std_logging
import os
import re

import hypothesis
import hypothesis.strategies as st
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


def _broken_files(folder):
  """A corrupt JPEG, a truncated JPEG and PNG, a zero-byte file and a text file, beside good images."""
  paths = write_images(str(folder), 4, size=(30, 30), ext='jpg')
  jpeg = open(paths[0], 'rb').read()
  (folder / 'truncated.jpg').write_bytes(jpeg[:len(jpeg) // 2])
  (folder / 'corrupt.jpg').write_bytes(jpeg[:200] + bytes(range(256)) * 4)
  png = io.BytesIO()
  Image.new('RGB', (30, 30), 'red').save(png, format='PNG')
  (folder / 'truncated_png.jpg').write_bytes(png.getvalue()[:-30])
  (folder / 'zero.jpg').write_bytes(b'')
  (folder / 'readme.jpg').write_text('these are faces')
  return ['corrupt.jpg', 'readme.jpg', 'truncated.jpg', 'truncated_png.jpg', 'zero.jpg']


def test_corrupt_truncated_and_empty_files_are_counted_skipped_and_named(tmp_path, caplog):
  bad = _broken_files(tmp_path / 'f')
  cfg = _config(tmp_path, 'f', output_height=16, output_width=16, batch_size=4)
  with caplog.at_level(std_logging.WARNING):
    dataset = datasets.load(cfg, cache_dir=str(tmp_path / 'cache'))
  assert [os.path.basename(p) for p in dataset.paths] == ['000.jpg', '001.jpg', '002.jpg', '003.jpg']
  warnings = [r.getMessage() for r in caplog.records if 'skipping' in r.getMessage()]
  assert len(warnings) == 1 and 'skipping 5 of 9 files' in warnings[0]
  assert 'corrupt.jpg (corrupt or truncated' in warnings[0] and 'readme.jpg (not an image)' in warnings[0]
  (images,), = _batches(dataset, cfg, np.arange(4))  # what is left decodes in the training pipeline
  assert images.shape == (4, 16, 16, 3)
  # the decode check is remembered, and redone when a file changes
  cache = json.loads((tmp_path / 'cache' / datasets.DECODE_CHECK_FILE).read_text())
  remembered = {os.path.basename(p) for p, _ in cache['undecodable']}  # headers fine, pixels broken
  assert {'corrupt.jpg', 'truncated_png.jpg'} <= remembered <= set(bad)
  (tmp_path / 'f' / 'truncated.jpg').write_bytes(open(dataset.paths[0], 'rb').read())
  again = datasets.load(cfg, cache_dir=str(tmp_path / 'cache'))
  assert len(again) == 5
  with pytest.raises(UserError, match=r'4 of the 9 files matching .* cannot be read as images \(--strict\): '):
    datasets.load(cfg, strict=True)


def test_check_data_reports_counts_modes_sizes_and_bad_files(tmp_path):
  _broken_files(tmp_path / 'f')
  write_images(str(tmp_path / 'f'), 2, size=(40, 20), mode='L', ext='jpg', seed=5)  # overwrites 000 and 001
  report = datasets.check(_config(tmp_path, 'f', crop=True, input_height=25, input_width=25))
  text = report.text()
  assert '9 files, 4 readable images, 5 bad' in text
  assert re.search(r'modes: (RGB x2, L x2|L x2, RGB x2) -> trained as RGB \(3 channels\)', text)
  assert re.search(r'sizes \(height x width\): (30x30 x2, 20x40 x2|20x40 x2, 30x30 x2)', text)
  assert re.search(r'\n    .*zero.jpg: empty file', text) and re.search(r'\n    .*readme.jpg: not an image', text)
  assert report.bad == 5 and report.problems == ['--crop 25x25 is larger than 2 images, e.g. '
                                                 f'{tmp_path / "f" / "000.jpg"} (20x40)']


@pytest.mark.parametrize('mutate, message', [
    (lambda data: data[:len(data) // 2], 'Compressed file ended before the end-of-stream marker'),
    (lambda data: data[:10] + b'\xff' * 20 + data[30:], 'while decompressing data'),  # zlib.error
    (lambda data: data[:-8] + b'\0' * 8, 'CRC check failed'),
])
def test_damaged_gzip_idx_files_get_a_sentence(tmp_path, mutate, message):
  path = tmp_path / 'x-idx3-ubyte.gz'
  datasets.write_idx(str(path), np.random.default_rng(0).integers(0, 256, [50, 28, 28], dtype=np.uint8))
  path.write_bytes(mutate(path.read_bytes()))
  with pytest.raises(UserError, match=f'cannot read .*x-idx3-ubyte.gz: .*{message}'):
    datasets.read_idx(str(path))


def test_idx_labels_must_be_small_non_negative_integers(tmp_path):
  folder = tmp_path / 'm'
  write_idx_dataset(str(folder), 10)
  with gzip.open(folder / 'train-labels-idx1-ubyte.gz', 'wb') as f:  # int32 labels, one of them -1
    f.write(bytes([0, 0, 0x0C, 1]) + np.asarray([10], '>u4').tobytes() + np.asarray([1] * 9 + [-1], '>i4').tobytes())
  with pytest.raises(UserError, match='has labels from -1 to 1; labels must be 0 to 999'):
    datasets.load_idx_folder(str(folder))


_MODES = ['1', 'L', 'LA', 'P', 'RGB', 'RGBA', 'I;16', 'I', 'F', 'CMYK', 'YCbCr']
_FORMATS = ['PNG', 'JPEG', 'GIF', 'BMP', 'TIFF', 'WEBP']


@hypothesis.settings(max_examples=40, deadline=None,
                     suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(mode=st.sampled_from(_MODES), image_format=st.sampled_from(_FORMATS),
                  width=st.integers(1, 40), height=st.integers(1, 40),
                  damage=st.one_of(st.none(), st.floats(0.0, 0.99), st.binary(max_size=300)),
                  seed=st.integers(0, 2 ** 16))
def test_any_file_either_loads_as_valid_pixels_or_raises_our_error(tmp_path_factory, mode, image_format, width,
                                                                    height, damage, seed):
  folder = tmp_path_factory.mktemp('random') / 'r'
  folder.mkdir()
  pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
  buffer = io.BytesIO()
  try:
    Image.fromarray(pixels).convert(mode).save(buffer, format=image_format)
  except (OSError, ValueError, KeyError):
    hypothesis.assume(False)  # Pillow cannot write this mode in this format
  data = buffer.getvalue()
  if isinstance(damage, float):
    data = data[:int(len(data) * damage)]  # truncated
  elif isinstance(damage, bytes):
    data = damage  # random bytes
  (folder / 'image.img').write_bytes(data)
  cfg = _config(folder.parent, 'r', input_fname_pattern='*.img', output_height=8, output_width=6, batch_size=1)
  try:
    dataset = datasets.load(cfg)
  except UserError as e:
    assert 'is a readable image' in str(e)
    return
  (images,), = _batches(dataset, cfg, np.arange(1))
  assert images.shape == (1, 8, 6, dataset.channels) and images.dtype == np.uint8


def test_image_cache_holds_what_the_decode_pipeline_yields_and_is_reused(tmp_path, monkeypatch):
  write_images(str(tmp_path / 'faces'), 10, size=(20, 24))
  cfg = _config(tmp_path, 'faces', input_fname_pattern='*.png', output_height=12, output_width=10, batch_size=5)
  files = datasets.load(cfg)
  cached = datasets.cache_images(files, cfg, str(tmp_path / 'ck'))
  assert cached.paths is None and isinstance(cached.images, np.memmap)
  assert cached.images.shape == (10, 12, 10, 3) and cached.labels is None
  order = datasets.epoch_order(0, 0, 10)
  from_files, from_cache = _batches(files, cfg, order), _batches(cached, cfg, order)
  assert len(from_cache) == 2
  for a, b in zip(from_files, from_cache):
    np.testing.assert_array_equal(a[0], b[0])  # the same pixels in the same order, batch by batch

  def no_decoding(*args):
    raise AssertionError('decoded again')

  monkeypatch.setattr(datasets, '_write_image_cache', no_decoding)
  np.testing.assert_array_equal(datasets.cache_images(files, cfg, str(tmp_path / 'ck')).images, cached.images)
  monkeypatch.undo()
  # Another output size, or a changed file, makes the cache again.
  other = dataclasses.replace(cfg, output_height=6, output_width=5)
  assert datasets.cache_images(files, other, str(tmp_path / 'ck')).images.shape == (10, 6, 5, 3)
  Image.new('RGB', (20, 24), (255, 0, 0)).save(files.paths[0])
  remade = datasets.cache_images(files, cfg, str(tmp_path / 'ck')).images
  assert (remade[0][..., 0] == 255).all() and (remade[0][..., 1] == 0).all()
  np.testing.assert_array_equal(remade[1:], cached.images[1:])


def test_image_cache_leaves_in_memory_datasets_alone(tmp_path):
  write_idx_dataset(str(tmp_path / 'm'), 12)
  cfg = _config(tmp_path, 'm', output_height=28, output_width=28)
  dataset = datasets.load(cfg)
  assert datasets.cache_images(dataset, cfg, str(tmp_path / 'ck')) is dataset
  assert not os.path.exists(tmp_path / 'ck')
