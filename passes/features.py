"""features: the plan uses only what the target's hardware has: tensor-core shapes and dtypes,
cp.async. (What tlc's code for the target can lower is the lowering's to say: the driver runs
it after the passes and reports its refusals as backend-unsupported.)

Each rejection carries the edit that ports the plan: another MMA shape the target has for the
dtype; for a dtype the target's tensor cores lack, fp16 tiles loaded from the same inputs where
the target's copies can convert (bf16 on sm_75), else fp16 throughout; or single-stage copies
where there is no cp.async to run copies ahead.
"""
from __future__ import annotations

import re

from tlc import ir
from tlc.arch import ARCHS, Arch
from tlc.diagnostics import Diagnostic
from tlc.fixes import Edit
from tlc.passes.facts import Facts, text
from tlc.passes.infer_shapes import CONVERTING_LOADS


def features(kernel: ir.Kernel, ctx) -> ir.Kernel:
    """Report MMA shapes, dtypes and asynchronous copies the target does not have."""
    arch = ARCHS.get(ctx.arch or kernel.target or "")
    if arch is None:
        return kernel
    facts = Facts(kernel)
    reported: set = set()  # a dtype the target lacks is one problem, however many GEMMs
    for op, _, held in facts.walk_held():
        if isinstance(op, ir.Gemm):
            _gemm(arch, op, held.get(op.a.name) or held.get(op.b.name), ctx, reported, kernel)
        elif isinstance(op, ir.Copy) and op.src is ir.Level.GLOBAL and not arch.has_cp_async:
            _stages(facts, arch, op, ctx.report)
    return kernel


def _gemm(arch: Arch, gemm: ir.Gemm, operand, ctx, reported: set, kernel: ir.Kernel) -> None:
    dtype = operand.dtype if operand else None
    if dtype is None or dtype is ir.DType.FP32:
        return
    if dtype not in arch.mma_dtypes:
        if dtype not in reported:
            reported.add(dtype)
            names = ", ".join(d.value for d in arch.mma_dtypes)
            needs = f"{dtype.value} tensor cores need {_first_arch_with(dtype)} or newer"
            if (dtype, ir.DType.FP16) in CONVERTING_LOADS and not arch.has_cp_async:
                help = (f"compute in fp16 and keep the {dtype.value} inputs: add `with dtype "
                        "fp16` to the shared and register Allocates of the GEMM operands and "
                        f"make the Reshape fp16; tiles convert as they load, exactly for "
                        f"magnitudes 2^-14 to 65504 (or make the inputs fp16; {needs})")
                fixes = _convert_on_load(kernel, dtype, ctx.source)
            else:
                # No edit: an input's dtype is the problem's, not the plan's to change.
                help = (f"convert the inputs to fp16 and use fp16 throughout the plan, or "
                        f"target an arch whose tensor cores take {dtype.value} ({needs})")
                fixes = ()
            ctx.report(Diagnostic(
                "arch-feature", f"{arch.name} tensor cores take {names}; this GEMM's operands "
                f"are {dtype.value}", gemm.span, help=help, fixes=fixes))
        dtype = ir.DType.FP16  # check the MMA shape as the fix leaves it, in the same round
    shapes = arch.mma_shapes_for(dtype)
    if gemm.mma and gemm.mma not in {s.name for s in shapes}:
        better = shapes[0].name
        listed = ", ".join(s.name for s in shapes)
        if all(s.warpgroup for s in shapes):  # wgmma: one shape per N
            listed = (f"warpgroup MMAs m64nNk16 for N = 8, 16, ... {max(s.n for s in shapes)}, "
                      "the N of the GEMM or a part of it")
            better = _warpgroup_shape(kernel, gemm, shapes) or better
        ctx.report(Diagnostic(
            "arch-feature", f"{arch.name} has no {gemm.mma} MMA for {dtype.value}; it has "
            + listed, gemm.span, help=f"use `mma {better}`",
            fixes=replace_word(ctx.source, gemm.mma, better, gemm.span)))


# The N of warpgroup MMA a port suggests first, widest first: the shapes tlc's wgmma
# lowering emits (backends/isa/wgmma.py), then any N the GEMM's is a multiple of.
PREFERRED_WGMMA_N = (128, 64)


def _warpgroup_shape(kernel: ir.Kernel, gemm: ir.Gemm, shapes) -> str | None:
    """The wgmma shape for this GEMM: the widest preferred N that divides the GEMM's N, else
    the GEMM's N itself where the hardware has it."""
    from tlc.passes.gemm_orientation import gemm_operands

    operands = gemm_operands(Facts(kernel), gemm)
    n = Facts(kernel).value(operands[1][1]) if operands else None
    if not isinstance(n, int):
        return None
    names = {s.n: s.name for s in shapes}
    return next((names[w] for w in PREFERRED_WGMMA_N if n % w == 0 and w in names),
                names.get(n))


def _stages(facts: Facts, arch: Arch, op: ir.Copy, report) -> None:
    stages = facts.value(op.stages)
    if not isinstance(stages, int) or stages <= 1:
        return
    edit = facts.set_value(op.stages, 1)
    change = f"set {text(op.stages)} = 1" if isinstance(op.stages, ir.Sym) else "write `stages 1`"
    report(Diagnostic(
        "arch-feature", f"{arch.name} has no cp.async, so a Copy cannot run {stages} stages "
        "ahead", op.span, help=f"{change} (the copy then goes through registers, one tile at a "
                               "time)", fixes=(edit,) if edit else ()))


def _convert_on_load(kernel: ir.Kernel, dtype: ir.DType, source) -> tuple[Edit, ...]:
    """Edits that keep the inputs and compute in fp16: every shared or register tile of a GEMM
    operand that is `dtype` becomes fp16, and so does every Reshape to `dtype`."""
    if source is None:
        return ()
    operands = {name for op in ir.walk(kernel.body) if isinstance(op, ir.Gemm)
                for name in (op.a.name, op.b.name)}
    edits: list[Edit] = []
    for op in ir.walk(kernel.body):
        if isinstance(op, ir.Allocate) and op.buffer.dtype is dtype and op.buffer.name in \
                operands and op.buffer.level in (ir.Level.SHARED, ir.Level.REGISTER):
            explicit = replace_word(source, dtype.value, "fp16", op.span)
            edits += explicit or [Edit(source.span(op.span.end, op.span.end),
                                       " with dtype fp16")]
        elif isinstance(op, ir.Reshape) and op.dtype is dtype:
            edits += replace_word(source, dtype.value, "fp16", op.span)
    return tuple(edits)


def _first_arch_with(dtype: ir.DType) -> str:
    return next(a.name for a in ARCHS.values() if dtype in a.mma_dtypes)


def replace_word(source, old: str, new: str, within=None) -> tuple[Edit, ...]:
    """Edits replacing the word `old` by `new` in code (not comments), within a span if given."""
    if source is None:
        return ()
    start, end = (within.start, within.end) if within else (0, len(source.text))
    edits = []
    for match in re.finditer(rf"\b{re.escape(old)}\b", source.text[start:end]):
        at = start + match.start()
        line_start = source.text.rfind("\n", 0, at) + 1
        if "#" in source.text[line_start:at]:
            continue
        edits.append(Edit(source.span(at, at + len(old)), new))
    return tuple(edits)
