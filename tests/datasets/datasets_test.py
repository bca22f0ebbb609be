"""datasets/ and datasets/digits.py: IDX files, image folders, the built-in digits, the input pipeline."""

import dataclasses
import gzip
import io
import logging as std_logging
import os
import re
import shutil
import socket

import hypothesis
import hypothesis.strategies as st
import lmdb
import numpy as np
import pytest
import requests
import tensorflow as tf
from PIL import Image

from config import category_dataset, Config
import datasets
from datasets import digits
from datasets import entries
from errors import UserError
from conftest import encode, lmdb_of_images, shared, write_idx_dataset, write_images, write_lmdb

tf1 = tf.compat.v1


def _config(root, name, **kwargs):
  return Config(dataset=name, data_dir=str(root), **kwargs)


def _batches(dataset, cfg, order):
  """Every batch the pipeline yields from the first pass of an epoch that visits `order`."""
  with tf.Graph().as_default():
    pipeline = datasets.make_pipeline(dataset, cfg)
    fetch = [pipeline.images] + ([pipeline.labels] if pipeline.labels is not None else [])
    batches = []
    with tf1.Session() as sess:
      sess.run(pipeline.initializer, pipeline.feed(order, 0))
      while True:
        try:
          *batch, positions = sess.run(fetch + [pipeline.positions])
        except tf.errors.OutOfRangeError:
          return batches
        if positions.max() >= len(order):  # (the second pass: it serves an epoch that skipped entries)
          return batches
        batches.append(batch)


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
  dataset = datasets.open_dataset(_config(tmp_path, 'm', output_height=28, output_width=28))
  assert (dataset.channels, dataset.num_classes, len(dataset)) == (1, 10, 20)
  np.testing.assert_array_equal(dataset.images[..., 0], images)
  resized = datasets.open_dataset(_config(tmp_path, 'm', output_height=32, output_width=20))
  assert resized.images.shape == (20, 32, 20, 1)


def test_builtin_digits_are_rendered_once_and_deterministic(tmp_path, monkeypatch):
  monkeypatch.setattr(digits, 'DIGITS_COUNT', 50)
  first = datasets.open_dataset(_config(tmp_path, 'digits', output_height=28, output_width=28))
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
  dataset = datasets.open_dataset(cfg)
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
  dataset = datasets.open_dataset(cfg)
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
  (images, ), = _batches(datasets.open_dataset(cfg), cfg, np.arange(1))
  np.testing.assert_array_equal(images[0], 255)


def test_crop_larger_than_the_images_is_an_error(tmp_path):
  write_images(str(tmp_path / 'small'), 3, size=(20, 24))
  with pytest.raises(UserError, match=r'--crop 30x30 is larger than 3 of 3 images, e.g. .*000.png \(24x20\)'):
    datasets.open_dataset(_config(tmp_path, 'small', input_fname_pattern='*.png', crop=True, input_height=30,
                          input_width=30))


def test_missing_empty_and_unmatched_folders_are_errors(tmp_path):
  with pytest.raises(UserError, match=r'no dataset folder .*celebA: download it with: python download.py celebA$'):
    datasets.open_dataset(_config(tmp_path, 'celebA'))
  with pytest.raises(UserError, match=r'no dataset folder .*mnist: download it with: python download.py mnist \(or '
                                      r'put the MNIST IDX files'):
    datasets.open_dataset(_config(tmp_path, 'mnist'))
  with pytest.raises(UserError, match=r'no dataset folder .*lsun_tower_val: download it with: python download.py lsun '
                                      r'--lsun_category tower --lsun_split val$'):
    datasets.open_dataset(_config(tmp_path, 'lsun_tower_val'))
  with pytest.raises(UserError, match=r'no dataset folder .*faces: put the images in it'):
    datasets.open_dataset(_config(tmp_path, 'faces'))
  (tmp_path / 'empty').mkdir()
  with pytest.raises(UserError, match=r'no file matches .*empty/\*.jpg; the folder is empty'):
    datasets.open_dataset(_config(tmp_path, 'empty'))
  write_images(str(tmp_path / 'pngs'), 2)
  with pytest.raises(UserError, match=r"no file matches .*pngs/\*.jpg; it holds 2 other entries, e.g. '000.png'; "
                                      r"2 .png files are at its top: set --input_fname_pattern '\*.png'$"):
    datasets.open_dataset(_config(tmp_path, 'pngs'))
  for name, count in (('cat', 3), ('dog', 2)):  # class folders of PNGs, and a note: the pattern is the same there
    write_images(str(tmp_path / 'pets' / name), count, ext='png')
  (tmp_path / 'pets' / 'notes.txt').write_text('two classes')
  with pytest.raises(UserError, match=r"no file matches .*pets/\*.jpg; it holds 3 other entries, e.g. 'cat'; 5 .png "
                                      r"files are in its class folders: set --input_fname_pattern '\*.png'$"):
    datasets.open_dataset(_config(tmp_path, 'pets'))
  (tmp_path / 'notes').mkdir()
  (tmp_path / 'notes' / 'a.txt').write_text('not an image')
  with pytest.raises(UserError, match=r"no file matches .*notes/\*.jpg; it holds 1 other entries, e.g. 'a.txt'; none "
                                      r'of them is an image file \(JPEG, PNG, GIF, BMP or WebP\)$'):
    datasets.open_dataset(_config(tmp_path, 'notes'))


