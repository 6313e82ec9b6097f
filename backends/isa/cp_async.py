"""cp.async copies from global to shared memory, software-pipelined `stages` deep inside a
loop [PTX ISA, "Data Movement and Conversion Instructions", cp.async, commit_group,
wait_group]: the tiles of the next stages are in flight while the current one is computed.
cp.async moves bytes, so a tile keeps its global dtype."""
from __future__ import annotations

from dataclasses import dataclass

from tlc import ir
from tlc.backends.isa.engine import CopyEngine
from tlc.backends.emit.tiles import TileAddress, shared_tile_address
from tlc.backends.schedule import Pipeline, staged_copies, statements_within
from tlc.backends.target import Unsupported
from tlc.passes.facts import text
from tlc.passes.infer_shapes import CONVERTING_LOADS


# Copies a thread issues an iteration whose addresses the fixed overhead of the register model
# covers (backends/resources.py); calibrated on the 1-, 2- and 4-warp tiles of sm_80 plans.
ADDRESSES_INCLUDED = 32


@dataclass(frozen=True)
class CpAsync(CopyEngine):
    name: str = "cp.async"

    def pipeline(self, loop: ir.Loop, facts) -> Pipeline:
        """The loop's copies as one ring: stage s of every tile holds block n + s, so every
        tile of the ring is as deep as the ring (a shallower one would be addressed past its
        end, into the next buffer)."""
        copies = staged_copies(loop)
        depth = max([facts.stages(c.name) for c in copies] or [1])
        deepest = next(c for c in copies if facts.stages(c.name) == depth)
        for copy in copies:
            if facts.stages(copy.name) != depth:
                clause = f"stages {text(deepest.stages)}" if deepest.stages is not None else ""
                raise Unsupported(
                    copy, f"`{copy.name}` is copied {facts.stages(copy.name)} stage(s) deep and "
                    f"`{deepest.name}` {depth} in the same loop: a loop's cp.async copies form "
                    "one ring, every tile of it as deep",
                    help=f"give this Copy `{clause}` as `{deepest.name}` has, or copy "
                         f"`{copy.name}` outside the loop if it does not change with `{loop.var}`")
        return Pipeline(loop.var, tuple(c.name for c in copies), depth, self.name)

    def in_flight(self, facts, op, loops) -> list:
        """Tiles land in shared memory without passing through registers, but ptxas keeps
        an address a copy for the copies a thread issues an iteration, past the first
        ADDRESSES_INCLUDED (which the fixed overhead covers). It matters where few threads
        copy wide tiles: one warp, 128 x 128 fp16 K and V tiles, is 128 copies a thread,
        and ptxas spilled such a plan estimated at 199 registers without this term."""
        if not loops or not isinstance(op, ir.Gemm) or facts.threads is None:
            return []
        elements = 0
        for copy in staged_copies(loops[-1]):
            tile = [facts.value(d) for d in copy.tile or ()]
            if tile and all(isinstance(t, int) for t in tile):
                count = 1
                for extent in tile:
                    count *= extent
                elements += count
        vector = 8  # 16-byte copies of 2-byte elements, the widest the checker allows
        copies = -(-elements // (vector * facts.threads))
        extra = copies - ADDRESSES_INCLUDED
        return [("cp.async addresses", extra)] if extra > 0 else []

    def check_copy(self, em, op: ir.Copy) -> None:
        tensor, tile = em.kernel.tensor(op.name), em.shared.get(op.name)
        if tensor and tile and (tensor.dtype, tile.dtype) in CONVERTING_LOADS:
            raise Unsupported(
                op, f"tlc's {em.target.arch} code copies tiles with cp.async, which moves "
                f"bytes: it cannot load {tensor.dtype.value} `{op.name}` as "
                f"{tile.dtype.value}",
                help=f"allocate `{op.name}` in shared with dtype {tensor.dtype.value}, as it is "
                     f"in global memory ({em.target.arch} tensor cores take "
                     f"{tensor.dtype.value})")

    def load_once(self, em, op: ir.Copy) -> None:
        """A tile outside any loop: issued, waited for, made visible. Where only copies like
        it stand between it and a pipelined loop, the loop's first wait covers its group
        (groups complete in order), so it is in flight with the loop's first tiles rather
        than a memory latency ahead of them: what a decoding block, a handful of key tiles
        long, spends most on."""
        self.check_copy(em, op)
        self._issue_tiles(em, [op], None, "0", None)
        em.line("tlc::cp_async_commit();")
        if self._joins_loop(em.following):
            em.line(f"// {op.name}: waited for with the first tiles of the loop that follows")
            em.joined_loads.append(op.name)
            return
        em.line("tlc::cp_async_wait<0>();")
        em.line("__syncthreads();")

    @staticmethod
    def _joins_loop(following) -> bool:
        """Whether the statements after a load are loads from global to shared and then a
        loop whose every iteration starts by waiting on its copies."""
        for op in following:
            if isinstance(op, ir.Loop):
                return bool(staged_copies(op))
            if not (isinstance(op, ir.Copy) and (op.src, op.dst) == (ir.Level.GLOBAL,
                                                                     ir.Level.SHARED)):
                return False
        return False

    def emit_loop(self, em, op: ir.Loop) -> None:
        staged = staged_copies(op)
        if not staged:
            return em.emit_plain_loop(op)
        for copy in staged:
            self.check_copy(em, copy)
        depth = em.schedule_pipeline(op).stages
        refill = last_reader(op, staged) if depth == 1 else None
        var = em.loop_range(op)
        if refill is not None:  # the first tiles, in flight before the loop
            em.open(f"if ({var}_start < {var}_stop)")
            self._issue_tiles(em, staged, f"{var}_start", "0", op.var)
            em.close()
            em.line("tlc::cp_async_commit();")
        for ahead in range(depth - 1):  # the pipeline's prologue: the first tiles in flight
            em.open(f"if ({var}_start + {ahead} < {var}_stop)")
            self._issue_tiles(em, staged, f"({var}_start + {ahead})", str(ahead), op.var)
            em.close()
            em.line("tlc::cp_async_commit();")
        em.open(f"for (int {var} = {var}_start; {var} < {var}_stop; ++{var})")
        em.loop_stack.append(op)
        if depth > 1:
            # One barrier an iteration: once block n has landed and every warp is past the
            # barrier, every warp is done with block n - 1, so its stage takes block
            # n + depth - 1 while this block is computed.
            em.line(f"tlc::cp_async_wait<{depth - 2}>();")
            em.line("__syncthreads();")
            em.line(f"const int tlc_stage = ({var} - {var}_start) % {depth};")
            em.line(f"const int tlc_next = {var} + {depth - 1};")
            em.open(f"if (tlc_next < {var}_stop)")
            self._issue_tiles(em, staged, "tlc_next", f"((tlc_next - {var}_start) % {depth})",
                              op.var)
            em.close()
            em.line("tlc::cp_async_commit();")
        elif refill is None:  # one stage: load, wait, compute, wait for every warp, reload
            self._issue_tiles(em, staged, var, "0", op.var)
            em.line("tlc::cp_async_commit();")
            em.line("tlc::cp_async_wait<0>();")
            em.line("__syncthreads();")
            em.line("const int tlc_stage = 0;")
        else:  # one stage, refilled once its last reader is done (the prologue issued the first)
            em.line("tlc::cp_async_wait<0>();")
            em.line("__syncthreads();")
            em.line("const int tlc_stage = 0;")
        for inner in op.body:
            em.emit_op(inner)
            if inner is refill:
                names = ", ".join(c.name for c in staged)
                em.line(f"__syncthreads();  // every warp is done with {names}: load the next "
                        "ones under what follows")
                em.open(f"if ({var} + 1 < {var}_stop)")
                self._issue_tiles(em, staged, f"({var} + 1)", "0", op.var)
                em.close()
                em.line("tlc::cp_async_commit();")
        if depth == 1 and refill is None:
            em.line("__syncthreads();  // the next iteration refills the stage just read")
        em.loop_stack.pop()
        em.close()
        if em.joined_loads and not em.loop_stack:
            # a loop that ran no iteration never waited for the loads before it
            em.line(f"tlc::cp_async_wait<0>();  // {', '.join(em.joined_loads)}: in case the "
                    "loop ran no iteration")
            em.joined_loads.clear()
            if depth == 1:
                em.line("__syncthreads();")
        if depth > 1:
            em.line("__syncthreads();  // what follows may refill the stages")

    def _issue_tiles(self, em, copies, index: str | None, stage: str, var: str | None) -> None:
        for op in copies:
            tile = em.shared_tile(op.name, op)
            rows, cols, stride = tile.rows, tile.cols, tile.stride
            at = shared_tile_address(em, op, {var: index} if var else {})
            em.block(f"// Copy {op.name} ({rows} x {cols}) from global to shared")
            em.line(f"{tile.ctype}* tlc_dst = {op.name}_s + ({stage}) * {rows * stride};")
            em.line(f"const {tile.ctype}* tlc_src = {op.name}_g + {at.offset};")
            em.line(f"const int tlc_rows_left = {at.row_limit} - {at.first_row};")
            chunks_per_row = cols // 8  # 16-byte chunks
            if em.threads % chunks_per_row == 0 and rows * chunks_per_row % em.threads == 0:
                self._copy_passes(em, tile, at, chunks_per_row)
                em.close()
                continue
            em.open(f"for (int tlc_c = threadIdx.x; tlc_c < {rows * cols // 8}; "
                    f"tlc_c += {em.threads})")
            em.line(f"const int tlc_r = tlc_c / {cols // 8}, tlc_col = (tlc_c % {cols // 8}) * 8;")
            em.line(f"const bool tlc_valid = {at.valid('tlc_r', 'tlc_col')};")
            em.line(f"tlc::cp_async_16(tlc::smem_address(tlc_dst + tlc_r * {stride} + tlc_col), "
                    f"tlc_src + (tlc_valid ? (long long)tlc_r * {at.row_stride} + tlc_col : 0), "
                    "tlc_valid);")
            em.close()
            em.close()

    def _copy_passes(self, em, tile, at: TileAddress, chunks_per_row: int) -> None:
        """A tile whose chunks the block's threads cover in whole passes: each thread keeps one
        column and a first row, and pass t adds a compile-time row offset, so every cp.async
        addresses [register + immediate] and no per-chunk index arithmetic remains."""
        rows_per_pass = em.threads // chunks_per_row
        passes = tile.rows * chunks_per_row // em.threads
        stride, element = tile.stride, tile.dtype.bytes
        em.line(f"const int tlc_r0 = threadIdx.x / {chunks_per_row}, tlc_col = (threadIdx.x % "
                f"{chunks_per_row}) * 8;")
        em.line(f"const auto* tlc_from = tlc_src + (long long)tlc_r0 * {at.row_stride} + tlc_col;")
        em.line(f"const uint32_t tlc_to = tlc::smem_address(tlc_dst + tlc_r0 * {stride} + tlc_col);")
        em.open(f"for (int tlc_t = 0; tlc_t < {passes}; ++tlc_t)")
        em.line(f"const bool tlc_valid = {at.valid(f'tlc_r0 + tlc_t * {rows_per_pass}', 'tlc_col')};")
        em.line(f"tlc::cp_async_16(tlc_to + tlc_t * {rows_per_pass * stride * element}, "
                f"tlc_valid ? tlc_from + (long long)tlc_t * {rows_per_pass} * {at.row_stride} : "
                "tlc_src, tlc_valid);")
        em.close()


def last_reader(loop: ir.Loop, staged: list) -> object | None:
    """The statement of a one-stage loop's body after which no statement reads its staged
    tiles, where statements follow it: there every warp can be waited for and the next
    iteration's tiles issued, to land under those statements rather than after the
    iteration's first barrier (the backward's Q and dO, last read by dK += dS^T Q, load
    under dQ = dS K and its reductions). None where the last reader ends the body."""
    names = {c.name for c in staged}
    last = None
    for index, op in enumerate(loop.body):
        if any(isinstance(x, ir.Copy) and x.name in names or
               isinstance(x, ir.Gemm) and {x.a.name, x.b.name} & names
               for x in statements_within(op)):
            last = index
    if last is None or last == len(loop.body) - 1:
        return None
    return loop.body[last]
