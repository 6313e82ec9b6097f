"""Decoding attention on the GPU present, in one run: one new query token a sequence against
a long K/V cache, where the time is the cache read from memory.

For each case (batch B, cache length L, query heads / K/V heads, dtype) every backend's
output is checked against the float64 reference (tlc.reference.compare, the peers' rule, on
the first sequence's first and last K/V heads with their query heads) before it is timed.
Timing: CUDA events around each call, the median of ITERS, with L2 flushed before each call
(a 1 GB cache would otherwise sit partly in the 50 MB L2 between calls and read faster than
memory allows) and the stream kept busy a millisecond more while the host enqueues the call
(SPIN_CYCLES), so the time is the device's, for every backend alike. The bytes a
call must move are K and V once, Q and O; TB/s is those over the time, next to the copy roof
measured in the same run (a device-to-device copy of COPY_BYTES: read and written).

Backends: tlc (tlc.torch.attention: the decoding plan, its keys split by
tlc.torch.choose_splits), fa3 (FlashAttention-3's flash_attn_with_kvcache from the fa3-fwd
wheel, bf16 only), and SDPA's flash, cuDNN and efficient kernels. Caches are in the
(B, L, H, D) layout FlashAttention keeps; tlc reads it as layout "bshd" and SDPA through
transposed views, all without a copy.

    python3 benchmarks/decode.py [--json PATH] [--quick] [--sweep]

--sweep also times tlc with each split count 1..64 on the B = 1 cases (how choose_splits was
chosen). Writes --json (default $OUT/decode.json): {"summary": ..., "rows": [...], "sweep":
[...]}; the table last.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import statistics
import sys

import numpy as np
import torch
import torch.nn.functional as F

import tlc.torch as tt
from tlc.reference import Variant, attention, attention_low, compare

TORCH_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
BATCHES = (1, 8, 64)
CACHE_LENGTHS = (1024, 4096, 16384, 65536, 131072)
HEADS = ((32, 8), (32, 32))     # (query heads, K/V heads): GQA 4:1 and MHA
HEAD_DIM = 128
ITERS = 20
COPY_BYTES = 2 << 30
# GPU cycles (about 1 ms) the stream spins after the flush, before the timed call: the host
# enqueues the call meanwhile, so its Python and launch overhead stays out of the time, for
# every backend alike, however slow the host (a call that synchronises still pays its wait).
SPIN_CYCLES = 2_000_000
CACHE_BUDGET = 64 << 30         # cases whose K/V cache is larger are skipped (H200: 141 GB)


def case_list(quick: bool):
    for dtype in ("bf16", "fp16"):
        for heads, kv_heads in HEADS:
            for batch in BATCHES if not quick else (1, 8):
                for length in CACHE_LENGTHS if not quick else (4096, 65536):
                    yield dict(batch=batch, cache_len=length, heads=heads, kv_heads=kv_heads,
                               head_dim=HEAD_DIM, dtype=dtype, layout="contiguous",
                               page_size=None)


PAGES = (16, 64, 256)


def paged_cases(quick: bool):
    """Paged caches (tlc only: the fa3-fwd wheel is built without paged KV, SDPA has none)."""
    for heads, kv_heads in HEADS:
        for batch in (1, 8) if not quick else (8,):
            for length in (16384, 131072) if not quick else (65536,):
                for page in PAGES:
                    yield dict(batch=batch, cache_len=length, heads=heads, kv_heads=kv_heads,
                               head_dim=HEAD_DIM, dtype="bf16", layout="paged", page_size=page)


def cache_bytes(case) -> int:
    return 2 * case["batch"] * case["cache_len"] * case["kv_heads"] * case["head_dim"] * 2


def moved_bytes(case) -> int:
    """K and V once, Q read and O written."""
    qo = 2 * case["batch"] * case["heads"] * case["head_dim"] * 2
    return cache_bytes(case) + qo


class Flush:
    """Writes a buffer larger than L2 so that the next call reads the cache from memory."""

    def __init__(self):
        self.buffer = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")

    def __call__(self):
        self.buffer.fill_(1)


def time_call(call, flush, iters=ITERS) -> float:
    for _ in range(3):
        call()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        flush()
        torch.cuda._sleep(SPIN_CYCLES)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def copy_roof(flush) -> float:
    """TB/s of a device-to-device copy (bytes read plus bytes written over the time)."""
    source = torch.empty(COPY_BYTES, dtype=torch.uint8, device="cuda")
    target = torch.empty_like(source)
    ms = min(time_call(lambda: target.copy_(source), flush, 10) for _ in range(3))
    return 2 * COPY_BYTES / ms / 1e9


def make_inputs(case, seed=0):
    generator = torch.Generator(device="cuda").manual_seed(seed)
    dtype = TORCH_DTYPES[case["dtype"]]
    b, h, hkv, d, n = (case[k] for k in ("batch", "heads", "kv_heads", "head_dim",
                                         "cache_len"))
    q = torch.randn(b, 1, h, d, device="cuda", dtype=dtype, generator=generator)
    k = torch.randn(b, n, hkv, d, device="cuda", dtype=dtype, generator=generator)
    v = torch.randn(b, n, hkv, d, device="cuda", dtype=dtype, generator=generator)
    return q, k, v


def checked_heads(case) -> tuple[list[int], list[int]]:
    """(K/V heads, query heads) the check covers: the first and the last K/V head of the
    first sequence, with their query heads."""
    group = case["heads"] // case["kv_heads"]
    kv = sorted({0, case["kv_heads"] - 1})
    return kv, [g * group + i for g in kv for i in range(group)]


def reference_of(case, q, k, v):
    """(ref, low) of the checked heads as a (1, heads, 1, D) problem."""
    kv, heads = checked_heads(case)
    group = case["heads"] // case["kv_heads"]
    qs = q[0, :, heads].transpose(0, 1).float().cpu().numpy()[None]          # (1, n, 1, D)
    ks = np.repeat(k[0, :, kv].transpose(0, 1).float().cpu().numpy(), group, axis=0)[None]
    vs = np.repeat(v[0, :, kv].transpose(0, 1).float().cpu().numpy(), group, axis=0)[None]
    return attention(qs, ks, vs, Variant()), attention_low(qs, ks, vs, case["dtype"], Variant())


def verdict_of(case, out_bshd, ref, low) -> dict:
    _, heads = checked_heads(case)
    got = out_bshd[0, :, heads].transpose(0, 1).float().cpu().numpy().astype(np.float64)[None]
    return compare(got, ref, low, case["dtype"], q_len=1, k_len=case["cache_len"],
                   variant=Variant()).to_json()


def make_paged(case, k, v, seed=1):
    """The cache as a pool of pages in random order and its block table."""
    b, n, page = case["batch"], case["cache_len"], case["page_size"]
    per = n // page
    generator = torch.Generator(device="cuda").manual_seed(seed)
    order = torch.randperm(b * per, device="cuda", generator=generator)
    pools = []
    for cache in (k, v):
        pool = torch.empty((b * per, page) + tuple(cache.shape[2:]), dtype=cache.dtype,
                           device="cuda")
        pool[order] = cache.reshape(b * per, page, *cache.shape[2:])
        pools.append(pool)
    table = order.view(b, per).to(torch.int32)
    return pools[0], pools[1], table


def measure_paged(case, flush, roof) -> list[dict]:
    row = dict(case, backend="tlc", ms=None, tbps=None, roof_tbps=round(roof, 3), check=None)
    q, k, v = make_inputs(case)
    ref, low = reference_of(case, q, k, v)
    k_pool, v_pool, table = make_paged(case, k, v)
    del k, v
    lengths = torch.full((case["batch"],), case["cache_len"], dtype=torch.int32, device="cuda")
    try:
        out = tt.attention_with_kvcache(q, k_pool, v_pool, lengths, table)  # checked once
        torch.cuda.synchronize()
        row["check"] = verdict_of(case, out, ref, low)
        if row["check"]["ok"]:
            # timed without the call's value check (one synchronisation), as the peers run
            ms = time_call(lambda: tt.attention_with_kvcache(q, k_pool, v_pool, lengths, table,
                                                             check=False), flush)
            row.update(ms=round(ms, 5), tbps=round(moved_bytes(case) / ms / 1e9, 3))
            checked = time_call(lambda: tt.attention_with_kvcache(q, k_pool, v_pool, lengths,
                                                                  table), flush)
            row["ms_with_check"] = round(checked, 5)
        else:
            row["error"] = "wrong result"
    except Exception as error:  # a failure is a row, not the end of the run
        row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    rows = [row]
    for peer, why in (("fa3", "the fa3-fwd wheel is built without paged KV"),
                      ("sdpa-flash", "SDPA takes no block table")):
        rows.append(dict(case, backend=peer, ms=None, tbps=None, roof_tbps=round(roof, 3),
                         check=None, error=f"unsupported: {why}"))
    del q, k_pool, v_pool
    torch.cuda.empty_cache()
    return rows


def backends(case, q, k, v):
    """name -> a call returning O in (B, 1, H, D), or a reason it does not run."""
    calls = {"tlc": lambda: tt.attention(q, k, v, layout="bshd")}
    try:
        import fa3_fwd_interface as fa3

        if case["dtype"] == "bf16":
            calls["fa3"] = lambda: fa3.flash_attn_with_kvcache(q, k, v)
        else:
            calls["fa3"] = "the fa3-fwd wheel has no fp16 kernels"
    except Exception as error:  # the wheel is absent or does not load with this PyTorch
        calls["fa3"] = f"fa3-fwd does not load: {type(error).__name__}: {error}"
    from torch.nn.attention import SDPBackend, sdpa_kernel

    qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))
    gqa = case["heads"] != case["kv_heads"]
    for name, backend in (("sdpa-flash", SDPBackend.FLASH_ATTENTION),
                          ("sdpa-cudnn", SDPBackend.CUDNN_ATTENTION),
                          ("sdpa-efficient", SDPBackend.EFFICIENT_ATTENTION)):
        def call(backend=backend):
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(qt, kt, vt, enable_gqa=gqa).transpose(1, 2)
        calls[name] = call
    return calls


def measure(case, flush, roof) -> list[dict]:
    rows = []
    if cache_bytes(case) > CACHE_BUDGET:
        return [dict(case, backend=name, ms=None, tbps=None, roof_tbps=round(roof, 3),
                     check=None, error=f"skipped: a {cache_bytes(case) / 2**30:.0f} GiB cache")
                for name in ("tlc", "fa3", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient")]
    q, k, v = make_inputs(case)
    ref, low = reference_of(case, q, k, v)
    for name, call in backends(case, q, k, v).items():
        row = dict(case, backend=name, ms=None, tbps=None, roof_tbps=round(roof, 3), check=None)
        if isinstance(call, str):
            rows.append(dict(row, error=f"unsupported: {call}"))
            continue
        try:
            out = call()
            torch.cuda.synchronize()
            verdict = verdict_of(case, out, ref, low)
            row["check"] = verdict
            if not verdict["ok"]:
                rows.append(dict(row, error="wrong result"))
                continue
            ms = time_call(call, flush)
            row.update(ms=round(ms, 5), tbps=round(moved_bytes(case) / ms / 1e9, 3))
            if name == "tlc":
                shaped, packed = tlc_case(case)
                row.update(splits=shaped.splits, packed_heads=packed, arch=shaped.arch)
        except Exception as error:  # a backend's failure is a row, not the end of the run
            row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        rows.append(row)
    del q, k, v
    torch.cuda.empty_cache()
    return rows


def tlc_case(case, splits: int | None = None):
    """(the Case tlc.torch.attention runs for a contiguous case, whether its query heads are
    packed as rows): the shaped decoding case, on Hopper's own target where that takes it."""
    from tlc.runtime import contiguous_strides

    arch, from_ptx = tt._present_target(0)
    b, h, hkv, n = (case[k] for k in ("batch", "heads", "kv_heads", "cache_len"))
    shapes = [(b, 1, h, HEAD_DIM), (b, n, hkv, HEAD_DIM), (b, n, hkv, HEAD_DIM)]
    shaped = tt.call_case(tt.Case(case["dtype"], HEAD_DIM, h // hkv, arch=arch), b, h, 1, hkv,
                          n, -1, False, tt._multiprocessors(0),
                          [contiguous_strides(s) for s in shapes], 2, own=not from_ptx)
    if splits is not None:
        shaped = tt._replace(shaped, splits=splits)
    return shaped, tt._packs_query_heads(1, h, hkv, -1, None)


def sweep(flush, quick: bool) -> list[dict]:
    """tlc's time with each split count, the B = 1 cases: what choose_splits picks from."""
    chosen = tt.choose_splits
    found = []
    try:
        for case in case_list(quick):
            if not _swept(case):
                continue
            q, k, v = make_inputs(case)
            tt.choose_splits = chosen  # the pick as a call makes it, on the target's own fill
            pick = tlc_case(case)[0].splits
            for splits in SWEEP_SPLITS:
                tt.choose_splits = lambda *args, s=splits: s
                tt._recipes.clear()
                ms = time_call(lambda: tt.attention(q, k, v, layout="bshd"), flush)
                found.append(dict(case, splits=splits, arch=tlc_case(case, splits)[0].arch,
                                  ms=round(ms, 5),
                                  tbps=round(moved_bytes(case) / ms / 1e9, 3),
                                  chosen=pick == splits))
            del q, k, v
    finally:
        tt.choose_splits = chosen
        tt._recipes.clear()
    return found


SWEEP_SPLITS = (1, 2, 4, 8, 16, 32, 64)


def _swept(case) -> bool:
    return case["dtype"] == "bf16" and (case["batch"] == 1 or (
        case["batch"] == 8 and case["cache_len"] in (16384, 131072)))


def prebuild(quick: bool, do_sweep: bool) -> None:
    """Build every plan the run will load, in parallel (nvcc is a subprocess)."""
    _, from_ptx = tt._present_target(0)
    cases = set()
    for case in case_list(quick):
        cases.add(tlc_case(case)[0])
        if do_sweep and _swept(case):
            cases.update(tlc_case(case, s)[0] for s in SWEEP_SPLITS)
    from tlc.torch_kvcache import cache_case

    for case in paged_cases(quick):
        cases.add(cache_case(case["dtype"], case["batch"], 1, case["heads"], case["kv_heads"],
                             HEAD_DIM, case["cache_len"], case["page_size"], False, None, False,
                             0)[0])
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 4) as pool:
        list(pool.map(lambda c: tt.built_for(c, 0, from_ptx), cases))


