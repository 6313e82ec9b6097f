"""Backward plans (docs/language.md §5.9) for a case: the text the examples hold, the GPU tests
run, the benchmark times and tlc.torch's autograd launches. One template; the examples
`examples/*_bwd_*.tl` are renders of it (tests/test_backward_lowering.py keeps them so).

A block owns one K/V tile and walks the query tiles of its group's heads that read it; with
causal masking, only those from the first whose last row reaches the key tile
(`max(0, (n·BN + Nq - Nk) / BM)`), so a block near the end of the keys walks few.
"""
from __future__ import annotations

from dataclasses import dataclass


# (BM, BN, WARPS, WARPS_N) tried in order: the first the checker accepts is the plan. With P
# packed before dP's GEMM, 128 x 128 on warps (4, 2) fits at D = 64 and ran 0.74-0.82 of SDPA
# flash where 64 x 64 on (2, 2) ran 0.69-0.79 (fp16, N 4k and 16k, same H100 run:
# benchmarks/results/h100-backward-warps-d64-pearly.log). At D = 128, 64 x 128 on (2, 4) fits
# since Exp's element work shrank (BACKWARD_REGISTERS 10) and ran 0.69-0.85 where 32 x 128 on
# (2, 4) had run 0.61-0.69 with the lowering before (fp16, N 4k and 16k, same H100 run:
# h100-backward-ab-{before,after}.log). 64 x 64 on (2, 2) beat (4, 1) by 1.6%
# (h100-backward-order.log) and stays ahead of 32 x 128 where neither fits.
TILES = ((128, 128, 4, 2), (64, 128, 2, 4), (64, 64, 2, 2), (64, 64, 4, 1), (32, 128, 2, 4),
         (128, 64, 4, 2), (64, 64, 4, 2), (32, 32, 2, 1))
TURING_TILES = ((32, 32, 2, 1),)
# Hopper run as Ampere (sm_90, what tlc.torch's backward takes on an H100 or H200): its 227 KB
# of shared memory a block hold 128 x 128's query tiles two stages deep (a fifth entry: the
# stages), the next Q and dO loading under this tile's GEMMs where one block fills an SM:
# 0.78-0.80 of SDPA flash where one stage ran 0.75-0.78 (fp16, D = 64, N 4k and 16k, same
# H100 run: benchmarks/results/h100-backward-warps-stages.log). 32 x 128 two deep ran
# 0.57-0.63 at D = 64, below 64 x 64, so the rest keep TILES' order.
HOPPER_TILES = ((128, 128, 4, 2, 2),) + TILES
TILES_OF = {"sm_75": TURING_TILES, "sm_90": HOPPER_TILES}

HEADER = """\
# The backward pass of {what} on {family} (FlashAttention-2's order): a block owns one
# K/V tile and walks every query tile that reads it, the query heads of its group included.
# It recomputes the probabilities from the forward's row log-sum-exp L, takes
# Delta = rowsum(dO * O) from a step before it, keeps dK and dV in registers and adds its
# share of dQ into a zeroed fp32 tensor. P and dS go through shared memory, where every warp
# reads them transposed (the A operands of dV += P^T dO and dK += dS^T Q).
"""

FAMILIES = {"sm_75": "Turing", "sm_80": "Ampere"}


@dataclass(frozen=True)
class BackwardOptions:
    dtype: str = "fp16"
    d: int = 64
    causal: bool = False
    group: int = 1
    arch: str = "sm_80"
    bm: int = 64
    bn: int = 64
    warps: int = 4  # down the rows of every GEMM's tile
    window: tuple[int, int] | None = None
    softcap: float | None = None
    alibi: bool = False
    name: str | None = None
    stages: int = 1  # of the query tiles' copies: 2 loads the next Q and dO under this one
    # "all": one kernel, dQ added by atomics (FlashAttention-2's); the deterministic mode's
    # two plans: "dkdv" (the same without dQ) and "dq" (blocks own a query tile and walk the
    # key tiles, summing dQ in registers: no atomics, so the same bits every run)
    part: str = "all"
    # warps across the columns (`with warps (WARPS, WARPS_N)`): the block runs warps x
    # warps_n of them; a target takes it where its gemm.splits_columns says so
    warps_n: int = 1


