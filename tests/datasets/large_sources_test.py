"""LSUN and any large source start at once: only a sample of the entries is read before the first step, and
training skips, counts and names any other entry it cannot decode, stops at it with --strict, and resumes exactly
past the ones it skipped."""

import logging as std_logging
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

from config import Config
import datasets
from datasets import entries
from conftest import (TINY_MODEL, assert_error, assert_same_values, checkpoint_values, dir_flags, encode,
                      main_in_process, read_events, write_images, write_lmdb)

COUNT = 300  # entries of the test's LMDB: more than datasets.SAMPLE, so that some are never sampled
BATCH = 16
# A JPEG whose header is intact and whose data is not: Pillow opens it, TensorFlow cannot decode it
BROKEN = encode(np.random.default_rng(1).integers(0, 256, (12, 10, 3), dtype=np.uint8), 'JPEG')[:200] + bytes(
    range(256)) * 4


def _unsampled(count, how_many, among=None):
  """`how_many` entries that the opening check does not read (of `among`, in its order, when given)."""
  sampled = set(datasets.sample_indices(count).tolist())
  candidates = range(count) if among is None else among
  return [int(i) for i in candidates if int(i) not in sampled][:how_many]


def _lmdb(folder, broken=(), count=COUNT):
  """An LMDB of `count` tiny WebP images under keys 000000..., those of `broken` holding a corrupt JPEG."""
  rng = np.random.default_rng(0)
  pixels = rng.integers(0, 256, size=(count, 8, 8, 3), dtype=np.uint8)
  write_lmdb(folder, [BROKEN if i in broken else encode(p, 'WEBP') for i, p in enumerate(pixels)])
  return pixels


def _config(root, name, **kwargs):
  return Config(dataset=name, data_dir=str(root), output_height=8, output_width=8, **kwargs)


def test_a_large_lmdb_opens_by_reading_a_sample_and_check_data_reads_it_all(tmp_path, monkeypatch):
  broken = _unsampled(COUNT, 3)
  _lmdb(tmp_path / 'db', broken)
  read = []
  headers = entries._headers
  monkeypatch.setattr(entries, '_headers', lambda source, indices: read.extend(indices) or headers(source, indices))
  cfg = _config(tmp_path, 'db')
  source = datasets.open_dataset(cfg, cache_dir=str(tmp_path / 'ck'))
  assert sorted(read) == datasets.sample_indices(COUNT).tolist() and len(read) == datasets.SAMPLE < COUNT
  assert (len(source), source.num_images, source.bad) == (COUNT, COUNT, {})  # the broken ones are not known yet
  assert not os.path.exists(tmp_path / 'ck' / datasets.SCAN_FILE)  # (a sample is not remembered)
  report = datasets.check(cfg, cache_dir=str(tmp_path / 'ck'))  # --check_data: every entry
  assert f'{COUNT} LMDB entries, {COUNT - 3} readable images, 3 bad' in report.text()
  assert all(f'key {i:06d}: corrupt or truncated' in report.text() for i in broken)
  read.clear()
  again = datasets.open_dataset(cfg, cache_dir=str(tmp_path / 'ck'))
  assert sorted(again.bad) == broken and again.num_images == COUNT  # known now, skipped unread; epochs as long
  assert len(read) == datasets.SAMPLE


def test_the_pipeline_skips_what_it_cannot_decode_keeping_the_order_and_the_cache_does_the_same(tmp_path):
  order = datasets.epoch_order(0, 0, COUNT)
  broken = _unsampled(COUNT, 2, among=order[:30])
  pixels = _lmdb(tmp_path / 'db', broken)
  cfg = _config(tmp_path, 'db', batch_size=BATCH)
  source = datasets.open_dataset(cfg)
  kept = [i for i in order[:40] if i not in broken][:2 * BATCH]
  for data in (source, datasets.cache_images(source, cfg, str(tmp_path / 'ck'))):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      pipeline = datasets.make_pipeline(data, cfg)
      sess.run(pipeline.initializer, pipeline.feed(order, 0))
      batches = [sess.run([pipeline.images, pipeline.positions]) for _ in range(2)]
    images = np.concatenate([b[0] for b in batches])
    positions = np.concatenate([b[1] for b in batches])
    np.testing.assert_array_equal(images, pixels[kept])  # (lossless WebP) the others, in their order
    skipped = sorted(set(range(positions.max() + 1)) - set(positions.tolist()))
    assert [int(order[p]) for p in skipped] == sorted(broken, key=order.tolist().index)
  assert sorted(data.bad) == sorted(broken)  # the cache lists what it could not decode
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:  # a resumed epoch starts at its position
    pipeline = datasets.make_pipeline(source, cfg)
    sess.run(pipeline.initializer, pipeline.feed(order, positions.max() + 1))
    later = sess.run(pipeline.positions)
  assert later.min() == positions.max() + 1


