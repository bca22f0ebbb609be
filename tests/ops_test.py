"""ops.py: shapes, variable names, sharing, batch-norm modes, spectral norm, the CPU's weight-gradient rule."""

import gc
import weakref

import numpy as np
import pytest
import tensorflow as tf

import hardware
import ops

tf1 = tf.compat.v1


def _run(fetches, feed=None):
  with tf1.Session() as sess:
    sess.run(tf1.global_variables_initializer())
    return sess.run(fetches, feed)


def _names():
  return sorted(v.name for v in tf1.global_variables())


def test_conv2d_shape_and_variables():
  with tf.Graph().as_default():
    net = ops.conv2d(tf.zeros([3, 27, 28, 2]), 4, name='c')
    assert net.shape.as_list() == [3, 14, 14, 4]
    assert _names() == ['c/b:0', 'c/w:0']
    assert tf1.global_variables()[0].shape.as_list() == [5, 5, 2, 4]


def test_deconv2d_any_batch_and_odd_sizes():
  with tf.Graph().as_default():
    x = tf1.placeholder(tf.float32, [None, 4, 4, 3])
    net = ops.deconv2d(x, (7, 8), 2, name='d')
    assert net.shape.as_list() == [None, 7, 8, 2]
    for batch in (1, 5):
      out = _run(net, {x: np.ones([batch, 4, 4, 3], np.float32)})
      assert out.shape == (batch, 7, 8, 2)


def test_deconv2d_rejects_a_size_the_input_cannot_reach():
  with tf.Graph().as_default():
    with pytest.raises(ValueError, match=r'outer/d: input 7x7 cannot be upsampled by 2 to 16x16'):
      with tf1.variable_scope('outer'):
        ops.deconv2d(tf.zeros([1, 7, 7, 3]), (16, 16), 2, name='d')


@pytest.mark.parametrize('input_shape, output_size, device', [
    ([2, 4, 3, 5], (7, 6), '/cpu:0'),  # odd: the last row dropped; 4x3 takes its weight gradient by matmul on a CPU
    ([2, 6, 5, 5], (12, 10), ''),
])
def test_resize_conv2d_is_nearest_upsampling_then_a_3x3_convolution(input_shape, output_size, device):
  rng = np.random.default_rng(0)
  x_value = rng.normal(size=input_shape).astype(np.float32)
  weights = rng.normal(size=[2, *output_size, 4]).astype(np.float32)  # a gradient that differs at every pixel
  with tf.Graph().as_default(), tf.device(device):
    x = tf.constant(x_value)
    net = ops.resize_conv2d(x, output_size, 4, name='r')
    w, b = tf1.global_variables('r/w')[0], tf1.global_variables('r/b')[0]
    upsampled = tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)  # each pixel a 2x2 block
    reference = tf.nn.bias_add(tf.nn.conv2d(upsampled, w, 1, 'SAME'), b)[:, :output_size[0], :output_size[1]]
    grads = lambda out: [tf.convert_to_tensor(g) for g in tf.gradients(tf.reduce_sum(out * weights), [x, w])]
    (fused, *fused_grads), (plain, *plain_grads) = _run([[net, *grads(net)], [reference, *grads(reference)]])
  np.testing.assert_allclose(fused, plain, rtol=1e-5, atol=1e-5)
  for got, want in zip(fused_grads, plain_grads):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_resize_conv2d_shapes_variables_and_a_size_it_cannot_reach():
  with tf.Graph().as_default():
    x = tf1.placeholder(tf.float32, [None, 4, 4, 3])
    net = ops.resize_conv2d(x, (7, 8), 2, name='r')
    assert net.shape.as_list() == [None, 7, 8, 2]
    assert _names() == ['r/b:0', 'r/w:0']
    assert tf1.global_variables('r/w')[0].shape.as_list() == [3, 3, 3, 2]
    assert _run(net, {x: np.ones([5, 4, 4, 3], np.float32)}).shape == (5, 7, 8, 2)
    with pytest.raises(ValueError, match=r'outer/r: input 4x4 cannot be upsampled by 2 to 16x16'):
      with tf1.variable_scope('outer'):
        ops.resize_conv2d(x, (16, 16), 2, name='r')


