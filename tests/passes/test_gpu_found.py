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


STAGE_O = "\nCopy O from register to shared\n"


def _staged_in_the_loop(text: str) -> str:
    """The plan with `Copy O from register to shared` moved to the end of its key loop."""
    assert STAGE_O in text
    head, tail = text.replace(STAGE_O, "\n").rsplit("\nend\n", 1)
    return head + "\n  Copy O from register to shared\nend\n" + tail


@pytest.mark.parametrize("example", ["gqa_causal_fwd_bf16_d64_sm90a",
                                     "gqa_causal_fwd_bf16_d64_sm80"])
def test_o_staged_only_inside_a_causal_loop_is_refused(example):
    """Drawn plan 15 of seed 2026 for sm_90a (59/60 on the H200): `Copy O from register to
    shared` moved into the causal key loop. Rows that see no key run no iteration, so the
    store to global read whatever the shared tile held (not 0; 4.06 off elsewhere)."""
    moved = _staged_in_the_loop(EXAMPLES[example])
    result = check(moved, arch=example.rsplit("_", 1)[1].replace("sm", "sm_"))
    errors = [d for d in result.diagnostics if d.is_error]
    assert [d.code for d in errors] == ["unwritten-read"], result.diagnostics
    assert "may run no iteration" in errors[0].message
    assert "Copy O (BM, D)" in moved.splitlines()[errors[0].span.line - 1]


def test_o_staged_inside_a_loop_that_always_runs_is_accepted():
    """Over all the keys (`cdiv(Nk, BN)`, Nk >= 1) the loop runs at least once, and its last
    iteration leaves the finished O in the shared tile."""
    text = EXAMPLES["mha_fwd_fp16_d128_sm90a"]
    assert "for n = 0: cdiv(Nk, BN)" in text
    result = check(_staged_in_the_loop(text), arch="sm_90a")
    assert not any(d.code == "unwritten-read" for d in result.diagnostics), result.diagnostics
