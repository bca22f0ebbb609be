"""Shared fixtures: the repository on sys.path, small generated datasets, and runners for main.py.

main_in_process runs main.py's main() with its flags in the test's own process: the run modes and every flag
check are tested that way. run_main starts main.py in a subprocess, for the tests whose subject is the process
itself (exit codes and the one-line error, signals, kill -9, resource limits, several workers) and for a few
end-to-end runs as a user would start them.
"""

import collections
import contextlib
import fcntl
import glob
import io
import os
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(ROOT, '..', 'shared', 'data')
sys.path.insert(0, ROOT)
# pytest-xdist's workers share the cores: each worker's ops (and its main.py subprocesses') get their share of
# them, instead of every worker spreading each op over all the cores and taking turns with the others.
if os.environ.get('PYTEST_XDIST_WORKER_COUNT'):
  os.environ.setdefault('TF_NUM_INTRAOP_THREADS',
                        str(max(1, os.cpu_count() // int(os.environ['PYTEST_XDIST_WORKER_COUNT']))))

from training import runtime  # noqa: E402,F401  (before tensorflow: the tests run the kernels main.py runs)

import lmdb  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from app import completion  # noqa: E402
from config import Config  # noqa: E402
import datasets  # noqa: E402
from datasets import digits  # noqa: E402
import main  # noqa: E402  (defines main.py's flags in this process)
from absl import flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402
from errors import UserError  # noqa: E402
from training import trainer  # noqa: E402

# A model small enough to train a few steps in seconds.
TINY_MODEL = ['--gf_dim', '8', '--df_dim', '8', '--gfc_dim', '32', '--dfc_dim', '32']


# The fixtures that start main.py in a process of its own: a test that uses one is a process story too.
PROCESS_FIXTURES = ('trained_in_a_process',)


def pytest_collection_modifyitems(items):
  """Marks `process` (the tests whose subject is the process itself, which make test-fast leaves out) the tests
  that use a PROCESS_FIXTURES fixture, beside those marked by hand."""
  for item in items:
    if set(PROCESS_FIXTURES) & set(getattr(item, 'fixturenames', ())):
      item.add_marker(pytest.mark.process)


@pytest.fixture(autouse=True)
def _op_determinism_off_after_each_test():
  """An in-process --deterministic run turns TensorFlow's op determinism on for the whole process: turn it off."""
  yield
  from tensorflow.python.framework import config as tf_config  # pylint: disable=import-outside-toplevel
  if tf_config.is_op_determinism_enabled():
    tf_config.disable_op_determinism()


def shared(name):
  """The path of a folder of ../shared/data; skips the test when it is absent (a user's fresh clone)."""
  path = os.path.join(SHARED_DATA, name)
  if not os.path.isdir(path):
    pytest.skip(f'{path} is absent (only developer machines and CI have ../shared)')
  return path


def write_idx_dataset(folder, count, seed=1):
  """Writes `count` built-in style digits as MNIST train IDX files into `folder`; returns (images, labels)."""
  os.makedirs(folder, exist_ok=True)
  images, labels = digits.make_digits(count, seed=seed)
  datasets.write_idx(os.path.join(folder, 'train-images-idx3-ubyte.gz'), images)
  datasets.write_idx(os.path.join(folder, 'train-labels-idx1-ubyte.gz'), labels)
  return images, labels


def encode(pixels, image_format, mode='RGB'):
  """uint8 [height, width, 3] -> the bytes of an image file; WebP and PNG lossless, JPEG at quality 95."""
  buffer = io.BytesIO()
  options = {'WEBP': {'lossless': True}, 'JPEG': {'quality': 95}}.get(image_format, {})
  Image.fromarray(pixels).convert(mode).save(buffer, format=image_format, **options)
  return buffer.getvalue()


def write_lmdb(folder, values, keys=None):
  """Writes an LMDB (folder/data.mdb) holding `values` (bytes) under `keys` (default b'000000', b'000001', ...)."""
  keys = keys or [f'{i:06d}'.encode() for i in range(len(values))]
  os.makedirs(folder, exist_ok=True)
  env = lmdb.open(str(folder), map_size=1 << 28)
  with env.begin(write=True) as txn:
    for key, value in zip(keys, values):
      txn.put(key, value)
  env.close()
  return keys


def lmdb_of_images(folder, count, size=(20, 16), formats=('WEBP', 'JPEG'), seed=0):
  """An LMDB of `count` random RGB images of `size` (width, height), alternating `formats`; returns the pixels."""
  rng = np.random.default_rng(seed)
  pixels = rng.integers(0, 256, size=(count, size[1], size[0], 3), dtype=np.uint8)
  write_lmdb(folder, [encode(p, formats[i % len(formats)]) for i, p in enumerate(pixels)])
  return pixels


def write_images(folder, count, size=(20, 24), mode='RGB', ext='png', seed=0):
  """Writes `count` random images of `size` (width, height) and Pillow `mode` into `folder`."""
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(seed)
  paths = []
  for i in range(count):
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    path = os.path.join(folder, f'{i:03d}.{ext}')
    image.save(path)
    paths.append(path)
  return paths


def once_per_run(tmp_path_factory, name, make):
  """Calls make(folder) once for the whole test run, even across xdist's workers, and returns the folder.

  Workers share the parent of their temporary folders; the first to take the lock makes the folder, the others
  wait for it and then only read it (pytest-xdist's recipe for session fixtures that must run once).
  """
  base = tmp_path_factory.getbasetemp()
  root = base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base
  folder = root / name
  with open(root / f'{name}.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (root / f'{name}.done').exists():
      folder.mkdir()
      make(folder)
      (root / f'{name}.done').touch()
  return folder


@pytest.fixture(scope='session')
def stand_in_inception(tmp_path_factory):
  """A folder holding the stand-in of the FID network (inception_stand_in.py) as classify_image_graph_def.pb:
  pass it as --inception_dir (its features are random, not Inception's)."""
  from evaluation import inception  # pylint: disable=import-outside-toplevel
  import inception_stand_in  # pylint: disable=import-outside-toplevel
  folder = tmp_path_factory.mktemp('inception')
  inception_stand_in.write_stand_in(str(folder / inception.GRAPH_FILE))
  return folder


@pytest.fixture(scope='session')
def tiny_idx_root(tmp_path_factory):
  """A data_dir holding `tiny/`: 96 labelled 28x28 digits as gzipped IDX files."""
  root = tmp_path_factory.mktemp('data')
  write_idx_dataset(os.path.join(root, 'tiny'), 96)
  return str(root)


# main.py with a SIGKILL of itself planted inside the Saver, after the files of step {step} are written and before
# the state file names them: the moment a crash leaves the newest checkpoint unlisted.
_SIGNALLED_INSIDE_A_SAVE = '''
import os, runpy, signal, sys
sys.path.insert(0, {root!r})
from tensorflow.python.checkpoint import checkpoint_management
update = checkpoint_management.update_checkpoint_state_internal
def signal_then_update(save_dir, model_checkpoint_path, *args, **kwargs):
  if model_checkpoint_path.endswith('-{step}'):
    os.kill(os.getpid(), {signum})
  return update(save_dir, model_checkpoint_path, *args, **kwargs)
checkpoint_management.update_checkpoint_state_internal = signal_then_update
sys.argv = [{main!r}] + sys.argv[1:]
runpy.run_path({main!r}, run_name='__main__')
'''


def signalled_inside_the_save_of(step, signum=signal.SIGKILL):
  """The command (before main.py's flags) of a main.py that sends itself `signum` inside the save of `step`:
  its files written, the state file not yet (SIGKILL kills it there, SIGSTOP pauses it there)."""
  return [sys.executable, '-c', _SIGNALLED_INSIDE_A_SAVE.format(root=ROOT, main=os.path.join(ROOT, 'main.py'),
                                                                step=step, signum=int(signum))]


# main.py whose training step {step} never ends by itself (a step of a model too large for the machine), and whose
# grace after a signal is {grace} s.
_STALLED_AT = '''
import os, runpy, sys, time
sys.path.insert(0, {root!r})
from training import safety, trainer
safety.GracefulStop.GRACE_SECONDS = {grace}
step_of = trainer.Trainer.train_step
def stalling(self, sess, step):
  if step == {step}:
    print('step {step} stalls', file=sys.stderr, flush=True)
    time.sleep(3600)
  return step_of(self, sess, step)
trainer.Trainer.train_step = stalling
sys.argv = [{main!r}] + sys.argv[1:]
runpy.run_path({main!r}, run_name='__main__')
'''


def stalled_at(step, grace):
  """The command (before main.py's flags) of a main.py whose training step `step` (from 0) never ends by itself."""
  return [sys.executable, '-c', _STALLED_AT.format(root=ROOT, main=os.path.join(ROOT, 'main.py'), step=step,
                                                   grace=grace)]


def run_main(*args, cwd):
  """Runs main.py as a user would; returns the CompletedProcess with text stdout and stderr."""
  return subprocess.run([sys.executable, os.path.join(ROOT, 'main.py'), *args], cwd=cwd, capture_output=True,
                        text=True, stdin=subprocess.DEVNULL, timeout=600)


InProcess = collections.namedtuple('InProcess', 'returncode error')
"""What main_in_process saw: the exit code main.py would have had, and the sentence of its 'error: ' line (None)."""


@contextlib.contextmanager
def parsed_flags(*args):
  """main.py's flags parsed from `args` for the block, then unparsed again, absl's log level as it was.

  Yields:
    The arguments that are not flags, main.py's name first (as absl.app hands them to main()).
  """
  level = absl_logging.get_absl_logger().level
  flags.FLAGS.unparse_flags()
  try:
    argv = flags.FLAGS(['main.py', *map(str, args)])
    absl_logging.set_verbosity(absl_logging.INFO)  # as main.py logs under app.run (the flag's default is WARNING)
    yield argv
  finally:
    flags.FLAGS.unparse_flags()  # (which sets absl's logger back to the flag's default level: undone below)
    absl_logging.get_absl_logger().setLevel(level)


def main_in_process(*args):
  """Runs main.py's main() with these flags in this process (relative paths are the current folder's).

  Returns:
    An InProcess: exit code 0 and no error, or the UserError's (or the flag parser's) code and sentence.
  """
  try:
    with parsed_flags(*args) as argv:
      main.main(argv)
  except flags.Error as e:
    return InProcess(2, f'{e} (see --help)')
  except UserError as e:
    return InProcess(e.exit_code, str(e))
  return InProcess(0, None)


def assert_error(result, *fragments, code=2):
  """main_in_process ended with exit `code` and an error sentence holding every fragment; returns the sentence."""
  assert result.returncode == code, result
  for fragment in fragments:
    assert fragment in result.error, result.error
  return result.error


def assert_user_error(result, *fragments, code=2):
  """The run failed with exit `code` and exactly one 'error: ' line, holding every fragment; no traceback."""
  assert result.returncode == code, result.stderr
  assert 'Traceback' not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith('error: ')]
  assert len(errors) == 1, result.stderr
  for fragment in fragments:
    assert fragment in errors[0], errors[0]
  return errors[0]


def checkpoint_values(path):
  """{variable name: numpy value} of a checkpoint prefix."""
  reader = tf.train.load_checkpoint(str(path))
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def assert_same_values(a, b):
  """Two checkpoints hold the same variables with bit-identical values."""
  a, b = checkpoint_values(a), checkpoint_values(b)
  assert sorted(a) == sorted(b)
  different = [name for name in a if not np.array_equal(a[name], b[name])]
  assert not different, f'{len(different)} of {len(a)} variables differ, e.g. {different[:3]}'


Events = collections.namedtuple('Events', 'scalars values images histograms texts graph')
"""What a TensorBoard folder holds: scalars {tag: [steps, in order written]}, values {tag: {step: value}}, images
{tags}, histograms {tag: [steps]}, texts {step: text} (the warnings), graph (the GraphDef written, or None)."""


def read_events(log_dir):
  """The Events of the event files in `log_dir` (not its subfolders)."""
  events = Events({}, {}, set(), {}, {}, None)
  graph = None
  for path in glob.glob(os.path.join(log_dir, 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      if event.graph_def:
        graph = tf.compat.v1.GraphDef.FromString(event.graph_def)
      for value in event.summary.value:
        if value.HasField('simple_value'):
          events.scalars.setdefault(value.tag, []).append(event.step)
          events.values.setdefault(value.tag, {})[event.step] = value.simple_value
        elif value.HasField('image'):
          events.images.add(value.tag)
        elif value.HasField('histo'):
          events.histograms.setdefault(value.tag, []).append(event.step)
        elif value.tag == 'warnings':
          assert value.metadata.plugin_data.plugin_name == 'text'
          events.texts[event.step] = tf.make_ndarray(value.tensor).item().decode()
  return events._replace(graph=graph)


def dir_flags(run_dir, data_dir):
  """The folder flags that keep a run's data and outputs inside `run_dir`."""
  return ['--data_dir', str(data_dir), '--checkpoint_dir', str(run_dir / 'ckpt'), '--sample_dir',
          str(run_dir / 'samples'), '--log_dir', str(run_dir / 'logs')]


@pytest.fixture(scope='session')
def trained_models(tmp_path_factory):
  """Tiny trained models, made once a test run: 'cond' on 28x28 labelled digits with --conditioning mnist (whose
  images differ visibly after a few steps: the DCGAN's batch-norm averages need more), 'cond_projection' and
  'cond_concat' the same with the other conditionings, 'uncond' on 16x12 RGB images.

  Returns:
    {name: (run_dir, dataset)}; pass dir_flags(run_dir, ...) and --dataset to use one.
  """
  def train(folder):
    write_idx_dataset(str(folder / 'data' / 'tiny'), 96)
    result = main_in_process('--train', '--dataset', 'tiny', '--batch_size', '16', '--train_size', '32', '--epoch',
                             '2', '--sample_freq', '1', '--sample_num', '10', '--conditioning', 'mnist', *TINY_MODEL,
                             *dir_flags(folder / 'cond', folder / 'data'))
    assert result.returncode == 0, result
    for conditioning in ('projection', 'concat'):
      result = main_in_process('--train', '--dataset', 'tiny', '--batch_size', '16', '--train_size', '32', '--epoch',
                               '1', '--sample_num', '10', '--conditioning', conditioning, *TINY_MODEL,
                               *dir_flags(folder / f'cond_{conditioning}', folder / 'data'))
      assert result.returncode == 0, result
    write_images(str(folder / 'uncond' / 'data' / 'rgb'), 8)
    result = main_in_process('--train', '--dataset', 'rgb', '--input_fname_pattern', '*.png', '--output_height', '16',
                             '--output_width', '12', '--batch_size', '4', '--epoch', '1', *TINY_MODEL,
                             *dir_flags(folder / 'uncond', folder / 'uncond' / 'data'))
    assert result.returncode == 0, result

  folder = once_per_run(tmp_path_factory, 'trained_models', train)
  return {'cond': (folder / 'cond', 'tiny'), 'cond_projection': (folder / 'cond_projection', 'tiny'),
          'cond_concat': (folder / 'cond_concat', 'tiny'), 'uncond': (folder / 'uncond', 'rgb')}


def small_config(tmp_path, name, **fields):
  """A Config of a tiny model on <tmp_path>/data/<name>, its run's folders in tmp_path; `fields` override."""
  defaults = dict(dataset=name, data_dir=str(tmp_path / 'data'), checkpoint_dir=str(tmp_path / 'ckpt'),
                  sample_dir=str(tmp_path / 'samples'), log_dir=str(tmp_path / 'logs'), gf_dim=4, df_dim=4,
                  gfc_dim=16, dfc_dim=16, z_dim=8, batch_size=8, epoch=1, sample_num=6)
  return Config(**dict(defaults, **fields))


def tiny_digits(tmp_path, **fields):
  """32 digits as IDX files in <tmp_path>/data/tiny and the complete config of a tiny model on them at 28x28:
  (config, dataset)."""
  write_idx_dataset(str(tmp_path / 'data' / 'tiny'), 32)
  return completion.prepare(small_config(tmp_path, 'tiny', output_height=28, output_width=28, **fields))


def tiny_rgb_trainer(tmp_path, **fields):
  """A Trainer of a tiny model on 16 random 16x16 RGB images in <tmp_path>/data/rgb, at float32, 2 epochs of 2
  steps unless `fields` say otherwise."""
  write_images(str(tmp_path / 'data' / 'rgb'), 16, size=(16, 16))
  cfg = Config(dataset='rgb', data_dir=str(tmp_path / 'data'), input_fname_pattern='*.png',
               checkpoint_dir=str(tmp_path / 'ckpt'), sample_dir=str(tmp_path / 'samples'),
               log_dir=str(tmp_path / 'logs'), output_height=16, output_width=16, gf_dim=4, df_dim=4,
               z_dim=8, batch_size=8, sample_num=4, ckpt_freq=100, precision='float32',
               **{'epoch': 2, **fields})
  cfg, dataset = completion.prepare(cfg)
  return trainer.Trainer(cfg, dataset)


def one_step(run, sess, step):
  """One training step of the Trainer `run`, starting an epoch where one begins; its numbers."""
  if step % run.steps_per_epoch == 0:
    run.start_epoch(sess, step // run.steps_per_epoch, 0)
  return run.train_step(sess, step)
