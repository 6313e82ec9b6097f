"""Warp-level MMA: ldmatrix loads from shared memory and mma.sync m16n8k16 (or two m16n8k8 on
Turing) [PTX ISA, "Warp-level Matrix Multiply-Accumulate Instructions"].

A warp computes 16-row by 8-column accumulator tiles; warps split a GEMM's rows. Operands are
16-bit, loaded 16 deep along k (ldmatrix.x4), B two n-tiles at a time; a K that ends in 8
takes one m16n8k8 step. The accumulator's layout is `M16N8`: the score rules
(backends/emit/scores.py) are written against it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tlc import ir
from tlc.backends.schedule import WarpTiles, gemm_dims
from tlc.backends.target import Unsupported

PACK = {ir.DType.FP16: "tlc::pack_half2", ir.DType.BF16: "tlc::pack_bf162"}
# a packed pair's value back as a float (tlc_common.cuh), for a rule reading fragments
UNPACK = {ir.DType.FP16: "tlc::unpack_half2", ir.DType.BF16: "tlc::unpack_bf162"}


@dataclass(frozen=True)
class FragmentLayout:
    """Which elements of an accumulator tile a thread holds [PTX ISA, mma m16n8k16, the
    layout of the C/D fragments]: per 16 × 8 tile (i, j), 4 floats; element e sits at row
    group + 8 * (e / 2) and column 2 * (lane % 4) + e % 2, so a thread holds 2 rows (h) of
    2 adjacent columns, and the 4 lanes of a quad share a row."""

    tile_rows: int = 16
    tile_cols: int = 8
    elements: int = 4
    row_reduce: tuple[str, str] = ("tlc::quad_max", "tlc::quad_sum")  # across a row's lanes

    def declare(self, name: str, tiles: WarpTiles) -> str:
        return f"float {name}_acc[{tiles.m}][{tiles.n}][{self.elements}] = {{}};"

    def each_element(self, tiles: WarpTiles) -> str:
        return (f"for (int i = 0; i < {tiles.m}; ++i) for (int j = 0; j < {tiles.n}; ++j) "
                f"for (int e = 0; e < {self.elements}; ++e)")

    def zero(self, name: str, tiles: WarpTiles) -> str:
        return f"{self.each_element(tiles)} {name}_acc[i][j][e] = 0.f;"

    def row(self, tiles: WarpTiles) -> str:
        """C for the tile row of element (i, j, e)."""
        return f"{tiles.first_row} + i * 16 + tlc_group + (e / 2) * 8"

    def col(self, tiles: WarpTiles) -> str:
        """C for the tile column of element (i, j, e)."""
        return tiles.col_offset("j * 8 + tlc_pair + (e % 2)")

    def pair_col(self, tiles: WarpTiles) -> str:
        """C for the tile column of the first of the two adjacent elements a thread holds in
        n-tile j."""
        return tiles.col_offset("j * 8 + tlc_pair")

    def each_row(self, tiles: WarpTiles) -> str:
        """The loop over the rows (i, h) a thread holds."""
        return f"for (int i = 0; i < {tiles.m}; ++i) for (int h = 0; h < 2; ++h)"

    def row_of_half(self, tiles: WarpTiles) -> str:
        return f"{tiles.first_row} + i * 16 + tlc_group + h * 8"

    def row_state(self, name: str, tiles: WarpTiles) -> str:
        return f"float {name}[{tiles.m}][2]"

    def half_elements(self, acc: str) -> tuple[str, str]:
        """The two elements of row half h in n-tile j of `acc`."""
        return f"{acc}[i][j][2 * h]", f"{acc}[i][j][2 * h + 1]"


M16N8 = FragmentLayout()


@dataclass(frozen=True)
class MmaSync:
    shapes: tuple[str, ...]          # the mma shapes plans may name
    k16: dict                        # dtype -> helper for one 16-deep k-step of a 16x8 tile
    k8: dict                         # dtype -> helper for a last 8-deep step
    layout: FragmentLayout = field(default=M16N8)
    load_k: int = 16                 # every operand loads 16 deep (ldmatrix.x4)
    b_columns_per_load: int = 16     # B loads two n-tiles (one ldmatrix.x4) at a time
    # whether plans may split GEMM columns over warps (`with warps (WM, WN)`, WN > 1). The
    # lowering does (WarpTiles; tests/backends/test_fragments.py models its loads), and a
    # target takes it once its GPU gradient tests pass with it (sm_80's have, its siblings
    # with it; sm_75's are not run: benchmarks/backward_warps.py measures by replace)
    splits_columns: bool = False

    def warp_tiles(self, gemm: ir.Gemm, dims: tuple[int, int, int],
                   warps: tuple[int, int]) -> WarpTiles:
        if gemm.mma not in self.shapes:
            raise Unsupported(gemm, f"mma {gemm.mma}: this backend emits "
                              f"{', '.join(self.shapes)}", help=f"use `mma {self.shapes[0]}`",
                              replace=(gemm.mma, self.shapes[0]) if gemm.mma else None)
        m, n, k = dims
        return WarpTiles(m // (warps[0] * 16), n // (warps[1] * 8), k // 16, *warps)

    # ---- GEMM ----

    def emit_gemm(self, em, op: ir.Gemm) -> None:
        if op.a.transposed and op.a.name not in em.schedule.streamed:
            name = op.a.name
            raise Unsupported(op, f"a transposed A operand is read from shared memory, where "
                              f"every warp finds the rows it needs: `{name}` is not copied from "
                              "shared memory in this loop",
                              help=f"add `Allocate {name} in shared (...)` (its register shape, "
                                   f"fp16 or bf16), `Copy {name} from register to shared` after "
                                   f"its Reshape and `Copy {name} from shared to register` before "
                                   "this line, as examples/mha_bwd_fp16_d64_sm80.tl does")
        if op.a.transposed and _k_tail(em, op):
            raise Unsupported(op, f"a transposed A operand whose K ({gemm_dims(em.facts, op)[2]})"
                              " is not a multiple of 16", help="make the tile rows a multiple of 16")
        tiles = em.schedule.warp_tiles(op)
        if tiles.warps_n > 1 and op.a.name not in em.schedule.streamed and \
                not _held_from_shared(em.kernel, op.a.name):
            raise Unsupported(op, f"`{op.a.name}` as A in registers, reshaped from a GEMM's "
                              f"result: with warps {(tiles.warps_m, tiles.warps_n)} a warp "
                              "holds only its columns of it, and this GEMM needs whole rows",
                              help=f"write `with warps ({tiles.warps_m * tiles.warps_n}, 1)` "
                                   "on every GEMM, or stage the tile through shared memory")
        a_dtype = operand_dtype(em.kernel, op.a.name, op)
        em.block(f"// Compute GEMM {op.a.name}{'^T' if op.a.transposed else ''}, "
                 f"{op.b.name}{'^T' if op.b.transposed else ''} "
                 f"{'accumulating into' if op.accumulate else 'into'} {op.out}")
        if not op.accumulate:
            em.line(self.layout.zero(op.out, tiles))
        self._operand_bases(em, op, tiles)
        em.open(f"for (int kk = 0; kk < {tiles.k}; ++kk)")
        self._a_fragments(em, op, tiles.m)
        self._b_fragments_and_mma(em, op, tiles, self._helper(self.k16, a_dtype, em, op))
        em.close()
        if _k_tail(em, op):
            self._k8_tail(em, op, tiles, self._helper(self.k8, a_dtype, em, op))
        em.close()

    def _helper(self, helpers: dict, dtype: ir.DType, em, op) -> str:
        if dtype.value not in helpers:
            raise Unsupported(op, f"{em.target.arch} tensor cores do not take {dtype.value} "
                              "operands")
        return helpers[dtype.value]

    def _operand_bases(self, em, op: ir.Gemm, tiles: WarpTiles) -> None:
        """32-bit shared addresses of this lane's first ldmatrix row, once per GEMM: the
        k-steps and tiles then add compile-time byte offsets (cheaper than 64-bit pointers)."""
        if op.a.name in em.schedule.streamed and op.a.transposed:
            # stored (K, M): lanes 8r..8r+7 address the k rows of matrix r, which holds
            # k (r / 2) * 8.. and m (r % 2) * 8.. of the 16 x 16 A tile; .trans delivers it
            # in A's layout [PTX ISA, ldmatrix; the A fragment of m16n8k16]
            stride = em.shared_tile(op.a.name, op).stride
            em.line(f"const uint32_t tlc_a_base = tlc::smem_address({em.smem(op.a.name)}) + "
                    f"({a_lane(tiles, stride, True)}) * 2;")
        elif op.a.name in em.schedule.streamed:
            stride = em.shared_tile(op.a.name, op).stride
            em.line(f"const uint32_t tlc_a_base = tlc::smem_address({em.smem(op.a.name)}) + "
                    f"({a_lane(tiles, stride, False)}) * 2;")
        stride = em.shared_tile(op.b.name, op).stride
        em.line(f"const uint32_t tlc_b_base = tlc::smem_address({em.smem(op.b.name)}) + "
                f"({b_lane(tiles, stride, op.b.transposed)}) * 2;")

    def _a_fragments(self, em, op: ir.Gemm, mt: int) -> None:
        name = op.a.name
        if name in em.schedule.streamed and op.a.transposed:
            stride = em.shared[name].stride
            em.line(f"uint32_t a[{mt}][4];")
            em.line(f"for (int i = 0; i < {mt}; ++i) tlc::ldmatrix_x4_trans(a[i], tlc_a_base + "
                    f"({a_fragment(stride, True)}) * 2);")
            em.line("#define TLC_A(i) a[i]")
        elif name in em.schedule.streamed:
            stride = em.shared[name].stride
            em.line(f"uint32_t a[{mt}][4];")
            em.line(f"for (int i = 0; i < {mt}; ++i) tlc::ldmatrix_x4(a[i], tlc_a_base + "
                    f"({a_fragment(stride, False)}) * 2);")
            em.line("#define TLC_A(i) a[i]")
        else:  # held whole in registers, or re-viewed by a Reshape
            em.line(f"#define TLC_A(i) {name}_frag[i][kk]")

    def _b_fragments_and_mma(self, em, op: ir.Gemm, tiles: WarpTiles, mma: str) -> None:
        mt, nt = tiles.m, tiles.n
        stride = em.shared[op.b.name].stride
        step = f"({b_fragment(stride, op.b.transposed)}) * 2"
        load = "tlc::ldmatrix_x4" if op.b.transposed else "tlc::ldmatrix_x4_trans"
        em.open(f"for (int j = 0; j + 1 < {nt}; j += 2)")
        em.line("uint32_t b[4];")
        em.line(f"{load}(b, tlc_b_base + {step});")
        em.line("const uint32_t tlc_b0[2] = {b[0], b[1]}, tlc_b1[2] = {b[2], b[3]};")
        em.open(f"for (int i = 0; i < {mt}; ++i)")
        em.line(f"{mma}({op.out}_acc[i][j], TLC_A(i), tlc_b0, {op.out}_acc[i][j]);")
        em.line(f"{mma}({op.out}_acc[i][j + 1], TLC_A(i), tlc_b1, {op.out}_acc[i][j + 1]);")
        em.close()
        em.close()
        if nt % 2:  # the odd last n-tile: two 8x8 matrices; lanes 16-31 repeat lanes 0-15
            em.block("// the odd last n-tile")
            em.line(f"const int j = {nt - 1};")
            em.line("uint32_t b[2];")
            em.line(f"{load.replace('x4', 'x2')}(b, tlc_b_base + {step});")
            em.line(f"for (int i = 0; i < {mt}; ++i) {mma}({op.out}_acc[i][j], "
                    f"TLC_A(i), b, {op.out}_acc[i][j]);")
            em.close()
        em.line("#undef TLC_A")

    def _k8_tail(self, em, op: ir.Gemm, tiles: WarpTiles, mma: str) -> None:
        """The last 8 of K with m16n8k8: A is the first half of an m16n8k16 A fragment, B one
        8x8 matrix per n-tile (ldmatrix.x2: lanes 8-15 repeat lanes 0-7)."""
        mt, nt, kt = tiles.m, tiles.n, tiles.k
        em.block("// the last 8 of K: one m16n8k8 step")
        name = op.a.name
        em.line(f"uint32_t a[{mt}][2];")
        if name in em.schedule.streamed:
            stride = em.shared[name].stride
            em.line(f"for (int i = 0; i < {mt}; ++i) tlc::ldmatrix_x2(a[i], tlc::smem_address("
                    f"{em.smem(name)}) + ({a_tail(tiles, stride)}) * 2);")
        else:
            em.line(f"for (int i = 0; i < {mt}; ++i) {{ a[i][0] = {name}_frag[i][{kt}][0]; "
                    f"a[i][1] = {name}_frag[i][{kt}][1]; }}")
        stride = em.shared[op.b.name].stride
        where = f"({b_tail(tiles, stride, op.b.transposed)}) * 2"
        load = "tlc::ldmatrix_x2" if op.b.transposed else "tlc::ldmatrix_x2_trans"
        em.open(f"for (int j = 0; j < {nt}; ++j)")
        em.line("uint32_t b[2];")
        em.line(f"{load}(b, tlc::smem_address({em.smem(op.b.name)}) + {where});")
        em.line("const uint32_t tlc_b0[1] = {b[0]};")
        em.line(f"for (int i = 0; i < {mt}; ++i) {mma}({op.out}_acc[i][j], a[i], "
                f"tlc_b0, {op.out}_acc[i][j]);")
        em.close()
        em.close()

    # ---- operands in registers ----

    def hold_operand(self, em, op: ir.Copy) -> None:
        """Copy an A operand from shared memory into registers, whole, for every k-step."""
        name = op.name
        gemm = next((g for g in em.facts.gemms if g.a.name == name), None)
        if gemm is None or gemm.b.name == name:
            raise Unsupported(op, f"holding `{name}` as a B operand in registers",
                              help=f"move `Copy {name} from shared to register` into the loop, "
                                   "just before its GEMM (streamed one k-step at a time)")
        if f"{name}_frag" in em.declared:
            raise Unsupported(op, f"`{name}` is copied into registers twice",
                              help=f"keep one `Copy {name} from shared to register`")
        em.declared.add(f"{name}_frag")
        tiles = em.schedule.warp_tiles(gemm)
        mt, kt = tiles.m, tiles.k
        tail = _k_tail(em, gemm)
        stride = em.shared_tile(name, op).stride
        em.line(f"uint32_t {name}_frag[{mt}][{kt + tail}][4];")
        em.block(f"// Copy {name} from shared to register, held whole")
        em.line(f"const uint32_t tlc_base = tlc::smem_address({em.smem(name)}) + "
                f"({a_lane(tiles, stride, False)}) * 2;")
        em.line(f"for (int i = 0; i < {mt}; ++i) for (int kk = 0; kk < {kt}; ++kk) "
                f"tlc::ldmatrix_x4({name}_frag[i][kk], tlc_base + ({a_fragment(stride, False)}) "
                "* 2);")
        if tail:  # the last 8 columns: two 8x8 matrices, rows 0-7 and 8-15 (lanes 16-31 idle)
            em.line(f"for (int i = 0; i < {mt}; ++i) tlc::ldmatrix_x2(*reinterpret_cast<uint32_t"
                    f"(*)[2]>({name}_frag[i][{kt}]), tlc::smem_address({em.smem(name)}) + "
                    f"({a_tail(tiles, stride)}) * 2);")
        em.close()

    def emit_reshape(self, em, op: ir.Reshape) -> None:
        reshape_to_a(em, op)

    def store_fragments(self, em, op: ir.Copy) -> None:
        """A tile a Reshape made A fragments of, into its shared tile as it is laid out (16
        rows by 16 columns a fragment; for the backward pass, whose P and dS are read back
        transposed by every warp)."""
        name = op.name
        tile = em.shared_tile(name, op)
        tiles = em.schedule.tiles_of(name)
        mt, nt = tiles.m, tiles.n
        if f"{name}_frag" not in em.declared or (tile.rows, tile.cols) != (tiles.rows,
                                                                          tiles.cols):
            raise Unsupported(op, f"Copy {name} from register to shared: a reshaped tile into "
                              "a shared tile of its shape")
        em.block(f"// Copy {name} from register to shared, fragment by fragment")
        em.line(f"{tile.ctype}* tlc_dst = {name}_s + {fragment_home(tiles, tile.stride)};")
        em.open(f"for (int i = 0; i < {mt}; ++i) for (int kk = 0; kk < {nt // 2}; ++kk) "
                "for (int r = 0; r < 4; ++r)")
        em.line(f"*reinterpret_cast<uint32_t*>(tlc_dst + {fragment_register(tile.stride)}) = "
                f"{name}_frag[i][kk][r];")
        em.close()
        if nt % 2:
            em.line(f"for (int i = 0; i < {mt}; ++i) for (int r = 0; r < 2; ++r) "
                    f"*reinterpret_cast<uint32_t*>(tlc_dst + {tail_register(tiles, tile.stride)})"
                    f" = {name}_frag[i][{nt // 2}][r];")
        em.close()


def reshape_to_a(em, op: ir.Reshape, declare: bool = True) -> None:
    """Accumulator pairs of n-tiles become A fragments: the m16n8 C layout of two
    adjacent n-tiles is the m16n8k16 A layout [PTX ISA, the A and C fragment layouts].
    declare=False packs into fragments declared earlier (`declare_fragments`)."""
    if not declare:
        return _pack_fragments(em, op)
    declare_fragments(em, op)
    _pack_fragments(em, op)


def declare_fragments(em, op: ir.Reshape) -> None:
    """The A fragments a Reshape fills, declared once, after its checks."""
    role = op.dst[0].name if op.dst and isinstance(op.dst[0], ir.Sym) else None
    if role != "MMA_A" or op.dtype not in PACK:
        raise Unsupported(op, "Reshape to MMA_A fp16 or bf16 only")
    if not em.schedule.in_registers(op.name):
        raise Unsupported(op, f"Reshape of `{op.name}`: only a GEMM's accumulator becomes "
                          "an A operand")
    if f"{op.name}_frag" in em.declared:
        raise Unsupported(op, f"`{op.name}` is reshaped twice",
                          help=f"keep one Reshape of `{op.name}`")
    em.declared.add(f"{op.name}_frag")
    em.fragment_dtypes[op.name] = op.dtype
    tiles = em.schedule.tiles_of(op.name)
    em.line(f"// Reshape {op.name}: accumulator pairs of n-tiles become A fragments")
    em.line(f"uint32_t {op.name}_frag[{tiles.m}][{(tiles.n + 1) // 2}][4];")


def fragment_element(name: str, dtype: ir.DType) -> str:
    """The C float of accumulator element [i][j][e] of `name` once a Reshape packed it: the
    inverse of _pack_fragments (n-tile j is half j % 2 of k-step j / 2; e / 2 its row half,
    e % 2 the value of the pair)."""
    return f"{UNPACK[dtype]}({name}_frag[i][j / 2][(j % 2) * 2 + e / 2], e % 2)"


def _pack_fragments(em, op: ir.Reshape) -> None:
    tiles = em.schedule.tiles_of(op.name)
    mt, nt = tiles.m, tiles.n
    pack = PACK[op.dtype]
    em.open(f"for (int i = 0; i < {mt}; ++i) for (int kk = 0; kk < {nt // 2}; ++kk)")
    acc = f"{op.name}_acc[i]"
    em.line(f"{op.name}_frag[i][kk][0] = {pack}({acc}[2 * kk][0], {acc}[2 * kk][1]);")
    em.line(f"{op.name}_frag[i][kk][1] = {pack}({acc}[2 * kk][2], {acc}[2 * kk][3]);")
    em.line(f"{op.name}_frag[i][kk][2] = {pack}({acc}[2 * kk + 1][0], {acc}[2 * kk + 1][1]);")
    em.line(f"{op.name}_frag[i][kk][3] = {pack}({acc}[2 * kk + 1][2], {acc}[2 * kk + 1][3]);")
    em.close()
    if nt % 2:  # an odd last n-tile is the first half of an A fragment: a k8 step's A
        last = nt - 1
        em.line(f"for (int i = 0; i < {mt}; ++i) {{ {op.name}_frag[i][{nt // 2}][0] = "
                f"{pack}({acc}[{last}][0], {acc}[{last}][1]); {op.name}_frag[i][{nt // 2}][1]"
                f" = {pack}({acc}[{last}][2], {acc}[{last}][3]); }}")


# ---- which shared elements each lane's ldmatrix rows start at ----
# C expressions, element offsets from a shared tile's start (rows `stride` apart), in this
# warp's part of the GEMM (WarpTiles); the emitter adds them to the tile's address and
# tests/backends/test_fragments.py runs them through a model of ldmatrix and mma.sync.
# ldmatrix.x4: lanes 8r..8r+7 give the rows of 8x8 matrix r, which lands in register r.


def a_lane(tiles: WarpTiles, stride: int, transposed: bool) -> str:
    """This lane's first ldmatrix row of A. Stored (M, K): matrices r = 0..3 are rows
    (r % 2) * 8.., k (r / 2) * 8.. of the 16 x 16 A fragment, lane l at row l % 16. Stored
    (K, M), read with .trans: lanes 8r..8r+7 address the k rows of matrix r, k (r / 2) * 8..
    and m (r % 2) * 8.., so .trans delivers it in A's layout [PTX ISA, ldmatrix; the A
    fragment of m16n8k16]."""
    if transposed:
        return (f"((tlc_lane / 16) * 8 + tlc_lane % 8) * {stride} + {tiles.first_row} + "
                "((tlc_lane / 8) % 2) * 8")
    return f"({tiles.first_row} + tlc_lane % 16) * {stride} + (tlc_lane / 16) * 8"


def a_fragment(stride: int, transposed: bool) -> str:
    """From a_lane, the A fragment of row tile i at k-step kk."""
    return f"kk * {16 * stride} + i * 16" if transposed else f"i * {16 * stride} + kk * 16"


def a_tail(tiles: WarpTiles, stride: int) -> str:
    """This lane's ldmatrix.x2 row of the last 8 of K of row tile i (A stored (M, K)): lanes
    0-15 address rows 0-15 (lanes 16-31 repeat them)."""
    return f"({tiles.first_row} + i * 16 + tlc_lane % 16) * {stride} + {tiles.k * 16}"


def b_lane(tiles: WarpTiles, stride: int, transposed: bool) -> str:
    """This lane's first ldmatrix row of B, two n-tiles (matrices r = 0..3: n-tile r / 2, k
    (r % 2) * 8..). Stored (N, K) (B^T): rows are n, read as they are; stored (K, N): rows are
    k, read with .trans."""
    if transposed:
        row = tiles.col_offset("(tlc_lane / 16) * 8 + tlc_lane % 8")
        return f"({row}) * {stride} + ((tlc_lane / 8) % 2) * 8"
    return (f"(((tlc_lane / 8) % 2) * 8 + tlc_lane % 8) * {stride} + "
            + tiles.col_offset("(tlc_lane / 16) * 8"))


def fragment_home(tiles: WarpTiles, stride: int) -> str:
    """Where this thread's first packed pair of a reshaped tile goes in a shared tile of its
    shape: its row group, its pair of columns, in this warp's part."""
    return f"({tiles.first_row} + tlc_group) * {stride} + {tiles.col_offset('tlc_pair')}"


