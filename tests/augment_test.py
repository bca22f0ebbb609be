"""augment.py (DiffAugment) and the other tools for small datasets: mirror, spectral norm, R1, two learning rates,
the average's start; each in the graph, and a resumed run with them bit-identical to one that never stopped."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from app import completion
from config import augment_policies, Config, save_config, shape_differences
import datasets
from gan import augment
from gan import losses
from gan import stages
import ops
from training import trainer
from conftest import assert_same_values, dir_flags, main_in_process, write_images

tf1 = tf.compat.v1


def _augmented(images, policies, seed):
  with tf.Graph().as_default():
    out = augment.apply(tf.constant(images), policies, tf.constant(seed, tf.int64))
    with tf1.Session() as sess:
      return sess.run(out)


@pytest.fixture(scope='module')
def batch():
  """Eight copies of one 16x12 RGB image in [-1, 1]: any difference between them is the augmentation's."""
  image = np.random.default_rng(0).uniform(-1, 1, (1, 16, 12, 3)).astype(np.float32)
  return np.repeat(image, 8, axis=0)


def test_the_policies_parse_and_a_wrong_one_is_named():
  assert augment.parse('color,translation,cutout') == ('color', 'translation', 'cutout')
  assert augment.parse('none') == augment.parse('') == ()
  with pytest.raises(ValueError, match="--augment 'flip' is not one of color, translation, cutout or none"):
    augment.parse('color,flip')


def test_nothing_to_apply_is_the_identity(batch):
  assert augment.apply(batch, (), None) is batch


