"""config.py: a config file of an older version loads as the model it held; a checkpoint's mismatch is found in
the fields the models have."""

import dataclasses
import json

import config as config_lib

CONDITIONAL = config_lib.Config(c_dim=1, y_dim=10, gfc_dim=32, dfc_dim=32, augment='none')  # (as saved: complete)


def test_a_config_written_before_the_conditioning_choice_loads_as_the_mnist_model(tmp_path):
  fields = dataclasses.asdict(CONDITIONAL)
  del fields['conditioning']
  (tmp_path / config_lib.CONFIG_FILE).write_text(json.dumps(fields))
  assert config_lib.read_saved(str(tmp_path)) == dataclasses.replace(CONDITIONAL, conditioning='mnist')
  config_lib.save(CONDITIONAL, str(tmp_path))
  assert config_lib.read_saved(str(tmp_path)).conditioning == config_lib.CONDITIONINGS[0]


def test_a_config_written_before_augment_loads_as_the_run_it_was(tmp_path):
  fields = dataclasses.asdict(CONDITIONAL)
  del fields['augment']  # (colour data is augmented by default now: the run was not)
  (tmp_path / config_lib.CONFIG_FILE).write_text(json.dumps(fields))
  assert config_lib.read_saved(str(tmp_path)) == CONDITIONAL


def test_shape_differences_compare_only_what_either_model_has():
  other_units = dataclasses.replace(CONDITIONAL, gfc_dim=64, dfc_dim=64)
  assert config_lib.shape_differences(CONDITIONAL, other_units) == []  # projection has no fully connected layer
  mnist = dataclasses.replace(CONDITIONAL, conditioning='mnist')
  assert config_lib.shape_differences(mnist, dataclasses.replace(other_units, conditioning='mnist')) == [
      ('gfc_dim', 32, 64), ('dfc_dim', 32, 64)]
  assert config_lib.shape_differences(mnist, other_units) == [
      ('conditioning', 'mnist', 'projection'), ('gfc_dim', 32, 64), ('dfc_dim', 32, 64)]
  unconditional = dataclasses.replace(CONDITIONAL, y_dim=0)
  assert config_lib.shape_differences(unconditional, dataclasses.replace(unconditional, conditioning='mnist')) == []
  assert config_lib.shape_differences(unconditional, mnist) == [('y_dim', 0, 10)]  # not the conditioning


def test_a_config_written_before_upsample_loads_as_deconv_and_upsample_sets_shapes(tmp_path):
  resized = dataclasses.replace(CONDITIONAL, upsample='resize')
  fields = dataclasses.asdict(resized)
  del fields['upsample']
  (tmp_path / config_lib.CONFIG_FILE).write_text(json.dumps(fields))
  saved = config_lib.read_saved(str(tmp_path))
  assert saved.upsample == 'deconv'
  assert config_lib.shape_differences(saved, resized) == [('upsample', 'deconv', 'resize')]
