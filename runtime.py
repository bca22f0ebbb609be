"""Loads TensorFlow the way this app runs it. Import this module before anything imports tensorflow.

- oneDNN's CPU kernels: on an AVX2 CPU they train this DCGAN about 1.6x faster than TensorFlow's default CPU kernels
  (bench/throughput.py), but TensorFlow turns them on by itself only on CPUs with AVX-512 VNNI and newer. It reads
  TF_ENABLE_ONEDNN_OPTS once, when imported; set it to 0 yourself to compare.
- XLA on a CPU: a session's `global_jit_level` (main.py --xla) compiles nothing on a CPU unless TF_XLA_FLAGS holds
  --tf_xla_cpu_global_jit; with that flag and without --xla, nothing is compiled either.
- Quiet start: TensorFlow's C++ INFO chatter is off, and the two lines it prints before its logging starts to say
  that oneDNN is on are dropped. Anything else it prints while loading is passed on.

$ python main.py --train --dataset digits    # main.py imports this first
"""

import os
import sys
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')
if '--tf_xla_cpu_global_jit' not in os.environ.get('TF_XLA_FLAGS', ''):
  os.environ['TF_XLA_FLAGS'] = (os.environ.get('TF_XLA_FLAGS', '') + ' --tf_xla_cpu_global_jit').strip()

_NOTICES = ('All log messages before absl::InitializeLog() is called are written to STDERR',
            'oneDNN custom operations are on')


def _import_tensorflow():
  with tempfile.TemporaryFile() as capture:
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(capture.fileno(), 2)
    try:
      import tensorflow  # noqa: F401
    finally:
      os.dup2(saved, 2)
      os.close(saved)
      capture.seek(0)
      for line in capture.read().decode(errors='replace').splitlines():
        if not any(notice in line for notice in _NOTICES):
          print(line, file=sys.stderr)


_import_tensorflow()
