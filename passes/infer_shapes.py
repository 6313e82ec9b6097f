"""infer_shapes: every tile has a compile-time shape, and the shapes and dtypes that meet in a
Copy, an elementwise Compute or a Reshape agree. (GEMM shapes: gemm_orientation.py.)

Rules: a tile's extents are compile-time integers; a Copy's tile covers the trailing
dimensions of the global tensor and equals the buffer on the other side; the dimensions before
the tile are all named in the coordinate; a tile extent along a compile-time dimension divides
it (one along a runtime size may leave a masked remainder); loads keep their dtype except
bf16 loaded as fp16 (the way a bf16 plan runs on fp16-only tensor cores; a target whose copies
cannot convert says so in passes/features.py), and stores out of registers convert; Softmax,
Mask and Softcap work on fp32 GEMM scores.
"""
from __future__ import annotations

from tlc import ir
from tlc.diagnostics import Diagnostic
from tlc.passes.facts import RESHAPED, Facts, global_load, named, shape_text, text

# (global dtype, local dtype) a load may convert between: bf16 -> fp16 is exact for values of
# magnitude 2^-14 to 65504 (docs/backend.md, "bf16 on Turing").
CONVERTING_LOADS = {(ir.DType.BF16, ir.DType.FP16)}


VERBS = {"Multiply": "multiply by", "Subtract": "subtract"}  # elementwise ops' help texts


def infer_shapes(kernel: ir.Kernel, ctx) -> ir.Kernel:
    """Report tiles without compile-time shapes and shapes or dtypes that do not agree."""
    _Shapes(Facts(kernel), ctx.report).run()
    return kernel


