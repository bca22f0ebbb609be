"""Layer helpers for the DCGAN graph, built from `tf.compat.v1.get_variable` and `tf.nn`.

Keras 3 removed `tf.compat.v1.layers`, so each helper here opens its own variable scope and makes its weights
with `get_variable`. Calling a helper again under a reusing scope shares those weights. Images are NHWC: on a
GPU, Grappler's layout optimizer turns the convolutions into the NCHW layout cuDNN prefers.

$ python main.py --train --dataset digits    # builds the generator and discriminator from these helpers
"""

import tensorflow as tf

import hardware

tf1 = tf.compat.v1

WEIGHT_STDDEV = 0.02
# On a CPU, oneDNN computes a 5x5 convolution's weight gradient at under half its forward speed when one side of
# the layer is this small (4x4 at 64x64 output); a patches-times-gradient matmul is 2.5x faster there. bench/README.md
SMALL_MAP_PIXELS = 4 * 4


def _check_rank(x, rank, scope_name):
  if x.shape.rank != rank or x.shape[-1] is None:
    raise ValueError(f'{scope_name}: expected a rank-{rank} input with a known last dimension, '
                     f'got shape {x.shape}')
  return int(x.shape[-1])


def _weights(shape, stddev, spectral_norm=False):
  w = tf1.get_variable('w', shape, initializer=tf1.random_normal_initializer(stddev=stddev))
  return spectrally_normalized(w) if spectral_norm else w


SPECTRAL_NORM_VECTOR = 'u'  # the name of a spectrally normalized weight's vector, beside the weight 'w'
BATCH_NORM_STATISTICS = 'batch_norm_statistics'  # the collection of batch_norm's moving means and variances


