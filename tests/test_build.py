"""nvcc through tlc.build: the reviewed headers compile for every target, the ptxas report is
read, failures come back with the command that repeats them, and builds are cached."""
from pathlib import Path

import pytest

from tlc.build import BuildError, build, find_nvcc, parse_ptxas

KERNELS = Path(__file__).parent / "gpu" / "kernels" / "fragments.cu"
needs_nvcc = pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not on this machine")

REPORT = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'mma_f16' for 'sm_80'
ptxas info    : Function properties for mma_f16
    0 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 40 registers, used 1 barriers, 768 bytes smem, 380 bytes cmem[0]
ptxas info    : Compiling entry function 'quad_ops' for 'sm_80'
ptxas info    : Function properties for quad_ops
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 10 registers, used 0 barriers, 368 bytes cmem[0]
"""


def test_ptxas_report_is_read():
    mma, quad = parse_ptxas(REPORT)
    assert (mma.name, mma.registers, mma.spill_stores, mma.spill_loads, mma.shared_memory) == (
        "mma_f16", 40, 8, 4, 768)
    assert (quad.registers, quad.spill_stores, quad.shared_memory) == (10, 0, 0)


@needs_nvcc
@pytest.mark.parametrize("arch", ["sm_80", "sm_86", "sm_89", "sm_90"])
def test_helpers_build_for_every_ampere_or_newer_target(arch, tmp_path):
    result = build(KERNELS.read_text(), arch, cache_dir=tmp_path)
    assert result.path.read_bytes()[:4] == b"\x7fELF"
    mma = result.function("mma_f16")
    assert mma.registers > 0 and mma.spill_stores == mma.spill_loads == 0


@needs_nvcc
def test_ptx_for_jit_and_the_cache(tmp_path):
    first = build(KERNELS.read_text(), "sm_80", output="ptx", cache_dir=tmp_path)
    assert ".target sm_80" in first.path.read_text() and not first.cached
    again = build(KERNELS.read_text(), "sm_80", output="ptx", cache_dir=tmp_path)
    assert again.cached and again.path == first.path


@needs_nvcc
def test_turing_helpers_build(tmp_path):
    source = '#include "tlc_sm75.cuh"\nextern "C" __global__ void k(float* c) {\n' \
             '  uint32_t a[2] = {0, 0}, b[1] = {0}; float z[4] = {0, 0, 0, 0}, d[4];\n' \
             '  tlc::mma_m16n8k8_f16(d, a, b, z); c[threadIdx.x] = d[0]; }\n'
    assert build(source, "sm_75", cache_dir=tmp_path).function("k").spill_stores == 0


@needs_nvcc
def test_a_failing_build_says_how_to_repeat_it(tmp_path):
    with pytest.raises(BuildError) as caught:
        build('extern "C" __global__ void k() { undeclared(); }', "sm_80", cache_dir=tmp_path)
    text = str(caught.value)
    assert "nvcc failed for sm_80" in text and "undeclared" in text
    assert "repeat it with:" in text and "-arch=sm_80" in caught.value.command


def test_missing_nvcc_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr("tlc.build.find_nvcc", lambda: None)
    with pytest.raises(BuildError, match="nvcc was not found"):
        build("", "sm_80", cache_dir=tmp_path)
