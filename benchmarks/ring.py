"""Ring attention on several GPUs of one host (NCCL), one run: launch with

    torchrun --nproc_per_node=N benchmarks/ring.py [--json PATH]

1. Correctness: tlc.torch.ring_attention of a sequence of CHECK_LEN rows (causal and not)
   against one GPU's tlc.torch.attention of the whole sequence, by the peers' rule against
   the float64 reference on rank 0's rows.
2. Scaling: causal bf16 attention, 32 query heads on 8 K/V heads, D = 128, for sequences of
   LENGTHS rows; the time of a call (CUDA events, median of ITERS, synchronised across
   ranks), and the same with the transport's waits alone (a ring whose kernels do nothing:
   what communication costs unhidden), so the overlap shows. One GPU's time of the whole
   sequence where it fits.

Rank 0 writes --json (default $OUT/h200x{N}-ring.json) and prints the table last. Not run
yet: it needs a machine of several GPUs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

import numpy as np
import torch
import torch.distributed as dist

import tlc.torch as tt
from tlc.reference import Variant, attention, attention_low, compare
from tlc.ring import shard

LENGTHS = (131072, 262144, 524288, 1048576)
CHECK_LEN = 8191
ITERS = 5
HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128


def timed(call) -> float:
    call()
    torch.cuda.synchronize()
    dist.barrier()
    times = []
    for _ in range(ITERS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        end.synchronize()
        dist.barrier()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def shard_of(t, length, world, rank, causal):
    index = torch.cat([torch.arange(c.start, c.stop, device=t.device)
                       for c in shard(length, world, causal)[rank]])
    return t[:, index].contiguous(), index


def inputs(length, seed=0):
    generator = torch.Generator(device="cuda").manual_seed(seed)
    q = torch.randn(1, length, HEADS, HEAD_DIM, device="cuda", generator=generator)
    k = torch.randn(1, length, KV_HEADS, HEAD_DIM, device="cuda", generator=generator)
    v = torch.randn(1, length, KV_HEADS, HEAD_DIM, device="cuda", generator=generator)
    return q.bfloat16(), k.bfloat16(), v.bfloat16()


def check(world, rank, causal) -> dict:
    q, k, v = inputs(CHECK_LEN)
    (qs, index), (ks, _), (vs, _) = (shard_of(t, CHECK_LEN, world, rank, causal)
                                     for t in (q, k, v))
    out = tt.ring_attention(qs, ks, vs, CHECK_LEN, causal=causal)
    whole = tt.attention(q, k, v, causal=causal, layout="bshd")
    rows = index.cpu().numpy()
    group = HEADS // KV_HEADS
    qn = q.transpose(1, 2).double().cpu().numpy()
    kn = np.repeat(k.transpose(1, 2).double().cpu().numpy(), group, axis=1)
    vn = np.repeat(v.transpose(1, 2).double().cpu().numpy(), group, axis=1)
    variant = Variant(causal=causal)
    ref = attention(qn, kn, vn, variant)[:, :, rows]
    low = attention_low(qn, kn, vn, "bf16", variant)[:, :, rows]
    got = out.transpose(1, 2).double().cpu().numpy()
    verdict = compare(got, ref, low, "bf16", q_len=CHECK_LEN, k_len=CHECK_LEN, variant=variant)
    agree = float((out.float() - whole[:, index].float()).abs().max())
    return {"causal": causal, "ok": verdict.ok, "problems": verdict.problems,
            "max_vs_one_gpu": agree}


def scaling(world, rank, length) -> dict:
    q, k, v = inputs(length // world, seed=rank)  # this rank's rows only: the whole may not fit
    ring = timed(lambda: tt.ring_attention(q, k, v, length, causal=True))

    def idle(qc, kc, vc, causal):  # the ring's transfers and merges, no attention
        b, rows, h, d = qc.shape
        return (torch.zeros(b, rows, h, d, device="cuda"),
                torch.zeros(b, h, rows, device="cuda"))
    transfers = timed(lambda: tt.ring_attention(q, k, v, length, causal=True, local=idle))
    row = {"world": world, "seq_len": length, "ms": round(ring, 3),
           "transfer_ms": round(transfers, 3)}
    if world == 1 or length <= 262144:
        qa, ka, va = inputs(length)
        row["one_gpu_ms"] = round(timed(lambda: tt.attention(qa, ka, va, causal=True,
                                                               layout="bshd")), 3)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    with torch.no_grad():
        checks = [check(world, rank, causal) for causal in (False, True)]
        rows = [scaling(world, rank, length) for length in LENGTHS]
    gathered = [None] * world
    dist.all_gather_object(gathered, checks)
    if rank == 0:
        path = args.json or os.path.join(os.environ.get("OUT", "."), f"h200x{world}-ring.json")
        ok = all(c["ok"] for rank_checks in gathered for c in rank_checks)
        with open(path, "w") as out:
            json.dump({"world": world, "gpu": torch.cuda.get_device_name(0), "correct": ok,
                       "checks": gathered, "rows": rows}, out, indent=1)
        for row in rows:
            print(f"N={row['seq_len']:>8} on {world} GPUs: {row['ms']} ms (transfers alone "
                  f"{row['transfer_ms']} ms; one GPU {row.get('one_gpu_ms', '-')} ms)")
        print(f"ring attention: {'correct' if ok else 'WRONG'} on all {world} ranks")
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
