"""`Compute Logsumexp S and get L`: each row's log-sum-exp from the Softmax of S, stored as an
fp32 output (B, H, Nq). The checker places it (after the key loop, a Softmax before it, one
value per row), the simulator computes it, and the lowering builds it."""
import numpy as np
import pytest

from tlc.build import find_nvcc
from tlc.driver import build_for, check, lowered_of
from tlc.reference import compare_lse
from tlc.simulate import simulate
from tlc.templates import plan

LSE_LINES = ("Compute Logsumexp S and get L\n"
             "Copy L (BM) in coordinate [B = b, H = h, Nq = m] from register to global\n")


def codes(text, arch="sm_80"):
    return [d.code for d in check(text, arch=arch).diagnostics if d.is_error]


@pytest.mark.parametrize("arch", ["sm_80", "sm_75"])
@pytest.mark.parametrize("variant", [{}, {"causal": True}, {"causal": True, "window": (20, 4)},
                                     {"softcap": 30.0}, {"alibi": True}],
                         ids=lambda v: "-".join(v) or "plain")
def test_template_plans_with_the_lse_check_and_simulate_correctly(arch, variant):
    text = plan("fp16", 64, group=2, arch=arch, lse=True, **variant)
    result = check(text, arch=arch)
    assert result.ok, [d.message for d in result.diagnostics]
    # more queries than keys: under causal, the first rows see no key and their LSE is -inf
    verdict, _ = simulate(result.kernel, {"B": 1, "Hkv": 1, "Nq": 90, "Nk": 40})
    assert verdict.ok, verdict.problems


def test_the_lse_rule_catches_a_wrong_value():
    ref = np.array([[1.5, 2.0, -np.inf]])
    assert compare_lse(ref, ref, ref + 1e-3).ok
    assert not compare_lse(ref + [[0.01, 0, 0]], ref, ref + 1e-4).ok
    assert not compare_lse(np.array([[1.5, 2.0, 0.0]]), ref, ref).ok  # an empty row must be -inf
    assert not compare_lse(np.array([[np.nan, 2.0, -np.inf]]), ref, ref).ok


def template():
    return plan("fp16", 64, arch="sm_80", lse=True)


def test_inside_the_key_loop_is_refused():
    text = template().replace(LSE_LINES.splitlines()[0] + "\n", "").replace(
        "  Copy V from shared to register\n",
        "  Copy V from shared to register\n  Compute Logsumexp S and get L\n")
    assert codes(text) == ["online-softmax"]


def test_without_a_softmax_is_refused():
    text = template().replace("  Compute Softmax S\n", "")
    assert "online-softmax" in codes(text)


def test_one_value_per_row():
    text = template().replace("Allocate L in register (BM)", "Allocate L in register (BN)")
    assert "shape-mismatch" in codes(text)


def test_storing_a_vector_nothing_wrote_is_refused():
    text = template().replace(LSE_LINES.splitlines()[0] + "\n", "")
    assert codes(text) == ["unwritten-read"]


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not on this machine")
@pytest.mark.parametrize("arch", ["sm_80", "sm_75"])
def test_the_lse_builds_with_no_spills(arch, tmp_path):
    lowered = lowered_of(check(plan("bf16" if arch == "sm_80" else "fp16", 128, True, 4,
                                    arch=arch, lse=True), arch=arch))
    assert "L_lse[i][h] = tlc_total > 0.f" in lowered.source
    built = build_for(lowered, arch, cache_dir=tmp_path)
    assert built.functions[0].spill_stores == 0
