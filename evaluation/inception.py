"""The Inception network of the FID paper, in graph mode: the 2048 pool_3 features of any images.

Every GAN tool that reports FID (TF-GAN, TTUR's fid.py, StyleGAN2-ADA, StudioGAN, pytorch-fid, clean-fid) uses
the same network: the frozen GraphDef classify_image_graph_def.pb of inception-2015-12-05.tgz (`python download.py
inception` fetches it into data/inception/). Its input is a batch of float images in [0, 255] at their own size,
fed at 'ExpandDims:0' (the graph resizes them to 299x299 itself, bilinearly, and scales them); its features are
'pool_3:0', [batch, 1, 1, 2048]. The GraphDef is imported into a graph of its own with our placeholder mapped onto
that input, so any batch size works (TTUR's fid.py patches the graph's static shapes instead). It is a 2015
GraphDef: its batch norms are BatchNormWithGlobalNormalization, an op that TensorFlow 2.21 no longer builds but
still imports and runs in a GraphDef of producer version below 9, as this one is.

write_stand_in() writes a small GraphDef with the same interface and the same age (producer 3, the same op), for
the tests and for benchmarks on machines that cannot download the real one; its features are random projections,
not Inception's, and it is never used unless put in place of the real file by hand.

$ python download.py inception && python main.py --dataset celebA --evaluate    # fid, kid, precision, recall
"""

import hashlib
import os

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.core.framework import attr_value_pb2, graph_pb2, node_def_pb2, types_pb2

from common import disk
from common import progress
from errors import UserError, first_line

tf1 = tf.compat.v1

GRAPH_FILE = 'classify_image_graph_def.pb'
INPUT = 'ExpandDims:0'  # float [batch, height, width, 3] in [0, 255]
OUTPUT = 'pool_3:0'  # float [batch, 1, 1, 2048]
FEATURES = 2048
BATCH = 50  # images per run of the network (TTUR's fid.py uses 50 too)
SCOPE = 'inception'


def graph_path(inception_dir):
  return os.path.join(inception_dir, GRAPH_FILE)


def _import(graph_def, images):
  """Imports `graph_def` into the default graph with `images` (float [batch, h, w, 3]) as its input.

  Returns:
    The pool_3 tensor, float [batch, 1, 1, channels].
  """
  features, = tf1.import_graph_def(graph_def, input_map={INPUT: images}, return_elements=[OUTPUT], name=SCOPE)
  return features


def check(path):
  """Reads the GraphDef at `path` and checks that it is the FID network's: an image input at ExpandDims:0 and
  2048 features at pool_3:0 for images of any batch size and any size.

  Returns:
    (the GraphDef, an MD5 hex digest of the file, which keys the cached features of the real images).

  Raises:
    UserError: the file cannot be read, is not a GraphDef, or does not have that interface.
  """
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except OSError as e:
    raise UserError(f'cannot read {path}: {e.strerror}') from None
  graph_def = graph_pb2.GraphDef()
  try:
    graph_def.ParseFromString(data)
  except Exception:  # pylint: disable=broad-except; protobuf raises its own DecodeError, or others on garbage
    raise UserError(f'{path} is not a TensorFlow GraphDef (damaged or another file): delete it and run python '
                    'download.py inception') from None
  names = {node.name for node in graph_def.node}
  missing = [name.split(':')[0] for name in (INPUT, OUTPUT) if name.split(':')[0] not in names]
  if missing:
    raise UserError(f'{path} is a GraphDef, but not the Inception network of the FID paper: it has no '
                    f'{" or ".join(missing)} node')
  graph = tf.Graph()
  with graph.as_default():
    try:
      features = _import(graph_def, tf1.placeholder(tf.float32, [None, None, None, 3]))
    except (ValueError, tf.errors.OpError) as e:
      raise UserError(f'{path} cannot be imported as the FID network: {first_line(e)}') from None
  shape = features.shape.as_list()
  if len(shape) != 4 or shape[1:3] != [1, 1] or shape[3] != FEATURES:
    raise UserError(f'{path} has pool_3 of shape {shape}, not [batch, 1, 1, {FEATURES}]: not the FID network')
  return graph_def, hashlib.md5(data).hexdigest()


def find(inception_dir):
  """The path of the FID network's GraphDef in `inception_dir`, or None when it is not there."""
  path = graph_path(inception_dir)
  return path if os.path.isfile(path) else None


class Features:
  """The FID network in a graph and session of its own (use as a context manager, or close()).

  Args:
    path: the GraphDef, checked by check().
    session_config: a ConfigProto (the device of the rest of the run; float32: no precision rewrite, so that
      the features, and the scores, do not depend on the machine's precision).
  """

  def __init__(self, path, session_config):
    graph_def, self.digest = check(path)
    self.graph = tf.Graph()
    with self.graph.as_default():
      self.images = tf1.placeholder(tf.uint8, [None, None, None, None], name='images')
      pixels = tf.cast(self.images, tf.float32)
      # grayscale repeated to RGB, as every FID tool does
      pixels = tf.cond(tf.equal(tf.shape(pixels)[-1], 1), lambda: tf.tile(pixels, [1, 1, 1, 3]), lambda: pixels)
      pixels.set_shape([None, None, None, 3])
      self.features = tf.reshape(_import(graph_def, pixels), [-1, FEATURES])
    self.graph.finalize()
    self.sess = tf1.Session(graph=self.graph, config=session_config)

  def close(self):
    self.sess.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    self.close()

  def __call__(self, images, what='images'):
    """uint8 [n, height, width, 1 or 3] (any size) -> float32 [n, 2048], BATCH images at a time, with progress."""
    out = np.empty((len(images), FEATURES), np.float32)
    with progress.Meter(len(images), f'Inception features of {what}', unit='image', every=10.0) as meter:
      for start in range(0, len(images), BATCH):
        batch = np.asarray(images[start:start + BATCH])
        out[start:start + len(batch)] = self.sess.run(self.features, {self.images: batch})
        meter.update(len(batch))
    return out


def missing_sentence(inception_dir):
  """What --evaluate says when the network is not there: which numbers it skips, and how to get them."""
  return (f'fid, kid, precision and recall need the Inception network of the FID paper, {graph_path(inception_dir)}, '
          'which is not there: python download.py inception fetches it (89 MB, once); skipping them')


# A stand-in with the real graph's interface

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
  logging.info('wrote a stand-in of the FID network (random features, not Inception\'s) to %s', path)
  return path
