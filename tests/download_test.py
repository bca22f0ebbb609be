"""download.py run as a user would, against a loopback server: exit codes, one-line errors, a full disk, Ctrl-C.

There is no internet here, so the files served are the test's own: a wrapper replaces the table's MNIST entries
with them (names, sizes, checksums) and then runs download.py as __main__, unchanged.
"""

import hashlib
import io
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import tarfile
import time

import pytest

import inception_stand_in
from conftest import (ROOT, TINY_MODEL, assert_user_error, main_in_process, shared, write_idx_dataset,
                      write_images)
from http_server import LoopbackServer

pytestmark = pytest.mark.process  # (each test here runs download.py in a process of its own, as a user does)


WRAPPER = '''
import json, os, runpy, sys
sys.path.insert(0, {root!r})
from downloads import fetch
files = json.loads(os.environ['TEST_MNIST_FILES'])
fetch.MNIST = fetch.Download('mnist', tuple(fetch.Remote(name, size, checksum, ('http://127.0.0.1:9/',))
                                            for name, size, checksum in files))
if 'TEST_INCEPTION' in os.environ:  # (archive size, member size, member checksum) of the test's stand-in
  archive, size, checksum = json.loads(os.environ['TEST_INCEPTION'])
  fetch.INCEPTION = fetch.Download('inception', (fetch.Remote(fetch.INCEPTION.files[0].name, archive, None,
                                                              ('http://127.0.0.1:9/',)),),
                                   member=fetch.Remote(fetch.INCEPTION_GRAPH.name, size, checksum))
sys.argv = ['download.py'] + sys.argv[1:]
runpy.run_path(os.path.join({root!r}, 'download.py'), run_name='__main__')
'''


def _table(files):
  return [[name, len(data), 'md5:' + hashlib.md5(data).hexdigest()] for name, data in files.items()]


def _download(args, cwd, files=None, mirror=None, limit=None, background=False, inception=None):
  """Runs download.py with `args` (a Popen with `background`); with `files` ({name: bytes}) the table's MNIST is
  those files, with `inception` ((archive bytes, member bytes)) the table's Inception network is that archive."""
  env = dict(os.environ)
  env.pop('DCGAN_MIRROR', None)
  if mirror:
    env['DCGAN_MIRROR'] = mirror
  command = [sys.executable, os.path.join(ROOT, 'download.py')]
  if files is not None or inception is not None:
    env['TEST_MNIST_FILES'] = json.dumps(_table(files or {}))
    if inception is not None:
      archive, member = inception
      env['TEST_INCEPTION'] = json.dumps([len(archive), len(member), 'md5:' + hashlib.md5(member).hexdigest()])
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
    again = _download(['mnist', '--mirror', server.url], tmp_path, files)  # (the old spelling of --mirror_url)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count('(checksum ok)') == 2 and len(server.requests) == served
    assert '--mirror is now called --mirror_url' in again.stderr
  monkeypatch.chdir(tmp_path)  # main.py's folders are relative, as in the README: data/, checkpoint/, ...
  with caplog.at_level(logging.INFO):
    train = main_in_process('--train', '--dataset', 'mnist', '--epoch', '1', '--train_size', '64', '--batch_size',
                            '32', *TINY_MODEL)
  assert train.returncode == 0, train
  assert 'dataset mnist: 19690 images, 1 channel(s), 10 label classes' in caplog.text
  assert os.path.exists(tmp_path / 'checkpoint' / 'mnist_28_28' / 'DCGAN.model-2.index')


