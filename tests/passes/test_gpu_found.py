"""Checker bugs the GPU found: plans `tlc check` accepted that computed wrong answers on the
H200 (benchmarks/drawn_gpu.py --count 200 --seed 2027: 195/200 before these fixes). Each is
refused now, with the diagnostic that says why."""
import random
import sys
from pathlib import Path

import pytest

from tlc.driver import check
from tlc.simulate import SimulationError, simulate

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from drawn_plans import EXAMPLES, add_alibi  # noqa: E402


@pytest.mark.parametrize("example", ["mha_fwd_fp16_d512_sm80", "mha_fwd_fp16_d512_sm75"])
def test_a_chunk_loop_past_the_head_dim_is_refused(example):
    """`for c = 0: cdiv(D, DC) + 1` with D a multiple of DC: the last chunk's columns lie past
    the row, and nothing masks them (the kernels wrote into the next row)."""
    text = EXAMPLES[example].replace("for c = 0: cdiv(D, DC)", "for c = 0: cdiv(D, DC) + 1")
    arch = "sm_75" if example.endswith("sm75") else "sm_80"
    result = check(text, arch=arch)
    errors = {d.code: d.message for d in result.diagnostics if d.is_error}
    assert set(errors) == {"output-coverage", "out-of-bounds"}  # the store and V's load
    assert "writes outside the tensor" in errors["output-coverage"]


def test_the_simulator_calls_a_column_chunk_past_the_row_an_error():
    text = EXAMPLES["mha_fwd_fp16_d512_sm80"].replace("for c = 0: cdiv(D, DC)",
                                                      "for c = 0: cdiv(D, DC) + 1")
    kernel = check(text, arch="sm_80").kernel
    with pytest.raises(SimulationError, match="past the end"):
        simulate(kernel, {"B": 1, "H": 1, "Nq": 4, "Nk": 4})


def test_a_softcap_after_an_alibi_is_refused():
    """ALiBi added after the scale and before the Softcap: the plan capped the bias too, the
    reference (and FlashAttention) bias the capped scores; up to 0.13 apart in bf16 outputs."""
    text = add_alibi(EXAMPLES["softcap_fwd_bf16_d256_sm80"], random.Random(0))
    assert text.index("Compute ALiBi") < text.index("Compute Softcap")
    codes = [d.code for d in check(text, arch="sm_80").diagnostics if d.is_error]
    assert codes == ["score-order"]


def test_a_load_of_a_column_chunk_past_the_row_is_refused():
    """The load-side twin of the chunk overrun: V's chunk coordinate one ahead of the loop
    reads past the row on the last chunk, whatever the store does."""
    text = EXAMPLES["mha_fwd_fp16_d512_sm80"].replace("D = c] from global", "D = c + 1] from global")
    result = check(text, arch="sm_80")
    assert [d.code for d in result.diagnostics if d.is_error] == ["out-of-bounds"]
    assert "column 512 of rows 512 wide" in result.diagnostics[0].message
