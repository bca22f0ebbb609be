"""config.py: a config file of an older version loads as the model it held; a checkpoint's mismatch is found in
the fields the models have, spectral norm and D's batch norm among them."""

import dataclasses
import json

import tensorflow as tf

from config import CONDITIONINGS, Config, CONFIG_FILE, save_config, saved_config, shape_differences

CONDITIONAL = Config(c_dim=1, y_dim=10, gfc_dim=32, dfc_dim=32, augment='none')  # (as saved: complete)


def test_a_config_written_before_the_conditioning_choice_loads_as_the_mnist_model(tmp_path):
  fields = dataclasses.asdict(CONDITIONAL)
  del fields['conditioning']
  (tmp_path / CONFIG_FILE).write_text(json.dumps(fields))
  assert saved_config(str(tmp_path)) == dataclasses.replace(CONDITIONAL, conditioning='mnist')
  save_config(CONDITIONAL, str(tmp_path))
  assert saved_config(str(tmp_path)).conditioning == CONDITIONINGS[0]


def test_a_config_written_before_augment_loads_as_the_run_it_was(tmp_path):
  fields = dataclasses.asdict(CONDITIONAL)
  del fields['augment']  # (colour data is augmented by default now: the run was not)
  (tmp_path / CONFIG_FILE).write_text(json.dumps(fields))
  assert saved_config(str(tmp_path)) == CONDITIONAL


def test_shape_differences_compare_only_what_either_model_has():
  other_units = dataclasses.replace(CONDITIONAL, gfc_dim=64, dfc_dim=64)
  assert shape_differences(CONDITIONAL, other_units) == []  # projection has no fully connected layer
  mnist = dataclasses.replace(CONDITIONAL, conditioning='mnist')
  assert shape_differences(mnist, dataclasses.replace(other_units, conditioning='mnist')) == [
      ('gfc_dim', 32, 64), ('dfc_dim', 32, 64)]
  assert shape_differences(mnist, other_units) == [
      ('conditioning', 'mnist', 'projection'), ('gfc_dim', 32, 64), ('dfc_dim', 32, 64)]
  unconditional = dataclasses.replace(CONDITIONAL, y_dim=0)
  assert shape_differences(unconditional, dataclasses.replace(unconditional, conditioning='mnist')) == []
  assert shape_differences(unconditional, mnist) == [('y_dim', 0, 10)]  # not the conditioning


def test_a_config_written_before_upsample_loads_as_deconv_and_upsample_sets_shapes(tmp_path):
  resized = dataclasses.replace(CONDITIONAL, upsample='resize')
  fields = dataclasses.asdict(resized)
  del fields['upsample']
  (tmp_path / CONFIG_FILE).write_text(json.dumps(fields))
  saved = saved_config(str(tmp_path))
  assert saved.upsample == 'deconv'
  assert shape_differences(saved, resized) == [('upsample', 'deconv', 'resize')]


tf1 = tf.compat.v1


def test_spectral_norm_and_d_batch_norm_are_shape_fields(tmp_path):
  saved = Config(y_dim=0, c_dim=3)
  current = dataclasses.replace(saved, spectral_norm=True, d_batch_norm=False)
  assert shape_differences(saved, current) == [('spectral_norm', False, True), ('d_batch_norm', True,
                                                                                False)]
