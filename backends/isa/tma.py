"""TMA copies from global to shared memory by a producer warpgroup, through mbarrier rings
[PTX ISA, "cp.async.bulk.tensor", "mbarrier"; helpers in backends/include/tlc_sm90a.cuh].

The kernel is warp-specialized: the plan's warps are the consumers, and one more warpgroup
(the producer) gives most of its registers to them (setmaxnreg) and has one thread issue every
copy from global to shared memory as whole tiles (`cp.async.bulk.tensor`). A tile arrives in
128-byte-swizzled panels of 64 columns, the layout wgmma reads (isa/wgmma.py), and zeros past
the tensor's end.

Each tile copied once (Q) has a "full" barrier that its bytes complete; each tile a loop
copies has a "full" and an "empty" barrier a stage, and every consumer warp arrives on the
empty one when it is done with the tile. So iteration i of the loop (stage i % S): the
producer waits for the consumers to free each tile's stage (from iteration i - S), announces
its bytes and issues it; the consumers wait for the fill i / S (the parity of that count)
just before the first statement that reads each tile, so Q·K^T runs while V lands, and free
each tile as soon as its last reader is done: K's stage refills while P·V still reads V's.
"""
from __future__ import annotations

from dataclasses import dataclass

from tlc import ir
from tlc.arch import PRODUCER_REGISTERS
from tlc.backends.emit.writer import c_expr
from tlc.backends.isa.engine import CopyEngine
from tlc.backends.schedule import Pipeline, shared_memory, staged_copies
from tlc.backends.target import Argument, Unsupported

BOX_ROWS = 256     # the most rows a TMA box spans [CUDA driver API, cuTensorMapEncodeTiled]


@dataclass(frozen=True)
class Barriers:
    """Where each mbarrier sits in the kernel's array of them."""

    once: dict      # tile copied once -> its barrier
    staged: dict    # tile a loop copies -> its first stage's "full" barrier
    empty: int      # the first "empty" barrier: the tiles' in staged's order, a stage each
    stages: int
    count: int


def copied_once(kernel: ir.Kernel) -> dict[str, ir.Copy]:
    """Each tile copied from global memory outside the loops, by its first Copy. A repeat of
    that Copy loads the same bytes again and is issued once; the checked plan's other forms
    are refused (_check_plan), since two TMA copies into one tile may land in either order."""
    once = {}
    for op in kernel.body:
        if isinstance(op, ir.Copy) and (op.src, op.dst) == (ir.Level.GLOBAL, ir.Level.SHARED):
            once.setdefault(op.name, op)
    return once


def barriers_of(kernel: ir.Kernel, stages_of) -> Barriers:
    staged, depth = {}, 1
    once = {name: index for index, name in enumerate(copied_once(kernel))}
    index = len(once)
    loops = [op for op in ir.walk(kernel.body) if isinstance(op, ir.Loop) and staged_copies(op)]
    if loops:
        copies = staged_copies(loops[0])
        depth = max(stages_of(c.name) for c in copies)
        for copy in copies:
            staged[copy.name] = index
            index += depth
    empty = index
    index += depth * len(staged)
    return Barriers(once, staged, empty, depth, index)


def empty_barrier(plan: Barriers, name: str, stage: str) -> str:
    """The "empty" barrier of tile `name` at `stage` (C)."""
    return f"{plan.empty + plan.stages * list(plan.staged).index(name)} + {stage}"


