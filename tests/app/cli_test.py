"""cli.py: --help in groups for main.py and download.py, and flag mistakes answered before TensorFlow loads.

The programs run in processes of their own here: what they print, their exit code and what they loaded are the
subject.
"""

import os
import subprocess
import sys

import pytest
from absl import flags

from app import options
from conftest import ROOT

# Runs a program as __main__ and then says whether TensorFlow was loaded, whatever way the program ended.
_LOADED = '''
import runpy, sys
sys.path.insert(0, {root!r})
sys.argv = [{program!r}] + sys.argv[1:]
try:
  runpy.run_path({program!r}, run_name='__main__')
finally:
  print('tensorflow loaded' if 'tensorflow' in sys.modules else 'tensorflow not loaded', flush=True)
'''


def _run(program, *args):
  path = os.path.join(ROOT, program)
  return subprocess.run([sys.executable, '-c', _LOADED.format(root=ROOT, program=path), *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)


def _grouped(groups):
  return [name for _, names in groups for name in names]


def test_every_flag_of_main_is_in_one_help_group():
  defined = {flag.name for flag in flags.FLAGS.get_flags_for_module(options)} | {'log_dir'}
  grouped = _grouped(options.HELP_GROUPS)
  assert sorted(grouped) == sorted(set(grouped))  # none twice
  assert set(grouped) == defined


@pytest.mark.process
def test_every_flag_of_download_is_in_one_help_group():
  script = ('import sys; sys.path.insert(0, %r); import download; from absl import flags\n'
            'defined = {f.name for f in flags.FLAGS.get_flags_for_module(download)} - set(download.DEPRECATED)\n'
            'grouped = [n for _, names in download.HELP_GROUPS for n in names]\n'
            'print(sorted(defined) == sorted(grouped))' % ROOT)
  result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=60)
  assert result.stdout.strip() == 'True', result.stderr


@pytest.mark.process
def test_help_shows_the_groups_in_order_with_the_user_s_words_only():
  result = _run('main.py', '--help')
  assert result.returncode == 0, result.stderr
  text = result.stdout
  assert text.startswith('main.py: train a DCGAN on your images')
  positions = [text.index(f'\n{title}:\n') for title, _ in options.HELP_GROUPS]
  assert positions == sorted(positions)
  assert text.index('  --dataset ') < text.index('  --data_dir ') < text.index('  --tfds_data_dir ')
  assert '  --[no]train ' in text and '(default: 64)' in text
  # not the developers' notes, absl's own flags, nor the flags TensorFlow's TPU and absl's test modules define
  for absent in ('The only module', '--verbosity', '--only_check_args', '--test_srcdir', '--hbm_oom_exit',
                 '--tt_check_filter', '--op_conversion_fallback_to_while_loop'):
    assert absent not in text, absent
  assert text.endswith("--helpfull also lists absl's logging flags.\ntensorflow not loaded\n")  # (and no TensorFlow)
  full = _run('main.py', '--helpfull')
  assert full.returncode == 0 and '\nLogging and debugging (absl):\n' in full.stdout and '  --verbosity ' in full.stdout
  assert '--test_srcdir' not in full.stdout and '--hbm_oom_exit' not in full.stdout


@pytest.mark.parametrize('program, args, error', [
    ('main.py', ['--train', '--epoch', '0'], 'error: flag --epoch=0: 0 is not a positive integer'),
    ('main.py', ['--train', '--loss', 'hinj'], 'error: flag --loss=hinj: value should be one of'),
    ('main.py', ['--train', '--batch_size', '1'], 'error: --batch_size 1 cannot train'),
    ('main.py', ['--train', '--dataset', 'mnsit'], 'error: no dataset folder '),  # (and no TensorFlow: below)
    ('main.py', ['--device', 'gpu0'], 'error: flag --device=gpu0: not a device name'),
    ('download.py', ['mnist', '--mirror_url', 'localhost:8000'], "error: --mirror_url 'localhost:8000' is not an"),
])
@pytest.mark.process
def test_a_flag_mistake_is_answered_before_tensorflow_loads(tmp_path, program, args, error):
  result = _run(program, *args)
  assert result.returncode == 2
  assert [line for line in result.stderr.splitlines() if line.startswith('error: ')][0].startswith(error)
  assert result.stdout.strip() == 'tensorflow not loaded'


@pytest.mark.process
def test_docs_flags_md_is_what_make_docs_writes_from_the_definitions():
  from app import cli  # pylint: disable=import-outside-toplevel
  download = subprocess.run([sys.executable, os.path.join(ROOT, 'download.py'), '--markdown_help'],
                            capture_output=True, text=True, timeout=60)
  assert download.returncode == 0, download.stderr
  written = cli.help_markdown('main.py', options.INTRO, options.HELP_GROUPS) + '\n' + download.stdout
  with open(os.path.join(ROOT, 'docs', 'flags.md')) as f:
    assert f.read() == written, 'docs/flags.md is stale: run make docs'
  assert '| `--mirror_url` |' in download.stdout and '| `--[no]mirror` |' in written  # (one each)
  assert '| `--mirror` |' not in download.stdout  # (the old spelling is not shown)