def test_class_folders_give_labels_in_sorted_order_with_their_names(tmp_path):
  for name, count in (('zebra', 3), ('cat', 2), ('dog', 4)):
    write_images(str(tmp_path / 'pets' / name), count, ext='png', seed=count)
  (tmp_path / 'pets' / '.thumbnails').mkdir()  # hidden folders are not classes
  write_images(str(tmp_path / 'pets' / '.thumbnails'), 1, ext='png')
  source = datasets.open_dataset(_config(tmp_path, 'pets', input_fname_pattern='*.png'))
  assert source.class_names == ('cat', 'dog', 'zebra') and source.num_classes == 3
  assert [os.path.basename(os.path.dirname(path)) for path in source.paths] == ['cat'] * 2 + ['dog'] * 4 + ['zebra'] * 3
  assert source.labels.tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 2]
  assert '3 classes from its class folders: cat 2, dog 4, zebra 3' in source.describe()
  unlabelled = datasets.open_dataset(_config(tmp_path, 'pets', input_fname_pattern='*.png', conditional=False))
  assert len(unlabelled) == 9 and unlabelled.labels is None and unlabelled.class_names is None
  cfg = _config(tmp_path, 'pets', input_fname_pattern='*.png', output_height=16, output_width=16, batch_size=9)
  (images, labels), = _batches(datasets.open_dataset(cfg), cfg, np.arange(9))
  assert images.shape == (9, 16, 16, 3) and labels.tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 2]


@pytest.mark.parametrize('layout, message', [
    ({'cat': 2, 'dog': 2, '.': 1}, r'holds images both at its top \(1 files matching \*.png, e.g. .000.png.\) and in '
                                   r'class folders \(cat, dog\)'),
    ({'cat': 2, 'dog': 0}, r'class folder .*pets/dog holds no file matching \*.png \(1 of the 2 class folders are '
                           r'empty\)'),
    ({'cat': 3}, r"has one class folder, 'cat': labels need two classes or more"),
    ({'a': 1, 'b': 1, 'c': 1}, r'each of the 3 class folders in .*pets holds one image: that is a folder per image'),
])
def test_class_folder_mistakes_get_one_sentence(tmp_path, layout, message):
  for name, count in layout.items():
    (tmp_path / 'pets' / name).mkdir(parents=True, exist_ok=True)
    write_images(str(tmp_path / 'pets' / name), count, ext='png')
  with pytest.raises(UserError, match=message):
    datasets.open_dataset(_config(tmp_path, 'pets', input_fname_pattern='*.png'))


