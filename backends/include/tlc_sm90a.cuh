// tlc_sm90a.cuh: Hopper (sm_90a) helpers: mbarriers, TMA tensor copies (cp.async.bulk.tensor)
// and warpgroup MMA (wgmma). Facts from the PTX ISA (sections "mbarrier", "cp.async.bulk.tensor",
// "Asynchronous Warpgroup Level Matrix Multiply-Accumulate"); each helper has a test of its own
// on the GPU (tests/gpu/test_sm90a.py). Build with -gencode=arch=compute_90a,code=sm_90a.
#pragma once
#include <cuda.h>  // CUtensorMap: the 128-byte TMA descriptor, passed by value (__grid_constant__)
#include "tlc_common.cuh"

namespace tlc {
namespace sm90a {

// ---- mbarriers: a 64-bit shared-memory object counting arrivals and transaction bytes ----

__device__ __forceinline__ void mbarrier_init(uint64_t* barrier, uint32_t arrivals) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;"
                 :: "r"(smem_address(barrier)), "r"(arrivals) : "memory");
}

// Makes initialised barriers visible to the async proxy (TMA) before first use.
__device__ __forceinline__ void fence_barrier_init() {
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

// One arrival that also announces `bytes` the copy engine will deliver to this phase.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* barrier, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;"
                 :: "r"(smem_address(barrier)), "r"(bytes) : "memory");
}

__device__ __forceinline__ void mbarrier_arrive(uint64_t* barrier) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];"
                 :: "r"(smem_address(barrier)) : "memory");
}

// Whether the phase of parity `phase` (0 or 1) has completed; try_wait may suspend a while.
__device__ __forceinline__ bool mbarrier_try_wait(uint64_t* barrier, uint32_t phase) {
    uint32_t done;
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                 "selp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done) : "r"(smem_address(barrier)), "r"(phase) : "memory");
    return done != 0;
}

__device__ __forceinline__ void mbarrier_wait(uint64_t* barrier, uint32_t phase) {
    while (!mbarrier_try_wait(barrier, phase)) {
    }
}

// ---- TMA: whole tiles between global and shared memory by the copy engine ----

__device__ __forceinline__ void prefetch_tensormap(const CUtensorMap* map) {
    asm volatile("prefetch.tensormap [%0];" :: "l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// Load the box at coordinates (c0 innermost) into shared memory (128-byte aligned; 1024 with
// the 128-byte swizzle); its bytes count against `barrier`'s current phase. Parts of the box
// past the tensor's end, or all of it, arrive as zeros. c0 times the element size must be a
// multiple of 16 bytes: on the H200 a box starting at byte 300 of a row stopped the kernel
// with an illegal instruction (tests/gpu/test_sm90a.py keeps to 16-byte starts).
__device__ __forceinline__ void tma_load_2d(void* destination, const CUtensorMap* map,
                                            uint64_t* barrier, int c0, int c1) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%3, %4}], [%2];"
                 :: "r"(smem_address(destination)), "l"(reinterpret_cast<uint64_t>(map)),
                    "r"(smem_address(barrier)), "r"(c0), "r"(c1) : "memory");
}

__device__ __forceinline__ void tma_load_3d(void* destination, const CUtensorMap* map,
                                            uint64_t* barrier, int c0, int c1, int c2) {
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%3, %4, %5}], [%2];"
                 :: "r"(smem_address(destination)), "l"(reinterpret_cast<uint64_t>(map)),
                    "r"(smem_address(barrier)), "r"(c0), "r"(c1), "r"(c2) : "memory");
}

__device__ __forceinline__ void tma_load_4d(void* destination, const CUtensorMap* map,
                                            uint64_t* barrier, int c0, int c1, int c2, int c3) {
    asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%3, %4, %5, %6}], [%2];"
                 :: "r"(smem_address(destination)), "l"(reinterpret_cast<uint64_t>(map)),
                    "r"(smem_address(barrier)), "r"(c0), "r"(c1), "r"(c2), "r"(c3) : "memory");
}

