"""TL plans for a grid of cases, made from one template by the same choices a person edits:
dtype, head dim, causal, heads per K/V head, tiles. Each plan is checked by tlc before use."""
from __future__ import annotations

import itertools

TEMPLATE = """kernel attention_{dtype}_d{d}{suffix} for {arch}

input Q (B, H, Nq, D) {dtype}
input K (B, Hkv, Nk, D) {dtype}
input V (B, Hkv, Nk, D) {dtype}
input scale fp32
output O (B, H, Nq, D) {dtype}

param D = {d}
param GROUP = {group}
param BM = {bm}
param BN = {bn}
param WARPS = {warps}
param STAGES = {stages}

grid (cdiv(Nq, BM), H, B) as (m, h, b)

Allocate Q in shared (BM, D){tiles}
Allocate K in shared (BN, D){tiles}
Allocate V in shared (BN, D){tiles}
Allocate Q in register (BM, D)
Allocate K in register (BN, D)
Allocate V in register (BN, D)
Allocate S in register (BM, BN)
Allocate O in register (BM, D)
{staging}
Copy Q (BM, D) in coordinate [B = b, H = h, Nq = m] from global to shared with vector 8
for n = 0: {stop}
  Copy K (BN, D) in coordinate [B = b, Hkv = h / GROUP, Nk = n] from global to shared with vector 8, stages STAGES
  Copy V (BN, D) in coordinate [B = b, Hkv = h / GROUP, Nk = n] from global to shared with vector 8, stages STAGES
  Copy Q from shared to register
  Copy K from shared to register
  Compute GEMM Q, K^T and get S with warps (WARPS, 1), mma {mma}
  Compute Multiply S, scale and get new S
{mask}  Compute Softmax S
  Reshape S from (MMA_C, BM, BN) to (MMA_A, BM, BN) with dtype {compute}
  Copy V from shared to register
  Compute GEMM S, V and accumulate O with warps (WARPS, 1), mma {mma}
end
{store}"""

# Tiles per head dim, largest first; the first that `tlc check` accepts is used.
TILES = [(128, 64, 4), (128, 32, 4), (64, 64, 4), (64, 32, 4), (64, 32, 2), (32, 32, 2), (64, 16, 4)]


STAGED = ("Allocate O in shared (BM, D)\n",
          "Copy O from register to shared\n"
          "Copy O (BM, D) in coordinate [B = b, H = h, Nq = m] from shared to global "
          "with vector 8\n")
DIRECT = ("", "Copy O (BM, D) in coordinate [B = b, H = h, Nq = m] from register to global\n")


def plan(dtype: str, d: int, causal: bool, group: int, arch: str = "sm_80",
         stages: int = 2, staged: bool = True) -> str:
    """The first tiling of the template that passes `tlc check` for arch; O leaves registers
    through a shared tile (coalesced) where one fits, or straight to global memory.
    The target's data decides the rest: its backend's MMA shape, one stage where there is no
    cp.async, and fp16 tiles for a dtype its tensor cores lack (bf16 on Turing)."""
    from tlc.api import check
    from tlc.arch import ARCHS
    from tlc.backends import backend_for

    target = ARCHS[arch]
    mma = backend_for(arch).mma_shapes[0]
    stages = stages if target.has_cp_async else 1
    compute = dtype if any(d.value == dtype for d in target.mma_dtypes) else "fp16"
    tiles = " with dtype fp16" if compute != dtype else ""
    stores = (STAGED, DIRECT) if staged else (DIRECT,)
    stop = "cdiv(min(Nk, (m + 1) * BM + Nk - Nq), BN)" if causal else "cdiv(Nk, BN)"
    mask = "  Compute Mask S with causal\n" if causal else ""
    for (staging, store), (bm, bn, warps) in itertools.product(stores, TILES):
        text = TEMPLATE.format(dtype=dtype, d=d, suffix="_causal" if causal else "",
                               arch=arch, group=group, bm=bm, bn=bn, warps=warps, stop=stop,
                               mask=mask, stages=stages, staging=staging, store=store,
                               mma=mma, compute=compute, tiles=tiles)
        if check(text, arch=arch).ok:
            return text
    raise ValueError(f"no tiling of the template fits {dtype} D={d} on {arch}")
