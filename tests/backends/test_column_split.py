"""GEMM columns split over warps (`with warps (WM, WN)`, WN > 1), on the CPU: sm_80 and its
siblings take it (their gemm.splits_columns, on since tests/gpu/test_backward_gpu.py ran the
gradients of split plans), sm_75 refuses it until measured; the backward plans lower and
build without spills, and what the split cannot do — a row
reduced within one warp (softmax, log-sum-exp), an A operand held in registers from a GEMM's
result — is refused at its statement. (tests/backends/test_fragments.py runs the lowering's
operand and store offsets through a model of ldmatrix and mma for these layouts.)"""
import dataclasses

import pytest

from tlc.api import check
from tlc.backends import target_for
from tlc.backends.lower import lower
from tlc.backends.target import Unsupported
from tlc.backward_plans import BackwardOptions, render
from tlc.build import build, find_nvcc
from tlc.templates import plan

needs_nvcc = pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not on this machine")


def splitting(arch):
    target = target_for(arch)
    return dataclasses.replace(target, gemm=dataclasses.replace(target.gemm, splits_columns=True))


def kernel_of(text, arch):
    result = check(text, arch=arch)
    assert result.kernel is not None
    return result.kernel


def test_turing_refuses_the_split_until_it_is_measured():
    text = render(BackwardOptions("fp16", 64, arch="sm_75", bm=32, bn=32, warps=2, warps_n=2))
    assert "with warps (WARPS, WARPS_N)" in text and "param WARPS_N = 2" in text
    errors = [d for d in check(text, arch="sm_75").diagnostics if d.is_error]
    assert [d.code for d in errors] == ["backend-unsupported"]
    assert "splits GEMM rows over warps, not columns: warps (2, 2)" in errors[0].message


@pytest.mark.parametrize("arch", ["sm_80", "sm_86", "sm_89", "sm_90"])
def test_ampere_and_its_siblings_take_the_split(arch):
    """tests/gpu/test_backward_gpu.py ran its gradients (benchmarks/results/h100-...)."""
    text = render(BackwardOptions("fp16", 64, arch="sm_80", bm=64, bn=64, warps=2, warps_n=2))
    result = check(text.replace("for sm_80", f"for {arch}"), arch=arch)
    assert result.ok, [d.message for d in result.diagnostics if d.is_error]
    assert "__launch_bounds__(128" in result.lowered.main.source


def test_one_warp_across_renders_as_before():
    assert "WARPS_N" not in render(BackwardOptions("fp16", 64, warps_n=1))


# (arch, dtype, D, causal, BM, BN, WM, WN, part): each built for its arch, no spills (each
# one the register estimate takes, split on: 32 x 64 on (1, 2) for sm_75, at an estimate of
# 307, sat at ptxas's 255 and spilled 12 bytes once P was packed before dP's GEMM)
SPLIT_PLANS = [
    ("sm_80", "fp16", 64, False, 64, 64, 2, 2, "all"),
    ("sm_80", "bf16", 64, True, 64, 128, 2, 4, "all"),
    ("sm_80", "fp16", 64, True, 128, 64, 4, 2, "all"),
    ("sm_80", "fp16", 64, False, 128, 128, 4, 2, "dkdv"),
    ("sm_80", "bf16", 128, False, 128, 64, 4, 2, "all"),
    ("sm_75", "fp16", 64, False, 64, 64, 2, 2, "all"),
    ("sm_75", "fp16", 64, True, 32, 32, 1, 2, "dkdv"),
    ("sm_75", "fp16", 64, True, 32, 64, 2, 2, "dkdv"),
]


@needs_nvcc
@pytest.mark.parametrize("arch, dtype, d, causal, bm, bn, wm, wn, part", SPLIT_PLANS)
def test_split_backward_plans_lower_and_build_without_spills(arch, dtype, d, causal, bm, bn, wm,
                                                             wn, part, tmp_path):
    options = BackwardOptions(dtype, d, causal, 1, arch, bm, bn, wm, part=part, warps_n=wn)
    lowered = lower(kernel_of(render(options), arch), splitting(arch))
    kernel = lowered.main
    assert f"__launch_bounds__({32 * wm * wn}" in kernel.source
    if wm > 1:  # a warp's first row and its column offset both come from its index
        assert f"(tlc_warp / {wn})" in kernel.source and f"(tlc_warp % {wn})" in kernel.source
    report = build(kernel.source, arch, cache_dir=tmp_path).function(kernel.name)
    assert report.spill_stores == report.spill_loads == 0, report


@pytest.mark.parametrize("arch", ["sm_80", "sm_75"])
def test_dq_by_query_tiles_is_refused_at_the_gemm_that_needs_whole_rows(arch):
    """The deterministic dQ plan multiplies dS, held in registers as S's accumulator was, by K:
    with columns split, a warp holds only its columns of dS."""
    options = BackwardOptions("fp16", 64, False, 1, arch, 64, 64, 2, part="dq", warps_n=2)
    with pytest.raises(Unsupported, match="`dS` as A in registers") as refusal:
        lower(kernel_of(render(options), arch), splitting(arch))
    assert "with warps (4, 1)" in refusal.value.help
    assert refusal.value.statement.span is not None


def test_a_softmax_is_refused_where_its_rows_span_warps():
    text = plan("fp16", 64, False, 1).replace("with warps (WARPS, 1)", "with warps (2, 2)")
    with pytest.raises(Unsupported, match="Softmax reduces each row within one warp") as refusal:
        lower(kernel_of(text, "sm_80"), splitting("sm_80"))
    assert "with warps (4, 1)" in refusal.value.help
