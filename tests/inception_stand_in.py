"""A stand-in of the FID paper's Inception network for the tests and for benchmarks on machines that cannot download
the real one: a small GraphDef with the same interface and the same age (producer 3, the 2015 batch-norm op), whose
features are random projections, not Inception's. It is used only where a test or a benchmark puts it in place of
classify_image_graph_def.pb (--inception_dir).
"""

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import attr_value_pb2, graph_pb2, node_def_pb2, types_pb2

from common import disk
from evaluation.inception import FEATURES

def _attr(**value):
  return attr_value_pb2.AttrValue(**value)


def _ints(values):
  return _attr(list=attr_value_pb2.AttrValue.ListValue(i=list(values)))


def _node(name, op, inputs=(), **attrs):
  node = node_def_pb2.NodeDef(name=name, op=op, input=list(inputs))
  for key, value in attrs.items():
    node.attr[key].CopyFrom(value)
  return node


def _const(name, value, dtype=np.float32):
  tensor = tf.make_tensor_proto(np.asarray(value, dtype))
  return _node(name, 'Const', dtype=_attr(type=tensor.dtype), value=_attr(tensor=tensor))


def _conv_block(name, inputs, weights, stride, rng):
  """A convolution and a BatchNormWithGlobalNormalization (the 2015 op) and a ReLU, as the real graph's
  conv/Conv2D, conv/batchnorm, conv; with random weights and batch-norm statistics."""
  channels = weights.shape[-1]
  float_t = _attr(type=types_pb2.DT_FLOAT)
  return [
      _const(f'{name}/conv2d_params', weights),
      _node(f'{name}/Conv2D', 'Conv2D', [inputs, f'{name}/conv2d_params'], T=float_t, strides=_ints([1, stride,
            stride, 1]), padding=_attr(s=b'VALID'), data_format=_attr(s=b'NHWC'), use_cudnn_on_gpu=_attr(b=True)),
      _const(f'{name}/batchnorm/moving_mean', rng.normal(0, 0.1, channels)),
      _const(f'{name}/batchnorm/moving_variance', rng.uniform(0.5, 1.5, channels)),
      _const(f'{name}/batchnorm/beta', rng.normal(0, 0.1, channels)),
      _const(f'{name}/batchnorm/gamma', rng.uniform(0.8, 1.2, channels)),
      _node(f'{name}/batchnorm', 'BatchNormWithGlobalNormalization',
            [f'{name}/Conv2D'] + [f'{name}/batchnorm/{part}' for part in ('moving_mean', 'moving_variance', 'beta',
                                                                          'gamma')],
            T=float_t, variance_epsilon=_attr(f=0.001), scale_after_normalization=_attr(b=True)),
      _node(name, 'Relu', [f'{name}/batchnorm'], T=float_t),
  ]


def stand_in_graph_def(size=32, seed=0):
  """A small GraphDef with the FID network's interface and age: DecodeJpeg/contents -> DecodeJpeg -> Cast ->
  ExpandDims (the input) -> ResizeBilinear to size x size -> (x - 128) / 128 -> two strided 3x3 convolutions
  and a 1x1 convolution to 2048 channels, each with a BatchNormWithGlobalNormalization and a ReLU -> pool_3, an
  average pool to [batch, 1, 1, 2048] -> pool_3/_reshape [1, 2048]; producer version 3, as the real file's.
  Its features are random (a fixed `seed`), not Inception's: for tests and benchmarks only."""
  rng = np.random.default_rng(seed)
  float_t = _attr(type=types_pb2.DT_FLOAT)
  he = lambda *shape: rng.normal(0, np.sqrt(2.0 / np.prod(shape[:3])), shape)
  side = ((size - 3) // 2 + 1 - 3) // 2 + 1  # after the two strided 3x3 convolutions
  graph_def = graph_pb2.GraphDef()
  graph_def.versions.producer = 3
  graph_def.node.extend([
      _node('DecodeJpeg/contents', 'Placeholder', dtype=_attr(type=types_pb2.DT_STRING), shape=_attr(
          shape=tf.TensorShape([]).as_proto())),
      _node('DecodeJpeg', 'DecodeJpeg', ['DecodeJpeg/contents'], channels=_attr(i=3), ratio=_attr(i=1),
            fancy_upscaling=_attr(b=True), try_recover_truncated=_attr(b=False),
            acceptable_fraction=_attr(f=1.0)),
      _node('Cast', 'Cast', ['DecodeJpeg'], SrcT=_attr(type=types_pb2.DT_UINT8), DstT=float_t),
      _const('ExpandDims/dim', 0, np.int32),
      _node('ExpandDims', 'ExpandDims', ['Cast', 'ExpandDims/dim'], T=float_t, Tdim=_attr(type=types_pb2.DT_INT32)),
      _const('ResizeBilinear/size', [size, size], np.int32),
      _node('ResizeBilinear', 'ResizeBilinear', ['ExpandDims', 'ResizeBilinear/size'], T=float_t,
            align_corners=_attr(b=False)),
      _const('Sub/y', 128.0),
      _node('Sub', 'Sub', ['ResizeBilinear', 'Sub/y'], T=float_t),
      _const('Mul/y', 1.0 / 128.0),
      _node('Mul', 'Mul', ['Sub', 'Mul/y'], T=float_t),
      *_conv_block('conv', 'Mul', he(3, 3, 3, 64), 2, rng),
      *_conv_block('conv_1', 'conv', he(3, 3, 64, 128), 2, rng),
      *_conv_block('mixed', 'conv_1', he(1, 1, 128, FEATURES), 1, rng),
      _node('pool_3', 'AvgPool', ['mixed'], T=float_t, ksize=_ints([1, side, side, 1]), strides=_ints([1, 1, 1, 1]),
            padding=_attr(s=b'VALID'), data_format=_attr(s=b'NHWC')),
      _const('pool_3/_reshape/shape', [1, FEATURES], np.int32),
      _node('pool_3/_reshape', 'Reshape', ['pool_3', 'pool_3/_reshape/shape'], T=float_t,
            Tshape=_attr(type=types_pb2.DT_INT32)),
  ])
  return graph_def


def write_stand_in(path, size=32, seed=0):
  """Writes stand_in_graph_def() to `path`, atomically; returns the path."""
  data = stand_in_graph_def(size, seed).SerializeToString()

  def write(temporary):
    with open(temporary, 'wb') as f:
      f.write(data)

  disk.write_atomically(path, write)
  return path
