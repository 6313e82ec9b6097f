"""Turing (sm_75): the Ampere lowering with Turing's data. fp16 tensor cores with the m16n8k8
shape only (a 16-deep k-step is two of them), and no cp.async: the emitter loads the next K/V
tile into registers while the current one is computed and stores it to shared memory when
the compute is done with the old one. bf16 inputs are computed as fp16 when the plan says so
(`Allocate K in shared (BN, D) with dtype fp16`): the tile converts on its way to shared
memory (docs/backend.md, "bf16 on Turing")."""
from tlc.backends.base import Backend


class Sm75(Backend):
    arch = "sm_75"
    header = "tlc_sm75.cuh"
    has_cp_async = False
    mma_shapes = ("m16n8k8",)
    mma_k16 = {"fp16": "tlc::mma_k16_f16_as_two_k8"}
    mma_k8 = {"fp16": "tlc::mma_m16n8k8_f16"}
    computes = ("GEMM", "Multiply", "Softmax", "Mask", "Softcap", "ALiBi")
