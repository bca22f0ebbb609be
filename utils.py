"""Helpers: noise, sample grids and PNG files (with Pillow), and training progress.

$ python main.py --train --dataset digits    # grids made here land in samples/digits_28_28/
"""

import contextlib
import datetime
import fcntl
import io
import json
import math
import os
import socket
import sys
import time

import numpy as np
from absl import logging
from PIL import Image
from tqdm import tqdm

from errors import UserError

GRID_PAD = 2
GRID_PAD_VALUE = 128  # mid grey: separates cells on black and on white backgrounds, and marks empty cells


def noise(distribution, shape, seed):
  """Draws z: 'uniform_signed' is U(-1, 1), 'normal' is N(0, 1).

  Args:
    distribution: one of config.Z_DISTRIBUTIONS.
    shape: output shape, [batch, z_dim].
    seed: an int, a sequence of ints or a numpy Generator; the same seed gives the same z.

  Returns:
    float32 array of `shape`.
  """
  rng = np.random.default_rng(seed)
  if distribution == 'uniform_signed':
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
  if distribution == 'normal':
    return rng.standard_normal(size=shape).astype(np.float32)
  raise ValueError(f'unknown z distribution {distribution!r}')


def grid_shape(count, cols=None):
  """Rows and columns of a grid for `count` images: `cols` columns, or as square as possible."""
  cols = cols or math.ceil(math.sqrt(count))
  return math.ceil(count / cols), cols


def make_grid(images, cols=None):
  """Tiles images into one picture; any count works, empty cells stay grey.

  Args:
    images: uint8 [count, height, width, channels].
    cols: columns of the grid; default as square as possible.

  Returns:
    uint8 [rows * (height + pad) + pad, cols * (width + pad) + pad, channels].
  """
  count, height, width, channels = images.shape
  rows, cols = grid_shape(count, cols)
  grid = np.full((rows * (height + GRID_PAD) + GRID_PAD, cols * (width + GRID_PAD) + GRID_PAD, channels),
                 GRID_PAD_VALUE, np.uint8)
  for i, image in enumerate(images):
    top = GRID_PAD + (i // cols) * (height + GRID_PAD)
    left = GRID_PAD + (i % cols) * (width + GRID_PAD)
    grid[top:top + height, left:left + width] = image
  return grid


def _pil(image):
  image = np.asarray(image, np.uint8)
  return Image.fromarray(image[:, :, 0] if image.shape[-1] == 1 else image)


def ensure_writable(directory):
  """Creates `directory` and checks that files can be written there.

  Raises:
    UserError: it cannot be created or written.
  """
  try:
    os.makedirs(directory, exist_ok=True)
    probe = os.path.join(directory, '.write_test')
    with open(probe, 'w'):
      pass
    os.remove(probe)
  except OSError as e:
    raise UserError(f'cannot write to {directory}: {e.strerror}') from None


def check_writable(directory):
  """Checks, without creating anything, that `directory` exists or could be created, and can be written.

  Raises:
    UserError: a part of the path is a file, or the nearest existing folder is read-only.
  """
  path = os.path.abspath(directory)
  while not os.path.lexists(path) and os.path.dirname(path) != path:
    path = os.path.dirname(path)
  if not os.path.isdir(path):
    raise UserError(f'cannot write to {directory}: {path} is not a folder')
  if not os.access(path, os.W_OK | os.X_OK):
    raise UserError(f'cannot write to {directory}: {path} is read-only')


@contextlib.contextmanager
def stderr_to(target=None):
  """Sends what C++ libraries print to stderr (file descriptor 2) to `target` (a binary file object; None: nowhere)
  for the duration: TensorFlow's start-up notices, libjpeg's complaints about a broken file.

  Yields:
    A text stream to the real stderr, for progress that should still be seen.
  """
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(os.devnull, 'wb') if target is None else contextlib.nullcontext(target) as sink:
      os.dup2(sink.fileno(), 2)
    with os.fdopen(os.dup(saved), 'w') as real:
      yield real
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)


class Busy(Exception):
  """Another process holds the lock; the message says which ('pid P on host H since T (command)')."""


def _makedirs(folder):
  """Makes `folder` and its missing parents; returns those it made, outermost first."""
  made, path = [], os.path.abspath(folder)
  while not os.path.isdir(path) and os.path.dirname(path) != path:
    made.insert(0, path)
    path = os.path.dirname(path)
  os.makedirs(folder, exist_ok=True)
  return made


