"""The Hopper helpers (backends/include/tlc_sm90a.cuh) build for sm_90a with the nvcc here:
the kernels that test them on the GPU (tests/gpu/kernels/sm90a.cu) assemble with no spills,
ptxas keeps the wgmma pipeline whole (it says so when it has to serialise one), and their
SASS holds Hopper's instructions: HGMMA for wgmma, UTMALDG for TMA, SYNCS for mbarriers."""
import re
from pathlib import Path

import pytest

from tlc.build import build, find_cuobjdump, find_nvcc, sass

SOURCE = Path(__file__).parent.parent / "gpu" / "kernels" / "sm90a.cu"


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not on this machine")
def test_the_helpers_build_for_sm90a(tmp_path):
    built = build(SOURCE.read_text(), "sm_90a", cache_dir=tmp_path)
    names = {f.name for f in built.functions}
    assert names == {"tma_boxes", "wgmma_ss_n64", "wgmma_ss_n128", "wgmma_rs_n64"}
    assert all(f.spill_stores == 0 and f.stack_frame == 0 for f in built.functions)
    report = next(tmp_path.glob("*/ptxas.txt")).read_text()
    assert "serialized" not in report, report


@pytest.mark.skipif(find_nvcc() is None or find_cuobjdump() is None,
                    reason="nvcc or cuobjdump (pip install nvidia-cuda-cuobjdump "
                           "nvidia-cuda-nvdisasm) is not on this machine")
def test_the_helpers_compile_to_hopper_instructions(tmp_path):
    built = build(SOURCE.read_text(), "sm_90a", cache_dir=tmp_path)
    code = sass(built.path)
    functions = dict(re.findall(r"Function : (\w+)\n(.*?)(?=Function : |\Z)", code, re.S))
    assert set(functions) == {"tma_boxes", "wgmma_ss_n64", "wgmma_ss_n128", "wgmma_rs_n64"}
    assert "UTMALDG.2D" in functions["tma_boxes"] and "SYNCS" in functions["tma_boxes"]
    assert functions["wgmma_ss_n64"].count("HGMMA.64x64x16.F32") == 4
    assert functions["wgmma_ss_n128"].count("HGMMA.64x128x16.F32") == 4
    assert functions["wgmma_rs_n64"].count("HGMMA.64x64x16.F32") == 4
    rs = functions["wgmma_rs_n64"]
    assert "tnspB" in rs and "HMMA" not in rs.replace("HGMMA", "")  # no mma.sync fallback
