"""The schedule: what the kernel does, decided once between the checked IR and CUDA.

Which GEMM operands are held in registers and which are streamed from shared memory one
k-step at a time, where each shared buffer sits and how many stages deep it is, which loop
pipelines which copies and by what engine, each GEMM's tiles per warp, and which scores keep
an online softmax for which output. The emitter reads it, the register model reads the same
derivations (backends/resources.py), and `tlc compile --emit schedule` prints it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tlc import ir
from tlc.backends.target import Target, Unsupported
from tlc.passes.facts import Facts, register_reads, register_writes
from tlc.passes.gemm_orientation import gemm_operands

C_TYPES = {ir.DType.FP16: "__half", ir.DType.BF16: "__nv_bfloat16", ir.DType.FP32: "float",
           ir.DType.INT32: "int"}


@dataclass(frozen=True)
class SharedMemory:
    total: int
    parts: tuple[tuple[str, int, int], ...]  # (buffer, bytes per stage, stages)
    offsets: tuple[int, ...] = ()           # where each part starts, bytes


# A tile the copy engine swizzles starts on this boundary, so that the swizzle pattern (the
# address bits 4-6 xor 7-9) is the one wgmma's descriptors assume [PTX ISA, "Matrix
# Descriptor Format": base offset 0]; dynamic shared memory gets as much slack to align it.
SWIZZLE_ALIGNMENT = 1024
PANEL_BYTES = 128  # the swizzle span: a swizzled panel's row
BARRIER_BYTES = 8  # an mbarrier, a 64-bit shared-memory object


def shared_memory(facts: Facts, target) -> SharedMemory | None:
    """Every shared buffer as the target lays it out, times the stages of its Copy: rows
    `target.smem_padding` elements longer (so ldmatrix rows avoid bank conflicts), 16-byte
    aligned; or, where the target's copy engine swizzles the tiles it loads
    (`target.copies.swizzles`), those tiles unpadded on 1024-byte boundaries, then the
    engine's mbarriers, then the alignment slack. The schedule places buffers with this same
    function, so the figure is the kernel's."""
    parts, offsets, offset = [], [], 0
    swizzled = swizzled_tiles(facts.kernel, target)
    for buffer in facts.kernel.buffers:
        if buffer.level is not ir.Level.SHARED:
            continue
        shape = facts.shape(buffer)
        if buffer.dtype is None or not shape or not all(isinstance(x, int) for x in shape):
            return None
        rows = 1
        for extent in shape[:-1]:
            rows *= extent
        width = swizzled_columns(shape[-1], buffer.dtype) if buffer.name in swizzled else \
            shape[-1] + target.smem_padding
        size = rows * width * buffer.dtype.bytes
        stages = facts.stages(buffer.name)
        align = SWIZZLE_ALIGNMENT if buffer.name in swizzled else 16
        offset = -(-offset // align) * align
        parts.append((buffer.name, size, stages))
        offsets.append(offset)
        offset += size * stages
    offset = -(-offset // 16) * 16
    if swizzled:
        barriers = target.copies.barriers(facts)
        parts.append(("mbarriers", BARRIER_BYTES, barriers))
        offsets.append(offset)
        offset += BARRIER_BYTES * barriers + SWIZZLE_ALIGNMENT
    return SharedMemory(offset, tuple(parts), tuple(offsets))


def swizzled_tiles(kernel: ir.Kernel, target) -> set[str]:
    """The shared buffers the target's copy engine fills from global memory in its swizzled
    layout (none for engines that copy into padded rows)."""
    if not target.copies.swizzles:
        return set()
    return {op.name for op in ir.walk(kernel.body) if isinstance(op, ir.Copy)
            and (op.src, op.dst) == (ir.Level.GLOBAL, ir.Level.SHARED)}


def swizzled_columns(cols: int, dtype: ir.DType) -> int:
    """The columns a swizzled tile of `cols` occupies: whole panels of 128 bytes a row
    (isa/tma.py). A head dim that ends inside a panel leaves the rest of it to the copy
    engine's zero fill, which the GEMMs read as zeros (isa/wgmma.py)."""
    panel = PANEL_BYTES // dtype.bytes
    return -(-cols // panel) * panel


@dataclass(frozen=True)
class SharedTile:
    """A shared buffer as placed: `stages` tiles of rows × cols, rows `stride` elements apart
    (padded), starting `offset` bytes into dynamic shared memory."""

    name: str
    rows: int
    cols: int
    stride: int
    stages: int
    dtype: ir.DType
    offset: int
    swizzled: bool = False  # panels of `panel_cols` columns, 128-byte swizzled (isa/tma.py)

    @property
    def panel_cols(self) -> int:
        """Columns of one swizzled panel: 128 bytes of a row."""
        return PANEL_BYTES // self.dtype.bytes

    @property
    def panels(self) -> int:
        """The swizzled panels of a row (the last one part zeros where cols ends inside
        it)."""
        return -(-self.cols // self.panel_cols)

    @property
    def ctype(self) -> str:
        return C_TYPES[self.dtype]

    @property
    def stage_elements(self) -> int:
        return self.rows * self.stride


@dataclass(frozen=True)
class WarpTiles:
    """A GEMM's tile as one warp computes it: m row tiles, n column tiles, k steps (of the
    instruction set's shape); the block's warps laid out warps_m down the rows by warps_n
    across the columns, warp w at row (w / warps_n), column (w % warps_n)."""

    m: int
    n: int
    k: int
    warps_m: int = 1
    warps_n: int = 1

    @property
    def rows(self) -> int:
        """The rows of the GEMM's whole tile, all warps together (16 a row tile)."""
        return self.warps_m * self.m * 16

    @property
    def cols(self) -> int:
        """The columns of the GEMM's whole tile, all warps together (8 a column tile)."""
        return self.warps_n * self.n * 8

    @property
    def first_row(self) -> str:
        """C for the first row of this warp's part of the tile."""
        if self.warps_n == 1:
            return f"tlc_warp * {self.m * 16}"
        return f"(tlc_warp / {self.warps_n}) * {self.m * 16}"

    def col_offset(self, term: str) -> str:
        """C for `term` (a column inside this warp's part) as a column of the whole tile."""
        if self.warps_n == 1:
            return term
        return f"(tlc_warp % {self.warps_n}) * {self.n * 8} + {term}"


@dataclass(frozen=True)
class Pipeline:
    """The global -> shared copies a loop issues, how deep, and by which engine."""

    loop_var: str
    copies: tuple[str, ...]
    stages: int
    engine: str


@dataclass(frozen=True)
class Schedule:
    kernel: ir.Kernel
    facts: Facts
    warps: int
    threads: int
    shared: dict            # name -> SharedTile, in placement order
    shared_bytes: int
    streamed: frozenset     # GEMM operands streamed from shared memory one k-step at a time
    accumulators: dict      # name -> the first GEMM that produces it
    tiles: dict             # id of each GEMM -> its WarpTiles
    softmax: dict           # scores -> the output its probabilities accumulate into, or None
    pipelines: tuple        # Pipeline per loop that copies from global memory
    logsumexp: dict         # register vector -> the scores whose softmax's row LSE it holds
    split: object = None    # the split key loop (backends/emit/splits.SplitKV), or None
    # tile -> the accumulator whose layout it shares: the result of an elementwise Compute
    # that names a new tile (the backward pass's P = Exp(S, L), dS = P * dP)
    derived: dict = field(default_factory=dict)

    def warp_tiles(self, gemm: ir.Gemm) -> WarpTiles:
        return self.tiles[id(gemm)]

    def tiles_of(self, name: str) -> WarpTiles:
        """The warp tiles of the accumulator `name` (as its first GEMM lays it out), or of
        the accumulator an elementwise result derives from."""
        return self.tiles[id(self.accumulators[self.source_of(name)])]

    def source_of(self, name: str) -> str:
        """The accumulator whose layout `name` has: itself, or the one it derives from."""
        return self.derived.get(name, name)

    def in_registers(self, name: str) -> bool:
        """Whether `name` is a tile in accumulator layout: a GEMM's result or derived from
        one."""
        return name in self.accumulators or name in self.derived

    def text(self) -> str:
        """The schedule as `tlc compile --emit schedule` prints it."""
        lines = [f"schedule of {self.kernel.name}: {self.warps} warps ({self.threads} threads)",
                 f"shared memory: {self.shared_bytes} B"]
        for tile in self.shared.values():
            lines.append(f"  {tile.name}: {tile.stages} x {tile.rows} x {tile.cols} "
                         f"{tile.dtype.value}, rows {tile.stride} apart, at byte {tile.offset}")
        lines.append("GEMMs:")
        for name, gemm in self.accumulators.items():
            t = self.warp_tiles(gemm)
            sources = ", ".join(f"{o} {'streamed' if o in self.streamed else 'held'}"
                                for o in (gemm.a.name, gemm.b.name))
            lines.append(f"  {name} = {gemm.a.name} x {gemm.b.name}"
                         f"{'^T' if gemm.b.transposed else ''} with {gemm.mma}: per warp "
                         f"{t.m} x {t.n} tiles, {t.k} k-steps; {sources}")
        for pipeline in self.pipelines:
            lines.append(f"loop {pipeline.loop_var}: copies {', '.join(pipeline.copies)} by "
                         f"{pipeline.engine}, {pipeline.stages} stage(s)")
        for name, source in self.derived.items():
            lines.append(f"  {name}: elementwise, laid out as {source}")
        for scores, output in self.softmax.items():
            lines.append(f"softmax {scores}: " + (f"online, rescaling {output}" if output
                                                  else "no output accumulates it"))
        if self.split:
            lines.append(f"loop {self.split.loop_var}: split {self.split.splits} ways; the parts "
                         f"of {self.split.output} merge in a second kernel")
        return "\n".join(lines) + "\n"


def build_schedule(kernel: ir.Kernel, target: Target) -> Schedule:
    """Decide the schedule of a checked kernel for a target; Unsupported where it cannot."""
    facts = Facts(kernel)
    warps = facts.warps
    if warps is None or warps[1] != 1 and not target.gemm.splits_columns:
        raise Unsupported(facts.gemms[0] if facts.gemms else None,
                          f"tlc's {target.arch} code splits GEMM rows over warps, not columns: "
                          f"warps {warps}",
                          help=f"write `with warps ({warps[0] * warps[1]}, 1)` on every GEMM"
                          if warps else "give every GEMM `with warps (4, 1)`")
    shared, total = _place_shared(facts, target)
    accumulators, tiles = {}, {}
    for op in ir.walk(kernel.body):
        if isinstance(op, ir.Gemm):
            accumulators.setdefault(op.out, op)
            tiles[id(op)] = target.gemm.warp_tiles(op, gemm_dims(facts, op), warps)
    for loop in (op for op in ir.walk(kernel.body) if isinstance(op, ir.Loop)):
        _distinct_tiles(loop)
    pipelines = tuple(target.copies.pipeline(loop, facts) for loop in ir.walk(kernel.body)
                      if isinstance(loop, ir.Loop) and staged_copies(loop))
    from tlc.backends.emit.splits import split_of

    softmax = softmax_outputs(kernel, accumulators)
    if warps[1] != 1:
        _rows_within_a_warp(kernel, warps)
    count = warps[0] * warps[1]
    schedule = Schedule(kernel, facts, count, 32 * count, shared, total,
                        frozenset(streamed_operands(facts)), accumulators, tiles,
                        softmax, pipelines,
                        {op.out: op.target for op in ir.walk(kernel.body)
                         if isinstance(op, ir.Logsumexp)}, split_of(kernel, facts, softmax),
                        derived_tiles(kernel, accumulators))
    verify(schedule)
    return schedule


def _rows_within_a_warp(kernel: ir.Kernel, warps: tuple[int, int]) -> None:
    """With columns split over warps, a row of a tile is spread over warps_n warps: the rules
    that reduce a row (a softmax's maximum and sum, its log-sum-exp) reduce only across the
    four lanes of a quad, so they need every row whole in one warp."""
    row_rule = next((op for op in ir.walk(kernel.body)
                     if isinstance(op, (ir.Softmax, ir.Logsumexp))), None)
    if row_rule is not None:
        raise Unsupported(row_rule, f"{type(row_rule).__name__} reduces each row within one "
                          f"warp, and warps {warps} spread a row over {warps[1]} warps",
                          help=f"write `with warps ({warps[0] * warps[1]}, 1)` on every GEMM")


def derived_tiles(kernel: ir.Kernel, accumulators: dict) -> dict:
    """Each tile an elementwise Compute writes under a new name, with the accumulator whose
    fragment layout it takes (that of its first tile operand)."""
    derived = {}
    for op in ir.walk(kernel.body):
        if isinstance(op, (ir.Multiply, ir.Subtract)) and isinstance(op.a, ir.Ref):
            source = op.a.name
        elif isinstance(op, ir.Exp):
            source = op.target
        elif isinstance(op, ir.SoftcapGrad):
            source = op.gradient
        else:
            continue
        source = derived.get(source, source)
        if op.out not in accumulators and op.out not in derived and source in accumulators:
            derived[op.out] = source
    return derived


def verify(schedule: Schedule) -> None:
    """The placement holds what the kernel addresses: every buffer's stages lie inside dynamic
    shared memory without overlapping the next buffer, and every tile a pipeline stages is as
    deep as its ring. A failure is a tlc bug (AssertionError, an internal error)."""
    end = 0
    for tile in schedule.shared.values():
        size = tile.stages * tile.stage_elements * tile.dtype.bytes
        assert tile.offset >= end, f"shared tile {tile.name} overlaps the one before it"
        end = tile.offset + size
    assert end <= schedule.shared_bytes, "shared tiles run past the allocation"
    for pipeline in schedule.pipelines:
        for name in pipeline.copies:
            assert schedule.shared[name].stages >= pipeline.stages, \
                f"{name} has fewer stages than the ring of loop {pipeline.loop_var}"


def _place_shared(facts: Facts, target: Target) -> tuple[dict, int]:
    """Each shared buffer placed as the resource model counts it, so the report's figure is
    the kernel's."""
    use = shared_memory(facts, target)
    placed = {}
    buffers = {b.name: b for b in facts.kernel.buffers if b.level is ir.Level.SHARED}
    swizzled = swizzled_tiles(facts.kernel, target)
    for (name, size, stages), offset in zip(use.parts, use.offsets):
        if name not in buffers:  # the copy engine's mbarriers
            continue
        buffer, shape = buffers[name], facts.shape(buffers[name])
        if len(shape) != 2 or buffer.dtype not in (ir.DType.FP16, ir.DType.BF16):
            raise Unsupported(buffer, f"shared buffer `{name}`: this backend takes 2-D tiles "
                              "of fp16 or bf16")
        rows, cols = shape
        stride = swizzled_columns(cols, buffer.dtype) if name in swizzled else \
            cols + target.smem_padding
        placed[name] = SharedTile(name, rows, cols, stride, stages, buffer.dtype, offset,
                                  name in swizzled)
    return placed, use.total


def gemm_dims(facts: Facts, gemm: ir.Gemm) -> tuple[int, int, int]:
    """(M, N, K) of a GEMM, as compile-time integers."""
    (m, k), (_, n) = gemm_operands(facts, gemm)
    values = tuple(facts.value(d) for d in (m, n, k))
    if not all(isinstance(v, int) for v in values):
        raise Unsupported(gemm, "GEMM tiles need compile-time shapes")
    return values


def _distinct_tiles(loop: ir.Loop) -> None:
    """A loop copies each tile from global memory once an iteration: a second copy of it
    would write its stage again while the first may still be landing (a race)."""
    seen = set()
    for copy in staged_copies(loop):
        if copy.name in seen:
            raise Unsupported(copy, f"`{copy.name}` is copied from global memory twice in one "
                              "iteration: both copies would write its tile",
                              help=f"keep one `Copy {copy.name} ... from global to shared` in "
                                   "the loop")
        seen.add(copy.name)


def staged_copies(loop: ir.Loop) -> list[ir.Copy]:
    """The copies from global to shared memory a loop's own body issues."""
    return [op for op in loop.body if isinstance(op, ir.Copy) and op.src is ir.Level.GLOBAL
            and op.dst is ir.Level.SHARED]


def prefetched_vectors(kernel: ir.Kernel) -> dict:
    """Per-row vectors (a backward's L and Delta) that a loop loads from global memory into
    registers an iteration ahead: id of the Copy -> the statement of the loop's body after
    which the next iteration's rows load (its last reader). The first iteration's rows load
    before the loop; later ones are issued a whole iteration before their reader needs
    them, so their memory latency hides under the GEMMs between (the backward's Exp waits on
    L otherwise, one S GEMM after the load). A vector qualifies where the loop's body copies
    it at its top level, its rows move with the loop variable, nothing else in the loop
    writes it, and every reader comes after the Copy."""
    chosen = {}
    for loop in (op for op in ir.walk(kernel.body) if isinstance(op, ir.Loop)):
        if loop.splits is not None:
            continue
        for at, copy in enumerate(loop.body):
            if not (isinstance(copy, ir.Copy) and (copy.src, copy.dst) == (
                    ir.Level.GLOBAL, ir.Level.REGISTER)):
                continue
            moves = any(s.name == loop.var for _, e in copy.coord for s in ir.symbols(e))
            readers = [i for i, op in enumerate(loop.body)
                       if any(copy.name in register_reads(x) for x in statements_within(op))]
            written = any(copy.name in register_writes(x) for op in loop.body
                          for x in statements_within(op))
            again = any(isinstance(x, ir.Copy) and x is not copy and x.name == copy.name
                        for x in ir.walk(kernel.body))
            if moves and readers and min(readers) > at and not written and not again:
                chosen[id(copy)] = loop.body[max(readers)]
    return chosen


def statements_within(op) -> list:
    """A statement and, for a loop, every statement inside it."""
    return [op] + (list(ir.walk(op.body)) if isinstance(op, ir.Loop) else [])


def streamed_operands(facts: Facts) -> set[str]:
    """GEMM operands copied into registers inside the loops of a GEMM that reads them: only
    one k-step of them is live, loaded at the GEMM."""
    streamed, walked = set(), list(facts.walk_held())
    for op, loops, _ in walked:
        if isinstance(op, ir.Copy) and op.dst is ir.Level.REGISTER and loops:
            if any(isinstance(g, ir.Gemm) and op.name in (g.a.name, g.b.name)
                   and gloops == loops for g, gloops, _ in walked):
                streamed.add(op.name)
    return streamed


def softmax_outputs(kernel: ir.Kernel, accumulators: dict) -> dict:
    """scores -> the accumulator its probabilities are multiplied into (the A operand of an
    accumulating GEMM after it), or None; for each Softmax of a GEMM's scores."""
    found = {}
    ops = list(ir.walk(kernel.body))
    for index, op in enumerate(ops):
        if isinstance(op, ir.Softmax) and op.target in accumulators:
            found.setdefault(op.target, next(
                (g.out for g in ops[index:] if isinstance(g, ir.Gemm) and g.accumulate
                 and g.a.name == op.target), None))
    return found
