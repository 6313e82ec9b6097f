"""TL plans for a grid of cases, written from the same choices a person edits: dtype, head
dim, heads per K/V head, the score variants (causal, sliding window, softcap, ALiBi), tiles,
and whether the head dim is split into column chunks. Each plan is checked by tlc before use.
The benchmarks, the GPU tests and tlc.torch take their plans from here.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

# Tiles (BM, BN, WARPS), largest first; the first that `tlc check` accepts is used.
TILES = [(128, 64, 4), (128, 32, 4), (64, 64, 4), (64, 32, 4), (64, 32, 2), (32, 32, 2),
         (64, 16, 4)]
SMALL_TILES = [(32, 16, 2), (32, 8, 2)]  # a last resort: wide head dims on Turing
# Decoding (a few query rows against a long cache): two warps of 16 rows, 64-key tiles; the
# grid is filled by splitting the keys instead. The second warp's rows are padding where a
# call has at most 16, but it halves each warp's share of the copies and MMAs of a tile:
# on the H200 that read 1-12 % faster than one warp in all six decoding shapes of
# benchmarks/decode_tiles.py (h200-decode-tiles.json).
DECODE_TILES = [(32, 64, 2), (16, 128, 1), (16, 64, 1), (64, 64, 4), (16, 32, 1), (16, 16, 1)]
# Hopper (sm_90a) tiles: warps in whole warpgroups of 64 rows (the backend adds a producer
# warpgroup); BN is the N of the Q·K^T wgmma.
# One consumer warpgroup first, taken where two blocks of it fit an SM (Arch.resident_blocks:
# D = 64): on the H200 it ran -1 to +26 % against three warpgroups from N = 1k to 4k, most
# where causal rows are short (h200-sm90a-blocks.json), but about 10 % slower at N = 16k
# (docs/performance.md: the tile is chosen per head dim, not per length). Three warpgroups
# next: at D = 64 they ran 3-13 % faster than two from N = 4k (h200-sm90a-ablation.json); at
# D = 128 their registers do not fit, and two are next. A lone warpgroup that an SM holds once is the last
# resort (D = 256).
WARPGROUP_TILES = [(64, 128, 4), (192, 128, 12), (128, 128, 8), (128, 64, 8), (64, 64, 4)]
# Hopper decoding: one consumer warpgroup (64 rows, most of them the zeros TMA fills past the
# few query rows) and the producer's ring of K/V tiles; the keys are split to fill the GPU.
WARPGROUP_DECODE_TILES = [(64, 128, 4), (64, 64, 4)]
# Column chunks of O and V, widest first, for a head dim whose O does not fit whole.
CHUNKS = [256, 128, 64, 32]


@dataclass(frozen=True)
class Options:
    dtype: str
    d: int
    causal: bool = False
    group: int = 1                          # query heads per K/V head
    arch: str = "sm_80"
    window: tuple[int, int] | None = None   # (left, right) keys around the diagonal
    softcap: float | None = None
    alibi: bool = False
    bm: int = 128
    bn: int = 64
    warps: int = 4
    stages: int = 2
    staged: bool = True                     # O leaves registers through a shared tile
    held: bool = False                      # Q held in registers for the whole loop
    chunk: int | None = None                # DC: O and V in (., DC) column chunks
    mma: str = "m16n8k16"
    warpgroup: bool = False                 # wgmma (sm_90a): operands read from shared memory
    compute: str | None = None              # the GEMM operands' dtype (None: dtype)
    lse: bool = False                       # also write each row's log-sum-exp, L (B, H, Nq)
    splits: int = 1                         # blocks that share one tile's key range
    lengths: bool = False                   # each sequence's keys: lengths[b] of Nk
    page: int | None = None                 # K and V in pages of PAGE rows via a block table
    varlen: bool = False                    # packed sequences: Q (H, Tq, D), K/V (Hkv, Tk, D)

    @property
    def name(self) -> str:
        parts = [f"attention_{self.dtype}_d{self.d}"]
        parts += ["causal"] * self.causal + ["window"] * bool(self.window)
        parts += ["softcap"] * bool(self.softcap) + ["alibi"] * self.alibi + ["lse"] * self.lse
        parts += [f"split{self.splits}"] * (self.splits > 1)
        parts += [f"paged{self.page}"] * bool(self.page) + ["ragged"] * (
            self.lengths and not self.page) + ["varlen"] * self.varlen
        return "_".join(parts)


def _loop_bounds(o: Options) -> tuple[str, str]:
    """The tight range of key blocks for the masks (what `tlc check` asks for)."""
    right = None if not o.window else o.window[1]
    if o.causal:
        right = 0 if right is None else min(right, 0)
    start = "0" if not o.window else "max(0, (m * BM + Nk - Nq - LEFT) / BN)"
    if right is None:
        return start, "cdiv(Nk, BN)"
    plus = " + RIGHT" if o.window and right == o.window[1] and right else ""
    return start, f"cdiv(min(Nk, (m + 1) * BM + Nk - Nq{plus}), BN)"


def _mask(o: Options) -> str:
    clauses = ["causal"] * o.causal + ["window (LEFT, RIGHT)"] * bool(o.window)
    return f"Compute Mask S with {', '.join(clauses)}" if clauses else ""


def render(o: Options) -> str:
    """The plan text for one set of choices (not checked)."""
    width = "DC" if o.chunk else "D"
    column = ", D = c" if o.chunk else ""
    tiles = f" with dtype {o.compute}" if o.compute and o.compute != o.dtype else ""
    params = [("D", o.d), ("GROUP", o.group), ("BM", o.bm), ("BN", o.bn), ("WARPS", o.warps),
              ("STAGES", o.stages)]
    params += [("DC", o.chunk)] * bool(o.chunk)
    params += [("LEFT", o.window[0]), ("RIGHT", o.window[1])] if o.window else []
    params += [("SPLITS", o.splits)] * (o.splits > 1)
    params += [("PAGE", o.page)] * bool(o.page)
    ragged = o.lengths or bool(o.page)
    # wgmma's N is the tile's: Q·K^T's is BN; P·V's the head dim's in whole 64-column panels
    # (isa/wgmma.py), 128 (or 64) at a time
    mma_s = f"m64n{o.bn}k16" if o.warpgroup else o.mma
    panels = -(-(o.chunk or o.d) // 64)  # of O's tile
    mma_o = f"m64n{128 if panels % 2 == 0 else 64}k16" if o.warpgroup else o.mma
    vector = "" if o.warpgroup else " with vector 8"  # TMA copies whole tiles
    head = [f"kernel {o.name} for {o.arch}", "",
            f"input Q (B, H, Nq, D) {o.dtype}"]
    paged = " with pages (table, PAGE)" if o.page else ""
    head += [f"input K (B, Hkv, Nk, D) {o.dtype}{paged}", f"input V (B, Hkv, Nk, D) {o.dtype}{paged}"]
    head += ["input table (B, PAGES) int32"] * bool(o.page) + ["input lengths (B) int32"] * ragged
    head += ["input scale fp32"]
    head += ["input slopes (H) fp32"] * o.alibi
    head += [f"output O (B, H, Nq, D) {o.dtype}"] + ["output L (B, H, Nq) fp32"] * o.lse + [""]
    head += [f"param {name} = {value}" for name, value in params]
    head += ["", "grid (cdiv(Nq, BM), H, B) as (m, h, b)", "",
             f"Allocate Q in shared (BM, D){tiles}", f"Allocate K in shared (BN, D){tiles}",
             f"Allocate V in shared (BN, {width}){tiles}"]
    head += ["Allocate Q in register (BM, D)", "Allocate K in register (BN, D)",
             f"Allocate V in register (BN, {width})"] * (not o.warpgroup)
    head += ["Allocate S in register (BM, BN)", f"Allocate O in register (BM, {width})"]
    head += [f"Allocate O in shared (BM, {width})"] * o.staged
    head += ["Allocate L in register (BM)"] * o.lse
    head += ["", "Copy Q (BM, D) in coordinate [B = b, H = h, Nq = m] from global to shared"
             + vector]
    head += ["Copy Q from shared to register"] * (o.held and not o.warpgroup)
    start, stop = _loop_bounds(o)
    copy = f"from global to shared{vector}, stages STAGES" if vector else \
        "from global to shared with stages STAGES"
    if ragged:  # each sequence's own key count, where masks and the loop end
        start, stop = (bound.replace("Nk", "lengths[b]") for bound in (start, stop))
        copy += ", rows lengths[b]"
    body = [f"Copy K (BN, D) in coordinate [B = b, Hkv = h / GROUP, Nk = n] {copy}",
            f"Copy V (BN, {width}) in coordinate [B = b, Hkv = h / GROUP, Nk = n{column}] {copy}"]
    body += ["Copy Q from shared to register"] * (not o.held and not o.warpgroup)
    body += ["Copy K from shared to register"] * (not o.warpgroup)
    body += [f"Compute GEMM Q, K^T and get S with warps (WARPS, 1), mma {mma_s}",
             "Compute Multiply S, scale and get new S"]
    if o.softcap:
        body.append(f"Compute Softcap S with cap {float(o.softcap)}")
    body += ["Compute ALiBi S, slopes and get new S"] * o.alibi
    body += [line for line in [_mask(o)] if line]
    body += ["Compute Softmax S",
             f"Reshape S from (MMA_C, BM, BN) to (MMA_A, BM, BN) with dtype {o.compute or o.dtype}"]
    body += ["Copy V from shared to register"] * (not o.warpgroup)
    body += [f"Compute GEMM S, V and accumulate O with warps (WARPS, 1), mma {mma_o}"]
    where = f"in coordinate [B = b, H = h, Nq = m{column}]"
    if o.staged:
        store = ["Copy O from register to shared",
                 f"Copy O (BM, {width}) {where} from shared to global{vector}"]
    else:
        store = [f"Copy O (BM, {width}) {where} from register to global"]
    lse = ["Compute Logsumexp S and get L",
           "Copy L (BM) in coordinate [B = b, H = h, Nq = m] from register to global"] * o.lse
    split = " with splits SPLITS" if o.splits > 1 else ""
    loop = [f"for n = {start}: {stop}{split}"] + ["  " + line for line in body] + ["end"] + lse + store
    if o.chunk:  # the whole flash loop once per column chunk of O
        loop = ["for c = 0: cdiv(D, DC)"] + ["  " + line for line in loop] + ["end"]
    text = "\n".join(head + loop) + "\n"
    return _packed_sequences(text) if o.varlen else text


# A variable-length batch as FlashAttention packs it: the sequences' rows one after another,
# sequence b's queries at rows q_start[b] .. q_end[b] - 1 of Q (and O), its keys at
# k_start[b] .. k_end[b] - 1 of K and V; MaxQ the longest query sequence, which the grid
# covers. The tensors are (heads, rows, D): the kernel takes the packed (rows, heads, D)
# tensors through their strides.
_VARLEN = [
    ("input Q (B, H, Nq, D)", "input Q (H, Tq, D)"),
    ("input K (B, Hkv, Nk, D)", "input K (Hkv, Tk, D)"),
    ("input V (B, Hkv, Nk, D)", "input V (Hkv, Tk, D)"),
    ("output O (B, H, Nq, D)", "output O (H, Tq, D)"),
    ("output L (B, H, Nq) fp32", "output L (H, Tq) fp32"),
    ("grid (cdiv(Nq, BM), H, B)", "grid (cdiv(MaxQ, BM), H, B)"),
    ("[B = b, H = h, Nq = m]", "[H = h, Tq = m]"),
    ("[B = b, H = h, Nq = m, D = c]", "[H = h, Tq = m, D = c]"),
    ("[B = b, Hkv = h / GROUP, Nk = n]", "[Hkv = h / GROUP, Tk = n]"),
    ("[B = b, Hkv = h / GROUP, Nk = n, D = c]", "[Hkv = h / GROUP, Tk = n, D = c]"),
]
_QUERY_ROWS = "start q_start[b], rows q_end[b] - q_start[b]"
_KEY_ROWS = "start k_start[b], rows k_end[b] - k_start[b]"


def _packed_sequences(text: str) -> str:
    for old, new in _VARLEN:
        text = text.replace(old, new)
    text = text.replace("input scale fp32", "input q_start (B) int32\ninput q_end (B) int32\n"
                        "input k_start (B) int32\ninput k_end (B) int32\ninput MaxQ int32\n"
                        "input scale fp32")
    lines = []
    for line in text.splitlines():
        if line.lstrip().startswith(("Copy Q (", "Copy O (", "Copy L (")):
            line += (", " if " with " in line else " with ") + _QUERY_ROWS
        elif line.lstrip().startswith(("Copy K (", "Copy V (")):
            line += ", " + _KEY_ROWS
        elif line.lstrip().startswith("for n = "):
            line = line.replace("Nk", "(k_end[b] - k_start[b])").replace(
                "Nq", "(q_end[b] - q_start[b])")
        lines.append(line)
    return "\n".join(lines) + "\n"


def plan(dtype: str, d: int, causal: bool = False, group: int = 1, arch: str = "sm_80",
         stages: int = 2, staged: bool = True, tiles=None, decode: bool = False,
         **variant) -> str:
    """The first plan for the case that passes `tlc check` for arch: the largest tiles, O
    through a shared tile (coalesced) before straight to global memory, the whole head dim
    before column chunks of it. The target's data decides the rest: its backend's MMA shape,
    one stage where there is no cp.async, fp16 tiles for a dtype its tensor cores lack (bf16
    on Turing). `tiles`: the (BM, BN, WARPS) to try instead of TILES; `decode`: a few query
    rows, the target's decoding tiles (DECODE_TILES, WARPGROUP_DECODE_TILES). `variant` takes
    Options' window, softcap, alibi, lse and splits."""
    from tlc.api import check

    lone, kind = None, None  # the first accepted plan of one warpgroup an SM holds once
    for options in candidates(dtype, d, causal, group, arch, stages, staged, tiles, decode,
                              **variant):
        if lone and (options.staged, options.chunk) != kind:
            return lone  # the best of its kind: O's store and the head dim stay preferred
        kind = (options.staged, options.chunk)
        text = render(options)
        result = check(text, arch=arch)
        if result.ok and _held_alone(result, arch):
            lone = lone or text
        elif result.ok:
            return text
    if lone:
        return lone
    raise ValueError(f"no tiling of the template fits {dtype} D={d} on {arch}")


