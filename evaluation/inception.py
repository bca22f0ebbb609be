"""The Inception network of the FID paper, in graph mode: the 2048 pool_3 features of any images.

Every GAN tool that reports FID (TF-GAN, TTUR's fid.py, StyleGAN2-ADA, StudioGAN, pytorch-fid, clean-fid) uses
the same network: the frozen GraphDef classify_image_graph_def.pb of inception-2015-12-05.tgz (`python download.py
inception` fetches it into data/inception/). Its input is a batch of float images in [0, 255] at their own size,
fed at 'ExpandDims:0' (the graph resizes them to 299x299 itself, bilinearly, and scales them); its features are
'pool_3:0', [batch, 1, 1, 2048]. The GraphDef is imported into a graph of its own with our placeholder mapped onto
that input, so any batch size works (TTUR's fid.py patches the graph's static shapes instead). It is a 2015
GraphDef: its batch norms are BatchNormWithGlobalNormalization, an op that TensorFlow 2.21 no longer builds but
still imports and runs in a GraphDef of producer version below 9, as this one is.

The tests and benchmarks that cannot download it use a stand-in with the same interface and age
(tests/inception_stand_in.py; its features are random, not Inception's).

$ python download.py inception && python main.py --dataset celebA --evaluate    # fid, kid, precision, recall
"""

import hashlib
import os

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

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
