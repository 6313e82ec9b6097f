"""Whether the checker's register estimate holds for the backward plans it accepts: every plan
of a grid (head dims 32-128, tiles 32-128, warp layouts of 2-8 warps with GEMM columns split
or not, plain, causal, softcap, a window, causal ALiBi, MHA and GQA 4:1, the three parts) that
`tlc check` accepts for sm_80 or sm_75, and whose estimate is at least --floor, built by
ptxas (for sm_90 too with --sm90): 0 bytes of spills is the claim. CPU only; nvcc on PATH.

    python3 benchmarks/backward_register_sweep.py [--floor 215] [--sm90] [--json PATH]
        [--backward-registers N]   (the estimate's backward term, BACKWARD_REGISTERS, set to N
        for the sweep: N = 0 gives the estimate without it, to calibrate it by)

Writes one JSON line per accepted plan (estimate, ptxas registers, spills) and prints a summary.
"""
from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import sys
import tempfile

VARIANTS = {"plain": {}, "softcap": {"softcap": 30.0}, "window": {"window": (64, 0)},
            "alibi": {"alibi": True}}
FIELDS = ("arch", "d", "causal", "variant", "group", "part", "bm", "bn", "warps", "warps_n")
LAYOUTS = ((2, 1), (4, 1), (8, 1), (1, 2), (2, 2), (4, 2), (2, 4), (1, 4))


def grid():
    for case in itertools.product(("sm_80", "sm_75"), (32, 64, 96, 128), (False, True),
                                  VARIANTS, (1, 4), ("all", "dkdv", "dq"), (32, 64, 128),
                                  (32, 64, 128), LAYOUTS):
        arch, d, causal, variant, group, part, bm, bn, (warps, warps_n) = case
        if variant != "plain" and (group > 1 or d in (32, 96)):
            continue
        if (variant == "window" and causal) or (variant == "alibi" and not causal):
            continue
        if warps * 16 > bm or warps_n * 8 > bn or (part == "dq" and warps_n > 1):
            continue
        if arch == "sm_75" and (bm > 64 or bn > 64 or d > 64):
            continue
        yield arch, d, causal, variant, group, part, bm, bn, warps, warps_n


def measure(case, floor: int, sm90: bool):
    from tlc.api import check
    from tlc.backends import target_for
    from tlc.backends.resources import registers
    from tlc.backward_plans import BackwardOptions, render
    from tlc.build import build
    from tlc.passes.facts import Facts

    arch, d, causal, variant, group, part, bm, bn, warps, warps_n = case
    options = BackwardOptions("fp16", d, causal, group, arch, bm, bn, warps, part=part,
                              warps_n=warps_n, **VARIANTS[variant])
    result = check(render(options), arch=arch)
    if not result.ok:
        return None
    row = dict(zip(FIELDS, case), estimate=registers(Facts(result.kernel),
                                                     target_for(arch)).peak)
    if row["estimate"] >= floor:
        kernel = result.lowered.main
        for built_for in (arch, "sm_90") if sm90 and arch == "sm_80" else (arch,):
            report = build(kernel.source, built_for, cache_dir=tempfile.mkdtemp()).function(
                kernel.name)
            row[built_for] = dict(registers=report.registers,
                                  spills=report.spill_stores + report.spill_loads)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--floor", type=int, default=215,
                        help="build the plans whose estimate is at least this")
    parser.add_argument("--sm90", action="store_true", help="build the sm_80 plans for sm_90 too")
    parser.add_argument("--json", default="backward-register-sweep.jsonl")
    parser.add_argument("--backward-registers", type=int, default=None)
    args = parser.parse_args()
    cases = list(grid())
    print(f"{len(cases)} plans drawn; checking, building those estimated at {args.floor}+ "
          f"on {os.cpu_count()} processes", file=sys.stderr)
    rows = []
    with multiprocessing.Pool() as pool, open(args.json, "w") as out:
        jobs = [(c, args.floor, args.sm90, args.backward_registers) for c in cases]
        for done, row in enumerate(pool.imap_unordered(_measure_job, jobs, chunksize=4)):
            if row:
                rows.append(row)
                out.write(json.dumps(row) + "\n")
            if done % 500 == 0:
                print(f"  {done}/{len(cases)}", file=sys.stderr)
    builds = [(row, arch) for row in rows for arch in ("sm_80", "sm_75", "sm_90") if arch in row]
    spilled = [(row, arch) for row, arch in builds if row[arch]["spills"]]
    print(f"{len(cases)} plans drawn, {len(rows)} accepted, {len(builds)} builds of those "
          f"estimated at {args.floor}+: {len(spilled)} spilled; most registers "
          f"{max((row[arch]['registers'] for row, arch in builds), default=0)}")
    for row, arch in spilled:
        print("  spilled:", arch, {k: row[k] for k in FIELDS + ("estimate",)})
    return 1 if spilled else 0


def _measure_job(job):
    *arguments, backward_registers = job
    if backward_registers is not None:  # set in the worker, whatever way the pool starts it
        from tlc.backends import resources

        resources.BACKWARD_REGISTERS = backward_registers
    return measure(*arguments)


if __name__ == "__main__":
    sys.exit(main())
