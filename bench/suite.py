"""What the speed benchmarks share: the cases they time, the machine they ran on, and a case's random data.

A case is a model of main.py at a size with its recipe (CASES): mnist28-cond, the conditional MNIST model at
28x28 (--conditioning mnist, the one the PyTorch twin copies, unless a script's --conditioning says otherwise); rgb64,
the unconditional 64x64 colour model of the 2015 recipe; rgb64-default, the same size as main.py trains colour
images by default. The numbers a benchmark prints are only comparable with others of the same run: every record
says the CPU (machine()), and the VMs these ran on drift by 10-20% within minutes.

$ .venv/bin/python bench/throughput.py --cases rgb64    # one of the scripts that use it
"""

import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import hardware  # noqa: E402  (the project's root; no TensorFlow: the PyTorch twin reads this module too)

Case = collections.namedtuple('Case', 'height width channels classes upsample augment ema')
"""A model of main.py at a size and its recipe: G's upsampling (--upsample), D's augmentations (--augment) and the
decay of G's moving average (--ema, 0: none); bench/torch_twin.py builds the same."""
CASES = {
    # the conditional MNIST model as main.py trains digits by default: transposed convolutions, no augmentation,
    # G's moving average
    'mnist28-cond': Case(28, 28, 1, 10, 'deconv', 'none', 0.999),
    # the 2015 recipe at 64x64: the original paper's G and D and nothing more
    'rgb64': Case(64, 64, 3, 0, 'deconv', 'none', 0.0),
    # main.py's default for colour images (app/completion.py): resize-convolution G, DiffAugment translation and
    # cutout, G's moving average
    'rgb64-default': Case(64, 64, 3, 0, 'resize', 'translation,cutout', 0.999),
}
# The CPU flags that set TensorFlow's (and PyTorch's) speed here: vector widths, bfloat16 and the matrix units
SPEED_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'avx512_fp16', 'amx_bf16', 'amx_tile',
               'amx_int8', 'amx_fp16')


# An AVX2-only CPU (most laptops, many cloud CPUs) played by a newer one: oneDNN (TensorFlow's fast kernels, and
# PyTorch's), PyTorch's own kernels, MKL and OpenBLAS each held to AVX2 and FMA. TensorFlow's other kernels are built
# for AVX anyway (its start-up notice lists AVX2 among the instructions they do not use), so both frameworks run
# the instructions of an AVX2 CPU; the cores, caches and clock stay the newer CPU's.
AVX2_STAND_IN = {'ONEDNN_MAX_CPU_ISA': 'AVX2', 'ATEN_CPU_CAPABILITY': 'avx2', 'MKL_ENABLE_INSTRUCTIONS': 'AVX2',
                 'OPENBLAS_CORETYPE': 'Haswell'}


def play_avx2():
  """Runs this script again with AVX2_STAND_IN in its environment (its subprocesses inherit it), unless it is
  there already. Call it before timing anything: the libraries read it once, when they start."""
  if any(os.environ.get(name) != value for name, value in AVX2_STAND_IN.items()):
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **AVX2_STAND_IN})


def machine():
  """{'cpu': its model name, 'flags': those of SPEED_FLAGS its kernels can use, 'onednn_cap': the oneDNN cap or
  None}, read by hardware.py from /proc/cpuinfo (it leaves out the flags above a cap)."""
  flags = hardware.cpu_flags()
  return {'cpu': hardware.cpu_model(), 'flags': [flag for flag in SPEED_FLAGS if flag in flags],
          'onednn_cap': hardware.onednn_isa_cap()}


def machine_line():
  """'Intel(R) Xeon(R) Processor (avx2, fma, ..., amx_bf16)': the CPU beside every number a benchmark prints;
  under a oneDNN cap, 'held to AVX2' after the flags it leaves."""
  cpu = machine()
  cap = f'; oneDNN held to {cpu["onednn_cap"]}' if cpu['onednn_cap'] else ''
  return f'{cpu["cpu"]} ({", ".join(cpu["flags"]) or "no speed flag"}{cap})'


def precision_of(flag):
  """What main.py's --precision `flag` means for a step on this CPU ('auto' resolved)."""
  from training import runtime  # pylint: disable=import-outside-toplevel; (TensorFlow: not for the twin)
  return runtime.auto_precision('/cpu:0')[0] if flag == 'auto' else flag


def case_config(name, data, precision='auto', **fields):
  """The complete Config of case `name` on `data` (random_case's) as main.py would make it: the case's size and
  recipe, --precision `precision` (auto resolved), and `fields` (batch_size, checkpoint_dir, ...) beside them."""
  from app import completion  # pylint: disable=import-outside-toplevel; (TensorFlow: not for the twin)
  from config import Config  # pylint: disable=import-outside-toplevel
  case = CASES[name]
  return completion.complete(Config(dataset=name, output_height=case.height, output_width=case.width,
                                    precision=precision_of(precision), upsample=case.upsample, augment=case.augment,
                                    ema=case.ema, **fields), data)


def started(run, warmup):
  """A session of the training.Trainer `run`, its variables initialized, its first epoch started and `warmup`
  steps trained (untimed): ready to time step `warmup` on."""
  sess = run.session()
  sess.run(run.dcgan.init)
  run.start_epoch(sess, 0, 0)
  for step in range(warmup):
    run.train_step(sess, step)
  return sess


def random_case(name, count, seed=0):
  """A datasets.PixelSource of `count` random images of case `name`, with random labels where it has classes."""
  import datasets  # pylint: disable=import-outside-toplevel; (TensorFlow: not for the twin, which reads CASES only)
  height, width, channels, classes = CASES[name][:4]
  rng = np.random.default_rng(seed)
  return datasets.PixelSource(name, rng.integers(0, 256, [count, height, width, channels], dtype=np.uint8),
                              rng.integers(0, max(classes, 1), [count]).astype(np.int32), classes)
