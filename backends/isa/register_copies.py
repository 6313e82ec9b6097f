"""Copies through registers, for a target without cp.async (Turing): how a loop's global ->
shared copies are scheduled and emitted, and what they cost in registers.

Each tile is loaded into registers one compute phase ahead and stored to shared memory just
before the first statement that reads it. Copies first read at the same statement form a
group. Group g's loads are issued right after group g - 1 is stored (group 0's, for the next
iteration, right after the last group is stored), so their latency hides behind the compute
in between, and a thread holds only one group's tiles at a time: for attention, V arrives
while Q·K^T runs and the next K while P·V runs.

One `__syncthreads()` after each store makes the tile visible. A store needs one before it
too only when a reader of the tile it replaces may still be running: for group 0 when the
last group is stored before group 0's last reader (or there is one group only); a later
group's old tile was last read in the previous iteration, before group 0's store and sync.

The emitter below follows this plan and the register model (backends/resources.py) counts
the tiles in flight from it (`RegisterCopies.in_flight`), so both see the same schedule. Chunks
are whole rows apart, so a thread's addresses are compile-time offsets of one: an address per
chunk would be hoisted out of the loop and held in registers (a first version spilled so).
A tile may convert on its way (bf16 to fp16, docs/backend.md "bf16 on Turing").
"""
from __future__ import annotations

from dataclasses import dataclass

from tlc import ir
from tlc.backends.isa.engine import CopyEngine
from tlc.backends.emit.tiles import declare_source
from tlc.backends.resources import ceil
from tlc.backends.schedule import C_TYPES, Pipeline, staged_copies
from tlc.backends.target import Unsupported

CHUNK_BYTES = 16  # one uint4 load per thread per chunk


@dataclass(frozen=True)
class Group:
    copies: tuple[ir.Copy, ...]
    store: int              # body index whose statement first reads the tiles
    issue: int              # body index after whose store the loads start (the previous group's)
    sync_before_store: bool


def groups(loop: ir.Loop) -> list[Group]:
    """The loop's staged copies grouped by store point, in body order."""
    stores: dict[int, list[ir.Copy]] = {}
    last_read: dict[int, int] = {}
    for copy in staged_copies(loop):
        at = loop.body.index(copy)
        readers = [i for i, op in enumerate(loop.body) if i > at and _reads(op, copy.name)]
        store = readers[0] if readers else len(loop.body)
        stores.setdefault(store, []).append(copy)
        last_read[store] = max([last_read.get(store, store)] + readers)
    points = sorted(stores)
    result = []
    for g, store in enumerate(points):
        previous = points[g - 1]  # for group 0: the last group, an iteration earlier
        sync = g == 0 and (len(points) == 1 or last_read[store] >= previous)
        result.append(Group(tuple(stores[store]), store, previous, sync))
    return result


def in_flight(group: Group, index: int, count: int) -> bool:
    """Whether the group's loads occupy registers while the statement at body index runs."""
    if count == 1:
        return True
    if group.issue < group.store:
        return group.issue <= index < group.store
    return index >= group.issue or index < group.store  # group 0: across the loop's back edge


def rows_per_pass(cols: int, element_bytes: int, threads: int) -> int:
    """Rows of a tile the block loads in one pass, each thread at one fixed 16-byte column of
    them (threads past rows × chunks-per-row idle), so that a thread's chunks lie whole rows
    apart: compile-time offsets from one address, instead of an address per chunk that the
    compiler would hoist out of the loop and keep in registers. 0 when a row has more chunks
    than the block has threads."""
    return threads // (cols * element_bytes // CHUNK_BYTES)


