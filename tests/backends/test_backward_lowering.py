"""The backward pass lowered for sm_80 and sm_75, on the CPU: the examples are renders of
tlc/backward_plans.py; the CUDA reads P^T and dS^T transposed from shared memory (ldmatrix
.trans as the A operand), makes the stores of P and dS visible once, adds dQ atomically and
hides keys and rows past the end in Exp; the checker's coverage lets a causal loop skip the
query tiles that see no key of its block but not one more; what it accepts builds without
spills. (Running the kernels against the float64 gradients is tests/gpu/test_backward_gpu.py.)"""
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlc.api import check
from tlc.backward_plans import BackwardOptions, backward_plan, render
from tlc.build import build, find_cuobjdump, find_nvcc, sass
from tlc.runtime import added_outputs

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = {
    "mha_bwd_fp16_d64_sm80": BackwardOptions("fp16", 64, False, 1, "sm_80", 64, 64, 2,
                                             warps_n=2),
    "gqa_causal_bwd_bf16_d64_sm80": BackwardOptions("bf16", 64, True, 4, "sm_80", 64, 64, 2,
                                                    warps_n=2),
    "mha_bwd_fp16_d64_sm75": BackwardOptions("fp16", 64, False, 1, "sm_75", 32, 32, 2),
}
needs_nvcc = pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not on this machine")


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_the_examples_are_the_templates_renders(name):
    assert (ROOT / "examples" / f"{name}.tl").read_text() == render(EXAMPLES[name])


def lowered(text, arch="sm_80"):
    result = check(text, arch=arch)
    assert result.ok, [d.message for d in result.diagnostics if d.is_error]
    return result.lowered.main.source


@pytest.mark.parametrize("arch", ["sm_80", "sm_75"])
def test_p_and_ds_go_through_shared_memory_and_come_back_transposed(arch):
    source = lowered(backward_plan("fp16", 64, arch=arch), arch)
    stores = source.index("// Copy P from register to shared")
    assert source.index("// Copy dS from register to shared") > stores
    after = source[stores:source.index("// Compute GEMM P^T, dO")]
    assert after.count("__syncthreads();") == 1  # one barrier for both stores
    gemm = source[source.index("// Compute GEMM P^T, dO"):source.index("// Compute GEMM dS^T")]
    assert "tlc::ldmatrix_x4_trans(a[i]" in gemm  # A read transposed
    assert "tlc::add_pair(tlc_at, dQ_acc" in source


@pytest.mark.skipif(find_nvcc() is None or find_cuobjdump() is None,
                    reason="nvcc and cuobjdump (the test extra's wheels) are needed")
def test_dq_is_added_by_8_byte_reductions_where_the_gpu_has_them():
    """The sm_80 plan built for sm_90 adds dQ's column pairs by REDG.E.ADD.F32x2 (the
    backward's time goes to these reductions); built for sm_80 it has only 4-byte ones."""
    import re

    source = lowered(backward_plan("fp16", 64))
    reductions = {arch: set(re.findall(r"\bREDG?\.E\.ADD\.F32\S*", sass(build(source, arch).path)))
                  for arch in ("sm_90", "sm_80")}
    assert any("F32x2" in r for r in reductions["sm_90"]), reductions
    assert reductions["sm_80"] and not any("F32x2" in r for r in reductions["sm_80"]), reductions


def test_exp_hides_keys_and_rows_past_the_end_and_rows_without_keys():
    source = lowered(backward_plan("fp16", 64))
    exp = source[source.index("// Compute Exp S, L and get P"):]
    exp = exp[:exp.index("// Compute GEMM dO")]
    for test in ("tlc_col >= tlc_keys_left", "tlc_row < tlc_queries_left",
                 "tlc_l != -INFINITY"):
        assert test in exp
    # every exp2 first, with no branch between it and the S GEMM; the key test after it
    assert exp.index("P_acc[i][j][e] = tlc::exp2_approx") < exp.index("if (tlc_keys_left < ")


def test_l_and_delta_load_an_iteration_ahead_without_a_branch():
    """The first tile's rows before the loop, the next tile's after the last reader (Exp,
    Subtract), predicated: no branch in the loop splits what ptxas schedules together."""
    source = lowered(backward_plan("fp16", 64))
    loop = source[source.index("for (int p_t = "):]
    before = source[:source.index("for (int p_t = ")]
    for name, reader in (("L", "// Compute Exp S, L"), ("Delta", "// Compute Subtract dP")):
        assert f"// Copy {name} from global to register for the loop's first iteration" in before
        ahead = loop.index(f"// Copy {name} for the next iteration")
        assert loop.index(reader) < ahead
        assert f"{name}_row[i][h] = tlc_load && tlc_row < tlc_rows_left" in loop[ahead:]
    assert "if (p_t == " not in loop


