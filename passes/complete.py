"""complete: TL code states every parameter a sketch may leave open.

A sketch says what moves and what is computed; TL code adds what a backend needs to emit it:
the header (kernel, inputs, outputs, grid), the shape and dtype of every buffer, the tile and
coordinate of every copy from global memory, and the warp layout and MMA shape of every GEMM.
"""
from __future__ import annotations

from tlc import ir
from tlc.arch import ARCHS
from tlc.diagnostics import Diagnostic
from tlc.source import NO_SPAN


def complete(kernel: ir.Kernel, ctx) -> ir.Kernel:
    """Report each parameter TL code must give and this plan leaves open."""
    def missing(code, message, span, help):
        ctx.report(Diagnostic(code, message, span, help=help))

    # A grid line that is there but wrong already has its bad-grid error.
    _header(kernel, missing, any(d.code == "bad-grid" for d in ctx.diagnostics))
    for op in ir.walk(kernel.body):
        if isinstance(op, ir.Allocate):
            _buffer(op.buffer, missing)
        elif isinstance(op, ir.Copy) and ir.Level.GLOBAL in (op.src, op.dst):
            _copy(op, missing)
        elif isinstance(op, ir.Gemm):
            if op.warps is None:
                missing("missing-parameter", "the GEMM does not say how warps split its tile",
                        op.span, "add `with warps (4, 1)` (warps along rows, columns)")
            if op.mma is None:
                missing("missing-parameter", "the GEMM does not name its MMA shape", op.span,
                        f"add {_mma_choices(ctx.arch or kernel.target)} to its `with`")
    return kernel


def _mma_choices(arch: str | None) -> str:
    """The MMA shape to name, from the target's tensor cores (each target's, without one)."""
    if arch in ARCHS:
        return f"`mma {ARCHS[arch].mma_shapes_for(ir.DType.FP16)[0].name}` ({arch})"
    by_shape: dict[str, list[str]] = {}
    for name, facts in ARCHS.items():
        by_shape.setdefault(facts.mma_shapes_for(ir.DType.FP16)[0].name, []).append(name)
    return " or ".join(f"`mma {shape}` ({', '.join(names)})" for shape, names in by_shape.items())


def _header(kernel: ir.Kernel, missing, bad_grid: bool = False) -> None:
    where = NO_SPAN  # line 1: the header is missing, so there is nothing to point at
    if kernel.name is None:
        missing("missing-header", "TL code starts with a `kernel` line", where,
                "add `kernel NAME for sm_80` as the first line (or check it with --sketch)")
    roles = {t.role for t in kernel.tensors if t.shape}
    if "input" not in roles:
        missing("missing-header", "the plan declares no input tensor", where,
                "declare one like `input Q (B, H, Nq, D) fp16`")
    if "output" not in roles:
        missing("missing-header", "the plan declares no output tensor", where,
                "declare one like `output O (B, H, Nq, D) fp16`")
    if kernel.grid is None and not bad_grid:
        missing("missing-header", "the plan declares no launch grid", where,
                "declare one like `grid (cdiv(Nq, BM), H, B) as (m, h, b)`")


def _buffer(buffer: ir.Buffer, missing) -> None:
    if buffer.shape is None:
        missing("missing-parameter", f"the {buffer.level.value} buffer `{buffer.name}` has no "
                "shape", buffer.span, f"give its tile shape: `Allocate {buffer.name} in "
                f"{buffer.level.value} (BM, D)`")
    if buffer.dtype is None:
        missing("missing-parameter", f"the dtype of `{buffer.name}` cannot be inferred",
                buffer.span, "add `with dtype fp16` (or the dtype it holds)")


def _copy(op: ir.Copy, missing) -> None:
    if op.tile is None:
        missing("missing-parameter", f"the Copy of `{op.name}` does not give its tile shape",
                op.span, f"write the transfer size after the name: `Copy {op.name} (BM, D) …`")
    if not op.coord:
        missing("missing-parameter", f"the Copy of `{op.name}` does not say which tile",
                op.span, "add `in coordinate [dim = index, ...]` naming the block's tile, "
                         "e.g. `in coordinate [B = b, H = h, Nq = m]`")
