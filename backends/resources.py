"""The resource model: shared memory a plan allocates and the registers a thread needs, for
the code a target's instruction sets emit (it is calibrated on that code, so it lives with it).

Shared memory is exact: every shared buffer, times the stages of the Copy that fills it.

Registers are an estimate from liveness over the statements, in 32-bit registers per thread:
- a tile that lives in accumulator layout (a GEMM result, an elementwise result) is spread
  over all the block's threads: elements × bytes / 4 / threads;
- a GEMM operand copied into registers outside the GEMM's loop is held whole: each warp keeps
  its rows of A (M / warps_m × K) or its columns of B (N / warps_n × K);
- an operand copied inside the GEMM's own loop is streamed: only one MMA k-step of it is live,
  at the GEMM;
- an online softmax keeps a running max, sum and rescale factor for each row a thread owns;
- where the target's copies go through registers (isa/register_copies.py), a K/V tile on its
  way to shared memory is held in registers from the point its loads are issued to the point
  it is stored, as that module schedules them and counts them;
- a streamed operand costs what the GEMM instruction set loads of it at once (isa/mma_sync.py:
  16 deep, two n-tiles of B, even where the MMA steps through k in eights), at the GEMM it is
  streamed into: that GEMM's rows of it, in the shared tile's dtype (the backward's dS is
  fp32 in registers but comes into dQ = dS K as fp16 fragments, 32 rows a warp where
  dK += dS^T Q takes 64);
- where the copies reach shared memory by cp.async, the addresses of the copies a thread
  issues an iteration past 32 (isa/cp_async.py: one warp copying wide tiles);
- a backward plan (one that recomputes probabilities with Exp) 10 more (BACKWARD_REGISTERS);
- a fixed 56 registers cover addresses, indices, loop counters, predicates and the slack
  ptxas takes: calibrated so that every configuration of the sm_80 sweep (head dims 32-256,
  tiles 64/128 x 32/64/128, held or streamed Q, 1-2 stages, and the plans the tests draw,
  which once found D = 40, BN = 128 spilling at an estimate of 244) whose estimate is at
  most 255 built with 0 bytes of spills; tests/backends/test_codegen.py keeps checking that.
A tile's registers are live from the statement that fills it to its last use, and through the
whole of any loop that uses it when it was filled before that loop. A Reshape converts
fragment by fragment, so the re-viewed tile replaces the old one rather than adding to it; an
elementwise result (P = exp(S - L), dS = P * dP) likewise takes the registers of an input read
there for the last time.
"""
from __future__ import annotations

from dataclasses import dataclass

from tlc import ir
from tlc.arch import MMA_SHAPES
from tlc.backends.schedule import SharedMemory, shared_memory, streamed_operands
from tlc.backends.target import Target
from tlc.passes.facts import Facts, register_reads
from tlc.passes.gemm_orientation import gemm_operands

OVERHEAD_REGISTERS = 56
# A backward plan's code keeps more than a forward's around its GEMMs: the per-row L and
# Delta terms, the transposed operands' bases and dQ's reduction addresses. Once Exp took one
# FFMA an element (its rows' terms once a tile, the key test only on the last key tile, the
# scale folded in) and dQ's pairs their alignment test once a tile, the sweep with this term
# at 0 (benchmarks/backward_register_sweep.py --sm90 --backward-registers 0 --floor 225,
# benchmarks/results/ptxas-backward-register-sweep-base.log: 3960 plans drawn, D 32-128,
# plain, causal, softcap, a window, causal ALiBi, MHA and GQA, the three parts, GEMM columns
# split over warps or not) built the 324 plans estimated at 225-255 without it (of the 1760
# at 255 or less) with 0 spills, for sm_80 or sm_75 and the sm_80 ones for sm_90 too; ptxas
# took up to 22 registers past that estimate on sm_80 and 26 on sm_90 (causal ALiBi,
# 128 x 128 on (4, 2)), all within 255. With L and Delta loaded an iteration ahead (live
# across the loop, which this model does not count) the same sweep built them with 0
# spills again, ptxas at most 26 past on both (ptxas-backward-register-sweep-prefetch.log).
# 10 keeps a margin for what the sweep does not draw (D past 128, bf16).
# tests/backends/test_backward_lowering.py keeps checking.
BACKWARD_REGISTERS = 10
SOFTMAX_STATE_PER_ROW = 3  # running max, running sum, rescale factor
# the elementwise statements whose result is a tile under a name of its own: it is live from
# that statement (not from the kernel's start, as an accumulator that is never written before
# its first read would be)
TILE_RESULTS = (ir.Multiply, ir.Subtract, ir.Alibi, ir.Exp, ir.SoftcapGrad)


@dataclass(frozen=True)
class Registers:
    peak: int
    at: object  # the statement where the peak is
    parts: tuple[tuple[str, int], ...]  # what is live there, largest first


