"""The simulator runs plans that read int32 tables on inputs a test builds (random tables
would not be a cache, so `tlc sim` itself refuses them): a paged cache with the table in
random order and ragged lengths (0 among them), a contiguous cache with lengths, a packed
batch of ragged sequences, split key loops; each against the float64 reference by the
peers' rule, sequence by sequence. What the GPU tests check of the kernels, this checks of
the plans' semantics, in CI."""
import numpy as np
import pytest

from tlc.driver import check
from tlc.reference import (Variant, attention, attention_low, compare, compare_lse,
                           from_storage, logsumexp, to_dtype, to_storage)
from tlc.simulate import Simulator
from tlc.templates import DECODE_TILES, plan

D = 64


def rounded(rng, shape, dtype):
    return to_dtype(rng.standard_normal(shape), dtype)


def check_sequence(got, lse, q, k, v, dtype, causal):
    """got (1, H, nq, D) and lse (1, H, nq) of one sequence against the reference."""
    variant = Variant(causal=causal)
    if k.shape[2] == 0:
        assert np.all(got == 0) and np.all(lse == -np.inf)
        return
    verdict = compare(got, attention(q, k, v, variant), attention_low(q, k, v, dtype, variant),
                      dtype, q_len=q.shape[2], k_len=k.shape[2], variant=variant)
    assert verdict.ok, verdict.problems
    lse_verdict = compare_lse(lse, logsumexp(q, k, variant), logsumexp(q, k, variant, dtype=dtype))
    assert lse_verdict.ok, lse_verdict.problems


@pytest.mark.parametrize("page", [None, 16, 64])
@pytest.mark.parametrize("splits, causal, nq", [(1, False, 1), (4, False, 1), (3, True, 5)])
def test_caches_with_lengths_and_pages_simulate_to_the_reference(page, splits, causal, nq):
    rng = np.random.default_rng(splits + (page or 0))
    b, hkv, group, capacity, dtype = 3, 2, 2, 256, "fp16"
    text = plan(dtype, D, causal, group=group, lse=True, splits=splits, tiles=DECODE_TILES,
                lengths=page is None, page=page)
    result = check(text)
    assert result.ok
    lengths = np.array([0, 77, 256], dtype=np.int32)
    q = rounded(rng, (b, hkv * group, nq, D), dtype)
    k, v = (rounded(rng, (b, hkv, capacity, D), dtype) for _ in range(2))
    arrays = {"Q": to_storage(q, dtype), "lengths": lengths, "scale": 1 / np.sqrt(D)}
    if page is None:
        arrays.update(K=to_storage(k, dtype), V=to_storage(v, dtype))
    else:  # a pool in (pages, Hkv, PAGE, D), the plan's order, pages shuffled
        per = capacity // page
        order = rng.permutation(b * per)
        arrays["table"] = order.reshape(b, per).astype(np.int32)
        for name, x in (("K", k), ("V", v)):
            pool = np.full((b * per, hkv, page, D), np.nan)
            pool[order] = x.reshape(b, hkv, per, page, D).transpose(0, 2, 1, 3, 4).reshape(
                b * per, hkv, page, D)
            arrays[name] = to_storage(pool, dtype)
    out = Simulator(result.kernel)(**arrays)
    o, lse = from_storage(out["O"], dtype), out["L"]
    for s, n in enumerate(lengths):
        ks = np.repeat(k[s:s + 1, :, :n], group, axis=1)
        vs = np.repeat(v[s:s + 1, :, :n], group, axis=1)
        check_sequence(o[s:s + 1], lse[s:s + 1], q[s:s + 1], ks, vs, dtype, causal)


@pytest.mark.parametrize("causal", [False, True])
def test_a_packed_batch_simulates_to_the_reference(causal):
    rng = np.random.default_rng(5)
    dtype, h, hkv = "bf16", 4, 2
    q_lengths, k_lengths = [3, 0, 70, 33], [5, 9, 70, 0]
    text = plan(dtype, D, causal, group=h // hkv, lse=True, varlen=True)
    result = check(text)
    assert result.ok
    q = rounded(rng, (h, sum(q_lengths), D), dtype)
    k, v = (rounded(rng, (hkv, sum(k_lengths), D), dtype) for _ in range(2))
    cu_q, cu_k = np.cumsum([0] + q_lengths), np.cumsum([0] + k_lengths)
    out = Simulator(result.kernel)(
        Q=to_storage(q, dtype), K=to_storage(k, dtype), V=to_storage(v, dtype),
        q_start=cu_q[:-1].astype(np.int32), q_end=cu_q[1:].astype(np.int32),
        k_start=cu_k[:-1].astype(np.int32), k_end=cu_k[1:].astype(np.int32),
        MaxQ=max(q_lengths), scale=1 / np.sqrt(D))
    o, lse = from_storage(out["O"], dtype), out["L"]
    for s, (nq, nk) in enumerate(zip(q_lengths, k_lengths)):
        if nq == 0:
            continue
        rows = slice(cu_q[s], cu_q[s + 1])
        keys = slice(cu_k[s], cu_k[s + 1])
        ks = np.repeat(k[None, :, keys], h // hkv, axis=1)
        vs = np.repeat(v[None, :, keys], h // hkv, axis=1)
        check_sequence(o[None, :, rows], lse[None, :, rows], q[None, :, rows], ks, vs, dtype,
                       causal)


def test_a_call_whose_tables_leave_the_tensors_is_refused_before_any_launch():
    """runtime.table_problem, which tlc.load's calls run first: every start and row count
    of every block inside its tensor, and every page they reach inside the pool."""
    from tlc.runtime import table_problem

    kernel = check(plan("fp16", D, group=2, splits=2, tiles=DECODE_TILES, page=16)).kernel
    sizes = {"B": 2, "H": 4, "Hkv": 2, "Nq": 1, "Nk": 64, "PAGES": 4}
    table = np.array([[0, 1, 2, 3], [4, 5, -1, -1]], dtype=np.int32)
    ok = {"table": table, "lengths": np.array([64, 20], dtype=np.int32)}
    assert table_problem(kernel, ok, sizes, {"K": 6, "V": 6}) is None
    long = dict(ok, lengths=np.array([65, 20], dtype=np.int32))
    assert "leave its 64 rows" in table_problem(kernel, long, sizes, {"K": 6, "V": 6})
    negative = dict(ok, lengths=np.array([64, -1], dtype=np.int32))
    assert "leave its 64 rows" in table_problem(kernel, negative, sizes, {"K": 6, "V": 6})
    reached = dict(ok, lengths=np.array([64, 40], dtype=np.int32))  # reaches table[1, 2]
    assert "entry -1 of row 1 is reached" in table_problem(kernel, reached, sizes,
                                                           {"K": 6, "V": 6})
    assert "outside its pool of 5 pages" in table_problem(kernel, ok, sizes, {"K": 5, "V": 5})
    short = dict(ok, lengths=np.array([64], dtype=np.int32))  # B = 2 blocks, 1 length
    assert "outside its shape" in table_problem(kernel, short, sizes, {"K": 6, "V": 6})
