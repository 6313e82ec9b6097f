// The Turing helpers (tlc_sm75.cuh) alone, built as PTX for compute_75: a 16-deep k-step as
// two m16n8k8 MMAs, the bf16 -> fp16 tile conversion, and the zero-filling 16-byte load.
#include "tlc_sm75.cuh"

// A: 16x16 fp16 row-major, B: 16x8 fp16 row-major (k, n), C: 16x8 fp32, one warp; the
// fragments are built element by element from the m16n8k16 layouts of the PTX ISA.
extern "C" __global__ void mma_k16_by_k8(const __half* A, const __half* B, float* C) {
    const int g = tlc::fragment_group(threadIdx.x), p = tlc::fragment_pair(threadIdx.x);
    auto pack = [](__half lo, __half hi) {
        return uint32_t(__half_as_ushort(lo)) | (uint32_t(__half_as_ushort(hi)) << 16);
    };
    const uint32_t a[4] = {pack(A[g * 16 + p], A[g * 16 + p + 1]),
                           pack(A[(g + 8) * 16 + p], A[(g + 8) * 16 + p + 1]),
                           pack(A[g * 16 + p + 8], A[g * 16 + p + 9]),
                           pack(A[(g + 8) * 16 + p + 8], A[(g + 8) * 16 + p + 9])};
    const uint32_t b[2] = {pack(B[p * 8 + g], B[(p + 1) * 8 + g]),
                           pack(B[(p + 8) * 8 + g], B[(p + 9) * 8 + g])};
    float d[4] = {0.f, 0.f, 0.f, 0.f};
    tlc::mma_k16_f16_as_two_k8(d, a, b, d);
    C[g * 8 + p] = d[0];
    C[g * 8 + p + 1] = d[1];
    C[(g + 8) * 8 + p] = d[2];
    C[(g + 8) * 8 + p + 1] = d[3];
}

// Each thread converts 8 bf16 values (16 bytes) to fp16.
extern "C" __global__ void convert_bf16(const uint4* in, uint4* out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = tlc::bf16x8_to_f16x8(in[i]);
}

// Chunks at or past `valid` come back as zeros, without reading them.
extern "C" __global__ void masked_load(const uint4* in, uint4* out, int valid) {
    out[threadIdx.x] = tlc::load_16(in + threadIdx.x, int(threadIdx.x) < valid);
}