def test_a_one_stage_loop_refills_q_and_do_once_dk_has_read_them():
    """Q and dO's next tiles load under dQ = dS K and its reductions: the barrier that frees
    their stage sits after dK's GEMM, and none is left at the end of the iteration."""
    source = lowered(backward_plan("fp16", 64))
    loop = source[source.index("for (int p_t = "):source.index("// Copy dK from register")]
    refill = loop.index("__syncthreads();  // every warp is done with Q, dO")
    assert loop.index("// Compute GEMM dS^T, Q") < refill < loop.index("// Compute GEMM dS, K")
    assert "if (p_t + 1 < p_t_stop)" in loop[refill:loop.index("// Compute GEMM dS, K")]
    assert "the next iteration refills the stage just read" not in loop


def test_the_added_output_is_the_one_zeroed_at_the_call():
    assert added_outputs(check(backward_plan("fp16", 64)).kernel) == {"dQ"}


CAUSAL = backward_plan("bf16", 64, causal=True, group=4)
FIRST = "max(0, (n * BN + Nq - Nk) / BM)"


def test_a_causal_loop_may_skip_the_tiles_that_see_no_key_but_not_one_more():
    assert check(CAUSAL, arch="sm_80").ok
    late = CAUSAL.replace(FIRST, FIRST.replace("/ BM)", "/ BM + 1)"))
    coverage = [d for d in check(late).diagnostics if d.code == "output-coverage"]
    assert coverage and "never written" in coverage[0].message


def test_exp_without_its_vector_in_registers_is_refused_at_the_exp():
    plan = backward_plan("fp16", 64)
    plan = plan.replace("  Copy L (BM) in coordinate", "  Copy Delta (BM) in coordinate", 1)
    result = check(plan, arch="sm_80")
    assert not result.ok
    assert any("per-row vector" in d.message or "L" in d.message for d in result.diagnostics
               if d.is_error)


def test_a_vector_copied_twice_is_refused_at_the_second_copy():
    """Found by the drawn plans: a second copy of L declared its registers again, and nvcc
    failed on a plan the checker had accepted."""
    plan = backward_plan("fp16", 64)
    copy = next(line for line in plan.splitlines() if line.startswith("  Copy L (BM)"))
    twice = plan.replace(copy + "\n", copy + "\n" + copy + "\n")
    errors = [d for d in check(twice, arch="sm_80").diagnostics if d.is_error]
    assert errors and "copied into registers twice" in errors[0].message
    assert errors[0].span.line == twice.splitlines().index(copy) + 2


def test_d256_in_one_kernel_is_refused_with_the_registers_it_would_need():
    with pytest.raises(ValueError, match="no backward plan fits fp16 D=256 on sm_80: .*registers"):
        backward_plan("fp16", 256)
    assert "param WARPS_N = 2" in backward_plan("fp16", 256, part="dkdv")


@pytest.mark.parametrize("d, tiles", [(64, ("128", "128", "4", "2")),
                                      (128, ("64", "128", "2", "4")),
                                      (160, ("128", "64", "4", "2")),
                                      (192, ("64", "64", "4", "2")),
                                      (224, ("64", "64", "4", "2"))])
def test_wide_heads_fit_one_kernel_on_eight_warps(d, tiles):
    text = backward_plan("fp16", d)
    assert tuple(line.split("= ")[1] for line in text.splitlines()
                 if line.startswith(("param BM", "param BN", "param WARPS"))) == tiles


def test_sm90_loads_the_next_query_tile_under_this_one_where_sm80_cannot(tmp_path):
    """Hopper run as Ampere has the shared memory for 128 x 128's Q and dO two stages deep
    (180224 B); sm_80's 166912 B a block hold one stage, so its plan keeps one."""
    hopper, ampere = backward_plan("fp16", 64, arch="sm_90"), backward_plan("fp16", 64)
    assert "param BM = 128\nparam BN = 128" in hopper and "stages 2" in hopper
    assert "param BM = 128\nparam BN = 128" in ampere and "stages" not in ampere
    two_deep = ampere.replace("with vector 8\n  Copy dO", "with vector 8, stages 2\n  Copy dO")
    two_deep = two_deep.replace("with vector 8\n  Copy L", "with vector 8, stages 2\n  Copy L")
    errors = [d for d in check(two_deep, arch="sm_80").diagnostics if d.is_error]
    assert errors and "180224 B; sm_80 allows 166912 B" in errors[0].message
    if find_nvcc() is not None:
        kernel = check(hopper, arch="sm_90").lowered.main
        report = build(kernel.source, "sm_90", cache_dir=tmp_path).function(kernel.name)
        assert report.spill_stores == report.spill_loads == 0


def test_hopper_is_told_there_is_no_backward_lowering_for_it():
    result = check(backward_plan("fp16", 64), arch="sm_90a")
    assert not result.ok and all(d.code != "internal-error" for d in result.diagnostics)


@needs_nvcc
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(d=st.sampled_from([32, 64, 96, 128, 256]), bm=st.sampled_from([16, 32, 64, 128]),
       bn=st.sampled_from([16, 32, 64, 128]), warps=st.sampled_from([1, 2, 4]),
       warps_n=st.sampled_from([1, 1, 2, 4]),
       variant=st.sampled_from(["plain", "causal", "softcap", "window"]),
       arch=st.sampled_from(["sm_80", "sm_75"]), part=st.sampled_from(["all", "dkdv", "dq"]))
