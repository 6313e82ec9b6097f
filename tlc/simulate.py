"""`tlc sim`: run a plan's statements with NumPy on the CPU, as the plan states them, and judge
the result as `tlc run` does (the float64 reference and the peers' tolerance rule).

Every block of the grid runs the plan's statements in order: copies move tiles between the
levels (a tile past the end of a sequence reads zeros and writes nothing, as the kernels do;
any other coordinate outside its tensor is an error at that statement), GEMMs multiply in fp32,
Reshape rounds to its dtype, and a Softmax in a key loop is the online softmax the backends
emit: running row maximum and sum, the output rescaled when the maximum grows, the division by
the row sum when the output leaves registers. Shared and register tiles start as NaN, so a
tile read before anything writes it shows in the output; accumulators start at zero. A loop
nested in a loop restarts the accumulators it adds into, as the backends do.

It is meant for small sizes (seconds): it checks the plan's logic, not the generated code.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from tlc import ir
from tlc.passes.check_levels import reads_from_shared
from tlc.passes.facts import Facts, global_load, tile_origin
from tlc.reference import from_storage, to_dtype, to_storage


class NotSimulated(Exception):
    """A plan whose inputs the simulator cannot make up (it says which and why)."""


class SimulationError(Exception):
    """A statement that cannot run: `statement` is the IR node (with its span)."""

    def __init__(self, statement, message: str):
        super().__init__(message)
        self.statement = statement


@dataclass
class _Block:
    env: dict
    shared: dict
    regs: dict
    state: dict   # scores -> (row max, row sum) of their online softmax


class Simulator:
    """The plan, callable like a LoadedKernel: inputs in storage form, outputs returned so."""

    def __init__(self, kernel: ir.Kernel):
        from tlc.backends.schedule import softmax_outputs

        self.kernel, self.facts = kernel, Facts(kernel)
        self.accumulators = {}
        for op in ir.walk(kernel.body):
            if isinstance(op, ir.Gemm):
                self.accumulators.setdefault(op.out, op)
        self.softmax = softmax_outputs(kernel, self.accumulators)
        self.global_load = lambda name: global_load(kernel.body, name)
        self.how = "simulated on the CPU with NumPy (tlc sim)"

    def __call__(self, **arrays):
        kernel = self.kernel
        sizes = _sizes(kernel, arrays)
        self.inputs = {t.name: _input(arrays[t.name], t) for t in kernel.tensors
                       if t.role == "input"}
        # poisoned, except where stores add into them: those start at zero, as the call
        # zeroes them
        added = {op.name for op in ir.walk(kernel.body) if isinstance(op, ir.Copy) and op.add}
        self.outputs = {t.name: np.full(self._shape(t, sizes), 0.0 if t.name in added else np.nan)
                        for t in kernel.tensors if t.role == "output"}
        # int32 tables in the environment: `lengths[b]` evaluates against them
        tables = {t.name: self.inputs[t.name] for t in kernel.tensors
                  if t.dtype is ir.DType.INT32 and t.shape}
        env0 = dict(self.facts.env) | sizes | tables
        extents = [int(ir.evaluate(e, env0)) for e in kernel.grid.extents]
        for block in itertools.product(*(range(max(0, e)) for e in extents)):
            env = env0 | dict(zip(kernel.grid.indices, block))
            self._run(kernel.body, _Block(env, {}, self._fresh_registers(), {}), ())
        return {name: to_storage(values, kernel.tensor(name).dtype.value)
                for name, values in self.outputs.items()}

    def _shape(self, tensor, sizes) -> tuple[int, ...]:
        env = dict(self.facts.env) | sizes
        return tuple(int(ir.evaluate(d, env)) for d in tensor.shape)

    def _fresh_registers(self) -> dict:
        regs = {}
        for buffer in self.kernel.buffers:
            if buffer.level is ir.Level.REGISTER:
                shape = self.facts.shape(buffer)
                fill = 0.0 if buffer.name in self.accumulators else np.nan
                regs[buffer.name] = np.full(shape, fill, dtype=np.float32)
        return regs

    # ---- statements ----

    def _run(self, ops, block: _Block, loops) -> None:
        for op in ops:
            if isinstance(op, ir.Loop):
                self._loop(op, block, loops)
            elif not isinstance(op, ir.Allocate):
                getattr(self, f"_{type(op).__name__.lower()}")(op, block)

    def _loop(self, loop: ir.Loop, block: _Block, loops) -> None:
        if loops:  # a nested loop restarts what it accumulates, as the backends do
            for gemm in loop.body:
                if isinstance(gemm, ir.Gemm) and gemm.accumulate:
                    block.regs[gemm.out] = np.zeros_like(block.regs[gemm.out])
                    block.state.pop(gemm.a.name, None)
        start, stop = (int(ir.evaluate(e, block.env)) for e in (loop.start, loop.stop))
        saved = block.env.get(loop.var)
        for value in range(start, stop):
            block.env[loop.var] = value
            self._run(loop.body, block, loops + (loop,))
        block.env.pop(loop.var, None) if saved is None else block.env.update({loop.var: saved})

    def _copy(self, op: ir.Copy, block: _Block) -> None:
        levels = (op.src, op.dst)
        if levels == (ir.Level.GLOBAL, ir.Level.SHARED):
            buffer = self.facts.buffers[(op.name, ir.Level.SHARED)]
            tile = self._load(op, block, self.facts.shape(buffer))
            block.shared[op.name] = to_dtype(tile, buffer.dtype.value)
        elif levels == (ir.Level.GLOBAL, ir.Level.REGISTER):
            buffer = self.facts.buffers[(op.name, ir.Level.REGISTER)]
            shape = self.facts.shape(buffer)
            values = self._load_rows(op, block, shape[0]) if len(shape) == 1 else \
                self._load(op, block, shape)
            block.regs[op.name] = to_dtype(values, buffer.dtype.value)
        elif levels == (ir.Level.SHARED, ir.Level.REGISTER):
            block.regs[op.name] = self._shared(op.name, block).copy()
        elif levels == (ir.Level.REGISTER, ir.Level.SHARED):
            buffer = self.facts.buffers[(op.name, ir.Level.SHARED)]
            block.shared[op.name] = to_dtype(self._normalised(op.name, block), buffer.dtype.value)
        elif levels == (ir.Level.REGISTER, ir.Level.GLOBAL) and block.regs[op.name].ndim == 1:
            self._store_rows(op, block, block.regs[op.name])
        elif levels == (ir.Level.REGISTER, ir.Level.GLOBAL):
            self._store(op, block, self._normalised(op.name, block))
        elif levels == (ir.Level.SHARED, ir.Level.GLOBAL):
            self._store(op, block, self._shared(op.name, block))
        else:
            raise SimulationError(op, f"Copy from {op.src.value} to {op.dst.value}")

    def _shared(self, name: str, block: _Block) -> np.ndarray:
        if name in block.shared:
            return block.shared[name]
        buffer = self.facts.buffers.get((name, ir.Level.SHARED))
        return np.full(self.facts.shape(buffer) if buffer else (1, 1), np.nan, np.float32)

    def _gemm(self, op: ir.Gemm, block: _Block) -> None:
        a, b = (self._gemm_operand(op, name, block).astype(np.float64)
                for name in (op.a.name, op.b.name))
        product = (a.T if op.a.transposed else a) @ (b.T if op.b.transposed else b)
        if op.accumulate:
            product = product + block.regs[op.out]
        block.regs[op.out] = product.astype(np.float32)

    def _gemm_operand(self, op: ir.Gemm, name: str, block: _Block) -> np.ndarray:
        """An operand from registers, or from its shared buffer where the GEMM reads it
        there (a warpgroup MMA: passes/check_levels.reads_from_shared)."""
        if reads_from_shared(self.facts, op, name):
            return self._shared(name, block)
        return block.regs[name]

    def _multiply(self, op: ir.Multiply, block: _Block) -> None:
        block.regs[op.out] = (block.regs[op.a.name] * self._operand(op.b, block)
                              ).astype(np.float32)

    def _subtract(self, op: ir.Subtract, block: _Block) -> None:
        block.regs[op.out] = (block.regs[op.a.name] - self._operand(op.b, block)
                              ).astype(np.float32)

    def _operand(self, value, block: _Block):
        """The second operand of an elementwise Compute: a register tile of the first's shape,
        a per-row vector (broadcast along the rows), a scalar input or an expression."""
        if isinstance(value, ir.Ref) and value.name in block.regs:
            values = block.regs[value.name]
            return values[:, None] if values.ndim == 1 else values
        if isinstance(value, ir.Ref):
            return np.float32(self.inputs[value.name])
        return np.float32(ir.evaluate(value, block.env))

    def _exp(self, op: ir.Exp, block: _Block) -> None:
        """exp(S - L[row]); 0 for a hidden score, a key past the end, or a row whose L is
        -inf (it saw no key in the forward)."""
        scores, rows = block.regs[op.target].astype(np.float64), block.regs[op.vector]
        _, keys, _ = self._positions(op.target, block)
        hidden = ~np.isfinite(scores) | (keys >= self._limit(op.target, 1, block)) | \
            ~np.isfinite(rows)[:, None]
        with np.errstate(invalid="ignore", over="ignore"):
            block.regs[op.out] = np.where(hidden, 0.0, np.exp(scores - rows[:, None])
                                          ).astype(np.float32)

    def _softcapgrad(self, op: ir.SoftcapGrad, block: _Block) -> None:
        cap = np.float64(ir.evaluate(op.cap, block.env))
        scores = block.regs[op.scores].astype(np.float64)
        with np.errstate(invalid="ignore"):
            slope = np.where(np.isfinite(scores), 1.0 - (scores / cap) ** 2, 0.0)
        block.regs[op.out] = (block.regs[op.gradient] * slope).astype(np.float32)

    def _rowsum(self, op: ir.Rowsum, block: _Block) -> None:
        block.regs[op.out] = block.regs[op.target].astype(np.float64).sum(axis=1).astype(
            np.float32)

    def _mask(self, op: ir.Mask, block: _Block) -> None:
        rows, keys, diagonal = self._positions(op.target, block)
        hidden = np.zeros(diagonal.shape, dtype=bool)
        if op.causal:
            hidden |= keys > diagonal
        if op.window is not None:
            left, right = (ir.evaluate(w, block.env) for w in op.window)
            hidden |= (keys < diagonal - left) | (keys > diagonal + right)
        block.regs[op.target] = np.where(hidden, -np.inf, block.regs[op.target])

    def _softcap(self, op: ir.Softcap, block: _Block) -> None:
        cap = np.float32(ir.evaluate(op.cap, block.env))
        block.regs[op.target] = (cap * np.tanh(block.regs[op.target] / cap)).astype(np.float32)

    def _alibi(self, op: ir.Alibi, block: _Block) -> None:
        rows, keys, diagonal = self._positions(op.target, block)
        query = self.global_load(self.accumulators[op.target].a.name)
        dim = self.kernel.tensor(op.slopes).shape[0]
        head = int(ir.evaluate(dict(query.coord)[dim.name], block.env))
        slope = np.float32(self.inputs[op.slopes][head])
        block.regs[op.out] = (block.regs[op.target] - slope * np.abs(diagonal - keys)
                              ).astype(np.float32)

    def _softmax(self, op: ir.Softmax, block: _Block) -> None:
        scores = block.regs[op.target]
        _, keys, _ = self._positions(op.target, block)
        scores = np.where(keys >= self._limit(op.target, 1, block), -np.inf, scores)  # past end
        top, total = block.state.get(op.target, (np.full(scores.shape[0], -np.inf),
                                                 np.zeros(scores.shape[0])))
        new = np.maximum(top, scores.max(axis=1))
        base = np.where(np.isfinite(new), new, 0.0)
        with np.errstate(invalid="ignore", over="ignore"):
            alpha = np.where(top == new, 1.0, np.exp(top - base))
        probabilities = np.exp(scores - base[:, None])
        block.state[op.target] = (new, total * alpha + probabilities.sum(axis=1))
        output = self.softmax.get(op.target)
        if output:
            block.regs[output] = (block.regs[output] * alpha[:, None]).astype(np.float32)
        block.regs[op.target] = probabilities.astype(np.float32)

    def _logsumexp(self, op: ir.Logsumexp, block: _Block) -> None:
        if op.target not in block.state:  # the key loop ran no iteration: no key was seen
            block.regs[op.out] = np.full(block.regs[op.out].shape, -np.inf)
            return
        top, total = block.state[op.target]
        with np.errstate(divide="ignore"):
            block.regs[op.out] = np.where(total > 0, top + np.log(np.where(total > 0, total, 1)),
                                          -np.inf)

    def _reshape(self, op: ir.Reshape, block: _Block) -> None:
        if op.dtype is not None:
            block.regs[op.name] = to_dtype(block.regs[op.name], op.dtype.value)

    # ---- where tiles are ----

    def _region(self, op: ir.Copy, block: _Block, rows: int, cols: int):
        """(the array, index per leading dim, first row in it, first column, the tile's rows
        that are there) of a tile, as the backends place it: rows counted from the copy's
        `start`, limited by its `rows`, a paged tensor's first index and row looked up in its
        table; SimulationError for a coordinate outside its tensor."""
        tensor = self.kernel.tensor(op.name)
        data = self.inputs.get(op.name) if tensor.role == "input" else self.outputs[op.name]
        coord = dict(op.coord)
        *leading, first, first_col = tile_origin(tensor, coord, (rows, cols), block.env)
        start = int(ir.evaluate(op.start, block.env)) if op.start is not None else 0
        rows_there = data.shape[-2] if not tensor.pages else \
            block.env[tensor.pages[0]].shape[1] * ir.evaluate(tensor.pages[1], block.env)
        limit = (int(ir.evaluate(op.rows, block.env)) if op.rows is not None
                 else rows_there - start)
        there = max(0, min(rows, limit - first))
        row = start + first
        if tensor.pages:
            table, page = tensor.pages
            size = ir.evaluate(page, block.env)
            leading[0] = int(ir.evaluate(ir.Element(table, (ir.Const(leading[0]),
                                                             ir.Const(first // size))),
                                         block.env)) if there else 0
            row = first % size
        for position, (dim, value) in enumerate(zip(tensor.shape, leading)):
            if not 0 <= value < data.shape[position]:
                raise SimulationError(op, f"Copy {op.name} at [{_where(coord, block.env)}] "
                                      f"reads or writes {op.name}'s dimension "
                                      f"{getattr(dim, 'name', dim)} at {value}, outside 0.."
                                      f"{data.shape[position] - 1}")
        if first < 0 or first_col < 0:
            raise SimulationError(op, f"Copy {op.name} starts at row {first}, column "
                                  f"{first_col}: before the start of {op.name}")
        if first_col >= data.shape[-1]:  # rows past the end are masked; columns are not
            raise SimulationError(op, f"Copy {op.name} starts at column {first_col}, past the "
                                  f"end of {op.name}'s rows ({data.shape[-1]} columns)")
        return data, tuple(leading), row, first_col, there

    def _load(self, op: ir.Copy, block: _Block, shape) -> np.ndarray:
        rows, cols = shape
        data, leading, row, first_col, there = self._region(op, block, rows, cols)
        tile = np.zeros((rows, cols))
        part = data[leading][row:row + there, first_col:first_col + cols]
        tile[:part.shape[0], :part.shape[1]] = part
        return tile

    def _store(self, op: ir.Copy, block: _Block, values: np.ndarray) -> None:
        rows, cols = values.shape
        data, leading, row, first_col, there = self._region(op, block, rows, cols)
        target = data[leading]
        part = target[row:row + there, first_col:first_col + cols]
        stored = values[:part.shape[0], :part.shape[1]]
        dtype = self.kernel.tensor(op.name).dtype.value
        part[...] = to_dtype(part + stored, dtype) if op.add else to_dtype(stored, dtype)

    def _load_rows(self, op: ir.Copy, block: _Block, rows: int) -> np.ndarray:
        """A per-row vector from its tensor's last dimension (zeros past its end)."""
        tensor = self.kernel.tensor(op.name)
        *leading, first = tile_origin(tensor, dict(op.coord), (rows,), block.env)
        source = self.inputs[op.name][tuple(leading)]
        vector = np.zeros(rows)
        part = source[first:first + rows]
        vector[:part.shape[0]] = part
        return vector

    def _store_rows(self, op: ir.Copy, block: _Block, values: np.ndarray) -> None:
        """A per-row vector (a row log-sum-exp) into its tensor's last dimension, from the
        copy's `start` and no further than its `rows`."""
        tensor = self.kernel.tensor(op.name)
        *leading, first = tile_origin(tensor, dict(op.coord), values.shape, block.env)
        target = self.outputs[op.name][tuple(leading)]
        start = int(ir.evaluate(op.start, block.env)) if op.start is not None else 0
        limit = (int(ir.evaluate(op.rows, block.env)) if op.rows is not None
                 else target.shape[0] - start)
        there = max(0, min(values.shape[0], limit - first))
        part = target[start + first:start + first + there]
        part[...] = to_dtype(values[:part.shape[0]], tensor.dtype.value)

    def _normalised(self, name: str, block: _Block) -> np.ndarray:
        """An output accumulator divided by its online softmax's row sums (0 for a row that
        saw no key), as it leaves registers."""
        values = block.regs[name].astype(np.float64)
        scores = next((s for s, o in self.softmax.items() if o == name), None)
        if scores is None or scores not in block.state:
            return values
        total = block.state[scores][1]
        with np.errstate(divide="ignore"):
            inverse = np.where(total > 0, 1.0 / np.where(total > 0, total, 1.0), 0.0)
        return values * inverse[:, None]

    def _positions(self, scores: str, block: _Block):
        """(query rows, key columns, each row's diagonal key) of a score tile, bottom-right
        aligned: query i's diagonal is i + Nk - Nq."""
        gemm = self.accumulators[scores]
        first = []
        for operand in (gemm.a.name, gemm.b.name):
            copy = self.global_load(operand)
            buffer = self.facts.buffers[(operand, ir.Level.SHARED)]
            rows, cols = self.facts.shape(buffer)
            tensor = self.kernel.tensor(operand)
            first.append(tile_origin(tensor, dict(copy.coord), (rows, cols), block.env)[-2])
        tile = block.regs[scores]
        rows = first[0] + np.arange(tile.shape[0])[:, None]
        keys = first[1] + np.arange(tile.shape[1])[None, :]
        diagonal = rows + self._limit(scores, 1, block) - self._limit(scores, 0, block)
        return rows, keys, np.broadcast_to(diagonal, tile.shape)

    def _limit(self, scores: str, operand: int, block: _Block) -> int:
        """The sequence length of the scores' queries (0) or keys (1): the copy's `rows`,
        else its tensor's rows (past its `start`)."""
        gemm = self.accumulators[scores]
        copy = self.global_load((gemm.a.name, gemm.b.name)[operand])
        if copy.rows is not None:
            return int(ir.evaluate(copy.rows, block.env))
        start = int(ir.evaluate(copy.start, block.env)) if copy.start is not None else 0
        return self.inputs[copy.name].shape[-2] - start