PARTS = ("all", "dkdv", "dq")


def kernel_name(o: BackwardOptions) -> str:
    kind = ("gqa" if o.group > 1 else "mha") + ("_causal" if o.causal else "")
    part = "" if o.part == "all" else f"_{o.part}"
    return o.name or f"{kind}_bwd{part}_{o.dtype}_d{o.d}_{o.arch.replace('_', '')}"


def _mma_shape(arch: str) -> str:
    """The MMA shape the target's backend emits (m16n8k8 on Turing)."""
    from tlc.backends import target_for

    try:
        return target_for(arch).gemm.shapes[0]
    except (KeyError, ValueError, AttributeError):
        return "m16n8k16"


def _warp_params(o: BackwardOptions) -> list[str]:
    return [f"param WARPS = {o.warps}"] + [f"param WARPS_N = {o.warps_n}"] * (o.warps_n > 1)


def _gemm_clause(o: BackwardOptions, mma: str) -> str:
    return f"with warps (WARPS, {'WARPS_N' if o.warps_n > 1 else 1}), mma {mma}"


def _score_chain(o: BackwardOptions, gemm: str, after_p: tuple[str, ...] = ()) -> list[str]:
    """S, P, dP and dS of a (query tile, key tile) pair: the statements both plan shapes
    share; `after_p` right after P is made (the dK/dV plans pack P and store it there)."""
    body = [f"Compute GEMM Q, K^T and get S {gemm}", "Compute Multiply S, scale and get new S"]
    if o.softcap:
        body.append(f"Compute Softcap S with cap {o.softcap}")
    if o.causal or o.window:
        clauses = " and ".join((["causal"] if o.causal else []) +
                               ([f"window ({o.window[0]}, {o.window[1]})"] if o.window else []))
        body.append(f"Compute Mask S with {clauses}")
    if o.alibi:
        body.append("Compute ALiBi S, slopes and get new S")
    body += ["Compute Exp S, L and get P", *after_p, f"Compute GEMM dO, V^T and get dP {gemm}",
             "Compute Subtract dP, Delta and get new dP", "Compute Multiply P, dP and get dS"]
    if o.softcap:
        body.append(f"Compute SoftcapGrad dS, S and get new dS with cap {o.softcap}")
    body += ["Compute Multiply dS, scale and get new dS"]
    return body


def _inputs(o: BackwardOptions) -> list[str]:
    dt = o.dtype
    lines = [f"input Q (B, H, Nq, D) {dt}", f"input K (B, Hkv, Nk, D) {dt}",
             f"input V (B, Hkv, Nk, D) {dt}", f"input dO (B, H, Nq, D) {dt}",
             "input L (B, H, Nq) fp32", "input Delta (B, H, Nq) fp32", "input scale fp32"]
    return lines + ["input slopes (H) fp32"] * o.alibi


DQ_HEADER = """# dQ of {what} on {family}, the deterministic way: a block owns one query tile and walks
# the key tiles it sees, recomputing the probabilities from the forward's row log-sum-exp L
# and dS as the dK/dV plan does, and sums dQ = dS K in registers: no block adds into
# another's rows, so dQ has the same bits every run.
"""


