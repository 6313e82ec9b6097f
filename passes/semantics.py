"""semantics: the plan computes the attention it states, not only something that builds.

- Every shared buffer is written before it is read (`unwritten-read`): a shared tile stored to
  global memory, or copied into registers, that no Copy filled. (Registers read before they
  are filled are check_levels' `operand-level`.)
- Every element of every output is written exactly once over the whole grid and the loops
  around its store (`output-coverage`). The check is concrete, as mask_coverage's is: for a
  family of run-time sizes around the tiles (one short of a tile, one past it, several tiles),
  every block of the grid and every iteration of the loops around the store mark the tile it
  writes, and the first element written never, twice, or outside the tensor is reported with
  the sizes that show it.
- A coordinate that is a bare grid index stays inside its dimension (`out-of-bounds`): the
  index runs over its grid extent, so it may address a dimension of that same size, not
  another one (`Hkv = h` with a grid over H reads K and V past Hkv heads; `Hkv = h / GROUP`
  is the GQA mapping, and the call checks H = Hkv · GROUP).
- A Softcap's cap is positive (`bad-clause`): tanh(s / cap) with cap <= 0 is not a cap, and a
  cap of 0 turns a score of exactly 0 into NaN.
"""
from __future__ import annotations

import itertools
import math

from tlc import ir
from tlc.diagnostics import Diagnostic
from tlc.passes.facts import Facts, grouped_heads, text, tile_origin


def semantics(kernel: ir.Kernel, ctx) -> ir.Kernel:
    """Report unwritten reads, outputs not covered exactly once and caps that are not caps."""
    facts = Facts(kernel)
    _caps(facts, ctx)
    _grid_coordinates(facts, ctx)
    _written_before_read(facts, ctx)
    _added_stores(facts, ctx)
    _outputs_written_once(facts, ctx)
    _loaded_chunks_within_rows(facts, ctx)
    return kernel


def _caps(facts: Facts, ctx) -> None:
    for op in ir.walk(facts.kernel.body):
        if isinstance(op, (ir.Softcap, ir.SoftcapGrad)) and op.cap is not None:
            cap = facts.value(op.cap)
            if isinstance(cap, (int, float)) and cap <= 0:
                ctx.report(Diagnostic(
                    "bad-clause", f"`cap {text(op.cap)}` = {cap}: a softcap's cap must be "
                    "positive (cap · tanh(s / cap) bounds the scores by it)", op.span,
                    help="give the cap the model uses, e.g. `with cap 30.0` (Gemma 2: 50.0)"))


def _grid_coordinates(facts: Facts, ctx) -> None:
    grid = facts.kernel.grid
    if grid is None:
        return
    extent_of = dict(zip(grid.indices, grid.extents))
    for op in ir.walk(facts.kernel.body):
        tensor = facts.kernel.tensor(op.name) if isinstance(op, ir.Copy) else None
        if tensor is None or ir.Level.GLOBAL not in (op.src, op.dst):
            continue
        dims = {text(d): d for d in tensor.shape}
        for name, index in op.coord:
            extent = extent_of.get(index.name) if isinstance(index, ir.Sym) else None
            dim = dims.get(name)
            if not (isinstance(extent, ir.Sym) and isinstance(dim, ir.Sym)) or \
                    extent.name == dim.name or dim.kind is not ir.SymKind.SIZE:
                continue
            group = next((p for p in facts.kernel.params if p.name == "GROUP"), None)
            fix = f"`{name} = {index.name} / {group.name}`" if group else \
                f"a coordinate that maps {extent.name} onto {name}"
            ctx.report(Diagnostic(
                "out-of-bounds", f"`{name} = {index.name}`: the grid runs {index.name} over "
                f"0..{extent.name}-1, and `{op.name}`'s dimension is {name}, another size: "
                f"the Copy would read past {name} whenever {extent.name} > {name}", op.span,
                help=f"write {fix} (the K/V head of query head {index.name}); the call then "
                     f"checks {extent.name} = {name} · GROUP" if group else f"write {fix}"))


# ---- every buffer written before it is read ----

def _reads(op) -> list[tuple[str, ir.Level]]:
    """The shared buffers a statement reads, and the register buffer a Copy stores."""
    if isinstance(op, ir.Copy) and op.src in (ir.Level.SHARED, ir.Level.REGISTER):
        return [(op.name, op.src)]
    return []


