"""The Hopper helpers (backends/include/tlc_sm90a.cuh) build for sm_90a with the nvcc here:
the kernels that test them on the GPU (tests/gpu/kernels/sm90a.cu) assemble with no spills,
and ptxas keeps the wgmma pipeline whole (it says so when it has to serialise one)."""
from pathlib import Path

import pytest

from tlc.build import build, find_nvcc

SOURCE = Path(__file__).parent.parent / "gpu" / "kernels" / "sm90a.cu"


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not on this machine")
def test_the_helpers_build_for_sm90a(tmp_path):
    built = build(SOURCE.read_text(), "sm_90a", cache_dir=tmp_path)
    names = {f.name for f in built.functions}
    assert names == {"tma_boxes", "wgmma_ss_n64", "wgmma_ss_n128", "wgmma_rs_n64"}
    assert all(f.spill_stores == 0 and f.stack_frame == 0 for f in built.functions)
    report = next(tmp_path.glob("*/ptxas.txt")).read_text()
    assert "serialized" not in report, report
