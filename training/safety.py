"""Guards of a training run: stop cleanly on a signal, stop before saving a NaN, warn when D has won, and stop a
worker that waits for others who will not come.

$ python main.py --train --dataset digits    # Ctrl-C: finishes the step, saves, exits 0; Ctrl-C again: ends at once
"""

import contextlib
import math
import os
import signal
import sys
import threading

from errors import Diverged

# D has won when, for this many steps in a row, its loss stays this close to the least it can be.
D_WON_STEPS = 200
D_WON_MARGIN = 0.02  # for the classic loss: about D(x) > 0.99 and D(G(z)) < 0.01


class GracefulStop:
  """Within `with GracefulStop() as stop:`, SIGINT and SIGTERM set `stop.requested` instead of killing.

  The loop finishes its step, checkpoints and ends. A signal is seen at once, even inside a step, where Python's
  own handlers wait for TensorFlow to return: the signal's number reaches a thread through the wakeup fd (see
  signal.set_wakeup_fd). A step the loop marks (`with stop.step():`) that has not ended GRACE_SECONDS after the
  first signal, or a second signal, ends the process at once with exit code 130: only the steps since the last
  checkpoint are lost, and a save is never cut short by it (a save is not a step).
  """

  SIGNALS = (signal.SIGINT, signal.SIGTERM)
  GRACE_SECONDS = 10.0
  EXIT_CODE = 130

  def __init__(self):
    self.requested = None  # the name of the signal that asked to stop
    self._previous = {}
    self._stepping = threading.Event()
    self._read = self._write = self._wakeup = None

  def __enter__(self):
    for signum in self.SIGNALS:
      self._previous[signum] = signal.signal(signum, lambda *_: None)  # (the thread does the work)
    self._read, self._write = os.pipe()
    os.set_blocking(self._write, False)
    self._wakeup = signal.set_wakeup_fd(self._write)
    threading.Thread(target=self._watch, name='graceful-stop', daemon=True).start()
    return self

  def __exit__(self, *exc_info):
    signal.set_wakeup_fd(self._wakeup)
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    os.close(self._write)  # (the thread reads the end of the pipe, and ends)
    return False

  @contextlib.contextmanager
  def step(self):
    """Marks a training step: the one thing a signal may cut short."""
    self._stepping.set()
    try:
      yield
    finally:
      self._stepping.clear()

  def _watch(self):
    with os.fdopen(self._read, 'rb', buffering=0) as pipe:
      while (data := pipe.read(1)):
        if data[0] not in [int(signum) for signum in self.SIGNALS]:
          continue
        name = signal.Signals(data[0]).name
        if self.requested is None:
          self.requested = name
          print(f'{name}: finishing this step and saving a checkpoint (a step that takes more than '
                f'{self.GRACE_SECONDS:g} s is cut short); press Ctrl-C again to stop at once (losing the steps since '
                'the last checkpoint)', file=sys.stderr, flush=True)
          threading.Timer(self.GRACE_SECONDS, self._end_a_long_step).start()
        else:
          self._end(f'{name} again: stopped at once')

  def _end_a_long_step(self):
    if self._stepping.is_set():
      self._end(f'the step did not end within {self.GRACE_SECONDS:g} s of {self.requested}: stopped at once')

  def _end(self, what):
    print(f'{what}; the last checkpoint is intact: run the same command to go on from it', file=sys.stderr,
          flush=True)
    os._exit(self.EXIT_CODE)


class Watchdog:
  """Within `with Watchdog(seconds, message) as watch:`, unless `watch.done()` is called within `seconds`, prints
  'error: <message>' and ends the process with exit code 2.

  For a wait that no timeout of TensorFlow's covers: a worker of --strategy multi_worker restarted alone, while
  the others have already stopped, waits in gRPC's retries for a peer that never comes, inside a Session.run
  that no Python exception can interrupt; ending the process is the only way out. Nothing is lost: the watch
  ends before the first step, so there is nothing to save yet, and the kernel releases the checkpoint lock.

  Args:
    seconds: how long to wait, or None for no watch at all.
    message: the sentence to print.
  """

  def __init__(self, seconds, message):
    self.message = message
    self._timer = None if seconds is None else threading.Timer(seconds, self._fire)
    if self._timer is not None:
      self._timer.daemon = True

  def __enter__(self):
    if self._timer is not None:
      self._timer.start()
    return self

  def __exit__(self, *exc_info):
    self.done()
    return False

  def done(self):
    if self._timer is not None:
      self._timer.cancel()

  def _fire(self):
    print(f'error: {self.message}', file=sys.stderr, flush=True)
    os._exit(2)  # (from this thread: the main one is stuck in a step that will not end)


def check_finite(stats, step, last_good):
  """Raises Diverged when a loss of `step` is NaN or Inf; `last_good` is the newest checkpoint's path or None."""
  bad = [f'{name} {stats[name]}' for name in ('d_loss', 'g_loss', 'g_update_loss')
         if name in stats and not math.isfinite(stats[name])]
  if bad:
    raise Diverged(f'training diverged at step {step}: {", ".join(bad)}; nothing after it was saved. '
                   f'{resume_hint(last_good)}')


def resume_hint(last_good):
  if last_good is None:
    return 'No checkpoint was written yet: lower --learning_rate and start again'
  return (f'The last good checkpoint is {last_good}: lower --learning_rate, or pick an earlier step with '
          '--checkpoint, and run again to go on from it')


class DiscriminatorWinWatch:
  """Counts the steps in a row in which D's loss (without a gradient penalty) stays within `margin` of its least
  value, the loss's `floor`: D tells real from fake almost perfectly, and G learns little from it.

  For the classic losses that is D(x) > 0.99 and D(G(z)) < 0.01; for hinge, nearly every real score above 1 and
  every fake one below -1; for least squares, scores near their targets 1 and 0. A loss with no floor
  (Wasserstein) has no such point: the watch is off.
  """

  def __init__(self, floor, steps=D_WON_STEPS, margin=D_WON_MARGIN):
    self.floor, self.steps, self.margin = floor, steps, margin
    self.streak = 0

  def update(self, d_loss):
    """Returns a warning sentence on the step the streak reaches `steps` (and every `steps` after), else None."""
    if self.floor is None:
      return None
    self.streak = self.streak + 1 if d_loss < self.floor + self.margin else 0
    if self.streak and self.streak % self.steps == 0:
      return (f'D has won for {self.streak} steps (its loss below {self.floor + self.margin:g}): G is not '
              'learning much; consider rolling back to an earlier checkpoint with --checkpoint STEP, a lower '
              '--learning_rate, more --g_steps or another --loss')
    return None
