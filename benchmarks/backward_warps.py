"""Whether splitting the backward's GEMM columns over warps pays on the GPU present: backward
plans with `with warps (WM, WN)`, WN > 1, lowered for sm_80 with the column split turned on
(its target's gemm.splits_columns, off until this measures it), each built, its gradients
checked (benchmarks/backward.py's rule) and timed beside tlc's backward as it stands
(backward.tlc_runner) and SDPA flash, at fp16, batch 16384 / N, 2048 / D heads.

    python3 benchmarks/backward_warps.py [--dims 64,128] [--n 4096,16384] [--json PATH]
        [--layouts 128x64/4x2,64x128/2x4s2]   (these for every head dim, instead of LAYOUTS;
        s2: the query tiles' copies two stages deep) [--arch sm_90]

Plans the checker refuses (its register estimate) are lowered all the same, as in
benchmarks/backward_ablation.py.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attention import Case, flops, time_ms  # noqa: E402
from backward import (BACKWARD_FLOPS, backward_run, check_gradients, make_inputs,  # noqa: E402
                      saved_forward, sdpa_runner, tlc_runner)
from backward_ablation import edited_kernel, prebuild  # noqa: E402

# (BM, BN, WARPS, WARPS_N, part) per head dim: what the checker's register estimate accepts,
# and the fastest layout of an earlier run that it refuses (128x128/4x2 at D = 64, 64x128/2x4
# at D = 128), for the price of that refusal
LAYOUTS = {
    64: [(64, 64, 4, 1, "all"), (64, 64, 2, 2, "all"), (64, 64, 4, 2, "all"),
         (64, 64, 2, 4, "all"), (64, 128, 4, 2, "all"), (128, 128, 4, 2, "all")],
    128: [(64, 64, 4, 2, "all"), (64, 64, 2, 4, "all"), (128, 64, 4, 2, "all"),
          (64, 32, 2, 2, "all"), (64, 128, 2, 4, "all")],
}


def split_target(arch="sm_80"):
    from tlc.backends import target_for

    target = target_for(arch)
    return dataclasses.replace(target, gemm=dataclasses.replace(target.gemm,
                                                                splits_columns=True))


def estimate(options) -> int:
    """The checker's register estimate for the plan, column split on."""
    from tlc.api import check
    from tlc.backends.resources import registers
    from tlc.backward_plans import render
    from tlc.passes.facts import Facts

    return registers(Facts(check(render(options)).kernel), split_target(options.arch)).peak


def options_of(d, causal, layout, arch="sm_80"):
    from tlc.backward_plans import BackwardOptions

    bm, bn, warps, warps_n, part, *stages = layout
    return BackwardOptions("fp16", d, causal, 1, arch, bm, bn, warps, part=part,
                           warps_n=warps_n, stages=stages[0] if stages else 1)


def name_of(layout):
    bm, bn, warps, warps_n, part, *stages = layout
    return (f"{bm}x{bn}/{warps}x{warps_n}" + (f"s{stages[0]}" if stages and stages[0] > 1
                                             else "") + ("" if part == "all" else f" {part}"))


def parse_layouts(text: str) -> list:
    """`BMxBN/WMxWN[sS],...` (the names name_of gives; sS: the query tiles' copies S stages
    deep) as LAYOUTS' tuples."""
    layouts = []
    for item in text.split(","):
        tile, warps = item.strip().split("/")
        warps, _, stages = warps.partition("s")
        bm, bn = (int(x) for x in tile.split("x"))
        wm, wn = (int(x) for x in warps.split("x"))
        layouts.append((bm, bn, wm, wn, "all", int(stages or 1)))
    return layouts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="64,128")
    parser.add_argument("--n", default="4096,16384")
    parser.add_argument("--json", default=os.path.join(os.environ.get("OUT", "."),
                                                       "backward-warps.json"))
    parser.add_argument("--layouts", help="BMxBN/WMxWN[sS],... timed for every head dim, "
                                          "instead of LAYOUTS")
    parser.add_argument("--arch", default="sm_80",
                        help="the plans' target (sm_90: sm_80's instructions, Hopper's shared "
                             "memory)")
    args = parser.parse_args()
    import torch

    from tlc.runtime import ArgumentError, load
    from tlc.templates import plan

    dims = [int(x) for x in args.dims.split(",")]
    layouts = {d: parse_layouts(args.layouts) for d in dims} if args.layouts else LAYOUTS
    target = split_target(args.arch)
    jobs = [(options_of(d, causal, layout, args.arch), None, target) for d in dims
            for causal in (False, True) for layout in layouts[d]]
    prebuild(jobs)
    rows = []
    for d in dims:
        for n in (int(x) for x in args.n.split(",")):
            for causal in (False, True):
                case = Case("fp16", d, n, False, causal)
                inputs = make_inputs(case, 2, seed=1)
                scale = 1.0 / d ** 0.5
                work = BACKWARD_FLOPS * flops(case.batch, case.heads, case.n, d, causal)
                forward = load(plan("fp16", d, causal, 1, lse=True))
                saved = saved_forward(forward, inputs, scale)
                base = dict(d=d, n=n, causal=causal)
                flash, _ = sdpa_runner("sdpa-flash")(case, inputs, "sm_80", {})
                flash_ms = time_ms(flash, 2, 10)
                rows.append(dict(base, layout="sdpa-flash", ms=round(flash_ms, 4),
                                 tflops=round(work / flash_ms / 1e9, 1)))
                print(json.dumps(rows[-1]), flush=True)
                current, note = tlc_runner(case, inputs, "sm_80", {})
                entries = [("tlc as it stands", current, None, note)]
                for layout in layouts[d]:
                    options = options_of(d, causal, layout, args.arch)
                    try:
                        kernel, report = edited_kernel(options, None, target)
                    except ArgumentError as error:  # e.g. shared memory past the GPU's
                        rows.append(dict(base, layout=name_of(layout), note=str(error)[:200]))
                        print(json.dumps(rows[-1]), flush=True)
                        continue
                    entries.append((name_of(layout), backward_run([kernel], inputs, saved,
                                                                  scale), report,
                                    f"estimate {estimate(options)}"))
                for name, run, report, note in entries:
                    row = dict(base, layout=name)
                    if report is not None:
                        row.update(registers=report.registers,
                                   spills=report.spill_stores + report.spill_loads)
                    verdict = check_gradients(case, *inputs[0], run(0))
                    ms = time_ms(run, 2, 10)
                    row.update(check=verdict["ok"], ms=round(ms, 4),
                               tflops=round(work / ms / 1e9, 1),
                               of_flash=round(flash_ms / ms, 3), note=note)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                del inputs, saved
                torch.cuda.empty_cache()
    with open(args.json, "w") as handle:
        json.dump(rows, handle, indent=1)
    print(f"{'D':>3} {'N':>6} {'causal':6} {'layout':24} {'regs':>4} {'spill':>5} {'check':6} "
          f"{'ms':>8} {'TFLOP/s':>8} {'/flash':>6}")
    for r in rows:
        print(f"{r['d']:>3} {r['n']:>6} {str(r['causal']):6} {r['layout']:24} "
              f"{r.get('registers', ''):>4} {r.get('spills', ''):>5} {str(r.get('check', '')):6} "
              f"{r.get('ms', ''):>8} {r.get('tflops', ''):>8} {r.get('of_flash', ''):>6} "
              f"{r.get('note', '')[:30]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