def test_what_the_checker_accepts_builds_without_spills(d, bm, bn, warps, warps_n, variant,
                                                        arch, part, tmp_path_factory):
    options = {"causal": dict(causal=True, group=2), "softcap": dict(softcap=2.0),
               "window": dict(window=(40, 8)), "plain": {}}[variant]
    text = render(BackwardOptions("fp16", d, arch=arch, bm=bm, bn=bn, warps=warps, part=part,
                                  warps_n=warps_n, **options))
    result = check(text, arch=arch)
    if not result.ok:
        assert not any(x.code == "internal-error" for x in result.diagnostics)
        return
    kernel = result.lowered.main
    report = build(kernel.source, arch, cache_dir=tmp_path_factory.mktemp("k")).function(
        kernel.name)
    assert report.spill_stores == report.spill_loads == 0, (d, bm, bn, warps, variant, arch,
                                                            part)


PLAN = backward_plan("fp16", 64)
QUERY_TILE = "Nq = t % cdiv(Nq, BM)]"


@pytest.mark.parametrize("old, new, says", [
    ("  Compute Subtract dP, Delta and get new dP\n", "",
     "dO·Vᵀ where the gradient has sub(dO·Vᵀ, Delta)"),
    ("  Compute Multiply dS, scale and get new dS\n",
     "  Compute Multiply dS, scale and get new dS\n" * 2, "not the gradient"),
    (f"{QUERY_TILE} from global to register\n  Copy Delta",
     "Nq = 0] from global to register\n  Copy Delta", "`L` is copied at another coordinate"),
    ("from register to global with add\n", "from register to global with add\n  Copy dQ (BM, D) "
     "in coordinate [B = b, H = h * GROUP + t / cdiv(Nq, BM), Nq = t % cdiv(Nq, BM)] from "
     "register to global with add\n", "dQ is stored 2 times"),
    ("  Compute SoftcapGrad", "  Compute SoftcapGrad", None),  # the plan as it is: accepted
])
def test_a_plan_that_does_not_compute_the_gradients_is_refused(old, new, says):
    """Found by drawing edits of the backward examples (tests/drawn_plans.py's edits): 14 of
    the 208 accepted draws computed wrong gradients before the checker traced the recipe."""
    plan = PLAN.replace(old, new, 1)
    errors = [d for d in check(plan, arch="sm_80").diagnostics if d.is_error]
    if says is None:
        assert not errors
        return
    assert [d.code for d in errors] == ["backward-recipe"]
    assert says in errors[0].message


@pytest.mark.parametrize("arch", ["sm_80", "sm_75"])
@pytest.mark.parametrize("options", [{}, dict(causal=True, group=4), dict(window=(40, 8)),
                                     dict(softcap=2.0), dict(causal=True, alibi=True, group=2)])
def test_the_deterministic_plans_check_and_lower(arch, options):
    """dK and dV without dQ, and the dQ plan: blocks own a query tile, dQ summed in registers
    and stored once (no atomics), its causal or window loop over the key tiles checked as the
    forward's is."""
    for part in ("dkdv", "dq"):
        text = backward_plan("fp16", 64, arch=arch, part=part, **options)
        source = lowered(text, arch)
        assert "add_pair" not in source and "atomicAdd" not in source
    assert "output dQ" not in backward_plan("fp16", 64, arch=arch, part="dkdv", **options)
    assert "output dQ (B, H, Nq, D) fp16" in text


@pytest.mark.parametrize("old, new, says", [
    ("  Compute GEMM dS, K and accumulate dQ", "  Compute GEMM dS, K and get dQ",
     "not the gradient"),
    ("end\nCopy dQ (BM, D) in coordinate [B = b, H = h, Nq = m] from register to global\n",
     "  Copy dQ (BM, D) in coordinate [B = b, H = h, Nq = m] from register to global\nend\n",
     "never written"),  # a causal loop may run no iteration
    ("for n = 0: cdiv(min(Nk, (m + 1) * BM + Nk - Nq), BN)", "for n = 0: cdiv(Nk, BN) - 1",
     "skips keys"),
])
def test_a_dq_plan_that_does_not_sum_dq_is_refused(old, new, says):
    plan = backward_plan("fp16", 64, causal=True, part="dq").replace(old, new, 1)
    errors = [d for d in check(plan, arch="sm_80").diagnostics if d.is_error]
    assert errors and says in errors[0].message, [d.message for d in errors]


def test_a_softcap_without_its_derivative_is_refused():
    capped = backward_plan("fp16", 64, softcap=2.0)
    plan = "".join(line for line in capped.splitlines(keepends=True) if "SoftcapGrad" not in line)
    errors = [d for d in check(plan).diagnostics if d.is_error]
    assert [d.code for d in errors] == ["backward-recipe"]