def _held_alone(result, arch: str) -> bool:
    """A warp-specialized block of one consumer warpgroup that an SM holds once: it leaves
    the tensor cores idle while it waits for its first tiles (Arch.resident_blocks)."""
    from tlc.arch import ARCHS

    target, threads = ARCHS[arch], result.facts.get("threads")
    shared, registers = result.facts.get("shared_memory"), result.facts.get("registers")
    return target.feeds_one_warpgroup(threads) and target.resident_blocks(
        threads, shared.total if shared else None, registers.peak if registers else None) == 1


def takes_warpgroups(arch: str) -> bool:
    """Whether the target's MMA is the warpgroup's (wgmma: sm_90a), whose tiles and shapes
    the templates choose apart."""
    from tlc.arch import ARCHS

    return any(shape.warpgroup for shape, _ in ARCHS[arch].mma)


def candidates(dtype, d, causal=False, group=1, arch="sm_80", stages=2, staged=True,
               tiles=None, decode=False, **variant):
    """Options for the case in the order `plan` tries them."""
    from tlc.arch import ARCHS
    from tlc.backends import target_for

    target = ARCHS[arch]
    warpgroup = takes_warpgroups(arch)
    chunks = [None] + [c for c in CHUNKS if c < d]
    if not tiles:
        tiles = (WARPGROUP_DECODE_TILES if decode else WARPGROUP_TILES) if warpgroup else \
            DECODE_TILES if decode else None
    base = Options(dtype, d, causal, group, arch, **variant, warpgroup=warpgroup,
                   mma="m64n64k16" if warpgroup else target_for(arch).gemm.shapes[0],
                   stages=stages if target.has_cp_async else 1,
                   compute=dtype if any(t.value == dtype for t in target.mma_dtypes) else "fp16")
    stores = (staged, False) if staged else (False,)
    if warpgroup and variant.get("splits", 1) > 1:
        # a split's parts leave registers for the fp32 workspaces (backends/emit/splits.py):
        # a shared tile of O would only take the shared memory a second block could use
        stores = (False,)
    for chunk, shapes in itertools.product(chunks, (tiles or TILES,) + (
            () if warpgroup else (SMALL_TILES,))):
        for store, (bm, bn, warps) in itertools.product(stores, shapes):
            yield replace(base, bm=bm, bn=bn, warps=warps, staged=store, chunk=chunk)
