"""Plans drawn by editing the examples (tests/drawn_plans.py), accepted by `tlc check`, run on the
GPU present against the float64 reference: the promise that accepted means correct, measured.

sm_80 plans are built natively for the GPU, sm_75 plans as compute_75 PTX that the driver
JIT-compiles, sm_90a plans for sm_90a (on a Hopper GPU; `--arch sm_90a` draws only those). Each plan runs once on fresh normal inputs at sizes drawn per plan (sequence
lengths 1 to 300, Nq and Nk apart, H = Hkv * GROUP), every (batch, head) compared, the output
poisoned with NaN first. `--sizes small` keeps the sequences under 80 for the sanitizers.

    python3 benchmarks/drawn_gpu.py [--count 120] [--seed 2026] [--sizes small] [--json PATH]
                                    [--only 3,17] [--skip 5]

Each plan's index, edits and sizes are printed before it runs, so that a plan which kills the
CUDA context names itself; `--only` reruns it alone (under compute-sanitizer, say) and `--skip`
runs the others. A short table is printed last; the rows go to $OUT/drawn-plans.json (or --json).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def accepted(count: int, seed: int, arch: str | None = None):
    """(draw, CheckResult) of the first `count` accepted draws, of every target or of
    `arch`'s only."""
    from drawn_plans import drawn

    from tlc.api import check

    found, offset = [], 0
    while len(found) < count:
        for plan in drawn(seed + offset, 4 * count):
            result = check(plan.text, arch=plan.arch)
            if result.ok and arch in (None, plan.arch) and \
                    all(plan.text != p.text for p, _ in found):
                found.append((plan, result))
        offset += 1
    return found[:count]


def sizes_for(result, rng: random.Random, small: bool) -> dict:
    from tlc.simulate import default_sizes

    top = 80 if small else 300
    nq = rng.randint(1, top)
    nk = nq if rng.random() < 0.5 else rng.randint(1, top)
    return default_sizes(result.kernel, {"B": rng.randint(1, 2), "Nq": nq, "Nk": nk})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=120, help="accepted plans (default 120)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--sizes", choices=("normal", "small"), default="normal")
    parser.add_argument("--arch", help="only the draws for this target (sm_75, sm_80, sm_90a)")
    parser.add_argument("--json", help="where the rows go (default $OUT/drawn-plans.json)")
    parser.add_argument("--only", type=_indices, help="run only these draws (indices, 3,17)")
    parser.add_argument("--skip", type=_indices, default=(), help="leave these draws out")
    args = parser.parse_args()
    from tlc.driver import build_for
    from tlc.runtime import check_random, device_arch, device_name, load

    plans = list(enumerate(accepted(args.count, args.seed, args.arch)))
    plans = [(i, item) for i, item in plans
             if (args.only is None or i in args.only) and i not in args.skip]
    present = device_arch()

    def built(item):
        plan, result = item
        from tlc.arch import ARCHS

        ptx = plan.arch == "sm_75"  # Turing plans run as compute_75 PTX (the method's choice)
        own = ptx or bool(ARCHS[plan.arch].runs_only_on)  # sm_90a code is for itself only
        return build_for(result.lowered, plan.arch if own else present,
                         output="ptx" if ptx else "cubin")

    with ThreadPoolExecutor(min(16, os.cpu_count() or 1)) as pool:
        builds = list(pool.map(built, [item for _, item in plans]))
    rows = []
    for (index, (plan, result)), build in zip(plans, builds):
        rng = random.Random(args.seed * 1000 + index)
        sizes = sizes_for(result, rng, args.sizes == "small")
        print(f"[{index}] {plan.arch} {plan.example} {list(plan.edits)} {sizes}", flush=True)
        kernel = load(result, prebuilt=(result.lowered, build))
        verdict = check_random(kernel, sizes, seed=index, whole=True)
        rows.append({"index": index, "arch": plan.arch, "example": plan.example, "edits": list(plan.edits),
                     "shape": sizes, "ok": verdict.ok, "how": kernel.how,
                     **{k: v for k, v in verdict.to_json().items() if k != "ok"}})
    out = args.json or os.path.join(os.environ.get("OUT", "."), "drawn-plans.json")
    Path(out).write_text(json.dumps({"gpu": device_name(), "seed": args.seed,
                                     "sizes": args.sizes, "rows": rows}, indent=1) + "\n")
    failed = [r for r in rows if not r["ok"]]
    for arch in ("sm_80", "sm_75", "sm_90a"):
        mine = [r for r in rows if r["arch"] == arch]
        print(f"{arch}: {sum(r['ok'] for r in mine)}/{len(mine)} correct")
    for row in failed:
        print("FAILED", row["arch"], row["example"], row["edits"], row["shape"], row["problems"])
    print(f"drawn plans: {len(rows) - len(failed)}/{len(rows)} accepted plans correct on "
          f"{device_name()} (seed {args.seed}, sizes {args.sizes})")
    return 1 if failed else 0


def _indices(text: str) -> set[int]:
    return {int(part) for part in text.split(",") if part.strip()}


if __name__ == "__main__":
    sys.exit(main())
