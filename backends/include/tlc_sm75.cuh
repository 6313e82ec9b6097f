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

// A 16-deep k-step as two m16n8k8 steps. The registers of an m16n8k16 A fragment are two
// m16n8k8 A fragments side by side (a[0..1]: columns 0-7, a[2..3]: columns 8-15), and those
// of its B fragment two m16n8k8 B fragments (b[0]: k 0-7, b[1]: k 8-15) [PTX ISA, fragment
// layouts of mma.m16n8k8 and mma.m16n8k16], so operands load 16 deep on every target.
__device__ __forceinline__ void mma_k16_f16_as_two_k8(float (&d)[4], const uint32_t (&a)[4],
                                                      const uint32_t (&b)[2],
                                                      const float (&c)[4]) {
    const uint32_t a_lo[2] = {a[0], a[1]}, a_hi[2] = {a[2], a[3]};
    const uint32_t b_lo[1] = {b[0]}, b_hi[1] = {b[1]};
    mma_m16n8k8_f16(d, a_lo, b_lo, c);
    mma_m16n8k8_f16(d, a_hi, b_hi, d);
}

// 16 bytes of global memory, or zeros where `valid` is false (rows past the end of a
// sequence: zeros keep 0 * garbage out of the products).
__device__ __forceinline__ uint4 load_16(const void* global, bool valid) {
    return valid ? __ldg(reinterpret_cast<const uint4*>(global)) : make_uint4(0u, 0u, 0u, 0u);
}

// Eight bf16 values as eight fp16 values, each rounded to nearest: exact for magnitudes in
// [2^-14, 65504] (fp16 has more significand bits than bf16); smaller magnitudes become fp16
// subnormals (absolute error at most 2^-25), larger ones infinity. The runtime refuses
// inputs beyond 65504 for plans that convert (tlc/runtime.py).
__device__ __forceinline__ uint4 bf16x8_to_f16x8(uint4 raw) {
    uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float lo = __uint_as_float(words[i] << 16), hi = __uint_as_float(words[i] & 0xffff0000u);
        words[i] = pack_half2(lo, hi);
    }
    return make_uint4(words[0], words[1], words[2], words[3]);
}

}  // namespace tlc
