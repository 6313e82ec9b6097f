"""The Turing (sm_75) rules on the CPU: the register pipeline's schedule, bf16 computed as fp16
(allowed where copies pass through registers, refused where cp.async moves bytes, offered as
the fix for a bf16 plan), and the runtime's refusal of bf16 values beyond fp16's range."""
from pathlib import Path

import numpy as np
import pytest

from tlc import ir
from tlc.api import check, fix_plan
from tlc.backends.isa import register_copies as register_pipeline
from tlc.reference import to_storage
from tlc.runtime import ArgumentError, _check_fp16_range

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"
GQA_BF16_SM80 = (EXAMPLES / "gqa_causal_fwd_bf16_d64_sm80.tl").read_text()
GQA_BF16_SM75 = (EXAMPLES / "gqa_causal_fwd_bf16_d128_sm75.tl").read_text()


def loop_of(text: str) -> ir.Loop:
    kernel = check(text, arch="sm_75").kernel
    return next(op for op in kernel.body if isinstance(op, ir.Loop))


def statement(loop: ir.Loop, index: int) -> str:
    op = loop.body[index]
    return f"{type(op).__name__} {getattr(op, 'name', '')}".strip()


def test_each_tile_is_stored_just_before_its_first_reader_and_loaded_a_phase_ahead():
    loop = loop_of(GQA_BF16_SM75)
    k, v = register_pipeline.groups(loop)
    assert [c.name for c in k.copies] == ["K"] and [c.name for c in v.copies] == ["V"]
    assert statement(loop, k.store) == "Copy K" and statement(loop, v.store) == "Copy V"
    assert loop.body[k.store].src is ir.Level.SHARED  # the shared -> register Copy
    # V is loaded while Q·K^T runs (issued at K's store), the next K while P·V runs.
    gemms = [i for i, op in enumerate(loop.body) if isinstance(op, ir.Gemm)]
    assert register_pipeline.in_flight(v, gemms[0], 2) and not register_pipeline.in_flight(
        k, gemms[0], 2)
    assert register_pipeline.in_flight(k, gemms[1], 2) and not register_pipeline.in_flight(
        v, gemms[1], 2)
    # K's old tile was last read before V's store and its barrier: no barrier before K's store.
    assert not k.sync_before_store and not v.sync_before_store


def test_a_single_tile_stream_waits_for_its_readers_before_each_store():
    text = GQA_BF16_SM75.replace("  Copy V (BN, D) in coordinate [B = b, Hkv = h / GROUP, Nk = n]"
                                 " from global to shared with vector 8\n", "")
    text = text.replace("for n = 0:", "Copy V (BN, D) in coordinate [B = b, Hkv = h / GROUP, "
                                       "Nk = 0] from global to shared with vector 8\nfor n = 0:")
    (only,) = register_pipeline.groups(loop_of(text))
    assert only.sync_before_store


def test_bf16_loaded_as_fp16_is_refused_where_cp_async_copies_bytes():
    text = GQA_BF16_SM75.replace("for sm_75", "for sm_80").replace("mma m16n8k8", "mma m16n8k16")
    codes = {(d.code, d.span.line) for d in check(text).diagnostics}
    # the lowering stops at its first refusal: the Copy of Q, outside the loop
    assert codes == {("backend-unsupported", 34)}
    message = next(d for d in check(text).diagnostics if d.code == "backend-unsupported")
    assert "cp.async" in message.message and "dtype bf16" in message.help


def test_other_converting_loads_stay_a_dtype_mismatch():
    text = GQA_BF16_SM75.replace(" bf16", " fp16").replace("(BN, D) with dtype fp16",
                                                            "(BN, D) with dtype bf16")
    assert "dtype-mismatch" in {d.code for d in check(text).diagnostics}


def test_a_bf16_plan_for_sm75_is_told_and_fixed_to_compute_in_fp16():
    result = check(GQA_BF16_SM80, arch="sm_75")
    dtype = next(d for d in result.diagnostics if "tensor cores take fp16" in d.message)
    assert "with dtype fp16" in dtype.help and "65504" in dtype.help
    fixed, after = fix_plan(GQA_BF16_SM80, arch="sm_75", rounds=1)
    assert after.ok, [d.message for d in after.diagnostics]
    assert "input Q (B, H, Nq, D) bf16" in fixed and "output O (B, H, Nq, D) bf16" in fixed
    assert "Allocate K in shared (BN, D) with dtype fp16" in fixed
    assert "with dtype fp16" in next(line for line in fixed.splitlines() if "Reshape" in line)
    assert check(fixed, arch="sm_75").ok


def test_bf16_values_beyond_fp16_range_are_refused():
    ok = to_storage(np.array([65280.0, -3.0, 1e-30, np.inf, np.nan]), "bf16")
    _check_fp16_range(ok, "K")  # infinities and NaNs are not range errors
    with pytest.raises(ArgumentError, match="K: holds 99840"):
        _check_fp16_range(to_storage(np.array([1.0, -1e5]), "bf16"), "K")