@pytest.mark.parametrize('args, fragments', [
    ([], ['name the datasets to download: mnist celebA lsun']),
    (['imagenet'], ["download.py knows mnist, celebA, lsun, inception, not 'imagenet'"]),
    (['lsun', '--lsun_category', 'kitchenette'], ["--lsun_category 'kitchenette' is not an LSUN scene category"]),
    (['mnist', '--from_file', 'x.zip'], ['--from_file takes the file of one dataset']),
    (['celebA', '--from_file', 'nowhere.zip'], ['--from_file nowhere.zip is not a file']),
    (['mnist', '--retries', '-1'], ['flag --retries=-1: -1 is not a non-negative integer']),
    (['mnist', '--timeout', '0'], ['flag --timeout=0.0: must be above 0']),
    (['mnist', '--no_such_flag'], ['Unknown command line flag', 'no_such_flag', '(see --help)']),
    (['mnist', '--timeout', 'soon'], ["flag --timeout=soon: could not convert string to float: 'soon'"]),
    (['mnist', '--mirror_url', '127.0.0.1:8765/'], ["--mirror_url '127.0.0.1:8765/' is not an http:// or https:// "
                                                    'URL; write it as http://127.0.0.1:8765/']),
    (['mnist', '--mirror_url', 'ftp://host/mnist/'], ["--mirror_url 'ftp://host/mnist/' is not an http:// or "
                                                      'https:// URL']),
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
    result = _download(['mnist', '--mirror_url', server.url], tmp_path, official)
  error = assert_user_error(result, 'could not download train-', 'ubyte.gz from', 'it serves a file of',
                            'is as it was: keep it with --keep_mine')
  assert 'connection closed' not in error
  assert sorted(os.listdir(tmp_path / 'data' / 'mnist')) == sorted(mine)  # no .bad, .part or .mine beside them
  assert all((tmp_path / 'data' / 'mnist' / name).read_bytes() == data for name, data in mine.items())
  assert main_in_process('--train', '--dataset', 'mnist', '--epoch', '2', '--batch_size', '32', *TINY_MODEL,
                         '--conditioning', 'mnist').returncode == 0  # and the run goes on
  kept = _download(['mnist', '--mirror_url', server.url, '--keep_mine'], tmp_path, official)  # (the server is gone:
  assert kept.returncode == 0, kept.stderr  # nothing is asked of it)
  assert kept.stderr.count('kept and used as it is (--keep_mine)') == 2


def test_a_bad_checksum_or_no_source_is_one_line_and_leaves_nothing(tmp_path):
  files = {'train-images-idx3-ubyte.gz': b'the real bytes'}
  with LoopbackServer({'train-images-idx3-ubyte.gz': b'the wrong ones'}) as server:
    error = assert_user_error(_download(['mnist'], tmp_path, files, mirror=server.url),
                              f'could not download train-images-idx3-ubyte.gz from {server.url}')
    assert 'checksum mismatch (md5 ' in error and error.endswith('removed the download')
    assert not os.path.exists(tmp_path / 'data')  # no dataset folder, no .part, no lock: nothing was made
    error = assert_user_error(_download(['mnist', '--mirror_url', f'{server.url}a/,{server.url}b/'], tmp_path, files),
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


def _stand_in_archive(graph=None, extra=b'Apache License 2.0'):
  """(the bytes of a .tgz like inception-2015-12-05.tgz holding the stand-in network, the network's bytes)."""
  graph = graph if graph is not None else inception_stand_in.stand_in_graph_def().SerializeToString()
  buffer = io.BytesIO()
  with tarfile.open(fileobj=buffer, mode='w:gz') as tar:
    for name, data in (('LICENSE', extra), ('classify_image_graph_def.pb', graph)):
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  return buffer.getvalue(), graph


def test_download_inception_from_a_mirror_then_evaluate_reports_fid(tmp_path, monkeypatch, capsys):
  archive, graph = _stand_in_archive()
  with LoopbackServer({'inception-2015-12-05.tgz': archive}) as server:
    result = _download(['inception', '--mirror_url', server.url], tmp_path, inception=(archive, graph))
    assert result.returncode == 0, result.stderr
    assert 'the Inception network is ready in data/inception: python main.py --evaluate' in result.stderr
    assert os.listdir(tmp_path / 'data') == ['inception']  # the archive is gone, the network kept
    assert (tmp_path / 'data' / 'inception' / 'classify_image_graph_def.pb').read_bytes() == graph
    served = len(server.requests)
    again = _download(['inception', '--mirror_url', server.url], tmp_path, inception=(archive, graph))
    assert again.returncode == 0 and '(checksum ok)' in again.stderr and len(server.requests) == served
  monkeypatch.chdir(tmp_path)  # main.py finds it in data/inception, as a user's would
  write_images(str(tmp_path / 'data' / 'faces'), 12, size=(16, 16))
  assert main_in_process('--train', '--dataset', 'faces', '--input_fname_pattern', '*.png', '--output_height', '16',
                         '--batch_size', '4', '--epoch', '1', *TINY_MODEL) == (0, None)
  capsys.readouterr()
  assert main_in_process('--dataset', 'faces', '--evaluate') == (0, None)
  names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]]
  assert names[:6] == ['fid', 'fid_real', 'kid', 'kid_std', 'precision', 'recall']


def test_a_damaged_or_wrong_inception_archive_leaves_nothing(tmp_path):
  archive, graph = _stand_in_archive()
  middle = len(archive) // 2
  damaged = archive[:middle] + bytes([archive[middle] ^ 0xFF]) + archive[middle + 1:]
  # (a flipped byte in the compressed stream: the archive's size is right, the network inside is not)
  with LoopbackServer({'inception-2015-12-05.tgz': damaged}) as server:
    error = assert_user_error(_download(['inception', '--mirror_url', server.url], tmp_path,
                                        inception=(archive, graph)))
  assert error.startswith('error: classify_image_graph_def.pb from inception-2015-12-05.tgz is not the file '
                          'download.py fetches: checksum mismatch (md5 ')
  assert error.endswith('removed it and the archive')
  assert not os.path.exists(tmp_path / 'data')  # nothing kept: no archive to resume a bad file from
  truncated = archive[:len(archive) - 40]  # the tar and the gzip end cut off: announced as a file of that size
  with LoopbackServer({'inception-2015-12-05.tgz': truncated}) as server:
    error = assert_user_error(_download(['inception', '--mirror_url', server.url], tmp_path,
                                        inception=(truncated, graph)))
  assert 'inception-2015-12-05.tgz is not a readable .tgz' in error
  assert not os.path.exists(tmp_path / 'data')
