"""download.py run as a user would, against a loopback server: exit codes, one-line errors, a full disk, Ctrl-C.

There is no internet here, so the files served are the test's own: a wrapper replaces the table's MNIST entries
with them (names, sizes, checksums) and then runs download.py as __main__, unchanged.
"""

import hashlib
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, TINY_MODEL, assert_user_error, main_in_process, shared, write_idx_dataset
from http_server import LoopbackServer

WRAPPER = '''
import json, os, runpy, sys
sys.path.insert(0, {root!r})
import fetch
files = json.loads(os.environ['TEST_MNIST_FILES'])
fetch.MNIST = fetch.Download('mnist', tuple(fetch.Remote(name, size, checksum, ('http://127.0.0.1:9/',))
                                            for name, size, checksum in files))
sys.argv = ['download.py'] + sys.argv[1:]
runpy.run_path(os.path.join({root!r}, 'download.py'), run_name='__main__')
'''


def _table(files):
  return [[name, len(data), 'md5:' + hashlib.md5(data).hexdigest()] for name, data in files.items()]


def _download(args, cwd, files=None, mirror=None, limit=None, background=False):
  """Runs download.py with `args` (a Popen with `background`); with `files` ({name: bytes}) the table's MNIST is
  those files."""
  env = dict(os.environ)
  env.pop('DCGAN_MIRROR', None)
  if mirror:
    env['DCGAN_MIRROR'] = mirror
  command = [sys.executable, os.path.join(ROOT, 'download.py')]
  if files is not None:
    env['TEST_MNIST_FILES'] = json.dumps(_table(files))
    command = [sys.executable, '-c', WRAPPER.format(root=ROOT)]
  preexec = (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))) if limit else None
  if background:  # Ctrl-C reaches it as it reaches a program in a terminal, even when the tests run in the
    # background of a script, whose shell starts them with SIGINT ignored (Python then never raises
    # KeyboardInterrupt)
    return subprocess.Popen(command + list(args), cwd=cwd, env=env, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  return subprocess.run(command + list(args), cwd=cwd, env=env, capture_output=True, text=True,
                        stdin=subprocess.DEVNULL, preexec_fn=preexec, timeout=300)


def _real_mnist():
  folder = shared('mnist')
  return {name: open(os.path.join(folder, name), 'rb').read()
          for name in ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz')}


def test_download_mnist_then_train_on_it_as_the_readme_says(tmp_path, monkeypatch, caplog):
  files = _real_mnist()
  with LoopbackServer(files) as server:
    result = _download(['mnist'], tmp_path, files, mirror=server.url)
    assert result.returncode == 0, result.stderr
    assert ('mnist is ready in data/mnist; train on it with: python main.py --train --dataset mnist'
            in result.stderr)
    assert sorted(os.listdir(tmp_path / 'data' / 'mnist')) == sorted(files)
    served = len(server.requests)
    again = _download(['mnist'], tmp_path, files, mirror=server.url)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count('(checksum ok)') == 2 and len(server.requests) == served
  monkeypatch.chdir(tmp_path)  # main.py's folders are relative, as in the README: data/, checkpoint/, ...
  with caplog.at_level(logging.INFO):
    train = main_in_process('--train', '--dataset', 'mnist', '--epoch', '1', '--train_size', '64', '--batch_size',
                            '32', *TINY_MODEL)
  assert train.returncode == 0, train
  assert 'dataset mnist: 19690 images, 1 channel(s), 10 label classes' in caplog.text
  assert os.path.exists(tmp_path / 'checkpoint' / 'mnist_28_28' / 'DCGAN.model-2.index')


@pytest.mark.parametrize('args, fragments', [
    ([], ['name the datasets to download: mnist celebA lsun']),
    (['imagenet'], ["download.py knows mnist, celebA, lsun, not 'imagenet'"]),
    (['lsun', '--lsun_category', 'kitchenette'], ["--lsun_category 'kitchenette' is not an LSUN scene category"]),
    (['mnist', '--from_file', 'x.zip'], ['--from_file takes the zip of one dataset']),
    (['celebA', '--from_file', 'nowhere.zip'], ['--from_file nowhere.zip is not a file']),
    (['mnist', '--retries', '-1'], ['--retries must be at least 0']),
    (['mnist', '--no_such_flag'], ['Unknown command line flag', 'no_such_flag', '(see --help)']),
    (['mnist', '--timeout', 'soon'], ["flag --timeout=soon: could not convert string to float: 'soon'"]),
    (['mnist', '--mirror', '127.0.0.1:8765/'], ["--mirror '127.0.0.1:8765/' is not an http:// or https:// URL; "
                                                'write it as http://127.0.0.1:8765/']),
    (['mnist', '--mirror', 'ftp://host/mnist/'], ["--mirror 'ftp://host/mnist/' is not an http:// or https:// URL"]),
])
def test_mistakes_are_one_line_and_exit_2(tmp_path, args, fragments):
  assert_user_error(_download(args, tmp_path), *fragments)
  assert not os.path.exists(tmp_path / 'data')  # nothing made: no dataset folder, no lock file


def test_a_dataset_that_trained_survives_a_download_from_a_mirror_with_another_version(tmp_path, monkeypatch):
  """The first hour of a user with their own MNIST subset: download.py must not take it away."""
  monkeypatch.chdir(tmp_path)
  write_idx_dataset(str(tmp_path / 'data' / 'mnist'), 64)
  mine = {name: (tmp_path / 'data' / 'mnist' / name).read_bytes() for name in os.listdir(tmp_path / 'data' / 'mnist')}
  assert main_in_process('--train', '--dataset', 'mnist', '--epoch', '1', '--batch_size', '32', *TINY_MODEL,
                         '--conditioning', 'mnist').returncode == 0
  official = {name: os.urandom(len(data) + 1000) for name, data in mine.items()}  # the table's files
  served = {name: data[:len(data) // 2] for name, data in official.items()}  # a mirror's complete, other files
  with LoopbackServer(served) as server:
    result = _download(['mnist', '--mirror', server.url], tmp_path, official)
  error = assert_user_error(result, 'could not download train-', 'ubyte.gz from', 'it serves a file of',
                            'is as it was: keep it with --keep_mine')
  assert 'connection closed' not in error
  assert sorted(os.listdir(tmp_path / 'data' / 'mnist')) == sorted(mine)  # no .bad, .part or .mine beside them
  assert all((tmp_path / 'data' / 'mnist' / name).read_bytes() == data for name, data in mine.items())
  assert main_in_process('--train', '--dataset', 'mnist', '--epoch', '2', '--batch_size', '32', *TINY_MODEL,
                         '--conditioning', 'mnist').returncode == 0  # and the run goes on
  kept = _download(['mnist', '--mirror', server.url, '--keep_mine'], tmp_path, official)  # (the server is gone:
  assert kept.returncode == 0, kept.stderr  # nothing is asked of it)
  assert kept.stderr.count('kept and used as it is (--keep_mine)') == 2


def test_a_bad_checksum_or_no_source_is_one_line_and_leaves_nothing(tmp_path):
  files = {'train-images-idx3-ubyte.gz': b'the real bytes'}
  with LoopbackServer({'train-images-idx3-ubyte.gz': b'the wrong ones'}) as server:
    error = assert_user_error(_download(['mnist'], tmp_path, files, mirror=server.url),
                              f'could not download train-images-idx3-ubyte.gz from {server.url}')
    assert 'checksum mismatch (md5 ' in error and error.endswith('removed the download')
    assert not os.path.exists(tmp_path / 'data')  # no dataset folder, no .part, no lock: nothing was made
    error = assert_user_error(_download(['mnist', '--mirror', f'{server.url}a/,{server.url}b/'], tmp_path, files),
                              'every mirror failed for train-images-idx3-ubyte.gz: ')
    assert f'{server.url}a/train-images-idx3-ubyte.gz: HTTP 404 Not Found; {server.url}b/' in error


def test_a_full_disk_keeps_what_came_and_the_next_run_resumes(tmp_path):
  data = os.urandom(300_000)
  files = {'train-images-idx3-ubyte.gz': data}
  with LoopbackServer(files) as server:
    error = assert_user_error(_download(['mnist'], tmp_path, files, mirror=server.url, limit=100_000), 'disk full')
    part = tmp_path / 'data' / 'mnist' / 'train-images-idx3-ubyte.gz.part'
    assert 'File too large' in error and 'the 100,000 bytes received are kept there' in error
    assert part.read_bytes() == data[:100_000]
    result = _download(['mnist'], tmp_path, files, mirror=server.url)
    assert result.returncode == 0, result.stderr
    assert server.requests[-1] == ('train-images-idx3-ubyte.gz', 'bytes=100000-')
  assert (tmp_path / 'data' / 'mnist' / 'train-images-idx3-ubyte.gz').read_bytes() == data and not part.exists()


def test_ctrl_c_keeps_the_part_for_the_next_run(tmp_path):
  data = os.urandom(100_000)
  files = {'train-images-idx3-ubyte.gz': data}
  with LoopbackServer(files) as server:
    server.behaviours['train-images-idx3-ubyte.gz'] = [('stall', 4096)]
    process = _download(['mnist', '--timeout', '30'], tmp_path, files, mirror=server.url, background=True)
    part = tmp_path / 'data' / 'mnist' / 'train-images-idx3-ubyte.gz.part'
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size == 4096) and time.monotonic() < deadline:
      time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
  assert process.returncode == 130, stderr
  assert 'interrupted: what was received is kept in the .part files; run the same command to resume' in stderr
  assert part.read_bytes() == data[:4096]
