"""tiling: tiles fit the MMA shape and the warp layout, and vectorised copies are aligned.

A GEMM whose warps are laid out (warps_m, warps_n) with an m×n×k MMA needs M to be a multiple
of warps_m·m, N of warps_n·n and K of k; every GEMM of a block shares one warp layout. A Copy
`with vector V` moves V elements per thread at once: 4, 8 or 16 bytes, dividing the tile's
rows and, for the alignment of every row in global memory, the tensor's last dimension. Tiles
along a runtime size (Nq, Nk) may end in a partial tile; that is legal (the backend masks it)
and recorded for the report.
"""
from __future__ import annotations

from tlc import ir
from tlc.arch import MMA_SHAPES
from tlc.diagnostics import Diagnostic
from tlc.passes.facts import Facts, text
from tlc.passes.gemm_orientation import gemm_operands

VECTOR_BYTES = (4, 8, 16)


def tiling(kernel: ir.Kernel, ctx) -> ir.Kernel:
    """Report tiles that do not fit the MMA and warp layout, and misaligned vector copies."""
    facts = Facts(kernel)
    layouts = []
    for gemm in facts.gemms:
        warps = tuple(facts.value(w) for w in gemm.warps or ())
        if len(warps) == 2 and all(isinstance(w, int) and w > 0 for w in warps):
            _fits_mma(facts, gemm, warps, ctx.report)
            if layouts and warps != layouts[0]:
                ctx.report(Diagnostic(
                    "warp-layout", f"this GEMM splits warps {warps}, an earlier one "
                    f"{layouts[0]}; a block has one warp layout", gemm.span,
                    help=f"give every GEMM `with warps ({layouts[0][0]}, {layouts[0][1]})`"))
            layouts.append(warps)
        elif gemm.warps is not None:
            ctx.report(Diagnostic("tile-mma", "`warps` needs positive compile-time integers",
                                  gemm.span, help="e.g. `with warps (4, 1)`"))
    partial: dict[tuple[str, str], list[str]] = {}
    for op in ir.walk(kernel.body):
        if isinstance(op, ir.Copy):
            if op.vector is not None:
                _vector(facts, op, ctx.report)
            for dim, extent in _runtime_dims(facts, op):
                partial.setdefault((dim, extent), [])
                if op.name not in partial[(dim, extent)]:
                    partial[(dim, extent)].append(op.name)
    ctx.facts["remainders"] = tuple(
        f"{dim} need not be a multiple of {extent}: the last tile of "
        f"{', '.join(names)} is partial, and masked" for (dim, extent), names in partial.items())
    return kernel


def mma_fits(facts: Facts) -> bool:
    """Whether every GEMM's tile fits its MMA shape and warp layout (for what-if questions)."""
    problems = []
    for gemm in facts.gemms:
        warps = tuple(facts.value(w) for w in gemm.warps or ())
        if len(warps) == 2 and all(isinstance(w, int) and w > 0 for w in warps):
            _fits_mma(facts, gemm, warps, problems.append)
    return not problems


def _fits_mma(facts: Facts, gemm: ir.Gemm, warps, report) -> None:
    shape = MMA_SHAPES.get(gemm.mma or "")
    operands = gemm_operands(facts, gemm)
    if shape is None or operands is None:
        return
    (m, k), (_, n) = operands
    k_step = shape.k_step  # K may end in a shorter last step (m16n8k16 in one m16n8k8)
    for dim, axis, step in ((m, "M", warps[0] * shape.m), (n, "N", warps[1] * shape.n),
                            (k, "K", k_step)):
        value = facts.value(dim)
        if not isinstance(value, int) or value % step == 0:
            continue
        why = {"M": f"{warps[0]} warps along rows × {shape.m}",
               "N": f"{warps[1]} warps along columns × {shape.n}",
               "K": f"the k of {shape.name}" if k_step == shape.k else
               f"{shape.name} steps, ending in one of {shape.last_k}"}[axis]
        better = max(step, round(value / step) * step)
        edit = facts.set_value(dim, better)
        report(Diagnostic(
            "tile-mma", f"the GEMM's {axis} = {text(dim)} = {value} is not a multiple of "
            f"{step} ({why})", gemm.span,
            help=f"set {text(dim)} = {better}" if edit else f"make {axis} a multiple of {step}",
            fixes=(edit,) if edit else ()))


def _vector(facts: Facts, op: ir.Copy, report) -> None:
    vector = facts.value(op.vector)
    tensor = facts.tensors.get(op.name)
    local = op.dst if op.src is ir.Level.GLOBAL else op.src
    buffer = facts.buffers.get((op.name, local)) or facts.buffers.get((op.name, op.dst))
    dtype = (tensor.dtype if tensor else None) or (buffer.dtype if buffer else None)
    if not isinstance(vector, int) or dtype is None:
        return
    width = vector * dtype.bytes
    if width not in VECTOR_BYTES:
        fits = [b // dtype.bytes for b in VECTOR_BYTES if b >= dtype.bytes]
        report(Diagnostic(
            "vector-width", f"`vector {vector}` of {dtype.value} moves {width} B per thread; "
            "a thread moves 4, 8 or 16 B at once", op.span,
            help=f"use `vector {fits[-1]}` ({dtype.value}: " +
                 ", ".join(f"vector {v}" for v in fits) + ")"))
        return
    rows = []
    tile = op.tile or (buffer.shape if buffer else None)
    if tile:
        rows.append(("the tile's rows", tile[-1]))
    if tensor is not None and tensor.shape and ir.Level.GLOBAL in (op.src, op.dst):
        rows.append((f"the rows of `{op.name}` in global memory", tensor.shape[-1]))
    for what, dim in rows:
        value = facts.value(dim)
        if isinstance(value, int) and value % vector:
            report(Diagnostic(
                "vector-width", f"{what} ({text(dim)} = {value}) are not a multiple of "
                f"`vector {vector}`", op.span,
                help=f"use a vector that divides {value}, e.g. `vector "
                     f"{_largest_divisor(value, vector)}`"))
            return


def _largest_divisor(value: int, limit: int) -> int:
    return max(d for d in (1, 2, 4, 8, 16) if d <= limit and value % d == 0)


def _runtime_dims(facts: Facts, op: ir.Copy) -> list[tuple[str, str]]:
    """(dimension, tile extent) for each runtime-sized dimension a global Copy tiles."""
    tensor = facts.tensors.get(op.name)
    if tensor is None or not tensor.shape or ir.Level.GLOBAL not in (op.src, op.dst):
        return []
    local = op.dst if op.src is ir.Level.GLOBAL else op.src
    buffer = facts.buffers.get((op.name, local))
    tile = op.tile or (buffer.shape if buffer else None)
    if not tile:
        return []
    covered = tensor.shape[len(tensor.shape) - len(tile):]
    return [(text(dim), text(extent)) for dim, extent in zip(covered, tile)
            if facts.value(dim) is None]
