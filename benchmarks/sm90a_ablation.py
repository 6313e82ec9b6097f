"""Where the sm_90a kernel's time goes, by ablation in one run on the GPU present: the same
plan lowered with and without the two schedules the Hopper backend adds (the key loop
pipelined across two blocks, `Tma.overlap`; consumer warpgroups taking turns at the tensor
cores, `Tma.turns`), and other tiles, against cuDNN and FlashAttention-3 on the same inputs.
Each variant's output is compared with cuDNN's before it is timed (CUDA events, median of
--iters launches). Rows go to --json; a table is printed last.

    python3 benchmarks/sm90a_ablation.py [--seqs 4096,16384] [--dims 64,128] [--json PATH]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VARIANTS = {  # name -> (Tma fields, tiles (BM, BN, WARPS) or None for the template's)
    "overlap+turns": (dict(overlap=True, turns=True), None),
    "overlap": (dict(overlap=True, turns=False), None),
    "turns": (dict(overlap=False, turns=True), None),
    "neither": (dict(overlap=False, turns=False), None),
    "2 warpgroups": (dict(overlap=True, turns=True), (128, 128, 8)),
    "3 warpgroups": (dict(overlap=True, turns=True), (192, 128, 12)),
    "1 warpgroup": (dict(overlap=True, turns=True), (64, 128, 4)),
    "1 warpgroup BN 64": (dict(overlap=True, turns=True), (64, 64, 4)),
    "1 warpgroup 2 blocks": (dict(overlap=True, turns=True, blocks=2), (64, 128, 4)),
    "long rows first": (dict(overlap=True, turns=True, reverse=True), None),
}


def kernel_for(text: str, fields: dict):
    """The plan lowered with the Tma engine's fields changed; `reverse`: the row tiles taken
    in reverse order (for causal plans, the longest rows first)."""
    from tlc import launch
    from tlc.api import check
    from tlc.backends import lower
    from tlc.backends.targets.sm90a import SM90A
    from tlc.build import build

    result = check(text, arch="sm_90a")
    if not result.ok:
        raise ValueError("; ".join(d.message for d in result.diagnostics))
    fields = dict(fields)
    reverse = fields.pop("reverse", False)
    blocks = fields.pop("blocks", 1)
    target = dataclasses.replace(SM90A, copies=dataclasses.replace(SM90A.copies, **fields))
    source = lower(result.kernel, target).main
    if reverse:
        source = dataclasses.replace(source, source=source.source.replace(
            "const int p_m = blockIdx.x;", "const int p_m = gridDim.x - 1 - blockIdx.x;"))
    if blocks == 2:  # two blocks an SM: half the register file each, moved by setmaxnreg
        consumers = (64 * 1024 // 2 - 24 * 128) // (source.threads - 128)
        source = dataclasses.replace(source, source=source.source.replace(
            f"__launch_bounds__({source.threads}, 1)", f"__launch_bounds__({source.threads}, 2)"
        ).replace("one thread issues every copy from global memory",
                  "one thread issues every copy from global memory\n"
                  "tlc::sm90a::registers_decrease<24>();").replace(
            "every statement but the copies from global memory",
            "every statement but the copies from global memory\n"
            f"tlc::sm90a::registers_increase<{consumers // 8 * 8}>();"))
    built = build(source.source, "sm_90a")
    return launch.Kernel(open(built.path, "rb").read(), source.name, source.arguments,
                         source.threads, source.shared_memory), source, result.kernel


def runner(kernel, source, plan, q, k, v, o, causal):
    from tlc import launch

    tensors = {"Q": q, "K": k, "V": v, "O": o}
    sizes = {"B": q.shape[0], "H": q.shape[1], "Hkv": k.shape[1], "Nq": q.shape[2],
             "Nk": k.shape[2]}
    pointers, values = [], []
    for a in source.arguments:
        if a.kind == "tensor":
            pointers.append(tensors[a.name].data_ptr())
        elif a.kind == "tensormap":
            t = tensors[a.of]
            values.append(launch.tensor_map_of(t.data_ptr(), a.dtype, t.shape, t.stride(),
                                               a.box))
        elif a.kind == "scalar":
            values.append(q.shape[-1] ** -0.5)
        elif a.kind == "size":
            values.append(sizes[a.name])
        elif a.kind == "stride":
            values.append(tensors[a.of].stride()[a.dim])
    grid = launch.grid_function(plan)(sizes)
    return lambda: kernel.launch(grid, pointers, values)


def time_ms(call, iters):
    import torch

    for _ in range(3):
        call()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main() -> int:
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from tlc.templates import plan

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seqs", default="4096,16384")
    parser.add_argument("--dims", default="64,128")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="which to time")
    parser.add_argument("--causal", default="no,yes", help="no, yes or both (no,yes)")
    parser.add_argument("--json", default=os.path.join(os.environ.get("OUT", "out"),
                                                       "sm90a-ablation.json"))
    args = parser.parse_args()
    try:
        import fa3_fwd_interface as fa3
    except Exception as error:  # the wheel is absent or does not load with this PyTorch
        fa3, why = None, f"{type(error).__name__}: {error}"
    chosen = {name: VARIANTS[name] for name in args.variants.split(",")}
    causals = [{"no": False, "yes": True}[c] for c in args.causal.split(",")]
    rows = []
    for d in map(int, args.dims.split(",")):
        for n in map(int, args.seqs.split(",")):
            for causal in causals:
                batch, heads = 16384 // n, 2048 // d
                q, k, v = (torch.randn(batch, heads, n, d, device="cuda", dtype=torch.bfloat16)
                           for _ in range(3))
                flops = 4.0 * batch * heads * n * n * d / (2 if causal else 1)
                with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                    def cudnn():
                        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    expected = cudnn().float()
                    case = dict(head_dim=d, seqlen=n, causal=causal, batch=batch, heads=heads)
                    rows.append(dict(case, variant="sdpa-cudnn",
                                     tflops=round(flops / time_ms(cudnn, args.iters) / 1e9, 1)))
                if fa3 is not None:
                    qt, kt, vt = (t.transpose(1, 2).contiguous() for t in (q, k, v))
                    rows.append(dict(case, variant="fa3", tflops=round(flops / time_ms(
                        lambda: fa3.flash_attn_func(qt, kt, vt, causal=causal),
                        args.iters) / 1e9, 1)))
                for name, (fields, tiles) in chosen.items():
                    row = dict(case, variant=name)
                    try:
                        text = plan("bf16", d, causal, 1, arch="sm_90a",
                                    tiles=[tiles] if tiles else None)
                        kernel, source, ir_kernel = kernel_for(text, fields)
                        o = torch.full_like(q, float("nan"))
                        call = runner(kernel, source, ir_kernel, q, k, v, o, causal)
                        call()
                        torch.cuda.synchronize()
                        error = (o.float() - expected).abs().max().item()
                        row["max_error_vs_cudnn"] = round(error, 5)
                        if not error < 0.02:  # NaN fails too
                            row["error"] = "wrong result"
                        else:
                            row["tflops"] = round(flops / time_ms(call, args.iters) / 1e9, 1)
                    except Exception as failure:  # a variant that does not fit is a row
                        row["error"] = f"{type(failure).__name__}: {str(failure)[:120]}"
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as handle:
        json.dump({"gpu": torch.cuda.get_device_name(), "rows": rows}, handle, indent=1)
    names = ["sdpa-cudnn", "fa3"] + list(chosen)
    print(f"{'D':>4} {'N':>6} {'causal':>6}  " + " ".join(f"{v:>14}" for v in names))
    for d in map(int, args.dims.split(",")):
        for n in map(int, args.seqs.split(",")):
            for causal in causals:
                by = {r["variant"]: r for r in rows if (r["head_dim"], r["seqlen"],
                                                        r["causal"]) == (d, n, causal)}
                print(f"{d:>4} {n:>6} {str(causal):>6}  " + " ".join(
                    f"{by.get(v, {}).get('tflops') or '-':>14}" for v in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
