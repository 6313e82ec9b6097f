"""The resource model: shared memory a plan allocates and the registers a thread needs.

Shared memory is exact: every shared buffer, times the stages of the Copy that fills it.

Registers are an estimate from liveness over the statements, in 32-bit registers per thread:
- a tile that lives in accumulator layout (a GEMM result, an elementwise result) is spread
  over all the block's threads: elements × bytes / 4 / threads;
- a GEMM operand copied into registers outside the GEMM's loop is held whole: each warp keeps
  its rows of A (M / warps_m × K) or its columns of B (N / warps_n × K);
- an operand copied inside the GEMM's own loop is streamed: only one MMA k-step of it is live,
  at the GEMM;
- an online softmax keeps a running max, sum and rescale factor for each row a thread owns;
- on a target without cp.async, a K/V tile on its way to shared memory is held in registers
  (16 bytes a chunk, times IN_FLIGHT_FACTOR) from the point its loads are issued to the point
  it is stored, as passes/register_pipeline.py schedules them;
- operands load 16 deep (ldmatrix.x4) even where the MMA steps through k in eights;
- a fixed 56 registers cover addresses, indices, loop counters, predicates and the slack
  ptxas takes: calibrated so that every configuration of the sm_80 sweep (head dims 32-256,
  tiles 64/128 x 32/64/128, held or streamed Q, 1-2 stages, and the plans the tests draw,
  which once found D = 40, BN = 128 spilling at an estimate of 244) whose estimate is at
  most 255 built with 0 bytes of spills; tests/backends/test_sm80.py keeps checking that.
A tile's registers are live from the statement that fills it to its last use, and through the
whole of any loop that uses it when it was filled before that loop. A Reshape converts
fragment by fragment, so the re-viewed tile replaces the old one rather than adding to it.
"""
from __future__ import annotations

from dataclasses import dataclass

from tlc import ir
from tlc.passes.facts import Facts, register_reads
from tlc.passes.gemm_orientation import gemm_operands

OVERHEAD_REGISTERS = 56
B_COLUMNS_PER_LOAD = 16  # the emitter loads a B operand two n-tiles (one ldmatrix.x4) at a time
LOAD_K = 16  # ... and every operand 16 deep along k, two m16n8k8 steps where the MMA is k8
# A tile in flight costs more than its 4 registers a chunk: around it ptxas still schedules the
# GEMMs' fragment loads early, as it does when registers are free. Calibrated on a sweep of 1196
# sm_75 configurations (fp16 and bf16-as-fp16; D 32-256; BM 64/128; BN 16-128; 4 or 8 warps;
# Q held or streamed; O staged or not; causal or not): at 2.0, 12 accepted configurations
# spilled (BN = 128 with 16 rows a warp, the worst); at 2.5, none did.
IN_FLIGHT_FACTOR = 2.5
SOFTMAX_STATE_PER_ROW = 3  # running max, running sum, rescale factor


@dataclass(frozen=True)
class SharedMemory:
    total: int
    parts: tuple[tuple[str, int, int], ...]  # (buffer, bytes per stage, stages)


@dataclass(frozen=True)
class Registers:
    peak: int
    at: object  # the statement where the peak is
    parts: tuple[tuple[str, int], ...]  # what is live there, largest first


