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
    with pytest.raises(ArgumentError, match="no backward"):
        with torch.enable_grad():
            tt.attention(q.requires_grad_(), q, q)
