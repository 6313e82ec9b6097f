"""tlc.torch.attention's gradients on the GPU present against the float64 gradients, by the
peers' rule for gradients (3x the plain low-precision error, tlc.reference.compare_grads):
both layouts, MHA and GQA, causal with rows that see no key, a window, a softcap, ALiBi, one
query row (whose forward packs the group's heads), D = 32, 40, 96 and 128 (two plans); the
gradient through L; an output gradient with zero strides; the deterministic mode (the same
bits twice); a Turing plan as PTX; torch.compile; the refusal of a case with no backward
plan. tests/test_torch_backward.py covers what needs no GPU."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed")
if not torch.cuda.is_available():
    pytest.skip("PyTorch sees no GPU", allow_module_level=True)

import tlc.torch as tt  # noqa: E402
from tlc.reference import (GRADIENT_RATIO, Variant, alibi_slopes, attention_grad,  # noqa: E402
                           attention_grad_low, compare, compare_grads)

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
# name: (dtype, heads, kv heads, Nq, Nk, head dim, options)
CASES = {
    "mha": ("fp16", 4, 4, 77, 130, 64, {}),
    "gqa-causal-no-key-rows": ("bf16", 8, 2, 130, 77, 64, dict(causal=True)),
    "gqa-window": ("fp16", 8, 2, 113, 203, 64, dict(window=(40, 8))),
    "softcap": ("fp16", 4, 4, 96, 96, 64, dict(softcap=2.0)),
    "gqa-causal-alibi": ("fp16", 8, 2, 100, 150, 64, dict(causal=True, alibi=True)),
    "one-query-row": ("bf16", 8, 2, 1, 300, 64, dict(causal=True)),
    "d32": ("fp16", 4, 2, 70, 70, 32, {}),
    "d40-causal": ("fp16", 4, 4, 90, 90, 40, dict(causal=True)),
    "d96": ("bf16", 4, 2, 77, 100, 96, {}),
    "d128-causal": ("fp16", 4, 2, 100, 130, 128, dict(causal=True)),
    "d192": ("bf16", 4, 2, 77, 90, 192, {}),
    "d256-causal-two-plans": ("fp16", 4, 2, 100, 130, 256, dict(causal=True)),
}


def leaves(dtype, heads, kv_heads, nq, nk, d, layout, seed):
    generator = torch.Generator(device="cuda").manual_seed(seed)

    def make(h, n):
        dims = (2, h, n, d) if layout == "bhsd" else (2, n, h, d)
        return torch.randn(dims, device="cuda", generator=generator).to(DTYPES[dtype])
    q, k, v, do = make(heads, nq), make(kv_heads, nk), make(kv_heads, nk), make(heads, nq)
    return q.requires_grad_(), k.requires_grad_(), v.requires_grad_(), do


def bhsd(t, layout):
    t = t.detach().float().cpu().numpy().astype(np.float64)
    return t.transpose(0, 2, 1, 3) if layout == "bshd" else t


def variant_of(options):
    return Variant(causal=options.get("causal", False), window=options.get("window"),
                   softcap=options.get("softcap"))


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
@pytest.mark.parametrize("name", list(CASES))
def test_the_gradients_match_the_reference(name, layout):
    dtype, heads, kv_heads, nq, nk, d, options = CASES[name]
    q, k, v, do = leaves(dtype, heads, kv_heads, nq, nk, d, layout, seed=nq + nk)
    options = dict(options)
    slopes = None
    if options.pop("alibi", False):
        slopes = alibi_slopes(heads)
        options["alibi_slopes"] = torch.tensor(slopes, dtype=torch.float32, device="cuda")
    out = tt.attention(q, k, v, layout=layout, **options)
    q.grad = k.grad = v.grad = None
    out.backward(do)
    variant = variant_of(options)
    inputs = [bhsd(t, layout) for t in (q, k, v, do)]
    got = [bhsd(t.grad, layout) for t in (q, k, v)]
    verdicts = compare_grads(got, attention_grad(*inputs, variant, slopes),
                             attention_grad_low(*inputs, dtype, variant, slopes), dtype,
                             variant)
    assert all(v.ok for v in verdicts.values()), {n: v.problems for n, v in verdicts.items()}


@pytest.mark.parametrize("name", ["gqa-causal-no-key-rows", "gqa-window", "softcap"])
def test_the_deterministic_backward_matches_the_reference_with_the_same_bits(name):
    dtype, heads, kv_heads, nq, nk, d, options = CASES[name]
    q, k, v, do = leaves(dtype, heads, kv_heads, nq, nk, d, "bshd", seed=7)
    runs = []
    for _ in range(2):
        out = tt.attention(q, k, v, layout="bshd", deterministic=True, **options)
        runs.append(torch.autograd.grad(out, (q, k, v), do))
    for first, second in zip(*runs):
        assert torch.equal(first, second)
    variant = variant_of(options)
    inputs = [bhsd(t, "bshd") for t in (q, k, v, do)]
    verdicts = compare_grads([bhsd(g, "bshd") for g in runs[0]],
                             attention_grad(*inputs, variant),
                             attention_grad_low(*inputs, dtype, variant), dtype, variant)
    assert all(v.ok for v in verdicts.values()), {n: v.problems for n, v in verdicts.items()}


def torch_attention(q, k, v, causal):
    """(O, L) in the inputs' dtype by PyTorch ops, (B, H, N, D), bottom-right causal."""
    group = q.shape[1] // k.shape[1]
    k, v = (x.repeat_interleave(group, 1) for x in (k, v))
    s = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    if causal:
        nq, nk = q.shape[2], k.shape[2]
        keep = torch.arange(nk, device=q.device)[None] <= \
            torch.arange(nq, device=q.device)[:, None] + nk - nq
        s = s.masked_fill(~keep, float("-inf"))
    return torch.softmax(s.float(), -1).to(q.dtype) @ v, torch.logsumexp(s.float(), -1)


