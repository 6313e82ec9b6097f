// tlc_common.cuh: device helpers every target shares. Generated kernels call these by name;
// the PTX inside is reviewed here once rather than emitted inline.
#pragma once
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <stdint.h>

namespace tlc {

// The ceiling of a / b for b > 0 and any a, as the language (and tlc check) defines it: a loop
// bound such as cdiv(min(Nk, (m + 1) * BM + Nk - Nq), BN) goes negative when Nq > Nk.
__host__ __device__ __forceinline__ constexpr int cdiv(int a, int b) {
    return a >= 0 ? (a + b - 1) / b : -(-a / b);
}

// Two floats packed into the 32-bit register an MMA operand takes (low half = first value).
__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
}

__device__ __forceinline__ uint32_t pack_bf162(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
}

// One value of a packed pair back as a float (second: the high half): an elementwise rule
// reading a tile after its Reshape takes the rounded values the A fragments hold, so the fp32
// accumulator need not stay alive (the backward's dS = P * dP with P already packed).
__device__ __forceinline__ float unpack_half2(uint32_t pair, bool second) {
    const __half2 h = *reinterpret_cast<const __half2*>(&pair);
    return second ? __high2float(h) : __low2float(h);
}

__device__ __forceinline__ float unpack_bf162(uint32_t pair, bool second) {
    const __nv_bfloat162 h = *reinterpret_cast<const __nv_bfloat162*>(&pair);
    return second ? __high2float(h) : __low2float(h);
}

// Adds two neighbouring fp32 values into global memory (a tile other blocks add into too, as
// the backward's dQ): one 8-byte reduction where the GPU has it (red.global.add.v2.f32, sm_90
// and newer [PTX ISA, red: vector types]) and the caller found the pairs 8-byte aligned
// (pair_reductions), else two atomic adds. On the H200 the vector form made the D = 64
// backward 1.4-1.45x faster: its time goes to these reductions
// (benchmarks/results/h200-backward-ablation.log). Four columns by one 16-byte reduction,
// neighbouring lanes swapping halves first, was 5-7 % slower there in a trial without the mask
// and the same causal: the shuffles cost what the requests saved gain.
__device__ __forceinline__ void add_pair(float* at, float first, float second, bool aligned) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (aligned) {
        asm volatile("red.global.add.v2.f32 [%0], {%1, %2};"
                     :: "l"(__cvta_generic_to_global(at)), "f"(first), "f"(second) : "memory");
        return;
    }
#endif
    atomicAdd(at, first);
    atomicAdd(at + 1, second);
}

// Whether add_pair may take its 8-byte reduction at every base + row * row_stride + an even
// column: asked once for a tile, so the reductions carry no test of their own (one per pair
// was a branch and a convergence barrier each). False where the GPU has no vector reduction.
__device__ __forceinline__ bool pair_reductions(const float* base, long long row_stride) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    return (reinterpret_cast<uintptr_t>(base) & 7) == 0 && (row_stride & 1) == 0;
#else
    (void)base, (void)row_stride;
    return false;
#endif
}

// 2^x in one SFU instruction; softmax uses exp2 with log2(e) folded into the scale.
__device__ __forceinline__ float exp2_approx(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// cap * tanh(s / cap) (a logit softcap), with tanh(x) = 1 - 2 / (1 + e^(2x)): one ex2 and
// one reciprocal, where tanhf's polynomial keeps enough temporaries alive across a score tile
// to spill. Absolute error about 2^-22 of the cap; e^(2x) overflowing to inf gives exactly 1.
__device__ __forceinline__ float softcap(float s, float cap, float inverse_cap) {
    const float e = exp2_approx(2.8853900817779268f * s * inverse_cap);  // 2 log2(e) s / cap
    return cap - 2.f * cap * __frcp_rn(1.f + e);
}

// Reductions over the 4 lanes of a quad: the lanes that share one row of an MMA fragment.
__device__ __forceinline__ float quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

__device__ __forceinline__ float quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// Across the 32 lanes of a warp (the combine of split parts: a warp per output row).
__device__ __forceinline__ float warp_max(float x) {
    for (int lanes = 16; lanes > 0; lanes /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, lanes));
    return x;
}

__device__ __forceinline__ float warp_sum(float x) {
    for (int lanes = 16; lanes > 0; lanes /= 2) x += __shfl_xor_sync(0xffffffffu, x, lanes);
    return x;
}

// The shared-memory address space pointer that ldmatrix and cp.async take.
__device__ __forceinline__ uint32_t smem_address(const void* pointer) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

// ldmatrix (PTX ISA, "ldmatrix", sm_75+): each of four 8x8 b16 matrices comes from 8 row
// addresses given by lanes 8i..8i+7; lane l receives elements (l / 4, 2 (l % 4) + {0, 1}) of
// each matrix, one 32-bit register per matrix. .trans delivers the transposed matrices.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address));
}

__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], uint32_t address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(address));
}

__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], uint32_t address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(address));
}

// Fragment layouts of mma.sync (PTX ISA, "Matrix fragments for mma.m16n8k16" and
// "... mma.m16n8k8"), with group = lane / 4 and pair = 2 * (lane % 4):
//   C, D (16x8 fp32), c[0..3]: (group, pair + {0,1}), (group + 8, pair + {0,1})
//   A (16x16 b16), a[0..3]:    (group, pair..+1), (group+8, pair..+1), (group, pair+8..+9),
//                              (group+8, pair+8..+9)              [row, column]
//   B (16x8 b16), b[0..1]:     (pair..+1, group), (pair+8..+9, group)  [k, n]
//   A (16x8 b16, m16n8k8), a[0..1]: (group, pair..+1), (group+8, pair..+1)
//   B (8x8 b16, m16n8k8), b[0]: (pair..+1, group)
__device__ __forceinline__ int fragment_group(int lane) { return lane >> 2; }
__device__ __forceinline__ int fragment_pair(int lane) { return (lane & 3) * 2; }

}  // namespace tlc