def _holder(path, tries=10):
  """What the lock file says of the process that holds it. A holder that took the lock a moment ago may not have
  written it yet: read again for up to a second."""
  for _ in range(tries):
    try:
      with open(path) as f:
        info = json.load(f)
      return f'pid {info["pid"]} on {info["host"]} since {info["started"]} ({info["command"]})'
    except (OSError, ValueError, KeyError, TypeError):
      time.sleep(0.1)
  return 'another process (it has not said which)'


@contextlib.contextmanager
def exclusive_lock(path, what):
  """Holds an exclusive lock on the file `path` while the block runs, the one way this program keeps two
  processes from writing the same files (a run's checkpoint folder, download.py's data folder).

  The lock is fcntl.flock's: the kernel drops it when the process ends, even by kill -9, so there is never a
  stale lock to clear on a local disk. The file names its holder (pid, host, start, command, `what`) for the
  other process's error. On release the file is deleted, and so are the folders this call made if nothing else
  was put in them: a command that stops before it writes anything leaves nothing behind.

  Raises:
    Busy: another process holds the lock.
  """
  made = _makedirs(os.path.dirname(path) or '.')
  while True:
    try:
      fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:  # the last holder removed the folder it had made: make it again
      made = _makedirs(os.path.dirname(path) or '.')
      continue
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      raise Busy(_holder(path)) from None
    try:  # the last holder may have deleted the file between our open and our flock: lock the one there now
      if os.fstat(fd).st_ino == os.stat(path).st_ino:
        break
    except FileNotFoundError:
      pass
    os.close(fd)
  try:
    started = datetime.datetime.now().astimezone().isoformat(timespec='seconds')
    info = {'pid': os.getpid(), 'host': socket.gethostname(), 'started': started, 'what': what,
            'command': ' '.join([os.path.basename(sys.argv[0])] + sys.argv[1:]) or what}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + '\n').encode(), 0)
    yield
  finally:
    with contextlib.suppress(OSError):
      os.remove(path)  # (still held: no other process can have taken this file meanwhile)
    os.close(fd)  # (closing the last descriptor releases the lock)
    for folder in reversed(made):
      try:
        os.rmdir(folder)  # only when empty
      except OSError:
        break


def fsync(path):
  """Makes the bytes of a file, or the names in a folder, durable: from the page cache to the disk, so that a
  power cut or a kernel crash (unlike a killed process) cannot take them back."""
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def write_atomically(path, write, durable=False):
  """Creates the parent folder, calls write(temporary_path), then renames the result to `path`.

  A reader sees the old file or the whole new one, never half of it. With `durable`, a power cut does not
  either: the new file's bytes reach the disk before the rename, and the rename before this returns.
  """
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  temporary = temporary_name(path)
  try:
    write(temporary)
    if durable:
      fsync(temporary)
    os.replace(temporary, path)
    if durable:
      fsync(os.path.dirname(path) or '.')
  finally:
    if os.path.exists(temporary):
      os.remove(temporary)


def temporary_name(path):
  """Where to write `path` before renaming it: unique to this process, so that two processes (multi-worker
  training on a shared folder) writing the same file never write into one temporary file."""
  return f'{path}.tmp{os.getpid()}'


def write_text(path, text, durable=False):
  """Writes `text` to `path` atomically (see write_atomically)."""
  def write(temporary):
    with open(temporary, 'w') as f:
      f.write(text)
  write_atomically(path, write, durable)


def save_png(path, image):
  """Writes uint8 [height, width, 1 or 3] as a PNG, atomically."""
  write_atomically(path, lambda temporary: _pil(image).save(temporary, format='PNG'))


def read_png(path):
  """Reads an image file as uint8 [height, width, 1 or 3]."""
  with Image.open(path) as image:
    pixels = np.asarray(image.convert('L' if image.mode in ('1', 'L', 'LA') else 'RGB'))
  return pixels[:, :, np.newaxis] if pixels.ndim == 2 else pixels


def save_gif(path, frames, seconds_per_frame=0.1):
  """Writes uint8 frames [count, height, width, 1 or 3] as a looping GIF, atomically."""
  images = [_pil(frame) for frame in frames]
  write_atomically(path, lambda temporary: images[0].save(
      temporary, format='GIF', save_all=True, append_images=images[1:], duration=int(seconds_per_frame * 1000),
      loop=0))


def png_bytes(image):
  """uint8 [height, width, 1 or 3] -> PNG bytes, as TensorBoard's image summaries want."""
  buffer = io.BytesIO()
  _pil(image).save(buffer, format='PNG')
  return buffer.getvalue()


def _duration(seconds):
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f'{hours}h{minutes:02d}m' if hours else f'{minutes}m{seconds:02d}s'