def test_files_that_are_not_images_are_skipped_with_a_warning(tmp_path, caplog):
  write_images(str(tmp_path / 'f'), 3)
  (tmp_path / 'f' / 'notes.png').write_text('not an image')
  with caplog.at_level(std_logging.WARNING):
    dataset = datasets.open_dataset(_config(tmp_path, 'f', input_fname_pattern='*.png'))
  assert dataset.num_images == 3 and [os.path.basename(dataset.paths[i]) for i in dataset.bad] == ['notes.png']
  assert any('skipping 1 of 4 files' in r.getMessage() and 'notes.png' in r.getMessage() for r in caplog.records)
  for name in os.listdir(tmp_path / 'f'):
    (tmp_path / 'f' / name).write_bytes(b'')
  with pytest.raises(UserError, match='none of the 4 files matching .* is a readable image'):
    datasets.open_dataset(_config(tmp_path, 'f', input_fname_pattern='*.png'))


def test_epoch_order_depends_on_seed_and_epoch_only():
  order = datasets.epoch_order(3, 1, 100)
  assert sorted(order) == list(range(100))
  np.testing.assert_array_equal(order, datasets.epoch_order(3, 1, 100))
  assert not np.array_equal(order, datasets.epoch_order(3, 2, 100))
  assert not np.array_equal(order, datasets.epoch_order(4, 1, 100))


def test_pipeline_yields_the_order_in_full_batches(tmp_path):
  write_idx_dataset(str(tmp_path / 'm'), 30)
  cfg = _config(tmp_path, 'm', output_height=28, output_width=28, batch_size=8)
  dataset = datasets.open_dataset(cfg)
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
  cfg = Config(dataset=os.path.basename(folder), data_dir=os.path.dirname(folder), crop=True,
               input_height=96, input_width=96)
  dataset = datasets.open_dataset(cfg)
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


def test_corrupt_truncated_and_empty_files_are_counted_skipped_and_named(tmp_path, caplog, monkeypatch):
  bad = _broken_files(tmp_path / 'f')
  cfg = _config(tmp_path, 'f', output_height=16, output_width=16, batch_size=4)
  with caplog.at_level(std_logging.WARNING):
    dataset = datasets.open_dataset(cfg, cache_dir=str(tmp_path / 'cache'))
  assert sorted(os.path.basename(dataset.paths[i]) for i in dataset.bad) == bad and dataset.num_images == 4
  warnings = [r.getMessage() for r in caplog.records if 'skipping' in r.getMessage()]
  assert len(warnings) == 1 and 'skipping 5 of 9 files' in warnings[0]
  assert 'corrupt.jpg (corrupt or truncated' in warnings[0] and 'readme.jpg (not an image)' in warnings[0]
  (images,), = _batches(dataset, cfg, np.arange(9)[::-1])  # the training pipeline skips the bad ones
  good = [np.asarray(Image.open(dataset.paths[i]).resize((16, 16), Image.LANCZOS)) for i in (3, 2, 1, 0)]
  assert images.shape == (4, 16, 16, 3) and np.abs(images.astype(int) - np.stack(good)).mean() < 8
  # what the check found is remembered, and found again when a file changes
  with np.load(tmp_path / 'cache' / datasets.SCAN_FILE) as saved:
    paths = sorted(str(p) for p in (tmp_path / 'f').iterdir())
    remembered = {os.path.basename(paths[i]): why for i, why in zip(saved['bad_index'], saved['bad_why'])}
  assert sorted(remembered) == bad
  assert remembered['corrupt.jpg'].startswith('corrupt or truncated') and remembered['zero.jpg'] == 'empty file'
  monkeypatch.setattr(entries, '_undecodable', lambda *args: pytest.fail('decoded again'))
  assert datasets.open_dataset(cfg, cache_dir=str(tmp_path / 'cache')).num_images == 4
  monkeypatch.undo()
  (tmp_path / 'f' / 'truncated.jpg').write_bytes(open(dataset.paths[0], 'rb').read())
  again = datasets.open_dataset(cfg, cache_dir=str(tmp_path / 'cache'))
  assert again.num_images == 5
  with pytest.raises(UserError, match=r'4 of the 9 files matching .* cannot be read as images \(--strict\): '):
    datasets.open_dataset(cfg, strict=True)


