"""Warpgroup MMA (sm_90a): wgmma.mma_async m64nNk16 with B, and A unless it is in registers,
read from shared memory through matrix descriptors [PTX ISA, "Asynchronous Warpgroup Level
Matrix Multiply-Accumulate Instructions"; the helpers are backends/include/tlc_sm90a.cuh].

Each consumer warpgroup computes 64 rows of a GEMM, 16 a warp, so the accumulators a thread
holds are laid out as mma.sync's m16n8 tiles (`M16N8`, one row tile a warp): the score rules
and the accumulator -> A-operand Reshape are shared with isa/mma_sync.py. Shared operands are
the copy engine's swizzled tiles (isa/tma.py): panels of 64 columns (128 bytes of a row),
each row 128 bytes after the last, 8-row groups 1024 bytes apart.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tlc import ir
from tlc.arch import MMA_SHAPES
from tlc.backends.isa.mma_sync import M16N8, FragmentLayout, operand_dtype, reshape_to_a
from tlc.backends.schedule import WarpTiles, gemm_dims
from tlc.backends.target import Unsupported

GROUP_BYTES = 1024  # 8 rows of 128 bytes: the descriptor's stride-dimension byte offset
PANEL_COLS = 64     # 16-bit columns in the 128-byte swizzle span


@dataclass(frozen=True)
class Wgmma:
    instruction_n: tuple[int, ...]   # the N of the wrappers tlc_sm90a.cuh has
    layout: FragmentLayout = field(default=M16N8)
    load_k: int = 16                 # the register model's terms: no operand is streamed
    b_columns_per_load: int = 0
    splits_columns: bool = False     # a warpgroup's MMA spans its tile's columns (tiling.py)

    @property
    def shapes(self) -> tuple[str, ...]:
        """The mma shapes plans may name for this backend."""
        return tuple(f"m64n{n}k16" for n in self.instruction_n)

    def warp_tiles(self, gemm: ir.Gemm, dims: tuple[int, int, int],
                   layout: tuple[int, int]) -> WarpTiles:
        warps = layout[0]  # the checker keeps warpgroup MMAs' columns to one warp (tiling.py)
        shape = MMA_SHAPES.get(gemm.mma or "")
        m, n, k = dims
        if shape is None or not shape.warpgroup:
            fix = f"m64n{n}k16" if n in self.instruction_n else f"m64n{self.instruction_n[-1]}k16"
            raise Unsupported(gemm, f"mma {gemm.mma}: sm_90a code issues warpgroup MMAs, "
                              f"m64nNk16", help=f"use `mma {fix}`",
                              replace=(gemm.mma, fix) if gemm.mma else None)
        n, k = shape.extents(n, k, gemm.b.transposed)  # whole panels (tlc.arch)
        if shape.n not in self.instruction_n or n % shape.n:
            fits = [x for x in self.instruction_n if n % x == 0]
            options = " or ".join(f"m64n{x}k16" for x in fits)
            widest = f"m64n{max(fits)}k16" if fits else None
            wide = f" ({n} in whole panels)" if n != dims[1] else ""
            raise Unsupported(gemm, f"mma {gemm.mma} for a GEMM of N = {dims[1]}{wide}: tlc's "
                              "wgmma takes "
                              f"N = {' or '.join(map(str, self.instruction_n))}, the tile's N "
                              "or a part of it", help=f"use `mma {options}`" if options else
                              "make the tile's N a multiple of 64",
                              replace=(gemm.mma, widest) if widest else None)
        if m != warps * 16:
            raise Unsupported(gemm, f"a GEMM of M = {m} rows with {warps} warps: tlc's wgmma "
                              "code gives each warpgroup one 64-row MMA",
                              help=f"use {m // 16} warps ({m // 64} warpgroups) or M = "
                                   f"{warps * 16}" if m % 64 == 0 else
                              f"make M {warps * 16}, 16 rows a warp")
        if k % 16:
            raise Unsupported(gemm, f"K = {k}: wgmma steps through K 16 at a time",
                              help="make K a multiple of 16")
        return WarpTiles(1, n // 8, k // 16, warps)

    # ---- GEMM ----

    def emit_gemm(self, em, op: ir.Gemm, wait: bool = True) -> None:
        """The GEMM issued and, with wait, waited for; without, `finish` waits later."""
        if op.a.transposed:
            raise Unsupported(op, "a transposed A operand")
        tiles = em.schedule.warp_tiles(op)
        dtype = operand_dtype(em.kernel, op.a.name, op)
        shape = MMA_SHAPES[op.mma]
        in_registers = f"{op.a.name}_frag" in em.declared
        depth = gemm_dims(em.facts, op)[2]
        if in_registers and depth % 16:  # no zeros past K there
            raise Unsupported(op, f"A (`{op.a.name}`) in registers with K = {depth}: its "
                              "fragments are whole 16-deep steps",
                              help="make K a multiple of 16")
        a_tile = None if in_registers else self._shared_operand(em, op.a.name, op, "A")
        b_tile = self._shared_operand(em, op.b.name, op, "B")
        form = "rs" if in_registers else "ss"
        wrapper = f"tlc::sm90a::wgmma_m64n{shape.n}k16_{form}_{dtype.value}<{0 if op.b.transposed else 1}>"
        chunks = tiles.n * 8 // shape.n
        em.block(f"// Compute GEMM {op.a.name}, {op.b.name}{'^T' if op.b.transposed else ''} "
                 f"{'accumulating into' if op.accumulate else 'into'} {op.out}: wgmma, "
                 f"{'A from registers' if in_registers else 'A'} and B from shared memory")
        before, after = em.turns.get(id(op), ([], []))
        for line in before:
            em.line(line)
        em.line("tlc::sm90a::wgmma_fence();  // the accumulators' and A's registers are written")
        em.open(f"for (int kk = 0; kk < {tiles.k}; ++kk)")
        if in_registers:
            a = f"{op.a.name}_frag[0][kk]"
        else:
            em.line(f"const uint64_t tlc_a = {_k_major(em, a_tile, 'tlc_warp / 4 * 64')};")
            a = "tlc_a"
        accumulate = "1" if op.accumulate else "kk > 0"
        for chunk in range(chunks):
            first = chunk * shape.n
            if op.b.transposed:  # stored (N, K): K-major
                b = _k_major(em, b_tile, str(first))
            else:  # stored (K, N): MN-major, read through the transpose bit
                b = _mn_major(em, b_tile, first)
            em.line(f"{wrapper}({_flat(op.out, first, shape.n)}, {a}, {b}, {accumulate});")
        em.close()
        em.line("tlc::sm90a::wgmma_commit();")
        for line in after:
            em.line(line)
        if wait:
            self.finish(em, op, 0)
        em.close()

    def finish(self, em, op: ir.Gemm, pending: int) -> None:
        """Wait until at most `pending` committed GEMMs are in flight, the last ones issued
        (wgmma groups complete in order), so `op`'s accumulators are written, and keep the
        compiler from touching them before."""
        shape = MMA_SHAPES[op.mma]
        em.line(f"tlc::sm90a::wgmma_wait<{pending}>();  // {op.out} is written")
        for chunk in range(em.schedule.warp_tiles(op).n * 8 // shape.n):
            em.line(f"tlc::sm90a::wgmma_hold({_flat(op.out, chunk * shape.n, shape.n)});")

    @staticmethod
    def _shared_operand(em, name: str, op: ir.Gemm, role: str):
        tile = em.shared_tile(name, op)
        if not tile.swizzled:
            raise Unsupported(op, f"`{name}` (operand {role}) is in shared memory that the copy "
                              "engine did not fill: wgmma reads tiles in the TMA's swizzled "
                              "layout", help=f"load `{name}` from global memory into its shared "
                                             "buffer")
        return tile

    # ---- operands in registers ----

    def hold_operand(self, em, op: ir.Copy) -> None:
        """A Copy of a GEMM operand from shared memory into registers: wgmma reads B, and an
        A that no Reshape made, from shared memory, so the Copy moves nothing."""
        em.line(f"// Copy {op.name} from shared to register: wgmma reads it from shared memory")

    def emit_reshape(self, em, op: ir.Reshape) -> None:
        reshape_to_a(em, op)


def _k_major(em, tile, first_row: str) -> str:
    """The descriptor of a K-major operand at k-step kk, from row `first_row`: 16 columns
    (32 bytes) a step inside a 64-column panel, then the next panel."""
    panel = tile.rows * PANEL_COLS
    start = f"{em.smem(tile.name)} + (kk / 4) * {panel} + ({first_row}) * {PANEL_COLS} + (kk % 4) * 16"
    return (f"tlc::sm90a::smem_descriptor({start}, 16, {GROUP_BYTES}, "
            "tlc::sm90a::SWIZZLE_128B)")


def _mn_major(em, tile, first_col: int) -> str:
    """The descriptor of an MN-major operand (rows along K) at k-step kk, from column
    `first_col`: 16 rows a step; the leading byte offset is the distance between panels,
    which an N of more than 64 spans."""
    panel = tile.rows * PANEL_COLS
    start = f"{em.smem(tile.name)} + {first_col // PANEL_COLS * panel} + kk * {16 * PANEL_COLS}"
    return (f"tlc::sm90a::smem_descriptor({start}, {panel * tile.dtype.bytes}, {GROUP_BYTES}, "
            "tlc::sm90a::SWIZZLE_128B)")


def _flat(name: str, first_col: int, n: int) -> str:
    """Accumulator columns first_col.. first_col + n of `name` as the flat array a wgmma of N
    = n writes: n-tile j's 4 elements are registers 4j..4j+3 [PTX ISA, wgmma D fragment]."""
    return f"*reinterpret_cast<float(*)[{n // 2}]>(&{name}_acc[0][{first_col // 8}][0])"

