"""tlc.torch.ring_attention over torch.distributed's gloo backend on CPU processes (world 2
to 4), each pair of chunks by a float64 reference in place of tlc's GPU kernel, against
attention of the whole sequence in one process: odd lengths, causal (zig-zag shards) and
not, GQA. The GPU run (NCCL, tlc's kernels) needs several GPUs."""
import multiprocessing
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

from tlc.reference import Variant, attention, logsumexp  # noqa: E402
from tlc.ring import shard  # noqa: E402

from conftest import run_ranks  # noqa: E402


def reference_pair(q, k, v, causal):
    """(O, L) of (B, rows, H, D) chunks in float64, as tlc.torch.attention returns them."""
    group = q.shape[2] // k.shape[2]
    qh, kh, vh = (t.transpose(1, 2).double() for t in (q, k, v))
    kh, vh = kh.repeat_interleave(group, 1), vh.repeat_interleave(group, 1)
    scores = qh @ kh.transpose(-1, -2) / q.shape[-1] ** 0.5
    if causal:
        n, m = scores.shape[-2:]
        hidden = torch.arange(m)[None, :] > torch.arange(n)[:, None] + (m - n)
        scores = scores.masked_fill(hidden, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    out = torch.softmax(scores, dim=-1).nan_to_num(0.0) @ vh
    return out.transpose(1, 2), lse


def _rank(rank, world, path, q, k, v, length, causal, results):
    import tlc.torch as tt

    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=world)
    try:
        rows = [torch.arange(c.start, c.stop) for c in shard(length, world, causal)[rank]]
        index = torch.cat(rows)
        out, lse = tt.ring_attention(q[:, index], k[:, index], v[:, index], length,
                                     causal=causal, return_lse=True, local=reference_pair)
        results.put((rank, out.numpy(), lse.numpy()))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world, length, heads", [(2, 37, (2, 2)), (3, 101, (4, 2)),
                                                  (4, 70, (4, 1))])
@pytest.mark.parametrize("causal", [False, True])
def test_ring_attention_over_gloo_is_attention_of_the_whole_sequence(tmp_path, world, length,
                                                                     heads, causal):
    generator = torch.Generator().manual_seed(world * length)
    h, hkv = heads
    q = torch.randn(1, length, h, 16, generator=generator, dtype=torch.float64)
    k = torch.randn(1, length, hkv, 16, generator=generator, dtype=torch.float64)
    v = torch.randn(1, length, hkv, 16, generator=generator, dtype=torch.float64)
    path = os.path.join(tmp_path, "rendezvous")
    found = run_ranks(multiprocessing.get_context("spawn"), world, _rank,
                      lambda r, results: (r, world, path, q, k, v, length, causal, results))
    whole = attention(q.transpose(1, 2).numpy(), k.transpose(1, 2).numpy(),
                      v.transpose(1, 2).numpy(), Variant(causal=causal))
    whole_lse = logsumexp(q.transpose(1, 2).numpy(), k.transpose(1, 2).numpy(),
                          Variant(causal=causal))
    for rank in range(world):
        index = np.concatenate([np.arange(c.start, c.stop)
                                for c in shard(length, world, causal)[rank]])
        out, lse = found[rank]
        np.testing.assert_allclose(out.transpose(0, 2, 1, 3), whole[:, :, index], atol=1e-5)
        np.testing.assert_allclose(lse, whole_lse[:, :, index], atol=1e-5)


def test_ring_attention_refuses_inputs_that_want_gradients():
    """Each pair's kernel has a backward now, but the K/V shards' sends do not carry the
    gradients of the keys back to the ranks that hold them."""
    import tlc.torch as tt
    from tlc.runtime import ArgumentError

    q = torch.zeros(1, 4, 2, 8, requires_grad=True)
    with pytest.raises(ArgumentError, match="no backward yet"):
        tt.ring_attention(q, q, q, 4)
