"""fetch.py: transfers against a loopback HTTP server that misbehaves, checksums, Drive's HTML pages, unpacking."""

import collections
import dataclasses
import hashlib
import io
import logging as std_logging
import os
import socket
import zipfile

import numpy as np
import pytest

from common import progress
from config import Config, download_command
import datasets
from downloads import archives
from downloads import fetch
from downloads import transfer
from errors import UserError
from evaluation import inception
from conftest import lmdb_of_images, shared
from http_server import HTML_PAGE, LoopbackServer

FAST = fetch.Transfer(retries=2, timeout=2.0, backoff=0.01)


def _remote(name, data, algorithm='md5'):
  return fetch.Remote(name, len(data), f'{algorithm}:{hashlib.new(algorithm, data).hexdigest()}')


def _bytes(count, seed=0):
  return np.random.default_rng(seed).integers(0, 256, count, dtype=np.uint8).tobytes()


def _files(folder):
  return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_a_file_arrives_whole_and_checked_then_is_kept(tmp_path):
  data = _bytes(300_000)
  with LoopbackServer({'a.bin': data}) as server:
    remote = fetch.with_mirrors(_remote('a.bin', data), [server.url])
    path = fetch.fetch_file(remote, str(tmp_path), FAST)
    assert open(path, 'rb').read() == data and _files(tmp_path) == ['a.bin']
    assert fetch.fetch_file(remote, str(tmp_path), FAST) == path  # verified again, not fetched again
    assert server.requests == [('a.bin', None)]


def test_a_cut_transfer_resumes_with_a_range_request(tmp_path):
  data = _bytes(500_000)
  with LoopbackServer({'a.bin': data}) as server:
    server.behaviours['a.bin'] = [('cut', 123_456), 500, ('cut', 100_000)]
    fetch.fetch_file(fetch.with_mirrors(_remote('a.bin', data), [server.url]), str(tmp_path), FAST)
    assert server.requests == [('a.bin', None), ('a.bin', 'bytes=123456-'), ('a.bin', 'bytes=123456-'),
                               ('a.bin', 'bytes=223456-')]
  assert (tmp_path / 'a.bin').read_bytes() == data


def test_a_part_left_by_an_earlier_run_is_resumed(tmp_path):
  data = _bytes(200_000)
  (tmp_path / 'a.bin.part').write_bytes(data[:150_000])
  with LoopbackServer({'a.bin': data}) as server:
    fetch.fetch_file(fetch.with_mirrors(_remote('a.bin', data), [server.url]), str(tmp_path), FAST)
    assert server.requests == [('a.bin', 'bytes=150000-')]
  assert (tmp_path / 'a.bin').read_bytes() == data and _files(tmp_path) == ['a.bin']


def test_a_server_that_ignores_ranges_sends_the_whole_file_again(tmp_path):
  data = _bytes(100_000)
  (tmp_path / 'a.bin.part').write_bytes(data[:40_000])
  with LoopbackServer({'a.bin': data}) as server:
    server.behaviours['a.bin'] = ['ignore_range']
    fetch.fetch_file(fetch.with_mirrors(_remote('a.bin', data), [server.url]), str(tmp_path), FAST)
  assert (tmp_path / 'a.bin').read_bytes() == data


def test_the_next_mirror_after_404_403_html_and_retries_that_run_out(tmp_path, caplog):
  data = _bytes(50_000)
  with LoopbackServer({'a.bin': data}) as good, LoopbackServer({'a.bin': data}) as bad:
    bad.behaviours['a.bin'] = [403, 'html', 500, 500, 500]
    mirrors = [bad.url + 'missing/', bad.url, bad.url, bad.url, good.url]
    with caplog.at_level(std_logging.WARNING):
      fetch.fetch_file(fetch.with_mirrors(_remote('a.bin', data), mirrors), str(tmp_path), FAST)
    assert [name for name, _ in bad.requests] == ['missing/a.bin', 'a.bin', 'a.bin', 'a.bin', 'a.bin', 'a.bin']
    assert good.requests == [('a.bin', None)]
  assert (tmp_path / 'a.bin').read_bytes() == data
  assert sum('HTTP 500' in r.getMessage() and 'retrying' in r.getMessage() for r in caplog.records) == 2


