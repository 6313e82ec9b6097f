"""Hopper with its own instructions (sm_90a: wgmma, TMA, setmaxnreg). Declared: plans are
checked against its limits; its lowering (warpgroup MMA, TMA rings, warp specialization) is
still to come, so it has no instruction sets yet."""
from tlc.backends.target import Target

SM90A = Target(
    arch="sm_90a",
    note="its lowering (wgmma, TMA, warp specialization) is not written yet; target sm_90 to "
         "run the Ampere lowering on Hopper GPUs",
    examples=("mha_fwd_fp16_d128_sm80", "gqa_causal_fwd_bf16_d64_sm80"),
)