def test_translation_moves_each_image_by_its_own_whole_shift_with_zeros_coming_in(batch):
  out = _augmented(batch, ('translation',), [1, 2])
  assert out.shape == batch.shape
  shifts = []
  for image in out:
    found = None
    for dy in range(-2, 3):  # 16 * 1/8 = 2 rows, 12 * 1/8 = 1.5 -> 2 columns
      for dx in range(-2, 3):
        expected = np.zeros_like(batch[0])
        src = batch[0][max(0, -dy):16 - max(0, dy), max(0, -dx):12 - max(0, dx)]
        expected[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
        if np.array_equal(image, expected):
          found = (dy, dx)
    assert found is not None
    shifts.append(found)
  assert len(set(shifts)) > 1  # drawn per image


def test_cutout_zeroes_one_square_of_half_the_side_at_most_and_keeps_the_rest(batch):
  out = _augmented(batch, ('cutout',), [3, 4])
  zeroed = (out == 0).all(axis=3)
  assert np.array_equal(out[~zeroed], batch[~zeroed])  # untouched elsewhere
  counts = zeroed.sum(axis=(1, 2))
  assert counts.max() <= 8 * 6 and counts.min() > 0 and len(set(counts.tolist())) > 1  # some squares hang over


def test_color_is_an_affine_change_of_each_image_of_its_own(batch):
  out = _augmented(batch, ('color',), [5, 6])
  assert np.all(np.isfinite(out)) and np.abs(out).max() < 8
  assert len({round(float(image.mean()), 4) for image in out}) == 8  # each its own brightness and contrast
  grey = batch[0].mean(axis=2).ravel()
  for image in out:  # brightness, saturation, contrast: a * x + b * grey(x) + c, the same a, b, c per image
    x, y = batch[0][..., 0].ravel(), image[..., 0].ravel()
    design = np.stack([x, grey, np.ones_like(x)], axis=1)
    coefficients = np.linalg.lstsq(design, y, rcond=None)[0]
    np.testing.assert_allclose(design @ coefficients, y, atol=1e-4)
    other = np.stack([batch[0][..., 2].ravel(), grey, np.ones_like(x)], axis=1)
    np.testing.assert_allclose(other @ coefficients, image[..., 2].ravel(), atol=1e-4)


def test_the_same_seed_gives_the_same_augmentation_and_another_seed_another(batch):
  policies = ('color', 'translation', 'cutout')
  first = _augmented(batch, policies, [7, 8])
  np.testing.assert_array_equal(_augmented(batch, policies, [7, 8]), first)
  assert not np.allclose(_augmented(batch, policies, [7, 9]), first)


def _tiny_run(tmp_path, **fields):
  write_images(str(tmp_path / 'data' / 'rgb'), 16, size=(16, 16))
  cfg = Config(dataset='rgb', data_dir=str(tmp_path / 'data'), input_fname_pattern='*.png',
               checkpoint_dir=str(tmp_path / 'ckpt'), sample_dir=str(tmp_path / 'samples'),
               log_dir=str(tmp_path / 'logs'), output_height=16, output_width=16, gf_dim=4, df_dim=4,
               z_dim=8, batch_size=8, sample_num=4, ckpt_freq=100, precision='float32',
               **{'epoch': 2, **fields})
  cfg, dataset = completion.prepare(cfg)
  return trainer.Trainer(cfg, dataset)


def test_g_learns_through_the_augmented_d():
  cfg = Config(output_height=16, output_width=16, c_dim=3, y_dim=0, z_dim=8, gf_dim=4, df_dim=4,
               augment='color,translation,cutout')
  with tf.Graph().as_default():
    inputs = stages.GANInputs(images=tf1.placeholder(tf.float32, [4, 16, 16, 3]), labels=None,
                              z=tf1.placeholder(tf.float32, [4, 8]), z_labels=None, z_label_ids=None, mix=None,
                              augment_seed=tf1.placeholder(tf.int64, [2]))
    gan = stages.gan_model(inputs, cfg)
    _, g_loss = losses.LOSSES['non_saturating'](gan.real_logits, gan.fake_logits)
    g_vars = stages.scope_collection(tf1.GraphKeys.TRAINABLE_VARIABLES, 'generator')
    gradients = tf.gradients(g_loss, g_vars)
    assert all(g is not None for g in gradients)
    assert any(op.name.startswith('augment/') for op in tf1.get_default_graph().get_operations())
    rng = np.random.default_rng(0)
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      feed = {inputs.images: rng.uniform(-1, 1, (4, 16, 16, 3)), inputs.z: rng.uniform(-1, 1, (4, 8)),
              inputs.augment_seed: [1, 2]}
      values = sess.run(gradients, feed)
      seen = sess.run(gan.real_seen, feed)
  assert all(np.abs(v).sum() > 0 for v in values)
  assert not np.allclose(seen, feed[inputs.images])  # D saw the real images augmented


def test_colour_data_is_augmented_by_default_and_augment_none_leaves_nothing_of_it_in_the_graph(tmp_path):
  augmenting = lambda **fields: any('augment' in op.name
                                    for op in _tiny_run(tmp_path, **fields).dcgan.graph.get_operations())
  assert augmenting()
  assert not augmenting(augment='none')


def test_mirror_flips_half_the_images_each_epoch_by_the_seed(tmp_path):
  order = datasets.epoch_order(3, 1, 100, mirror=True)
  assert sorted(order % 100) == list(range(100))  # every image once
  assert 30 < np.count_nonzero(order >= 100) < 70
  np.testing.assert_array_equal(order, datasets.epoch_order(3, 1, 100, mirror=True))
  assert not np.array_equal(order >= 100, datasets.epoch_order(3, 2, 100, mirror=True) >= 100)
  np.testing.assert_array_equal(order % 100, datasets.epoch_order(3, 1, 100))  # the same order as without
  run = _tiny_run(tmp_path, mirror=True)
  pipeline, count = run.dcgan.pipeline, len(run.dataset)
  with tf1.Session(graph=run.dcgan.graph) as sess:
    sess.run(pipeline.initializer, pipeline.feed(np.array([0, 1 + count, 2, 3 + count, 4, 5, 6, 7 + count]), 0))
    images = sess.run(pipeline.images)
  plain = datasets.read_images(run.dataset, run.config, np.arange(8))
  for i in range(8):
    expected = plain[i][:, ::-1] if i in (1, 3, 7) else plain[i]
    np.testing.assert_array_equal(images[i], expected)


def test_the_defaults_follow_the_data_and_a_flag_given_wins(tmp_path):
  grey = datasets.PixelSource('digits', np.zeros((4, 8, 8, 1), np.uint8), np.arange(4, dtype=np.int32))
  colour = datasets.PixelSource('faces', np.zeros((4, 8, 8, 3), np.uint8))
  config = lambda dataset, **fields: Config(dataset=dataset, checkpoint_dir=str(tmp_path), **fields)
  digits = completion.complete(config('digits'), grey)
  assert (digits.augment, digits.mirror, digits.upsample) == ('none', False, 'deconv')
  faces = completion.complete(config('faces'), colour)
  assert (augment_policies(faces.augment), faces.mirror, faces.upsample) == (('translation', 'cutout'),
                                                                             False, 'resize')
  given = completion.complete(config('faces', augment='none', mirror=True, upsample='deconv'), colour)
  assert (given.augment, given.mirror, given.upsample) == ('none', True, 'deconv')
  assert completion.complete(config('digits', augment='cutout'), grey).augment == 'cutout'


def test_a_resumed_run_keeps_the_upsampling_it_was_trained_with(tmp_path):
  """A colour run written with deconv G layers (before resize was the default) resumes with them; a flag given wins
  (and then restore.restore names the mismatch)."""
  colour = datasets.PixelSource('faces', np.zeros((4, 8, 8, 3), np.uint8))
  cfg = Config(dataset='faces', checkpoint_dir=str(tmp_path), output_height=8, output_width=8)
  trained = completion.complete(dataclasses.replace(cfg, upsample='deconv'), colour)
  os.makedirs(trained.checkpoint_path)
  save_config(trained, trained.checkpoint_path)
  assert completion.complete(cfg, colour).upsample == 'resize'  # a config but no checkpoint yet: a new run
  open(os.path.join(trained.checkpoint_path, 'DCGAN.model-4.index'), 'w').close()
  assert completion.complete(cfg, colour).upsample == 'deconv'
  assert completion.complete(dataclasses.replace(cfg, upsample='resize'), colour).upsample == 'resize'


def test_spectral_norm_brings_the_largest_singular_value_to_one_and_keeps_u_in_the_checkpoint():
  rng = np.random.default_rng(0)
  weights = rng.normal(size=(5, 5, 6, 10)).astype(np.float32)
  with tf.Graph().as_default():
    # u starts at random: with these weights' two largest singular values in a ratio of 0.91, 30 iterations reach
    # 1e-3 from 39 of 40 starts (measured over graph seeds 0-39), so the start is seeded
    tf1.set_random_seed(0)
    with tf1.variable_scope('discriminator/h1_conv'):
      w = tf1.get_variable('w', initializer=weights)
      normalized = ops.spectrally_normalized(w)
    updates = ops.power_iteration_updates(tf1.global_variables())
    assert [u.op.name for u in tf1.global_variables() if not u.trainable] == ['discriminator/h1_conv/u']
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      for _ in range(30):
        sess.run(updates)
      result = sess.run(normalized)
  largest = np.linalg.svd(weights.reshape(-1, 10), compute_uv=False)[0]
  assert np.linalg.svd(result.reshape(-1, 10), compute_uv=False)[0] == pytest.approx(1.0, abs=1e-3)
  np.testing.assert_allclose(result, weights / largest, rtol=1e-3)


def test_one_power_iteration_per_d_update_and_none_in_g_s(tmp_path):
  run = _tiny_run(tmp_path, spectral_norm=True, d_batch_norm=False)
  dcgan = run.dcgan
  vectors = [v for v in dcgan.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES) if v.op.name.endswith('/u')]
  assert sorted(v.op.name for v in vectors) == [f'discriminator/{layer}/u' for layer in
                                                ('h0_conv', 'h1_conv', 'h2_conv', 'h3_conv', 'h4_lin')]
  assert not [v for v in dcgan.checkpoint_names() if v.startswith('discriminator/bn')]  # no batch norm in D
  assert set(v.op.name for v in vectors) <= set(dcgan.checkpoint_names())
  with run.session() as sess:
    sess.run(dcgan.init)
    run.start_epoch(sess, 0, 0)
    before = sess.run(vectors)
    sess.run(dcgan.train_ops.g_train, dcgan.step_feed(0))
    after_g = sess.run(vectors)
    sess.run(dcgan.train_ops.d_train, dcgan.step_feed(0, 0))
    after_d = sess.run(vectors)
  assert all(np.array_equal(a, b) for a, b in zip(before, after_g))
  assert all(not np.allclose(a, b) for a, b in zip(before, after_d))