def test_a_flat_input_comes_out_flat_from_resize_conv2d_and_checkered_from_deconv2d():
  """The checkerboard of Odena et al. 2016: a stride-2 transposed convolution adds a different sum of weights to
  even and odd pixels, so a flat map comes out with a 2x2 pattern; a resize then convolution stays flat."""
  with tf.Graph().as_default():
    tf1.set_random_seed(0)
    flat = tf.ones([1, 8, 8, 4])
    resized, deconvolved = _run([ops.resize_conv2d(flat, (16, 16), 1, name='r'),
                                 ops.deconv2d(flat, (16, 16), 1, name='d')])
  inside = lambda image: image[0, 2:-2, 2:-2, 0]  # away from the zero padding at the edges
  assert np.ptp(inside(resized)) < 1e-6
  assert np.ptp(inside(deconvolved)) > 1e-3
  np.testing.assert_allclose(inside(deconvolved)[::2, ::2], inside(deconvolved)[0, 0], rtol=1e-5)


def test_linear_shape_and_rank_error_names_scope():
  with tf.Graph().as_default():
    assert ops.linear(tf.zeros([2, 6]), 3, name='fc').shape.as_list() == [2, 3]
    with pytest.raises(ValueError, match='fc2: expected a rank-2 input'):
      ops.linear(tf.zeros([2, 3, 3, 1]), 3, name='fc2')


def test_sharing_gives_the_same_variables_and_outputs():
  with tf.Graph().as_default():
    x = tf.random.stateless_normal([2, 8, 8, 3], seed=[1, 2])
    with tf1.variable_scope('net'):
      first = ops.conv2d(x, 4, name='c')
    count = len(tf1.global_variables())
    with tf1.variable_scope('net', reuse=True):
      second = ops.conv2d(x, 4, name='c')
    assert len(tf1.global_variables()) == count == 2
    a, b = _run([first, second])
    np.testing.assert_array_equal(a, b)


def test_sharing_without_reuse_is_an_error():
  with tf.Graph().as_default():
    ops.linear(tf.zeros([2, 3]), 4, name='fc')
    with pytest.raises(ValueError, match='already exists'):
      ops.linear(tf.zeros([2, 3]), 4, name='fc')


def test_batch_norm_training_normalizes_and_moves_the_averages():
  with tf.Graph().as_default():
    data = np.random.default_rng(0).normal(3.0, 2.0, size=[16, 4, 4, 5]).astype(np.float32)
    net = ops.batch_norm(tf.constant(data), is_training=True, name='bn')
    updates = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
    assert len(updates) == 2
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      out = sess.run(net)
      sess.run(updates)
      mean, variance = sess.run(tf1.global_variables('bn/moving_'))
  np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-4)
  np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1, atol=1e-2)
  np.testing.assert_allclose(mean, 0.1 * data.mean(axis=(0, 1, 2)), rtol=1e-4)
  assert np.all(variance > 1.0)  # 0.9 * 1 + 0.1 * about 4


def _op(x):
  return x if isinstance(x, tf.Operation) else x.op


def _ancestors(op):
  """Every op that must run before `op`, through data and control edges."""
  seen, stack = set(), [op]
  while stack:
    current = stack.pop()
    for parent in [t.op for t in current.inputs] + list(current.control_inputs):
      if parent not in seen:
        seen.add(parent)
        stack.append(parent)
  return seen


def test_batch_norm_called_twice_moves_its_averages_in_call_order():
  """D runs on real and then on fake images in one step: the two moves of an average must not race."""
  with tf.Graph().as_default():
    rng = np.random.default_rng(0)
    real, fake = (rng.normal(m, 1.0, size=[8, 3]).astype(np.float32) for m in (5.0, -5.0))
    with tf1.variable_scope('d'):
      ops.batch_norm(tf.constant(real), is_training=True, name='bn')
    with tf1.variable_scope('d', reuse=True):
      ops.batch_norm(tf.constant(fake), is_training=True, name='bn')
    updates = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
    assert len(updates) == 4 and len(tf1.global_variables()) == 4
    first_call, second_call = updates[:2], updates[2:]  # each call adds [mean update, variance update]
    for first, second in zip(first_call, second_call):  # the second move runs after the first, always
      assert _op(first) in _ancestors(_op(second)) and _op(second) not in _ancestors(_op(first))
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      for _ in range(20):  # a race would show as the other order's value in some run
        sess.run(tf1.variables_initializer(tf1.global_variables()))
        sess.run(updates)
        mean = sess.run(tf1.global_variables('d/bn/moving_mean')[0])
        in_order = 0.9 * (0.1 * real.mean(axis=0)) + 0.1 * fake.mean(axis=0)
        np.testing.assert_allclose(mean, in_order, rtol=1e-5)