def render_dq(o: BackwardOptions) -> str:
    """The deterministic mode's dQ plan (part "dq")."""
    from tlc.templates import _loop_bounds

    mma = _mma_shape(o.arch)
    what = ("causal " if o.causal else "") + ("grouped-query attention" if o.group > 1
                                              else "attention")
    dt = o.dtype
    lines = [DQ_HEADER.format(what=what, family=FAMILIES.get(o.arch, o.arch)).rstrip("\n"),
             f"kernel {kernel_name(o)} for {o.arch}", ""] + _inputs(o)
    lines += [f"output dQ (B, H, Nq, D) {dt}", "",
              f"param D = {o.d}", f"param GROUP = {o.group}", f"param BM = {o.bm}",
              f"param BN = {o.bn}", *_warp_params(o)]
    if o.window:  # the loop's bounds name them (tlc.templates' window loop)
        lines += [f"param LEFT = {o.window[0]}", f"param RIGHT = {o.window[1]}"]
    lines += ["", "grid (cdiv(Nq, BM), H, B) as (m, h, b)", ""]
    lines += [f"Allocate {n} in shared ({rows}, D)" for n, rows in
              (("Q", "BM"), ("dO", "BM"), ("K", "BN"), ("V", "BN"))]
    lines += [f"Allocate {n} in register ({rows}, D)" for n, rows in
              (("Q", "BM"), ("dO", "BM"), ("K", "BN"), ("V", "BN"))]
    lines += ["Allocate L in register (BM)", "Allocate Delta in register (BM)",
              "Allocate S in register (BM, BN)", "Allocate P in register (BM, BN)",
              "Allocate dP in register (BM, BN)",
              "Allocate dS in register (BM, BN) with dtype fp32",
              "Allocate dQ in register (BM, D)", ""]
    at = "B = b, H = h, Nq = m"
    lines += [f"Copy {n} (BM, D) in coordinate [{at}] from global to shared with vector 8"
              for n in ("Q", "dO")]
    lines += [f"Copy {n} (BM) in coordinate [{at}] from global to register"
              for n in ("L", "Delta")]
    start, stop = _loop_bounds(o)
    staged = f", stages {o.stages}" if o.stages > 1 else ""
    gemm = _gemm_clause(o, mma)
    body = [f"Copy {n} (BN, D) in coordinate [B = b, Hkv = h / GROUP, Nk = n] from global to "
            f"shared with vector 8{staged}" for n in ("K", "V")]
    body += [f"Copy {n} from shared to register" for n in ("Q", "dO", "K", "V")]
    body += _score_chain(o, gemm)
    body += [f"Reshape dS from (MMA_C, BM, BN) to (MMA_A, BM, BN) with dtype {dt}",
             f"Compute GEMM dS, K and accumulate dQ {gemm}"]
    lines += [f"for n = {start}: {stop}"] + ["  " + line for line in body] + ["end"]
    lines += [f"Copy dQ (BM, D) in coordinate [{at}] from register to global"]
    return "\n".join(lines) + "\n"