def test_every_mirror_failing_is_one_sentence_naming_each(tmp_path):
  data = _bytes(1000)
  # a port held, bound but not listening, for the whole test: connection refused, and no other test's server can
  # take it meanwhile (a port closed again was once taken by a loopback server of the other worker)
  with socket.socket() as probe, LoopbackServer({}) as server:
    probe.bind(('127.0.0.1', 0))
    closed_url = f'http://127.0.0.1:{probe.getsockname()[1]}/'
    remote = fetch.with_mirrors(_remote('a.bin', data), [server.url, closed_url])
    with pytest.raises(UserError) as error:
      fetch.fetch_file(remote, str(tmp_path), FAST)
  assert str(error.value).startswith('every mirror failed for a.bin: ')
  assert f'{server.url}a.bin: HTTP 404 Not Found' in str(error.value)
  assert f'{closed_url}a.bin: connection refused' in str(error.value)
  assert _files(tmp_path) == []


def test_redirect_loops_dead_redirects_and_urls_that_are_not_http_move_on(tmp_path):
  data = _bytes(2000)
  with LoopbackServer({'a.bin': data}) as server:
    server.behaviours['loop/a.bin'] = ['loop']
    server.behaviours['a.bin'] = [302]  # a redirect without a Location
    mirrors = [server.url + 'loop/', 'ftp://127.0.0.1/', 'no-scheme/', server.url]
    with pytest.raises(UserError) as error:
      fetch.fetch_file(fetch.with_mirrors(_remote('a.bin', data), mirrors), str(tmp_path), FAST)
    message = str(error.value)
    assert message.startswith('every mirror failed for a.bin: ') and message.count('; ') == 3
    assert 'Exceeded 30 redirects' in message and 'HTTP 302 Found' in message
    assert 'ftp://127.0.0.1/a.bin: No connection adapters' in message and "no-scheme/a.bin: Invalid URL" in message
    fetch.fetch_file(fetch.with_mirrors(_remote('a.bin', data), [server.url]), str(tmp_path), FAST)
  assert (tmp_path / 'a.bin').read_bytes() == data


def test_a_checksum_mismatch_removes_the_download(tmp_path):
  data = _bytes(10_000)
  wrong = data[:-1] + bytes([data[-1] ^ 1])
  with LoopbackServer({'a.bin': wrong}) as server:
    with pytest.raises(UserError, match=r'could not download a.bin from http://127.0.0.1:\d+/a.bin: checksum mismatch '
                                        r'\(md5 [0-9a-f]{32}, expected [0-9a-f]{32}\); removed the download'):
      fetch.fetch_file(fetch.with_mirrors(_remote('a.bin', data), [server.url]), str(tmp_path), FAST)
  assert _files(tmp_path) == []


def test_a_server_that_sends_too_much_is_cut_off_and_its_bytes_dropped(tmp_path):
  data = _bytes(10_000)
  with LoopbackServer({'a.bin': data + b'more and more'}) as server:
    server.behaviours['a.bin'] = ['no_length']  # (a length in the headers would be refused before the body)
    with pytest.raises(UserError, match='it sent more than the 10,000 bytes of a.bin'):
      fetch.fetch_file(fetch.with_mirrors(_remote('a.bin', data), [server.url]), str(tmp_path), FAST)
  assert _files(tmp_path) == []


@pytest.mark.parametrize('behaviour', ['ok', 'no_length'])
def test_a_whole_file_of_another_size_is_a_size_mismatch_at_once_and_leaves_no_part(tmp_path, behaviour):
  data, other = _bytes(30_000), _bytes(12_345, seed=1)
  (tmp_path / 'a.bin.part').write_bytes(data[:1000])  # what an earlier run received from a good mirror
  with LoopbackServer({'a.bin': other}) as server:
    server.behaviours['a.bin'] = ['ignore_range' if behaviour == 'ok' else behaviour]
    with pytest.raises(UserError) as error:
      fetch.fetch_file(fetch.with_mirrors(_remote('a.bin', data), [server.url]), str(tmp_path), FAST)
    assert len(server.requests) == 1  # not retried: another try would give the same file
  assert str(error.value) == (f'could not download a.bin from {server.url}a.bin: it serves a file of 12,345 bytes, '
                              'not the 30,000 bytes of a.bin (another version of the file, or not the file)'
                              + ('' if behaviour == 'ok' else '; removed what it sent'))
  # told by its headers, nothing of it is written and an earlier .part stays; read to its end, what it sent goes
  assert _files(tmp_path) == (['a.bin.part'] if behaviour == 'ok' else [])