def test_check_data_reports_counts_modes_sizes_and_bad_files(tmp_path):
  _broken_files(tmp_path / 'f')
  write_images(str(tmp_path / 'f'), 2, size=(40, 20), mode='L', ext='jpg', seed=5)  # overwrites 000 and 001
  report = datasets.check(_config(tmp_path, 'f', crop=True, input_height=25, input_width=25))
  text = report.text()
  assert '9 files, 4 readable images, 5 bad' in text
  assert re.search(r'modes: (RGB x2, L x2|L x2, RGB x2) -> trained as RGB \(3 channels\)', text)
  assert re.search(r'sizes \(height x width\): (30x30 x2, 20x40 x2|20x40 x2, 30x30 x2)', text)
  assert re.search(r'\n    .*zero.jpg: empty file', text) and re.search(r'\n    .*readme.jpg: not an image', text)
  assert report.bad == 5 and report.problems == [
      f'--crop 25x25 is larger than 2 of 4 images, e.g. {tmp_path / "f" / "000.jpg"} (20x40); lower '
      '--input_height/--input_width, or give --crop alone for the largest centred square']


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
    dataset = datasets.open_dataset(cfg)
  except UserError as e:
    assert 'is a readable image' in str(e)
    return
  (images,), = _batches(dataset, cfg, np.arange(1))
  assert images.shape == (1, 8, 6, dataset.channels) and images.dtype == np.uint8


def test_image_cache_holds_what_the_decode_pipeline_yields_and_is_reused(tmp_path, monkeypatch):
  write_images(str(tmp_path / 'faces'), 10, size=(20, 24))
  cfg = _config(tmp_path, 'faces', input_fname_pattern='*.png', output_height=12, output_width=10, batch_size=5)
  files = datasets.open_dataset(cfg)
  cached = datasets.cache_images(files, cfg, str(tmp_path / 'ck'))
  assert isinstance(cached, datasets.PixelSource) and isinstance(cached.images, np.memmap)
  assert cached.images.shape == (10, 12, 10, 3) and cached.labels is None
  order = datasets.epoch_order(0, 0, 10)
  from_files, from_cache = _batches(files, cfg, order), _batches(cached, cfg, order)
  assert len(from_cache) == 2
  for a, b in zip(from_files, from_cache):
    np.testing.assert_array_equal(a[0], b[0])  # the same pixels in the same order, batch by batch

  def no_decoding(*args):
    raise AssertionError('decoded again')

  monkeypatch.setattr(datasets.cache, 'write_image_cache', no_decoding)
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
  dataset = datasets.open_dataset(cfg)
  assert datasets.cache_images(dataset, cfg, str(tmp_path / 'ck')) is dataset
  assert not os.path.exists(tmp_path / 'ck')


def _pipeline_images(source, cfg, order):
  return np.concatenate([batch[0] for batch in _batches(source, cfg, np.asarray(order))])


def test_lmdb_of_webp_jpeg_and_png_values_trains_in_key_order(tmp_path):
  pixels = lmdb_of_images(tmp_path / 'lsun', 6, size=(20, 16), formats=('WEBP', 'JPEG', 'PNG'))
  cfg = _config(tmp_path, 'lsun', output_height=16, output_width=20, batch_size=3)
  source = datasets.open_dataset(cfg, cache_dir=str(tmp_path / 'ck'))
  assert isinstance(source, datasets.LmdbSource) and (len(source), source.channels) == (6, 3)
  order = [5, 0, 3, 1, 2, 4]
  images = _pipeline_images(source, cfg, order)
  lossless = [i for i, entry in enumerate(order) if entry % 3 != 1]  # WebP (lossless) and PNG: exact
  np.testing.assert_array_equal(images[lossless], pixels[order][lossless])
  jpeg = [i for i, entry in enumerate(order) if entry % 3 == 1]  # lossy: as Pillow decodes the same bytes
  pillow = np.stack([np.asarray(Image.open(io.BytesIO(encode(pixels[order[i]], 'JPEG')))) for i in jpeg])
  assert np.abs(images[jpeg].astype(int) - pillow).mean() < 2
  np.testing.assert_array_equal(datasets.read_images(source, cfg, [0, 2]), pixels[[0, 2]])
  # nothing is written into the data folder: the keys and the check are kept beside the checkpoints
  assert sorted(os.listdir(tmp_path / 'lsun')) == ['data.mdb', 'lock.mdb']
  assert sorted(os.listdir(tmp_path / 'ck')) == [datasets.SCAN_FILE, datasets.LMDB_KEYS_FILE]


