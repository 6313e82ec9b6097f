"""The mma.sync ceiling of the GPU present: the TFLOP/s that m16n8k16 (fp16 and bf16 inputs,
fp32 accumulators) reaches with nothing else in the way, the roof a kernel lowered for sm_80
can reach on it (Hopper's wgmma, which FlashAttention-3 and cuDNN use, is not available to an
sm_80 plan).

Each warp keeps ACC independent accumulators (so the tensor cores never wait on a result)
and loops over them; the operands stay in registers, so no memory instruction is timed.
Blocks of 4..16 warps, enough of them to fill every SM several times; the best is reported.

    python3 benchmarks/mma_ceiling.py [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

ITERS = 4096
ACC = 8

SOURCE = r"""
#include "tlc_sm80.cuh"
extern "C" __global__ void mma_loop_%(kind)s(float* out, int iters) {
    uint32_t a[4], b[2];
    for (int i = 0; i < 4; ++i) a[i] = 0x3c003c00u ^ (threadIdx.x * 2654435761u >> i);
    for (int i = 0; i < 2; ++i) b[i] = 0x3c003c00u ^ (threadIdx.x * 40503u >> i);
    float acc[%(acc)d][4] = {};
    for (int it = 0; it < iters; ++it) {
        #pragma unroll
        for (int k = 0; k < %(acc)d; ++k) tlc::mma_m16n8k16_%(kind)s(acc[k], a, b, acc[k]);
    }
    float sum = 0.f;
    #pragma unroll
    for (int k = 0; k < %(acc)d; ++k) sum += acc[k][0] + acc[k][1] + acc[k][2] + acc[k][3];
    out[blockIdx.x * blockDim.x + threadIdx.x] = sum;  // keeps the loop alive
}
"""


def measure(kind: str) -> dict:
    import numpy as np

    from tlc.build import build
    from tlc.runtime import device_arch, driver, load_module

    cuda = driver()
    built = build(SOURCE % {"kind": kind, "acc": ACC}, device_arch(), output="cubin")
    function = load_module(built.path).get_function(f"mma_loop_{kind}")
    sms = cuda.Context.get_device().get_attribute(cuda.device_attribute.MULTIPROCESSOR_COUNT)
    best = {}
    for warps in (4, 8, 16):
        blocks = sms * 64 // warps  # 64 warps' worth of work per SM
        out = cuda.mem_alloc(blocks * warps * 32 * 4)
        args = (out, np.int32(ITERS))
        launch = dict(block=(warps * 32, 1, 1), grid=(blocks, 1, 1))
        function(*args, **launch)
        times = []
        for _ in range(10):
            start, end = cuda.Event(), cuda.Event()
            start.record()
            function(*args, **launch)
            end.record()
            end.synchronize()
            times.append(start.time_till(end))
        ms = sorted(times)[len(times) // 2]
        flops = 2.0 * 16 * 8 * 16 * ACC * ITERS * blocks * warps
        tflops = flops / ms / 1e9
        if tflops > best.get("tflops", 0):
            best = {"kind": kind, "tflops": round(tflops, 1), "warps_per_block": warps,
                    "blocks": blocks, "ms": round(ms, 4), "registers": built.functions[0].registers}
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from tlc.runtime import device_name

    rows = [measure(kind) for kind in ("f16", "bf16")]
    for row in rows:
        row["gpu"] = device_name()
        print(f"mma.sync m16n8k16 {row['kind']} -> f32 on {row['gpu']}: {row['tflops']} TFLOP/s "
              f"({row['warps_per_block']} warps a block, {row['blocks']} blocks)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
