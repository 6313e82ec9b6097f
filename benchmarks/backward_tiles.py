"""Which tiles and copy stages the backward plans should take on the GPU present: every
(BM, BN, WARPS, stages) that `tlc check` accepts for a case, timed at N = 4096 (batch 4,
2048 / D heads), its gradients checked first as benchmarks/backward.py checks them.

    python3 benchmarks/backward_tiles.py [--dtype fp16] [--d 64] [--json PATH]
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attention import Case, flops, time_ms  # noqa: E402
from backward import (BACKWARD_FLOPS, backward_run, check_gradients, make_inputs,  # noqa: E402
                      saved_forward)

TILES = [(64, 64, 4), (32, 32, 2), (64, 32, 2), (32, 64, 2), (64, 16, 1), (32, 32, 1)]
STAGES = (1, 2, 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="fp16")
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--json", default=os.path.join(os.environ.get("OUT", "."),
                                                       "backward-tiles.json"))
    args = parser.parse_args()
    import torch

    from tlc.api import check
    from tlc.backward_plans import BackwardOptions, render
    from tlc.runtime import load
    from tlc.templates import plan

    rows = []
    for causal in (False, True):
        case = Case(args.dtype, args.d, args.n, False, causal)
        inputs = make_inputs(case, 2, seed=1)
        scale = 1.0 / args.d ** 0.5
        forward = load(plan(args.dtype, args.d, causal, 1, lse=True))
        saved = saved_forward(forward, inputs, scale)
        for (bm, bn, warps), stages in itertools.product(TILES, STAGES):
            options = BackwardOptions(args.dtype, args.d, causal, 1, "sm_80", bm, bn, warps,
                                      stages=stages)
            row = dict(causal=causal, bm=bm, bn=bn, warps=warps, stages=stages)
            result = check(render(options), arch="sm_80")
            if not result.ok:
                row["refused"] = next(d.code for d in result.diagnostics if d.is_error)
                rows.append(row)
                continue
            kernel = load(render(options))

            run = backward_run([kernel], inputs, saved, scale)
            verdict = check_gradients(case, *inputs[0], run(0))
            row.update(check=verdict["ok"], registers=result.facts["registers"].peak)
            if verdict["ok"]:
                ms = time_ms(run, 2, 10)
                row.update(ms=round(ms, 4), tflops=round(BACKWARD_FLOPS * flops(
                    case.batch, case.heads, case.n, case.d, causal) / ms / 1e9, 1))
            rows.append(row)
            print(json.dumps(row), flush=True)
        del inputs, saved
        torch.cuda.empty_cache()
    with open(args.json, "w") as handle:
        json.dump(rows, handle, indent=1)
    for causal in (False, True):
        timed = sorted((r for r in rows if r["causal"] == causal and r.get("tflops")),
                       key=lambda r: -r["tflops"])
        print(f"causal={causal}: " + "; ".join(
            f"{r['bm']}x{r['bn']}/{r['warps']}w/{r['stages']}st {r['tflops']}" for r in timed[:6]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
