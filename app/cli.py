"""How main.py and download.py meet the user on the command line: --help in groups, one 'error:' line.

Both programs define each flag once, with absl, inside the help group it belongs to (HelpGroups.group) and with its
bounds (absl's lower_bound, or check_flag); run_program parses the flags, answers --help and --helpfull with those
groups (no absl test, TPU or developer flags) and --markdown_help with the same as a page of tables (docs/flags.md,
`make docs`), and turns a UserError, an OSError or a flag that does not parse into one line on stderr and an exit
code. Nothing here loads TensorFlow: a program that loads it only after its flags are checked answers at once.

$ python main.py --help
$ python main.py --train --epoch 0      # error: flag --epoch=0: 0 is not a positive integer (see --help)
"""

import contextlib
import os
import sys
import textwrap

import absl.app
from absl import flags

from errors import UserError

HELP_FLAGS = ('--help', '-help', '-h', '-?', '--helpshort', '--helpfull', MARKDOWN_FLAG := '--markdown_help')
WIDTH = 100
_NAME_COLUMN = 24
# absl's own flags that --helpfull shows: how much it logs, and where (the others are for testing absl itself)
_ABSL_FLAGS = ('verbosity', 'logtostderr', 'alsologtostderr', 'stderrthreshold', 'showprefixforinfo',
               'logger_levels', 'only_check_args', 'pdb_post_mortem', 'run_with_profiling', 'profile_file')


class HelpGroups(list):
  """--help's groups, [(title, [flag names])], filled as the flags are defined: every flag defined inside `with
  HELP_GROUPS.group('Data'):` is listed under Data, in the order of the definitions."""

  @contextlib.contextmanager
  def group(self, title, adopted=()):
    """Lists the flags the block defines under `title`, after the `adopted` ones (flags that a library defines and
    the program uses too, such as absl's --log_dir)."""
    before = set(flags.FLAGS)
    yield
    self.append((title, list(adopted) + [name for name in flags.FLAGS if name not in before]))


def check_flag(name, holds, message):
  """A check of one flag's value beyond its type's bounds, made as the flags are parsed: `holds(value)`, or the one
  line 'flag --name=VALUE: message' (`message` a sentence, or a function of the value that makes one). An unset
  flag (None) is not checked."""
  def checker(value):
    if value is None or holds(value):
      return True
    raise flags.ValidationError(message(value) if callable(message) else message)
  flags.register_validator(name, checker)


def _flag_name(flag):
  """How --help writes a flag: --[no]crop for a boolean, --epoch for the others."""
  return f'--[no]{flag.name}' if isinstance(flag, flags.BooleanFlag) else f'--{flag.name}'


def _default_text(flag):
  """A flag's default as --help says it: 'on'/'off' for a boolean, None where there is none."""
  if isinstance(flag, flags.BooleanFlag):
    return 'on' if flag.default else 'off'
  value = flag.default_as_str if flag.default is not None else None
  return None if value in (None, "''") else value.strip("'")


def _flag_line(flag):
  """'  --[no]crop  Cut the centre ... (default: off)' wrapped to WIDTH, the help under its name when long."""
  name, default = _flag_name(flag), _default_text(flag)
  text = flag.help.strip() + (f' (default: {default})' if default is not None else '')
  indent = ' ' * (_NAME_COLUMN + 4)
  head = f'  {name}'
  if len(head) <= _NAME_COLUMN + 1:
    return textwrap.fill(text, WIDTH, initial_indent=head.ljust(_NAME_COLUMN + 4), subsequent_indent=indent)
  return head + '\n' + textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=indent)


def help_text(intro, groups, full=False):
  """The text of --help: `intro`, then each group's flags in its order; --helpfull adds absl's logging flags.

  Raises:
    KeyError: a group names a flag that is not defined (tests/cli_test.py checks every program's groups).
  """
  registered = flags.FLAGS._flags()  # pylint: disable=protected-access; {name: Flag}, the short names too
  if full:
    groups = groups + [('Logging and debugging (absl)', [name for name in _ABSL_FLAGS if name in registered])]
  parts = [intro.strip(), '']
  for title, names in groups:
    parts += [f'{title}:'] + [_flag_line(registered[name]) for name in names] + ['']
  parts.append('--helpfull also lists absl\'s logging flags.' if not full else
               'Boolean flags: --name or --noname. Others: --name=value or --name value.')
  return '\n'.join(parts)


def help_markdown(program, intro, groups):
  """The flags of `program` as a Markdown page: `intro` as --help shows it, then a table per group."""
  registered = flags.FLAGS._flags()  # pylint: disable=protected-access
  pipes = lambda text: ' '.join(text.split()).replace('|', '\\|')
  html = lambda text: pipes(text).replace('<', '&lt;').replace('>', '&gt;')  # (<key> would read as a tag)
  parts = [f'# {program}', '', f'<!-- `make docs` writes this from the definitions of {program}\'s flags -->', '',
           '```', intro.strip(), '```', '']
  for title, names in groups:
    parts += [f'## {title}', '', '| flag | default | what it does |', '| --- | --- | --- |']
    for name in names:
      flag = registered[name]
      default = _default_text(flag)
      parts.append(f'| `{_flag_name(flag)}` | {f"`{pipes(default)}`" if default else ""} | {html(flag.help)} |')
    parts.append('')
  return '\n'.join(parts)


def run_program(main, intro, groups, interrupted='interrupted'):
  """Runs `main(argv)` as a command-line program with absl's flags.

  --help (and -h, --helpshort) prints help_text(intro, groups) and exits 0; --helpfull adds absl's own flags,
  --markdown_help prints help_markdown() instead (docs/flags.md). A
  UserError, an OSError or a flag that does not parse becomes one 'error: ' line on stderr and exit code 2 (or
  the error's own exit_code); Ctrl-C prints `interrupted` and exits with 130.
  """
  def run(argv):
    try:
      main(argv)
    except UserError as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(e.exit_code)
    except KeyboardInterrupt:
      print(interrupted, file=sys.stderr)
      sys.exit(130)
    except OSError as e:
      print(f'error: {e.strerror or e}: {e.filename}' if e.filename else f'error: {e}', file=sys.stderr)
      sys.exit(2)

  def parse(argv):
    asked = [arg for arg in argv[1:] if arg in HELP_FLAGS]
    if asked:
      program = os.path.basename(argv[0])
      text = (help_markdown(program, intro, groups) if MARKDOWN_FLAG in asked else
              help_text(intro, groups, full='--helpfull' in asked))
      try:
        print(text, flush=True)
      except BrokenPipeError:  # (--help | head): the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
      sys.exit(0)
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      print(f'error: {e} (see --help)', file=sys.stderr)
      sys.exit(2)

  absl.app.run(run, flags_parser=parse)

