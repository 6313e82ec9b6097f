"""Where a decoding call's time goes, on the GPU present: each kernel's share (tlc's split
kernel and its combine, FA3's kernels) from the profiler, next to the call's time as
benchmarks/decode.py takes it; and what reading memory can reach, three ways: plain 16-byte
loads, cp.async into a ring of shared memory (how tlc's sm_80 plans read K and V), and the
bulk copies of sm_90 (cp.async.bulk, the engine TMA uses).

    python3 benchmarks/decode_parts.py [--json PATH]

The read kernels stream READ_BYTES once (L2 flushed first) and report bytes read over time.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

import tlc.torch as tt

sys.path.insert(0, os.path.dirname(__file__))
from decode import Flush, make_inputs, moved_bytes, time_call  # noqa: E402

CASES = [dict(batch=1, cache_len=4096, heads=32, kv_heads=8),
         dict(batch=1, cache_len=16384, heads=32, kv_heads=8),
         dict(batch=1, cache_len=16384, heads=32, kv_heads=32),
         dict(batch=8, cache_len=16384, heads=32, kv_heads=32),
         dict(batch=8, cache_len=131072, heads=32, kv_heads=32),
         dict(batch=64, cache_len=16384, heads=32, kv_heads=8)]
PROFILED = 20
READ_BYTES = 4 << 30

READERS = r"""
#include <cstdint>
// Plain loads: each thread keeps UNROLL 16-byte loads in flight, the grid strides over all.
extern "C" __global__ void read_loads(const int4* __restrict__ source, int* sink,
                                      long long count) {
    constexpr int UNROLL = 8;
    int acc = 0;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count;
         i += UNROLL * stride) {
        int4 v[UNROLL];
        #pragma unroll
        for (int u = 0; u < UNROLL; ++u)
            v[u] = i + u * stride < count ? __ldcs(source + i + u * stride) : int4{};
        #pragma unroll
        for (int u = 0; u < UNROLL; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
    if (acc == 0x7fffffff) sink[0] = acc;  // keeps the loads
}

// cp.async: a block streams 16 KB chunks through STAGES buffers of shared memory.
template <int STAGES>
__device__ void read_cp_async(const int4* __restrict__ source, int* sink, long long chunks) {
    extern __shared__ int4 ring[];
    constexpr int PER_THREAD = 1024 / 128;  // 16 KB chunk, 128 threads, 16 B each
    int acc = 0;
    auto issue = [&](long long chunk, int stage) {
        if (chunk < chunks) {
            #pragma unroll
            for (int t = 0; t < PER_THREAD; ++t) {
                const int slot = t * 128 + threadIdx.x;
                const uint32_t to = (uint32_t)__cvta_generic_to_shared(ring + stage * 1024 + slot);
                asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(to),
                             "l"(source + chunk * 1024 + slot));
            }
        }
        asm volatile("cp.async.commit_group;");
    };
    long long chunk = blockIdx.x;
    for (int s = 0; s < STAGES - 1; ++s) issue(chunk + s * (long long)gridDim.x, s);
    for (int n = 0; chunk < chunks; ++n, chunk += gridDim.x) {
        asm volatile("cp.async.wait_group %0;" ::"n"(STAGES - 2));
        __syncthreads();
        acc ^= ring[(n % STAGES) * 1024 + threadIdx.x].x;
        __syncthreads();
        issue(chunk + (STAGES - 1) * (long long)gridDim.x, (n + STAGES - 1) % STAGES);
    }
    if (acc == 0x7fffffff) sink[0] = acc;
}
extern "C" __global__ void read_cp_async2(const int4* s, int* k, long long c) { read_cp_async<2>(s, k, c); }
extern "C" __global__ void read_cp_async4(const int4* s, int* k, long long c) { read_cp_async<4>(s, k, c); }