def format_bytes(count):
  """1536 -> '1.5 KiB'; 45922737680 -> '42.8 GiB'."""
  for unit in ('B', 'KiB', 'MiB', 'GiB'):
    if abs(count) < 1024:
      return f'{count:.0f} {unit}' if unit == 'B' else f'{count:.1f} {unit}'
    count /= 1024
  return f'{count:.1f} TiB'


class Meter:
  """Progress of long work other than training (a download, a scan, a decode check).

  On a terminal a tqdm bar; otherwise (a log file, CI) a line every `every` seconds and one at the end, each
  with the count done, the rate and the time left: logged, or printed to `stream` when one is given. Use as a
  context manager, calling update(n) as work is done. `total` may be None (unknown).
  """

  def __init__(self, total, what, unit='image', in_bytes=False, done=0, every=30.0, stream=None):
    self._total, self._what, self._unit, self._bytes, self._every = total, what, unit, in_bytes, every
    self._done = self._start_done = done
    self._start = self._last = time.monotonic()
    self._stream = stream
    self._bar = None
    if (stream or sys.stderr).isatty():
      self._bar = tqdm(total=total, initial=done, desc=what, unit='B' if in_bytes else unit, unit_scale=in_bytes,
                       unit_divisor=1024, dynamic_ncols=True, leave=False, file=stream)

  def _amount(self, count):
    return format_bytes(count) if self._bytes else f'{count:,}'

  def _line(self):
    elapsed = max(time.monotonic() - self._start, 1e-9)
    rate = (self._done - self._start_done) / elapsed
    shown_rate = f'{format_bytes(rate)}/s' if self._bytes else f'{rate:,.0f} {self._unit}s/s'
    left = f', ETA {_duration((self._total - self._done) / rate)}' if rate > 0 and self._total else ''
    total = f' of {self._amount(self._total)}' if self._total else ''
    return f'{self._what}: {self._amount(self._done)}{total}, {shown_rate}{left}'

  @property
  def done(self):
    """The count done so far, `done` at the start included."""
    return self._done

  def update(self, count):
    self._done += count
    if self._bar is not None:
      self._bar.update(count)
    elif time.monotonic() - self._last >= self._every:
      self._last = time.monotonic()
      self._say(self._line())

  def _say(self, line):
    if self._stream is None:
      logging.info('%s', line)
    else:
      print(line, file=self._stream, flush=True)

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    if self._bar is not None:
      self._bar.close()
    if exc_info[0] is None and time.monotonic() - self._start >= 2.0:
      self._say(self._line().split(', ETA')[0] + f' in {_duration(time.monotonic() - self._start)}')


class Progress:
  """Training progress: a tqdm bar on a terminal, otherwise a log line every `log_every` steps.

  Both show the epoch, the losses, D(x), D(G(z)), images/s and the time left.
  """

  def __init__(self, start, total, steps_per_epoch, batch_size, log_every):
    self._total, self._steps_per_epoch = total, steps_per_epoch
    self._batch_size, self._log_every = batch_size, log_every
    self._window = (start, time.monotonic())
    self._bar = None
    if sys.stderr.isatty() and start < total:
      self._bar = tqdm(initial=start, total=total, unit='step', dynamic_ncols=True)

  def update(self, step, stats, skipped=0):
    """Records that `step` steps are done; `stats` holds d_loss, g_loss, D(x), D(G(z)); `skipped` counts the
    entries that could not be read so far (shown when there are some)."""
    skipped_text = f'  skipped {skipped}' if skipped else ''
    if self._bar is not None:
      self._bar.update(1)
      steps_per_second = self._bar.format_dict['rate'] or 0.0
      self._bar.set_postfix_str(f'epoch {(step - 1) // self._steps_per_epoch} d_loss {stats["d_loss"]:.3f} '
                                f'g_loss {stats["g_loss"]:.3f} D(x) {stats["D(x)"]:.2f} '
                                f'D(G(z)) {stats["D(G(z))"]:.2f} {steps_per_second * self._batch_size:.0f} img/s'
                                f'{skipped_text}', refresh=False)
      return
    if step % self._log_every and step != self._total:
      return
    first, since = self._window
    now = time.monotonic()
    steps_per_second = (step - first) / max(now - since, 1e-9)
    self._window = (step, now)
    logging.info('epoch %d step %d/%d  d_loss %.3f  g_loss %.3f  D(x) %.3f  D(G(z)) %.3f  %.1f img/s  ETA %s%s',
                 (step - 1) // self._steps_per_epoch, step, self._total, stats['d_loss'], stats['g_loss'],
                 stats['D(x)'], stats['D(G(z))'], steps_per_second * self._batch_size,
                 _duration((self._total - step) / max(steps_per_second, 1e-9)), skipped_text)

  def close(self):
    if self._bar is not None:
      self._bar.close()