def test_r1_of_a_linear_d_is_the_squared_norm_of_its_weights():
  rng = np.random.default_rng(1)
  weights = rng.normal(size=(1, 4, 3, 2)).astype(np.float32)
  with tf.Graph().as_default():
    images = tf.constant(rng.normal(size=(5, 4, 3, 2)).astype(np.float32))
    logits = tf.reduce_sum(images * weights, axis=[1, 2, 3])[:, None] + 0.3
    with tf1.Session() as sess:
      value = sess.run(losses.r1_penalty(images, logits))
  assert value == pytest.approx(np.sum(weights ** 2), rel=1e-5)


def _adam_applies(graph, scope):
  """The Adam updates under the name scope `scope`."""
  return [op for op in graph.get_operations() if op.type in ('ResourceApplyAdam', 'ApplyAdam') and scope in op.name]


def _step(run, sess, step):
  """One training step, starting an epoch where one begins; its numbers."""
  if step % run.steps_per_epoch == 0:
    run.start_epoch(sess, step // run.steps_per_epoch, 0)
  return run.train_step(sess, step)


def test_each_optimizer_has_its_learning_rate_falling_over_the_last_epochs_and_lazy_r1_runs_every_so_many_steps(
    tmp_path):
  run = _tiny_run(tmp_path, d_learning_rate=4e-4, g_learning_rate=1e-4, beta2=0.99, r1=10.0, r1_every=3, epoch=4,
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
      if 'r1' in _step(run, sess, step):
        lazy.append(step)
  scale = [1, 1, 1, 1, 1, 0.75, 0.5, 0.25]  # (8 - step) / 4, at most 1
  for step, (rate, expected) in enumerate(zip(rates, scale)):
    assert rate == {'d_adam': [pytest.approx(4e-4 * expected, rel=1e-6)],
                    'g_adam': [pytest.approx(1e-4 * expected, rel=1e-6)]}, step
  assert lazy == [0, 3, 6]


def test_the_average_follows_g_until_ema_start(tmp_path):
  run = _tiny_run(tmp_path, ema=0.9, ema_start=3)
  pairs = run.dcgan.averages()
  with run.session() as sess:
    sess.run(run.dcgan.init)
    for step in range(4):
      _step(run, sess, step)
      weights, averages = zip(*sess.run(pairs))
      same = all(np.array_equal(w, a) for w, a in zip(weights, averages))
      assert same == (step < 2), step  # the average starts averaging at step 3 (after its third G update)


@pytest.mark.parametrize('rampup, decay_at', [(None, lambda t: (1 + t) / (10 + t)), (0.5, lambda t: t / (t + 2))])
def test_the_average_decays_by_its_ramp_up(tmp_path, rampup, decay_at):
  run = _tiny_run(tmp_path, ema=0.99, ema_rampup=rampup, g_steps=1)
  pairs = run.dcgan.averages()
  with run.session() as sess:
    sess.run(run.dcgan.init)
    before = [a for _, a in sess.run(pairs)]
    for step in range(4):
      _step(run, sess, step)
      weights, averages = zip(*sess.run(pairs))
      w, a, b = (np.concatenate([x.ravel() for x in xs]).astype(np.float64) for xs in (weights, averages, before))
      moved = np.abs(b - w) > 1e-3
      decay = (a[moved] - w[moved]) / (b[moved] - w[moved])  # a = decay * b + (1 - decay) * w
      np.testing.assert_allclose(decay, decay_at(step + 1), atol=1e-3, err_msg=f'step {step}')
      before = averages


def test_a_resumed_run_with_every_tool_on_is_bit_identical(tmp_path):
  write_images(str(tmp_path / 'data' / 'rgb'), 16, size=(16, 16))
  run = ['--train', '--dataset', 'rgb', '--input_fname_pattern', '*.png', '--output_height', '16', '--batch_size',
         '8', '--gf_dim', '4', '--df_dim', '4', '--deterministic', '--ckpt_freq', '100', '--augment',
         'color,translation,cutout', '--mirror', '--spectral_norm', '--r1', '1', '--r1_every', '2', '--ema_start', '2',
         '--upsample', 'resize']
  whole, halves = tmp_path / 'whole', tmp_path / 'halves'
  assert main_in_process(*run, '--epoch', '4', *dir_flags(whole, tmp_path / 'data')) == (0, None)
  assert main_in_process(*run, '--epoch', '2', *dir_flags(halves, tmp_path / 'data')) == (0, None)
  assert main_in_process(*run, '--epoch', '4', *dir_flags(halves, tmp_path / 'data')) == (0, None)
  key = 'rgb_16_16'
  assert_same_values(whole / 'ckpt' / key / 'DCGAN.model-8', halves / 'ckpt' / key / 'DCGAN.model-8')


def test_the_tools_train_on_two_replicas_at_the_cpus_precision(tmp_path):
  """Each replica augments its share with draws of its own, and the power iterations run once per D update outside
  the replicas: the tools work under a strategy, at --precision auto (bfloat16 where the CPU has bfloat16 units)."""
  write_images(str(tmp_path / 'data' / 'rgb'), 16, size=(16, 16))
  run = ['--train', '--dataset', 'rgb', '--input_fname_pattern', '*.png', '--output_height', '16', '--batch_size',
         '8', '--gf_dim', '4', '--df_dim', '4', '--augment', 'color,translation,cutout', '--mirror',
         '--spectral_norm', '--nod_batch_norm', '--r1', '1', '--r1_every', '2', *dir_flags(tmp_path, tmp_path / 'data')]
  assert main_in_process(*run, '--epoch', '2', '--ckpt_freq', '2', '--devices', '/cpu:0,/cpu:1', '--precision',
                         'auto') == (0, None)
  key = tmp_path / 'ckpt' / 'rgb_16_16'
  half, whole = (tf.train.load_checkpoint(str(key / f'DCGAN.model-{step}')) for step in (2, 4))
  stored = dict(tf.train.list_variables(str(key / 'DCGAN.model-4')))
  assert sorted(name for name in stored if name.endswith('/u')) == [
      f'discriminator/{layer}/u' for layer in ('h0_conv', 'h1_conv', 'h2_conv', 'h3_conv', 'h4_lin')]
  for name in stored:
    assert np.all(np.isfinite(whole.get_tensor(name))), name
  # the power iterations went on (the last layer's u has one entry: always 1)
  for name in ('h0_conv', 'h1_conv', 'h2_conv', 'h3_conv'):
    assert not np.allclose(half.get_tensor(f'discriminator/{name}/u'), whole.get_tensor(f'discriminator/{name}/u'))


def test_the_new_flags_are_checked(tmp_path):
  for args, fragment in ((['--augment', 'zoom'], "flag --augment=zoom: 'zoom' is not one of"),
                         (['--r1', '-1'], 'flag --r1=-1: -1.0 is not a non-negative number'),
                         (['--r1_every', '0'], 'flag --r1_every=0: 0 is not a positive integer'),
                         (['--d_learning_rate', '0'], 'flag --d_learning_rate=0.0: must be above 0'),
                         (['--beta2', '1'], 'flag --beta2=1.0: must be in [0, 1)'),
                         (['--ema_start', '-5'], '--ema_start'),
                         (['--ema_rampup', '0'], 'flag --ema_rampup=0.0: must be above 0'),
                         (['--epoch', '3', '--lr_decay_epochs', '4'], '--lr_decay_epochs must be 0 to --epoch (3)'),
                         (['--upsample', 'bilinear'], 'value should be one of <deconv|resize>')):
    result = main_in_process('--train', *args, *dir_flags(tmp_path, tmp_path / 'data'))
    assert result.returncode == 2 and fragment in result.error, (args, result)


def test_spectral_norm_and_d_batch_norm_are_shape_fields(tmp_path):
  saved = Config(y_dim=0, c_dim=3)
  current = dataclasses.replace(saved, spectral_norm=True, d_batch_norm=False)
  assert shape_differences(saved, current) == [('spectral_norm', False, True), ('d_batch_norm', True,
                                                                                False)]
