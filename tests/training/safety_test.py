"""safety.py: signals asking to stop, the NaN check, the D-has-won watch, and the start-up watchdog."""

import math
import os
import signal
import threading
import time

import pytest

from errors import Diverged
from training import safety


def _wait_for(condition, seconds=5.0):
  deadline = time.monotonic() + seconds
  while not condition() and time.monotonic() < deadline:
    time.sleep(0.01)
  return condition()


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_a_signal_asks_to_stop_instead_of_killing(signum, capsys, monkeypatch):
  exits = []
  monkeypatch.setattr(safety.os, '_exit', exits.append)  # (not this process)
  before = {s: signal.getsignal(s) for s in safety.GracefulStop.SIGNALS}
  with safety.GracefulStop() as stop:
    assert stop.requested is None
    os.kill(os.getpid(), signum)
    assert _wait_for(lambda: stop.requested == signal.Signals(signum).name)
  assert {s: signal.getsignal(s) for s in safety.GracefulStop.SIGNALS} == before
  assert 'press Ctrl-C again to stop at once' in capsys.readouterr().err
  assert exits == []  # no step was running: nothing is cut short


def test_a_step_that_outlasts_the_grace_after_a_signal_is_cut_short(capsys, monkeypatch):
  exits = []
  monkeypatch.setattr(safety.os, '_exit', exits.append)
  monkeypatch.setattr(safety.GracefulStop, 'GRACE_SECONDS', 0.2)
  with safety.GracefulStop() as stop:
    with stop.step():  # a step that does not end by itself within the grace
      os.kill(os.getpid(), signal.SIGINT)
      assert _wait_for(lambda: exits)
  assert exits == [130]
  assert 'the step did not end within 0.2 s of SIGINT: stopped at once; the last checkpoint is intact' in \
      capsys.readouterr().err


def test_a_second_signal_ends_the_process_at_once_even_inside_a_step(capsys, monkeypatch):
  exits = []
  monkeypatch.setattr(safety.os, '_exit', exits.append)
  with safety.GracefulStop() as stop, stop.step():
    os.kill(os.getpid(), signal.SIGINT)
    assert _wait_for(lambda: stop.requested == 'SIGINT')
    os.kill(os.getpid(), signal.SIGTERM)
    assert _wait_for(lambda: exits)
  assert exits == [130] and 'SIGTERM again: stopped at once' in capsys.readouterr().err


def _stats(d_loss=0.7, g_loss=1.2, d_real=0.5, d_fake=0.5):
  return {'d_loss': d_loss, 'g_loss': g_loss, 'D(x)': d_real, 'D(G(z))': d_fake}


def test_check_finite_passes_finite_losses():
  safety.check_finite(_stats(), 3, None)


@pytest.mark.parametrize('bad', [{'d_loss': math.nan}, {'g_loss': math.inf}, {'d_loss': -math.inf}])
def test_check_finite_names_the_step_the_loss_and_the_last_good_checkpoint(bad):
  with pytest.raises(Diverged, match=r'diverged at step 12: .*(nan|inf).* last good checkpoint is ckpt/x/DCGAN.model-'
                                     r'10'):
    safety.check_finite(_stats(**bad), 12, 'ckpt/x/DCGAN.model-10')
  with pytest.raises(Diverged, match='No checkpoint was written yet'):
    safety.check_finite(_stats(**bad), 1, None)
  assert Diverged.exit_code == 3


def test_the_watch_warns_when_d_has_won_for_many_steps_in_a_row():
  watch = safety.DiscriminatorWinWatch(0.0, steps=5)
  warnings = [watch.update(0.01) for _ in range(4)]
  assert warnings == [None] * 4
  warnings = [watch.update(0.5)] + [watch.update(0.01) for _ in range(5)]  # the streak starts again
  assert warnings[:5] == [None] * 5 and 'D has won for 5 steps (its loss below 0.02)' in warnings[5]
  assert [watch.update(0.01) for _ in range(5)][-1].startswith('D has won for 10 steps')


def test_the_watch_ignores_a_close_game_and_losses_without_a_floor():
  watch = safety.DiscriminatorWinWatch(0.0, steps=3)
  assert all(watch.update(0.1) is None for _ in range(10))  # D(x) 0.95, D(G(z)) 0.05 give about 0.1
  wasserstein = safety.DiscriminatorWinWatch(None, steps=3)
  assert all(wasserstein.update(-100.0) is None for _ in range(10))


def test_the_watchdog_ends_the_process_with_one_line_unless_done_in_time(capsys, monkeypatch):
  exits = []
  fired = threading.Event()
  monkeypatch.setattr(safety.os, '_exit', lambda code: (exits.append(code), fired.set()))  # (not this process)
  with safety.Watchdog(0.05, 'the others never came'):
    assert fired.wait(5)
  assert exits == [2]
  assert capsys.readouterr().err == 'error: the others never came\n'

  with safety.Watchdog(0.2, 'too late') as watch:
    watch.done()
  time.sleep(0.4)
  with safety.Watchdog(None, 'no watch'):
    time.sleep(0.1)
  assert exits == [2]  # neither fired
