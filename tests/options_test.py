"""app/options.py and main.config_from_flags: every flag named as a Config field reaches the config by its name,
with nothing copied by hand; the fields the flags only imply are the ones main.py says it derives."""

import dataclasses

from absl import flags

from config import Config
import main
from app import options
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
