"""tlc.torch.attention_with_kvcache on the GPU present against the float64 reference (the
peers' rule, and reference.compare_lse for the log-sum-exp), outputs poisoned first:
sequences of ragged lengths from 0 (its output 0, its log-sum-exp -inf) to the cache's end,
contiguous caches and paged ones (pages of 16, 64 and 256 rows, the table in random order),
GQA 4:1 (one query row: the group's heads packed as rows) and MHA, causal query blocks
aligned to each sequence's end, the keys split from 1 to 64 ways; and the refusals at the
call: lengths past the cache, pages outside the pool, wrong dtypes."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed")
if not torch.cuda.is_available():
    pytest.skip("PyTorch sees no GPU", allow_module_level=True)

import tlc.torch as tt  # noqa: E402
from tlc.reference import (Variant, attention, attention_low, compare, compare_lse,  # noqa: E402
                           logsumexp)
from tlc.runtime import ArgumentError  # noqa: E402

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


pytestmark = pytest.mark.usefixtures("torch_poisoned")  # tests/conftest.py


def make_cache(b, capacity, hkv, d, dtype, page, generator):
    """(k_cache, v_cache, table or None, the logical (B, Hkv, capacity, D) K and V)."""
    dt = DTYPES[dtype]
    k = torch.randn(b, capacity, hkv, d, device="cuda", generator=generator).to(dt)
    v = torch.randn(b, capacity, hkv, d, device="cuda", generator=generator).to(dt)
    if page is None:
        return k, v, None, k, v
    per = capacity // page
    pool = b * per + 3  # spare pages nobody uses, filled with NaN: a stray read shows
    order = torch.randperm(pool, device="cuda", generator=generator)[:b * per]
    table = order.view(b, per).to(torch.int32)
    k_pool = torch.full((pool, page, hkv, d), float("nan"), device="cuda", dtype=dt)
    v_pool = torch.full((pool, page, hkv, d), float("nan"), device="cuda", dtype=dt)
    k_pool[order] = k.view(b * per, page, hkv, d)
    v_pool[order] = v.view(b * per, page, hkv, d)
    return k_pool, v_pool, table, k, v


def check(out, rows, q, k, v, lengths, dtype, causal):
    group = q.shape[2] // k.shape[2]
    for b, n in enumerate(lengths.tolist()):
        qs = q[b:b + 1].transpose(1, 2).double().cpu().numpy()
        ks = np.repeat(k[b:b + 1, :n].transpose(1, 2).double().cpu().numpy(), group, axis=1)
        vs = np.repeat(v[b:b + 1, :n].transpose(1, 2).double().cpu().numpy(), group, axis=1)
        got = out[b:b + 1].transpose(1, 2).double().cpu().numpy()
        variant = Variant(causal=causal)
        if n == 0:
            assert np.all(got == 0), f"sequence {b} has no key and its output is not 0"
            assert rows is None or torch.all(rows[b] == float("-inf"))
            continue
        verdict = compare(got, attention(qs, ks, vs, variant),
                          attention_low(qs, ks, vs, dtype, variant), dtype,
                          q_len=qs.shape[2], k_len=n, variant=variant)
        assert verdict.ok, (b, n, verdict.problems)
        if rows is not None:
            lse = compare_lse(rows[b:b + 1].double().cpu().numpy(), logsumexp(qs, ks, variant),
                              logsumexp(qs, ks, variant, dtype=dtype))
            assert lse.ok, (b, n, lse.problems)


@pytest.mark.parametrize("page", [None, 16, 64, 256])
@pytest.mark.parametrize("dtype, heads, nq, causal", [("bf16", (8, 2), 1, False),
                                                      ("fp16", (4, 4), 1, False),
                                                      ("fp16", (8, 2), 3, True)])
def test_ragged_caches_match_the_reference(page, dtype, heads, nq, causal):
    generator = torch.Generator(device="cuda").manual_seed(7)
    b, capacity, d = 5, 1024, 128
    h, hkv = heads
    k_cache, v_cache, table, k, v = make_cache(b, capacity, hkv, d, dtype, page, generator)
    lengths = torch.tensor([0, 1, 333, 1000, 1024], dtype=torch.int32, device="cuda")
    q = torch.randn(b, nq, h, d, device="cuda", generator=generator).to(DTYPES[dtype])
    out, rows = tt.attention_with_kvcache(q, k_cache, v_cache, lengths, table, causal=causal,
                                          return_lse=True)
    check(out, rows, q, k, v, lengths, dtype, causal)


@pytest.mark.parametrize("splits", [1, 2, 7, 64])
def test_every_split_count_merges_to_the_reference(monkeypatch, splits):
    monkeypatch.setattr(tt, "choose_splits", lambda *args: splits)
    generator = torch.Generator(device="cuda").manual_seed(splits)
    k_cache, v_cache, table, k, v = make_cache(3, 2048, 2, 128, "bf16", 64, generator)
    lengths = torch.tensor([2048, 65, 1500], dtype=torch.int32, device="cuda")
    q = torch.randn(3, 1, 8, 128, device="cuda", generator=generator).to(torch.bfloat16)
    out, rows = tt.attention_with_kvcache(q, k_cache, v_cache, lengths, table, return_lse=True)
    check(out, rows, q, k, v, lengths, "bf16", False)


def test_bad_lengths_tables_and_dtypes_are_argument_errors():
    generator = torch.Generator(device="cuda").manual_seed(0)
    k_cache, v_cache, table, _, _ = make_cache(2, 256, 2, 64, "fp16", 64, generator)
    q = torch.randn(2, 1, 4, 64, device="cuda").half()
    lengths = torch.tensor([10, 256], dtype=torch.int32, device="cuda")
    with pytest.raises(ArgumentError, match="cache_seqlens: a length outside"):
        tt.attention_with_kvcache(q, k_cache, v_cache, lengths + 1, table)
    bad = table.clone()
    bad[1, 3] = k_cache.shape[0]  # reached by the 256 keys of sequence 1
    with pytest.raises(ArgumentError, match="page_table: an entry the lengths reach"):
        tt.attention_with_kvcache(q, k_cache, v_cache, lengths, bad)
    bad[0, 3] = -5  # not reached by sequence 0's 10 keys: fine
    bad[1, 3] = table[1, 3]
    tt.attention_with_kvcache(q, k_cache, v_cache, lengths, bad)
    with pytest.raises(ArgumentError, match="cache_seqlens: a torch.int32 tensor"):
        tt.attention_with_kvcache(q, k_cache, v_cache, lengths.long(), table)
    with pytest.raises(ArgumentError, match="page_table"):
        tt.attention_with_kvcache(q, k_cache, v_cache, lengths, table[:1])


def prebuild() -> None:
    """Build the plans the tests above run, in parallel (benchmarks/gpu_decode.sh)."""
    import concurrent.futures
    import os

    from tlc.torch_kvcache import cache_case

    cases = set()
    for page in (None, 16, 64, 256):
        for dtype, (h, hkv), nq, causal in (("bf16", (8, 2), 1, False), ("fp16", (4, 4), 1, False),
                                            ("fp16", (8, 2), 3, True)):
            cases.add(cache_case(dtype, 5, nq, h, hkv, 128, 1024, page, causal, None, True, 0)[0])
    base, _ = cache_case("bf16", 3, 1, 8, 2, 128, 2048, 64, False, None, True, 0)
    cases.update(tt._replace(base, splits=s) for s in (1, 2, 7, 64))
    cases.add(cache_case("fp16", 2, 1, 4, 2, 64, 256, 64, False, None, False, 0)[0])
    from_ptx = tt._present_target(0)[1]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 4) as pool:
        list(pool.map(lambda case: tt.built_for(case, 0, from_ptx), cases))
