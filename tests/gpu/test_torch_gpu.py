"""tlc.torch.attention on the GPU present against the float64 reference (the peers' rule),
outputs poisoned with NaN first: both layouts, GQA, causal with Nq != Nk, a view of a fused
QKV read in place, a Turing plan as PTX, CUDA-graph replay, and the refusals at the call.
benchmarks/torch_op.py runs the larger matrix, torch.compile and the overhead."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed")
if not torch.cuda.is_available():
    pytest.skip("PyTorch sees no GPU", allow_module_level=True)

import tlc.torch as tt  # noqa: E402
from tlc.reference import Variant, attention, attention_low, compare  # noqa: E402
from tlc.runtime import ArgumentError  # noqa: E402


pytestmark = pytest.mark.usefixtures("torch_poisoned")  # tests/conftest.py


def verdict(out, q, k, v, dtype, variant, layout):
    def bhsd(t):
        t = t.float().cpu().numpy().astype(np.float64)
        return t.transpose(0, 2, 1, 3) if layout == "bshd" else t

    qn, kn, vn = bhsd(q), bhsd(k), bhsd(v)
    return compare(bhsd(out), attention(qn, kn, vn, variant),
                   attention_low(qn, kn, vn, dtype, variant), dtype, q_len=qn.shape[2],
                   k_len=kn.shape[2], variant=variant)


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
@pytest.mark.parametrize("causal, nq, nk", [(False, 77, 130), (True, 130, 77), (True, 1, 300)])
def test_matches_the_reference(layout, dtype, causal, nq, nk):
    torch_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[dtype]

    def make(heads, n):
        dims = (2, heads, n, 64) if layout == "bhsd" else (2, n, heads, 64)
        return torch.randn(dims, device="cuda").to(torch_dtype)

    q, k, v = make(8, nq), make(2, nk), make(2, nk)
    out = tt.attention(q, k, v, causal=causal, layout=layout)
    result = verdict(out, q, k, v, dtype, Variant(causal=causal), layout)
    assert result.ok, result.problems


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
def test_the_log_sum_exp_comes_back_with_return_lse(layout):
    from tlc.reference import compare_lse, logsumexp

    dims = (lambda h, n: (2, h, n, 64)) if layout == "bhsd" else (lambda h, n: (2, n, h, 64))
    q = torch.randn(dims(8, 150), device="cuda").half()
    k, v = torch.randn(dims(2, 90), device="cuda").half(), torch.randn(dims(2, 90), device="cuda").half()
    out, lse = tt.attention(q, k, v, causal=True, layout=layout, return_lse=True)
    assert lse.shape == (2, 8, 150) and lse.dtype == torch.float32
    assert verdict(out, q, k, v, "fp16", Variant(causal=True), layout).ok

    def bhsd(t):
        t = t.float().cpu().numpy().astype(np.float64)
        return t.transpose(0, 2, 1, 3) if layout == "bshd" else t

    qn, kn = bhsd(q), bhsd(k)
    rows = compare_lse(lse.cpu().numpy(), logsumexp(qn, kn, Variant(causal=True)),
                       logsumexp(qn, kn, Variant(causal=True), dtype="fp16"))
    assert rows.ok, rows.problems


def test_views_of_a_fused_qkv_are_read_in_place():
    qkv = torch.randn(2, 97, 3, 4, 128, device="cuda").half()
    q, k, v = qkv.unbind(2)
    out = tt.attention(q, k, v, layout="bshd")
    assert torch.equal(out, tt.attention(q.contiguous(), k.contiguous(), v.contiguous(),
                                         layout="bshd"))
    assert verdict(out, q, k, v, "fp16", Variant(), "bshd").ok


def test_a_turing_plan_runs_as_ptx():
    q = torch.randn(1, 4, 100, 64, device="cuda").half()
    out = tt.attention(q, q, q, causal=True, arch="sm_75")
    assert verdict(out, q, q, q, "fp16", Variant(causal=True), "bhsd").ok


def test_cuda_graph_replay_matches_eager():
    q = torch.randn(1, 4, 256, 64, device="cuda").half()
    k, v = torch.randn_like(q), torch.randn_like(q)
    tt.attention(q, k, v)  # built and warm before capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = tt.attention(q, k, v)
    q.copy_(torch.randn_like(q))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, tt.attention(q, k, v))


def test_bad_calls_get_errors_that_name_the_argument():
    q = torch.randn(1, 4, 16, 64, device="cuda").half()
    with pytest.raises(ArgumentError, match="multiple of the K/V heads"):
        tt.attention(q, q[:, :3], q[:, :3])
    with pytest.raises(ArgumentError, match="one dtype"):
        tt.attention(q, q.bfloat16(), q)
    odd = torch.randn(1, 4, 16, 100, device="cuda").half()
    with pytest.raises(tt.NotCovered, match="96 and 104"):
        tt.attention(odd, odd, odd)
    wide = torch.randn(1, 4, 16, 248, device="cuda").half()
    with pytest.raises(tt.NotCovered, match="no backward for fp16, D = 248"):
        with torch.enable_grad():
            tt.attention(wide.requires_grad_(), wide, wide)


hopper = pytest.mark.skipif(
    torch.cuda.get_device_capability() != (9, 0),
    reason="sm_90a plans (wgmma, TMA) run on Hopper (sm_90) only")


def _arches_of(head_dim):
    return {key[0].arch for key in tt._built if key[0].head_dim == head_dim}


@hopper
@pytest.mark.parametrize("d", [64, 72, 128, 512])
def test_hopper_runs_the_sm90a_plan(d):
    """On Hopper the op takes the sm_90a plan (wgmma, TMA) wherever its template takes the
    case: head dims that end inside a panel and column-split ones included."""
    q = torch.randn(2, 8, 150, d, device="cuda").bfloat16()
    k, v = torch.randn(2, 2, 130, d, device="cuda").bfloat16(), \
        torch.randn(2, 2, 130, d, device="cuda").bfloat16()
    out = tt.attention(q, k, v, causal=True)
    assert "sm_90a" in _arches_of(d)
    assert verdict(out, q, k, v, "bf16", Variant(causal=True), "bhsd").ok


@hopper
def test_the_tensor_maps_follow_each_calls_tensors():
    """One signature, three calls on other tensors and back: each call's TMA descriptors are
    its own tensors' (the descriptors of the last addresses are kept, not of the first)."""
    def inputs():
        return [torch.randn(1, 4, 200, 128, device="cuda").half() for _ in range(3)]

    first, second = inputs(), inputs()
    for q, k, v in (first, second, first):
        out = tt.attention(q, k, v, layout="bhsd")
        assert verdict(out, q, k, v, "fp16", Variant(), "bhsd").ok


@hopper
def test_strides_tma_cannot_read_take_the_portable_plan():
    """Rows 152 bytes apart (a D = 72 view of 76-wide rows) are no TMA layout: the call runs
    the sm_90 plan instead, and is still right."""
    wide = torch.randn(1, 4, 120, 76, device="cuda").half()
    q = wide[..., :72]
    out = tt.attention(q, q, q)
    assert "sm_90" in _arches_of(72)
    assert verdict(out, q, q, q, "fp16", Variant(), "bhsd").ok
