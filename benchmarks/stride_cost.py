"""What runtime strides cost: the same template plans, built by this checkout and by another
(e.g. the commit before kernels took strides, run with PYTHONPATH at its tree), checked
against the float64 reference and timed on the GPU present at one shape per case.

    python3 benchmarks/stride_cost.py --json new.json
    PYTHONPATH=/path/to/old/tree python3 benchmarks/stride_cost.py --json old.json
    python3 benchmarks/stride_cost.py --compare old.json new.json
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys

CASES = [("fp16", 128, False, 1), ("fp16", 128, True, 1), ("fp16", 64, False, 1),
         ("fp16", 64, True, 1), ("bf16", 128, True, 4), ("bf16", 64, False, 4)]
N = 4096


def template():
    try:
        from tlc.templates import plan
    except ImportError:  # a tree from before the templates moved into the package
        sys.path.insert(0, os.path.join(os.environ["PYTHONPATH"].split(":")[0], "benchmarks"))
        from plans import plan
    return plan


def measure(path: str) -> None:
    import tlc
    from tlc.driver import build_for, check, lowered_of
    from tlc.runtime import check_random, device_arch, flops_of, load, time_launches

    plan, present = template(), device_arch()
    texts = [plan(dtype, d, causal, group, arch="sm_80") for dtype, d, causal, group in CASES]

    def build(text):
        lowered = lowered_of(check(text, arch="sm_80"))
        return lowered, build_for(lowered, present)

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(texts)) as pool:
        built = list(pool.map(build, texts))
    rows = []
    for (dtype, d, causal, group), text, prebuilt in zip(CASES, texts, built):
        kernel = load(text, prebuilt=prebuilt)
        shape = {"B": 16384 // N, "H": 2048 // d, "Hkv": 2048 // d // group, "Nq": N, "Nk": N}
        verdict = check_random(kernel, shape)
        ms = time_launches(kernel, 30)
        rows.append({"dtype": dtype, "d": d, "causal": causal, "group": group, "ms": ms,
                     "tflops": flops_of(kernel, shape) / ms / 1e9, "ok": verdict.ok,
                     "registers": prebuilt[1].functions[0].registers, "tree": tlc.__file__})
        print(rows[-1], flush=True)
    with open(path, "w") as handle:
        json.dump(rows, handle, indent=1)


def compare(old_path: str, new_path: str) -> None:
    old, new = (json.load(open(p)) for p in (old_path, new_path))
    ratios = []
    print(f"{'case':<22} {'old TF/s':>9} {'new TF/s':>9} {'new/old':>8} regs old/new  ok")
    for a, b in zip(old, new):
        ratio = b["tflops"] / a["tflops"]
        ratios.append(ratio)
        name = f"{a['dtype']} D={a['d']} {'causal' if a['causal'] else 'full'} g{a['group']}"
        print(f"{name:<22} {a['tflops']:9.1f} {b['tflops']:9.1f} {ratio:8.3f} "
              f"{a['registers']:>4}/{b['registers']:<4}  {a['ok'] and b['ok']}")
    geomean = 1.0
    for ratio in ratios:
        geomean *= ratio ** (1 / len(ratios))
    print(f"strides: new/old geometric mean {geomean:.3f} over {len(ratios)} cases, "
          f"min {min(ratios):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default="stride_cost.json")
    parser.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"))
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
    else:
        measure(args.json)


if __name__ == "__main__":
    main()