def _writes(op) -> list[tuple[str, ir.Level]]:
    if isinstance(op, ir.Copy):
        return [(op.name, op.dst)]
    if isinstance(op, (ir.Gemm, ir.Multiply, ir.Alibi, ir.Logsumexp, ir.Exp, ir.Subtract,
                       ir.SoftcapGrad, ir.Rowsum)):
        return [(op.out, ir.Level.REGISTER)]
    if isinstance(op, ir.Reshape):
        return [(op.name, ir.Level.REGISTER)]
    return []


def _written_before_read(facts: Facts, ctx) -> None:
    """A buffer written only inside a loop that may run no iteration (causal rows that see
    no key: `cdiv(min(Nk, (m + 1) * BM + Nk - Nq), BN)` is 0 for them) is not written for
    the statements after that loop."""
    always = {(g.out, ir.Level.REGISTER) for g in facts.gemms}  # accumulators start at 0
    writes: dict[tuple, list[tuple]] = {}  # buffer -> the loops around each of its writes
    reported = set()
    for op, loops, _ in facts.walk_held():
        if isinstance(op, ir.Loop):
            continue
        for name, level in _reads(op):
            key = (name, level)
            if key in always or key in reported:
                continue
            skipped = [_skippable(around, loops) for around in writes.get(key, [])]
            if skipped and not all(skipped):
                continue
            reported.add(key)
            if skipped:
                loop = skipped[0]
                ctx.report(Diagnostic(
                    "unwritten-read", f"`{name}` is read from {level.value} memory here, but "
                    f"only the loop over {loop.var} (line {loop.span.line}) writes it there, "
                    "and that loop may run no iteration (for a causal row that sees no key, or a "
                    "sequence of no keys): the kernel would then read whatever the memory held",
                    op.span,
                    help=f"move the statement that writes `{name}` after the loop"))
                continue
            elsewhere = [lv for (n, lv) in list(writes) + list(always) if n == name]
            help = (f"add `Copy {name} from {elsewhere[0].value} to {level.value}` before it"
                    if elsewhere else f"write `{name}` into {level.value} before it is read")
            ctx.report(Diagnostic(
                "unwritten-read", f"`{name}` is read from {level.value} memory here, but no "
                "statement before writes it there: the kernel would read whatever the memory "
                "held", op.span, help=help))
        for key in _writes(op):
            writes.setdefault(key, []).append(loops)


def _skippable(around: tuple, here: tuple):
    """The first loop around a write, and not around the read `here`, that may run no
    iteration; None when every such loop runs at least once."""
    return next((loop for loop in around if loop not in here and not _runs_once(loop)), None)


def _runs_once(loop: ir.Loop) -> bool:
    """Whether the loop surely runs an iteration: from 0 to a positive constant, a size, or
    the tiles of a size (`cdiv(Nk, BN)`); a bound that mixes in block indices (a causal
    bound) or per-sequence lengths may be 0."""
    stop = loop.stop
    if isinstance(stop, ir.Call) and stop.func == "cdiv" and stop.args:
        stop = stop.args[0]
    starts_at_0 = isinstance(loop.start, ir.Const) and loop.start.value == 0
    positive = (isinstance(stop, ir.Const) and stop.value > 0) or \
        (isinstance(stop, ir.Sym) and stop.kind in (ir.SymKind.SIZE, ir.SymKind.PARAM))
    return starts_at_0 and positive


# ---- stores that add ----

def _added_stores(facts: Facts, ctx) -> None:
    """`with add` adds a register tile into a zeroed fp32 output (a reduction across blocks,
    as dQ is in the backward pass): only from registers to global memory, only into fp32,
    and every store of that output adds, else one block's store races with another's adds."""
    added = {op.name for op in ir.walk(facts.kernel.body) if isinstance(op, ir.Copy) and op.add}
    for op in ir.walk(facts.kernel.body):
        if not isinstance(op, ir.Copy):
            continue
        tensor = facts.tensors.get(op.name)
        if op.add and (op.src, op.dst) != (ir.Level.REGISTER, ir.Level.GLOBAL):
            ctx.report(Diagnostic(
                "bad-clause", f"`with add` adds a register tile into global memory; this Copy "
                f"goes from {op.src.value} to {op.dst.value}", op.span,
                help="drop `with add`, or add from registers: `Copy dQ (BM, D) in coordinate "
                     "[...] from register to global with add`"))
        elif op.add and tensor is not None and tensor.dtype is not ir.DType.FP32:
            ctx.report(Diagnostic(
                "dtype-mismatch", f"`with add` adds into fp32; `{op.name}` is "
                f"{tensor.dtype.value}", op.span,
                help=f"declare `output {op.name} (...) fp32` (and convert it after the kernel)"))
        elif op.name in added and not op.add and op.dst is ir.Level.GLOBAL:
            ctx.report(Diagnostic(
                "output-race", f"this store overwrites `{op.name}`, which other stores add "
                "into: which value is left depends on the order the blocks run in", op.span,
                help="add every store of it (`with add`), or store it from one block only"))


