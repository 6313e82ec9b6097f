"""tlc.torch's backward without a GPU: the op and the autograd formulas registered (meta
tensors carry the shapes through a backward), the cases refused before the forward runs, the
backward's case for a forward's, and the formula the op computes on the host (Delta with the
gradient through L) checked by torch.autograd.gradcheck in float64. Skipped where PyTorch is
not installed; tests/gpu/test_torch_backward_gpu.py runs the kernels."""
import math

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (tlc does not need it)")

import tlc.torch as tt  # noqa: E402
from tlc import torch_backward as tb  # noqa: E402


def meta(shape, dtype=torch.float16):
    return torch.empty(shape, dtype=dtype, device="meta").requires_grad_()


def test_the_backward_op_is_registered_with_its_schema():
    schema = str(torch.ops.tlc.attention_backward.default._schema)
    for part in ("Tensor dout", "Tensor lse", "Tensor? dlse", "bool causal", "str layout",
                 "-> (Tensor, Tensor, Tensor)"):
        assert part in schema


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
@pytest.mark.parametrize("return_lse", [False, True])
def test_gradients_flow_back_with_the_inputs_shapes_and_dtypes(layout, return_lse):
    dims = (lambda h, n: (2, h, n, 64)) if layout == "bhsd" else (lambda h, n: (2, n, h, 64))
    q, k, v = meta(dims(8, 128), torch.bfloat16), meta(dims(2, 96), torch.bfloat16), \
        meta(dims(2, 96), torch.bfloat16)
    result = tt.attention(q, k, v, causal=True, layout=layout, arch="sm_80",
                          return_lse=return_lse)
    loss = result[0].sum() + result[1].sum() if return_lse else result.sum()
    loss.backward()
    for t in (q, k, v):
        assert t.grad.shape == t.shape and t.grad.dtype == t.dtype


def test_the_deterministic_backward_takes_its_two_plans():
    q, k, v = meta((1, 8, 40, 64)), meta((1, 2, 50, 64)), meta((1, 2, 50, 64))
    out = tt.attention(q, k, v, causal=True, arch="sm_80", deterministic=True)
    out.sum().backward()
    assert q.grad.shape == q.shape and k.grad.shape == k.shape
    case = tb.backward_case(tt.Case("fp16", 64, 4, True, arch="sm_80"))
    kernels = [next(line for line in tb.backward_text(case, part).splitlines()
                    if line.startswith("kernel ")) for part in tb.PARTS[True]]
    assert kernels == [
        "kernel gqa_causal_bwd_dkdv_fp16_d64_sm80 for sm_80",
        "kernel gqa_causal_bwd_dq_fp16_d64_sm80 for sm_80"]


def test_a_case_the_one_kernel_plan_does_not_fit_takes_the_two_plans():
    """At D = 128 on sm_80 dQ does not fit in registers beside dK and dV; without it, each of
    the deterministic pair does."""
    assert tb.parts_for(tt.Case("fp16", 64, arch="sm_80"), False) == ("all",)
    assert tb.parts_for(tt.Case("fp16", 128, arch="sm_80"), False) == ("dkdv", "dq")
    assert tb.parts_for(tt.Case("fp16", 64, arch="sm_80"), True) == ("dkdv", "dq")
    with pytest.raises(tt.NotCovered, match="no backward for fp16, D = 128 for sm_75"):
        tb.parts_for(tt.Case("fp16", 128, arch="sm_75"), False)
    q = meta((1, 2, 16, 128))
    tt.attention(q, q, q, arch="sm_80").sum().backward()
    assert q.grad.shape == q.shape


def test_the_plain_op_has_a_backward_too():
    q, k, v = meta((1, 4, 32, 64)), meta((1, 4, 32, 64)), meta((1, 4, 32, 64))
    out = torch.ops.tlc.attention(q, k, v, False, -1, -1, 0.0, None, 0.125, "bhsd", "sm_80",
                                  False)
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    assert [g.shape for g in grads] == [q.shape, k.shape, v.shape]


