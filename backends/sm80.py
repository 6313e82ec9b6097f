"""Ampere (sm_80) and newer: cp.async pipelines, ldmatrix, m16n8k16 MMA for fp16 and bf16."""
from tlc.backends.base import Backend


class Sm80(Backend):
    arch = "sm_80"
    header = "tlc_sm80.cuh"
    has_cp_async = True
    mma_shapes = ("m16n8k16",)
    mma_k16 = {"fp16": "tlc::mma_m16n8k16_f16", "bf16": "tlc::mma_m16n8k16_bf16"}
    mma_k8 = {"fp16": "tlc::mma_m16n8k8_f16", "bf16": "tlc::mma_m16n8k8_bf16"}
    computes = ("GEMM", "Multiply", "Softmax", "Mask", "Softcap", "ALiBi")
