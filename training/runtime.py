"""Loads TensorFlow the way this app runs it. Import this module before anything imports tensorflow.

- oneDNN's CPU kernels: on an AVX2 CPU they train this DCGAN about 1.6x faster than TensorFlow's default CPU kernels
  (bench/throughput.py), but TensorFlow turns them on by itself only on CPUs with AVX-512 VNNI and newer. It reads
  TF_ENABLE_ONEDNN_OPTS once, when imported; set it to 0 yourself to compare.
- XLA on a CPU: a session's `global_jit_level` (main.py --xla) compiles nothing on a CPU unless TF_XLA_FLAGS holds
  --tf_xla_cpu_global_jit; with that flag and without --xla, nothing is compiled either.
- Precision: --precision auto picks bfloat16 where the CPU has bfloat16 units (AMX or AVX512_BF16, read from
  /proc/cpuinfo by hardware.py), mixed float16 on a GPU of compute capability 7.0 or newer, else float32
  (auto_precision).
  Grappler's mixed-precision rewrites read their op lists from TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_* each time
  they run; the ops of the losses (FLOAT32_OPS) are moved to the deny list, so that the losses, sigmoid(D) and
  the losses' own gradients stay float32 (docs/precision.md compares bfloat16's quality with float32's).
- Quiet start: TensorFlow's C++ INFO chatter is off, and the two lines it prints before its logging starts to say
  that oneDNN is on are dropped. Anything else it prints while loading is passed on.

$ python main.py --train --dataset digits    # main.py imports this first
"""

import os
import sys
import tempfile

from common import progress
import hardware

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')
if '--tf_xla_cpu_global_jit' not in os.environ.get('TF_XLA_FLAGS', ''):
  os.environ['TF_XLA_FLAGS'] = (os.environ.get('TF_XLA_FLAGS', '') + ' --tf_xla_cpu_global_jit').strip()

# In the training graph these ops belong to the losses: softplus (non-saturating and minimax), sigmoid (D(x) in the
# log, and softplus's gradient), the batch means, the squares of least squares and the gradient penalty's norm
FLOAT32_OPS = ('Softplus', 'SoftplusGrad', 'Sigmoid', 'SigmoidGrad', 'Mean', 'Sum', 'Square', 'Sqrt')


def _add_to_list(name, ops):
  """Adds `ops` to the comma-separated list in the environment variable `name`, keeping what is there."""
  present = [op for op in os.environ.get(name, '').split(',') if op]
  os.environ[name] = ','.join(present + [op for op in ops if op not in present])


for _list in ('INFERLIST_REMOVE', 'CLEARLIST_REMOVE', 'DENYLIST_ADD'):  # (an op in two lists is an error)
  _add_to_list(f'TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_{_list}', FLOAT32_OPS)

_NOTICES = ('All log messages before absl::InitializeLog() is called are written to STDERR',
            'oneDNN custom operations are on')


def _import_tensorflow():
  with tempfile.TemporaryFile() as capture:
    try:
      with progress.stderr_to(capture):
        import tensorflow  # noqa: F401
    finally:
      capture.seek(0)
      for line in capture.read().decode(errors='replace').splitlines():
        if not any(notice in line for notice in _NOTICES):
          print(line, file=sys.stderr)


_import_tensorflow()
import tensorflow as tf  # noqa: E402


MULTI_WORKER_NO_BFLOAT16 = ("TensorFlow 2.21's multi-worker runtime leaves the bfloat16 convolutions without "
                            "oneDNN's kernels")


def auto_precision(device, multi_worker=False):
  """What --precision auto means on `device` (e.g. '/cpu:0'), in one process or (`multi_worker`) one worker of
  several: (the precision, why, in a few words)."""
  spec = tf.DeviceSpec.from_string(device)
  if spec.device_type == 'GPU':
    gpus = tf.config.list_physical_devices('GPU')
    index = spec.device_index or 0
    capability = tf.config.experimental.get_device_details(gpus[index]).get('compute_capability') \
        if index < len(gpus) else None
    if capability and tuple(capability) >= (7, 0):
      return 'mixed_float16', f'GPU {index} has compute capability {capability[0]}.{capability[1]}: tensor cores'
    known = f'{capability[0]}.{capability[1]}' if capability else 'unknown'
    return 'float32', f'GPU {index} has compute capability {known}, not 7.0 or newer'
  units = hardware.bfloat16_units()
  if units and multi_worker:
    return 'float32', f'this CPU has bfloat16 units, but {MULTI_WORKER_NO_BFLOAT16}'
  if units:
    return 'bfloat16', f'this CPU has bfloat16 units ({", ".join(units)})'
  if hardware.onednn_isa_cap():
    return 'float32', f'ONEDNN_MAX_CPU_ISA={hardware.onednn_isa_cap()} holds oneDNN below the bfloat16 units, if any'
  return 'float32', f'this CPU has no bfloat16 units (no {" or ".join(hardware.BFLOAT16_CPU_FLAGS)} flag)'