def test_a_stalled_server_gives_up_after_the_timeout_and_keeps_the_bytes(tmp_path):
  data = _bytes(50_000)
  transfer = fetch.Transfer(retries=1, timeout=0.5, backoff=0.01)
  with LoopbackServer({'a.bin': data}) as server:
    server.behaviours['a.bin'] = [('stall', 10), ('stall', 0), ('stall', 0)]
    with pytest.raises(UserError, match='the server stopped sending'):
      fetch.fetch_file(fetch.with_mirrors(_remote('a.bin', data), [server.url]), str(tmp_path), transfer)
    assert server.requests == [('a.bin', None), ('a.bin', 'bytes=10-')]  # bytes that came in renew the retries
  assert (tmp_path / 'a.bin.part').read_bytes() == data[:10]  # kept for the next run to resume


def test_a_file_that_is_not_the_right_one_is_untouched_until_a_verified_one_replaces_it(tmp_path, caplog):
  data, mine = _bytes(5000), b'someone else wrote this'
  (tmp_path / 'a.bin').write_bytes(mine)
  remote = _remote('a.bin', data)
  with LoopbackServer({'a.bin': data[:4000]}) as server:  # a mirror with another version: the fetch fails
    with pytest.raises(UserError) as error:
      fetch.fetch_file(fetch.with_mirrors(remote, [server.url]), str(tmp_path), FAST)
  assert str(error.value).endswith(f'. {tmp_path / "a.bin"}, which is not that file, is as it was: keep it with '
                                   '--keep_mine, or run again when a source works to replace it')
  assert _files(tmp_path) == ['a.bin'] and (tmp_path / 'a.bin').read_bytes() == mine
  with LoopbackServer({'a.bin': data}) as server, caplog.at_level(std_logging.WARNING):
    assert fetch.fetch_file(fetch.with_mirrors(remote, [server.url]), str(tmp_path), FAST, keep_mine=True) \
        == str(tmp_path / 'a.bin')
    assert server.requests == []  # kept and used as it is
    assert (tmp_path / 'a.bin').read_bytes() == mine
    fetch.fetch_file(fetch.with_mirrors(remote, [server.url]), str(tmp_path), FAST)
  assert (tmp_path / 'a.bin').read_bytes() == data  # replaced by the verified download, in one rename
  assert (tmp_path / 'a.bin.mine').read_bytes() == mine  # and the user's file kept beside it
  md5 = hashlib.md5(mine).hexdigest()
  assert f'(it has 23 bytes and md5 {md5}; the file download.py fetches has 5,000 bytes and md5 ' in caplog.text
  assert f'replaced it, and kept yours as {tmp_path / "a.bin.mine"}' in caplog.text


def test_a_host_that_does_not_resolve_fails_at_once_and_is_not_asked_again(tmp_path, monkeypatch):
  """No network: the names of the mirrors do not resolve. Nothing leaves the machine: the lookup is the test's."""
  looked_up = []
  real = socket.getaddrinfo

  def getaddrinfo(host, *args, **kwargs):
    if host.endswith('.invalid'):
      looked_up.append(host)
      raise socket.gaierror(socket.EAI_NONAME, 'Name or service not known')
    return real(host, *args, **kwargs)

  monkeypatch.setattr(socket, 'getaddrinfo', getaddrinfo)
  slow = fetch.Transfer(retries=5, timeout=5.0, backoff=10.0)  # a retry would wait 10 s: the test would show it
  mirrors = ['http://one.invalid/', 'http://two.invalid/']
  for name in ('a.bin', 'b.bin'):
    with pytest.raises(UserError) as error:
      fetch.fetch_file(fetch.with_mirrors(_remote(name, b'x'), mirrors), str(tmp_path), slow)
    assert str(error.value) == (f'no network? could not reach any source of {name}: one.invalid (cannot resolve the '
                                'host name), two.invalid (cannot resolve the host name); check the connection, or '
                                'use --mirror with a mirror you can reach')
  assert looked_up == ['one.invalid', 'two.invalid']  # once each, and not again for the second file
  assert _files(tmp_path) == []


def test_drive_answering_with_a_quota_page_says_how_to_fetch_by_hand(tmp_path, monkeypatch):
  with LoopbackServer({'uc': HTML_PAGE}) as server:
    monkeypatch.setattr(transfer, 'DRIVE_URL', server.url + 'uc?id={id}')
    with pytest.raises(UserError) as error:
      fetch.get(fetch.CELEBA, str(tmp_path), FAST)
    assert server.requests[0] == ('uc', None)
  message = str(error.value)
  assert message.startswith('Google Drive answered with an HTML page instead of the zip')
  assert 'https://drive.google.com/uc?id=0B7EVK8r0v71pZjFTYXZWM3FlRnM&export=download' in message
  assert 'python download.py celebA --from_file PATH/img_align_celeba.zip' in message
  assert _files(tmp_path) == [] and '\n' not in message


