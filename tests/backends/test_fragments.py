"""The offsets isa/mma_sync.py emits, run through a model of ldmatrix and mma.sync [PTX ISA,
"Warp-level matrix load instruction: ldmatrix" and the m16n8k16 / m16n8k8 fragment layouts],
for every warp of a warp layout, columns split over warps included: each warp's
accumulators must be its part of A·B at the rows and columns the fragment layout names, all
warps together must cover the tile once, and a reshaped tile stored to shared memory must
land where the layout says. No GPU: the C expressions are evaluated in Python (their
operands are never negative, so C's / and % are Python's // and %)."""
import itertools

import numpy as np
import pytest

from tlc.backends.isa import mma_sync
from tlc.backends.isa.mma_sync import M16N8
from tlc.backends.schedule import WarpTiles

LANES = range(32)


def value(expression: str, **names) -> int:
    return eval(expression.replace("/", "//"), {"__builtins__": {}}, names)


def lane_names(warp: int, lane: int) -> dict:
    return {"tlc_warp": warp, "tlc_lane": lane, "tlc_group": lane // 4,
            "tlc_pair": (lane % 4) * 2}


def ldmatrix(memory, rows_at: list[int], count: int, trans: bool) -> list[list[tuple]]:
    """Per lane, `count` registers of two 16-bit elements: matrix r's 8 rows start at the
    addresses lanes 8r..8r+7 give; lane t receives row t / 4, columns 2 (t % 4) and + 1 of
    each matrix, or with .trans those of its transpose."""
    matrices = [np.array([memory[rows_at[8 * r + row]:rows_at[8 * r + row] + 8]
                          for row in range(8)]) for r in range(count)]
    if trans:
        matrices = [m.T for m in matrices]
    return [[(m[t // 4, 2 * (t % 4)], m[t // 4, 2 * (t % 4) + 1]) for m in matrices]
            for t in LANES]


def mma(acc, a, b, deep: int) -> None:
    """acc (per lane, 4 floats of a 16 x 8 tile) += A (16 x deep) · B (deep x 8), from the
    lanes' A and B registers in the m16n8k16 (deep 16) or m16n8k8 (deep 8) layouts."""
    A, B = np.zeros((16, deep)), np.zeros((deep, 8))
    for t in LANES:
        g, p = t // 4, 2 * (t % 4)
        for r, (x, y) in enumerate(a[t][: deep // 4]):  # a0 rows g, a1 g+8, a2/a3 k + 8
            A[g + 8 * (r % 2), p + 8 * (r // 2)] = x
            A[g + 8 * (r % 2), p + 8 * (r // 2) + 1] = y
        for r, (x, y) in enumerate(b[t][: deep // 8]):  # b0 k 2p, 2p+1; b1 k + 8; column g
            B[p + 8 * r, g], B[p + 8 * r + 1, g] = x, y
    C = A @ B
    for t in LANES:
        g, p = t // 4, 2 * (t % 4)
        acc[t] += [C[g, p], C[g, p + 1], C[g + 8, p], C[g + 8, p + 1]]


def warp_gemm(tiles: WarpTiles, warp: int, a_memory, a_stride, a_transposed, b_memory,
              b_stride, b_transposed, tail: bool) -> np.ndarray:
    """acc[lane, i, j, e] of one warp, as emit_gemm's loads and MMAs compute it."""
    acc = np.zeros((32, tiles.m, tiles.n, 4))
    names = [lane_names(warp, t) for t in LANES]
    a_base = [value(mma_sync.a_lane(tiles, a_stride, a_transposed), **n) for n in names]
    b_base = [value(mma_sync.b_lane(tiles, b_stride, b_transposed), **n) for n in names]
    for kk in range(tiles.k):
        a = [ldmatrix(a_memory, [a_base[t] + value(mma_sync.a_fragment(a_stride, a_transposed),
                                                   i=i, kk=kk) for t in LANES], 4,
                      a_transposed) for i in range(tiles.m)]
        for j in range(0, tiles.n, 2):
            count = 4 if j + 1 < tiles.n else 2  # the odd last n-tile: ldmatrix.x2
            step = value(mma_sync.b_fragment(b_stride, b_transposed), j=j, kk=kk)
            b = ldmatrix(b_memory, [b_base[t % (8 * count)] + step for t in LANES], count,
                         not b_transposed)
            for i in range(tiles.m):
                for half in range(count // 2):
                    lanes_acc = acc[:, i, j + half]
                    mma(lanes_acc, a[i], [regs[2 * half:2 * half + 2] for regs in b], 16)
    if tail:  # the last 8 of K: A by ldmatrix.x2 (A stored (M, K)), B one matrix an n-tile
        for i in range(tiles.m):
            rows = [value(mma_sync.a_tail(tiles, a_stride), i=i, **names[t % 16]) for t in LANES]
            a = ldmatrix(a_memory, rows, 2, False)
            for j in range(tiles.n):
                rows = [value(mma_sync.b_tail(tiles, b_stride, b_transposed), j=j,
                              **names[t % 8]) for t in LANES]
                mma(acc[:, i, j], a, ldmatrix(b_memory, rows, 1, not b_transposed), 8)
    return acc


def shared(matrix: np.ndarray, padding: int = 8) -> tuple[np.ndarray, int]:
    """A tile in shared memory as the targets lay it out: rows `padding` elements longer."""
    rows, cols = matrix.shape
    stride = cols + padding
    memory = np.zeros((rows, stride))
    memory[:, :cols] = matrix
    return memory.ravel(), stride


LAYOUTS = [(4, 1), (1, 1), (2, 2), (4, 2), (2, 4), (1, 4), (8, 1)]
# (M, N, K): N with an odd n-tile a warp, K with an m16n8k8 tail
SHAPES = [(64, 64, 64), (128, 128, 32), (64, 96, 40), (128, 64, 24)]


def layout_shapes():
    for (wm, wn), (m, n, k) in itertools.product(LAYOUTS, SHAPES):
        if m % (16 * wm) == 0 and n % (8 * wn) == 0:
            yield (wm, wn), (m, n, k)


@pytest.mark.parametrize("a_transposed", [False, True], ids=["A", "At"])
@pytest.mark.parametrize("b_transposed", [False, True], ids=["B", "Bt"])
@pytest.mark.parametrize("warps,dims", list(layout_shapes()), ids=str)
def test_every_warp_computes_its_part_of_the_product_where_the_layout_says(
        warps, dims, a_transposed, b_transposed):
    m, n, k = dims
    tail = k % 16 == 8
    if a_transposed and tail:
        pytest.skip("the lowering refuses a transposed A with a K tail (emit_gemm)")
    rng = np.random.default_rng(sum(dims) + 7 * warps[1])
    A = rng.integers(-3, 4, (m, k)).astype(float)
    B = rng.integers(-3, 4, (k, n)).astype(float)
    a_memory, a_stride = shared(A.T if a_transposed else A)
    b_memory, b_stride = shared(B.T if b_transposed else B)
    tiles = WarpTiles(m // (16 * warps[0]), n // (8 * warps[1]), k // 16, *warps)
    assert (tiles.rows, tiles.cols) == (m, n)
    product, covered = A @ B, np.zeros((m, n), int)
    for warp in range(warps[0] * warps[1]):
        acc = warp_gemm(tiles, warp, a_memory, a_stride, a_transposed, b_memory, b_stride,
                        b_transposed, tail)
        for t, i, j, e in itertools.product(LANES, range(tiles.m), range(tiles.n), range(4)):
            names = dict(lane_names(warp, t), i=i, j=j, e=e)
            row, col = value(M16N8.row(tiles), **names), value(M16N8.col(tiles), **names)
            assert acc[t, i, j, e] == product[row, col], (warp, t, i, j, e, row, col)
            covered[row, col] += 1
            if e % 2 == 0:  # the stores' row of a half and column of a pair agree
                assert value(M16N8.row_of_half(tiles), h=e // 2, **names) == row
                assert value(M16N8.pair_col(tiles), **names) == col
    assert (covered == 1).all(), "the warps' parts do not tile the GEMM once"


@pytest.mark.parametrize("warps,dims", list(layout_shapes()), ids=str)
def test_a_reshaped_tile_lands_in_shared_memory_where_the_layout_says(warps, dims):
    m, n, _ = dims
    tiles = WarpTiles(m // (16 * warps[0]), n // (8 * warps[1]), 1, *warps)
    stride = n + 8
    memory = np.full(m * stride, np.nan)
    expected = np.full((m, n), np.nan)
    rng = np.random.default_rng(m + n)
    for warp, t in itertools.product(range(warps[0] * warps[1]), LANES):
        names = lane_names(warp, t)
        acc = rng.integers(-9, 10, (tiles.m, tiles.n, 4)).astype(float)
        for i, j, e in itertools.product(range(tiles.m), range(tiles.n), range(4)):
            where = dict(names, i=i, j=j, e=e)
            expected[value(M16N8.row(tiles), **where), value(M16N8.col(tiles), **where)] = \
                acc[i, j, e]
        home = value(mma_sync.fragment_home(tiles, stride), **names)
        for i in range(tiles.m):  # the packing of _pack_fragments: n-tile pairs, halves
            for kk, r in itertools.product(range(tiles.n // 2), range(4)):
                pair = acc[i, 2 * kk + r // 2, 2 * (r % 2):2 * (r % 2) + 2]
                at = home + value(mma_sync.fragment_register(stride), i=i, kk=kk, r=r)
                memory[at:at + 2] = pair
            for r in range(2) if tiles.n % 2 else ():
                at = home + value(mma_sync.tail_register(tiles, stride), i=i, r=r)
                memory[at:at + 2] = acc[i, tiles.n - 1, 2 * r:2 * r + 2]
    stored = memory.reshape(m, stride)
    assert np.array_equal(stored[:, :n], expected)
    assert np.isnan(stored[:, n:]).all(), "a store ran into the rows' padding"
