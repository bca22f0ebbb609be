"""gan/stages.py: each optimizer's learning rate falls over the last epochs with --lr_decay_epochs, and lazy R1
runs every --r1_every steps."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import one_step, tiny_rgb_trainer

tf1 = tf.compat.v1


def _adam_applies(graph, scope):
  """The Adam updates under the name scope `scope`."""
  return [op for op in graph.get_operations() if op.type in ('ResourceApplyAdam', 'ApplyAdam') and scope in op.name]


def test_each_optimizer_has_its_learning_rate_falling_over_the_last_epochs_and_lazy_r1_runs_every_so_many_steps(
    tmp_path):
  run = tiny_rgb_trainer(tmp_path, d_learning_rate=4e-4, g_learning_rate=1e-4, beta2=0.99, r1=10.0, r1_every=3, epoch=4,
                         lr_decay_epochs=2)
  assert run.steps_per_epoch == 2  # 16 images, 8 a batch: 8 steps, the rates falling over the last 4
  applies = {scope: _adam_applies(run.dcgan.graph, scope) for scope in ('d_adam', 'g_adam')}
  rates_of = {scope: [op.inputs[5] for op in ops_] for scope, ops_ in applies.items()}
  assert {float(tf.get_static_value(op.inputs[7])) for ops_ in applies.values() for op in ops_} == {np.float32(0.99)}
  rates, lazy = [], []
  with run.session() as sess:
    sess.run(run.dcgan.init)
    for step in range(8):
      assert sess.run(run.dcgan.global_step) == step
      rates.append({scope: sorted(set(map(float, values))) for scope, values in sess.run(rates_of).items()})
      if 'r1' in one_step(run, sess, step):
        lazy.append(step)
  scale = [1, 1, 1, 1, 1, 0.75, 0.5, 0.25]  # (8 - step) / 4, at most 1
  for step, (rate, expected) in enumerate(zip(rates, scale)):
    assert rate == {'d_adam': [pytest.approx(4e-4 * expected, rel=1e-6)],
                    'g_adam': [pytest.approx(1e-4 * expected, rel=1e-6)]}, step
  assert lazy == [0, 3, 6]
