"""One real training step, in process, on tiny data in a temp dir."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

import config as config_lib
import datasets
import model
from conftest import write_idx_dataset, write_images

tf1 = tf.compat.v1


def _small_config(tmp_path, name, **kwargs):
  return config_lib.Config(dataset=name, data_dir=str(tmp_path / 'data'), checkpoint_dir=str(tmp_path / 'ckpt'),
                           sample_dir=str(tmp_path / 'samples'), log_dir=str(tmp_path / 'logs'), gf_dim=4,
                           df_dim=4, gfc_dim=16, dfc_dim=16, z_dim=8, batch_size=8, epoch=1, sample_num=6,
                           **kwargs)


def _initial_values(cfg, dataset):
  dcgan = model.DCGAN(cfg, dataset)
  with dcgan.session() as sess:
    sess.run(dcgan.init)
    return {v.op.name: sess.run(v) for v in dcgan.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)}


@pytest.mark.parametrize('kind', ['idx', 'folder'])
def test_one_training_step_moves_every_variable(tmp_path, kind):
  if kind == 'idx':
    write_idx_dataset(str(tmp_path / 'data' / 'tiny'), 8)
    cfg = _small_config(tmp_path, 'tiny', output_height=28, output_width=28)
  else:
    write_images(str(tmp_path / 'data' / 'tiny'), 8, size=(24, 20))
    cfg = _small_config(tmp_path, 'tiny', input_fname_pattern='*.png', output_height=16, output_width=12)
  dataset = datasets.load(cfg)
  cfg = dataclasses.replace(cfg, c_dim=dataset.channels, y_dim=dataset.num_classes)
  before = _initial_values(cfg, dataset)

  assert model.DCGAN(cfg, dataset).train() == 1

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
