"""runtime.py: what --precision auto picks for the hardware (CPU flags and GPU compute capability faked)."""

import pytest

import runtime


@pytest.mark.parametrize('flags, expected', [
    ({'avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'}, ('bfloat16', 'amx_bf16, avx512_bf16')),
    ({'avx2', 'avx512f', 'avx512_bf16'}, ('bfloat16', 'avx512_bf16')),
    ({'avx2', 'fma'}, ('float32', 'no amx_bf16 or avx512_bf16 flag')),
])
def test_auto_precision_on_a_cpu_follows_its_bfloat16_flags(monkeypatch, flags, expected):
  monkeypatch.setattr(runtime, 'cpu_flags', lambda: flags)
  precision, why = runtime.auto_precision('/cpu:0')
  assert precision == expected[0] and expected[1] in why, why


def test_auto_precision_of_a_worker_of_several_is_float32(monkeypatch):
  monkeypatch.setattr(runtime, 'cpu_flags', lambda: {'avx512_bf16', 'amx_bf16'})
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


def test_cpu_flags_reads_this_machines_cpuinfo():
  flags = runtime.cpu_flags()
  with open('/proc/cpuinfo') as f:
    assert ('fpu' in flags) == (' fpu ' in f.read())  # (x86 CPUs all say fpu)
