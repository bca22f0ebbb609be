"""inception.py: the FID network's stand-in has the real file's interface and age; features of any batch, size and
channel count; a file that is not the network is refused in one sentence."""

import numpy as np
import pytest
import tensorflow as tf

from errors import UserError
from evaluation import inception
from training import trainer
import inception_stand_in

tf1 = tf.compat.v1
SESSION = trainer.session_config('/cpu:0')


@pytest.fixture(scope='module')
def stand_in(tmp_path_factory):
  return inception_stand_in.write_stand_in(str(tmp_path_factory.mktemp('inception') / inception.GRAPH_FILE))


def test_the_stand_in_has_the_real_graphs_interface_and_age(tmp_path):
  graph_def = inception_stand_in.stand_in_graph_def()
  assert graph_def.versions.producer == 3  # as classify_image_graph_def.pb: from before the op was removed (9)
  ops = {node.name: node.op for node in graph_def.node}
  assert ops['DecodeJpeg/contents'] == 'Placeholder' and ops['ExpandDims'] == 'ExpandDims'
  assert (ops['ResizeBilinear'], ops['pool_3'], ops['pool_3/_reshape']) == ('ResizeBilinear', 'AvgPool', 'Reshape')
  assert list(ops.values()).count('BatchNormWithGlobalNormalization') == 3
  # TensorFlow 2.21 runs that op only in a GraphDef as old as the real one: of today's producer, it is refused
  graph_def.versions.producer = 27
  with tf.Graph().as_default(), pytest.raises(tf.errors.UnimplementedError,
                                              match='BatchNormWithGlobalNormalization is not available'):
    tf1.import_graph_def(graph_def)
  newer = tmp_path / 'newer.pb'
  newer.write_bytes(graph_def.SerializeToString())
  with pytest.raises(UserError, match='cannot be imported as the FID network: Op BatchNormWithGlobalNormalization'):
    inception.check(str(newer))


def test_features_of_any_batch_size_and_size_and_grayscale_as_rgb(stand_in):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (120, 20, 24, 3), np.uint8)
  with inception.Features(stand_in, SESSION) as features:
    many = features(images)  # more than one BATCH
    assert many.shape == (120, inception.FEATURES) and many.dtype == np.float32
    assert np.all(many >= 0) and many.std() > 0  # after a ReLU, and not constant
    np.testing.assert_allclose(features(images[7:8]), many[7:8], rtol=1e-5, atol=1e-6)  # a batch of one
    grey = rng.integers(0, 256, (5, 64, 64, 1), np.uint8)
    np.testing.assert_allclose(features(grey), features(np.repeat(grey, 3, axis=3)), rtol=1e-6)
    assert not np.allclose(features(images[:5]), many[5:10])


def test_a_file_that_is_not_the_network_is_refused_in_one_sentence(tmp_path, stand_in):
  garbage = tmp_path / 'garbage.pb'
  garbage.write_bytes(b'\x00\xff' * 1000)
  with pytest.raises(UserError, match='is not a TensorFlow GraphDef'):
    inception.check(str(garbage))
  graph = tf.Graph()
  with graph.as_default():
    pixels = tf1.placeholder(tf.float32, [None, None, None, 3], name='ExpandDims')
    tf.reduce_mean(pixels, axis=[1, 2], keepdims=True, name='pool_3')  # 3 features, not 2048
  small = tmp_path / 'small.pb'
  small.write_bytes(graph.as_graph_def().SerializeToString())
  with pytest.raises(UserError, match=r'has pool_3 of shape \[None, 1, 1, 3\], not \[batch, 1, 1, 2048\]'):
    inception.check(str(small))
  graph_def = inception_stand_in.stand_in_graph_def()
  del graph_def.node[[node.name for node in graph_def.node].index('pool_3/_reshape')]
  del graph_def.node[[node.name for node in graph_def.node].index('pool_3')]
  headless = tmp_path / 'headless.pb'
  headless.write_bytes(graph_def.SerializeToString())
  with pytest.raises(UserError, match='not the Inception network of the FID paper: it has no pool_3 node'):
    inception.check(str(headless))
  _, digest = inception.check(stand_in)
  assert len(digest) == 32