@pytest.mark.parametrize("causal", [False, True])
def test_the_gradient_through_the_log_sum_exp(causal):
    q, k, v, do = leaves("fp16", 4, 2, 90, 120, 64, "bhsd", seed=5)
    dl = torch.randn(q.shape[:3], device="cuda")
    out, lse = tt.attention(q, k, v, causal=causal, return_lse=True)
    got = torch.autograd.grad((out.float() * do.float()).sum() + (lse * dl).sum(), (q, k, v))

    def grads(cast):
        xs = [x.detach().to(cast).requires_grad_() for x in (q, k, v)]
        o, l = torch_attention(*xs, causal)
        return torch.autograd.grad((o.double() * do.double()).sum() + (l.double() * dl).sum(),
                                   xs)
    ref, low = grads(torch.float64), grads(torch.float16)
    for name, g, r, lo in zip("qkv", got, ref, low):
        verdict = compare(g.double().cpu().numpy(), r.cpu().numpy(), lo.double().cpu().numpy(),
                          "fp16", variant=Variant(causal=causal), ratio=GRADIENT_RATIO)
        assert verdict.ok, (name, verdict.problems)


def test_an_output_gradient_with_zero_strides_is_read():
    q, k, v, _ = leaves("fp16", 4, 4, 64, 64, 64, "bhsd", seed=1)
    tt.attention(q, k, v).sum().backward()  # dO is a (1,) expanded to q's shape
    expected = torch.autograd.grad(
        torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float()).sum(),
        (q, k, v))
    for got, want in zip((q.grad, k.grad, v.grad), expected):
        assert torch.allclose(got.float(), want.float(), atol=2e-2, rtol=2e-2)


def test_a_turing_plan_runs_its_backward_as_ptx():
    q, k, v, do = leaves("fp16", 4, 2, 70, 90, 64, "bshd", seed=2)
    out = tt.attention(q, k, v, causal=True, layout="bshd", arch="sm_75")
    out.backward(do)
    inputs = [bhsd(t, "bshd") for t in (q, k, v, do)]
    variant = Variant(causal=True)
    verdicts = compare_grads([bhsd(t.grad, "bshd") for t in (q, k, v)],
                             attention_grad(*inputs, variant),
                             attention_grad_low(*inputs, "fp16", variant), "fp16", variant)
    assert all(v.ok for v in verdicts.values()), {n: v.problems for n, v in verdicts.items()}


def test_compiled_training_step_matches_eager():
    def step(q, k, v):
        return tt.attention(q, k, v, causal=True).float().square().sum()

    compiled = torch.compile(step, fullgraph=True)
    q, k, v, _ = leaves("bf16", 8, 2, 128, 128, 64, "bhsd", seed=4)
    eager = torch.autograd.grad(step(q, k, v), (q, k, v))
    traced = torch.autograd.grad(compiled(q, k, v), (q, k, v))
    for a, b in zip(eager, traced):  # dQ's atomic adds may land in another order
        torch.testing.assert_close(a, b)


def test_a_case_without_a_backward_plan_is_refused_before_the_forward():
    # D = 248: N = D leaves 8 columns, which warps split along columns cannot share, and
    # one warp along columns needs more registers than sm_80 has
    wide = torch.randn(1, 2, 16, 248, device="cuda").half().requires_grad_()
    with pytest.raises(tt.NotCovered, match="no backward for fp16, D = 248"):
        tt.attention(wide, wide, wide)
