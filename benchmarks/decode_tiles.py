"""Which decoding tiles read the cache fastest: tlc.torch.attention on decoding shapes with
each (BM, BN, WARPS, STAGES) the templates could take, with the splits tlc.torch chooses,
half and twice as many, timed as benchmarks/decode.py times (L2 flushed, CUDA events, the
median). `--arch sm_90a` times Hopper's plans (TMA ring, one consumer warpgroup) instead of
the portable sm_90 ones.

    python3 benchmarks/decode_tiles.py [--arch sm_90a] [--json PATH]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys

import torch

import tlc.torch as tt
from tlc.templates import Options, render, takes_warpgroups

sys.path.insert(0, os.path.dirname(__file__))
from decode import Flush, copy_roof, make_inputs, moved_bytes, time_call  # noqa: E402

TILES = [(16, 64, 1, 2), (16, 64, 1, 3), (16, 32, 1, 2), (16, 32, 1, 3), (16, 32, 1, 4),
         (16, 16, 1, 4), (32, 64, 2, 2), (32, 32, 2, 3), (64, 64, 4, 2)]
WARPGROUP_TILES = [(64, 128, 4, 2), (64, 128, 4, 3), (64, 64, 4, 2), (64, 64, 4, 3),
                   (64, 64, 4, 4)]
CASES = [dict(batch=1, cache_len=16384, heads=32, kv_heads=8),
         dict(batch=8, cache_len=131072, heads=32, kv_heads=32),
         dict(batch=1, cache_len=131072, heads=32, kv_heads=8),
         dict(batch=8, cache_len=16384, heads=32, kv_heads=32),
         dict(batch=64, cache_len=16384, heads=32, kv_heads=8),
         dict(batch=1, cache_len=16384, heads=32, kv_heads=32)]


def plan_of(case: tt.Case, tile, splits: int, arch: str) -> str:
    bm, bn, warps, stages = tile
    hopper = takes_warpgroups(arch)  # wgmma follows the tile; O leaves registers for the parts
    return render(Options(case.dtype, case.head_dim, case.causal, case.group, arch,
                          bm=bm, bn=bn, warps=warps, stages=stages, lse=case.lse,
                          splits=splits, warpgroup=hopper, staged=not hopper,
                          compute=case.dtype))


def split_counts(chosen: int) -> tuple[int, ...]:
    return tuple(sorted({max(1, chosen // 2), chosen, min(2 * chosen, tt.MAX_SPLITS)}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=os.path.join(os.environ.get("OUT", "."),
                                                       "decode-tiles.json"))
    parser.add_argument("--arch", choices=("sm_90", "sm_90a"), default="sm_90",
                        help="the plans' target (default sm_90: the sm_80 lowering)")
    args = parser.parse_args(argv)
    from dataclasses import replace

    from tlc.driver import check

    arch = args.arch
    tiles = WARPGROUP_TILES if takes_warpgroups(arch) else TILES

    flush, template, own = Flush(), tt.plan_for, tt.own_target_case
    # every call runs the swept target's plan, whatever tlc.torch would pick for the GPU
    tt.own_target_case = lambda case, strides, size, shape: shape(replace(case, arch=arch))
    roof = copy_roof(flush)
    chosen = {}
    for spec in CASES:
        case, _ = tt.shaped_case(tt.Case("bf16", 128, spec["heads"] // spec["kv_heads"],
                                         arch=arch), spec["batch"],
                                 spec["heads"], 1, spec["kv_heads"], spec["cache_len"], -1,
                                 False, tt._multiprocessors(0))
        chosen[id(spec)] = case
    jobs = [(spec, tile, splits) for spec in CASES for tile in tiles
            for splits in split_counts(chosen[id(spec)].splits)]
    texts = {}
    for spec, tile, splits in jobs:
        text = plan_of(chosen[id(spec)], tile, splits, arch)
        if check(text, arch=arch).ok:
            texts[(id(spec), tile, splits)] = text
    # build them all in parallel: a Case per tile would be the same key, so build the texts
    from tlc.driver import build_for, lowered_of

    present = "sm_{}{}".format(*torch.cuda.get_device_capability(0))
    from tlc.arch import ARCHS

    built_for = arch if ARCHS[arch].runs_only_on else present  # sm_90a builds for itself
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 4) as pool:
        list(pool.map(lambda t: build_for(lowered_of(check(t, arch=arch)), built_for),
                      texts.values()))
    rows = []
    for spec in CASES:
        q, k, v = make_inputs(dict(spec, head_dim=128, dtype="bf16"))
        for _, tile, splits in (job for job in jobs if job[0] is spec):
            text = texts.get((id(spec), tile, splits))
            row = dict(spec, arch=arch, tile=tile, splits=splits,
                       chosen_splits=splits == chosen[id(spec)].splits)
            if text is None:
                rows.append(dict(row, error="refused by tlc check"))
                continue
            tt.plan_for = lambda *a, t=text: t
            tt._built.clear()
            tt._recipes.clear()
            ms = time_call(lambda: tt.attention(q, k, v, layout="bshd"), flush)
            rows.append(dict(row, ms=round(ms, 5), tbps=round(
                moved_bytes(dict(spec, head_dim=128)) / ms / 1e9, 3)))
            print(f"B={spec['batch']} L={spec['cache_len']} {spec['heads']}/{spec['kv_heads']} "
                  f"tile {tile} splits {splits}: {rows[-1]['tbps']} TB/s", flush=True)
        del q, k, v
        torch.cuda.empty_cache()
    tt.plan_for, tt.own_target_case = template, own
    for spec in CASES:  # the fastest tile and split count of each shape, last
        timed = [r for r in rows if r.get("tbps") and all(r[k] == spec[k] for k in spec)]
        if timed:
            best = max(timed, key=lambda r: r["tbps"])
            print(f"best B={spec['batch']} L={spec['cache_len']} {spec['heads']}/"
                  f"{spec['kv_heads']}: tile {best['tile']} splits {best['splits']} "
                  f"{best['tbps']} TB/s ({best['tbps'] / roof:.3f} of the copy roof)")
    with open(args.json, "w") as out:
        json.dump({"roof_tbps": roof, "rows": rows}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