def test_lmdbs_of_several_categories_are_one_dataset_labelled_by_category(tmp_path, caplog):
  kitchen = lmdb_of_images(tmp_path / 'lsun_kitchen', 3, size=(10, 8), formats=('PNG',), seed=1)
  bedroom = lmdb_of_images(tmp_path / 'lsun_bedroom', 4, size=(10, 8), formats=('WEBP',), seed=2)
  with lmdb.open(str(tmp_path / 'lsun_bedroom')) as env, env.begin(write=True) as txn:
    txn.put(b'000001', b'not an image')  # skipped, and named by its database and key
  dataset = category_dataset('lsun', ['kitchen', 'bedroom'])
  assert dataset == 'lsun_bedroom+kitchen'
  cfg = _config(tmp_path, dataset, output_height=8, output_width=10, batch_size=6)
  with caplog.at_level(std_logging.WARNING):
    source = datasets.open_dataset(cfg, cache_dir=str(tmp_path / 'ck'))
  assert f'{tmp_path / "lsun_bedroom"} key 000001 (not an image)' in caplog.text
  assert (source.num_images, source.num_classes, source.class_names) == (6, 2, ('bedroom', 'kitchen'))
  assert list(source.bad) == [1]  # (the second bedroom)
  np.testing.assert_array_equal(source.labels, [0, 0, 0, 0, 1, 1, 1])
  order = np.array([4, 0, 5, 1, 2, 6, 3])
  (images, labels), = _batches(source, cfg, order)  # the unreadable entry 1 is left out, the next one taken
  kept = order[order != 1]
  np.testing.assert_array_equal(images, np.concatenate([bedroom, kitchen])[kept])
  np.testing.assert_array_equal(labels, source.labels[kept])
  assert sorted(os.listdir(tmp_path / 'ck')) == [datasets.SCAN_FILE, 'lmdb_keys_bedroom.npz', 'lmdb_keys_kitchen.npz']
  with pytest.raises(UserError, match=r'no dataset folder .*lsun_tower: download it with: python download.py lsun '
                                      r'--lsun_category tower$'):
    datasets.open_dataset(_config(tmp_path, 'lsun_bedroom+tower'))
  write_images(str(tmp_path / 'photos_cats+dogs'), 2)  # a folder of that form is a folder
  assert isinstance(datasets.open_dataset(_config(tmp_path, 'photos_cats+dogs', input_fname_pattern='*.png')),
                    datasets.FolderSource)


def test_lmdb_corrupt_and_non_image_entries_are_counted_skipped_and_named(tmp_path, caplog):
  rng = np.random.default_rng(3)
  good = [rng.integers(0, 256, (12, 10, 3), dtype=np.uint8) for _ in range(4)]
  jpeg = encode(good[0], 'JPEG')  # its header is intact, its data is not: Pillow opens it, TensorFlow cannot
  values = [encode(good[0], 'WEBP'), encode(good[1], 'WEBP'), jpeg[:200] + bytes(range(256)) * 4,
            b'\x80\x04not an image', b'',
            encode(good[2], 'PNG'), encode(good[3], 'WEBP')]
  write_lmdb(tmp_path / 'db', values, keys=[b'a', b'b', b'c', b'__keys__', b'e', b'f', b'g'])
  cfg = _config(tmp_path, 'db', output_height=12, output_width=10, batch_size=2)
  with caplog.at_level(std_logging.WARNING):
    source = datasets.open_dataset(cfg, cache_dir=str(tmp_path / 'ck'))
  warning, = [r.getMessage() for r in caplog.records if 'skipping' in r.getMessage()]
  assert f'skipping 3 of 7 LMDB entries in {tmp_path / "db"} that cannot be read as images' in warning
  assert f'{tmp_path / "db"} key c (corrupt or truncated: ' in warning
  assert 'key __keys__ (not an image)' in warning and 'key e (empty file)' in warning
  assert (len(source), source.num_images) == (7, 4)
  np.testing.assert_array_equal(_pipeline_images(source, cfg, np.arange(7)), np.stack(good))  # the bad left out
  with pytest.raises(UserError, match=r'3 of the 7 LMDB entries in .*db cannot be read as images \(--strict\): '):
    datasets.open_dataset(cfg, strict=True, cache_dir=str(tmp_path / 'ck'))
  report = datasets.check(cfg)
  assert f'{tmp_path / "db"}: 7 LMDB entries, 4 readable images, 3 bad' in report.text()
  assert '  formats: WEBP x3, PNG x1\n' in report.text()
  assert '  sizes (height x width): 12x10 x4\n' in report.text()
  assert report.bad == 3 and report.problems == []