def render(o: BackwardOptions) -> str:
    """The plan text for one choice of options."""
    if o.part not in PARTS:
        raise ValueError(f"part {o.part!r}: one of {', '.join(PARTS)}")
    if o.part == "dq":
        return render_dq(o)
    mma = _mma_shape(o.arch)
    what = ("causal " if o.causal else "") + ("grouped-query attention" if o.group > 1
                                              else "attention")
    lines = [HEADER.format(what=what, family=FAMILIES.get(o.arch, o.arch)).rstrip("\n"),
             f"kernel {kernel_name(o)} for {o.arch}", ""]
    dt = o.dtype
    with_dq = o.part == "all"
    lines += _inputs(o)
    lines += ["output dQ (B, H, Nq, D) fp32"] * with_dq
    lines += [f"output dK (B, Hkv, Nk, D) {dt}", f"output dV (B, Hkv, Nk, D) {dt}", "",
              f"param D = {o.d}", f"param GROUP = {o.group}", f"param BM = {o.bm}",
              f"param BN = {o.bn}", *_warp_params(o), "",
              "grid (cdiv(Nk, BN), Hkv, B) as (n, h, b)", ""]
    lines += ["Allocate K in shared (BN, D)", "Allocate V in shared (BN, D)",
              "Allocate Q in shared (BM, D)", "Allocate dO in shared (BM, D)",
              f"Allocate P in shared (BM, BN) with dtype {dt}",
              f"Allocate dS in shared (BM, BN) with dtype {dt}"]
    lines += [f"Allocate {n} in register ({rows}, D)" for n, rows in
              (("K", "BN"), ("V", "BN"), ("Q", "BM"), ("dO", "BM"))]
    lines += ["Allocate L in register (BM)", "Allocate Delta in register (BM)",
              "Allocate S in register (BM, BN)", "Allocate P in register (BM, BN)",
              "Allocate dP in register (BM, BN)",
              "Allocate dS in register (BM, BN) with dtype fp32"]
    lines += ["Allocate dQ in register (BM, D)"] * with_dq
    lines += ["Allocate dK in register (BN, D)", "Allocate dV in register (BN, D)", ""]
    lines += [f"Copy {n} (BN, D) in coordinate [B = b, Hkv = h, Nk = n] from global to shared "
              "with vector 8" for n in ("K", "V")]
    if o.causal:
        first = "max(0, (n * BN + Nq - Nk) / BM)"
        tiles = f"(cdiv(Nq, BM) - {first})"
        lines += ["# t runs over the query tiles of each query head of the group that see this",
                  "# key tile: from the first whose last row reaches it past the causal diagonal",
                  f"for t = 0: GROUP * {tiles}"]
        at = f"B = b, H = h * GROUP + t / {tiles}, Nq = {first} + t % {tiles}"
    else:
        lines += ["# t runs over the query tiles of each query head of the group",
                  "for t = 0: GROUP * cdiv(Nq, BM)"]
        at = "B = b, H = h * GROUP + t / cdiv(Nq, BM), Nq = t % cdiv(Nq, BM)"
    gemm = _gemm_clause(o, mma)
    staged = f", stages {o.stages}" if o.stages > 1 else ""
    body = [f"Copy {n} (BM, D) in coordinate [{at}] from global to shared with vector 8{staged}"
            for n in ("Q", "dO")]
    body += [f"Copy {n} (BM) in coordinate [{at}] from global to register"
             for n in ("L", "Delta")]
    body += [f"Copy {n} from shared to register" for n in ("Q", "dO", "K", "V")]
    # P packed and stored before dP's GEMM: its fp32 accumulator dies there, and dS = P * dP
    # reads the packed values, 16 registers fewer at the peak for a 64 x 128 tile on 8 warps
    body += _score_chain(o, gemm, after_p=(
        f"Reshape P from (MMA_C, BM, BN) to (MMA_A, BM, BN) with dtype {dt}",
        "Copy P from register to shared"))
    body += [f"Reshape dS from (MMA_C, BM, BN) to (MMA_A, BM, BN) with dtype {dt}",
             "Copy dS from register to shared", "Copy P from shared to register",
             f"Compute GEMM P^T, dO and accumulate dV {gemm}",
             "Copy dS from shared to register",
             f"Compute GEMM dS^T, Q and accumulate dK {gemm}"]
    body += [f"Compute GEMM dS, K and get dQ {gemm}",
             f"Copy dQ (BM, D) in coordinate [{at}] from register to global with add"] * with_dq
    lines += ["  " + line for line in body] + ["end"]
    lines += [f"Copy {n} (BN, D) in coordinate [B = b, Hkv = h, Nk = n] from register to global"
              for n in ("dK", "dV")]
    return "\n".join(lines) + "\n"


def backward_plan(dtype: str, d: int, causal: bool = False, group: int = 1,
                  arch: str = "sm_80", tiles=None, **variant) -> str:
    """The first plan for the case that `tlc check` accepts for arch, over `tiles` (default
    the arch's in TILES_OF, else TILES); ValueError naming the case where none fits."""
    from tlc.api import check

    if arch == "sm_75" and dtype == "bf16":
        raise ValueError("Turing's tensor cores take fp16, not bf16: no sm_75 backward plan "
                         "for bf16")
    tried = []
    for bm, bn, warps, warps_n, *stages in tiles or TILES_OF.get(arch, TILES):
        options = BackwardOptions(dtype, d, causal, group, arch, bm, bn, warps,
                                  warps_n=warps_n, stages=stages[0] if stages else 1,
                                  **variant)
        text = render(options)
        result = check(text, arch=arch)
        if result.ok:
            return text
        first = next(x for x in result.diagnostics if x.is_error)
        deep = f", stages {options.stages}" if options.stages > 1 else ""
        tried.append(f"BM {bm}, BN {bn}, warps ({warps}, {warps_n}){deep}: {first.message}")
    raise ValueError(f"no backward plan fits {dtype} D={d} on {arch}: " + "; ".join(tried))