def spectrally_normalized(w):
  """w / sigma(w), its largest singular value estimated by the power iteration (Miyato et al. 2018).

  The weight is seen as a matrix W [all dims but the last, the last]. A non-trainable vector u, made beside w as
  SPECTRAL_NORM_VECTOR and kept in the checkpoint, carries the estimate from update to update: each call computes
  v = W'u / |W'u|, u' = W v / |W v| and sigma = u'. W v, with no gradient through u and v. Storing u' is the job
  of power_iteration_updates(), which the network's train op runs once per update: however many times a step
  calls the layer (D on real, on generated, on mixed images), u moves once, and never in the other network's
  updates. (An assign here, in the forward pass, would run in every replica of a tf.distribute strategy, each
  waiting for the others while the later ones have not made the layer's next variables yet.)

  Args:
    w: a weight variable named 'w' (under its layer's variable scope).

  Returns:
    A tensor of w's shape and dtype.
  """
  u = tf1.get_variable(SPECTRAL_NORM_VECTOR, [1, w.shape[-1]], initializer=tf1.random_normal_initializer(),
                       trainable=False, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
  matrix = tf.reshape(w, [-1, w.shape[-1]])
  u_next, v = _power_iteration(u, matrix)
  sigma = tf.reduce_sum(tf.matmul(v, matrix) * u_next)
  return w / sigma


def _power_iteration(u, matrix):
  """(u', v) of one power iteration from u on `matrix`, without gradients: v = u W' / |u W'|, u' = v W / |v W|."""
  v = tf.math.l2_normalize(tf.matmul(u, matrix, transpose_b=True))  # [1, rows]
  u_next = tf.math.l2_normalize(tf.matmul(v, matrix))  # [1, columns]
  return tf.stop_gradient(u_next), tf.stop_gradient(v)


def power_iteration_updates(variables):
  """The ops that store one power iteration in the vector u of every spectrally normalized weight among
  `variables` (a network's global variables), each from its weight's current value.

  Returns:
    A list of assign ops (empty when no weight there is spectrally normalized).
  """
  by_name = {v.op.name: v for v in variables}
  updates = []
  for name, u in sorted(by_name.items()):
    scope, _, leaf = name.rpartition('/')
    if leaf == SPECTRAL_NORM_VECTOR and f'{scope}/w' in by_name:
      w = by_name[f'{scope}/w']
      u_next, _ = _power_iteration(u, tf.reshape(w, [-1, w.shape[-1]]))
      updates.append(u.assign(u_next))
  return updates


def _bias(units):
  return tf1.get_variable('b', [units], initializer=tf1.zeros_initializer())


def conv2d(x, filters, kernel=5, stride=2, stddev=WEIGHT_STDDEV, spectral_norm=False, name='conv2d'):
  """A strided 2-D convolution with SAME padding and a bias.

  Args:
    x: float tensor [batch, height, width, in_channels].
    filters: number of output channels.
    kernel: kernel height and width.
    stride: step in both spatial dimensions; output size is ceil(size / stride).
    stddev: standard deviation of the N(0, stddev) weight initializer.
    spectral_norm: divide the weights by their largest singular value (spectrally_normalized).
    name: variable scope holding `w` [kernel, kernel, in_channels, filters] and `b` [filters] (and with
      spectral_norm `u` [1, filters]).

  Returns:
    Tensor [batch, ceil(height / stride), ceil(width / stride), filters].

  Raises:
    ValueError: `x` is not rank 4 with known channels.
  """
  with tf1.variable_scope(name) as scope:
    in_channels = _check_rank(x, 4, scope.name)
    w = _weights([kernel, kernel, in_channels, filters], stddev, spectral_norm)
    return tf.nn.bias_add(_same_conv(x, w, stride), _bias(filters))


def _same_conv(x, w, stride):
  """tf.nn.conv2d(x, w, stride, 'SAME'), its weight gradient by matmul where _matmul_filter_grad_pays."""
  strides = [1, stride, stride, 1]
  if _matmul_filter_grad_pays(w, [None if d is None else -(-d // stride) for d in x.shape[1:3]]):
    return _conv2d_matmul_filter_grad(x, w, strides)
  return tf.nn.conv2d(x, w, strides=strides, padding='SAME')


def _check_upsampling(x, output_size, stride, scope_name):
  out_height, out_width = output_size
  expected = (-(-out_height // stride), -(-out_width // stride))
  if tuple(x.shape[1:3]) != expected:
    raise ValueError(f'{scope_name}: input {x.shape[1]}x{x.shape[2]} cannot be upsampled by {stride} '
                     f'to {out_height}x{out_width} (needs {expected[0]}x{expected[1]})')


def deconv2d(x, output_size, filters, kernel=5, stride=2, stddev=WEIGHT_STDDEV, name='deconv2d'):
  """A transposed convolution to an explicit output size, for any batch size.

  Args:
    x: float tensor [batch, height, width, in_channels]; batch may be unknown.
    output_size: (out_height, out_width) with ceil(out / stride) equal to the input size, so odd sizes
      such as 7 -> 14 -> 28 or 4 -> 7 work.
    filters: number of output channels.
    kernel: kernel height and width.
    stride: upsampling factor in both spatial dimensions.
    stddev: standard deviation of the N(0, stddev) weight initializer.
    name: variable scope holding `w` [kernel, kernel, filters, in_channels] and `b` [filters].

  Returns:
    Tensor [batch, out_height, out_width, filters].

  Raises:
    ValueError: `x` is not rank 4, or `output_size` cannot come from the input size with this stride.
  """
  with tf1.variable_scope(name) as scope:
    in_channels = _check_rank(x, 4, scope.name)
    _check_upsampling(x, output_size, stride, scope.name)
    out_height, out_width = output_size
    w = _weights([kernel, kernel, filters, in_channels], stddev)
    output_shape = tf.stack([tf.shape(x)[0], out_height, out_width, filters])
    strides = [1, stride, stride, 1]
    if _matmul_filter_grad_pays(w, x.shape[1:3]):
      net = _deconv2d_matmul_filter_grad(x, w, output_shape, strides)
    else:
      net = tf.nn.conv2d_transpose(x, w, output_shape, strides=strides, padding='SAME')
    return tf.nn.bias_add(net, _bias(filters))


def resize_conv2d(x, output_size, filters, stddev=WEIGHT_STDDEV, name='resize_conv2d'):
  """Nearest-neighbour upsampling by 2, then a 3x3 convolution with SAME padding and a bias (Odena et al. 2016,
  "Deconvolution and Checkerboard Artifacts"): deconv2d's job, where every output pixel is made by the same
  weights, so the layer draws no checkerboard.

  Computed without the upsampled map: an output pixel (2i + a, 2j + b) sees input rows i - 1, i (a = 0) or i, i + 1
  (a = 1), with the 3x3 kernel's rows summed where two of them fall on one input row ([w0, w1 + w2, 0] and
  [0, w0 + w1, w2]), and the same for columns. So one 3x3 convolution at the input's size with the four kernels
  of (a, b) side by side, 4 x filters channels, followed by depth_to_space, equals the upsampling then the
  convolution (tests/ops_test.py checks it), and skips writing and reading a map four times the input's size.

  Args:
    x: float tensor [batch, height, width, in_channels]; batch may be unknown.
    output_size: (out_height, out_width) with ceil(out / 2) equal to the input size (an odd size drops the last
      row or column of the convolution's output).
    filters: number of output channels.
    stddev: standard deviation of the N(0, stddev) weight initializer.
    name: variable scope holding `w` [3, 3, in_channels, filters] and `b` [filters].

  Returns:
    Tensor [batch, out_height, out_width, filters].

  Raises:
    ValueError: `x` is not rank 4, or `output_size` cannot come from the input size.
  """
  with tf1.variable_scope(name) as scope:
    in_channels = _check_rank(x, 4, scope.name)
    _check_upsampling(x, output_size, 2, scope.name)
    w = _weights([3, 3, in_channels, filters], stddev)
    kernels = tf.concat([by_col for by_row in _taps_by_parity(w, 0) for by_col in _taps_by_parity(by_row, 1)],
                        axis=3)
    # [3, 3, in_channels, 4 * filters]: (a, b) = (0, 0), (0, 1), (1, 0), (1, 1), depth_to_space's order
    net = tf.nn.depth_to_space(_same_conv(x, kernels, 1), 2)[:, :output_size[0], :output_size[1], :]
    return tf.nn.bias_add(net, _bias(filters))


def _taps_by_parity(kernel, axis):
  """[the even outputs' taps, the odd outputs' taps] of a 3-tap `kernel` along `axis` applied after nearest
  upsampling by 2, as taps on the input positions i - 1, i, i + 1: [k0, k1 + k2, 0] and [0, k0 + k1, k2]."""
  k0, k1, k2 = tf.split(kernel, 3, axis=axis)
  zero = tf.zeros_like(k0)
  return [tf.concat([k0, k1 + k2, zero], axis), tf.concat([zero, k0 + k1, k2], axis)]


def _matmul_filter_grad_pays(w, small_size):
  """Whether a layer with weights `w` and a low-resolution side of `small_size` (height, width) should take its
  weight gradient by matmul: on a CPU only; cuDNN has its own algorithms."""
  on_cpu = tf.DeviceSpec.from_string(w.device).device_type == 'CPU'
  return on_cpu and None not in small_size and small_size[0] * small_size[1] <= SMALL_MAP_PIXELS


def _filter_grad_by_matmul(big, small, kernel_shape, strides):
  """The weight gradient of a SAME, strided convolution from `big` to `small`, as one matmul.

  Args:
    big: [batch, height, width, big_channels], the high-resolution side.
    small: [batch, ceil(height / stride), ceil(width / stride), small_channels], the other side.
    kernel_shape: [kernel, kernel, big_channels, small_channels].
    strides: [1, stride, stride, 1].

  Returns:
    sum over batch and positions of patch(big) x small, shaped `kernel_shape`.
  """
  kernel, _, big_channels, small_channels = kernel_shape
  patches = tf.image.extract_patches(big, [1, kernel, kernel, 1], strides, [1, 1, 1, 1], 'SAME')
  # [batch, small height, small width, kernel * kernel * big_channels], ordered as the kernel's first three axes
  grad = tf.matmul(tf.reshape(patches, [-1, kernel * kernel * big_channels]),
                   tf.reshape(small, [-1, small_channels]), transpose_a=True)
  return tf.reshape(grad, kernel_shape)


# Gradients that replace TensorFlow's for some ops, registered once by name and given to an op through the graph's
# gradient_override_map: a gradient made per call (tf.custom_gradient) stays in TensorFlow's gradient registry with
# its graph for the life of the process (tensorflow/tensorflow#27492), which kept every graph a test built alive.
_CONV_MATMUL_FILTER_GRAD = 'DcganConv2DMatmulFilterGrad'
_DECONV_MATMUL_FILTER_GRAD = 'DcganConv2DTransposeMatmulFilterGrad'


@tf.RegisterGradient(_CONV_MATMUL_FILTER_GRAD)
def _conv2d_grad(op, dy):
  """Conv2D's gradient with its weight gradient by _filter_grad_by_matmul."""
  x, w = op.inputs
  strides = op.get_attr('strides')
  dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=w, out_backprop=dy, strides=strides,
                                      padding='SAME')
  return dx, _filter_grad_by_matmul(x, dy, w.shape.as_list(), strides)


@tf.RegisterGradient(_DECONV_MATMUL_FILTER_GRAD)
def _deconv2d_grad(op, dy):
  """The gradient of conv2d_transpose (a Conv2DBackpropInput op: output size, filter, input) by matmul."""
  _, w, x = op.inputs
  strides = op.get_attr('strides')
  return None, _filter_grad_by_matmul(dy, x, w.shape.as_list(), strides), tf.nn.conv2d(dy, w, strides=strides,
                                                                                       padding='SAME')


def _conv2d_matmul_filter_grad(x, w, strides):
  """tf.nn.conv2d(x, w, strides, 'SAME') with its weight gradient by _filter_grad_by_matmul."""
  with tf1.get_default_graph().gradient_override_map({'Conv2D': _CONV_MATMUL_FILTER_GRAD}):
    return tf.nn.conv2d(x, w, strides=strides, padding='SAME')


def _deconv2d_matmul_filter_grad(x, w, output_shape, strides):
  """tf.nn.conv2d_transpose(x, w, output_shape, strides, 'SAME') with its weight gradient by matmul."""
  with tf1.get_default_graph().gradient_override_map({'Conv2DBackpropInput': _DECONV_MATMUL_FILTER_GRAD}):
    return tf.nn.conv2d_transpose(x, w, output_shape, strides=strides, padding='SAME')


def linear(x, units, stddev=WEIGHT_STDDEV, spectral_norm=False, name='linear'):
  """A fully connected layer.

  Args:
    x: float tensor [batch, in_units].
    units: number of outputs.
    stddev: standard deviation of the N(0, stddev) weight initializer.
    spectral_norm: divide the weights by their largest singular value (spectrally_normalized).
    name: variable scope holding `w` [in_units, units] and `b` [units] (and with spectral_norm `u` [1, units]).

  Returns:
    Tensor [batch, units].

  Raises:
    ValueError: `x` is not rank 2 with a known last dimension.
  """
  with tf1.variable_scope(name) as scope:
    in_units = _check_rank(x, 2, scope.name)
    w = _weights([in_units, units], stddev, spectral_norm)
    return tf.nn.bias_add(tf.matmul(x, w), _bias(units))


def batch_norm(x, is_training, decay=0.9, epsilon=1e-5, labels=None, name='batch_norm'):
  """Batch normalization over every axis but the last, with moving averages for inference; given labels, the
  class-conditional batch norm of the projection discriminator's paper (Miyato and Koyama, 2018): one scale and
  one offset per class, the statistics shared.

  In training mode the batch statistics normalize `x` and ops that move `moving_mean` and `moving_variance`
  towards them are added to `tf.GraphKeys.UPDATE_OPS`; the caller runs them with its train op. In inference
  mode the moving averages normalize `x` and nothing is updated. The moving averages are MEAN-aggregated so
  that replicas under a `tf.distribute` strategy keep one shared value, and in the BATCH_NORM_STATISTICS
  collection (the averaged G keeps its own: gan/average.py).

  Args:
    x: float tensor [batch, channels] or [batch, height, width, channels].
    is_training: Python bool: normalize by batch statistics and add update ops.
    decay: momentum of the moving averages, in (0, 1).
    epsilon: added to the variance.
    labels: None, or one-hot float [batch, classes]: each example is scaled and offset by its class's gamma and
      beta, which are then [classes, channels].
    name: variable scope holding `beta`, `gamma`, `moving_mean`, `moving_variance`, each [channels].

  Returns:
    Tensor of the shape of `x`.

  Raises:
    ValueError: `x` is neither rank 2 nor rank 4, or its channels are unknown.
  """
  with tf1.variable_scope(name) as scope:
    if x.shape.rank not in (2, 4) or x.shape[-1] is None:
      raise ValueError(f'{scope.name}: expected a rank-2 or rank-4 input with known channels, got {x.shape}')
    channels = int(x.shape[-1])
    per_class = [] if labels is None else [_check_rank(labels, 2, scope.name)]
    beta = tf1.get_variable('beta', per_class + [channels], initializer=tf1.zeros_initializer())
    gamma = tf1.get_variable('gamma', per_class + [channels], initializer=tf1.ones_initializer())
    scale, offset = gamma, beta
    if labels is not None:  # the fused kernel normalizes; each example's class then scales and offsets it
      gamma, beta = tf.ones([channels]), tf.zeros([channels])
    moving = dict(trainable=False, aggregation=tf.VariableAggregation.MEAN,
                  collections=[tf1.GraphKeys.GLOBAL_VARIABLES, BATCH_NORM_STATISTICS])
    moving_mean = tf1.get_variable('moving_mean', [channels], initializer=tf1.zeros_initializer(), **moving)
    moving_variance = tf1.get_variable('moving_variance', [channels], initializer=tf1.ones_initializer(),
                                       **moving)

    # The fused kernel wants NHWC, so a [batch, channels] input is normalized as [batch, 1, 1, channels]; so is a
    # map's every pixel, as a row of its own, where _statistics_by_rows_pay (the statistics are the same).
    by_rows = x.shape.rank == 2 or (is_training and _statistics_by_rows_pay(gamma))
    net = tf.reshape(x, [-1, 1, 1, channels]) if by_rows else x
    if is_training:
      net, mean, variance = tf1.nn.fused_batch_norm(net, gamma, beta, epsilon=epsilon, is_training=True)
      for average, value in ((moving_mean, mean), (moving_variance, variance)):
        # A layer called twice in one step (D on real, then on fake images) moves its averages twice; the
        # second move waits for the first, so the result does not depend on which thread runs first.
        earlier = f'batch_norm_updates/{average.op.name}'
        with tf.control_dependencies(tf1.get_collection(earlier)):
          update = average.assign_sub((average - value) * (1.0 - decay))
        tf1.add_to_collection(earlier, update)
        tf1.add_to_collection(tf1.GraphKeys.UPDATE_OPS, update)
    else:
      net, _, _ = tf1.nn.fused_batch_norm(net, gamma, beta, mean=moving_mean, variance=moving_variance,
                                          epsilon=epsilon, is_training=False)
    if by_rows:
      net = tf.reshape(net, tf.shape(x))
      net.set_shape(x.shape)
    if labels is not None:
      per_pixel = (lambda t: t[:, None, None, :]) if x.shape.rank == 4 else (lambda t: t)
      net = net * per_pixel(tf.matmul(labels, scale)) + per_pixel(tf.matmul(labels, offset))
    return net


def _statistics_by_rows_pay(gamma):
  """Whether a batch norm with scale `gamma` should take its training statistics over [batch x height x width, 1, 1,
  channels] instead of the map: on a CPU whose oneDNN is at AVX2 (hardware.avx2_only), whose training-mode
  batch-norm kernel for NHWC maps ran 4-7x slower than on the same data as rows (bench/README.md, "batch norm on
  AVX2"); with AVX-512 the two were within 10%, and cuDNN has its own kernels."""
  on_cpu = tf.DeviceSpec.from_string(gamma.device).device_type == 'CPU'
  return on_cpu and hardware.avx2_only()


def lrelu(x, leak=0.2):
  """Leaky ReLU: max(x, leak * x), for 0 < leak < 1.

  Its gradient is one LeakyReluGrad op, which reads the sign from the output (the same as the input's): the
  gradient of the max and the multiply TensorFlow derives is six ops over the whole map, and rgb64's step measured
  9% faster with the one (bench/README.md). Not tf.nn.leaky_relu itself: Grappler's remapper fuses a convolution,
  its bias and LeakyRelu into one op even when LeakyReluGrad still needs the bias output, fails, and logs an error
  (TensorFlow 2.21); nothing here reads the bias output but the max.
  """
  with tf1.get_default_graph().gradient_override_map({'Maximum': _leaky_gradient(leak)}):
    return tf.maximum(x, leak * x)


_LEAKY_GRADIENTS = {}  # leak: the name of its registered gradient


def _leaky_gradient(leak):
  """The name of the gradient of max(x, leak * x) as one LeakyReluGrad op, registered on first use."""
  if leak not in _LEAKY_GRADIENTS:
    name = f'DcganLeakyMaximum{len(_LEAKY_GRADIENTS)}'
    # all of x's gradient goes through the max's first input, none through leak * x
    tf.RegisterGradient(name)(lambda op, dy: (
        tf.raw_ops.LeakyReluGrad(gradients=dy, features=op.outputs[0], alpha=leak), None))
    _LEAKY_GRADIENTS[leak] = name
  return _LEAKY_GRADIENTS[leak]


def conv_cond_concat(x, y):
  """Appends a one-hot label to every pixel of a feature map.

  Args:
    x: float tensor [batch, height, width, channels].
    y: float tensor [batch, y_dim], one-hot labels.

  Returns:
    Tensor [batch, height, width, channels + y_dim].
  """
  y_map = y[:, tf1.newaxis, tf1.newaxis, :] * tf.ones_like(x[:, :, :, :1])
  return tf.concat([x, y_map], axis=3)
