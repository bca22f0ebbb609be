"""What the speed benchmarks share: the cases they time, the machine they ran on, and a case's random data.

A case is a model of main.py at a size: mnist28-cond, the conditional MNIST model at 28x28 (--conditioning mnist,
the one the PyTorch twin copies, unless a script's --conditioning says otherwise), and rgb64, the unconditional
64x64 colour model. The numbers a benchmark prints are only comparable with others of the same run: every record
says the CPU (machine()), and the VMs these ran on drift by 10-20% within minutes.

$ .venv/bin/python bench/throughput.py --cases rgb64    # one of the scripts that use it
"""

import numpy as np

# name: (height, width, channels, label classes)
CASES = {'mnist28-cond': (28, 28, 1, 10), 'rgb64': (64, 64, 3, 0)}
# The CPU flags that set TensorFlow's (and PyTorch's) speed here: vector widths, bfloat16 and the matrix units
SPEED_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'avx512_fp16', 'amx_bf16', 'amx_tile',
               'amx_int8', 'amx_fp16')


def machine():
  """{'cpu': its model name, 'flags': those of SPEED_FLAGS it has}, read by the runtime's parser of /proc/cpuinfo."""
  from training import runtime  # pylint: disable=import-outside-toplevel; (it loads TensorFlow: not for the twin)
  flags = runtime.cpu_flags()
  return {'cpu': runtime.cpu_model(), 'flags': [flag for flag in SPEED_FLAGS if flag in flags]}


def machine_line():
  """'Intel(R) Xeon(R) Processor (avx2, fma, ..., amx_bf16)': the CPU beside every number a benchmark prints."""
  cpu = machine()
  return f'{cpu["cpu"]} ({", ".join(cpu["flags"]) or "no speed flag"})'


def random_case(name, count, seed=0):
  """A datasets.PixelSource of `count` random images of case `name`, with random labels where it has classes."""
  import datasets  # pylint: disable=import-outside-toplevel; (TensorFlow: not for the twin, which reads CASES only)
  height, width, channels, classes = CASES[name]
  rng = np.random.default_rng(seed)
  return datasets.PixelSource(name, rng.integers(0, 256, [count, height, width, channels], dtype=np.uint8),
                              rng.integers(0, max(classes, 1), [count]).astype(np.int32), classes)