# ---- every output element written exactly once ----

def _outputs_written_once(facts: Facts, ctx) -> None:
    kernel = facts.kernel
    if kernel.grid is None or any(d.code == "grid-coverage" for d in ctx.diagnostics):
        return  # a grid that rounds down is tiling's to report, with its cdiv fix
    for tensor in (t for t in kernel.tensors if t.role == "output" and t.shape):
        stores = [(op, loops) for op, loops, _ in facts.walk_held()
                  if isinstance(op, ir.Copy) and op.dst is ir.Level.GLOBAL and op.name == tensor.name]
        if not stores:
            ctx.report(Diagnostic(
                "output-coverage", f"the output `{tensor.name}` is never stored: no Copy writes "
                "it to global memory", kernel.grid.span,
                help=f"end the plan with `Copy {tensor.name} (...) in coordinate [...] from "
                     "register to global` (or from shared, after staging it there)"))
            continue
        if any(op.start is not None for op, _ in stores):
            # rows placed by `start` (a packed batch's sequences): which rows each block
            # writes is the call's tables', which the call checks (tlc.torch)
            continue
        problem = _coverage_problem(facts, tensor, stores)
        if problem:
            op, message, help = problem
            ctx.report(Diagnostic("output-coverage", message, op.span, help=help))


def _size_family(facts: Facts, tensor: ir.Tensor, stores) -> list[dict[str, int]]:
    """Run-time sizes to try: around each tile extent the stores use along a size."""
    choices: dict[str, set[int]] = {}
    for op, _ in stores:
        tile = _tile(facts, op)
        for dim, extent in zip(tensor.shape[-len(tile):] if tile else (), tile or ()):
            if isinstance(dim, ir.Sym) and dim.kind is ir.SymKind.SIZE and isinstance(extent, int):
                choices.setdefault(dim.name, set()).update(
                    v for v in (1, extent - 1, extent + 1, 2 * extent + 3) if v > 0)
    # Only the sizes the coverage can depend on vary: those in the tensor's shape, the grid,
    # the stores' coordinates and the bounds of their loops; any other is held at 1, so
    # every combination of the ones that matter is tried within the budget.
    exprs = list(tensor.shape) + list(facts.kernel.grid.extents)
    for op, loops in stores:
        exprs += [e for _, e in op.coord] + [e for loop in loops for e in (loop.start,
                                                                            loop.stop)]
    relevant = {s.name for e in exprs for s in ir.symbols(e)}
    # A size divided into blocks (`cdiv(Nk, BN)` in the grid or a loop bound) tries more than
    # one block: blocks that write the same elements meet only then (a backward pass's dQ).
    for expr in exprs:
        for size, extent in _blocked_sizes(expr, facts.env):
            choices.setdefault(size, set()).update(
                v for v in (1, extent - 1, extent + 1, 2 * extent + 3) if v > 0)
    for name in facts.kernel.size_names:
        choices.setdefault(name, {1, 2} if name in relevant else {1})
    keys = sorted(choices)
    family = []
    for values in itertools.product(*(sorted(choices[k]) for k in keys)):
        sizes = dict(zip(keys, values))
        heads = grouped_heads(facts.kernel, sizes)
        if heads is not None:  # the call checks H = Hkv · GROUP (runtime.index_problem)
            sizes["H"] = heads
        if sizes not in family:
            family.append(sizes)
    return family[:48]


def _blocked_sizes(expr, env: dict):
    """(size, block extent) of each `cdiv(size, extent)` inside expr, the extent a constant."""
    if isinstance(expr, ir.Call) and expr.func == "cdiv" and len(expr.args) == 2 and \
            isinstance(expr.args[0], ir.Sym) and expr.args[0].kind is ir.SymKind.SIZE:
        try:
            extent = ir.evaluate(expr.args[1], env)
        except (ir.NotConstant, ArithmeticError, ValueError, KeyError):
            extent = None
        if isinstance(extent, int) and extent > 0:
            yield expr.args[0].name, extent
    for child in ir.children(expr):
        yield from _blocked_sizes(child, env)


def _tile(facts: Facts, op: ir.Copy) -> tuple | None:
    tile = op.tile
    if tile is None:
        buffer = facts.buffers.get((op.name, op.src))
        tile = buffer.shape if buffer else None
    values = tuple(facts.value(d) for d in tile or ())
    return values if values and all(isinstance(v, int) and v > 0 for v in values) else None