// cp.async.bulk: one thread asks for a whole 16 KB chunk, an mbarrier counts its bytes in.
extern "C" __global__ void read_bulk(const int4* __restrict__ source, int* sink,
                                     long long chunks) {
    constexpr int STAGES = 4, BYTES = 16384;
    extern __shared__ __align__(128) int4 ring[];
    __shared__ __align__(8) uint64_t full[STAGES];
    int acc = 0;
    if (threadIdx.x == 0)
        for (int s = 0; s < STAGES; ++s)
            asm volatile("mbarrier.init.shared.b64 [%0], 1;" ::"r"(
                (uint32_t)__cvta_generic_to_shared(full + s)));
    asm volatile("fence.mbarrier_init.release.cluster;");
    __syncthreads();
    auto issue = [&](long long chunk, int stage) {
        if (threadIdx.x == 0 && chunk < chunks) {
            const uint32_t bar = (uint32_t)__cvta_generic_to_shared(full + stage);
            asm volatile("mbarrier.arrive.expect_tx.shared.b64 _, [%0], %1;" ::"r"(bar),
                         "r"(BYTES));
            asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes "
                         "[%0], [%1], %2, [%3];" ::"r"((uint32_t)__cvta_generic_to_shared(
                             ring + stage * 1024)), "l"(source + chunk * 1024), "r"(BYTES),
                         "r"(bar) : "memory");
        }
    };
    long long chunk = blockIdx.x;
    for (int s = 0; s < STAGES - 1; ++s) issue(chunk + s * (long long)gridDim.x, s);
    for (int n = 0; chunk < chunks; ++n, chunk += gridDim.x) {
        const int stage = n % STAGES;
        const uint32_t bar = (uint32_t)__cvta_generic_to_shared(full + stage);
        const uint32_t phase = (n / STAGES) & 1;
        asm volatile("{\n .reg .pred p;\n wait: mbarrier.try_wait.parity.shared.b64 p, [%0], %1;\n"
                     " @!p bra wait;\n}" ::"r"(bar), "r"(phase) : "memory");
        acc ^= ring[stage * 1024 + threadIdx.x].x;
        __syncthreads();
        issue(chunk + (STAGES - 1) * (long long)gridDim.x, (n + STAGES - 1) % STAGES);
    }
    if (acc == 0x7fffffff) sink[0] = acc;
}
"""


def read_roofs(flush) -> list[dict]:
    from tlc import launch
    from tlc.backends.target import Argument
    from tlc.build import build

    built = build(READERS, "sm_90a")
    image = open(built.path, "rb").read()
    source = torch.empty(READ_BYTES, dtype=torch.uint8, device="cuda").fill_(3)
    sink = torch.zeros(1, dtype=torch.int32, device="cuda")
    arguments = [Argument("source", "tensor", "int32"), Argument("sink", "tensor", "int32"),
                 Argument("count", "int64")]
    # (name, threads, shared bytes, blocks per SM tried, elements: 16-byte words or chunks)
    plans = [("read_loads", 256, 0, (2, 4, 8), READ_BYTES // 16),
             ("read_cp_async2", 128, 2 * 16384, (2, 4, 6), READ_BYTES // 16384),
             ("read_cp_async4", 128, 4 * 16384, (1, 2, 3), READ_BYTES // 16384),
             ("read_bulk", 128, 4 * 16384, (1, 2, 3), READ_BYTES // 16384)]
    sms = tt._multiprocessors(0)
    rows = []
    for name, threads, shared, occupancies, count in plans:
        kernel = launch.Kernel(image, name, arguments, threads, shared, 0)
        for per_sm in occupancies:
            grid = (sms * per_sm, 1, 1)

            def call():
                kernel.launch(grid, [source.data_ptr(), sink.data_ptr()], [count],
                              torch.cuda.current_stream().cuda_stream)
            ms = time_call(call, flush, 10)
            rows.append(dict(reader=name, blocks_per_sm=per_sm, ms=round(ms, 4),
                             tbps=round(READ_BYTES / ms / 1e9, 3)))
    return rows


def kernel_times(call, flush) -> dict:
    """Device microseconds a call spends in each kernel, the mean over PROFILED calls."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        call()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(PROFILED):
            flush()
            call()
        torch.cuda.synchronize()
    found = {}
    for event in prof.key_averages():
        name = event.key
        if "fill" in name.lower() or "memset" in name.lower() or event.device_time_total == 0:
            continue
        found[name[:80]] = round(event.device_time_total / PROFILED, 2)
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=os.path.join(os.environ.get("OUT", "."),
                                                       "decode-parts.json"))
    args = parser.parse_args(argv)
    flush = Flush()
    result = {"gpu": torch.cuda.get_device_name(0), "cases": [], "readers": []}
    try:
        import fa3_fwd_interface as fa3
    except Exception:  # noqa: BLE001 - a missing anchor is a column left empty
        fa3 = None
    for spec in CASES:
        case = dict(spec, head_dim=128, dtype="bf16")
        q, k, v = make_inputs(case)
        calls = {"tlc": lambda: tt.attention(q, k, v, layout="bshd")}
        if fa3 is not None:
            calls["fa3"] = lambda: fa3.flash_attn_with_kvcache(q, k, v)
        for name, call in calls.items():
            ms = time_call(call, flush)
            row = dict(case, backend=name, ms=round(ms, 5),
                       tbps=round(moved_bytes(case) / ms / 1e9, 3),
                       kernels_us=kernel_times(call, flush))
            result["cases"].append(row)
            print(json.dumps(row), flush=True)
        del q, k, v
        torch.cuda.empty_cache()
    result["readers"] = read_roofs(flush)
    with open(args.json, "w") as handle:
        json.dump(result, handle, indent=1)
    print(f"\n{'B':>3} {'L':>7} {'H/Hkv':>6} {'backend':>7} {'us':>8} {'TB/s':>6}  kernels (us)")
    for row in result["cases"]:
        parts = ", ".join(f"{n.split('(')[0][-38:]} {t}" for n, t in row["kernels_us"].items())
        print(f"{row['batch']:>3} {row['cache_len']:>7} {row['heads']}/{row['kv_heads']:<3} "
              f"{row['backend']:>7} {row['ms'] * 1e3:>8.1f} {row['tbps']:>6.2f}  {parts}")
    print(f"\n{'reader':>15} {'blocks/SM':>9} {'TB/s':>6}")
    for row in result["readers"]:
        print(f"{row['reader']:>15} {row['blocks_per_sm']:>9} {row['tbps']:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
