"""app/completion.py: the config completed from the data: colour data gets the small-data tools, grayscale the
2015 recipe, a flag given wins, and a resumed run keeps the G layers it was trained with."""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from app import completion
from config import augment_policies, Config, save_config
import datasets
from conftest import tiny_rgb_trainer

tf1 = tf.compat.v1


def test_colour_data_is_augmented_by_default_and_augment_none_leaves_nothing_of_it_in_the_graph(tmp_path):
  augmenting = lambda **fields: any('augment' in op.name
                                    for op in tiny_rgb_trainer(tmp_path, **fields).dcgan.graph.get_operations())
  assert augmenting()
  assert not augmenting(augment='none')


def test_the_defaults_follow_the_data_and_a_flag_given_wins(tmp_path):
  grey = datasets.PixelSource('digits', np.zeros((4, 8, 8, 1), np.uint8), np.arange(4, dtype=np.int32))
  colour = datasets.PixelSource('faces', np.zeros((4, 8, 8, 3), np.uint8))
  config = lambda dataset, **fields: Config(dataset=dataset, checkpoint_dir=str(tmp_path), **fields)
  digits = completion.complete(config('digits'), grey)
  assert (digits.augment, digits.mirror, digits.upsample) == ('none', False, 'deconv')
  faces = completion.complete(config('faces'), colour)
  assert (augment_policies(faces.augment), faces.mirror, faces.upsample) == (('translation', 'cutout'),
                                                                             False, 'resize')
  given = completion.complete(config('faces', augment='none', mirror=True, upsample='deconv'), colour)
  assert (given.augment, given.mirror, given.upsample) == ('none', True, 'deconv')
  assert completion.complete(config('digits', augment='cutout'), grey).augment == 'cutout'


def test_a_resumed_run_keeps_the_upsampling_it_was_trained_with(tmp_path):
  """A colour run written with deconv G layers (before resize was the default) resumes with them; a flag given wins
  (and then restore.restore names the mismatch)."""
  colour = datasets.PixelSource('faces', np.zeros((4, 8, 8, 3), np.uint8))
  cfg = Config(dataset='faces', checkpoint_dir=str(tmp_path), output_height=8, output_width=8)
  trained = completion.complete(dataclasses.replace(cfg, upsample='deconv'), colour)
  os.makedirs(trained.checkpoint_path)
  save_config(trained, trained.checkpoint_path)
  assert completion.complete(cfg, colour).upsample == 'resize'  # a config but no checkpoint yet: a new run
  open(os.path.join(trained.checkpoint_path, 'DCGAN.model-4.index'), 'w').close()
  assert completion.complete(cfg, colour).upsample == 'deconv'
  assert completion.complete(dataclasses.replace(cfg, upsample='resize'), colour).upsample == 'resize'