def shared_memory(facts: Facts, padding: int | None = None) -> SharedMemory | None:
    """Every shared buffer as the backend lays it out: each row `padding` elements longer
    (so ldmatrix rows avoid bank conflicts), the stages of its Copy, 16-byte aligned. The
    emitter places buffers with this same function, so the figure is the kernel's."""
    if padding is None:
        from tlc.backends.base import Backend

        padding = Backend.smem_padding
    parts = []
    for buffer in facts.kernel.buffers:
        if buffer.level is not ir.Level.SHARED:
            continue
        shape = facts.shape(buffer)
        if buffer.dtype is None or not shape or not all(isinstance(x, int) for x in shape):
            return None
        rows = 1
        for extent in shape[:-1]:
            rows *= extent
        size = rows * (shape[-1] + padding) * buffer.dtype.bytes
        stages = facts.stages(buffer.name)
        parts.append((buffer.name, size, stages))
    total = sum(-(-size * stages // 16) * 16 for _, size, stages in parts)
    return SharedMemory(total, tuple(parts))


def _ceil(x: float) -> int:
    return int(-(-x // 1))


@dataclass
class _Live:
    label: str
    cost: int
    start: int
    end: int


class _Liveness:
    def __init__(self, facts: Facts):
        self.facts = facts
        self.warps = facts.warps
        self.threads = facts.threads
        self.positions = list(_flatten(facts.kernel.body))
        self.loop_span = {}  # loop -> (first, last) position of its body
        for index, (op, loops) in enumerate(self.positions):
            for loop in loops:
                first, _ = self.loop_span.get(id(loop), (index, index))
                self.loop_span[id(loop)] = (first, index)
        self.roles = {}  # operand name -> (gemm, "A" or "B")
        for op, _ in self.positions:
            if isinstance(op, ir.Gemm):
                self.roles.setdefault(op.a.name, (op, "A"))
                self.roles.setdefault(op.b.name, (op, "B"))

    def buffer_cost(self, name: str, dtype: ir.DType | None) -> int:
        buffer = self.facts.buffers.get((name, ir.Level.REGISTER))
        elements = self.facts.elements(buffer) if buffer else None
        if elements is None:
            return 0
        width = (dtype or buffer.dtype or ir.DType.FP32).bytes
        return _ceil(elements * width / 4 / self.threads)

    def operand_cost(self, name: str, k_extent: int | None = None,
                     b_columns: int | None = None) -> int:
        """Registers of a GEMM operand for one thread: all of K, or k_extent of it; a B
        operand loaded b_columns at a time (one ldmatrix of two n-tiles) holds only those."""
        gemm, role = self.roles[name]
        shapes = gemm_operands(self.facts, gemm)
        buffer = self.facts.buffers.get((name, ir.Level.REGISTER))
        if shapes is None or buffer is None or buffer.dtype is None:
            return 0
        (m, k), (_, n) = shapes
        rows = self.facts.value(m) if role == "A" else self.facts.value(n)
        depth = k_extent or self.facts.value(k)
        split = self.warps[0] if role == "A" else self.warps[1]
        if not all(isinstance(v, int) for v in (rows, depth)):
            return 0
        rows = rows / split
        if role == "B" and b_columns:
            rows = min(rows, b_columns)
        return _ceil(rows * depth * buffer.dtype.bytes / 4 / 32)

    def streamed(self, name: str, copy_loops) -> bool:
        gemm_loops = next((loops for op, loops in self.positions
                           if isinstance(op, ir.Gemm) and name in (op.a.name, op.b.name)), ())
        return bool(copy_loops) and copy_loops == gemm_loops

    def intervals(self) -> tuple[list[_Live], set[str]]:
        current: dict[str, _Live] = {}
        done: list[_Live] = []
        streamed: set[str] = set()

        def define(name, cost, index, label):
            if name in current:
                done.append(current.pop(name))
            current[name] = _Live(label, cost, index, index)

        def use(name, index):
            if name in streamed:
                return  # counted at the GEMM, one k-step at a time
            if name in current:
                current[name].end = max(current[name].end, index)
                for loop in self.positions[index][1]:
                    first, last = self.loop_span[id(loop)]
                    if current[name].start < first:
                        current[name].end = max(current[name].end, last)
            elif name in self.roles or (name, ir.Level.REGISTER) in self.facts.buffers:
                define(name, self.buffer_cost(name, None), 0, name)  # an accumulator from zero
                use(name, index)

        for index, (op, loops) in enumerate(self.positions):
            # A Reshape's old registers end where its new ones begin (it converts in place).
            for name in [] if isinstance(op, ir.Reshape) else register_reads(op):
                use(name, index)
            if isinstance(op, ir.Copy) and op.dst is ir.Level.REGISTER:
                if op.name in self.roles and self.streamed(op.name, loops):
                    streamed.add(op.name)
                    continue
                cost = self.operand_cost(op.name) if op.name in self.roles else \
                    self.buffer_cost(op.name, None)
                define(op.name, cost, index, f"{op.name} (held operand)")
            elif isinstance(op, ir.Gemm) and not op.accumulate:
                define(op.out, self.buffer_cost(op.out, ir.DType.FP32), index, op.out)
            elif isinstance(op, ir.Reshape):
                define(op.name, self.buffer_cost(op.name, op.dtype), index,
                       f"{op.name} ({op.dtype.value})" if op.dtype else op.name)
            elif isinstance(op, (ir.Multiply, ir.Alibi)) and op.out not in current:
                define(op.out, self.buffer_cost(op.out, None), index, op.out)
        return done + list(current.values()), streamed

    def softmax_state(self, facts_found) -> int:
        rows = 0
        for found in facts_found:
            buffer = self.facts.buffers.get((found.scores, ir.Level.REGISTER))
            shape = self.facts.shape(buffer) if buffer else ()
            if shape and isinstance(shape[0], int):
                rows += 2 * _ceil(shape[0] / (self.warps[0] * 16))
        return rows * SOFTMAX_STATE_PER_ROW


def registers(facts: Facts, online=(), through_registers: bool = False) -> Registers | None:
    """The estimated peak of 32-bit registers per thread, or None without a warp layout.
    `through_registers`: the target has no cp.async, so loop copies pass through registers."""
    if facts.threads is None:
        return None
    live = _Liveness(facts)
    intervals, streamed = live.intervals()
    state = live.softmax_state(online)
    best = None
    for index, (op, loops) in enumerate(live.positions):
        parts = [(i.label, i.cost) for i in intervals if i.start <= index <= i.end and i.cost]
        if isinstance(op, ir.Gemm):
            mma = ir_mma_k(op)
            for name in (op.a.name, op.b.name):
                if name in streamed and mma:
                    parts.append((f"{name} (one k-step)", live.operand_cost(
                        name, max(mma, LOAD_K), b_columns=B_COLUMNS_PER_LOAD)))
        if through_registers:
            parts += _tiles_in_flight(facts, op, loops)
        if state:
            parts.append(("softmax state", state))
        parts.append(("addresses and indices", OVERHEAD_REGISTERS))
        total = sum(cost for _, cost in parts)
        if best is None or total > best.peak:
            best = Registers(total, op, tuple(sorted(parts, key=lambda p: -p[1])))
    return best


def _tiles_in_flight(facts: Facts, op, loops) -> list[tuple[str, int]]:
    """The register pipeline's tiles held while `op` runs, in each loop around it."""
    from tlc.passes import register_pipeline as rp

    parts = []
    for depth, loop in enumerate(loops):
        child = loops[depth + 1] if depth + 1 < len(loops) else op
        index = next(i for i, x in enumerate(loop.body) if x is child)
        groups = rp.groups(loop)
        for group in groups:
            if not rp.in_flight(group, index, len(groups)):
                continue
            for copy in group.copies:
                buffer = facts.buffers.get((copy.name, ir.Level.SHARED))
                tensor = facts.tensors.get(copy.name)
                shape = facts.shape(buffer) if buffer else ()
                if len(shape) == 2 and all(isinstance(x, int) for x in shape) and tensor \
                        and tensor.dtype:
                    chunks = rp.chunks_per_thread(*shape, tensor.dtype.bytes, facts.threads)
                    parts.append((f"{copy.name} (next tile, on its way to shared)",
                                  _ceil(IN_FLIGHT_FACTOR * 4 * chunks)))
    return parts


def ir_mma_k(gemm: ir.Gemm) -> int | None:
    from tlc.arch import MMA_SHAPES

    shape = MMA_SHAPES.get(gemm.mma or "")
    return shape.k if shape else None


def _flatten(ops, loops=()):
    for op in ops:
        if isinstance(op, ir.Loop):
            yield from _flatten(op.body, loops + (op,))
        else:
            yield op, loops
