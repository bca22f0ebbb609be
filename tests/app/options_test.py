"""app/options.py and main.py's flag checks: each flag's bounds at its definition, and every flag named as a Config
field reaching the config by its name, with nothing copied by hand (the fields the flags only imply are the ones
main.py derives)."""

import dataclasses

import tensorflow as tf
from absl import flags

from app import options
from config import Config
import main
from conftest import dir_flags, main_in_process
from conftest import parsed_flags

# The fields main.config_from_flags works out from several flags (or from the machine) instead of copying one.
DERIVED = {'dataset', 'input_width', 'augment', 'eval_samples', 'device', 'devices', 'multi_worker', 'workers',
           'worker_index', 'precision'}


FROM_THE_DATA = {'c_dim', 'y_dim', 'class_names'}  # (completion.complete)


def _another_value(flag):
  """A value of `flag` other than its default, within its bounds."""
  if isinstance(flag, flags.BooleanFlag):
    return 'false' if flag.default else 'true'
  if isinstance(flag, flags.EnumFlag) or flag.parser.flag_type() == 'string enum':
    return next(value for value in flag.parser.enum_values if value != flag.default)
  if flag.parser.flag_type() == 'int':
    return str((flag.default or 1) + 2)
  if flag.parser.flag_type() == 'float':
    return str((flag.default or 0.8) / 2)
  return {'run_name': 'other', 'input_fname_pattern': '*.png'}.get(flag.name, f'/tmp/{flag.name}')


def test_every_flag_named_as_a_config_field_becomes_that_field():
  fields = {field.name for field in dataclasses.fields(Config)}
  assert fields - set(flags.FLAGS) == (DERIVED | FROM_THE_DATA) - set(flags.FLAGS)  # no field forgotten
  copied = sorted(fields & set(flags.FLAGS) - DERIVED)
  assert len(copied) > 50
  args = [f'--{name}={_another_value(flags.FLAGS[name])}' for name in copied]
  with parsed_flags(*args, '--precision', 'float32', '--lr_decay_epochs', '0'):
    config = main.config_from_flags()
    for name in copied:
      assert getattr(config, name) == flags.FLAGS[name].value, name
      if name != 'lr_decay_epochs':
        assert getattr(config, name) != getattr(Config(), name) or flags.FLAGS[name].default is None, name


def test_help_groups_come_from_the_definitions_in_their_order():
  titles = [title for title, _ in options.HELP_GROUPS]
  assert titles[0].startswith('What to do') and titles[-1] == 'Runtime'
  data = dict(options.HELP_GROUPS)['Data']
  assert data[:3] == ['dataset', 'data_dir', 'crop'] and 'log_dir' in dict(options.HELP_GROUPS)['Output']


tf1 = tf.compat.v1


def test_the_new_flags_are_checked(tmp_path):
  for args, fragment in ((['--augment', 'zoom'], "flag --augment=zoom: 'zoom' is not one of"),
                         (['--r1', '-1'], 'flag --r1=-1: -1.0 is not a non-negative number'),
                         (['--r1_every', '0'], 'flag --r1_every=0: 0 is not a positive integer'),
                         (['--d_learning_rate', '0'], 'flag --d_learning_rate=0.0: must be above 0'),
                         (['--beta2', '1'], 'flag --beta2=1.0: must be in [0, 1)'),
                         (['--ema_start', '-5'], '--ema_start'),
                         (['--ema_rampup', '0'], 'flag --ema_rampup=0.0: must be above 0'),
                         (['--epoch', '3', '--lr_decay_epochs', '4'], '--lr_decay_epochs must be 0 to --epoch (3)'),
                         (['--upsample', 'bilinear'], 'value should be one of <deconv|resize>')):
    result = main_in_process('--train', *args, *dir_flags(tmp_path, tmp_path / 'data'))
    assert result.returncode == 2 and fragment in result.error, (args, result)
