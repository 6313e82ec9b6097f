// tlc_sm75.cuh: Turing. fp16 tensor cores with the m16n8k8 shape (PTX ISA, mma, sm_75);
// no cp.async, so tiles reach shared memory through registers.
#pragma once
#include "tlc_common.cuh"

namespace tlc {

// D = A * B + C for a 16x8x8 tile: fp16 inputs, fp32 accumulation.
__device__ __forceinline__ void mma_m16n8k8_f16(float (&d)[4], const uint32_t (&a)[2],
                                                const uint32_t (&b)[1], const float (&c)[4]) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5}, {%6}, {%7, %8, %9, %10};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(b[0]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

}  // namespace tlc
