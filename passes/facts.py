"""Facts the analysis passes share: values of expressions, buffer shapes, the warp layout, and
what each register buffer holds at each point of the program.

Nothing here reports; the passes decide what is wrong. Every helper is cheap enough to be
recomputed by each pass that needs it.
"""
from __future__ import annotations

from dataclasses import dataclass

from tlc import ir
from tlc.fixes import Edit


RESHAPED = ("MMA_A", "MMA_B")  # the layouts a Reshape gives


@dataclass(frozen=True)
class Held:
    """What a register buffer holds at a point: its fragment layout and dtype.

    layout is "MMA_C" for a GEMM accumulator, "MMA_A"/"MMA_B" after a Reshape, and "data" for
    a tile loaded by a Copy (the load lays it out as whichever operand the GEMM needs).
    """

    layout: str
    dtype: ir.DType | None


class Facts:
    """What a kernel's IR says, evaluated; `overrides` gives params other values, to ask what a
    change would do."""

    def __init__(self, kernel: ir.Kernel, overrides: dict[str, int] | None = None):
        self.kernel = kernel
        self.params = {p.name: p for p in kernel.params}
        self.env = {p.name: p.value for p in kernel.params} | (overrides or {})
        self.tensors = {t.name: t for t in kernel.tensors}
        self.buffers = {(b.name, b.level): b for b in kernel.buffers}
        self.gemms = [op for op in ir.walk(kernel.body) if isinstance(op, ir.Gemm)]

    # ---- values ----

    def value(self, expr: ir.Expr | None):
        """The compile-time value of an expression, or None for a runtime one."""
        if expr is None:
            return None
        try:
            return ir.evaluate(expr, self.env)
        except (ir.NotConstant, ZeroDivisionError, ValueError, OverflowError, TypeError):
            return None

    def same_dim(self, x: ir.Expr, y: ir.Expr) -> bool:
        """Whether two dimensions are the same. Two different names are different dimensions
        even when their values agree (`D` and `BN` are both 64 in many plans); otherwise the
        compile-time values decide."""
        if x == y:
            return True
        if isinstance(x, ir.Sym) and isinstance(y, ir.Sym):
            return False
        vx, vy = self.value(x), self.value(y)
        return vx is not None and vx == vy

    def shape(self, buffer: ir.Buffer) -> tuple:
        return tuple(self.value(d) for d in buffer.shape or ())

    def elements(self, buffer: ir.Buffer) -> int | None:
        count = 1
        for extent in self.shape(buffer):
            if not isinstance(extent, int):
                return None
            count *= extent
        return count

    def set_value(self, expr: ir.Expr, value: int) -> Edit | None:
        """The edit that gives an expression a new value: the param it names, or the literal."""
        if isinstance(expr, ir.Sym) and expr.name in self.params:
            return Edit(self.params[expr.name].value_span, str(value))
        if isinstance(expr, ir.Const):
            return Edit(expr.span, str(value))
        return None

    # ---- layout of the block ----

    @property
    def warps(self) -> tuple[int, int] | None:
        """(warps along rows, along columns) of the first GEMM that gives them."""
        for gemm in self.gemms:
            layout = tuple(self.value(w) for w in gemm.warps or ())
            if len(layout) == 2 and all(isinstance(w, int) and w > 0 for w in layout):
                return layout
        return None

    @property
    def threads(self) -> int | None:
        warps = self.warps
        return 32 * warps[0] * warps[1] if warps else None

    def walk_held(self, ops=None, held: dict[str, Held] | None = None, loops: tuple = ()):
        """(op, enclosing loops, what each register buffer holds just before op), in program
        order. A loop's body is walked once; what it leaves behind is what follows it sees."""
        held = {} if held is None else held
        for op in self.kernel.body if ops is None else ops:
            yield op, loops, dict(held)
            if isinstance(op, ir.Loop):
                yield from self.walk_held(op.body, held, loops + (op,))
            else:
                self._update(op, held)

    def _update(self, op, held: dict[str, Held]) -> None:
        if isinstance(op, ir.Copy) and op.dst is ir.Level.REGISTER:
            buffer = self.buffers.get((op.name, ir.Level.REGISTER))
            source = self.buffers.get((op.name, op.src))
            # a Copy does not convert: the registers hold the source's dtype (the checker
            # reports one that differs from what they held)
            dtype = source.dtype if op.src is ir.Level.SHARED and source and source.dtype \
                else buffer.dtype if buffer else None
            held[op.name] = Held("data", dtype)
        elif isinstance(op, ir.Gemm):
            held[op.out] = Held("MMA_C", ir.DType.FP32)
        elif isinstance(op, ir.Reshape) and op.dst:
            role = op.dst[0].name if isinstance(op.dst[0], ir.Sym) else "data"
            before = held.get(op.name)
            held[op.name] = Held(role, op.dtype or (before.dtype if before else None))
        elif isinstance(op, (ir.Multiply, ir.Subtract)) and isinstance(op.a, ir.Ref) and \
                op.a.name in held:
            # the result is written as an fp32 accumulator (a packed operand is read from its
            # fragments: backends/emit/scores.py), laid out as the other, unpacked one
            sources = [held.get(x.name) for x in (op.a, op.b) if isinstance(x, ir.Ref)]
            unpacked = [h for h in sources if h is not None and h.layout not in RESHAPED]
            held[op.out] = unpacked[0] if unpacked else Held("MMA_C", ir.DType.FP32)
        elif isinstance(op, (ir.Alibi, ir.Exp)) and op.target in held:
            held[op.out] = held[op.target]
        elif isinstance(op, ir.SoftcapGrad) and op.gradient in held:
            held[op.out] = held[op.gradient]
        elif isinstance(op, ir.Rowsum):
            held[op.out] = Held("data", ir.DType.FP32)

    def tunable_params(self) -> list[str]:
        """Params a plan may change without changing the problem: those in tile shapes,
        stages and warp layouts, but not in a tensor's shape (a head dimension D)."""
        problem = {n for t in self.tensors.values() for d in t.shape for n in _names(d)}
        used = []
        for op in ir.walk(self.kernel.body):
            exprs = list(op.buffer.shape or ()) if isinstance(op, ir.Allocate) else []
            exprs += [op.stages] if isinstance(op, ir.Copy) and op.stages else []
            exprs += list(op.warps or ()) if isinstance(op, ir.Gemm) else []
            exprs += [op.splits] if isinstance(op, ir.Loop) and op.splits is not None else []
            used += [n for e in exprs for n in _names(e)]
        return [n for n in dict.fromkeys(used) if n in self.params and n not in problem]

    def stages(self, name: str) -> int:
        """How many tiles deep the shared buffer `name` is: the largest `stages` of a Copy into
        it (1 when none says)."""
        depth = 1
        for op in ir.walk(self.kernel.body):
            if isinstance(op, ir.Copy) and op.dst is ir.Level.SHARED and op.name == name:
                value = self.value(op.stages)
                if isinstance(value, int) and value > depth:
                    depth = value
        return depth


