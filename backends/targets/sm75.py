"""Turing (sm_75): fp16 tensor cores with the m16n8k8 shape only (a 16-deep k-step is two of
them), and no cp.async: tiles reach shared memory through registers one compute phase ahead.
bf16 inputs are computed as fp16 when the plan says so (`Allocate K in shared (BN, D) with
dtype fp16`): the tile converts on its way to shared memory (docs/backend.md, "bf16 on
Turing")."""
from tlc.backends.isa.mma_sync import MmaSync
from tlc.backends.isa.register_copies import RegisterCopies
from tlc.backends.target import Target

SM75 = Target(
    arch="sm_75",
    header="tlc_sm75.cuh",
    gemm=MmaSync(shapes=("m16n8k8",),
                 k16={"fp16": "tlc::mma_k16_f16_as_two_k8"},
                 k8={"fp16": "tlc::mma_m16n8k8_f16"}),
    copies=RegisterCopies(),
    examples=("mha_fwd_fp16_d64_sm75",),
)