def test_batch_norm_inference_uses_the_moving_averages_and_adds_no_updates():
  with tf.Graph().as_default():
    x = tf.constant([[1.0, 2.0], [3.0, 6.0]])
    net = ops.batch_norm(x, is_training=False, name='bn')
    assert net.shape.as_list() == [2, 2]
    assert not tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      sess.run([tf1.assign(tf1.global_variables('bn/moving_mean')[0], [1.0, 2.0]),
                tf1.assign(tf1.global_variables('bn/moving_variance')[0], [4.0, 16.0])])
      out = sess.run(net)
  np.testing.assert_allclose(out, [[0.0, 0.0], [1.0, 1.0]], atol=1e-3)


def test_class_conditional_batch_norm_scales_and_offsets_each_example_by_its_class():
  with tf.Graph().as_default():
    data = np.random.default_rng(0).normal(3.0, 2.0, size=[6, 2, 2, 4]).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    trained = ops.batch_norm(tf.constant(data), True, labels=tf.constant(labels), name='bn')
    with tf1.variable_scope(tf1.get_variable_scope(), reuse=True):
      inferred = ops.batch_norm(tf.constant(data), False, labels=tf.constant(labels), name='bn')
    gamma, beta = (tf1.global_variables(f'bn/{name}')[0] for name in ('gamma', 'beta'))
    assert gamma.shape.as_list() == beta.shape.as_list() == [3, 4]
    assert len(tf1.global_variables('bn/moving_')) == 2  # the statistics are shared by the classes
    scales, offsets = np.arange(1, 13, dtype=np.float32).reshape(3, 4), -np.arange(12, dtype=np.float32).reshape(3, 4)
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      sess.run([gamma.assign(scales), beta.assign(offsets)])
      out, inference = sess.run([trained, inferred])
  normalized = (data - data.mean(axis=(0, 1, 2))) / np.sqrt(data.var(axis=(0, 1, 2)) + 1e-5)
  classes = labels.argmax(axis=1)
  expected = normalized * scales[classes][:, None, None, :] + offsets[classes][:, None, None, :]
  np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-3)
  # inference: the moving averages (still 0 and 1) normalize, the class still scales and offsets
  expected = data / np.sqrt(1 + 1e-5) * scales[classes][:, None, None, :] + offsets[classes][:, None, None, :]
  np.testing.assert_allclose(inference, expected, rtol=1e-4, atol=1e-4)


def test_lrelu_and_its_gradient():
  with tf.Graph().as_default():
    x = tf.constant([-2.0, -1e-30, 3.0, 1e-30])
    y = ops.lrelu(x)
    dy = tf.constant([1.0, 2.0, 3.0, 4.0])
    value, grad = _run([y, tf.gradients(y, x, dy)[0]])
  np.testing.assert_allclose(value, [-0.4, -2e-31, 3.0, 1e-30], rtol=1e-6)
  np.testing.assert_allclose(grad, [0.2, 0.4, 3.0, 4.0], rtol=1e-6)  # dy times 1 where x > 0, else 0.2