def test_a_case_without_a_backward_plan_is_refused_before_the_forward():
    wide = meta((1, 2, 16, 256))
    with pytest.raises(tt.NotCovered, match=r"no backward for fp16, D = 256 for sm_80.*"
                                            r"registers.*torch.no_grad"):
        tt.attention(wide, wide, wide, arch="sm_80")
    turing = meta((1, 2, 16, 64), torch.bfloat16)
    with pytest.raises(tt.NotCovered, match="bf16 on Turing"):
        tt.attention(turing, turing, turing, arch="sm_75")
    with torch.no_grad():  # inference needs no backward plan
        assert tt.attention(wide, wide, wide, arch="sm_80").shape == wide.shape


def test_the_backward_runs_the_portable_target_without_the_forwards_own_choices():
    case = tt.Case("fp16", 64, 4, True, arch="sm_90a", lse=True, splits=8, decode=True)
    assert tb.backward_case(case) == tt.Case("fp16", 64, 4, True, arch="sm_90")
    assert tb.backward_case(tt.Case("fp16", 64, arch="sm_75")).arch == "sm_75"
    assert "kernel gqa_causal_bwd_fp16_d64_sm90" in tb.backward_text(
        tb.backward_case(case))


class PlanFormula(torch.autograd.Function):
    """Attention (O, L) in float64 whose backward is the plan's chain: P recomputed from L,
    dP = dO Vᵀ, dS = P ∘ (dP − Delta) with the op's Delta (tb.delta_of), dQ = scale dS K,
    dK = scale dSᵀ Q, dV = Pᵀ dO."""

    @staticmethod
    def forward(ctx, q, k, v, mask, scale):
        s = (q @ k.transpose(-1, -2)) * scale
        s = s.masked_fill(~mask, -math.inf)
        lse = torch.logsumexp(s, -1)
        out = torch.softmax(s, -1) @ v
        ctx.save_for_backward(q, k, v, out, lse, mask)
        ctx.scale = scale
        return out, lse

    @staticmethod
    def backward(ctx, dout, dlse):
        q, k, v, out, lse, mask = ctx.saved_tensors
        s = (q @ k.transpose(-1, -2)) * ctx.scale
        p = torch.exp(s - lse[..., None]).masked_fill(~mask, 0.0)
        delta = tb.delta_of(dout, out, dlse, "bhsd").double()
        ds = p * (dout @ v.transpose(-1, -2) - delta[..., None]) * ctx.scale
        return ds @ k, ds.transpose(-1, -2) @ q, p.transpose(-1, -2) @ dout, None, None


@pytest.mark.parametrize("causal", [False, True])
def test_the_backward_formula_with_the_gradient_through_l_passes_gradcheck(causal):
    generator = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 2, n, 4, dtype=torch.float64, generator=generator,
                           requires_grad=True) for n in (5, 7, 7))
    # bottom-right causal: query i (of 5) sees keys up to i + 2; every row sees a key
    mask = torch.ones(5, 7, dtype=torch.bool)
    if causal:
        mask = torch.arange(7)[None, :] <= torch.arange(5)[:, None] + 2
    assert torch.autograd.gradcheck(lambda a, b, c: PlanFormula.apply(a, b, c, mask, 0.5),
                                    (q, k, v), atol=1e-5, rtol=1e-4)


def test_delta_is_read_in_either_layout():
    generator = torch.Generator().manual_seed(0)
    dout, out = (torch.randn(2, 5, 3, 8, generator=generator) for _ in range(2))  # bshd
    dlse = torch.randn(2, 3, 5, generator=generator)
    delta = tb.delta_of(dout, out, dlse, "bshd")
    assert delta.shape == (2, 3, 5) and delta.is_contiguous()
    expected = (dout * out).sum(-1).transpose(1, 2) - dlse
    assert torch.allclose(delta, expected, atol=1e-6)


def test_the_saved_tensors_a_caller_passes_are_checked_before_a_kernel_reads_them():
    q = torch.zeros(1, 2, 8, 64, dtype=torch.float16)
    lse = torch.zeros(1, 2, 8)
    tb._check_saved(q, q, q, lse, None, 1, 2, 8)  # as the forward saved them
    with pytest.raises(tt.ArgumentError, match=r"lse is \(1, 2, 7\)"):
        tb._check_saved(q, q, q, lse[..., :7], None, 1, 2, 8)
    with pytest.raises(tt.ArgumentError, match="out is"):
        tb._check_saved(q, q, q.float(), lse, None, 1, 2, 8)
    with pytest.raises(tt.ArgumentError, match="the log-sum-exp's gradient"):
        tb._check_saved(q, q, q, lse, lse[:, :1], 1, 2, 8)