@dataclass(frozen=True)
class ColumnChunks:
    """A loop whose variable picks column chunks of tiles: the head dim split."""

    loop_var: str
    chunks: int | None   # iterations, where the params fix them
    width: int | None    # DC: columns a chunk holds
    dim: int | None      # D: columns in all


def column_chunks(facts: "Facts") -> list[ColumnChunks]:
    """The loops whose variable is the coordinate of a tile's last dimension (a Copy of
    (…, DC) columns at [… D = c]): everything inside runs once per column chunk."""
    found = {}
    for loop in ir.walk(facts.kernel.body):
        if not isinstance(loop, ir.Loop):
            continue
        for copy in ir.walk(loop.body):
            tensor = facts.kernel.tensor(copy.name) if isinstance(copy, ir.Copy) else None
            if tensor is None or not tensor.shape or not copy.tile:
                continue
            index = dict(copy.coord).get(text(tensor.shape[-1]))
            if isinstance(index, ir.Sym) and index.name == loop.var:
                stop = facts.value(loop.stop)
                found.setdefault(loop.var, ColumnChunks(
                    loop.var, stop if isinstance(stop, int) else None,
                    facts.value(copy.tile[-1]), facts.value(tensor.shape[-1])))
    return list(found.values())


def global_load(ops, name: str) -> ir.Copy | None:
    """The first Copy of `name` out of global memory among `ops` (nested loops included)."""
    return next((c for c in ir.walk(ops) if isinstance(c, ir.Copy) and c.name == name
                 and c.src is ir.Level.GLOBAL), None)