class _Shapes:
    def __init__(self, facts: Facts, report):
        self.facts, self._report = facts, report

    def report(self, code, message, span, help):
        self._report(Diagnostic(code, message, span, help=help))

    def run(self) -> None:
        for buffer in self.facts.kernel.buffers:
            self.buffer(buffer)
        for op, _, held in self.facts.walk_held():
            check = getattr(self, type(op).__name__.lower(), None)
            if check:
                check(op, held)

    def buffer(self, buffer: ir.Buffer) -> None:
        for dim, value in zip(buffer.shape or (), self.facts.shape(buffer)):
            if not isinstance(value, int) or value <= 0:
                why = "is not a positive compile-time integer" if isinstance(value, (
                    int, float)) else "is only known at run time"
                self.report("runtime-tile", f"the {buffer.level.value} tile `{buffer.name}` has "
                            f"a dimension `{text(dim)}` that {why}", dim.span,
                            help="give tiles compile-time shapes: use a param such as `BN`, "
                                 "declared with `param BN = 64`")

    # ---- Copy ----

    def copy(self, op: ir.Copy, held) -> None:
        if ir.Level.GLOBAL in (op.src, op.dst):
            self._global_copy(op)
        else:
            self._local_copy(op, held)

    def _global_copy(self, op: ir.Copy) -> None:
        tensor = self.facts.tensors.get(op.name)
        local = op.dst if op.src is ir.Level.GLOBAL else op.src
        buffer = self.facts.buffers.get((op.name, local))
        if tensor is None or buffer is None or buffer.shape is None:
            return
        if not tensor.shape:
            self.report("shape-mismatch", f"`{op.name}` is a scalar argument, not a tensor to "
                        "copy", op.span, help="use it directly as a Compute operand")
            return
        tile = op.tile or buffer.shape
        if len(tile) > len(tensor.shape):
            self.report("shape-mismatch", f"the tile {shape_text(tile)} has more dimensions than "
                        f"`{op.name}` {shape_text(tensor.shape)}", op.span,
                        help="give one extent per trailing dimension of the tensor")
            return
        tile_values = tuple(self.facts.value(d) for d in tile)
        if tile_values != self.facts.shape(buffer):
            self.report("shape-mismatch", f"the tile {shape_text(tile, tile_values)} does not "
                        f"match the {local.value} buffer `{op.name}` "
                        f"{shape_text(buffer.shape, self.facts.shape(buffer))}", op.span,
                        help=f"make the tile and `Allocate {op.name} in {local.value}` the "
                             "same shape")
        self._tile_extents(op, tensor, tile, tile_values)
        self._coordinate(op, tensor, len(tile))
        if op.src is ir.Level.GLOBAL and buffer.dtype and tensor.dtype and \
                buffer.dtype is not tensor.dtype and \
                (tensor.dtype, buffer.dtype) not in CONVERTING_LOADS:
            self.report("dtype-mismatch", f"a load keeps its dtype: `{op.name}` is "
                        f"{tensor.dtype.value} in global memory and {buffer.dtype.value} in "
                        f"{local.value}", op.span,
                        help=f"allocate `{op.name}` in {local.value} with dtype "
                             f"{tensor.dtype.value}")

    def _tile_extents(self, op, tensor: ir.Tensor, tile, tile_values) -> None:
        covered = tensor.shape[len(tensor.shape) - len(tile):]
        for position, (dim, extent, value) in enumerate(zip(covered, tile, tile_values)):
            size = self.facts.value(dim)
            # A tile may hold a chunk of each row, the coordinate saying which (a head dim
            # split into column chunks): a last chunk past the row's end reads zeros there and
            # writes nothing there.
            if position == len(tile) - 1 and len(tile) > 1 and \
                    text(dim) in {name for name, _ in op.coord}:
                continue
            if isinstance(size, int) and isinstance(value, int) and value > 0 and size % value:
                divisors = [d for d in range(1, size + 1) if size % d == 0 and d <= value]
                self.report("tile-extent", f"the tile extent {named(extent, value)} does not "
                            f"divide {named(dim, size)} of `{op.name}`", extent.span,
                            help=f"use an extent that divides {size}, e.g. {divisors[-1]} or "
                                 f"{size}")

    def _coordinate(self, op: ir.Copy, tensor: ir.Tensor, tile_rank: int) -> None:
        leading = tensor.shape[:len(tensor.shape) - tile_rank]
        named = {dim for dim, _ in op.coord}
        missing = [text(d) for d in leading if text(d) not in named]
        if missing:
            example = ", ".join(f"{d} = …" for d in missing)
            self.report("incomplete-coordinate", f"the tile covers the last {tile_rank} "
                        f"dimensions of `{op.name}` {shape_text(tensor.shape)}; the coordinate "
                        f"does not say which {', '.join(missing)}", op.span,
                        help=f"name them in the coordinate: `[{example}, ...]`, e.g. the "
                             "block's batch and head indices")

    def _local_copy(self, op: ir.Copy, held) -> None:
        src = self.facts.buffers.get((op.name, op.src))
        dst = self.facts.buffers.get((op.name, op.dst))
        if src is None or dst is None or src.shape is None or dst.shape is None:
            return
        if self.facts.shape(src) != self.facts.shape(dst):
            self.report("shape-mismatch", f"`{op.name}` is {shape_text(src.shape)} in "
                        f"{op.src.value} and {shape_text(dst.shape)} in {op.dst.value}", op.span,
                        help="allocate both with the same shape")
        # A register buffer a Reshape converted (P of the backward pass, fp16 after it) takes
        # a load of that dtype back: what it holds now, not what it was allocated as.
        now = held.get(op.name) if op.dst is ir.Level.REGISTER else None
        dst_dtype = now.dtype if now is not None and now.dtype else dst.dtype
        if src.dtype and dst_dtype and src.dtype is not dst_dtype and \
                op.src is not ir.Level.REGISTER:  # a store out of registers converts
            self.report("dtype-mismatch", f"`{op.name}` is {src.dtype.value} in {op.src.value} "
                        f"and {dst_dtype.value} in {op.dst.value}; a Copy between them does not "
                        "convert", op.span, help=f"allocate both as {src.dtype.value}, or "
                                                 "convert in registers with a Reshape")

    # ---- Compute on scores ----

    def _scores(self, op, name: str, what: str, held) -> None:
        now = held.get(name)
        if now is not None and now.layout != "MMA_C":
            self.report("layout-mismatch", f"{what} works on the fp32 scores a GEMM leaves in "
                        f"`{name}`, but `{name}` holds {now.layout} data here", op.span,
                        help="put it after the GEMM that computes the scores and before the "
                             "Reshape")

    def softmax(self, op: ir.Softmax, held) -> None:
        self._scores(op, op.target, "Softmax", held)

    def mask(self, op: ir.Mask, held) -> None:
        self._scores(op, op.target, "Mask", held)

    def softcap(self, op: ir.Softcap, held) -> None:
        self._scores(op, op.target, "Softcap", held)

    def alibi(self, op: ir.Alibi, held) -> None:
        self._scores(op, op.target, "ALiBi", held)
        slopes = self.facts.tensors.get(op.slopes)
        if slopes is not None and len(slopes.shape) != 1:
            self.report("shape-mismatch", f"ALiBi takes one slope per head: `{op.slopes}` has "
                        f"shape {shape_text(slopes.shape)}", op.span,
                        help=f"declare `input {op.slopes} (H) fp32`")
            return
        if slopes is not None and slopes.shape:
            self._slope_head(op, slopes.shape[0])

    def _slope_head(self, op: ir.Alibi, dim: ir.Expr) -> None:
        """The slopes' dimension must be one the query tile's copy picks by coordinate: that
        coordinate is the head whose slope applies."""
        gemm = next((g for g in self.facts.gemms if g.out == op.target), None)
        load = global_load(self.facts.kernel.body, gemm.a.name) if gemm else None
        if load is not None and text(dim) not in {name for name, _ in load.coord}:
            self.report("shape-mismatch", f"ALiBi takes the slope of the query's head, but "
                        f"`{op.slopes}` is indexed by {text(dim)}, which the copy of "
                        f"`{gemm.a.name}` does not name", op.span,
                        help=f"declare `{op.slopes}` with the query tensor's head dimension, "
                             f"e.g. `input {op.slopes} (H) fp32`")

    def exp(self, op: ir.Exp, held) -> None:
        self._scores(op, op.target, "Exp", held)
        scores, rows, out = (self._register(n) for n in (op.target, op.vector, op.out))
        if scores and rows and scores.shape and rows.shape and \
                self.facts.shape(rows) != self.facts.shape(scores)[:1]:
            self.report("shape-mismatch", f"Exp takes one value per row of `{op.target}` "
                        f"{shape_text(scores.shape)}; `{op.vector}` is "
                        f"{shape_text(rows.shape)}", op.span,
                        help=f"allocate `{op.vector}` in register ({text(scores.shape[0])})")
        self._same_shape(op, "Exp", scores, out)

    def rowsum(self, op: ir.Rowsum, held) -> None:
        tile, out = self._register(op.target), self._register(op.out)
        if tile and out and tile.shape and out.shape and \
                self.facts.shape(out) != self.facts.shape(tile)[:1]:
            self.report("shape-mismatch", f"Rowsum gives one value per row of `{op.target}` "
                        f"{shape_text(tile.shape)}; `{op.out}` is {shape_text(out.shape)}",
                        op.span, help=f"allocate `{op.out}` in register "
                                      f"({text(tile.shape[0])})")

    def softcapgrad(self, op: ir.SoftcapGrad, held) -> None:
        self._not_reshaped(op, (op.gradient, op.scores), "SoftcapGrad", held)
        gradient, scores = self._register(op.gradient), self._register(op.scores)
        if gradient and scores and gradient.shape and scores.shape and \
                self.facts.shape(gradient) != self.facts.shape(scores):
            self.report("shape-mismatch", f"SoftcapGrad takes the capped scores of the "
                        f"gradient's shape: `{op.gradient}` is {shape_text(gradient.shape)}, "
                        f"`{op.scores}` {shape_text(scores.shape)}", op.span,
                        help=f"pass the scores `{op.gradient}` is the gradient of")
        self._same_shape(op, "SoftcapGrad", gradient, self._register(op.out))

    def subtract(self, op: ir.Subtract, held) -> None:
        self.multiply(op, held, "Subtract")

    def _same_shape(self, op, what: str, source, out) -> None:
        if source and out and source.shape and out.shape and \
                self.facts.shape(source) != self.facts.shape(out):
            self.report("shape-mismatch", f"{what} gets a {shape_text(source.shape)} result "
                        f"into `{op.out}` {shape_text(out.shape)}", op.span,
                        help=f"allocate `{op.out}` with the shape of `{source.name}`")

    def _not_reshaped(self, op, names, what: str, held) -> None:
        """An elementwise rule that scales, masks or subtracts a row from a tile works on the
        fp32 accumulator a GEMM left; after a Reshape the fp16 fragments are what the register
        model counts, not the accumulator such a rule would keep alive (a plan reshaping P
        before dP's GEMM and reading it in dS = dP * P was estimated at 251 and spilled 32
        bytes for sm_90 when the lowering still read P's accumulator there). A product or
        difference of two tiles into a third reads the fragments instead (multiply)."""
        for name in names:
            now = held.get(name)
            if now is not None and now.layout in RESHAPED:
                self.report("layout-mismatch", f"{what} reads `{name}` as fp32 values, but a "
                            f"Reshape made {now.layout} fragments of it before this line",
                            op.span, help=f"put the Reshape of `{name}` after the last Compute "
                                          f"that reads `{name}`")

    def multiply(self, op, held, what: str = "Multiply") -> None:
        refs = [x.name for x in (op.a, op.b) if isinstance(x, ir.Ref)]
        if len(refs) == 2 and all(self._register(name) for name in refs) and \
                op.out not in refs:
            # tile by tile into a new tile: the lowering reads a reshaped operand's rounded
            # values from its fragments (what the register model counts), so only the
            # result must not be one
            refs = [op.out]
        self._not_reshaped(op, refs, what, held)
        if not isinstance(op.a, ir.Ref):
            return
        a = self._register(op.a.name)
        self._same_shape(op, what, a, self._register(op.out))
        if isinstance(op.b, ir.Ref):
            b = self._register(op.b.name)
            rows = self.facts.shape(a)[:1] if a else ()
            if a and b and self.facts.shape(b) not in (self.facts.shape(a), rows, rows + (1,)):
                self.report("shape-mismatch", f"`{op.b.name}` {shape_text(b.shape)} is neither "
                            f"a scalar, one value per row, nor the shape of `{op.a.name}`",
                            op.span, help=f"{VERBS[what]} a scalar, a per-row vector or a "
                                          "tile of the same shape")

    def _register(self, name: str) -> ir.Buffer | None:
        return self.facts.buffers.get((name, ir.Level.REGISTER))

    # ---- Reshape ----

    def reshape(self, op: ir.Reshape, held) -> None:
        now = held.get(op.name)
        role = op.src[0].name if op.src and isinstance(op.src[0], ir.Sym) else None
        if now is not None and now.layout not in ("data", role):
            self.report("layout-mismatch", f"`{op.name}` holds {now.layout} data here, not "
                        f"{role}", op.span,
                        help=f"write `Reshape {op.name} from ({now.layout}, …) to (…)`")
        buffer = self._register(op.name)
        if buffer is None or buffer.shape is None:
            return
        for dims in (op.src[1:], op.dst[1:]):
            values = tuple(self.facts.value(d) for d in dims)
            if None in values:
                continue  # the paper's symbolic fragment dims (MMA_M, ...) say no more
            if values != self.facts.shape(buffer):
                self.report("shape-mismatch", f"the Reshape names {shape_text(dims, values)} "
                            f"but `{op.name}` is {shape_text(buffer.shape, self.facts.shape(buffer))}",
                            op.span, help=f"a Reshape re-views `{op.name}` without changing "
                                          "its shape: repeat the buffer's dims")
                return
