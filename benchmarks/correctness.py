"""The GPU correctness matrix of a backend, on the GPU present.

For every case: a plan from tlc/templates.py (checked by tlc for --arch, sm_80 unless
told), built natively for the GPU present, or for sm_75 as PTX for compute_75 that the driver
JIT-compiles (the way a Turing plan runs on a newer GPU exactly as written), run on fresh
normal inputs with the output poisoned (NaN), compared with the float64
reference by the peers' tolerance rule (tlc.reference.compare). Full results go to
$OUT/correctness.json (or --json PATH); a short table is printed last.

    python3 benchmarks/correctness.py [--arch sm_75] [--quick] [--json PATH]
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlc.templates import plan  # noqa: E402

from tlc.reference import (Variant, attention, attention_low, compare,  # noqa: E402
                           from_storage, to_dtype, to_storage)

HEADS = {"MHA": (2, 2, 1), "GQA 4:1": (8, 2, 4), "MQA": (4, 1, 4)}  # H, Hkv, GROUP
SEQS = [(1, 1), (113, 203), (203, 113), (1041, 1041), (1, 1041)]
# Targets whose plans run as PTX for their own compute capability, JIT-compiled by the driver
# for the GPU present (the Turing issue's method: the instructions a T4 would get).
FROM_PTX = {"sm_75"}


def run_case(kernel, dtype, d, causal, heads, seq, batch, seed):
    h, hkv, _ = HEADS[heads]
    nq, nk = seq
    rng = np.random.default_rng(seed)
    rounded = [to_dtype(rng.standard_normal((batch, n_heads, n, d)), dtype)
               for n_heads, n in ((h, nq), (hkv, nk), (hkv, nk))]
    q, k, v = rounded
    qd, kd, vd = (to_storage(r, dtype) for r in rounded)
    out = kernel(Q=qd, K=kd, V=vd, scale=1 / np.sqrt(d))["O"]
    variant = Variant(causal=causal)
    ref = attention(q, k, v, variant)
    low = attention_low(q, k, v, dtype, variant)
    return compare(from_storage(out, dtype), ref, low, dtype, q_len=nq, k_len=nk, variant=variant)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="sm_80", help="the plans' target (default sm_80)")
    parser.add_argument("--quick", action="store_true", help="a few small cases (sanitizers)")
    parser.add_argument("--json", help="where the full results go (default "
                        "$OUT/correctness[-ARCH].json)")
    args = parser.parse_args()
    suffix = "" if args.arch == "sm_80" else f"-{args.arch}"
    args.json = args.json or os.path.join(os.environ.get("OUT", "."),
                                          f"correctness{suffix}.json")
    ptx = args.arch in FROM_PTX
    from tlc.runtime import device_arch, device_name, load

    arch = device_arch()  # in this thread: the CUDA context belongs to it

    from tlc.arch import ARCHS

    dtypes, dims, seqs = ["fp16", "bf16"], [32, 40, 64, 72, 96, 128, 256], SEQS
    if ARCHS[args.arch].runs_only_on:  # sm_90a: and the head dim its D = 256 plan chunks
        dims = [32, 40, 64, 72, 96, 128, 192, 256]
        ptx, arch = False, args.arch  # built for its own target, which only it runs
    if args.quick:  # 72 ends inside a 64-column panel (sm_90a reads the rest as zeros);
        # 512 is split into column chunks (sm_90a's copy ring goes on across them)
        dims, seqs = [64, 72, 128, 512], [(113, 203), (1, 65)]
    plans = {(dt, d, c, g): plan(dt, d, c, g, arch=args.arch) for dt, d, c, g in
             itertools.product(dtypes, dims, [False, True], [1, 4])}
    started = time.time()
    with ThreadPoolExecutor(8) as pool:  # nvcc runs in parallel; loading needs the context
        built = dict(zip(plans, pool.map(lambda key: _build(plans[key], arch, ptx), plans)))
    kernels = {key: load(plans[key], prebuilt=built[key]) for key in plans}
    print(f"built {len(kernels)} kernels in {time.time() - started:.0f} s on {device_name()}",
          flush=True)
    rows, seed = [], 0
    for dt, d, causal, heads, seq in itertools.product(dtypes, dims, [False, True], HEADS,
                                                       seqs):
        seed += 1
        batch = 1 + seed % 3 if seq[0] * seq[1] < 1041 * 1041 else 1
        kernel = kernels[(dt, d, causal, HEADS[heads][2])]
        verdict = run_case(kernel, dt, d, causal, heads, seq, batch, seed)
        rows.append({"dtype": dt, "head_dim": d, "causal": causal, "heads": heads,
                     "nq": seq[0], "nk": seq[1], "batch": batch, **verdict.to_json()})
        if not verdict.ok:
            print("FAILED", rows[-1], flush=True)
    with open(args.json, "w") as handle:
        json.dump({"device": device_name(), "arch": args.arch,
                   "how": kernels[next(iter(kernels))].how,
                   "cases": rows}, handle, indent=1)
    failed = [r for r in rows if not r["ok"]]
    print(f"{'dtype':5} {'D':>4} {'causal':>6} {'heads':>8}  cases  passed  worst max/bound")
    for (dt, d, causal, heads), group in itertools.groupby(
            rows, key=lambda r: (r["dtype"], r["head_dim"], r["causal"], r["heads"])):
        group = list(group)
        worst = max(r["max_error"] / r["max_bound"] for r in group)
        print(f"{dt:5} {d:>4} {str(causal):>6} {heads:>8}  {len(group):>5}  "
              f"{sum(r['ok'] for r in group):>6}  {worst:.2f}")
    print(f"correctness: {len(rows) - len(failed)}/{len(rows)} cases passed for {args.arch} "
          f"plans on {device_name()} ({kernels[next(iter(kernels))].how})")
    return 1 if failed else 0


def _build(text, arch, ptx=False):
    """(lowered, built): natively for the GPU's arch, or as PTX for the plan's own target."""
    from tlc.api import check
    from tlc.driver import build_for, lowered_of

    result = check(text)
    lowered = lowered_of(result)
    if ptx:
        return lowered, build_for(lowered, result.arch, output="ptx")
    return lowered, build_for(lowered, arch)


if __name__ == "__main__":
    sys.exit(main())