def tile_origin(tensor: ir.Tensor, coord: dict, tile: tuple, env: dict) -> tuple[int, ...]:
    """The first index, per dimension, of a tile of `tensor` at a coordinate, as the backends
    place it (backends/emit/tiles.py writes the same in C): a leading dimension's coordinate
    as it is; a tiled one's (the last len(tile) dimensions) times the tile's extent, except a
    last dimension the tile spans whole; 0 for a dimension the coordinate does not name."""
    tiled = len(tensor.shape) - len(tile)
    width = ir.evaluate(tensor.shape[-1], env)
    origin = []
    for position, dim in enumerate(tensor.shape):
        index = coord.get(text(dim))
        value = int(ir.evaluate(index, env)) if index is not None else 0
        extent = tile[position - tiled] if position >= tiled else 1
        whole = position == len(tensor.shape) - 1 and extent >= width
        origin.append(value if whole else value * extent)
    return tuple(origin)


def grouped_heads(kernel, sizes: dict[str, int]) -> int | None:
    """Hkv · GROUP, the query heads a plan with both H and Hkv heads and a GROUP param takes
    (docs/language.md §5.3: the caller launches with H = GROUP · Hkv), or None."""
    group = next((p.value for p in kernel.params if p.name == "GROUP"), None)
    if not isinstance(group, int) or "H" not in sizes or "Hkv" not in sizes:
        return None
    return sizes["Hkv"] * group


def updated_tile(op) -> str | None:
    """The tile a Multiply or ALiBi reads and updates (its result may be named otherwise)."""
    if isinstance(op, ir.Alibi):
        return op.target
    if isinstance(op, (ir.Multiply, ir.Subtract)) and isinstance(op.a, ir.Ref):
        return op.a.name
    return None


def text(expr: ir.Expr) -> str:
    """An IR expression as a plan would write it (parenthesised where nested)."""
    if isinstance(expr, ir.Sym):
        return expr.name
    if isinstance(expr, ir.Const):
        return str(expr.value)
    if isinstance(expr, ir.Neg):
        return f"-{text(expr.operand)}"
    if isinstance(expr, ir.Call):
        return f"{expr.func}({', '.join(text(a) for a in expr.args)})"
    if isinstance(expr, ir.Element):
        return f"{expr.tensor}[{', '.join(text(a) for a in expr.args)}]"
    inner = f"{text(expr.left)} {expr.op} {text(expr.right)}"
    return inner if isinstance(expr.left, (ir.Sym, ir.Const)) and isinstance(
        expr.right, (ir.Sym, ir.Const)) else f"({inner})"


def named(expr: ir.Expr, value) -> str:
    """`BM = 96` for a named value, `32` for a literal."""
    written = text(expr)
    return written if written == str(value) else f"{written} = {value}"


def shape_text(dims, values=None) -> str:
    """`(BM, D)`, or `(BM, D) = (128, 64)` when the values add something."""
    written = "(" + ", ".join(text(d) for d in dims) + ")"
    if values is None or all(isinstance(d, ir.Const) for d in dims):
        return written
    shown = "(" + ", ".join("?" if v is None else str(v) for v in values) + ")"
    return written if shown == written else f"{written} = {shown}"


def _names(expr) -> list[str]:
    return [sym.name for sym in ir.symbols(expr)]


def register_reads(op) -> list[str]:
    """The register buffers a statement reads (an accumulating GEMM reads its result too)."""
    if isinstance(op, ir.Gemm):
        return [op.a.name, op.b.name] + ([op.out] if op.accumulate else [])
    if isinstance(op, (ir.Multiply, ir.Subtract)):
        return [r.name for r in (op.a, op.b) if isinstance(r, ir.Ref)]
    if isinstance(op, (ir.Softmax, ir.Mask, ir.Softcap, ir.Alibi, ir.Rowsum)):
        return [op.target]
    if isinstance(op, ir.Exp):
        return [op.target, op.vector]
    if isinstance(op, ir.SoftcapGrad):
        return [op.gradient, op.scores]
    if isinstance(op, ir.Logsumexp):
        return []  # it reads the softmax's row statistics, not the scores' (reshaped) data
    if isinstance(op, ir.Reshape):
        return [op.name]
    if isinstance(op, ir.Copy) and op.src is ir.Level.REGISTER:
        return [op.name]
    return []


def register_writes(op) -> list[str]:
    """The register buffers a Compute writes."""
    if isinstance(op, (ir.Gemm, ir.Multiply, ir.Alibi, ir.Logsumexp, ir.Exp, ir.Subtract,
                       ir.SoftcapGrad, ir.Rowsum)):
        return [op.out]
    return []
