"""common/progress.py: the progress line of training, with its rate and time left."""

import logging as std_logging

from common import progress
import utils

P = utils.GRID_PAD


def test_progress_logs_rate_and_eta_when_not_a_terminal(caplog):
  caplog.set_level(std_logging.INFO)
  meter = progress.Progress(start=0, total=10, steps_per_epoch=4, batch_size=8, log_every=5)
  stats = {'d_loss': 1.25, 'g_loss': 0.5, 'D(x)': 0.75, 'D(G(z))': 0.25}
  for step in range(1, 11):
    meter.update(step, stats)
  meter.close()
  lines = [r.getMessage() for r in caplog.records if 'img/s' in r.getMessage()]
  assert len(lines) == 2
  assert lines[0].startswith('epoch 1 step 5/10  d_loss 1.250  g_loss 0.500  D(x) 0.750  D(G(z)) 0.250')
  assert 'ETA' in lines[1] and lines[1].startswith('epoch 2 step 10/10')