def summarise(rows, roof) -> dict:
    summary = {"gpu": torch.cuda.get_device_name(0), "roof_tbps": round(roof, 3)}
    tlc = {_key(r): r for r in rows if r["backend"] == "tlc" and r["ms"]}
    long = [r for r in tlc.values() if r["cache_len"] >= 16384 and r["layout"] == "contiguous"]
    if long:
        fractions = [r["tbps"] / roof for r in long]
        summary["tlc_roof_fraction_geomean_16k_up"] = round(_geomean(fractions), 3)
        summary["tlc_roof_fraction_min_16k_up"] = round(min(fractions), 3)
    for peer in ("fa3", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient"):
        ratios = [r["ms"] / tlc[_key(r)]["ms"] for r in rows
                  if r["backend"] == peer and r["ms"] and _key(r) in tlc]
        if ratios:
            summary[f"tlc_speedup_vs_{peer}_geomean"] = round(_geomean(ratios), 3)
            summary[f"tlc_speedup_vs_{peer}_min"] = round(min(ratios), 3)
            summary[f"{peer}_points"] = len(ratios)
    checked = [r for r in rows if r["backend"] == "tlc" and r["check"] is not None]
    summary["tlc_correct"] = f"{sum(r['check']['ok'] for r in checked)}/{len(checked)}"
    paged = [r["tbps"] / roof for r in tlc.values() if r["layout"] == "paged"]
    if paged:
        summary["tlc_paged_roof_fraction_geomean"] = round(_geomean(paged), 3)
        summary["tlc_paged_roof_fraction_min"] = round(min(paged), 3)
    for page in PAGES:
        found = [r["tbps"] / roof for r in tlc.values() if r["page_size"] == page]
        if found:
            summary[f"tlc_paged{page}_roof_fraction_geomean"] = round(_geomean(found), 3)
    return summary


def _key(row):
    return (row["batch"], row["cache_len"], row["heads"], row["kv_heads"], row["dtype"],
            row["layout"], row["page_size"])


def _geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=os.path.join(os.environ.get("OUT", "."),
                                                       "decode.json"))
    parser.add_argument("--quick", action="store_true", help="B 1 and 8, L 4k and 64k")
    parser.add_argument("--sweep", action="store_true", help="also time every split count")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("decode.py: no CUDA GPU is visible", file=sys.stderr)
        return 2
    flush = Flush()
    roof = copy_roof(flush)
    print(f"copy roof: {roof:.3f} TB/s on {torch.cuda.get_device_name(0)}", flush=True)
    prebuild(args.quick, args.sweep)
    rows = []
    for case in case_list(args.quick):
        rows += measure(case, flush, roof)
        with open(args.json, "w") as out:  # as it goes: a run cut short keeps what it did
            json.dump({"summary": None, "rows": rows, "sweep": []}, out, indent=1)
        tlc = next(r for r in rows[::-1] if r["backend"] == "tlc")
        print(f"B={case['batch']} L={case['cache_len']} {case['heads']}/{case['kv_heads']} "
              f"{case['dtype']}: tlc {tlc['ms']} ms {tlc['tbps']} TB/s "
              f"{tlc.get('error', '')}", flush=True)
    for case in paged_cases(args.quick):
        rows += measure_paged(case, flush, roof)
        tlc = rows[-3]
        print(f"paged {case['page_size']} B={case['batch']} L={case['cache_len']} "
              f"{case['heads']}/{case['kv_heads']}: tlc {tlc['ms']} ms {tlc['tbps']} TB/s "
              f"(with the value check {tlc.get('ms_with_check')} ms) {tlc.get('error', '')}",
              flush=True)
    swept = sweep(flush, args.quick) if args.sweep else []
    summary = summarise(rows, roof)
    with open(args.json, "w") as out:
        json.dump({"summary": summary, "rows": rows, "sweep": swept}, out, indent=1)
    print(f"\n{'case':34} " + " ".join(f"{b:>14}" for b in
                                       ("tlc", "fa3", "sdpa-flash", "sdpa-cudnn", "sdpa-eff")))
    for case in case_list(args.quick):
        cells = []
        for backend in ("tlc", "fa3", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient"):
            row = next(r for r in rows if r["backend"] == backend and _key(r) == _key(case))
            cells.append(f"{row['tbps']:>9.2f} TB/s" if row["ms"] else
                         f"{(row.get('error') or '-')[:14]:>14}")
        label = (f"B={case['batch']} L={case['cache_len']} {case['heads']}/{case['kv_heads']} "
                 f"{case['dtype']}")
        print(f"{label:34} " + " ".join(cells))
    for case in paged_cases(args.quick):
        row = next(r for r in rows if r["backend"] == "tlc" and _key(r) == _key(case))
        label = (f"paged {case['page_size']} B={case['batch']} L={case['cache_len']} "
                 f"{case['heads']}/{case['kv_heads']} bf16")
        print(f"{label:34} " + (f"{row['tbps']:>9.2f} TB/s" if row["ms"] else
                                f"{(row.get('error') or '-')[:40]}"))
    for row in swept:
        print(f"sweep B={row['batch']} L={row['cache_len']} {row['heads']}/{row['kv_heads']} splits "
              f"{row['splits']:>2}: {row['tbps']:.2f} TB/s{'  <- chosen' if row['chosen'] else ''}")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