// Orders this thread's ordinary shared-memory writes before the async proxy (wgmma, a TMA
// store) reads them; each writing thread fences, then the threads synchronise.
__device__ __forceinline__ void fence_proxy_async_shared() {
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

// ---- warp specialization: a producer warpgroup copies, consumer warpgroups compute ----

// A warpgroup's register count becomes `Count` (a multiple of 8 in 24..256): the producer
// gives registers back, the consumers take them. Takes effect when the kernel has a register
// cap at entry (__launch_bounds__(threads, 1)) and each role is one branch [PTX ISA, setmaxnreg].
template <int Count>
__device__ __forceinline__ void registers_decrease() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" :: "n"(Count));
}

template <int Count>
__device__ __forceinline__ void registers_increase() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" :: "n"(Count));
}

// A barrier among the consumers' `Threads` only (named barrier 1; __syncthreads is barrier
// 0 and would wait for the producer too).
template <int Threads>
__device__ __forceinline__ void consumer_sync() {
    asm volatile("bar.sync 1, %0;" :: "n"(Threads) : "memory");
}

// Warpgroups taking turns at the tensor cores (ping-pong): a warpgroup waits at its own named
// barrier until the one before it has issued its MMAs and passed the turn on, so one
// warpgroup's softmax runs while another's MMAs do. Both sides count 2 warpgroups' threads.
__device__ __forceinline__ void warpgroup_turn_wait(int barrier) {
    asm volatile("bar.sync %0, 256;" :: "r"(barrier) : "memory");
}

__device__ __forceinline__ void warpgroup_turn_pass(int barrier) {
    asm volatile("bar.arrive %0, 256;" :: "r"(barrier) : "memory");
}

// ---- wgmma: a warpgroup (4 consecutive warps from a multiple of 4) multiplies 64 x N x 16 ----

// Swizzle modes of a shared-memory matrix descriptor (bits 62-63).
enum Swizzle : uint32_t { SWIZZLE_NONE = 0, SWIZZLE_128B = 1, SWIZZLE_64B = 2, SWIZZLE_32B = 3 };

// The 64-bit descriptor of a matrix in shared memory: start address >> 4 (bits 0-13), leading
// dimension byte offset >> 4 (16-29), stride dimension byte offset >> 4 (32-45), base offset 0
// (49-51: the tile is 1024-byte aligned), swizzle (62-63).
__device__ __forceinline__ uint64_t smem_descriptor(const void* tile, uint32_t leading_bytes,
                                                    uint32_t stride_bytes, Swizzle swizzle) {
    const uint64_t address = smem_address(tile);
    return ((address >> 4) & 0x3FFF) | (uint64_t((leading_bytes >> 4) & 0x3FFF) << 16) |
           (uint64_t((stride_bytes >> 4) & 0x3FFF) << 32) | (uint64_t(swizzle) << 62);
}

// Orders register writes (accumulators, A fragments) before the wgmma that reads them.
__device__ __forceinline__ void wgmma_fence() {
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
}

__device__ __forceinline__ void wgmma_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}

// Waits until at most `Pending` committed groups are still running.
template <int Pending>
__device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;" :: "n"(Pending) : "memory");
}

// Keeps the compiler from moving accumulator reads and writes across an asynchronous wgmma.
template <int N>
__device__ __forceinline__ void wgmma_hold(float (&d)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i]) :: "memory");
}