def test_conv_cond_concat_appends_the_label_to_every_pixel():
  with tf.Graph().as_default():
    y = tf.constant([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    out = _run(ops.conv_cond_concat(tf.fill([2, 3, 4, 2], 7.0), y))
  assert out.shape == (2, 3, 4, 5)
  np.testing.assert_array_equal(out[..., :2], 7.0)
  np.testing.assert_array_equal(out[0, 2, 3, 2:], [0.0, 1.0, 0.0])
  np.testing.assert_array_equal(out[1, 0, 0, 2:], [1.0, 0.0, 0.0])


@pytest.mark.parametrize('layer, input_shape', [
    (lambda x: ops.conv2d(x, 6, name='layer'), [3, 8, 8, 5]),
    (lambda x: ops.conv2d(x, 6, name='layer'), [3, 7, 5, 5]),
    (lambda x: ops.deconv2d(x, (8, 8), 6, name='layer'), [3, 4, 4, 5]),
    (lambda x: ops.deconv2d(x, (7, 8), 6, name='layer'), [3, 4, 4, 5]),
])
def test_cpu_matmul_weight_gradient_equals_the_native_one(layer, input_shape):
  x_value = np.random.default_rng(0).normal(size=input_shape).astype(np.float32)
  results = {}
  for device in ('/cpu:0', ''):  # on a CPU small layers take their weight gradient by matmul; unplaced, never
    with tf.Graph().as_default(), tf.device(device):
      tf1.set_random_seed(1)
      x = tf.constant(x_value)
      net = layer(x)
      loss = tf.reduce_sum(net * tf.cos(net))  # a gradient that differs at every output pixel
      fetches = [net] + tf.gradients(loss, [x, tf1.global_variables('layer/w')[0]])
      patches = [op for op in tf1.get_default_graph().get_operations() if op.type == 'ExtractImagePatches']
      results[device] = _run(fetches), len(patches)
  (matmul, matmul_patches), (native, native_patches) = results['/cpu:0'], results['']
  assert (matmul_patches, native_patches) == (1, 0)
  for got, want in zip(matmul, native):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_a_graph_with_the_replaced_gradients_is_freed_when_dropped():
  """The layers' own gradients are registered once by name: a graph that uses them is not kept alive by them."""
  def build():
    graph = tf.Graph()
    with graph.as_default(), tf.device('/cpu:0'):
      x = tf.zeros([2, 4, 4, 3])
      net = ops.lrelu(ops.deconv2d(ops.lrelu(ops.conv2d(x, 4, name='c')), (4, 4), 3, name='d'))
      tf.gradients(net, [x] + tf1.trainable_variables())
      types = {op.type for op in graph.get_operations()}
    assert {'ExtractImagePatches', 'LeakyReluGrad'} <= types  # the matmul weight gradients and the one-op lrelu's
    return weakref.ref(graph)

  graphs = [build() for _ in range(3)]
  gc.collect()
  assert [graph() for graph in graphs] == [None, None, None]


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


def _batch_norm_on_the_cpu(avx2_only, monkeypatch, labels=False):
  """A training-mode batch norm on '/cpu:0' of a fixed [4, 3, 5, 6] map, with `hardware.avx2_only` faked: its
  output, its input's and scale's gradients, its moving statistics after one update, and the shape the fused
  kernel normalizes."""
  monkeypatch.setattr(hardware, 'avx2_only', lambda: avx2_only)
  rng = np.random.default_rng(0)
  with tf.Graph().as_default() as graph, tf.device('/cpu:0'):
    x = tf.constant(rng.normal(2.0, 3.0, [4, 3, 5, 6]).astype(np.float32))
    one_hot = tf.one_hot([0, 1, 1, 0], 2) if labels else None
    y = ops.batch_norm(x, is_training=True, labels=one_hot, name='bn')
    gamma = tf1.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES, 'bn/gamma')[0]
    loss = tf.reduce_sum(y * tf.constant(rng.normal(size=[4, 3, 5, 6]).astype(np.float32)))
    grads = tf.gradients(loss, [x, gamma])
    statistics = tf1.get_collection(ops.BATCH_NORM_STATISTICS)
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      values = sess.run([y, *grads])
      sess.run(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS))
      values += sess.run(statistics)
    fused = next(op for op in graph.get_operations() if op.type == 'FusedBatchNormV3')
    return values, tuple(fused.inputs[0].shape), y.shape


@pytest.mark.parametrize('labels', [False, True])
def test_batch_norm_by_rows_on_avx2_cpus_is_the_same_normalization(monkeypatch, labels):
  rows, rows_input, rows_shape = _batch_norm_on_the_cpu(True, monkeypatch, labels)
  maps, maps_input, maps_shape = _batch_norm_on_the_cpu(False, monkeypatch, labels)
  assert rows_shape == maps_shape == (4, 3, 5, 6)
  assert rows_input == (60, 1, 1, 6) and maps_input == (4, 3, 5, 6)  # (the rule is taken on the AVX2 kind only)
  for by_rows, by_map in zip(rows, maps):
    np.testing.assert_allclose(by_rows, by_map, rtol=1e-4, atol=1e-4)
