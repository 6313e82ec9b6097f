"""Ring attention's logic, apart from any GPU or transport: how a sequence is sharded over
the ranks of a ring, which K/V shard a rank holds at each step, what each (query chunk,
key chunk) pair needs, and the merge of partial results by their log-sum-exp.

Each rank holds the queries, keys and values of its shard. The K/V shards travel around the
ring (rank r sends to r + 1 and receives from r - 1), so after `world` steps every rank has
attended its queries to every shard; each step's partial output merges into the running one
by log-sum-exp, which is exact (docs/language.md §5.5 merges split-KV parts the same way).
For causal attention the sequence is cut into 2·world chunks and rank r holds chunks r and
2·world - 1 - r (the zig-zag layout), so that every rank has as many visible pairs as any
other: a contiguous layout would give the last rank all the work.

`ring_attention` runs the ring with two callables: `transport`, which passes a shard to the
next rank and returns the one from the previous rank (torch.distributed's send/recv, or
processes and pipes in the tests), and `local`, which computes one pair's (output, lse) —
tlc's kernel on a GPU, tlc.reference on the CPU. tlc.torch.ring_attention is the PyTorch
front door.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Chunk:
    """Rows [start, stop) of the whole sequence."""

    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


def shard(length: int, world: int, causal: bool) -> list[tuple[Chunk, ...]]:
    """Each rank's chunks of a sequence of `length` rows: one contiguous chunk, or for
    causal attention the zig-zag pair (chunk r and chunk 2·world - 1 - r of 2·world). Chunk
    lengths differ by at most one row, so odd lengths shard too."""
    if world < 1:
        raise ValueError(f"a ring of {world} ranks")
    pieces = 2 * world if causal else world
    bounds = [length * i // pieces for i in range(pieces + 1)]
    chunks = [Chunk(bounds[i], bounds[i + 1]) for i in range(pieces)]
    if not causal:
        return [(chunks[r],) for r in range(world)]
    return [(chunks[r], chunks[pieces - 1 - r]) for r in range(world)]


def pair_mode(query: Chunk, key: Chunk, causal: bool) -> str:
    """What a query chunk needs of a key chunk: "full" (every key visible), "causal" (the
    same rows: the diagonal block, causal within it), or "skip" (every key in the future).
    Chunks of one sharding are disjoint or equal, so there is no other case."""
    if not causal or key.stop <= query.start:
        return "full"
    if key.start >= query.stop:
        return "skip"
    if key == query:
        return "causal"
    raise ValueError(f"chunks {query} and {key} overlap without being equal")


def merge(out, lse, part, part_lse):
    """The merge of two partial attentions of the same rows by their log-sum-exp: out
    (..., rows, D) and lse (..., rows), float64; a part of -inf lse adds nothing."""
    top = np.maximum(lse, part_lse)
    finite = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(invalid="ignore"):
        a, b = np.exp(lse - finite), np.exp(part_lse - finite)
    a, b = np.where(np.isfinite(lse), a, 0.0), np.where(np.isfinite(part_lse), b, 0.0)
    total = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        merged = (out * a[..., None] + part * b[..., None]) / np.where(total > 0, total,
                                                                       1.0)[..., None]
        merged_lse = np.where(total > 0, finite + np.log(np.where(total > 0, total, 1.0)),
                              -np.inf)
    return np.where(total[..., None] > 0, merged, 0.0), merged_lse


def ring_attention(rank: int, world: int, q_chunks, kv_chunks, chunks, local, transport,
                   causal: bool = False, combine=merge, empty=None):
    """This rank's (outputs, lses), one per chunk it holds, from `world` steps around the
    ring. q_chunks: this rank's query rows per chunk, (..., rows, D); kv_chunks: its (K, V)
    per chunk; chunks: `shard(...)`'s layout. local(q, k, v, mode) -> (out, lse) for one
    pair ("full" or "causal"); transport(payload) starts sending this rank's current payload
    to the next rank and receiving the previous rank's, and returns a function that waits for
    the received one: the step's attention runs meanwhile, so the transfer overlaps it.
    combine merges two partials (`merge`, or its PyTorch twin); empty(q, v) gives the
    (zeros, -inf) of rows that see no key."""
    outs = [None] * len(q_chunks)
    lses = [None] * len(q_chunks)
    payload = (rank, kv_chunks)
    for step in range(world):
        owner, held = payload
        receive = transport(payload) if step + 1 < world else None
        for i, query in enumerate(chunks[rank]):
            for (k, v), key in zip(held, chunks[owner]):
                mode = pair_mode(query, key, causal)
                if mode == "skip" or key.rows == 0 or query.rows == 0:
                    continue
                out, lse = local(q_chunks[i], k, v, mode)
                if outs[i] is None:
                    outs[i], lses[i] = out, lse
                else:
                    outs[i], lses[i] = combine(outs[i], lses[i], out, lse)
        if receive is not None:
            payload = receive()
    for i, q in enumerate(q_chunks):
        if outs[i] is None:  # no key visible to these rows: zeros, -inf
            outs[i], lses[i] = (empty or _empty)(q, kv_chunks[0][1])
    return outs, lses


def _empty(q, v):
    return np.zeros(q.shape[:-1] + (v.shape[-1],)), np.full(q.shape[:-1], -np.inf)