def ceil(x: float) -> int:
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
        self.producers = {}  # accumulator name -> its first GEMM
        for op, _ in self.positions:
            if isinstance(op, ir.Gemm):
                self.roles.setdefault(op.a.name, (op, "A"))
                self.roles.setdefault(op.b.name, (op, "B"))
                self.producers.setdefault(op.out, op)

    def buffer_cost(self, name: str, dtype: ir.DType | None) -> int:
        buffer = self.facts.buffers.get((name, ir.Level.REGISTER))
        elements = self.facts.elements(buffer) if buffer else None
        if elements is None:
            return 0
        gemm, shape = self.producers.get(name), self.facts.shape(buffer)
        mma = MMA_SHAPES.get(gemm.mma or "") if gemm else None
        if mma and shape and isinstance(shape[-1], int) and shape[-1]:
            # the columns the instruction accumulates (wgmma: whole panels, tlc.arch)
            elements = elements // shape[-1] * mma.extents(shape[-1], 16, gemm.b.transposed)[0]
        width = (dtype or buffer.dtype or ir.DType.FP32).bytes
        return ceil(elements * width / 4 / self.threads)

    def operand_cost(self, name: str, k_extent: int | None = None,
                     b_columns: int | None = None, at: ir.Gemm | None = None) -> int:
        """Registers of a GEMM operand for one thread: all of K, or k_extent of it; a B
        operand loaded b_columns at a time (one ldmatrix of two n-tiles) holds only those.
        A held operand is costed at the first GEMM that reads it; one streamed into GEMM `at`
        at that GEMM, as the shared tile's elements its loads bring (the backward's dS is an
        fp32 tile in registers, its fragments fp16 from shared memory, and the A of dQ = dS K
        and of dK += dS^T Q by different rows)."""
        gemm, role = self.roles[name]
        if at is not None:
            gemm, role = at, "A" if at.a.name == name else "B"
        shapes = gemm_operands(self.facts, gemm)
        buffer = self.facts.buffers.get((name, ir.Level.REGISTER))
        if at is not None:
            buffer = self.facts.buffers.get((name, ir.Level.SHARED)) or buffer
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
        return ceil(rows * depth * buffer.dtype.bytes / 4 / 32)

    def intervals(self) -> tuple[list[_Live], set[str]]:
        current: dict[str, _Live] = {}
        done: list[_Live] = []
        streamed: set[str] = set()
        results: list[tuple[_Live, list[_Live]]] = []  # elementwise results, their inputs
        streams = streamed_operands(self.facts)  # the schedule's, one definition

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
                if op.name in self.roles and op.name in streams and loops:
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
            elif isinstance(op, TILE_RESULTS) and op.out not in current:
                inputs = [current[name] for name in register_reads(op) if name in current]
                define(op.out, self.buffer_cost(op.out, None), index, op.out)
                results.append((current[op.out], inputs))
        # An elementwise result is written element by element as its inputs are read: where
        # an input of at least its size is read for the last time there, the result takes its
        # registers (ptxas reuses them) instead of adding to them.
        for result, inputs in results:
            donor = next((i for i in inputs if i.end == result.start and i.start < result.start
                          and i.cost >= result.cost), None)
            if donor is not None:
                donor.end = result.start - 1
        return done + list(current.values()), streamed

    def softmax_state(self, facts_found) -> int:
        rows = 0
        for found in facts_found:
            buffer = self.facts.buffers.get((found.scores, ir.Level.REGISTER))
            shape = self.facts.shape(buffer) if buffer else ()
            if shape and isinstance(shape[0], int):
                rows += 2 * ceil(shape[0] / (self.warps[0] * 16))
        return rows * SOFTMAX_STATE_PER_ROW


def registers(facts: Facts, target: Target, online=()) -> Registers | None:
    """The estimated peak of 32-bit registers per thread for the code `target` emits, or None
    without a warp layout. `online`: the online softmaxes found (passes/online_softmax)."""
    if facts.threads is None:
        return None
    live = _Liveness(facts)
    intervals, streamed = live.intervals()
    state = live.softmax_state(online)
    backward = any(isinstance(op, ir.Exp) for op, _ in live.positions)
    best = None
    for index, (op, loops) in enumerate(live.positions):
        parts = [(i.label, i.cost) for i in intervals if i.start <= index <= i.end and i.cost]
        if isinstance(op, ir.Gemm):
            mma = ir_mma_k(op)
            for name in (op.a.name, op.b.name):
                if name in streamed and mma:
                    parts.append((f"{name} (one k-step)", live.operand_cost(
                        name, max(mma, target.gemm.load_k),
                        b_columns=target.gemm.b_columns_per_load, at=op)))
        parts += target.copies.in_flight(facts, op, loops)
        if backward:
            parts.append(("the backward pass's bounds and addresses", BACKWARD_REGISTERS))
        if state:
            parts.append(("softmax state", state))
        parts.append(("addresses and indices", OVERHEAD_REGISTERS))
        total = sum(cost for _, cost in parts)
        if best is None or total > best.peak:
            best = Registers(total, op, tuple(sorted(parts, key=lambda p: -p[1])))
    return best


def ir_mma_k(gemm: ir.Gemm) -> int | None:
    shape = MMA_SHAPES.get(gemm.mma or "")
    return shape.k if shape else None


def _flatten(ops, loops=()):
    for op in ops:
        if isinstance(op, ir.Loop):
            yield from _flatten(op.body, loops + (op,))
        else:
            yield op, loops


@dataclass(frozen=True)
class ResourceModel:
    """A target's resource figures, as the checker asks for them (passes/resources.py)."""

    target: Target

    def shared_memory(self, facts: Facts) -> SharedMemory | None:
        return shared_memory(facts, self.target)

    def registers(self, facts: Facts, online=()) -> Registers | None:
        return registers(facts, self.target, online)