@dataclass(frozen=True)
class Tma(CopyEngine):
    name: str = "tma"
    producer_registers: int = PRODUCER_REGISTERS  # what the checker counts, too
    overlap: bool = True  # pipeline a flash loop across two key blocks (_overlapped_loop)
    turns: bool = True    # consumer warpgroups take turns at the tensor cores (_take_turns)
    # causal row tiles launched longest first: on the H200, 615 -> 693 TFLOP/s at D = 128,
    # N = 16k (benchmarks/sm90a_ablation.py, h200-sm90a-ablation.json)
    long_rows_first: bool = True

    swizzles = True

    def barriers(self, facts) -> int:
        return barriers_of(facts.kernel, facts.stages).count

    def pipeline(self, loop: ir.Loop, facts) -> Pipeline:
        copies = staged_copies(loop)
        depth = max([facts.stages(c.name) for c in copies] or [1])
        for copy in copies:
            if facts.stages(copy.name) != depth:
                raise Unsupported(copy, f"`{copy.name}` is copied {facts.stages(copy.name)} "
                                  f"stage(s) deep, another tile of the loop {depth}: the loop's "
                                  "TMA copies share one ring of stages",
                                  help=f"give every Copy of the loop `stages {depth}`")
        return Pipeline(loop.var, tuple(c.name for c in copies), depth, self.name)

    def in_flight(self, facts, op, loops) -> list:
        return []  # the copy engine needs no registers of the consumers

    # ---- launch arguments ----

    def tensor_maps(self, kernel: ir.Kernel, schedule) -> tuple[Argument, ...]:
        """One tensor map a tensor loaded by TMA: boxes of one 64-column panel by the tile's
        rows, one along every outer dimension."""
        maps = {}
        for op in ir.walk(kernel.body):
            if isinstance(op, ir.Copy) and (op.src, op.dst) == (ir.Level.GLOBAL, ir.Level.SHARED):
                tile = schedule.shared[op.name]
                tensor = kernel.tensor(op.name)
                box = (tile.panel_cols, tile.rows) + (1,) * (len(tensor.shape) - 2)
                if maps.setdefault(op.name, box) != box:
                    raise Unsupported(op, f"`{op.name}` is copied in tiles of two shapes")
        return tuple(Argument(map_name(name), "tensormap", kernel.tensor(name).dtype.value,
                              of=name, box=box) for name, box in maps.items())

    # ---- the kernel body: a producer branch and a consumer branch ----

    def emit_body(self, em) -> None:
        kernel, facts = em.kernel, em.facts
        self._check_plan(em)
        plan = barriers_of(kernel, facts.stages)
        consumers, warps = em.threads, em.warps
        limit = consumer_registers(em)
        use = shared_memory(facts, em.target)
        offset = use.offsets[[name for name, _, _ in use.parts].index("mbarriers")]
        em.line(f"uint64_t* tlc_bar = reinterpret_cast<uint64_t*>(tlc_smem + {offset});")
        em.open("if (threadIdx.x == 0)")
        em.line(f"for (int i = 0; i < {plan.empty}; ++i) tlc::sm90a::mbarrier_init(&tlc_bar[i], 1);")
        if plan.staged:
            em.line(f"for (int i = {plan.empty}; i < {plan.count}; ++i) "
                    f"tlc::sm90a::mbarrier_init(&tlc_bar[i], {warps});  // each consumer warp")
        em.line("tlc::sm90a::fence_barrier_init();")
        em.close()
        em.line("__syncthreads();")
        em.open(f"if (tlc_warp >= {warps})")
        em.line("// the producer warpgroup: one thread issues every copy from global memory")
        if limit:
            em.line(f"tlc::sm90a::registers_decrease<{self.producer_registers}>();")
        em.open(f"if (threadIdx.x == {consumers})")
        for argument in self.tensor_maps(kernel, em.schedule):
            em.line(f"tlc::sm90a::prefetch_tensormap(&{argument.name});")
        first = copied_once(kernel)
        if chunk_loop(kernel):
            em.line("int tlc_ring = 0;  // iterations of the ring that earlier chunks ran")
        for op in kernel.body:
            if isinstance(op, ir.Copy) and first.get(op.name) is op:
                self._issue(em, [op], {}, lambda name: plan.once[name], "0")
            elif isinstance(op, ir.Loop) and staged_copies(op):
                self._produce_loop(em, op, plan)
            elif isinstance(op, ir.Loop) and op is chunk_loop(kernel):
                var = em.loop_range(op)
                em.open(f"for (int {var} = {var}_start; {var} < {var}_stop; ++{var})")
                for inner in op.body:
                    if isinstance(inner, ir.Loop) and staged_copies(inner):
                        self._produce_loop(em, inner, plan, ring=True)
                em.close()
        em.close()
        em.close()
        em.open("else")
        em.line("// the consumer warpgroups: every statement but the copies from global memory")
        if limit:
            em.line(f"tlc::sm90a::registers_increase<{limit}>();")
        em.sync = f"tlc::sm90a::consumer_sync<{consumers}>();"
        if chunk_loop(kernel):
            em.line("int tlc_ring = 0;  // iterations of the ring that earlier chunks ran")
        em.emit_state()
        em.emit_statements()
        em.close()

    def _check_plan(self, em) -> None:
        loops = [op for op in ir.walk(em.kernel.body) if isinstance(op, ir.Loop)
                 and staged_copies(op)]
        for loop in loops[1:]:
            raise Unsupported(loop, "a second loop that copies from global memory: tlc's TMA "
                              "code pipelines one loop")
        outer = chunk_loop(em.kernel)
        for loop in loops:
            if loop not in em.kernel.body and (outer is None or loop not in outer.body):
                raise Unsupported(loop, "a loop two loops deep copies from global memory: "
                                  "tlc's TMA code pipelines a loop of the kernel's body, or of "
                                  "one loop around it (a column chunk's)")
        first = copied_once(em.kernel)
        for op in ir.walk(em.kernel.body):
            if isinstance(op, ir.Copy) and (op.src, op.dst) == (ir.Level.GLOBAL, ir.Level.SHARED):
                self._check_copy(em, op)
                if op.name in first and op != first[op.name]:
                    raise Unsupported(op, f"`{op.name}` is copied from global memory twice, "
                                      "into one tile from other coordinates: TMA copies are "
                                      "asynchronous, and the two may land in either order",
                                      help=f"keep one `Copy {op.name} ... from global to "
                                      "shared`")

    def _check_copy(self, em, op: ir.Copy) -> None:
        tensor, tile = em.kernel.tensor(op.name), em.shared_tile(op.name, op)
        if tensor.pages or op.start is not None or op.rows is not None:
            raise Unsupported(op, f"Copy {op.name}: paged or packed (varlen) sequences have no "
                              "TMA lowering yet", help="target sm_90 for this plan")
        if tensor.dtype is not tile.dtype:
            raise Unsupported(op, f"Copy {op.name}: TMA moves bytes; the shared tile must be "
                              f"{tensor.dtype.value} as the tensor is")
        width = em.facts.value(tensor.shape[-1])
        if tile.cols % tile.panel_cols and tile.cols != width:
            # the last panel's box would read the next columns of the row, not zeros
            raise Unsupported(op, f"Copy {op.name}: a chunk of {tile.cols} of the {width} "
                              f"columns; tlc's TMA copies a chunk of a row in whole "
                              f"{tile.panel_cols}-column panels (128 bytes)",
                              help=f"make the chunk a multiple of {tile.panel_cols} columns, or "
                                   "the whole row")
        if (tile.cols * tile.dtype.bytes) % 16:
            raise Unsupported(op, f"Copy {op.name}: rows of {tile.cols * tile.dtype.bytes} "
                              "bytes; TMA steps through global memory 16 bytes at a time",
                              help=f"make the head dim a multiple of {16 // tile.dtype.bytes}")
        if tile.rows > BOX_ROWS:
            raise Unsupported(op, f"Copy {op.name}: {tile.rows} rows; a TMA box spans at most "
                              f"{BOX_ROWS}")
        if len(tensor.shape) > 5:
            raise Unsupported(op, f"`{op.name}` has {len(tensor.shape)} dimensions; TMA takes 5")

    def _produce_loop(self, em, op: ir.Loop, plan: Barriers, ring: bool = False) -> None:
        var = em.loop_range(op)
        depth = plan.stages
        em.open(f"for (int {var} = {var}_start; {var} < {var}_stop; ++{var})")
        em.line(f"const int tlc_i = {_turn(ring)}{var} - {var}_start, tlc_stage = tlc_i % "
                f"{depth};")
        for copy in staged_copies(op):
            em.line(f"if (tlc_i >= {depth}) tlc::sm90a::mbarrier_wait(&tlc_bar["
                    f"{empty_barrier(plan, copy.name, 'tlc_stage')}], (tlc_i / {depth} - 1) & 1);"
                    f"  // {copy.name}'s stage, freed in iteration i - {depth}")
            self._issue(em, [copy], {op.var: var},
                        lambda name: f"{plan.staged[name]} + tlc_stage", "tlc_stage")
        em.close()
        if ring:
            _count_turns(em, var)

    def _issue(self, em, copies, rename: dict, barrier, stage: str) -> None:
        for op in copies:
            tile = em.shared[op.name]
            panels = tile.panels
            # whole boxes, the zeros filled past the tensor's last column and row included
            bytes_ = tile.rows * panels * tile.panel_cols * tile.dtype.bytes
            coords = tma_coordinates(em, op, rename)
            rank = len(coords)
            em.line(f"tlc::sm90a::mbarrier_arrive_expect_tx(&tlc_bar[{barrier(op.name)}], "
                    f"{bytes_});  // Copy {op.name} ({tile.rows} x {tile.cols})")
            for panel in range(panels):
                column = f"{coords[0]} + {panel * tile.panel_cols}" if coords[0] != "0" \
                    else str(panel * tile.panel_cols)
                where = ", ".join([column] + coords[1:])
                em.line(f"tlc::sm90a::tma_load_{rank}d({op.name}_s + ({stage}) * "
                        f"{tile.stage_elements} + {panel * tile.rows * tile.panel_cols}, "
                        f"&{map_name(op.name)}, &tlc_bar[{barrier(op.name)}], {where});")

    # ---- the consumers' side of each copy ----

    def load_once(self, em, op: ir.Copy) -> None:
        plan = barriers_of(em.kernel, em.facts.stages)
        em.line(f"tlc::sm90a::mbarrier_wait(&tlc_bar[{plan.once[op.name]}], 0);  // Copy "
                f"{op.name}: issued by the producer")

    def emit_loop(self, em, op: ir.Loop) -> None:
        staged = staged_copies(op)
        if not staged:
            return em.emit_plain_loop(op)
        plan = barriers_of(em.kernel, em.facts.stages)
        depth = plan.stages
        var = em.loop_range(op)
        ring = bool(em.loop_stack)  # a column chunk's loop: the ring goes on across chunks
        if self.turns:
            self._take_turns(em, op, var)
        parts = _overlappable(em, op) if self.overlap else None
        if parts:
            self._overlapped_loop(em, op, plan, var, *parts, ring=ring)
        else:
            self._plain_loop(em, op, plan, var, ring)
        if ring:
            _count_turns(em, var)
            if any(isinstance(c, ir.Copy) and (c.src, c.dst) == (ir.Level.REGISTER,
                   ir.Level.SHARED) for c in ir.walk(em.loop_stack[-1].body)):
                # every consumer is past the last chunk's store from O's shared tile before
                # this chunk's writes to it
                em.line(em.sync)

    def _plain_loop(self, em, op: ir.Loop, plan: Barriers, var: str, ring: bool) -> None:
        depth, turn = plan.stages, _turn(ring)
        staged = staged_copies(op)
        em.open(f"for (int {var} = {var}_start; {var} < {var}_stop; ++{var})")
        em.loop_stack.append(op)
        em.line(f"const int tlc_stage = ({turn}{var} - {var}_start) % {depth};")
        em.line(f"const uint32_t tlc_phase = (({turn}{var} - {var}_start) / {depth}) & 1;")
        waiting = [c.name for c in staged]
        for inner in op.body:
            for name in [n for n in waiting if n in _shared_reads(inner)]:
                self._wait(em, plan, name)
                waiting.remove(name)
            em.emit_op(inner)
        for name in waiting:  # a tile no statement reads still lands before its stage is freed
            self._wait(em, plan, name)
        self._release(em, plan, [c.name for c in staged], "tlc_stage")
        em.loop_stack.pop()
        em.close()

    def _overlapped_loop(self, em, op: ir.Loop, plan: Barriers, var: str, head: list,
                         first: ir.Gemm, reshape: ir.Reshape, second: ir.Gemm,
                         ring: bool = False) -> None:
        """The loop software-pipelined across two key blocks [FlashAttention-3, §3.2]: the
        scores of block n (Q·K^T) and the output of block n - 1 (P·V) are issued back to
        back, and the softmax of block n runs while P·V is in flight; the output's rescale
        and the new P wait for it. Block `start`'s scores and P come before the loop, the
        last block's P·V after it."""
        from tlc.backends.emit import scores
        from tlc.backends.isa.mma_sync import declare_fragments, reshape_to_a

        gemm, depth, name, turn = em.target.gemm, plan.stages, first.out, _turn(ring)
        staged = [c.name for c in staged_copies(op)]
        early = [n for n in staged if n in _shared_reads(first)]  # freed once Q·K^T is done
        late = [n for n in staged if n not in early]
        declare_fragments(em, reshape)
        scores.declare_deferred_rescale(em, name)
        em.loop_stack.append(op)
        em.open(f"if ({var}_start < {var}_stop)")
        em.line(f"// key block {var}_start: its scores, softmax and P before the loop")
        if ring:
            em.line(f"const int {var} = {var}_start, tlc_stage = tlc_ring % {depth};")
            em.line(f"const uint32_t tlc_phase = (tlc_ring / {depth}) & 1;")
        else:
            em.line(f"const int {var} = {var}_start, tlc_stage = 0;")
            em.line("const uint32_t tlc_phase = 0;")
        self._wait_for(em, plan, op, [first] + head)
        gemm.emit_gemm(em, first)
        self._release(em, plan, early, "tlc_stage")
        em.deferred_rescale = True
        for inner in head:
            em.emit_op(inner)
        em.deferred_rescale = False
        reshape_to_a(em, reshape, declare=False)
        em.close()
        turn_wait, turn_pass = em.turns.pop(id(first), ([], []))
        em.open(f"for (int {var} = {var}_start + 1; {var} < {var}_stop; ++{var})")
        em.line(f"const int tlc_stage = ({turn}{var} - {var}_start) % {depth}, tlc_before = "
                f"({turn}{var} - 1 - {var}_start) % {depth};")
        em.line(f"const uint32_t tlc_phase = (({turn}{var} - {var}_start) / {depth}) & 1, "
                f"tlc_before_phase = (({turn}{var} - 1 - {var}_start) / {depth}) & 1;")
        self._wait_for(em, plan, op, [first] + head)
        em.turns[id(first)], em.turns[id(second)] = (turn_wait, []), ([], turn_pass)
        gemm.emit_gemm(em, first, wait=False)
        # O takes the rescale of block n - 1's softmax before its P·V adds into it, while
        # Q·K^T runs
        scores.deferred_rescale(em, name)
        em.block(f"// block {var} - 1's P·V, in flight with block {var}'s scores")
        em.line("const int tlc_stage = tlc_before;")
        em.line("const uint32_t tlc_phase = tlc_before_phase;")
        self._wait_for(em, plan, op, [second])
        gemm.emit_gemm(em, second, wait=False)
        em.close()
        gemm.finish(em, first, 1)
        self._release(em, plan, early, "tlc_stage")
        em.deferred_rescale = True
        for inner in head:
            em.emit_op(inner)
        em.deferred_rescale = False
        gemm.finish(em, second, 0)
        self._release(em, plan, late, "tlc_before")
        reshape_to_a(em, reshape, declare=False)
        em.close()
        em.turns.pop(id(first)), em.turns.pop(id(second))
        em.open(f"if ({var}_start < {var}_stop)")
        em.line(f"// the last key block's P·V")
        em.line(f"const int tlc_stage = ({turn}{var}_stop - 1 - {var}_start) % {depth};")
        em.line(f"const uint32_t tlc_phase = (({turn}{var}_stop - 1 - {var}_start) / {depth}) "
                "& 1;")
        scores.deferred_rescale(em, name)
        self._wait_for(em, plan, op, [second])
        gemm.emit_gemm(em, second)
        self._release(em, plan, late, "tlc_stage")
        em.close()
        em.loop_stack.pop()

    def _wait_for(self, em, plan: Barriers, loop: ir.Loop, statements) -> None:
        """Wait for this iteration's tiles that the statements read."""
        read = set().union(*(_shared_reads(s) for s in statements))
        for copy in staged_copies(loop):
            if copy.name in read:
                self._wait(em, plan, copy.name)

    @staticmethod
    def _release(em, plan: Barriers, names, stage: str) -> None:
        """Each consumer warp frees the tiles' `stage` for the producer."""
        if not names:
            return
        em.line("__syncwarp();")
        for name in names:
            em.line(f"if (tlc_lane == 0) tlc::sm90a::mbarrier_arrive(&tlc_bar["
                    f"{empty_barrier(plan, name, stage)}]);  // this warp is done with {name}")

    @staticmethod
    def _take_turns(em, op: ir.Loop, var: str) -> None:
        """Ping-pong: with two or more consumer warpgroups, each issues the loop's first GEMM
        (Q·K^T) in turn, warpgroup g after g - 1, so that one's softmax overlaps another's
        MMAs [FlashAttention-3, §3.1]. Warpgroup g waits at named barrier 2 + g for the pass
        of the one before; the last warpgroup passes first, once, to start the round, and
        not after the last iteration, so every pass meets a wait."""
        groups = em.warps // 4
        first = next((g for g in ir.walk(op.body) if isinstance(g, ir.Gemm)), None)
        if groups < 2 or first is None:
            return
        em.line("const int tlc_group_index = tlc_warp / 4;  // this consumer warpgroup")
        em.line(f"if ({var}_start < {var}_stop && tlc_group_index == {groups - 1}) "
                "tlc::sm90a::warpgroup_turn_pass(2);  // the first turn is warpgroup 0's")
        em.turns[id(first)] = (
            ["tlc::sm90a::warpgroup_turn_wait(2 + tlc_group_index);"],
            [f"if (tlc_group_index != {groups - 1} || {var} + 1 < {var}_stop) "
             f"tlc::sm90a::warpgroup_turn_pass(2 + (tlc_group_index + 1) % {groups});"])

    @staticmethod
    def _wait(em, plan: Barriers, name: str) -> None:
        em.line(f"tlc::sm90a::mbarrier_wait(&tlc_bar[{plan.staged[name]} + tlc_stage], "
                f"tlc_phase);  // {name}'s tile of this iteration")


