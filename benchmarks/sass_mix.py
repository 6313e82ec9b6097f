"""The instruction mix of a kernel's key loop, read from its SASS: how many instructions of
each kind one iteration issues (statically, both sides of a branch counted), per tensor-core
MMA. A plan (.tl, built for its target) or a .cubin; needs cuobjdump from the CUDA toolkit.

    python3 benchmarks/sass_mix.py examples/mha_fwd_fp16_d128_sm80.tl [more.cubin ...]

The key loop is the backward branch whose body holds the most HMMA instructions.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

KINDS = [("mma", ("HMMA",)), ("ldmatrix", ("LDSM",)), ("cp.async", ("LDGSTS", "LDGDEPBAR", "DEPBAR")),
         ("exp2", ("MUFU",)), ("float", ("FMUL", "FFMA", "FADD", "FMNMX", "FSETP", "FSEL", "F2FP")),
         ("barrier", ("BAR",)), ("shuffle", ("SHFL", "VOTE")),
         ("integer", ("IMAD", "IADD3", "LEA", "ISETP", "SHF", "LOP3", "SEL", "IABS", "MOV", "S2R",
                      "IMNMX", "PRMT", "ULDC", "UIADD3", "UMOV", "ULEA", "USHF", "UIMAD"))]
LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*);")


def sass(cubin: Path) -> list[tuple[int, str, str]]:
    from tlc.build import sass as disassemble

    return [(int(m.group(1), 16), m.group(3), m.group(4))
            for m in LINE.finditer(disassemble(cubin))]


def key_loop(code):
    """The instructions of the backward branch's body with the most HMMA."""
    best = []
    for index, (address, op, args) in enumerate(code):
        if not op.startswith("BRA"):
            continue
        target = re.search(r"0x([0-9a-f]+)", args)
        if not target or int(target.group(1), 16) >= address:
            continue
        body = [c for c in code[:index + 1] if c[0] >= int(target.group(1), 16)]
        if sum(c[1].startswith("HMMA") for c in body) > sum(c[1].startswith("HMMA") for c in best):
            best = body
    return best


def mix(code) -> dict:
    counts = Counter()
    for _, op, _ in code:
        base = op.split(".")[0]
        kind = next((name for name, ops in KINDS if base in ops), "other")
        counts[kind] += 1
    total = sum(counts.values())
    return {"instructions": total, **{k: counts.get(k, 0) for k, _ in KINDS},
            "other": counts.get("other", 0),
            "per_mma": round(total / counts["mma"], 2) if counts["mma"] else None}


def cubin_of(path: Path) -> Path:
    if path.suffix == ".cubin":
        return path
    from tlc.api import check
    from tlc.driver import build_for, lowered_of

    result = check(path.read_text(), path=str(path))
    if not result.ok:
        raise SystemExit(f"{path}: does not pass tlc check")
    return build_for(lowered_of(result), result.arch, output="cubin").path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    for path in args.files:
        row = {"file": str(path), **mix(key_loop(sass(cubin_of(path))))}
        rows.append(row)
        print(json.dumps(row))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
