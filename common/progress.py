"""What the user sees while long work runs: a meter of downloads, scans and decodes (Meter), training's progress
line or bar (Progress), both with the rate and the time left; and stderr_to, which keeps the chatter of C++
libraries off the terminal.

$ python main.py --train --dataset digits    # epoch 0 step 50/624  d_loss ...  220.3 img/s  ETA 2m10s
"""

import contextlib
import os
import sys
import time

from absl import logging
from tqdm import tqdm


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
