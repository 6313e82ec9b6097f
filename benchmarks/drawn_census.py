"""Census of plans drawn by editing the examples (tests/drawn_plans.py): of those `tlc check`
accepts, how many lower, how many build with nvcc + ptxas, and how many spill.

    PYTHONPATH=. python3 benchmarks/drawn_census.py --seed 0 --count 800 --build 200 \\
        --json /tmp/drawn-census.json

Every plan drawn is checked for its target; every accepted one is lowered; the first --build
lowered ones with distinct CUDA are built (cached under --cache). The JSON has one row per
failing plan: arch, example, edits, failure kind, message and the plan text;
"registers" has the estimate and ptxas's count of each plan built without error.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's tlc, and the generator

from drawn_plans import drawn  # noqa: E402


# ---- the one step that knows the lowering API: re-point it here when that API changes ----

def lowering_errors():
    """(what a lowering refuses with, what a failed build raises)."""
    from tlc.backends import Unsupported
    from tlc.build import BuildError

    return Unsupported, BuildError


@dataclass
class Lowering:
    name: str
    source: str


def lower(kernel, arch: str) -> Lowering:
    """CUDA for a checked kernel; raises Unsupported or whatever the emitter raises. (tlc check
    for a target runs this lowering itself now, so an accepted plan should never fail here.)"""
    from tlc.backends import lower as lower_kernel, target_for

    lowered = lower_kernel(kernel, target_for(arch)).main
    return Lowering(lowered.name, lowered.source)


def build(lowering: Lowering, arch: str, cache_dir: str):
    """ptxas's FunctionReport for the kernel; raises tlc.build.BuildError."""
    from tlc.build import build as nvcc_build

    return nvcc_build(lowering.source, arch, cache_dir=cache_dir).function(lowering.name)


# ---- the census ----

def _where(error: Exception) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    frame = frames[-1] if frames else None
    return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}" if frame else ""


def _first_error_line(error) -> str:
    """nvcc's first error, without the temporary folder it built in."""
    lines = (getattr(error, "stderr", "") or str(error)).splitlines()
    line = next((line.strip() for line in lines if "error" in line), lines[0] if lines else "")
    return re.sub(r"^\S*kernel\.cu\(\d+\): ", "", line)


def census(plans, build_count: int, cache_dir: str, log=print):
    from tlc.api import check

    BackendUnsupported, BuildError = lowering_errors()
    counts = Counter()
    refused, failures, built_by_source, registers = Counter(), [], {}, []
    for index, plan in enumerate(plans):
        arch = plan.arch
        counts["drawn", arch] += 1
        result = check(plan.text, arch=arch)
        failure = None
        if not result.ok:
            codes = sorted({d.code for d in result.diagnostics if d.is_error})
            refused.update(codes)
            if "internal-error" in codes:
                message = next(d.message for d in result.diagnostics if d.code == "internal-error")
                failure = ("check-internal", message, "")
        else:
            counts["accepted", arch] += 1
            try:
                lowering = lower(result.kernel, arch)
            except BackendUnsupported as error:
                failure = ("unsupported", str(error), _where(error))
            except Exception as error:  # noqa: BLE001 - a lowering bug is what we count
                failure = ("internal", f"{type(error).__name__}: {error}", _where(error))
            else:
                counts["lowered", arch] += 1
                key = hashlib.sha256(lowering.source.encode()).hexdigest()
                if key not in built_by_source and len(built_by_source) < build_count:
                    try:
                        function = build(lowering, arch, cache_dir)
                        built_by_source[key] = ("ok", function)
                    except BuildError as error:
                        built_by_source[key] = ("nvcc", _first_error_line(error))
                    log(f"  built {len(built_by_source)}/{build_count} ({index + 1}/{len(plans)} "
                        "drawn)", file=sys.stderr)
                outcome = built_by_source.get(key)
                if outcome:
                    counts["built", arch] += 1
                    if outcome[0] == "ok":
                        estimate = result.facts.get("registers")
                        registers.append({"arch": arch, "example": plan.example,
                                          "edits": list(plan.edits), "draw": index,
                                          "estimate": getattr(estimate, "peak", None),
                                          "ptxas": outcome[1].registers})
                    if outcome[0] == "nvcc":
                        failure = ("nvcc", outcome[1], "")
                    elif outcome[1].spill_stores or outcome[1].spill_loads:
                        f = outcome[1]
                        failure = ("spill", f"{f.spill_stores} B spill stores, {f.spill_loads} B "
                                   f"spill loads at {f.registers} registers", "")
                    else:
                        counts["clean", arch] += 1
        if failure:
            counts[failure[0], arch] += 1
            failures.append({"arch": arch, "example": plan.example, "edits": list(plan.edits),
                             "kind": failure[0], "message": failure[1], "where": failure[2],
                             "text": plan.text})
    return counts, refused, failures, registers


ROWS = [("drawn", "drawn"), ("accepted", "accepted by tlc check"), ("lowered", "lowered"),
        ("unsupported", "backend-unsupported at compile only"),
        ("internal", "internal errors in lowering"), ("check-internal", "internal errors in check"),
        ("built", "built (nvcc + ptxas)"), ("nvcc", "nvcc errors"), ("spill", "spilled"),
        ("clean", "built, 0 spills")]


def summary(counts, refused, failures) -> str:
    archs = sorted({arch for _, arch in counts})
    out = [f"{'':40}" + "".join(f"{a:>8}" for a in archs) + f"{'all':>8}"]
    for key, label in ROWS:
        values = [counts[key, a] for a in archs]
        out.append(f"{label:40}" + "".join(f"{v:>8}" for v in values) + f"{sum(values):>8}")
    for kind, title in (("internal", "internal errors"), ("check-internal", "check internal"),
                        ("unsupported", "backend-unsupported"), ("nvcc", "nvcc errors"),
                        ("spill", "spills")):
        groups = Counter((f["arch"], _head(f["message"]), f["where"]) for f in failures
                         if f["kind"] == kind)
        if groups:
            out.append(f"\n{title}:")
            out += [f"  {n:4}  {arch}  {head}" + (f"  [{where}]" if where else "")
                    for (arch, head, where), n in groups.most_common()]
    out.append("\nrefusals by code (plans): " + ", ".join(f"{c} {n}" for c, n in
                                                         refused.most_common()))
    return "\n".join(out)


def _head(message: str, width: int = 110) -> str:
    line = message.splitlines()[0] if message else ""
    return line if len(line) <= width else line[:width - 3] + "..."


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    parser.add_argument("--count", type=int, default=800, help="distinct plans to draw")
    parser.add_argument("--build", type=int, default=0, metavar="N",
                        help="build up to N lowered plans of distinct CUDA (default 0)")
    parser.add_argument("--cache", default="/tmp/drawn-cache", help="nvcc build cache folder")
    parser.add_argument("--json", help="write the failing plans here, one row each")
    args = parser.parse_args(argv)
    started = time.time()
    plans = drawn(args.seed, args.count)
    counts, refused, failures, registers = census(plans, args.build, args.cache)
    print(f"drawn_census --seed {args.seed} --count {args.count} --build {args.build}: "
          f"{len(plans)} distinct plans, {time.time() - started:.0f} s")
    print(summary(counts, refused, failures))
    if args.json:
        Path(args.json).write_text(json.dumps({"seed": args.seed, "count": args.count,
                                               "build": args.build, "failures": failures,
                                               "registers": registers},
                                              indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
