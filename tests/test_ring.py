"""Ring attention's logic on CPU processes (tlc.ring), no GPU and no PyTorch: the sharding
(contiguous, and causal zig-zag with balanced work), what each chunk pair needs, the
log-sum-exp merge, and the whole ring — world 2 to 4 processes passing K/V shards through
queues, each pair by the float64 reference — against single-process attention of the whole
sequence, odd lengths and GQA included."""
import multiprocessing

import numpy as np
import pytest

from tlc.reference import Variant, attention, logsumexp, visible
from tlc.ring import Chunk, merge, pair_mode, ring_attention, shard

from conftest import run_ranks


@pytest.mark.parametrize("length, world", [(37, 2), (101, 3), (8, 4), (3, 4)])
@pytest.mark.parametrize("causal", [False, True])
def test_shards_tile_the_sequence(length, world, causal):
    layout = shard(length, world, causal)
    rows = sorted(r for chunks in layout for c in chunks for r in range(c.start, c.stop))
    assert rows == list(range(length)) and len(layout) == world


@pytest.mark.parametrize("world", [2, 3, 4])
def test_the_zigzag_gives_every_rank_the_same_causal_work(world):
    length = 4096 * world
    mask = visible(length, length, Variant(causal=True))
    work = [sum(int(mask[c.start:c.stop].sum()) for c in chunks)
            for chunks in shard(length, world, True)]
    contiguous = [int(mask[length * r // world:length * (r + 1) // world].sum())
                  for r in range(world)]
    assert max(work) / min(work) < 1.001          # balanced
    assert max(contiguous) / min(contiguous) > 2  # what the zig-zag avoids


def test_pair_modes_are_what_the_causal_mask_says():
    layout = shard(50, 3, True)
    mask = visible(50, 50, Variant(causal=True))
    chunks = [c for pair in layout for c in pair]
    for q in chunks:
        for k in chunks:
            block = mask[q.start:q.stop, k.start:k.stop]
            expected = "full" if block.all() else "skip" if not block.any() else "causal"
            assert pair_mode(q, k, True) == expected, (q, k)
    with pytest.raises(ValueError, match="overlap"):
        pair_mode(Chunk(0, 10), Chunk(5, 15), True)


def test_merging_parts_by_their_log_sum_exp_is_attention_over_all_keys():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 7, 16)) for _ in range(3))
    whole = attention(q, k, v), logsumexp(q, k)
    out, lse = None, None
    for keys in (slice(0, 3), slice(3, 3), slice(3, 7)):  # an empty part among them
        if keys.start == keys.stop:  # what a part that saw no key gives
            part = (np.zeros_like(q), np.full(q.shape[:-1], -np.inf))
        else:
            part = attention(q, k[:, :, keys], v[:, :, keys]), logsumexp(q, k[:, :, keys])
        out, lse = part if out is None else merge(out, lse, *part)
    np.testing.assert_allclose(out, whole[0], atol=1e-12)
    np.testing.assert_allclose(lse, whole[1], atol=1e-12)


def _local(q, k, v, mode):
    variant = Variant(causal=mode == "causal")
    return attention(q, k, v, variant), logsumexp(q, k, variant)


def _rank(rank, world, q, k, v, causal, inboxes, results):
    chunks = shard(q.shape[2], world, causal)
    q_chunks = [q[:, :, c.start:c.stop] for c in chunks[rank]]
    kv_chunks = [(k[:, :, c.start:c.stop], v[:, :, c.start:c.stop]) for c in chunks[rank]]

    def transport(payload):
        inboxes[(rank + 1) % world].put(payload)
        return lambda: inboxes[rank].get(timeout=60)

    outs, lses = ring_attention(rank, world, q_chunks, kv_chunks, chunks, _local, transport,
                                causal)
    results.put((rank, outs, lses))


@pytest.mark.parametrize("world, length, heads", [(2, 37, (2, 2)), (3, 101, (4, 2)),
                                                  (4, 64, (4, 1))])
@pytest.mark.parametrize("causal", [False, True])
def test_the_ring_over_processes_is_attention_of_the_whole_sequence(world, length, heads,
                                                                     causal):
    rng = np.random.default_rng(world + length)
    h, hkv = heads
    q = rng.standard_normal((1, h, length, 16))
    k, v = (rng.standard_normal((1, hkv, length, 16)) for _ in range(2))
    context = multiprocessing.get_context("fork")
    inboxes = [context.Queue() for _ in range(world)]
    found = run_ranks(context, world, _rank,
                      lambda r, results: (r, world, q, k, v, causal, inboxes, results))
    whole = attention(q, k, v, Variant(causal=causal))
    whole_lse = logsumexp(q, k, Variant(causal=causal))
    for rank, chunks in enumerate(shard(length, world, causal)):
        for chunk, out, lse in zip(chunks, *found[rank]):
            np.testing.assert_allclose(out, whole[:, :, chunk.start:chunk.stop], atol=1e-12)
            np.testing.assert_allclose(lse, whole_lse[:, :, chunk.start:chunk.stop],
                                       atol=1e-12)
