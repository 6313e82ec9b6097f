"""One backward call per backend, for a profiler to read: tlc's backward kernel and SDPA
flash's, same inputs, so `ncu` can set their stall reasons and pipe use side by side.

    ncu --clock-control none --set full -k regex:bwd -o OUT/bwd \\
        python3 benchmarks/profile_backward.py [--dims 64] [--seqs 4096] [--causal]

Each backend runs once to build and warm up, then once more (the launch to read); nothing is
timed here (benchmarks/backward.py times). benchmarks/gpu_backward.sh STEP=profile runs it.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attention import Case  # noqa: E402
from backward import RUNNERS, make_inputs  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="sm_80", help="the tlc plans' target (default sm_80)")
    parser.add_argument("--backends", default="tlc,sdpa-flash")
    parser.add_argument("--dtype", default="fp16", choices=("fp16", "bf16"))
    parser.add_argument("--dims", default="64", help="head dims, comma-separated")
    parser.add_argument("--seqs", default="4096", help="sequence lengths, comma-separated")
    parser.add_argument("--causal", action="store_true")
    args = parser.parse_args()

    import torch

    for d in (int(x) for x in args.dims.split(",")):
        for n in (int(x) for x in args.seqs.split(",")):
            case = Case(args.dtype, d, n, False, args.causal)
            inputs = make_inputs(case, 1, seed=0)
            for name in args.backends.split(","):
                run, note = RUNNERS[name](case, inputs, args.arch, {})
                run(0)
                torch.cuda.synchronize()
                run(0)
                torch.cuda.synchronize()
                print(f"# {name}: D = {d}, N = {n}, causal {args.causal}: {note}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
