"""runtime.py and hardware.py: the CPU's flags as its kernels see them, and what --precision auto picks for the
hardware (CPU flags and GPU compute capability faked)."""

import pytest

import hardware
from training import runtime


@pytest.mark.parametrize('flags, expected', [
    ({'avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'}, ('bfloat16', 'amx_bf16, avx512_bf16')),
    ({'avx2', 'avx512f', 'avx512_bf16'}, ('bfloat16', 'avx512_bf16')),
    ({'avx2', 'fma'}, ('float32', 'no amx_bf16 or avx512_bf16 flag')),
])
def test_auto_precision_on_a_cpu_follows_its_bfloat16_flags(monkeypatch, flags, expected):
  monkeypatch.setattr(hardware, 'cpu_flags', lambda: flags)
  precision, why = runtime.auto_precision('/cpu:0')
  assert precision == expected[0] and expected[1] in why, why


def test_auto_precision_of_a_worker_of_several_is_float32(monkeypatch):
  monkeypatch.setattr(hardware, 'cpu_flags', lambda: {'avx512_bf16', 'amx_bf16'})
  precision, why = runtime.auto_precision('/cpu:0', multi_worker=True)
  assert precision == 'float32' and 'multi-worker runtime' in why, why


@pytest.mark.parametrize('capability, expected', [((8, 0), 'mixed_float16'), ((7, 0), 'mixed_float16'),
                                                  ((6, 1), 'float32')])
def test_auto_precision_on_a_gpu_follows_its_compute_capability(monkeypatch, capability, expected):
  monkeypatch.setattr(runtime.tf.config, 'list_physical_devices', lambda kind: ['gpu0', 'gpu1'])
  monkeypatch.setattr(runtime.tf.config.experimental, 'get_device_details',
                      lambda device: {'compute_capability': capability} if device == 'gpu1' else {})
  precision, why = runtime.auto_precision('/gpu:1')
  assert precision == expected and f'{capability[0]}.{capability[1]}' in why, why


# /proc/cpuinfo as the machines of this project show it (cut to the lines that matter, two processors each)
EPYC_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni
bogomips\t: 4899.99

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni
"""
XEON_AMX = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx avx2 avx512f avx512bw avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8
vmx flags\t: vnmi preemption_timer invvpid ept_x_only

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx avx2 avx512f avx512bw avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8
"""
ARM = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics bf16 i8mm
CPU implementer\t: 0x41
"""


@pytest.mark.parametrize('text, present, absent, precision', [
    (EPYC_AVX2, {'avx2', 'fma', 'fpu'}, {'avx512f', 'avx512_bf16', 'amx_bf16'}, 'float32'),
    (XEON_AMX, {'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'}, {'vnmi', 'ept_x_only'}, 'bfloat16'),
    (ARM, {'asimd', 'bf16'}, {'avx2', 'amx_bf16'}, 'float32'),
    ('', set(), {'fpu'}, 'float32'),
])
def test_cpu_flags_and_auto_precision_from_a_cpuinfo_file(monkeypatch, tmp_path, text, present, absent, precision):
  path = tmp_path / 'cpuinfo'
  path.write_text(text)
  flags = hardware.cpu_flags(str(path))
  assert present <= flags and not absent & flags
  monkeypatch.setattr(hardware, 'CPUINFO', str(path))
  assert runtime.auto_precision('/cpu:0')[0] == precision


def test_no_cpuinfo_is_no_flags(tmp_path):
  assert hardware.cpu_flags(str(tmp_path / 'missing')) == set()


@pytest.mark.parametrize('cap, present, absent, precision', [
    ('AVX2', {'avx', 'avx2', 'fpu'}, {'avx512f', 'avx512bw', 'avx512_bf16', 'avx512_fp16', 'amx_bf16'}, 'float32'),
    ('avx512_core', {'avx2', 'avx512f', 'avx512bw'}, {'avx512_bf16', 'amx_bf16', 'amx_tile'}, 'float32'),
    ('AVX512_CORE_BF16', {'avx512f', 'avx512_bf16'}, {'avx512_fp16', 'amx_bf16'}, 'bfloat16'),
    ('AVX512_CORE_AMX', {'avx512_bf16', 'amx_bf16', 'amx_tile'}, set(), 'bfloat16'),
    ('NO_SUCH_LEVEL', {'avx512_bf16', 'amx_bf16'}, set(), 'bfloat16'),
])
def test_a_onednn_cap_leaves_out_the_flags_above_it(monkeypatch, tmp_path, cap, present, absent, precision):
  path = tmp_path / 'cpuinfo'
  path.write_text(XEON_AMX)
  monkeypatch.setenv('ONEDNN_MAX_CPU_ISA', cap)
  flags = hardware.cpu_flags(str(path))
  assert present <= flags and not absent & flags, flags
  monkeypatch.setattr(hardware, 'CPUINFO', str(path))
  assert runtime.auto_precision('/cpu:0')[0] == precision


@pytest.mark.parametrize('text, cap, avx2_only', [(EPYC_AVX2, None, True), (XEON_AMX, None, False),
                                                (XEON_AMX, 'AVX2', True), (ARM, None, False)])
def test_avx2_only_is_an_x86_cpu_without_avx512_as_onednn_sees_it(monkeypatch, tmp_path, text, cap, avx2_only):
  path = tmp_path / 'cpuinfo'
  path.write_text(text)
  if cap:
    monkeypatch.setenv('ONEDNN_MAX_CPU_ISA', cap)
  monkeypatch.setattr(hardware, 'CPUINFO', str(path))
  assert hardware.avx2_only() is avx2_only