def fragment_register(stride: int) -> str:
    """From fragment_home, register r of A fragment (i, kk): rows + (r % 2) * 8, columns
    kk * 16 + (r / 2) * 8 (the m16n8k16 A layout)."""
    return f"(i * 16 + (r % 2) * 8) * {stride} + kk * 16 + (r / 2) * 8"


def tail_register(tiles: WarpTiles, stride: int) -> str:
    """From fragment_home, register r (0, 1) of the half fragment an odd last n-tile
    makes."""
    return f"(i * 16 + r * 8) * {stride} + {(tiles.n // 2) * 16}"


def b_fragment(stride: int, transposed: bool) -> str:
    """From b_lane, n-tile j (and j + 1) at k-step kk."""
    return f"j * {8 * stride} + kk * 16" if transposed else f"kk * {16 * stride} + j * 8"


def b_tail(tiles: WarpTiles, stride: int, transposed: bool) -> str:
    """This lane's ldmatrix.x2 row of n-tile j in the last 8 of K, from the tile's start:
    lanes 0-7 address the 8 rows (lanes 8-15 repeat them)."""
    if transposed:  # rows are n: row j*8 + lane % 8, the columns from k*16
        return f"({tiles.col_offset('j * 8 + tlc_lane % 8')}) * {stride} + {tiles.k * 16}"
    return f"({tiles.k * 16} + tlc_lane % 8) * {stride} + {tiles.col_offset('j * 8')}"


def _held_from_shared(kernel: ir.Kernel, name: str) -> bool:
    """Whether `name` reaches registers from shared memory (whole, by hold_operand), rather
    than as a Reshape's view of an accumulator."""
    return any(isinstance(op, ir.Copy) and op.name == name and op.src is ir.Level.SHARED
               and op.dst is ir.Level.REGISTER for op in ir.walk(kernel.body))


def _k_tail(em, gemm: ir.Gemm) -> int:
    """1 when the GEMM's K leaves 8 after its 16-deep steps: one m16n8k8 step ends it."""
    return 1 if gemm_dims(em.facts, gemm)[2] % 16 == 8 else 0


def operand_dtype(kernel: ir.Kernel, name: str, gemm: ir.Gemm) -> ir.DType:
    for buffer in kernel.buffers:
        if buffer.name == name and buffer.dtype in PACK:
            return buffer.dtype
    for op in ir.walk(kernel.body):
        if isinstance(op, ir.Reshape) and op.name == name and op.dtype in PACK:
            return op.dtype
    raise Unsupported(gemm, f"`{name}`: GEMM operands are fp16 or bf16")