def chunks_per_thread(rows: int, cols: int, element_bytes: int, threads: int) -> int:
    """16-byte chunks of a rows × cols tile that each thread loads."""
    per_pass = rows_per_pass(cols, element_bytes, threads)
    if per_pass:
        return -(-rows // per_pass)
    return -(-rows * cols * element_bytes // CHUNK_BYTES // threads)


def _reads(op, name: str) -> bool:
    if isinstance(op, ir.Loop):
        return any(_reads(inner, name) for inner in op.body)
    if isinstance(op, ir.Copy):
        return op.name == name
    if isinstance(op, ir.Gemm):
        return name in (op.a.name, op.b.name)
    return False


@dataclass(frozen=True)
class RegisterCopies(CopyEngine):
    name: str = "registers"
    # A tile in flight costs more than its 4 registers a chunk: around it ptxas still
    # schedules the GEMMs' fragment loads early, as it does when registers are free.
    # Calibrated on a sweep of 1196 sm_75 configurations (fp16 and bf16-as-fp16; D 32-256;
    # BM 64/128; BN 16-128; 4 or 8 warps; Q held or streamed; O staged or not; causal or not):
    # at 2.0, 12 accepted configurations spilled (BN = 128 with 16 rows a warp, the worst);
    # at 2.5, none did.
    in_flight_factor: float = 2.5

    def pipeline(self, loop: ir.Loop, facts) -> Pipeline:
        return Pipeline(loop.var, tuple(c.name for c in staged_copies(loop)), 1, self.name)

    def in_flight(self, facts, op, loops) -> list[tuple[str, int]]:
        """The tiles held in registers while `op` runs, in each loop around it."""
        parts = []
        for depth, loop in enumerate(loops):
            child = loops[depth + 1] if depth + 1 < len(loops) else op
            index = next(i for i, x in enumerate(loop.body) if x is child)
            found = groups(loop)
            for group in found:
                if not in_flight(group, index, len(found)):
                    continue
                for copy in group.copies:
                    buffer = facts.buffers.get((copy.name, ir.Level.SHARED))
                    tensor = facts.tensors.get(copy.name)
                    shape = facts.shape(buffer) if buffer else ()
                    if len(shape) == 2 and all(isinstance(x, int) for x in shape) and tensor \
                            and tensor.dtype:
                        chunks = chunks_per_thread(*shape, tensor.dtype.bytes, facts.threads)
                        parts.append((f"{copy.name} (next tile, on its way to shared)",
                                      ceil(self.in_flight_factor * 4 * chunks)))
        return parts

    # ---- emission ----

    def load_once(self, em, op: ir.Copy) -> None:
        """A tile outside any loop, through registers: loaded, stored, made visible."""
        tile = em.shared_tile(op.name, op)
        rows, cols, stride = tile.rows, tile.cols, tile.stride
        em.block(f"// Copy {op.name} ({rows} x {cols}) from global to shared, through registers"
                 f"{_converting(em, op)}")
        at = declare_source(em, op, {})
        em.open(f"for (int tlc_c = threadIdx.x; tlc_c < {rows * cols // 8}; tlc_c += {em.threads})")
        em.line(f"const int tlc_r = tlc_c / {cols // 8}, tlc_col = (tlc_c % {cols // 8}) * 8;")
        em.line(f"const bool tlc_valid = {at.valid('tlc_r', 'tlc_col')};")
        em.line(f"const uint4 tlc_raw = tlc::load_16(tlc_src + (tlc_valid ? (long long)tlc_r "
                f"* {at.row_stride} + tlc_col : 0), tlc_valid);")
        em.line(f"*reinterpret_cast<uint4*>({op.name}_s + tlc_r * {stride} + tlc_col) = "
                f"{_convert(em, op, 'tlc_raw')};")
        em.close()
        em.close()
        em.line("__syncthreads();")

    def emit_loop(self, em, op: ir.Loop) -> None:
        """A loop whose tiles reach shared memory through registers, on the schedule above."""
        if not staged_copies(op):
            return em.emit_plain_loop(op)
        found = groups(op)
        var = em.loop_range(op)
        for group in found:
            for copy in group.copies:
                if f"{copy.name}_next" in em.declared:
                    raise Unsupported(copy, f"`{copy.name}` is copied from global memory "
                                      "more than once in its loops; the register pipeline "
                                      "keeps one tile of it in flight",
                                      help=f"keep one `Copy {copy.name} ... from global to "
                                           "shared`")
                em.declared.add(f"{copy.name}_next")
                em.line(f"uint4 {copy.name}_next[{self._chunks(em, copy.name)}];  // the next "
                        f"{copy.name} tile, on its way to shared memory")
        em.open(f"if ({var}_start < {var}_stop)")
        self._load_group(em, found[0], f"{var}_start", op.var)
        em.close()
        em.open(f"for (int {var} = {var}_start; {var} < {var}_stop; ++{var})")
        em.loop_stack.append(op)
        for index in range(len(op.body) + 1):
            for g, group in enumerate(found):
                if group.store == index:
                    self._store_group(em, group, found, g, var, op.var)
            if index < len(op.body):
                em.emit_op(op.body[index])
        em.loop_stack.pop()
        em.close()

    def _store_group(self, em, group, found, g: int, var: str, loop_var: str) -> None:
        names = ", ".join(c.name for c in group.copies)
        if group.sync_before_store:
            em.line(f"__syncthreads();  // every warp is done with the {names} tile replaced")
        for copy in group.copies:
            self._store_registers(em, copy)
        em.line("__syncthreads();")
        if g + 1 < len(found):
            self._load_group(em, found[g + 1], var, loop_var)
        else:
            em.open(f"if ({var} + 1 < {var}_stop)")
            self._load_group(em, found[0], f"({var} + 1)", loop_var)
            em.close()

    def _chunks(self, em, name: str) -> int:
        tile = em.shared[name]
        return chunks_per_thread(tile.rows, tile.cols, _bytes(em, name), em.threads)

    def _load_group(self, em, group, index: str, loop_var: str) -> None:
        """Issue the global loads of each tile of the group into its registers."""
        for copy in group.copies:
            tile = em.shared_tile(copy.name, copy)
            em.block(f"// Copy {copy.name} ({tile.rows} x {tile.cols}) from global, into "
                     "registers")
            at = declare_source(em, copy, {loop_var: index})
            row, col, valid = self._chunk(em, copy.name)
            em.open(f"for (int tlc_v = 0; tlc_v < {self._chunks(em, copy.name)}; ++tlc_v)")
            em.line(f"const int tlc_r = {row}, tlc_col = {col};")
            em.line(f"const bool tlc_valid = {valid} && {at.valid('tlc_r', 'tlc_col')};")
            # The address is formed for every chunk (compile-time steps from tlc_src) and only
            # the load is predicated: nothing past the end is read.
            em.line(f"{copy.name}_next[tlc_v] = tlc::load_16(tlc_src + (long long)tlc_r * "
                    f"{at.row_stride} + tlc_col, tlc_valid);")
            em.close()
            em.close()

    def _chunk(self, em, name: str) -> tuple[str, str, str]:
        """C for this thread's chunk tlc_v of a tile: (row, column, whether the block's chunks
        reach it), per the distribution of rows_per_pass."""
        rows, cols = em.shared[name].rows, em.shared[name].cols
        chunks_per_row, threads = cols // 8, em.threads
        per_pass = rows_per_pass(cols, _bytes(em, name), threads)
        if per_pass:
            valid = "true" if per_pass * chunks_per_row == threads else \
                f"threadIdx.x < {per_pass * chunks_per_row}"
            if rows % per_pass:
                valid += f" && threadIdx.x / {chunks_per_row} + tlc_v * {per_pass} < {rows}"
            return (f"threadIdx.x / {chunks_per_row} + tlc_v * {per_pass}",
                    f"(threadIdx.x % {chunks_per_row}) * 8", valid)
        chunk = f"(threadIdx.x + tlc_v * {threads})"
        valid = "true" if rows * chunks_per_row % threads == 0 else \
            f"{chunk} < {rows * chunks_per_row}"
        return f"{chunk} / {chunks_per_row}", f"({chunk} % {chunks_per_row}) * 8", valid

    def _store_registers(self, em, copy: ir.Copy) -> None:
        stride = em.shared[copy.name].stride
        row, col, valid = self._chunk(em, copy.name)
        em.block(f"// Copy {copy.name} into shared memory{_converting(em, copy)}")
        em.open(f"for (int tlc_v = 0; tlc_v < {self._chunks(em, copy.name)}; ++tlc_v)")
        if valid != "true":
            em.line(f"if (!({valid})) break;")
        em.line(f"*reinterpret_cast<uint4*>({copy.name}_s + ({row}) * {stride} + {col}) = "
                f"{_convert(em, copy, f'{copy.name}_next[tlc_v]')};")
        em.close()
        em.close()


def _bytes(em, name: str) -> int:
    """Bytes of one element of `name` in global memory (what the chunks carry)."""
    return em.kernel.tensor(name).dtype.bytes


def _converting(em, copy: ir.Copy) -> str:
    tensor = em.kernel.tensor(copy.name).dtype
    return f", {tensor.value} to fp16" if C_TYPES[tensor] != em.shared[copy.name].ctype else ""


def _convert(em, copy: ir.Copy, raw: str) -> str:
    """C for 16 loaded bytes as the shared tile stores them."""
    return f"tlc::bf16x8_to_f16x8({raw})" if _converting(em, copy) else raw
