"""One real training step, in process, on tiny data in a temp dir."""

import dataclasses
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import config as config_lib
import datasets
import model
import safety
from conftest import lmdb_of_images, write_idx_dataset, write_images
from errors import Diverged

tf1 = tf.compat.v1


def _small_config(tmp_path, name, **kwargs):
  fields = dict(dataset=name, data_dir=str(tmp_path / 'data'), checkpoint_dir=str(tmp_path / 'ckpt'),
                sample_dir=str(tmp_path / 'samples'), log_dir=str(tmp_path / 'logs'), gf_dim=4, df_dim=4,
                gfc_dim=16, dfc_dim=16, z_dim=8, batch_size=8, epoch=1, sample_num=6)
  return config_lib.Config(**dict(fields, **kwargs))


def _initial_values(cfg, dataset):
  dcgan = model.DCGAN(cfg, dataset)
  with dcgan.session() as sess:
    sess.run(dcgan.init)
    return {v.op.name: sess.run(v) for v in dcgan.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)}


@pytest.mark.parametrize('kind', ['idx', 'folder', 'lmdb', 'tfds'])
def test_one_training_step_moves_every_variable(tmp_path, kind):
  if kind == 'idx':
    write_idx_dataset(str(tmp_path / 'data' / 'tiny'), 8)
    cfg = _small_config(tmp_path, 'tiny', output_height=28, output_width=28)
  elif kind == 'folder':
    write_images(str(tmp_path / 'data' / 'tiny'), 8, size=(24, 20))
    cfg = _small_config(tmp_path, 'tiny', input_fname_pattern='*.png', output_height=16, output_width=12)
  elif kind == 'lmdb':
    lmdb_of_images(tmp_path / 'data' / 'tiny', 8, size=(30, 20))
    cfg = _small_config(tmp_path, 'tiny', crop=True, output_height=16, output_width=16)
  else:
    cfg = _small_config(tmp_path, 'tfds:mnist', output_height=28, output_width=28)
  with datasets._import_tfds().testing.mock_data(num_examples=8):
    dataset = datasets.load(cfg, cache_dir=cfg.checkpoint_path)
  # (channels, classes): 8 digits are 0-7; TFDS's mnist knows its 10 classes whatever the sample
  assert (dataset.channels, dataset.num_classes) == {'idx': (1, 8), 'folder': (3, 0), 'lmdb': (3, 0),
                                                     'tfds': (1, 10)}[kind]
  cfg = dataclasses.replace(cfg, c_dim=dataset.channels, y_dim=dataset.num_classes)
  before = _initial_values(cfg, dataset)

  assert model.DCGAN(cfg, dataset).train() == (1, None)  # (step reached, no signal stopped it)

  checkpoint = tf.train.latest_checkpoint(cfg.checkpoint_path)
  assert checkpoint.endswith('DCGAN.model-1')
  reader = tf.train.load_checkpoint(checkpoint)
  assert reader.get_tensor('global_step') == 1
  trainable = [n for n in before if 'adam' not in n.lower() and 'moving' not in n and n != 'global_step'
               and not n.endswith('_power')]
  assert any(n.startswith('generator/') for n in trainable) and any(n.startswith('discriminator/') for n in trainable)
  for name in trainable + [n for n in before if 'moving_mean' in n]:
    after = reader.get_tensor(name)
    assert np.all(np.isfinite(after)), name
    assert not np.allclose(after, before[name]), f'{name} did not change'
  assert config_lib.load(cfg.checkpoint_path) == cfg
  assert os.listdir(cfg.sample_path) == ['train_00_000001.png']


def _digits_setup(tmp_path, **kwargs):
  write_idx_dataset(str(tmp_path / 'data' / 'tiny'), 32)
  cfg = _small_config(tmp_path, 'tiny', output_height=28, output_width=28, **kwargs)
  dataset = datasets.load(cfg)
  return dataclasses.replace(cfg, c_dim=dataset.channels, y_dim=dataset.num_classes), dataset