def test_lmdb_keys_and_check_are_made_once_and_again_when_the_database_changes(tmp_path, monkeypatch):
  lmdb_of_images(tmp_path / 'db', 5, formats=('PNG',))
  cfg = _config(tmp_path, 'db', output_height=8, output_width=8)
  cache = str(tmp_path / 'ck')
  assert len(datasets.open_dataset(cfg, cache_dir=cache)) == 5
  for name in ('_list_keys',):
    monkeypatch.setattr(datasets.LmdbSource, name, lambda *args: pytest.fail('listed again'))
  monkeypatch.setattr(entries, '_undecodable', lambda *args: pytest.fail('decoded again'))
  assert len(datasets.open_dataset(cfg, cache_dir=cache)) == 5
  monkeypatch.undo()
  lmdb_of_images(tmp_path / 'bigger', 6, formats=('PNG',))  # written elsewhere: this process has db open
  shutil.copy(tmp_path / 'bigger' / 'data.mdb', tmp_path / 'db' / 'data.mdb')
  assert len(datasets.open_dataset(cfg, cache_dir=cache)) == 6


def test_an_lmdb_that_is_not_one_is_one_line(tmp_path):
  (tmp_path / 'db').mkdir()
  (tmp_path / 'db' / 'data.mdb').write_bytes(b'no database here' * 300)
  with pytest.raises(UserError, match=r'db/data.mdb is not a readable LMDB: '):
    datasets.open_dataset(_config(tmp_path, 'db'), cache_dir=str(tmp_path / 'ck'))