def _coverage_problem(facts: Facts, tensor: ir.Tensor, stores):
    for sizes in _size_family(facts, tensor, stores):
        env = dict(facts.env) | sizes
        shape = [ir.evaluate(d, env) for d in tensor.shape]
        if not all(isinstance(s, int) and 0 < s <= 4096 for s in shape) or \
                math.prod(shape) > 1 << 22:
            continue
        counts = _Counts(shape)
        for op, loops in stores:
            tile = _tile(facts, op)
            if tile is None or len(tile) > len(shape):
                return None  # a store this check cannot place: nothing claimed
            for where, values in _iterations(facts.kernel, loops, env):
                region = _region(tensor, op, tile, shape, values)
                if region == ():
                    continue  # a tile past the end of a sequence: masked, nothing written
                if region is None:
                    return (op, f"with {_shown(sizes)}, the store of `{tensor.name}` at "
                            f"{_shown(where)} writes outside the tensor",
                            "keep each coordinate of the store within its dimension")
                counts.add(region)
        # stores that add (a reduction into a zeroed output) may meet; none may be missing
        # (a store that overwrites among adds is output-race's), but for the rows the plan's
        # Mask leaves without a key: their gradient is the zero the output starts at, and a
        # causal plan skips them
        adds = any(op.add for op, _ in stores)
        if adds:
            for rows in _keyless_rows(facts, tensor, env, shape):
                counts.add(tuple(slice(0, n) for n in shape[:-2]) + (rows, slice(0, shape[-1])))
        for value, what in ((0, "never written"), (2, "written more than once"))[:2 - adds]:
            first, total = counts.never() if value == 0 else counts.twice()
            if total:
                element = ", ".join(f"{text(d)} = {i}" for d, i in zip(tensor.shape, first))
                op = stores[0][0]
                return (op, f"with {_shown(sizes)}, the element [{element}] of `{tensor.name}` "
                        f"is {what} ({total} elements so)",
                        _coverage_help(facts, tensor, stores, value))
    return None


def _keyless_rows(facts: Facts, tensor: ir.Tensor, env: dict, shape) -> list[range]:
    """The rows (along the second-to-last dimension of `tensor`, a query length) that the
    plan's Mask leaves without any key, as ranges, at these sizes: below the causal diagonal's
    start, or outside every row's window."""
    masks = [op for op in ir.walk(facts.kernel.body) if isinstance(op, ir.Mask)]
    gemm = next((g for g in facts.gemms if masks and g.out == masks[0].target), None)
    query, key = (facts.tensors.get(n) for n in (gemm.a.name, gemm.b.name)) if gemm else \
        (None, None)
    if len(tensor.shape) < 2 or query is None or key is None or len(query.shape) < 2 or \
            len(key.shape) < 2 or text(tensor.shape[-2]) != text(query.shape[-2]):
        return []
    try:
        nq, nk = (ir.evaluate(t.shape[-2], env) for t in (query, key))
        right = ir.evaluate(masks[0].window[1], env) if masks[0].window else None
    except (ir.NotConstant, ArithmeticError, ValueError, KeyError):
        return []
    if masks[0].causal:
        right = 0 if right is None else min(right, 0)
    if right is None:
        return []
    # row r sees keys up to its diagonal r + nk - nq plus `right`: none while that is below 0
    # (a window's left edge leaves every row its diagonal key)
    first = min(max(0, nq - nk - right), shape[-2])
    return [slice(0, first)] if first else []


class _Counts:
    """Which elements of a tensor the stores write once and more than once: a pair of bit
    sets over the last dimension for each index of the others (no NumPy, so that checking
    a plan does not pay for importing it)."""

    def __init__(self, shape):
        self.shape = shape
        self.once: dict[tuple, int] = {}
        self.more: dict[tuple, int] = {}

    def add(self, region) -> None:
        *leading, columns = region
        mask = ((1 << (columns.stop - columns.start)) - 1) << columns.start
        for row in itertools.product(*(range(s.start, s.stop) for s in leading)):
            once = self.once.get(row, 0)
            if once & mask:
                self.more[row] = self.more.get(row, 0) | (once & mask)
            self.once[row] = once | mask

    def never(self) -> tuple[tuple, int]:
        """(the first element never written, in row-major order, or (), how many are)."""
        full, first, total = (1 << self.shape[-1]) - 1, (), 0
        for row in itertools.product(*(range(n) for n in self.shape[:-1])):
            missing = full & ~self.once.get(row, 0)
            if missing:
                total += bin(missing).count("1")
                first = first or row + ((missing & -missing).bit_length() - 1,)
        return first, total

    def twice(self) -> tuple[tuple, int]:
        """(the first element written more than once, or (), how many are)."""
        first, total = (), 0
        for row in sorted(self.more):
            bits = self.more[row]
            total += bin(bits).count("1")
            first = first or row + ((bits & -bits).bit_length() - 1,)
        return first, total


