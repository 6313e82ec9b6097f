"""Plans that `tlc check --arch A` once accepted and `tlc compile` could not build: internal
errors in the lowering, refusals only compile reported, nvcc redeclarations. Each is an edit
of an example that a person or the plan draws made (tests/drawn_plans.py); now check runs the
lowering, so each is refused at its statement with a help (by the lowering, or by a semantic
check that now comes first), or accepted and builds."""
from pathlib import Path

import pytest

from tlc.api import check
from tlc.build import build, find_nvcc

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def edited(example: str, *edits: tuple[str, str]) -> str:
    text = (EXAMPLES / f"{example}.tl").read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


K_LOAD = ("    Copy K (BN, D) in coordinate [B = b, H = h, Nk = n] from global to shared with "
          "vector 8, stages STAGES\n", "")
CASES = {
    # AttributeError: 'NoneType' object has no attribute 'name' (the score rules looked for
    # K's global copy to place the key columns)
    "a GEMM operand never loaded from global memory": (
        "mha_fwd_fp16_d512_sm80", "sm_80", [K_LOAD], "Copy K from shared to register",
        "is read from shared memory here"),
    # StopIteration (holding V: the emitter looked for a GEMM with V as its A operand)
    "V held in registers outside its loop": (
        "mha_fwd_fp16_d512_sm75", "sm_75",
        [("    Copy V from shared to register\n", ""),
         ("for c = 0: cdiv(D, DC)\n", "for c = 0: cdiv(D, DC)\n  Copy V from shared to register\n")],
        "Copy V from shared to register", "is read from shared memory here"),
    # refused by compile only: "a tile's row needs a compile-time width no wider than its
    # tensor's" (DC = 128 > D = 32)
    "a column chunk wider than the head dim": (
        "mha_fwd_fp16_d512_sm75", "sm_75", [("param D = 512", "param D = 32")],
        "Copy V (BN, DC)", "no wider than its tensor's"),
    # nvcc: "Q_frag" has already been declared
    "Q copied into registers twice": (
        "mha_fwd_fp16_d64_sm75", "sm_75",
        [("Copy Q from shared to register\n",
          "Copy Q from shared to register\nCopy Q from shared to register\n")],
        "Copy Q from shared to register", "twice"),
    # nvcc: "V_next" has already been declared (sm_75: two copies of V in one loop)
    "V copied from global memory twice in a loop": (
        "mha_fwd_fp16_d64_sm75", "sm_75",
        [("  Copy V (BN, D) in coordinate [B = b, H = h, Nk = n] from global to shared with "
          "vector 8\n", "  Copy V (BN, D) in coordinate [B = b, H = h, Nk = n] from global to "
          "shared with vector 8\n  Copy V (BN, D) in coordinate [B = b, H = h, Nk = n] from "
          "global to shared with vector 8\n")],
        "Copy V (BN, D)", "twice in one iteration"),
    # nvcc: "K_next" has already been declared (sm_75: two copies of K in one loop); on sm_80
    # the same plan built and raced (racecheck: write-write hazards on the K tile)
    "K copied from global memory twice in a loop": (
        "mha_fwd_fp16_d64_sm75", "sm_75",
        [("  Copy K (BN, D) in coordinate [B = b, H = h, Nk = n] from global to shared with "
          "vector 8\n", "  Copy K (BN, D) in coordinate [B = b, H = h, Nk = n] from global to "
          "shared with vector 8\n  Copy K (BN, D) in coordinate [B = b, H = h, Nk = n] from "
          "global to shared with vector 8\n")],
        "Copy K (BN, D)", "twice in one iteration"),
    # KeyError: 'O' (O allocated in shared but stored straight from registers)
    "O stored from registers with its shared tile left allocated": (
        "window_causal_gqa_fwd_fp16_d128_sm80", "sm_80",
        [("Copy O from register to shared\n", ""),
         ("from shared to global with vector 8\n", "from register to global\n")],
        None, None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_once_broken_plans_are_refused_where_they_break_or_build(name, tmp_path):
    example, arch, edits, statement, says = CASES[name]
    text = edited(example, *edits)
    result = check(text, arch=arch)
    assert not [d for d in result.diagnostics if d.code == "internal-error"]
    if statement is None:  # legal: it must lower and build
        assert result.ok, [d.message for d in result.diagnostics]
        if find_nvcc():
            kernel = result.lowered.main
            report = build(kernel.source, arch, cache_dir=tmp_path).function(kernel.name)
            assert report.spill_stores == report.spill_loads == 0
        return
    refusals = [d for d in result.diagnostics if d.is_error]
    assert len(refusals) == 1 and refusals[0].help, [d.message for d in result.diagnostics]
    assert refusals[0].code in ("backend-unsupported", "unwritten-read")
    line = text.split("\n")[refusals[0].span.line - 1]
    assert any(part in line for part in statement.split("|")), line
    assert says in refusals[0].message
