"""The backward pass as a plan (docs/language.md §5.9): tests/fixtures/backward_fp16_d64.tl
checks, is refused by the lowering with a located backend-unsupported (no target lowers it
yet), and `tlc sim` runs it on the CPU against the float64 gradients, MHA and GQA, causal
and windowed, with Nq != Nk and rows that see no key. A wrong plan fails there or in the
checker: a missing term of dS, dQ overwritten rather than added, adds mixed with a store."""
import re
from pathlib import Path

import pytest

from tlc.api import check
from tlc.cli import main
from tlc.runtime import check_random, index_problem
from tlc.simulate import Simulator, default_sizes

ROOT = Path(__file__).resolve().parent.parent
PLAN = (ROOT / "tests" / "fixtures" / "backward_fp16_d64.tl").read_text()
SCALE = "  Compute Multiply S, scale and get new S\n"
ADD = " from register to global with add"


def variant(plan=PLAN, mask=None, group=1):
    if mask:
        plan = plan.replace(SCALE, SCALE + f"  Compute Mask S with {mask}\n")
    return plan.replace("param GROUP = 1", f"param GROUP = {group}")


def codes(text):
    return [d.code for d in check(text).diagnostics if d.is_error]


def simulated(text, **sizes):
    kernel = check(text).kernel
    return check_random(Simulator(kernel), default_sizes(kernel, sizes), whole=True)


def test_the_plan_checks_and_the_lowering_asks_for_p_through_shared_memory():
    """The fixture reads P^T straight from registers, which a warp cannot: each holds other
    rows of P than the ones its dV rows need. The lowering says where P must go."""
    result = check(PLAN)
    errors = [d for d in result.diagnostics if d.is_error]
    assert [d.code for d in errors] == ["backend-unsupported"]
    assert "transposed A operand is read from shared memory" in errors[0].message
    assert "Copy P from register to shared" in errors[0].help
    line = PLAN[:PLAN.index("Compute GEMM P^T")].count("\n") + 1
    assert errors[0].span.line == line


@pytest.mark.parametrize("mask, group, sizes", [
    (None, 1, {}),
    ("causal", 1, {"Nq": 100, "Nk": 150}),
    ("causal", 2, {"B": 2, "Hkv": 2, "Nq": 150, "Nk": 70}),  # rows that see no key
    ("window (20, 5)", 2, {"Nq": 70, "Nk": 200}),
])
def test_the_simulated_gradients_are_the_references(mask, group, sizes):
    verdict = simulated(variant(mask=mask, group=group), **sizes)
    assert verdict.ok, verdict.problems


def test_tlc_sim_runs_the_plan_past_its_lowering(tmp_path, capsys):
    path = tmp_path / "backward.tl"
    path.write_text(PLAN)
    assert main(["sim", str(path)]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["sim", str(path), "--arch", "sm_80"]) != 0  # asked for the target: refused


def test_a_missing_term_of_ds_gives_wrong_gradients():
    verdict = simulated(PLAN.replace("  Compute Subtract dP, Delta and get new dP\n", ""))
    assert not verdict.ok
    assert any(p.startswith("dQ:") for p in verdict.problems)
    assert any(p.startswith("dK:") for p in verdict.problems)


def test_dq_overwritten_by_each_kv_block_is_written_more_than_once():
    result = check(PLAN.replace(ADD, " from register to global"))
    coverage = [d for d in result.diagnostics if d.code == "output-coverage"]
    assert coverage and "`dQ` is written more than once" in coverage[0].message
    assert "with add" in coverage[0].help


def test_adds_mixed_with_a_store_race():
    extra = ("Copy dQ (BM, D) in coordinate [B = b, H = h * GROUP, Nq = 0] from register to "
             "global\n")
    assert "output-race" in codes(PLAN + extra)


def test_add_is_for_fp32_outputs_from_registers():
    fp16 = PLAN.replace("output dQ (B, H, Nq, D) fp32", "output dQ (B, H, Nq, D) fp16")
    assert "dtype-mismatch" in codes(fp16)
    staged = PLAN.replace("Copy K (BN, D) in coordinate [B = b, Hkv = h, Nk = n] from global "
                          "to shared with vector 8",
                          "Copy K (BN, D) in coordinate [B = b, Hkv = h, Nk = n] from global "
                          "to shared with vector 8, add")
    assert "bad-clause" in codes(staged)


def test_the_call_takes_query_heads_as_kv_heads_times_group():
    kernel = check(variant(group=2)).kernel
    sizes = {"B": 1, "H": 3, "Hkv": 2, "Nq": 64, "Nk": 64}
    assert "H = Hkv · GROUP = 2 · 2 = 4" in index_problem(kernel, sizes)
    assert index_problem(kernel, dict(sizes, H=4)) is None


DELTA = (ROOT / "tests" / "fixtures" / "backward_delta_fp16_d64.tl").read_text()


