"""Where the sm_80 backward kernel's time goes on the GPU present: its CUDA as lowered, then
with one change at a time, each built, checked (where the change keeps the gradients) and
timed at D = 64, fp16, batch 4 and 2048 / D heads, kernel alone and with the host's share of a
call (Delta, the zeroed dQ, its conversion); SDPA flash in the same run.

    python3 benchmarks/backward_ablation.py [--n 4096,16384] [--json PATH]

The changes are hand edits of the generated source, for measuring only: what one of them buys
is then built into the lowering and its golden CUDA.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attention import Case, flops, time_ms  # noqa: E402
from backward import (BACKWARD_FLOPS, backward_run, check_gradients, make_inputs,  # noqa: E402
                      saved_forward, sdpa_runner)

ATOMIC_PAIR = re.compile(r"atomicAdd\(tlc_at, ([^;]+)\); atomicAdd\(tlc_at \+ 1, ([^;]+)\);")


def blocks(count):
    return lambda source: source.replace("__launch_bounds__(128, 1)",
                                         f"__launch_bounds__(128, {count})")


def vector_red(source):
    """Each thread's two neighbouring dQ columns added by one 8-byte reduction (sm_90's
    red.global.add.v2.f32) instead of two atomicAdds."""
    return ATOMIC_PAIR.sub(r'asm volatile("red.global.add.v2.f32 [%0], {%1, %2};" :: '
                           r'"l"(tlc_at), "f"(\1), "f"(\2) : "memory");', source)


def plain_store(source):
    """dQ stored, not added (wrong gradients: the atomics' cost, for timing only)."""
    return ATOMIC_PAIR.sub(r"tlc_at[0] = \1; tlc_at[1] = \2;", source)


def both(*edits):
    def edit(source):
        for one in edits:
            source = one(source)
        return source
    return edit


# (name, stages, edit, whether the gradients stay right, tiles (BM, BN, WARPS))
CHANGES = [
    ("as lowered", 1, None, True, (64, 64, 4)),
    ("3 blocks/SM", 1, blocks(3), True, (64, 64, 4)),
    ("3 blocks/SM, stages 2", 2, blocks(3), True, (64, 64, 4)),
    ("red.v2", 1, vector_red, True, (64, 64, 4)),
    ("3 blocks/SM, red.v2", 1, both(blocks(3), vector_red), True, (64, 64, 4)),
    ("3 blocks/SM, dQ stored", 1, both(blocks(3), plain_store), False, (64, 64, 4)),
    ("4 blocks/SM", 1, blocks(4), True, (64, 64, 4)),
    # tiles the checker refuses (its register estimate is above 255): lowered unchecked
    ("128x64/4w (unchecked)", 1, None, True, (128, 64, 4)),
    ("128x64/4w 2 blocks (unchecked)", 1, blocks(2), True, (128, 64, 4)),
    ("128x128/8w (unchecked)", 1, None, True, (128, 128, 8)),
]


def edited_result(options, edit, target=None):
    """The plan's check result with its lowered CUDA edited; lowered for `target` (sm_80's by
    default) unchecked where the checker refuses the plan or a target is given."""
    from tlc.api import check
    from tlc.backward_plans import render

    result = check(render(options), arch="sm_80")
    if not result.ok or target is not None:  # measuring what the checker refuses
        from tlc.backends import target_for
        from tlc.backends.lower import lower

        result = dataclasses.replace(result, diagnostics=(), lowered=lower(
            result.kernel, target or target_for("sm_80")))
    if edit is not None:
        kernels = tuple(dataclasses.replace(k, source=edit(k.source))
                        for k in result.lowered.kernels)
        result = dataclasses.replace(result, lowered=dataclasses.replace(result.lowered,
                                                                         kernels=kernels))
    return result


def edited_kernel(options, edit, target=None):
    from tlc.build import build
    from tlc.runtime import device_arch, load

    result = edited_result(options, edit, target)
    built = build(result.lowered.source, device_arch())  # a cache hit after prebuild
    report = built.function(result.kernel.name)
    return load(result, prebuilt=(result.lowered, built)), report


def prebuild(jobs) -> None:
    """Every edited kernel built in parallel first (nvcc takes seconds a kernel)."""
    import concurrent.futures

    from tlc.build import build
    from tlc.runtime import device_arch

    arch = device_arch()
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 4) as pool:
        list(pool.map(lambda job: build(edited_result(*job).lowered.source, arch), jobs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="4096,16384")
    parser.add_argument("--json", default=os.path.join(os.environ.get("OUT", "."),
                                                       "backward-ablation.json"))
    args = parser.parse_args()
    import torch

    from tlc.backward_plans import BackwardOptions
    from tlc.runtime import load
    from tlc.templates import plan

    rows = []
    prebuild([(BackwardOptions("fp16", 64, causal, 1, "sm_80", *tiles, stages=stages), edit)
              for causal in (False, True) for _, stages, edit, _, tiles in CHANGES])
    for n in (int(x) for x in args.n.split(",")):
        for causal in (False, True):
            case = Case("fp16", 64, n, False, causal)
            inputs = make_inputs(case, 2, seed=1)
            scale = 1.0 / case.d ** 0.5
            forward = load(plan("fp16", 64, causal, 1, lse=True))
            saved = saved_forward(forward, inputs, scale)
            work = BACKWARD_FLOPS * flops(case.batch, case.heads, case.n, case.d, causal)
            flash, _ = sdpa_runner("sdpa-flash")(case, inputs, "sm_80", {})
            flash_ms = time_ms(flash, 2, 10)
            rows.append(dict(n=n, causal=causal, change="sdpa-flash", ms=round(flash_ms, 4),
                             tflops=round(work / flash_ms / 1e9, 1)))
            print(json.dumps(rows[-1]), flush=True)
            for name, stages, edit, keeps, tiles in CHANGES:
                options = BackwardOptions("fp16", 64, causal, 1, "sm_80", *tiles,
                                          stages=stages)
                kernel, report = edited_kernel(options, edit)

                run = backward_run([kernel], inputs, saved, scale)
                verdict = check_gradients(case, *inputs[0], run(0))
                row = dict(n=n, causal=causal, change=name, registers=report.registers,
                           spills=report.spill_stores + report.spill_loads,
                           check=verdict["ok"] if keeps else "not kept")
                ms = time_ms(run, 2, 10)
                run(0)
                kernel_ms = time_ms(lambda i: kernel.launch(), 1, 10)
                row.update(ms=round(ms, 4), kernel_ms=round(kernel_ms, 4),
                           tflops=round(work / ms / 1e9, 1),
                           kernel_tflops=round(work / kernel_ms / 1e9, 1),
                           of_flash=round(flash_ms / ms, 3))
                rows.append(row)
                print(json.dumps(row), flush=True)
            del inputs, saved
            torch.cuda.empty_cache()
    with open(args.json, "w") as handle:
        json.dump(rows, handle, indent=1)
    print(f"{'N':>6} {'causal':6} {'change':32} {'regs':>4} {'spill':>5} {'check':8} "
          f"{'ms':>8} {'kernel':>8} {'TFLOP/s':>8} {'/flash':>6}")
    for r in rows:
        print(f"{r['n']:>6} {str(r['causal']):6} {r['change']:32} {r.get('registers', ''):>4} "
              f"{r.get('spills', ''):>5} {str(r.get('check', '')):8} {r['ms']:>8} "
              f"{r.get('kernel_ms', ''):>8} {r['tflops']:>8} {r.get('of_flash', ''):>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
