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
from tlc.fixes import Edit
from tlc.passes.facts import Facts, text
from tlc.passes.gemm_orientation import gemm_operands

VECTOR_BYTES = (4, 8, 16)


def tiling(kernel: ir.Kernel, ctx) -> ir.Kernel:
    """Report tiles that do not fit the MMA and warp layout, and misaligned vector copies."""
    facts = Facts(kernel)
    layouts = []
    # The layout to unify on: one that splits rows only, where a GEMM has one (every backend
    # lowers that), else the first; so this help and the backend's agree.
    valid = [w for w in (tuple(facts.value(x) for x in g.warps or ()) for g in facts.gemms)
             if len(w) == 2 and all(isinstance(x, int) and x > 0 for x in w)]
    preferred = next((w for w in valid if w[1] == 1), valid[0] if valid else None)
    for gemm in facts.gemms:
        warps = tuple(facts.value(w) for w in gemm.warps or ())
        if len(warps) == 2 and all(isinstance(w, int) and w > 0 for w in warps):
            _fits_mma(facts, gemm, warps, ctx.report, ctx.source)
            if layouts and warps != layouts[0]:
                ctx.report(Diagnostic(
                    "warp-layout", f"this GEMM splits warps {warps}, an earlier one "
                    f"{layouts[0]}; a block has one warp layout", gemm.span,
                    help=f"give every GEMM `with warps ({preferred[0]}, {preferred[1]})`"))
            layouts.append(warps)
        elif gemm.warps is not None:
            ctx.report(Diagnostic("tile-mma", "`warps` needs positive compile-time integers",
                                  gemm.span, help="e.g. `with warps (4, 1)`"))
    _grid_floor(kernel, ctx.report)
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


def _grid_floor(kernel: ir.Kernel, report) -> None:
    """A grid extent `Nq / BM` over a runtime size launches floor(Nq / BM) blocks: when Nq is
    not a multiple of BM the last rows are never computed, though the copies would mask
    their partial tile. Loops get this from mask_coverage; the grid is checked here."""
    if kernel.grid is None:
        return
    for extent, index in zip(kernel.grid.extents, kernel.grid.indices):
        if not (isinstance(extent, ir.BinOp) and extent.op == "/" and
                isinstance(extent.left, ir.Sym) and extent.left.kind is ir.SymKind.SIZE):
            continue
        size, tile = text(extent.left), text(extent.right)
        fixed = f"cdiv({size}, {tile})"
        report(Diagnostic(
            "grid-coverage", f"the grid launches {size} / {tile} blocks along `{index}`, "
            f"rounded down: when {size} is not a multiple of {tile}, the rows of the last, "
            "partial tile are never computed", extent.span, help=f"write `{fixed}`",
            fixes=(Edit(extent.span, fixed),)))


def mma_fits(facts: Facts) -> bool:
    """Whether every GEMM's tile fits its MMA shape and warp layout (for what-if questions)."""
    problems = []
    for gemm in facts.gemms:
        warps = tuple(facts.value(w) for w in gemm.warps or ())
        if len(warps) == 2 and all(isinstance(w, int) and w > 0 for w in warps):
            _fits_mma(facts, gemm, warps, problems.append)
    return not problems