def _overlappable(em, loop: ir.Loop):
    """(the statements between the scores' GEMM and the Reshape, the scores' GEMM, the
    Reshape, the output's GEMM) where the loop is a flash loop the overlap applies to: after
    its copies, a GEMM into scores, statements on them ending in a Softmax, a Reshape of them
    into the A operand of the last statement, a GEMM accumulating into the softmax's output;
    else None."""
    body = [s for s in loop.body if not (isinstance(s, ir.Copy) and s.dst in (
        ir.Level.SHARED, ir.Level.REGISTER) and s.src in (ir.Level.GLOBAL, ir.Level.SHARED))]
    if len(body) < 4 or not hasattr(em.target.gemm, "finish"):
        return None
    first, *head, reshape, second = body
    if not (isinstance(first, ir.Gemm) and not first.accumulate and isinstance(reshape, ir.Reshape)
            and reshape.name == first.out and isinstance(second, ir.Gemm) and second.accumulate
            and second.a.name == first.out and em.schedule.softmax.get(first.out) == second.out
            and any(isinstance(s, ir.Softmax) for s in head)):
        return None
    if any(isinstance(s, (ir.Loop, ir.Gemm, ir.Copy, ir.Reshape)) for s in head):
        return None
    return head, first, reshape, second


def chunk_loop(kernel: ir.Kernel) -> ir.Loop | None:
    """The loop of the kernel's body around the loop that copies from global memory (the
    column chunks of a split head dim), or None."""
    for op in kernel.body:
        if isinstance(op, ir.Loop) and not staged_copies(op) and any(
                isinstance(inner, ir.Loop) and staged_copies(inner) for inner in op.body):
            return op
    return None


