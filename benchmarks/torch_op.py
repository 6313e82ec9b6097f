"""tlc.torch on the GPU present, in one run: what issue "a PyTorch front door" asks to see.

1. Correctness of tlc.torch.attention against the float64 reference by the peers' rule
   (tlc.reference.compare), outputs poisoned with NaN first: both layouts, fp16 and bf16,
   D 64 and 128, MHA and GQA 4:1, plain and causal, window, softcap and ALiBi, odd lengths
   with Nq != Nk, one query row, views of a fused QKV tensor (read in place) and a
   misaligned view (copied first), Nk = 0; and sm_75 plans run as compute_75 PTX.
2. torch.compile(fullgraph=True) of a small attention block that calls it: graph breaks
   (torch._dynamo.explain) and agreement with the same block on SDPA.
3. CUDA-graph capture and replay of a call, against an eager call on the same inputs.
4. Per-call host overhead on a small shape, timed over many calls without synchronising:
   tlc.torch.attention, its raw ctypes launch, PyCUDA's launch of the same kernel
   (tlc.runtime), and SDPA.

    python3 benchmarks/torch_op.py [--json PATH] [--quick]

Writes --json (default $OUT/torch.json): {"summary": {...}, "rows": [...]}; the table last.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import tlc.torch as tt
from tlc.reference import (Variant, alibi_slopes, attention, attention_low, compare,
                           compare_lse, logsumexp)

TORCH_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
SHAPES = [(128, 128), (113, 203), (203, 113), (1, 517)]


def reference_check(out, q, k, v, dtype, variant, slopes=None, layout="bhsd"):
    """The verdict of out (in layout) against the float64 reference of q, k, v."""
    def bhsd(t):
        t = t.float().cpu().numpy().astype(np.float64)
        return t.transpose(0, 2, 1, 3) if layout == "bshd" else t

    qn, kn, vn, on = bhsd(q), bhsd(k), bhsd(v), bhsd(out)
    slope = None if slopes is None else slopes.cpu().numpy().astype(np.float64)
    ref = attention(qn, kn, vn, variant, slope)
    low = attention_low(qn, kn, vn, dtype, variant, slope)
    return compare(on, ref, low, dtype, q_len=qn.shape[2], k_len=kn.shape[2], variant=variant)


def make(dtype, layout, b, h, n, d, generator):
    dims = (b, h, n, d) if layout == "bhsd" else (b, n, h, d)
    return torch.randn(dims, generator=generator, device="cuda", dtype=torch.float32).to(
        TORCH_DTYPES[dtype])


def correctness_cases(quick: bool):
    base = [dict(layout=layout, dtype=dtype, d=d, heads=(8, kv), causal=causal)
            for layout in ("bhsd", "bshd") for dtype in ("fp16", "bf16") for d in (64, 128)
            for kv in (8, 2) for causal in (False, True)]
    variants = [dict(layout="bhsd", dtype="fp16", d=128, heads=(8, 8), causal=True,
                     window=(48, 0)),
                dict(layout="bshd", dtype="bf16", d=64, heads=(8, 2), causal=False,
                     window=(40, 24)),
                dict(layout="bhsd", dtype="fp16", d=128, heads=(8, 8), causal=False,
                     softcap=30.0),
                dict(layout="bshd", dtype="bf16", d=64, heads=(8, 2), causal=True,
                     softcap=20.0),
                dict(layout="bhsd", dtype="bf16", d=128, heads=(8, 8), causal=True, alibi=True),
                dict(layout="bshd", dtype="fp16", d=64, heads=(8, 2), causal=False, alibi=True),
                dict(layout="bhsd", dtype="fp16", d=128, heads=(8, 2), causal=True, lse=True),
                dict(layout="bshd", dtype="bf16", d=64, heads=(8, 8), causal=False, lse=True),
                dict(layout="bshd", dtype="fp16", d=64, heads=(8, 2), causal=True, lse=True,
                     arch="sm_75")]
    turing = [dict(layout=layout, dtype="fp16", d=d, heads=(8, kv), causal=causal, arch="sm_75")
              for layout in ("bhsd", "bshd") for d in (64, 128) for kv in (8, 2)
              for causal in (False, True)]
    cases = base + variants + turing
    return cases[::4] if quick else cases


def run_case(case, nq, nk, generator, batch=2):
    h, hkv = case["heads"]
    layout, dtype, d = case["layout"], case["dtype"], case["d"]
    q = make(dtype, layout, batch, h, nq, d, generator)
    k = make(dtype, layout, batch, hkv, nk, d, generator)
    v = make(dtype, layout, batch, hkv, nk, d, generator)
    slopes = torch.tensor(alibi_slopes(h), dtype=torch.float32, device="cuda") \
        if case.get("alibi") else None
    out = tt.attention(q, k, v, causal=case["causal"], window=case.get("window"),
                       softcap=case.get("softcap"), alibi_slopes=slopes, layout=layout,
                       arch=case.get("arch"), return_lse=case.get("lse", False))
    out, lse = out if case.get("lse") else (out, None)
    torch.cuda.synchronize()
    variant = Variant(causal=case["causal"], window=case.get("window"),
                      softcap=case.get("softcap"))
    verdict = reference_check(out, q, k, v, dtype, variant, slopes, layout)
    if lse is None:
        return verdict
    qn, kn = (t.float().cpu().numpy().astype(np.float64) for t in (q, k))
    if layout == "bshd":
        qn, kn = qn.transpose(0, 2, 1, 3), kn.transpose(0, 2, 1, 3)
    rows = compare_lse(lse.cpu().numpy(), logsumexp(qn, kn, variant),
                       logsumexp(qn, kn, variant, dtype=dtype))
    return dataclasses.replace(verdict, ok=verdict.ok and rows.ok,
                               problems=verdict.problems + rows.problems)


def label(case) -> str:
    h, hkv = case["heads"]
    parts = [case["layout"], case["dtype"], f"D{case['d']}", "MHA" if h == hkv else f"GQA{h // hkv}"]
    parts += ["causal"] * case["causal"]
    parts += [f"window{case['window']}"] if "window" in case else []
    parts += [f"softcap{case['softcap']:g}"] if "softcap" in case else []
    parts += ["alibi"] * ("alibi" in case) + ["lse"] * ("lse" in case)
    parts += [f"{case['arch']}-ptx"] if "arch" in case else []
    return " ".join(parts)


def prebuild(cases):
    """The first call of each case builds its plan; do those in parallel (nvcc processes)."""
    generator = torch.Generator(device="cuda").manual_seed(1)

    def first(case):
        t0 = time.time()
        run_case(case, 16, 16, generator, batch=1)
        return time.time() - t0

    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        return list(pool.map(first, cases))


def special_rows(generator):
    """Views and edge cases, each against the reference."""
    rows = []
    b, n, h, d = 2, 197, 8, 128
    qkv = torch.randn(b, n, 3, h, d, generator=generator, device="cuda").half()
    q, k, v = qkv.unbind(2)  # (B, N, H, D) views with a row stride of 3·H·D
    out = tt.attention(q, k, v, causal=True, layout="bshd")
    same = tt.attention(q.contiguous(), k.contiguous(), v.contiguous(), causal=True,
                        layout="bshd")
    verdict = reference_check(out, q, k, v, "fp16", Variant(causal=True), layout="bshd")
    rows.append({"case": "fused qkv views, bshd, causal", "ok": verdict.ok and
                 bool(torch.equal(out, same)), "max_error": verdict.max_error,
                 "bound": verdict.max_bound, "note": "bitwise equal to contiguous inputs"})
    big = torch.randn(1, 4, 100, 72, generator=generator, device="cuda").half()
    q = big[..., 1:65]  # starts 2 bytes past a 16-byte boundary: copied first
    out = tt.attention(q, q, q)
    verdict = reference_check(out, q, q, q, "fp16", Variant())
    rows.append({"case": "misaligned view (copied)", "ok": verdict.ok,
                 "max_error": verdict.max_error, "bound": verdict.max_bound})
    q = torch.randn(1, 4, 8, 64, device="cuda").half()
    empty = torch.empty(1, 4, 0, 64, device="cuda").half()
    out = tt.attention(q, empty, empty)
    rows.append({"case": "Nk = 0 gives zeros", "ok": bool((out == 0).all())})
    return rows


class Block(torch.nn.Module):
    """A pre-norm-free attention block: fused QKV projection, attention, output projection."""

    def __init__(self, attend, width=1024, heads=8):
        super().__init__()
        self.heads, self.attend = heads, attend
        self.qkv = torch.nn.Linear(width, 3 * width)
        self.out = torch.nn.Linear(width, width)

    def forward(self, x):
        b, n, width = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, width // self.heads).unbind(2)
        return self.out(self.attend(q, k, v).reshape(b, n, width))


def tlc_attend(q, k, v):
    return tt.attention(q, k, v, causal=True, layout="bshd")


def sdpa_attend(q, k, v):
    o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                       is_causal=True)
    return o.transpose(1, 2)


def compile_check(generator):
    torch.manual_seed(0)
    mine = Block(tlc_attend).cuda().half()
    theirs = Block(sdpa_attend).cuda().half()
    theirs.load_state_dict(mine.state_dict())
    exact = Block(sdpa_attend).cuda().double()
    exact.load_state_dict(mine.state_dict())
    x = torch.randn(2, 1024, 1024, generator=generator, device="cuda").half()
    explained = torch._dynamo.explain(mine)(x)
    torch._dynamo.reset()
    compiled = torch.compile(mine, fullgraph=True)
    record = {"graph_breaks": explained.graph_break_count, "graphs": explained.graph_count}
    try:
        got = compiled(x)
        record["fullgraph_ok"] = True
    except Exception as error:  # reported, not hidden
        record.update(fullgraph_ok=False, fullgraph_error=f"{type(error).__name__}: {error}")
        return record
    sdpa = theirs(x)
    ref = exact(x.double())
    verdict = compare(got.double().cpu().numpy(), ref.cpu().numpy(),
                      sdpa.double().cpu().numpy(), "fp16")
    record.update(matches_sdpa=verdict.ok, max_error=verdict.max_error,
                  sdpa_max_error=float((sdpa.double() - ref).abs().max()),
                  bound=verdict.max_bound)
    try:
        overhead = torch.compile(mine, fullgraph=True, mode="reduce-overhead")
        for _ in range(3):
            again = overhead(x)
        record["reduce_overhead_ok"] = bool(torch.allclose(again, got, atol=0, rtol=0) or
                                            (again - got).abs().max().item() < 1e-2)
    except Exception as error:
        record.update(reduce_overhead_ok=False,
                      reduce_overhead_error=f"{type(error).__name__}: {error}")
    return record


def cuda_graph_check(generator):
    q = torch.randn(2, 8, 512, 128, generator=generator, device="cuda").half()
    k, v = torch.randn_like(q), torch.randn_like(q)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            tt.attention(q, k, v, causal=True)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = tt.attention(q, k, v, causal=True)
    ok = True
    for _ in range(3):
        for t in (q, k, v):
            t.copy_(torch.randn(t.shape, generator=generator, device="cuda").half())
        graph.replay()
        torch.cuda.synchronize()
        ok &= bool(torch.equal(static_out, tt.attention(q, k, v, causal=True)))
    verdict = reference_check(static_out, q, k, v, "fp16", Variant(causal=True))
    return {"cuda_graph_ok": ok and verdict.ok, "cuda_graph_max_error": verdict.max_error}


def host_us(call, calls=2000) -> float:
    """Microseconds of host time a call, over `calls` back-to-back calls (no sync inside)."""
    for _ in range(200):
        call()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    elapsed = time.perf_counter() - start
    torch.cuda.synchronize()
    return elapsed / calls * 1e6


def gpu_us(call, calls=200) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    call()
    start.record()
    for _ in range(calls):
        call()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / calls * 1000


def overhead_check(generator):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from tlc.runtime import load

    q = torch.randn(1, 4, 128, 64, generator=generator, device="cuda").half()
    k, v = torch.randn_like(q), torch.randn_like(q)
    record = {"overhead_shape": "B=1 H=4 N=128 D=64 fp16"}
    others = [torch.randn_like(q) for _ in range(3)]
    turn = [0]

    def alternating():  # other tensors each call: an sm_90a plan encodes their TMA descriptors
        turn[0] ^= 1
        return tt.attention(*(others if turn[0] else (q, k, v)))

    calls = {
        "tlc": lambda: tt.attention(q, k, v),
        "tlc_other_tensors_each_call": alternating,
        "tlc_op_direct": lambda: torch.ops.tlc.attention(q, k, v, False, -1, -1, 0.0, None,
                                                         0.125, "bhsd", ""),
        "tlc_impl_direct": lambda: tt._attention_cuda(q, k, v, False, -1, -1, 0.0, None,
                                                      0.125, "bhsd", ""),
        "sdpa": lambda: F.scaled_dot_product_attention(q, k, v),
    }
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        flash = host_us(lambda: F.scaled_dot_product_attention(q, k, v))
    tt._recipes.clear()
    out = tt.attention(q, k, v)
    recipe = next(iter(tt._recipes.values()))  # what that call's signature launches
    kernel, order, tail, grid = recipe.launches[0]
    every = [q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(), 0, 0, 0, 0]
    if recipe.maps:  # an sm_90a plan: its TMA descriptors, made once here
        tail = tt._with_tensor_maps(recipe, every)[0]
    pointers = [every[i] for i in order]
    stream = torch.cuda.current_stream().cuda_stream
    calls["ctypes_launch"] = lambda: kernel.launch(grid, pointers, tail, stream)
    case = tt.own_target_case(tt.Case("fp16", 64, arch=tt._present_target(0)[0]),
                              [q.stride()] * 3, q.element_size())  # the plan tt.attention ran
    built = tt.built_for(case, 0, False)
    loaded = load(built.text)
    kept = loaded(Q=q, K=k, V=v, scale=0.125)  # its output stays alive for the relaunches
    calls["pycuda_launch"] = loaded.launch
    for name, call in calls.items():
        record[f"overhead_us_{name}"] = round(host_us(call), 2)
        record[f"gpu_us_{name}"] = round(gpu_us(call), 2)
    record["overhead_us_sdpa_flash"] = round(flash, 2)
    del kept
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None)
    parser.add_argument("--quick", action="store_true", help="a quarter of the matrix")
    args = parser.parse_args()
    path = args.json or os.path.join(os.environ.get("OUT", "out"), "torch.json")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    torch.set_grad_enabled(False)  # inference: tlc.torch has no backward yet
    tt.poison_outputs = True  # an element the kernel does not write shows as NaN
    generator = torch.Generator(device="cuda").manual_seed(2026)
    summary = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    cases = correctness_cases(args.quick)
    t0 = time.time()
    prebuild(cases)
    summary["build_s"] = round(time.time() - t0, 1)
    rows = []
    for case in cases:
        for nq, nk in SHAPES:
            verdict = run_case(case, nq, nk, generator)
            rows.append({"case": label(case), "nq": nq, "nk": nk, "ok": verdict.ok,
                         "max_error": verdict.max_error, "bound": verdict.max_bound,
                         "problems": list(verdict.problems)})
    rows += special_rows(generator)
    summary["correct"] = sum(r["ok"] for r in rows)
    summary["cases"] = len(rows)
    summary["sm75_ptx_ok"] = all(r["ok"] for r in rows if "sm_75-ptx" in r["case"])
    tt.poison_outputs = False  # the hot path as users run it
    for step in (compile_check, cuda_graph_check, overhead_check):
        try:
            summary.update(step(generator))
        except Exception as error:
            summary[f"{step.__name__}_error"] = f"{type(error).__name__}: {error}"
    sdpa = summary.get("overhead_us_sdpa")
    if sdpa is not None:
        summary["overhead_bound_us"] = round(max(20.0, 2 * sdpa), 2)
        summary["overhead_ok"] = summary["overhead_us_tlc"] <= summary["overhead_bound_us"]
    with open(path, "w") as handle:
        json.dump({"summary": summary, "rows": rows}, handle, indent=1)
    for row in rows:
        if not row["ok"]:
            print("FAILED", row)
    width = max(map(len, summary))
    for name, value in summary.items():
        print(f"{name:<{width}}  {value}")
    print(f"torch front door: {summary['correct']}/{summary['cases']} correct on "
          f"{summary['gpu']}")
    return 0 if summary["correct"] == summary["cases"] else 1


if __name__ == "__main__":
    sys.exit(main())
