"""Hopper with its own instructions (sm_90a): warpgroup MMA (wgmma) from shared memory, TMA
copies by a producer warpgroup through mbarrier rings, registers moved to the consumers
with setmaxnreg."""
from tlc.backends.isa.tma import Tma
from tlc.backends.isa.wgmma import Wgmma
from tlc.backends.target import Target

SM90A = Target(
    arch="sm_90a",
    header="tlc_sm90a.cuh",
    gemm=Wgmma(instruction_n=(64, 128)),
    copies=Tma(),
    smem_padding=8,  # tiles the TMA does not fill (O on its way out) keep padded rows
    examples=("mha_fwd_fp16_d128_sm90a", "gqa_causal_fwd_bf16_d64_sm90a"),
)
