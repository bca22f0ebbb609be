"""Guards of a training run: stop cleanly on a signal, stop before saving a NaN, warn when D has won, and stop a
worker that waits for others who will not come.

$ python main.py --train --dataset digits    # Ctrl-C: finishes the step, saves, exits 0; Ctrl-C again: aborts
"""

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

  The loop finishes its step, checkpoints and ends. After the first signal Ctrl-C gets its default action back,
  so a second Ctrl-C ends the process at once, even inside a long step (the last checkpoint is on disk).
  """

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self):
    self.requested = None  # the name of the signal that asked to stop
    self._previous = {}

  def __enter__(self):
    for signum in self.SIGNALS:
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    return False

  def _handle(self, signum, frame):
    del frame
    self.requested = signal.Signals(signum).name
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    print(f'{self.requested}: finishing this step and saving a checkpoint; press Ctrl-C again to stop at once '
          '(losing the steps since the last checkpoint)', file=sys.stderr, flush=True)


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