def _sizes(kernel: ir.Kernel, arrays: dict) -> dict[str, int]:
    """The runtime sizes from the inputs' shapes; an int32 scalar is one itself; a paged
    tensor (its pool's shape is not the plan's) gives its rows as the table's pages times
    the page, its first dimension as the table's rows."""
    sizes = {}
    params = {p.name: p.value for p in kernel.params}
    for tensor in kernel.tensors:
        if tensor.role != "input":
            continue
        if not tensor.shape:
            if tensor.dtype is ir.DType.INT32:
                sizes[tensor.name] = int(arrays[tensor.name])
            continue
        shape = list(np.shape(arrays[tensor.name]))
        if tensor.pages:
            table, page = tensor.pages
            entries, pages = np.shape(arrays[table])
            shape[0], shape[-2] = entries, pages * ir.evaluate(page, params)
        for dim, extent in zip(tensor.shape, shape):
            if isinstance(dim, ir.Sym) and dim.kind is ir.SymKind.SIZE:
                sizes[dim.name] = int(extent)
    return sizes


def _input(array, tensor: ir.Tensor):
    """An input as the simulator computes with it: float64 values, int64 tables, a float
    scalar (an int32 scalar is a size, kept as an int)."""
    if tensor.dtype is ir.DType.INT32:
        return np.asarray(array, dtype=np.int64) if tensor.shape else int(array)
    return from_storage(array, tensor.dtype.value) if tensor.shape else float(array)


