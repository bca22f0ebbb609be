"""The README's code blocks that a user can run without downloading anything run as written.

Each block after a line `<!-- tests/readme_test.py runs this block ... -->` runs, in README order, in one folder
that holds only data/mnist (a small MNIST of the user's: 80 digits, the fewest that --eval_freq's digit classifier
takes), as a user would run them one after the other: main.py's commands in this process (main_in_process, exit
code 0 each), Python blocks in a process of their own that imports nothing of this project. A `print(...)  # X`
line of a Python block must print X. A training command runs with the tests' tiny model (TINY_MODEL) after its
own flags (at the default size the test took 22 s alone, 13 s so), and the commands after it read the size from
config.json, as they do after any run.
"""

import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT, TINY_MODEL, main_in_process, write_idx_dataset

MARK = '<!-- tests/readme_test.py runs this block'


def marked_blocks(text):
  """[(language, [lines])] of the fenced code blocks that follow a MARK line, in order."""
  blocks = []
  for match in re.finditer(re.escape(MARK) + r'[^\n]*\n```(\w*)\n(.*?)\n```', text, re.DOTALL):
    blocks.append((match[1], match[2].splitlines()))
  return blocks


def test_the_marked_blocks_are_found_with_their_commands():
  blocks = marked_blocks(open(os.path.join(ROOT, 'README.md')).read())
  assert [language for language, _ in blocks] == ['', '', 'python']
  assert blocks[0][1][0].startswith('python main.py --train --dataset mnist --eval_freq 500')


@pytest.mark.process
def test_the_marked_blocks_run_as_written(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # main.py's folders are relative, as in the README: data/, checkpoint/, ...
  write_idx_dataset(str(tmp_path / 'data' / 'mnist'), 80)
  for language, lines in marked_blocks(open(os.path.join(ROOT, 'README.md')).read()):
    if language == 'python':
      result = subprocess.run([sys.executable, '-c', '\n'.join(lines)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
      assert result.returncode == 0, result.stderr
      claims = [line.split('#', 1)[1].strip() for line in lines if line.startswith('print(') and '#' in line]
      assert result.stdout.splitlines() == claims
      continue
    for line in lines:
      command = shlex.split(line, comments=True)
      assert command[:2] == ['python', 'main.py'], line
      assert main_in_process(*command[2:], *(TINY_MODEL if '--train' in command else [])) == (0, None), line
  key = tmp_path / 'checkpoint' / 'mnist_28_28'
  assert os.path.exists(key / 'best' / 'best.json')
  # the 1000 of seed 7 in a folder of their own beside generated/, which holds the last 12 of seed 0 (in place of
  # the first block's 100 of the same checkpoint and seed)
  generated = {name: len(os.listdir(tmp_path / 'samples' / 'mnist_28_28' / name))
               for name in os.listdir(tmp_path / 'samples' / 'mnist_28_28') if name.startswith('generated')}
  assert sorted(generated.values()) == [12 + 2, 1000 + 2] and generated['generated'] == 12 + 2, generated
  assert {'interp.gif', 'progress.gif'} <= set(os.listdir(tmp_path / 'samples' / 'mnist_28_28' / 'visualize'))
  assert os.path.exists(tmp_path / 'exported' / 'mnist.pb')


def _headings(path):
  """The anchors GitHub gives the headings of a Markdown file."""
  text = re.sub(r'```.*?```', '', open(path).read(), flags=re.DOTALL)
  return {re.sub(r'[^\w\- ]', '', title.strip().lower()).replace(' ', '-') for title in re.findall(r'^#+ (.*)$', text,
                                                                                                   flags=re.M)}


def test_every_link_of_the_guide_and_its_pages_leads_to_a_file_and_its_heading():
  pages = ['README.md', 'bench/README.md', 'experiments/README.md'] + [
      os.path.join('docs', name) for name in os.listdir(os.path.join(ROOT, 'docs')) if name.endswith('.md')]
  broken = []
  for page in pages:
    text = re.sub(r'```.*?```', '', open(os.path.join(ROOT, page)).read(), flags=re.DOTALL)  # (not code)
    for target in re.findall(r'\]\(([^)\s]+)\)', text):
      if target.startswith(('http://', 'https://')):
        continue
      path, _, anchor = target.partition('#')
      full = os.path.normpath(os.path.join(ROOT, os.path.dirname(page), path)) if path else os.path.join(ROOT, page)
      if not os.path.exists(full) or (anchor and full.endswith('.md') and anchor not in _headings(full)):
        broken.append(f'{page}: {target}')
  assert len(pages) > 10 and not broken, broken