def _loaded_chunks_within_rows(facts: Facts, ctx) -> None:
    """A load of a column chunk (a tile narrower than its tensor's rows) starts inside the
    row: the kernels mask rows past the end of a sequence, not columns past the end of a row,
    so a chunk that starts there reads whatever memory follows (`out-of-bounds`)."""
    kernel = facts.kernel
    if kernel.grid is None:
        return
    env = dict(facts.env) | {name: 1 for name in kernel.size_names}
    for op, loops, _ in facts.walk_held():
        if not isinstance(op, ir.Copy) or op.src is not ir.Level.GLOBAL:
            continue
        tensor, tile = kernel.tensor(op.name), _tile(facts, op)
        width = facts.value(tensor.shape[-1]) if tensor and tensor.shape else None
        if tile is None or len(tile) < 2 or not isinstance(width, int) or tile[-1] >= width:
            continue
        try:
            for where, values in _iterations(kernel, loops, env):
                first = tile_origin(tensor, dict(op.coord), tile, values)[-1]
                if not 0 <= first < width:
                    ctx.report(Diagnostic(
                        "out-of-bounds", f"at {_shown(where)}, the copy of `{op.name}` starts "
                        f"its {tile[-1]}-column chunk at column {first} of rows {width} wide: "
                        "nothing masks columns past a row's end", op.span,
                        help=f"keep the chunk loop within cdiv({text(tensor.shape[-1])}, "
                             f"{tile[-1]}) and the chunk coordinate equal to its variable"))
                    break
        except (ir.NotConstant, ArithmeticError, ValueError, TypeError):
            continue  # a bound this check cannot evaluate: nothing claimed


def _coverage_help(facts: Facts, tensor, stores, value: int) -> str:
    if value:
        return (f"store `{tensor.name}` once per block, after the key loop, outside any loop "
                "but the column chunks'; a sum over blocks (the backward pass's dQ) adds "
                "each store into an fp32 output: `with add`")
    return (f"make the grid and the loops around the store cover every element of "
            f"`{tensor.name}` once: a grid extent or loop bound that tiles a size needs "
            f"`cdiv(size, tile)` (not `size / tile`), and a chunk loop runs cdiv(D, DC) times")


def _iterations(kernel: ir.Kernel, loops, env: dict):
    """(the grid indices and loop variables, the whole environment) of every point at which a
    statement inside `loops` runs."""
    extents = [ir.evaluate(e, env) for e in kernel.grid.extents]
    for block in itertools.product(*(range(max(0, int(e))) for e in extents)):
        where = dict(zip(kernel.grid.indices, block))
        yield from _loop_values(loops, where, dict(env) | where)


def _loop_values(loops, where: dict, env: dict):
    if not loops:
        yield where, env
        return
    loop = loops[0]
    for value in range(int(ir.evaluate(loop.start, env)), int(ir.evaluate(loop.stop, env))):
        yield from _loop_values(loops[1:], where | {loop.var: value}, env | {loop.var: value})


def _region(tensor: ir.Tensor, op: ir.Copy, tile, shape, env):
    """The slices of the tensor a store's tile covers, as the backends place it: the last
    dims tiled by the tile's extents, the others indexed by their coordinate (None when it
    falls outside the tensor). The kernels mask rows past the end of the sequence (the first
    tiled dim), so such a tile writes nothing: (); a column chunk past the end of a row is
    outside the tensor (where D is a multiple of the chunk, nothing masks it)."""
    region = []
    tiled = len(shape) - len(tile)
    for position, first in enumerate(tile_origin(tensor, dict(op.coord), tile, env)):
        if position < tiled:
            if not 0 <= first < shape[position]:
                return None
            region.append(slice(first, first + 1))
            continue
        if first < 0:
            return None
        if first >= shape[position]:
            return () if position == tiled else None
        region.append(slice(first, min(first + tile[position - tiled], shape[position])))
    return tuple(region)


def _shown(values: dict) -> str:
    return ", ".join(f"{k} = {v}" for k, v in values.items())