def _turn(ring: bool) -> str:
    """Where a chunk's loop starts in the ring: after the iterations of the chunks before."""
    return "tlc_ring + " if ring else ""


def _count_turns(em, var: str) -> None:
    em.line(f"if ({var}_stop > {var}_start) tlc_ring += {var}_stop - {var}_start;")


def consumer_registers(em) -> int | None:
    """The consumers' register count where registers move from the producer to them, else
    None (the arch's rule, which the checker holds plans to)."""
    arch, blocks = em.target.facts, em.resident_blocks
    return arch.register_limit(em.threads, blocks) if arch.moves_registers(em.threads, blocks) \
        else None


def _shared_reads(op) -> set[str]:
    """The shared tiles a statement (or the statements inside it) reads."""
    found = set()
    for inner in ir.walk([op]):
        if isinstance(inner, ir.Gemm):
            found |= {inner.a.name, inner.b.name}
        elif isinstance(inner, ir.Copy) and inner.src is ir.Level.SHARED:
            found.add(inner.name)
    return found


def map_name(tensor: str) -> str:
    return f"{tensor}_map"


def tma_coordinates(em, op: ir.Copy, rename: dict) -> list[str]:
    """C coordinates of the tile's first element, innermost dimension first: the column
    (a column chunk's start), the row (the tile index times its rows), then the index of
    every outer dimension."""
    tensor, tile = em.kernel.tensor(op.name), em.shared[op.name]
    coord, shape = dict(op.coord), tensor.shape
    found = []
    for position in range(len(shape) - 1, -1, -1):
        dim = shape[position]
        name = dim.name if isinstance(dim, ir.Sym) else None
        index = c_expr(coord[name], rename) if name in coord else "0"
        if position == len(shape) - 2:
            index = f"({index}) * {tile.rows}" if index != "0" else "0"
        elif position == len(shape) - 1:
            width = em.facts.value(dim)
            index = f"({index}) * {tile.cols}" if index != "0" and width != tile.cols else "0"
        found.append(index)
    return found

