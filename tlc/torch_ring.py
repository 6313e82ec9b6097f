"""`tlc.torch.ring_attention`: attention over a sequence sharded across the ranks of a
torch.distributed group (context parallelism), tlc's kernel for each rank's pairs of chunks,
K/V shards passed around the ring by point-to-point sends that overlap the kernels, the
partial results merged by log-sum-exp. The schedule, the zig-zag layout and the merge are
tlc.ring's; this module is their PyTorch transport and arithmetic.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from tlc import ring
from tlc.runtime import ArgumentError


def ring_attention(q, k, v, seq_len: int, *, group=None, causal: bool = False,
                   softcap: float | None = None, scale: float | None = None,
                   return_lse: bool = False, local=None):
    """This rank's rows of softmax attention over the whole sequence.

    q: (B, n, H, D) and k, v: (B, n, Hkv, D), this rank's n rows of a sequence of seq_len,
    as `tlc.ring.shard(seq_len, world, causal)` deals them: one contiguous chunk, or for
    causal the two zig-zag chunks one after the other. Every rank of `group` (default: the
    world) calls it with its shard. Returns O (B, n, H, D) in q's dtype, or (O, L) with L
    (B, H, n) fp32. softcap applies to every score, so to every pair. A sliding window or
    ALiBi would need each pair's distance from the diagonal, which tlc's kernels do not take
    yet: they are refused. `local(q, k, v, causal) -> (O, L)` computes one pair of chunks in
    (B, rows, H, D) layout; by default tlc.torch.attention(..., return_lse=True) on the GPU.
    """
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        # each pair's kernel is differentiable, but the K/V shards' sends are not: the
        # gradients of the keys other ranks hold would be lost
        raise ArgumentError("ring_attention has no backward yet: call it under "
                            "torch.no_grad()")
    if not dist.is_available() or not dist.is_initialized():
        raise ArgumentError("ring_attention needs torch.distributed initialised "
                            "(torch.distributed.init_process_group)")
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    chunks = ring.shard(int(seq_len), world, causal)
    mine = sum(c.rows for c in chunks[rank])
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4 or t.shape[1] != mine:
            raise ArgumentError(f"{name}: (B, {mine}, heads, D) on rank {rank} of {world} for a "
                                f"sequence of {seq_len} ({'zig-zag' if causal else 'contiguous'}"
                                f" shards: tlc.ring.shard), not {tuple(t.shape)}")
    local = local or _tlc_pair(scale, softcap)
    offsets = [0]
    for chunk in chunks[rank]:
        offsets.append(offsets[-1] + chunk.rows)
    q_chunks = [q[:, a:b] for a, b in zip(offsets, offsets[1:])]
    kv = torch.stack((k, v)).contiguous()  # one buffer a step travels in

    def split(buffer, owner):
        bounds = [0]
        for chunk in chunks[owner]:
            bounds.append(bounds[-1] + chunk.rows)
        return [(buffer[0][:, a:b], buffer[1][:, a:b]) for a, b in zip(bounds, bounds[1:])]

    peers = (dist.get_global_rank(group, (rank + 1) % world) if group else (rank + 1) % world,
             dist.get_global_rank(group, (rank - 1) % world) if group else (rank - 1) % world)

    def transport(payload):
        owner, _ = payload
        source = (owner - 1) % world
        incoming = torch.empty((2, k.shape[0], sum(c.rows for c in chunks[source])) +
                               tuple(k.shape[2:]), dtype=k.dtype, device=k.device)
        requests = dist.batch_isend_irecv([
            dist.P2POp(dist.isend, payload_buffers[owner], peers[0], group),
            dist.P2POp(dist.irecv, incoming, peers[1], group)])

        def receive():
            for request in requests:
                request.wait()
            payload_buffers[source] = incoming
            return source, split(incoming, source)
        return receive

    payload_buffers = {rank: kv}

    def pair(qc, kc, vc, mode):
        out, lse = local(qc, kc, vc, mode == "causal")
        return out.float(), lse.float()

    outs, lses = ring.ring_attention(rank, world, q_chunks, split(kv, rank), chunks, pair,
                                     transport, causal, combine=merge, empty=_empty)
    out = torch.cat(outs, dim=1).to(q.dtype)
    return (out, torch.cat(lses, dim=2)) if return_lse else out


def merge(out, lse, part, part_lse):
    """tlc.ring.merge on tensors: out (B, rows, H, D) fp32, lse (B, H, rows) fp32."""
    top = torch.maximum(lse, part_lse)
    finite = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    a = torch.where(torch.isfinite(lse), torch.exp(lse - finite), torch.zeros_like(lse))
    b = torch.where(torch.isfinite(part_lse), torch.exp(part_lse - finite),
                    torch.zeros_like(lse))
    total = a + b
    safe = torch.where(total > 0, total, torch.ones_like(total))
    weight = (a / safe).transpose(1, 2)[..., None], (b / safe).transpose(1, 2)[..., None]
    merged = out * weight[0] + part * weight[1]
    return merged, torch.where(total > 0, finite + torch.log(safe),
                               torch.full_like(total, float("-inf")))


def _empty(q, v):
    b, rows, h, _ = q.shape
    return (torch.zeros((b, rows, h, v.shape[-1]), dtype=torch.float32, device=q.device),
            torch.full((b, h, rows), float("-inf"), dtype=torch.float32, device=q.device))


def _tlc_pair(scale, softcap):
    from tlc import torch as tt

    def pair(q, k, v, causal):
        return tt.attention(q, k, v, causal=causal, softcap=softcap, scale=scale,
                            layout="bshd", return_lse=True)
    return pair
