// One warp, one MMA: the fragments built element by element from the layouts the PTX ISA
// states, or loaded with ldmatrix from shared memory, must give A*B. Checks tlc_sm80.cuh.
#include "tlc_sm80.cuh"

template <typename T>
__device__ uint32_t pack(T lo, T hi) {
    uint16_t l = *reinterpret_cast<uint16_t*>(&lo), h = *reinterpret_cast<uint16_t*>(&hi);
    return uint32_t(l) | (uint32_t(h) << 16);
}

__device__ void store_c(float* C, const float (&d)[4]) {
    int g = tlc::fragment_group(threadIdx.x), p = tlc::fragment_pair(threadIdx.x);
    C[g * 8 + p] = d[0];
    C[g * 8 + p + 1] = d[1];
    C[(g + 8) * 8 + p] = d[2];
    C[(g + 8) * 8 + p + 1] = d[3];
}

// A: 16x16 row-major, B: 16x8 row-major (k, n), C: 16x8 fp32 row-major.
template <typename T>
__device__ void direct_fragments(const T* A, const T* B, uint32_t (&a)[4], uint32_t (&b)[2]) {
    int g = tlc::fragment_group(threadIdx.x), p = tlc::fragment_pair(threadIdx.x);
    a[0] = pack(A[g * 16 + p], A[g * 16 + p + 1]);
    a[1] = pack(A[(g + 8) * 16 + p], A[(g + 8) * 16 + p + 1]);
    a[2] = pack(A[g * 16 + p + 8], A[g * 16 + p + 9]);
    a[3] = pack(A[(g + 8) * 16 + p + 8], A[(g + 8) * 16 + p + 9]);
    b[0] = pack(B[p * 8 + g], B[(p + 1) * 8 + g]);
    b[1] = pack(B[(p + 8) * 8 + g], B[(p + 9) * 8 + g]);
}

template <typename T>
__device__ void ldmatrix_fragments(const T* A, const T* B, uint32_t (&a)[4], uint32_t (&b)[2]) {
    __shared__ __align__(16) T sa[16 * 16];
    __shared__ __align__(16) T sb[16 * 8];
    for (int i = threadIdx.x; i < 16 * 16; i += 32) sa[i] = A[i];
    for (int i = threadIdx.x; i < 16 * 8; i += 32) sb[i] = B[i];
    __syncwarp();
    int lane = threadIdx.x;
    // Lanes 0-7, 8-15, 16-23, 24-31 address the rows of the four 8x8 quarters of A in the
    // order a[0..3] holds them; lanes 0-15 address the 16 k-rows of B, read transposed.
    tlc::ldmatrix_x4(a, tlc::smem_address(&sa[(lane % 16) * 16 + (lane / 16) * 8]));
    tlc::ldmatrix_x2_trans(b, tlc::smem_address(&sb[(lane % 16) * 8]));
}

extern "C" __global__ void mma_f16(const __half* A, const __half* B, float* C, int loaded) {
    uint32_t a[4], b[2];
    if (loaded) ldmatrix_fragments(A, B, a, b); else direct_fragments(A, B, a, b);
    float zero[4] = {0.f, 0.f, 0.f, 0.f}, d[4];
    tlc::mma_m16n8k16_f16(d, a, b, zero);
    store_c(C, d);
}

extern "C" __global__ void mma_bf16(const __nv_bfloat16* A, const __nv_bfloat16* B, float* C,
                                    int loaded) {
    uint32_t a[4], b[2];
    if (loaded) ldmatrix_fragments(A, B, a, b); else direct_fragments(A, B, a, b);
    float zero[4] = {0.f, 0.f, 0.f, 0.f}, d[4];
    tlc::mma_m16n8k16_bf16(d, a, b, zero);
    store_c(C, d);
}

// Turing's shape: A 16x8 row-major, B 8x8 row-major (k, n).
extern "C" __global__ void mma_f16_k8(const __half* A, const __half* B, float* C) {
    int g = tlc::fragment_group(threadIdx.x), p = tlc::fragment_pair(threadIdx.x);
    uint32_t a[2] = {pack(A[g * 8 + p], A[g * 8 + p + 1]),
                     pack(A[(g + 8) * 8 + p], A[(g + 8) * 8 + p + 1])};
    uint32_t b[1] = {pack(B[p * 8 + g], B[(p + 1) * 8 + g])};
    float zero[4] = {0.f, 0.f, 0.f, 0.f}, d[4];
    tlc::mma_m16n8k8_f16(d, a, b, zero);
    store_c(C, d);
}

// Row reductions over a quad and exp2, as the softmax uses them: out[lane] = (max, sum, 2^x)
// of the values the four lanes of the lane's quad hold.
extern "C" __global__ void quad_ops(const float* x, float* out) {
    float v = x[threadIdx.x];
    out[threadIdx.x * 3] = tlc::quad_max(v);
    out[threadIdx.x * 3 + 1] = tlc::quad_sum(v);
    out[threadIdx.x * 3 + 2] = tlc::exp2_approx(v);
}

// cp.async of 16-byte chunks, the invalid ones zero-filled: out = valid ? in : 0.
extern "C" __global__ void async_copy(const int4* in, int4* out, int valid_chunks) {
    __shared__ __align__(16) int4 tile[32];
    int lane = threadIdx.x;
    tlc::cp_async_16(tlc::smem_address(&tile[lane]), in + (lane < valid_chunks ? lane : 0),
                     lane < valid_chunks);
    tlc::cp_async_commit();
    tlc::cp_async_wait<0>();
    __syncwarp();
    out[lane] = tile[lane];
}