def test_a_nan_loss_stops_training_before_anything_of_it_is_saved(tmp_path, monkeypatch):
  cfg, dataset = _digits_setup(tmp_path, epoch=2, ckpt_freq=1)  # 4 steps per epoch
  real_step = model.DCGAN.train_step

  def step_that_diverges(self, sess, step, log=False):
    stats = real_step(self, sess, step, log)
    if step + 1 == 3:
      stats['d_loss'] = np.float32('nan')
    return stats

  monkeypatch.setattr(model.DCGAN, 'train_step', step_that_diverges)
  with pytest.raises(Diverged, match=r'diverged at step 3: d_loss nan; .*The last good checkpoint is '
                                     r'.*DCGAN.model-2'):
    model.DCGAN(cfg, dataset).train()
  assert checkpoints.steps(cfg.checkpoint_path) == [2, 1]


def test_nan_weights_are_never_saved(tmp_path):
  cfg, dataset = _digits_setup(tmp_path)
  dcgan = model.DCGAN(cfg, dataset)
  with dcgan.session() as sess:
    sess.run(dcgan.init)
    assert dcgan.save(sess, 1).endswith('DCGAN.model-1')
    weights = [v for v in dcgan.graph.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES) if 'h0' in v.op.name][0]
    weights.load(np.full(weights.shape, np.inf, np.float32), sess)
    with pytest.raises(Diverged, match=r'by step 2: a weight is NaN or Inf, so it was not saved. .*DCGAN.model-1'):
      dcgan.save(sess, 2, checkpoints.path_of(cfg.checkpoint_path, 1))
  assert checkpoints.steps(cfg.checkpoint_path) == [1]


def test_d_winning_is_warned_in_the_log_and_in_tensorboard(tmp_path, monkeypatch):
  cfg, dataset = _digits_setup(tmp_path, epoch=1)
  real_step = model.DCGAN.train_step

  def d_wins(self, sess, step, log=False):
    return dict(real_step(self, sess, step, log), **{'D(x)': 0.9999, 'D(G(z))': 0.0001})

  monkeypatch.setattr(model.DCGAN, 'train_step', d_wins)
  watch = safety.DiscriminatorWinWatch
  monkeypatch.setattr(safety, 'DiscriminatorWinWatch', lambda: watch(steps=3))
  model.DCGAN(cfg, dataset).train()
  texts = {}
  for path in glob.glob(os.path.join(cfg.log_path, 'events.out.tfevents.*')):
    for event in tf1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == 'warnings':
          assert value.metadata.plugin_data.plugin_name == 'text'
          texts[event.step] = tf.make_ndarray(value.tensor).item().decode()
  assert list(texts) == [3] and texts[3].startswith('D has won for 3 steps')


def test_xla_compiles_the_step_and_trains_like_the_plain_graph(tmp_path):
  cfg, dataset = _digits_setup(tmp_path)
  results = {}
  for xla in (False, True):
    dcgan = model.DCGAN(dataclasses.replace(cfg, xla=xla), dataset)
    with dcgan.session() as sess:
      sess.run(dcgan.init)
      dcgan.start_epoch(sess, 0, 0)
      metadata = tf1.RunMetadata()
      stats = sess.run(dcgan._d_fetches(False), dcgan._generator_feed(0),
                       options=tf1.RunOptions(trace_level=tf1.RunOptions.FULL_TRACE), run_metadata=metadata)
      ops = {node.timeline_label.split(' = ')[-1].split('(')[0] for device in metadata.step_stats.dev_stats
             for node in device.node_stats}
      results[xla] = stats['d_loss'], any(op.startswith('_Xla') for op in ops)
  assert results[False][1] is False and results[True][1] is True  # compiled clusters ran only with --xla
  np.testing.assert_allclose(results[True][0], results[False][0], rtol=1e-4)
