// Kernels that test the helpers of tlc_sm90a.cuh one at a time (tests/gpu/test_sm90a.py).
#include "tlc_sm90a.cuh"

using namespace tlc::sm90a;

// Two TMA loads of a 64 x 64 fp16 box through one mbarrier (phases 0 and 1), each shared
// tile copied out raw, in shared-memory order, so that the test sees the swizzle. The
// tensor map travels by value between two ints, which come back in out's tail.
extern "C" __global__ void __launch_bounds__(128, 1) tma_boxes(
        int first, const __grid_constant__ CUtensorMap map, uint16_t* out, int c0, int c1,
        int last) {
    __shared__ alignas(1024) uint16_t tile[64 * 64];
    __shared__ uint64_t barrier;
    if (threadIdx.x == 0) {
        prefetch_tensormap(&map);
        mbarrier_init(&barrier, 1);
        fence_barrier_init();
    }
    __syncthreads();
    for (int round = 0; round < 2; ++round) {
        if (threadIdx.x == 0) {
            mbarrier_arrive_expect_tx(&barrier, sizeof(tile));
            tma_load_2d(tile, &map, &barrier, c0 + 64 * round, c1);
        }
        mbarrier_wait(&barrier, round & 1);
        for (int i = threadIdx.x; i < 64 * 64; i += blockDim.x) out[round * 4096 + i] = tile[i];
        __syncthreads();  // every thread has read the tile before the next load overwrites it
    }
    if (threadIdx.x == 0) {
        out[8192] = static_cast<uint16_t>(first);
        out[8193] = static_cast<uint16_t>(last);
    }
}

// The accumulator fragments of one warpgroup written out by the documented layout: thread
// t holds d[4j + r] at row 16 (t / 32) + (t % 32) / 4 + 8 (r / 2), column 8j + 2 (t % 4) + r % 2.
template <int N>
__device__ void store_accumulators(const float (&d)[N / 2], float* out) {
    const int t = threadIdx.x % 128, row = 16 * (t / 32) + (t % 32) / 4, col = 2 * (t % 4);
#pragma unroll
    for (int j = 0; j < N / 8; ++j)
#pragma unroll
        for (int r = 0; r < 4; ++r)
            out[(row + 8 * (r / 2)) * N + 8 * j + col + r % 2] = d[4 * j + r];
}

// Thread 0 makes a one-arrival mbarrier; the block waits until it exists.
__device__ __forceinline__ void make_barrier(uint64_t& barrier) {
    if (threadIdx.x == 0) {
        mbarrier_init(&barrier, 1);
        fence_barrier_init();
    }
    __syncthreads();
}

// The wgmma group issued, waited for, its accumulators kept live, and written out.
template <int N>
__device__ __forceinline__ void finish_and_store(float (&d)[N / 2], float* out) {
    wgmma_commit();
    wgmma_wait<0>();
    wgmma_hold(d);
    store_accumulators<N>(d, out);
}

// D = A * B^T with A (64 x 64) and B (N x 64) K-major, each loaded by TMA with the 128-byte
// swizzle (rows of 64 fp16 = 128 bytes; 8 rows = 1024 bytes apart in the descriptor's SBO);
// four k16 steps advance each descriptor's start by 32 bytes.
template <int N>
__device__ void wgmma_ss_test(const CUtensorMap& a_map, const CUtensorMap& b_map, float* out) {
    __shared__ alignas(1024) __half a_tile[64 * 64];
    __shared__ alignas(1024) __half b_tile[N * 64];
    __shared__ uint64_t barrier;
    make_barrier(barrier);
    if (threadIdx.x == 0) {
        mbarrier_arrive_expect_tx(&barrier, sizeof(a_tile) + sizeof(b_tile));
        tma_load_2d(a_tile, &a_map, &barrier, 0, 0);
        for (int panel = 0; panel < N / 64; ++panel)
            tma_load_2d(b_tile + panel * 64 * 64, &b_map, &barrier, 0, 64 * panel);
    }
    mbarrier_wait(&barrier, 0);
    float d[N / 2];
    wgmma_fence();
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        const uint64_t a = smem_descriptor(a_tile + 16 * k, 16, 1024, SWIZZLE_128B);
        const uint64_t b = smem_descriptor(b_tile + 16 * k, 16, 1024, SWIZZLE_128B);
        if constexpr (N == 64) wgmma_m64n64k16_ss_fp16<0>(d, a, b, k > 0);
        else wgmma_m64n128k16_ss_fp16<0>(d, a, b, k > 0);
    }
    finish_and_store<N>(d, out);
}

extern "C" __global__ void __launch_bounds__(128, 1) wgmma_ss_n64(
        const __grid_constant__ CUtensorMap a_map, const __grid_constant__ CUtensorMap b_map,
        float* out) {
    wgmma_ss_test<64>(a_map, b_map, out);
}

extern "C" __global__ void __launch_bounds__(128, 1) wgmma_ss_n128(
        const __grid_constant__ CUtensorMap a_map, const __grid_constant__ CUtensorMap b_map,
        float* out) {
    wgmma_ss_test<128>(a_map, b_map, out);
}

// O = P * V with P (64 x 64, fp16) from registers in the accumulator layout (each k16 slice
// as four registers of two packed values) and V (64 x 64, its rows the K dimension, N
// contiguous: MN-major) by TMA with the 128-byte swizzle, read through the transpose bit; a
// k16 step is 16 rows of V = 2048 bytes.
extern "C" __global__ void __launch_bounds__(128, 1) wgmma_rs_n64(
        const __half* p, const __grid_constant__ CUtensorMap v_map, float* out) {
    __shared__ alignas(1024) __half v_tile[64 * 64];
    __shared__ uint64_t barrier;
    make_barrier(barrier);
    if (threadIdx.x == 0) {
        mbarrier_arrive_expect_tx(&barrier, sizeof(v_tile));
        tma_load_2d(v_tile, &v_map, &barrier, 0, 0);
    }
    const int t = threadIdx.x, row = 16 * (t / 32) + (t % 32) / 4, col = 2 * (t % 4);
    uint32_t a[4][4];
#pragma unroll
    for (int k = 0; k < 4; ++k)
#pragma unroll
        for (int half = 0; half < 2; ++half)
#pragma unroll
            for (int r = 0; r < 2; ++r) {  // registers: (row, cols), (row + 8, cols), then + 8 cols
                const __half* at = p + (row + 8 * r) * 64 + 16 * k + 8 * half + col;
                a[k][2 * half + r] = tlc::pack_half2(__half2float(at[0]), __half2float(at[1]));
            }
    mbarrier_wait(&barrier, 0);
    float d[32];
    wgmma_fence();
#pragma unroll
    for (int k = 0; k < 4; ++k)
        wgmma_m64n64k16_rs_fp16<1>(d, a[k], smem_descriptor(v_tile + 16 * 64 * k, 64 * 128,
                                                               1024, SWIZZLE_128B), k > 0);
    finish_and_store<64>(d, out);
}