def _centred_white(width, height, out_height, out_width):
  """Black pixels but for the largest centred block of the output's aspect ratio, which is white."""
  crop_h = max(min(height, width * out_height // out_width), 1)
  crop_w = max(min(width, height * out_width // out_height), 1)
  pixels = np.zeros((height, width, 3), np.uint8)
  top, left = (height - crop_h) // 2, (width - crop_w) // 2
  pixels[top:top + crop_h, left:left + crop_w] = 255
  return pixels


@pytest.mark.parametrize('out_height, out_width', [(8, 8), (8, 4), (6, 12)])
def test_crop_alone_cuts_the_largest_centred_block_of_images_of_any_size(tmp_path, out_height, out_width):
  sizes = [(30, 20), (20, 40), (17, 17), (64, 9), (3, 50), (1, 1)]  # (width, height)
  folder = tmp_path / 'mixed'
  folder.mkdir()
  for i, (width, height) in enumerate(sizes):
    Image.fromarray(_centred_white(width, height, out_height, out_width)).save(folder / f'{i}.png')
  cfg = _config(tmp_path, 'mixed', input_fname_pattern='*.png', crop=True, output_height=out_height,
                output_width=out_width, batch_size=len(sizes))
  images = _pipeline_images(datasets.open_dataset(cfg), cfg, np.arange(len(sizes)))
  assert images.shape == (len(sizes), out_height, out_width, 3)
  assert (images == 255).all(), [image.min() for image in images]
  whole = dataclasses.replace(cfg, crop=False)  # without --crop the black margins stay in the picture
  assert (_pipeline_images(datasets.open_dataset(whole), whole, np.arange(len(sizes)))[:2] < 128).any()


def test_tfds_mnist_is_decoded_once_into_the_cache_with_its_labels(tmp_path, monkeypatch):
  tfds = datasets.import_tfds()
  cfg = _config(tmp_path, 'tfds:mnist', output_height=28, output_width=28, tfds_data_dir=str(tmp_path / 'tfds'))
  cache = str(tmp_path / 'ck')
  with tfds.testing.mock_data(num_examples=12):
    expected = list(tfds.load('mnist', split='train').as_numpy_iterator())
    assert datasets.default_output_size(cfg) == 28
    source = datasets.open_dataset(cfg, cache_dir=cache)
    assert isinstance(source, datasets.TfdsSource) and isinstance(source.images, np.memmap)
    assert (len(source), source.channels, source.num_classes) == (12, 1, 10)
    assert source.class_names == tuple(str(digit) for digit in range(10))  # TFDS's names of the classes
    np.testing.assert_array_equal(source.images, np.stack([e['image'] for e in expected]))
    np.testing.assert_array_equal(source.labels, [e['label'] for e in expected])
    monkeypatch.setattr(datasets.cache, 'write_image_cache', lambda *args, **kwargs: pytest.fail('decoded again'))
    again = datasets.open_dataset(cfg, cache_dir=cache)
    np.testing.assert_array_equal(again.labels, source.labels)
    monkeypatch.undo()
    smaller = dataclasses.replace(cfg, output_height=14, output_width=14)
    assert datasets.open_dataset(smaller, cache_dir=str(tmp_path / 'ck14')).images.shape == (12, 14, 14, 1)
    report = datasets.check(cfg, cache_dir=cache)
    assert 'tfds:mnist: TensorFlow Datasets mnist/3.0.1, split train: 12 images, grayscale' in report.text()
    assert 'labels: ' in report.text()
  assert datasets.default_output_size(_config(tmp_path, 'tfds:cifar10')) == 32
  assert datasets.default_output_size(_config(tmp_path, 'tfds:celeb_a')) == 64
  with tfds.testing.mock_data(num_examples=4):  # 218x178 RGB faces, cut square and resized; no class label
    faces = datasets.open_dataset(_config(tmp_path, 'tfds:celeb_a', crop=True, output_height=16, output_width=16),
                                  cache_dir=str(tmp_path / 'faces'))
  assert faces.images.shape == (4, 16, 16, 3) and faces.labels is None and faces.num_classes == 0


def test_tfds_names_it_cannot_serve_are_one_line(tmp_path):
  with pytest.raises(UserError, match=r"TensorFlow Datasets has no dataset 'mnsit' .*did you mean mnist"):
    datasets.open_dataset(_config(tmp_path, 'tfds:mnsit'), cache_dir=str(tmp_path))
  with pytest.raises(UserError, match=r'lsun needs tensorflow-io.* python download.py lsun --lsun_category'):
    datasets.open_dataset(_config(tmp_path, 'tfds:lsun/bedroom'), cache_dir=str(tmp_path))


@pytest.mark.parametrize('failure, why', [
    (requests.exceptions.ConnectionError(socket.gaierror(-3, 'Temporary failure in name resolution')),
     'cannot resolve the host name'),
    (OSError('No space left on device'), 'No space left on device')])
def test_a_tfds_download_that_fails_is_one_line_saying_why(tmp_path, monkeypatch, failure, why):
  tfds = datasets.import_tfds()

  def fail(self, *args, **kwargs):
    raise failure
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', fail)
  with pytest.raises(UserError) as error:
    datasets.open_dataset(_config(tmp_path, 'tfds:mnist', tfds_data_dir=str(tmp_path / 'tfds')),
                          cache_dir=str(tmp_path))
  assert str(error.value).startswith('TensorFlow Datasets could not download or prepare tfds:mnist/3.0.1: ')
  assert why in str(error.value) and '\n' not in str(error.value)


def test_cache_of_an_lmdb_holds_what_the_decode_pipeline_yields(tmp_path):
  lmdb_of_images(tmp_path / 'db', 7, size=(30, 20), formats=('WEBP', 'JPEG'))
  cfg = _config(tmp_path, 'db', crop=True, output_height=8, output_width=8, batch_size=7)
  source = datasets.open_dataset(cfg, cache_dir=str(tmp_path / 'ck'))
  cached = datasets.cache_images(source, cfg, str(tmp_path / 'ck'))
  assert isinstance(cached.images, np.memmap) and cached.images.shape == (7, 8, 8, 3)
  order = datasets.epoch_order(0, 0, 7)
  np.testing.assert_array_equal(_pipeline_images(cached, cfg, order), _pipeline_images(source, cfg, order))