def _fits_mma(facts: Facts, gemm: ir.Gemm, warps, report, source=None) -> None:
    shape = MMA_SHAPES.get(gemm.mma or "")
    operands = gemm_operands(facts, gemm)
    if shape is None or operands is None:
        return
    (m, k), (_, n) = operands
    if shape.warpgroup and (warps[0] % 4 or warps[1] != 1):
        groups = max(1, round(warps[0] * warps[1] / 4))
        report(Diagnostic(
            "tile-mma", f"{shape.name} is a warpgroup MMA: four warps issue it together, so the "
            f"warps along rows come in fours and none split columns; warps {tuple(warps)} do not",
            gemm.span, help=f"write `with warps ({4 * groups}, 1)`: {groups} warpgroup(s) of 64 "
                            "rows each"))
        return
    k_step = shape.k_step  # K may end in a shorter last step (m16n8k16 in one m16n8k8)
    rows = shape.rows_per_warp  # a warpgroup MMA's 64 rows are 16 a warp
    values = {axis: facts.value(dim) for axis, dim in (("M", m), ("N", n), ("K", k))}
    if all(isinstance(v, int) for v in values.values()):  # a head dim to whole wgmma panels
        values["N"], values["K"] = shape.extents(values["N"], values["K"], gemm.b.transposed)
    for dim, axis, step in ((m, "M", warps[0] * rows), (n, "N", warps[1] * shape.n),
                            (k, "K", k_step)):
        computed, value = values[axis], facts.value(dim)
        if not isinstance(computed, int) or computed % step == 0:
            continue
        why = {"M": f"{warps[0]} warps along rows × {rows}" + (
                   f" ({warps[0] // 4} warpgroup(s) × 64)" if shape.warpgroup else ""),
               "N": f"{warps[1]} warps along columns × {shape.n}",
               "K": f"the k of {shape.name}" if k_step == shape.k else
               f"{shape.name} steps, ending in one of {shape.last_k}"}[axis]
        read = f", {computed} in whole 64-column panels," if computed != value else ""
        message = (f"the GEMM's {axis} = {text(dim)} = {value}{read} is not a multiple of "
                   f"{step} ({why})")
        if shape.warpgroup and axis == "N" and computed % 8 == 0 and computed <= 256:
            # a wgmma's N is the tile's (in whole panels): the shape follows the tile
            from tlc.passes.features import replace_word

            better = f"m64n{computed}k16"
            report(Diagnostic("tile-mma", message, gemm.span, help=f"use `mma {better}`",
                              fixes=replace_word(source, gemm.mma, better, gemm.span)
                              if source is not None else ()))
            continue
        if _of_the_problem(facts, dim):  # a head dim is the user's: never edited
            padded = -(-value // step) * step
            report(Diagnostic("tile-mma", message, gemm.span, help=(
                f"{text(dim)} is a dimension of the tensors, not a tile size: pad it to "
                f"{padded} (zeros in the extra columns) and give the plan {text(dim)} = "
                f"{padded}")))
            continue
        report(Diagnostic("tile-mma", message, gemm.span,
                          **_tile_fix(facts, gemm, axis, dim, value, step, warps, shape)))


def _of_the_problem(facts: Facts, dim: ir.Expr) -> bool:
    """Whether an extent is a dimension of an input or output (the head dim D), which sets
    the problem, rather than a tile size the plan chooses."""
    if not isinstance(dim, ir.Sym):
        return False
    return any(isinstance(d, ir.Sym) and d.name == dim.name
               for tensor in facts.tensors.values() for d in tensor.shape)


def _tile_fix(facts: Facts, gemm: ir.Gemm, axis: str, dim, value: int, step: int, warps,
              shape) -> dict:
    """help and fixes for a tile that the warps and MMA do not divide: round the tile to a
    multiple of the step, unless it would have to grow and fewer warps divide it as it is
    (BM = 128 with 64 warps wants 8 warps, not BM = 1024)."""
    better = max(step, round(value / step) * step)
    if better > value and axis in ("M", "N") and gemm.warps:
        index, size = (0, shape.m) if axis == "M" else (1, shape.n)
        powers = (1 << p for p in range(min(warps[index].bit_length(), 6) - 1, -1, -1))
        fewer = [w for w in powers if w < warps[index] and value % (w * size) == 0]
        edit = facts.set_value(gemm.warps[index], fewer[0]) if fewer else None
        if edit:
            name = text(gemm.warps[index])
            return {"help": f"set {name} = {fewer[0]} (warps along "
                            f"{'rows' if axis == 'M' else 'columns'}), so that {fewer[0]} × "
                            f"{size} divides {text(dim)} = {value}", "fixes": (edit,)}
    edit = facts.set_value(dim, better)
    return {"help": f"set {text(dim)} = {better}" if edit else
            f"make {axis} a multiple of {step}", "fixes": (edit,) if edit else ()}


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
        edit = facts.set_value(op.vector, fits[-1])
        report(Diagnostic(
            "vector-width", f"`vector {vector}` of {dtype.value} moves {width} B per thread; "
            "a thread moves 4, 8 or 16 B at once", op.span,
            help=f"use `vector {fits[-1]}` ({dtype.value}: " +
                 ", ".join(f"vector {v}" for v in fits) + ")", fixes=(edit,) if edit else ()))
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
            smaller = _largest_divisor(value, vector)
            edit = facts.set_value(op.vector, smaller)
            report(Diagnostic(
                "vector-width", f"{what} ({text(dim)} = {value}) are not a multiple of "
                f"`vector {vector}`", op.span,
                help=f"use a vector that divides {value}, e.g. `vector {smaller}`",
                fixes=(edit,) if edit else ()))
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