def test_drive_refusing_the_link_says_how_to_fetch_by_hand(tmp_path, monkeypatch):
  import gdown

  def refuse(**kwargs):
    raise gdown.exceptions.FileURLRetrievalError('Too many users have viewed or downloaded this file recently.')

  monkeypatch.setattr(gdown, 'download', refuse)
  with pytest.raises(UserError, match=r'^Google Drive would not give the file: open https://drive.google.com/uc\?id='):
    fetch.get(fetch.CELEBA, str(tmp_path), FAST)


def _zip(members, top):
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, 'w') as archive:
    for name, data in members.items():
      archive.writestr(f'{top}/{name}', data)
  return buffer.getvalue()


def test_celeba_through_drive_is_unpacked_into_its_folder(tmp_path, monkeypatch):
  archive = _zip({'000001.jpg': b'one', '000002.jpg': b'two'}, 'img_align_celeba')
  celeba = fetch.Download('celebA', (dataclasses.replace(_remote('img_align_celeba.zip', archive),
                                                         drive_id='x'),), archive=True)
  with LoopbackServer({'uc': archive}) as server:
    monkeypatch.setattr(transfer, 'DRIVE_URL', server.url + 'uc?id={id}')
    result = fetch.get(celeba, str(tmp_path), FAST)
  assert result == fetch.Result(str(tmp_path / 'celebA'), True)
  assert _files(tmp_path / 'celebA') == ['000001.jpg', '000002.jpg']
  assert (tmp_path / 'celebA' / '000002.jpg').read_bytes() == b'two'
  assert sorted(_files(tmp_path)) == ['celebA']  # the zip is gone once unpacked
  assert fetch.get(celeba, str(tmp_path), FAST).fetched is False  # there already


def test_from_file_is_checked_and_unpacked_and_left_where_it_was(tmp_path):
  archive = _zip({'000001.jpg': b'one'}, 'img_align_celeba')
  celeba = fetch.Download('celebA', (_remote('img_align_celeba.zip', archive),), archive=True)
  mine = tmp_path / 'downloads' / 'img_align_celeba.zip'
  mine.parent.mkdir()
  mine.write_bytes(archive[:-1] + bytes([archive[-1] ^ 1]))
  with pytest.raises(UserError, match=r'--from_file .*img_align_celeba.zip is not img_align_celeba.zip: checksum '
                                      r'mismatch'):
    fetch.get(celeba, str(tmp_path / 'data'), FAST, from_file=str(mine))
  assert _files(tmp_path / 'data') == []
  mine.write_bytes(archive)
  fetch.get(celeba, str(tmp_path / 'data'), FAST, from_file=str(mine))
  assert _files(tmp_path / 'data' / 'celebA') == ['000001.jpg'] and mine.read_bytes() == archive


def test_not_enough_disk_space_is_refused_with_the_numbers(tmp_path, monkeypatch):
  archive = _zip({'data.mdb': b'x' * 1000}, 'tower_val_lmdb')
  tower = fetch.Download('lsun_tower_val', (_remote('tower_val_lmdb.zip', archive),), archive=True)
  Usage = collections.namedtuple('Usage', 'total used free')
  monkeypatch.setattr(fetch.shutil, 'disk_usage', lambda path: Usage(10 ** 12, 10 ** 12 - 1500, 1500))
  with pytest.raises(UserError) as error:
    fetch.get(tower, str(tmp_path), FAST, mirrors=['http://127.0.0.1:9/'])
  size = progress.format_bytes(len(archive))
  assert str(error.value) == (f'not enough disk space in {tmp_path}: it needs {size} to download and about {size} to '
                              f'unpack ({progress.format_bytes(2 * len(archive))} in all), but only 1.5 KiB are '
                              'free; free some space or use --data_dir on a larger disk')


def test_a_zip_that_reaches_outside_its_folder_is_not_unpacked(tmp_path):
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, 'w') as archive:
    archive.writestr('top/../../evil.txt', b'x')
  (tmp_path / 'evil.zip').write_bytes(buffer.getvalue())
  with pytest.raises(UserError, match="holds a file outside its folder"):
    archives.unpack(str(tmp_path / 'evil.zip'), str(tmp_path / 'out'))
  assert not (tmp_path / 'out').exists() and not (tmp_path.parent / 'evil.txt').exists()


def test_a_second_download_in_the_same_folder_waits_for_none(tmp_path):
  with fetch.locked(str(tmp_path)):
    with pytest.raises(UserError, match=rf'another download.py is running in {tmp_path} \(pid {os.getpid()} on '):
      with fetch.locked(str(tmp_path)):
        pass
  with fetch.locked(str(tmp_path)):  # released
    pass


