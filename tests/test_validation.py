"""The checker's promise on whole plans: the examples fit their targets, figures follow the
resource model, and a rejection carries a change that, applied, makes the plan pass."""
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tlc
from conftest import EXAMPLES
from tlc.api import check, fix_plan
from tlc.fixes import apply_edits
from tlc.backends.targets.sm75 import SM75

EXAMPLE = {path.stem: path.read_text() for path in EXAMPLES}
FIXTURES = Path(__file__).parent / "fixtures" / "diagnostics"


def test_examples_fit_their_own_targets():
    for name, text in EXAMPLE.items():
        result = check(text)
        assert result.ok and not result.diagnostics, name


@pytest.mark.parametrize("name", ["mha_fwd_fp16_d128_sm80", "gqa_causal_fwd_bf16_d64_sm80"])
def test_sm80_plans_rejected_on_sm75_come_with_changes_that_pass(name):
    rejected = check(EXAMPLE[name], arch="sm_75")
    assert not rejected.ok
    assert all(d.help for d in rejected.diagnostics)
    # The changes named in one check are enough: one round of fixes, then it passes.
    fixed, result = fix_plan(EXAMPLE[name], arch="sm_75", rounds=1)
    assert result.ok, [d.message for d in result.diagnostics]
    assert "mma m16n8k8" in fixed and "param STAGES = 1" in fixed


def test_shared_memory_is_every_shared_buffer_times_its_stages():
    facts = check(EXAMPLE["mha_fwd_fp16_d128_sm80"]).facts
    # Q and the O staging tile 128×128 fp16 once each, K and V 32×128 fp16 twice each
    # (STAGES = 2); every row padded by 8 elements, as the backend lays them out
    assert facts["shared_memory"].total == 2 * 128 * 136 * 2 + 2 * (32 * 136 * 2) * 2


def test_register_estimate_follows_the_model():
    facts = check(EXAMPLE["mha_fwd_fp16_d64_sm75"]).facts
    live = dict(facts["registers"].parts)
    threads = 128
    assert live["O"] == 64 * 64 * 4 // 4 // threads           # fp32 accumulator, 32
    assert live["S"] == 64 * 64 * 4 // 4 // threads           # fp32 scores, 32
    assert live["Q (held operand)"] == 64 // 4 * 64 * 2 // 4 // 32  # a warp's 16 rows of Q
    assert live["K (one k-step)"] == 16 * 16 * 2 // 4 // 32   # 16 columns per load, 16 deep
    assert live["softmax state"] == 2 * 1 * 3                 # 2 rows per thread, 3 values
    # No cp.async on sm_75: V's next tile is in registers while Q·K^T runs, 64 rows loaded
    # 16 a pass (8 threads a row), so 4 chunks of 16 bytes, times the calibrated factor.
    assert live["V (next tile, on its way to shared)"] == int(4 * 4 * SM75.copies.in_flight_factor)
    assert facts["registers"].peak == sum(live.values())


def test_streaming_an_operand_costs_fewer_registers_than_holding_it():
    held = EXAMPLE["mha_fwd_fp16_d128_sm80"].replace(
        "  Copy Q from shared to register\n", "").replace(
        "for n = 0:", "Copy Q from shared to register\nfor n = 0:")
    estimate = check(held, arch="sm_90").facts["registers"].peak
    assert estimate > check(EXAMPLE["mha_fwd_fp16_d128_sm80"]).facts["registers"].peak
    codes = [d.code for d in check(held).diagnostics]
    assert codes == ["register-budget"]
    fixed, result = fix_plan(held)
    assert result.ok and fixed.count("Copy Q from shared to register") == 1


@pytest.mark.parametrize("fixture", ["missing-reshape", "gemm-orientation"])
def test_fmt_fix_repairs_what_llms_get_wrong(fixture):
    text = (FIXTURES / f"{fixture}.tl").read_text()
    assert not check(text).ok
    fixed, result = fix_plan(text)
    assert result.ok, [d.message for d in result.diagnostics]


def test_online_softmax_is_recognised():
    (found,) = check(EXAMPLE["mha_fwd_fp16_d128_sm80"]).facts["online_softmax"]
    assert (found.scores, found.output, found.loop_var) == ("S", "O", "n")


def test_sketches_get_no_resource_checks():
    result = check(EXAMPLE["paper_sketch"], arch="sm_75")
    assert result.ok and "shared_memory" not in result.facts


SM80 = EXAMPLE["gqa_causal_fwd_bf16_d64_sm80"]


@settings(max_examples=60, deadline=None)
@given(bm=st.sampled_from([16, 32, 64, 96, 128, 256]), bn=st.sampled_from([16, 32, 64, 128, 256]),
       stages=st.integers(1, 6), warps=st.sampled_from([1, 2, 4, 8]),
       arch=st.sampled_from(["sm_75", "sm_80", "sm_86", "sm_90"]))
def test_every_rejection_of_a_parameter_choice_names_a_change(bm, bn, stages, warps, arch):
    text = (SM80.replace("param BM = 128", f"param BM = {bm}")
            .replace("param BN = 64", f"param BN = {bn}")
            .replace("param STAGES = 2", f"param STAGES = {stages}")
            .replace("param WARPS = 4", f"param WARPS = {warps}"))
    result = check(text, arch=arch)
    for diagnostic in result.diagnostics:
        assert diagnostic.code != "internal-error", diagnostic.message
        assert diagnostic.help
    budget = {d.code: d for d in result.diagnostics if d.code.endswith("-budget")}
    for code, diagnostic in budget.items():
        if diagnostic.fixes:  # a fix of a resource error lowers that resource
            after = check(apply_edits(text, diagnostic.fixes), arch=arch)
            figure = "shared_memory" if code == "smem-budget" else "registers"
            before_value = _figure(result.facts, figure)
            after_value = _figure(after.facts, figure)
            assert after_value is None or after_value < before_value


def _figure(facts, name):
    value = facts.get(name)
    if value is None:
        return None
    return value.total if name == "shared_memory" else value.peak


def test_api_is_exported():
    assert tlc.check is check
