"""`tlc sim` as the oracle: every example simulates correct; plans that build but compute
something else simulate wrong; a coordinate outside its tensor is an error at its statement;
accepted drawn plans simulate correct."""
from pathlib import Path

import pytest

from drawn_plans import drawn
from tlc.api import check, simulate as simulate_text
from tlc.simulate import SimulationError, Simulator, simulate

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = [p for p in sorted((ROOT / "examples").glob("*.tl")) if "sketch" not in p.stem]
MHA = (ROOT / "examples" / "mha_fwd_fp16_d128_sm80.tl").read_text()
GQA = (ROOT / "examples" / "gqa_causal_fwd_bf16_d64_sm80.tl").read_text()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_simulates_correct(path):
    result = check(path.read_text())
    verdict, sizes = simulate(result.kernel, {"B": 1})
    assert verdict.ok, (sizes, verdict.problems)


WRONG = {
    "Softmax dropped": MHA.replace("  Compute Softmax S\n", ""),
    "Softmax twice": MHA.replace("  Compute Softmax S\n", "  Compute Softmax S\n" * 2),
    "Multiply after the Softmax": MHA.replace("  Compute Multiply S, scale and get new S\n", "")
    .replace("  Compute Softmax S\n", "  Compute Softmax S\n  Compute Multiply S, scale and get "
             "new S\n"),
    "O never staged": MHA.replace("Copy O from register to shared\n", ""),
    "grid floor": MHA.replace("grid (cdiv(Nq, BM), H, B)", "grid (Nq / BM, H, B)"),
    "accumulate twice": MHA.replace(
        "  Compute GEMM S, V and accumulate O with warps (WARPS, 1), mma m16n8k16\n",
        "  Compute GEMM S, V and accumulate O with warps (WARPS, 1), mma m16n8k16\n" * 2),
}


@pytest.mark.parametrize("name", sorted(WRONG))
def test_plans_that_compute_something_else_simulate_wrong_and_check_refuses_them(name):
    result = check(WRONG[name])
    assert not result.ok  # the checker refuses it ...
    verdict, _ = simulate(result.kernel, {"B": 1, "H": 1})
    assert not verdict.ok  # ... and it is indeed wrong


def test_a_gqa_coordinate_outside_kv_heads_is_located():
    text = GQA.replace("Hkv = h / GROUP", "Hkv = h")
    result = check(text)
    assert {d.code for d in result.diagnostics} == {"out-of-bounds"}  # check refuses it, and
    with pytest.raises(SimulationError) as error:                     # sim shows where
        simulate(result.kernel, {})
    assert "Copy K (BN, D)" in text.split("\n")[error.value.statement.span.line - 1]
    assert not simulate_text(text)["ok"]


def test_tlc_sim_exit_codes(tlc_cli, tmp_path):
    assert tlc_cli("sim", str(ROOT / "examples" / "mha_fwd_fp16_d64_sm75.tl"),
                   "--shape", "B=1,H=1,N=40").code == 0
    bad = tmp_path / "gqa.tl"
    bad.write_text(GQA.replace("Hkv = h / GROUP", "Hkv = h"))
    run = tlc_cli("sim", str(bad))
    assert run.code == 1 and "error[out-of-bounds]" in run.out  # refused by check first
    assert tlc_cli("sim", str(ROOT / "examples" / "paper_sketch.tl")).code == 2


def test_sizes_not_given_are_consistent_with_the_params():
    summary = simulate_text(GQA)
    assert summary["correct"] and summary["shape"]["H"] == 4 * summary["shape"]["Hkv"]


def test_accepted_drawn_plans_simulate_correct():
    checked = 0
    for plan in drawn(7, 60):
        result = check(plan.text, arch=plan.arch)
        if not result.ok:
            continue
        verdict, sizes = simulate(result.kernel, {"B": 1, "H": 1, "Hkv": 1})
        assert verdict.ok, (plan.example, plan.arch, plan.edits, sizes, verdict.problems)
        checked += 1
    assert checked >= 10