// D (+)= A * B for a 64 x N x 16 tile, fp32 accumulators: thread t of the warpgroup holds, for
// each 8-column block j, d[4j + r] at row 16 (t / 32) + (t % 32) / 4 + 8 (r / 2) and column
// 8j + 2 (t % 4) + r % 2. `_ss`: A and B by descriptor (A K-major); `_rs`: A from registers in
// the accumulator layout of a 64 x 16 tile, two packed 16-bit values a register. B is K-major,
// or MN-major with TransposeB = 1 (V in its natural layout for P * V). accumulate = 0 writes D.
// The eight wrappers differ in N (64 or 128: N / 2 accumulator registers a thread), where A
// comes from (descriptor or registers) and the element type: one macro a form, each
// instantiated per shape and type. Operand numbers follow the accumulators: A, B, the
// accumulate flag, then the transpose immediate.
#define TLC_WGMMA_REGS_0_31 \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define TLC_WGMMA_REGS_32 TLC_WGMMA_REGS_0_31 " "
#define TLC_WGMMA_REGS_64 TLC_WGMMA_REGS_0_31 ", " \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63 "
#define TLC_WGMMA_OUT_32 \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
    "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
    "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
#define TLC_WGMMA_OUT_64 TLC_WGMMA_OUT_32, \
    "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
    "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
    "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
    "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])

#define TLC_WGMMA_SS(N, COUNT, TYPE, NAME, A, B, ACC, TRANS)                                  \
    template <int TransposeB>                                                               \
    __device__ __forceinline__ void wgmma_m64n##N##k16_ss_##NAME(                           \
            float (&d)[COUNT], uint64_t a, uint64_t b, uint32_t accumulate) {                \
        asm volatile(                                                                       \
            "{\n.reg .pred p;\nsetp.ne.b32 p, " ACC ", 0;\n"                                 \
            "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." TYPE "." TYPE " {"              \
            TLC_WGMMA_REGS_##COUNT                                                          \
            "}, " A ", " B ", p, 1, 1, 0, " TRANS ";\n}\n"                                   \
            : TLC_WGMMA_OUT_##COUNT                                                         \
            : "l"(a), "l"(b), "r"(accumulate), "n"(TransposeB));                            \
    }

#define TLC_WGMMA_RS(N, COUNT, TYPE, NAME, A, B, ACC, TRANS)                                  \
    template <int TransposeB>                                                               \
    __device__ __forceinline__ void wgmma_m64n##N##k16_rs_##NAME(                           \
            float (&d)[COUNT], const uint32_t (&a)[4], uint64_t b, uint32_t accumulate) {    \
        asm volatile(                                                                       \
            "{\n.reg .pred p;\nsetp.ne.b32 p, " ACC ", 0;\n"                                 \
            "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." TYPE "." TYPE " {"              \
            TLC_WGMMA_REGS_##COUNT                                                          \
            "}, " A ", " B ", p, 1, 1, " TRANS ";\n}\n"                                      \
            : TLC_WGMMA_OUT_##COUNT                                                         \
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate),          \
              "n"(TransposeB));                                                             \
    }

TLC_WGMMA_SS(64, 32, "f16", fp16, "%32", "%33", "%34", "%35")
TLC_WGMMA_SS(64, 32, "bf16", bf16, "%32", "%33", "%34", "%35")
TLC_WGMMA_RS(64, 32, "f16", fp16, "{%32, %33, %34, %35}", "%36", "%37", "%38")
TLC_WGMMA_RS(64, 32, "bf16", bf16, "{%32, %33, %34, %35}", "%36", "%37", "%38")
TLC_WGMMA_SS(128, 64, "f16", fp16, "%64", "%65", "%66", "%67")
TLC_WGMMA_SS(128, 64, "bf16", bf16, "%64", "%65", "%66", "%67")
TLC_WGMMA_RS(128, 64, "f16", fp16, "{%64, %65, %66, %67}", "%68", "%69", "%70")
TLC_WGMMA_RS(128, 64, "bf16", bf16, "{%64, %65, %66, %67}", "%68", "%69", "%70")

#undef TLC_WGMMA_SS
#undef TLC_WGMMA_RS
#undef TLC_WGMMA_OUT_64
#undef TLC_WGMMA_OUT_32
#undef TLC_WGMMA_REGS_64
#undef TLC_WGMMA_REGS_32
#undef TLC_WGMMA_REGS_0_31

}  // namespace sm90a
}  // namespace tlc