def test_the_step_before_gives_delta_and_a_wrong_one_fails():
    assert simulated(DELTA, Nq=99).ok
    wrong = simulated(DELTA.replace("Compute Multiply dO, O and get T",
                                    "Compute Multiply dO, dO and get T"), Nq=99)
    assert not wrong.ok


CAPPED = ("  Compute Softcap S with cap 2.0\n", "  Compute SoftcapGrad dS, S and get new dS "
          "with cap 2.0\n")


def with_softcap(plan=PLAN, gradient=True):
    plan = plan.replace(SCALE, SCALE + CAPPED[0])
    if gradient:
        plan = plan.replace("  Compute Multiply dS, scale and get new dS\n",
                            CAPPED[1] + "  Compute Multiply dS, scale and get new dS\n")
    return plan


def test_softcap_takes_its_derivative_and_fails_without_it():
    assert simulated(with_softcap(variant(mask="causal")), Nq=90, Nk=130).ok
    assert not simulated(with_softcap(variant(mask="causal"), gradient=False),
                         Nq=90, Nk=130).ok


def test_alibi_recomputes_the_biased_scores():
    plan = variant(mask="causal", group=2).replace(
        "input scale fp32\n", "input scale fp32\ninput slopes (H) fp32\n").replace(
        "  Compute Mask S with causal\n",
        "  Compute Mask S with causal\n  Compute ALiBi S, slopes and get new S\n")
    assert simulated(plan, Nq=90, Nk=130).ok


def test_a_plan_that_takes_do_but_not_l_is_told_so_not_an_internal_error(tmp_path, capsys):
    plan = PLAN.replace("input L (B, H, Nq) fp32", "input Lx (B, H, Nq) fp32").replace(
        "Copy L (BM)", "Copy Lx (BM)").replace("Allocate L in register", "Allocate Lx in "
                                               "register").replace("Exp S, L and", "Exp S, Lx and")
    path = tmp_path / "backward.tl"
    path.write_text(plan)
    assert main(["sim", str(path)]) != 0
    captured = capsys.readouterr()
    assert "takes Q, K, V, dO, L and Delta; this one has no L" in captured.out + captured.err
    assert "internal error" not in captured.out + captured.err
    assert codes(plan) == ["backward-recipe"]


def test_a_tile_read_after_its_reshape_is_read_from_its_fragments_or_refused():
    """Checker bug, then a lowering: P reshaped to fp16 before dP's GEMM and read in
    dS = dP * P was accepted (the register model counted P's fragments, 251) while the lowering
    kept the fp32 accumulator alive for the read, and spilled 32 bytes built for sm_90
    (128 x 128, warps (4, 2)). A product or difference of two tiles into a third now reads the
    fragments, as the model counts (the backward plans reshape P there); a rule that would
    write or scale the reshaped tile itself is refused at the read."""
    from tlc.backward_plans import BackwardOptions, render

    plan = render(BackwardOptions(d=64, bm=128, bn=128, warps=4, warps_n=2))
    reshape = "  Reshape P from (MMA_C, BM, BN) to (MMA_A, BM, BN) with dtype fp16\n"
    assert plan.index(reshape) < plan.index("get dP")
    for multiply in ("Compute Multiply dP, P and get dS", "Compute Multiply P, dP and get dS"):
        result = check(plan.replace("Compute Multiply P, dP and get dS", multiply), arch="sm_80")
        assert result.ok, [d.message for d in result.diagnostics if d.is_error]
        source = result.lowered.main.source
        assert "tlc::unpack_half2(P_frag[i][j / 2][(j % 2) * 2 + e / 2], e % 2)" in source
        assert not re.search(r"\bP_acc\[i\]\[j\]\[e\] \*|\* P_acc\[i\]\[j\]\[e\]", source)
    refused = {"Compute Multiply P, dP and get new P": "Multiply reads `P` as fp32 values",
               "Compute Multiply P, scale and get new P\n  Compute Multiply P, dP and get dS":
                   "Multiply reads `P` as fp32 values",
               "Compute Subtract P, Delta and get new P\n  Compute Multiply P, dP and get dS":
                   "Subtract reads `P` as fp32 values"}
    for line, says in refused.items():
        text = plan.replace("Compute Multiply P, dP and get dS", line)
        errors = [d for d in check(text, arch="sm_80").diagnostics if d.is_error]
        assert errors and errors[0].code == "layout-mismatch", [d.message for d in errors]
        assert says in errors[0].message
        assert errors[0].span.line == text[:text.index(line)].count("\n") + 1
        assert "after the last Compute that reads `P`" in errors[0].help
    capped = render(BackwardOptions(d=64, softcap=30.0))
    text = capped.replace("  Compute SoftcapGrad", "  Reshape S from (MMA_C, BM, BN) to (MMA_A, "
                          "BM, BN) with dtype fp16\n  Compute SoftcapGrad")
    assert "SoftcapGrad reads `S` as fp32 values" in " ".join(
        d.message for d in check(text, arch="sm_80").diagnostics)