def test_an_unsampled_image_smaller_than_the_crop_is_skipped_and_named(tmp_path, monkeypatch):
  monkeypatch.setattr(entries, 'SAMPLE', 2)
  write_images(str(tmp_path / 'f'), 5, size=(24, 24))
  write_images(str(tmp_path / 'small'), 1, size=(12, 12))
  os.replace(tmp_path / 'small' / '000.png', tmp_path / 'f' / '002.png')
  cfg = _config(tmp_path, 'f', input_fname_pattern='*.png', crop=True, input_height=20, input_width=20, batch_size=2)
  source = datasets.open_dataset(cfg)
  assert datasets.sample_indices(5).tolist() == [0, 4] and not source.bad
  assert datasets.why_unreadable(source, 2, cfg) == 'smaller than --crop 20x20 (12x12)'
  images, read = datasets.read_images(source, cfg, np.arange(5), skip=True)
  assert read.tolist() == [0, 1, 3, 4] and images.shape == (4, 8, 8, 3)
  real, chosen = datasets.sample_images(source, cfg, 5, np.random.default_rng(0))  # the evaluator's real images
  assert sorted(chosen.tolist()) == [0, 1, 3, 4] and len(real) == 4


@pytest.fixture(scope='module')
def broken_lmdb(tmp_path_factory):
  """data/lsun_broken: COUNT entries, three of them corrupt and never sampled, one within the first 7 steps."""
  root = tmp_path_factory.mktemp('broken')
  order = datasets.epoch_order(0, 0, COUNT)
  broken = _unsampled(COUNT, 1, among=order[3 * BATCH:7 * BATCH]) + _unsampled(COUNT, 2, among=order[10 * BATCH:])
  _lmdb(root / 'data' / 'lsun_broken', broken)
  return root, broken


def _train(run_dir, data_dir, *extra):
  return main_in_process('--train', '--dataset', 'lsun_broken', '--output_height', '8', '--batch_size', str(BATCH),
                         '--sample_num', '4', '--sample_freq', '100', *TINY_MODEL, *dir_flags(run_dir, data_dir),
                         *extra)


def test_training_skips_counts_and_names_what_it_cannot_decode_and_resumes_exactly(broken_lmdb, tmp_path, caplog):
  root, broken = broken_lmdb
  keys = [f'key {i:06d}' for i in broken]
  with caplog.at_level(std_logging.INFO):
    assert _train(tmp_path, root / 'data', '--epoch', '1', '--ckpt_freq', '7').returncode == 0
  steps = COUNT // BATCH
  skips = [r.getMessage() for r in caplog.records if r.getMessage().startswith('step ') and 'skipped' in r.getMessage()]
  assert len(skips) == 3 and all(any(key in line for line in skips) for key in keys)
  assert all('corrupt or truncated' in line for line in skips)
  summary, = [r.getMessage() for r in caplog.records if r.getMessage().startswith('skipped 3 entries')]
  assert all(key in summary for key in keys)
  assert re.search(rf'step {steps}/{steps} .* skipped 3\n', caplog.text)  # the progress line
  events = read_events(tmp_path / 'logs' / 'lsun_broken_8_8')
  values = events.values['skipped_entries']
  assert values[1] == 0 and values[steps] == 3
  key = tmp_path / 'ckpt' / 'lsun_broken_8_8'
  # the checkpoint of step 7 says where its last batch ended: one entry past 7 batches, for the one skipped
  assert checkpoint_values(key / 'DCGAN.model-7')['inputs/data_position'] == 7 * BATCH + 1
  shutil.copytree(key, tmp_path / 'straight')
  caplog.clear()
  with caplog.at_level(std_logging.INFO):  # back to step 7, and on: the same batches, the same weights
    assert _train(tmp_path, root / 'data', '--epoch', '1', '--checkpoint', '7').returncode == 0
  assert 'at step 7 (epoch 0, batch 7)' in caplog.text
  assert_same_values(key / f'DCGAN.model-{steps}', tmp_path / 'straight' / f'DCGAN.model-{steps}')


def test_strict_stops_at_the_first_entry_it_cannot_decode_keeping_the_checkpoint(broken_lmdb, tmp_path):
  root, broken = broken_lmdb
  result = _train(tmp_path, root / 'data', '--epoch', '1', '--ckpt_freq', '2', '--strict')
  message = assert_error(result, f'key {broken[0]:06d} cannot be read (corrupt or truncated', '(--strict)',
                         'DCGAN.model-', 'is intact')
  key = tmp_path / 'ckpt' / 'lsun_broken_8_8'
  saved = tf.train.latest_checkpoint(str(key))
  assert saved is not None and os.path.basename(saved) in message
  assert int(saved.rsplit('-', 1)[1]) < 7


def test_a_checkpoint_without_the_data_position_resumes_where_its_step_says(broken_lmdb, tmp_path, caplog):
  """A checkpoint of an earlier version has no inputs/data_position: it loads, and the epoch goes on by the step."""
  root, _ = broken_lmdb
  assert _train(tmp_path, root / 'data', '--epoch', '1', '--train_size', str(2 * BATCH)).returncode == 0
  key = tmp_path / 'ckpt' / 'lsun_broken_8_8'
  prefix = str(key / 'DCGAN.model-2')
  values = checkpoint_values(prefix)
  assert values.pop('inputs/data_position') == 2 * BATCH
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:  # written again without it
    variables = {name: tf.compat.v1.Variable(value, name=name) for name, value in values.items()}
    sess.run(tf.compat.v1.global_variables_initializer())
    tf.compat.v1.train.Saver(variables).save(sess, prefix, write_meta_graph=False)
  caplog.clear()
  with caplog.at_level(std_logging.INFO):
    assert _train(tmp_path, root / 'data', '--epoch', '1', '--train_size', str(3 * BATCH)).returncode == 0
  assert 'at step 2 (epoch 0, batch 2)' in caplog.text
  assert checkpoint_values(str(key / 'DCGAN.model-3'))['inputs/data_position'] == 3 * BATCH
