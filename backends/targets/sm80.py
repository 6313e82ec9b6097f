"""Ampere (sm_80): cp.async pipelines, ldmatrix, m16n8k16 MMA for fp16 and bf16."""
from tlc.backends.isa.cp_async import CpAsync
from tlc.backends.isa.mma_sync import MmaSync
from tlc.backends.target import Target

SM80 = Target(
    arch="sm_80",
    header="tlc_sm80.cuh",
    gemm=MmaSync(shapes=("m16n8k16",),
                 k16={"fp16": "tlc::mma_m16n8k16_f16", "bf16": "tlc::mma_m16n8k16_bf16"},
                 k8={"fp16": "tlc::mma_m16n8k8_f16", "bf16": "tlc::mma_m16n8k8_bf16"},
                 # tests/gpu/test_backward_gpu.py: split backward plans' gradients pass
                 splits_columns=True),
    copies=CpAsync(),
    examples=("mha_fwd_fp16_d128_sm80", "gqa_causal_fwd_bf16_d64_sm80"),
)