def _where(coord: dict, env: dict) -> str:
    return ", ".join(f"{dim} = {ir.evaluate(e, env)}" for dim, e in coord.items())


def default_sizes(kernel: ir.Kernel, given: dict[str, int]) -> dict[str, int]:
    """The plan's run-time sizes: those given, the rest small and consistent with its params
    (sequences a little over a tile and a key tile; H = Hkv * GROUP where a GROUP param is)."""
    params = {p.name: p.value for p in kernel.params}
    group = params.get("GROUP", 1)
    sizes = dict(given)
    for name in kernel.size_names:
        if name in sizes:
            continue
        if name.startswith("N"):
            sizes[name] = params.get("BM", 64) + params.get("BN", 32) + 3
        elif name == "Hkv" and "H" in sizes:
            sizes[name] = max(1, sizes["H"] // group)
        elif name == "H":
            sizes[name] = sizes.get("Hkv", 2) * group
        else:
            sizes[name] = 1 if name == "B" else 2
    return sizes


def simulate(kernel: ir.Kernel, sizes: dict[str, int], seed: int = 0):
    """(the verdict against the float64 reference, the sizes used) of a checked kernel run on
    the CPU; SimulationError (located) for a statement that cannot run."""
    from tlc.runtime import check_random

    tables = [t for t in kernel.tensors if t.dtype is ir.DType.INT32]
    if tables:  # random inputs for them would be random pages and lengths, not a cache
        raise NotSimulated(f"tlc sim does not run plans that read int32 tables "
                           f"({', '.join(t.name for t in tables)}: a K/V cache's lengths or "
                           "pages): random ones would not be a cache; run "
                           "tlc.simulate.Simulator on tables you build "
                           "(tests/test_simulate_tables.py does)")
    sizes = default_sizes(kernel, sizes)
    return check_random(Simulator(kernel), sizes, seed=seed, whole=True), sizes