def test_lsun_from_a_mirror_unpacks_to_an_lmdb_that_trains(tmp_path):
  """The road a user takes: an LSUN category's zip from a mirror, unpacked, opened by the LMDB source."""
  pixels = lmdb_of_images(tmp_path / 'made' / 'tower_val_lmdb', 5)
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, 'w') as archive:
    for name in ('data.mdb', 'lock.mdb'):
      archive.write(tmp_path / 'made' / 'tower_val_lmdb' / name, f'tower_val_lmdb/{name}')
  data = buffer.getvalue()
  tower = fetch.Download('lsun_tower_val', (_remote('tower_val_lmdb.zip', data, 'sha256'),), archive=True)
  with LoopbackServer({'tower_val_lmdb.zip': data}) as server:
    server.behaviours['tower_val_lmdb.zip'] = [('cut', len(data) // 3)]
    fetch.get(tower, str(tmp_path / 'data'), FAST, mirrors=[server.url])
  assert _files(tmp_path / 'data') == ['lsun_tower_val']
  cfg = Config(dataset='lsun_tower_val', data_dir=str(tmp_path / 'data'), output_height=16,
               output_width=20)
  source = datasets.open_dataset(cfg, cache_dir=str(tmp_path / 'ck'))
  np.testing.assert_array_equal(datasets.read_images(source, cfg, [0, 2, 4])[[0, 2]], pixels[[0, 4]])


def test_real_mnist_files_from_a_mirror_load_as_mnist(tmp_path):
  """The shared copy of real MNIST files, served by name, checked by their own checksums, loaded by datasets."""
  folder = shared('mnist')
  names = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz']
  files = {name: open(os.path.join(folder, name), 'rb').read() for name in names}
  mnist = fetch.Download('mnist', tuple(_remote(name, data) for name, data in files.items()))
  with LoopbackServer(files) as server:
    fetch.get(mnist, str(tmp_path), FAST, mirrors=[server.url])
  assert _files(tmp_path / 'mnist') == sorted(names)
  source = datasets.open_dataset(Config(dataset='mnist', data_dir=str(tmp_path), output_height=28,
                                        output_width=28))
  assert (len(source), source.num_classes) == (19690, 10) and source.labels[:3].tolist() == [5, 0, 4]


def _table():
  """Every Download of the table: MNIST, CelebA, each LSUN category and split, the Inception network."""
  return [fetch.MNIST, fetch.CELEBA, fetch.INCEPTION] + [fetch.lsun(category, split) for category in
                                                         fetch.LSUN_CATEGORIES for split in fetch.LSUN_SPLITS]


@pytest.mark.parametrize('download', _table(), ids=lambda d: d.folder)
def test_each_entry_of_the_table_can_be_fetched_checked_and_found(download):
  """What transfer.py needs of each file (a size, a checksum it can compute, http(s) base URLs or a Drive id), a
  folder no other entry claims, and the download.py command that fetches it, which main.py's error names."""
  for remote in download.files + ((download.member,) if download.member else ()):
    assert remote.size > 0
    if remote.checksum is not None:
      algorithm, digest = remote.checksum.split(':')
      assert len(digest) == 2 * hashlib.new(algorithm).digest_size and int(digest, 16) >= 0
  for remote in download.files:
    assert remote.bases or remote.drive_id
    for base in remote.bases:
      scheme, host = base.split('://')[0], base.split('://')[1].split('/')[0]
      assert scheme in ('http', 'https') and host and base.endswith('/')
  assert [d.folder for d in _table()].count(download.folder) == 1
  if download is not fetch.INCEPTION:
    command = download_command(download.folder).split()
    assert command[:2] == ['python', 'download.py']
    found = _downloads_of(command[2:])
    assert found == [download]


def _downloads_of(args):
  """The Downloads download.py picks for its command-line `args` (names, --lsun_category C, --lsun_split S)."""
  names, options = [], {'--lsun_category': 'bedroom', '--lsun_split': 'train'}
  words = iter(args)
  for word in words:
    if word in options:
      options[word] = next(words)
    else:
      names.append(word)
  return fetch.downloads(names, options['--lsun_category'].split(','), options['--lsun_split'])


def test_the_files_the_table_fetches_are_the_files_the_program_reads():
  """MNIST's files are the IDX pairs datasets/idx.py opens; the Inception member is the file inception.py loads."""
  names = {remote.name for remote in fetch.MNIST.files}
  assert {f'{name}.gz' for pair in datasets.idx.IDX_PAIRS for name in pair} == names
  assert fetch.INCEPTION.member.name == inception.GRAPH_FILE
