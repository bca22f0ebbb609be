"""The CPU this process runs on, as its fast kernels see it: the model name and feature flags of /proc/cpuinfo,
less the flags above a oneDNN cap (ONEDNN_MAX_CPU_ISA). No TensorFlow here: the layers of ops.py choose by CPU kind
with it, and the benchmarks' PyTorch side reads it too.

$ python -c "import hardware; print(hardware.cpu_model(), sorted(hardware.cpu_flags()))"
"""

import os
import platform

BFLOAT16_CPU_FLAGS = ('amx_bf16', 'avx512_bf16')  # the CPU flags of bfloat16 matrix units and instructions

CPUINFO = '/proc/cpuinfo'


def _cpuinfo(names, path=None):
  """The value of the first line of /proc/cpuinfo (`path`: another file of its format) whose field is one of
  `names`, or None where there is no such file or line."""
  try:
    with open(path or CPUINFO) as f:
      for line in f:
        name, colon, value = line.partition(':')
        if colon and name.strip() in names:
          return value.strip()
  except OSError:
    pass
  return None


# oneDNN's instruction-set levels, lowest first, with the /proc/cpuinfo flags of what each adds; ONEDNN_MAX_CPU_ISA
# (or its older name DNNL_MAX_CPU_ISA) names one of them, and oneDNN then uses nothing of the levels above it
ONEDNN_ISA_LEVELS = (
    (('SSE41',), ('sse4_1',)), (('AVX',), ('avx',)), (('AVX2',), ('avx2', 'fma')),
    (('AVX2_VNNI', 'AVX2_VNNI_2'), ('avx_vnni',)),
    (('AVX512_CORE',), ('avx512f', 'avx512bw', 'avx512vl', 'avx512dq', 'avx512cd')),
    (('AVX512_CORE_VNNI',), ('avx512_vnni',)), (('AVX512_CORE_BF16',), ('avx512_bf16',)),
    (('AVX512_CORE_FP16', 'AVX10_1_512'), ('avx512_fp16',)),
    (('AVX512_CORE_AMX', 'AVX10_1_512_AMX'), ('amx_bf16', 'amx_tile', 'amx_int8')),
    (('AVX512_CORE_AMX_FP16', 'AVX10_1_512_AMX_FP16', 'ALL'), ('amx_fp16',)))


def onednn_isa_cap():
  """The instruction-set level ONEDNN_MAX_CPU_ISA (or DNNL_MAX_CPU_ISA) holds oneDNN to, upper case; None when
  neither is set or it names no level of ONEDNN_ISA_LEVELS."""
  cap = (os.environ.get('ONEDNN_MAX_CPU_ISA') or os.environ.get('DNNL_MAX_CPU_ISA') or '').strip().upper()
  return cap if any(cap in names for names, _ in ONEDNN_ISA_LEVELS) else None


def cpu_flags(path=None):
  """The CPU's feature flags, from /proc/cpuinfo (`path`: another file of its format): an x86 CPU's `flags` line,
  an ARM CPU's `Features`; an empty set where there is no such file or line.

  Under a oneDNN cap (onednn_isa_cap(); e.g. ONEDNN_MAX_CPU_ISA=AVX2), the flags of the levels above it are left
  out: TensorFlow's fast kernels cannot use them (its bfloat16 matmul then stops the process), so the flags say
  what the kernels can run, and the rules chosen by CPU kind (--precision auto among them) choose by that.
  """
  flags = set((_cpuinfo(('flags', 'Features'), path) or '').split())
  cap = onednn_isa_cap()
  if cap:
    level = next(i for i, (names, _) in enumerate(ONEDNN_ISA_LEVELS) if cap in names)
    flags -= {flag for _, above in ONEDNN_ISA_LEVELS[level + 1:] for flag in above}
  return flags


def bfloat16_units():
  """The flags of BFLOAT16_CPU_FLAGS the CPU has, as its kernels see it (cpu_flags()), in that order: [] where
  bfloat16 would be emulated (or, under a oneDNN cap below it, stop the process)."""
  flags = cpu_flags()
  return [flag for flag in BFLOAT16_CPU_FLAGS if flag in flags]


def avx2_only(flags=None):
  """Whether the CPU (`flags`: a set of cpu_flags() instead) is an x86 one whose widest vectors are AVX2's, as
  oneDNN may use them: AVX2 and no AVX-512 (an AVX2-only CPU, or a newer one held to AVX2 by ONEDNN_MAX_CPU_ISA)."""
  flags = cpu_flags() if flags is None else flags
  return 'avx2' in flags and 'avx512f' not in flags


def cpu_model(path=None):
  """The CPU's model name, from /proc/cpuinfo ('Intel(R) Xeon(R) Processor'); the platform's word for it where the
  file does not say."""
  return _cpuinfo(('model name',), path) or platform.processor() or platform.machine() or 'unknown CPU'
