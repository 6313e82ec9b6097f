"""Attention backward, side by side on the GPU present: tlc's backward plans and PyTorch's.

The grid of benchmarks/attention.py (dtype × head dim D × N × MHA or GQA 4:1 × causal or not,
batch 16384 / N, heads 2048 / D), backward only: dQ, dK and dV from Q, K, V, O, dO and the
forward's row log-sum-exp. FLOPs are 2.5 × the forward's (five GEMMs of the forward's two's
size), halved for causal. Each backend's gradients are checked once, before timing, against
float64 gradients computed on the GPU for the first and the last K/V head's group (every
query row and key), by the peers' rule for gradients (reference.compare with ratio 3, the
low-precision yardstick rounding each product to the dtype).

What a call times, for each backend, is what its backward costs a training step:
- tlc: Delta = rowsum(dO ∘ O) (one PyTorch reduction), the backward kernel (its call fills dQ
  with zeros and poisons dK, dV), and dQ from fp32 to the input dtype; O and L come from tlc's
  own forward (templates.plan with lse), untimed. Where the one-kernel plan does not fit
  (D = 128), the deterministic mode's two plans, as tlc.torch runs them.
- tlc-deterministic: the same with the deterministic mode's two plans (dK and dV; then dQ,
  summed per query tile with no atomics, in the input dtype).
- sdpa-flash / sdpa-cudnn / sdpa-efficient: torch.autograd.grad of the forward's output,
  the graph kept (retain_graph), under that SDPA backend; GQA by enable_gqa, or K/V repeated
  per query head (and their gradients summed back) where a backend refuses it.

    python3 benchmarks/backward.py [--arch sm_80] [--backends tlc,sdpa-flash,...]
        [--dtypes fp16,bf16] [--dims 64,128] [--seqs 1024,4096,16384] [--json PATH]

Rows (the attention grid's fields, `check` the gradient verdict) go to --json (default
$OUT/backward.json); the table is printed last, with tlc / sdpa-flash per case.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attention import (PEAK_TFLOPS, Case, Unsupported, flops, measure, print_table,  # noqa: E402
                       time_ms)

BACKENDS = ("tlc", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient", "tlc-deterministic")
BACKWARD_FLOPS = 2.5  # the backward's FLOPs over the forward's


def make_inputs(case, sets: int, seed: int):
    import torch

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[case.dtype]
    generator = torch.Generator(device="cuda").manual_seed(seed)

    def normal(heads):
        return torch.randn(case.batch, heads, case.n, case.d, device="cuda", dtype=dtype,
                           generator=generator)
    return [(normal(case.heads), normal(case.kv_heads), normal(case.kv_heads),
             normal(case.heads)) for _ in range(sets)]


# ---- the reference: float64 gradients of one K/V head's group, on the GPU ----

def torch_gradients(q, k, v, do, causal: bool, rounded):
    """dQ, dK, dV of one K/V head's group (q, do: (G, N, D); k, v: (N, D)), in float64, every
    product passed through `rounded`, as reference._gradients computes them."""
    import torch

    scale = 1.0 / q.shape[-1] ** 0.5
    s = rounded(rounded(q @ k.T) * scale)
    if causal:  # bottom-right aligned: row i sees keys up to i + Nk - Nq
        nq, nk = q.shape[1], k.shape[0]
        hidden = torch.ones(nq, nk, dtype=torch.bool, device=q.device).triu(nk - nq + 1)
        s = s.masked_fill(hidden, float("-inf"))
    top = s.amax(-1, keepdim=True).clamp_min(-1e300)
    e = torch.exp(s - top)
    p = rounded(e / e.sum(-1, keepdim=True))
    o = rounded(p @ v)
    dv = rounded(rounded(p.transpose(-1, -2) @ do).sum(0))
    dp = rounded(do @ v.T)
    delta = (do * o).sum(-1, keepdim=True)
    ds = rounded(p * (dp - delta))
    dq = rounded(rounded(ds @ k) * scale)
    dk = rounded(rounded(rounded(ds.transpose(-1, -2) @ q) * scale).sum(0))
    return dq, dk, dv


def check_gradients(case, q, k, v, do, grads) -> dict:
    """The worst of dQ, dK, dV over the first and last K/V head's groups, by the peers' rule
    for gradients (reference.compare, ratio 3)."""
    import torch

    from tlc.reference import GRADIENT_RATIO, Variant, compare

    dtype = q.dtype
    rounded_low = lambda x: x.to(dtype).to(torch.float64)  # noqa: E731
    records = []
    for b, kv in ((0, 0), (case.batch - 1, case.kv_heads - 1)):
        heads = slice(kv * case.group, (kv + 1) * case.group)
        inputs = [x.to(torch.float64) for x in (q[b, heads], k[b, kv], v[b, kv], do[b, heads])]
        ref = torch_gradients(*inputs, case.causal, lambda x: x)
        low = torch_gradients(*[rounded_low(x) for x in inputs], case.causal, rounded_low)
        got = (grads[0][b, heads], grads[1][b, kv], grads[2][b, kv])
        for name, g, r, lo in zip(("dq", "dk", "dv"), got, ref, low):
            verdict = compare(g.double().cpu().numpy(), r.cpu().numpy(), lo.cpu().numpy(),
                              case.dtype, k_len=case.n, variant=Variant(causal=case.causal),
                              ratio=GRADIENT_RATIO)
            records.append(dict(verdict.to_json(), gradient=name))
        del ref, low
        torch.cuda.empty_cache()
    failed = [r for r in records if not r["ok"]]
    return failed[0] if failed else max(
        records, key=lambda r: r["max_error"] / max(r["max_bound"], 1e-30))


# ---- the backends: each returns (run(set index) -> (dQ, dK, dV), note) ----

def tlc_runner(case, inputs, arch, kernels, parts=("all",)):
    """tlc's backward plans for the case: the one kernel (dQ by atomics), or with parts
    ("dkdv", "dq") the deterministic mode's two; Delta and the zeroed dQ by PyTorch, as
    tlc.torch does them, inside the time."""
    import torch

    from tlc.backward_plans import backward_plan
    from tlc.runtime import load
    from tlc.templates import plan

    key = (case.dtype, case.d, case.causal, case.group, parts)
    if key not in kernels:
        def texts_of(chosen):
            return [backward_plan(case.dtype, case.d, case.causal, case.group, arch=arch,
                                  part=part) for part in chosen]
        try:
            texts = texts_of(parts)
        except ValueError as why:  # as tlc.torch does: the two plans where one does not fit
            try:
                texts = texts_of(("dkdv", "dq"))
            except ValueError:
                raise Unsupported(str(why)[:200])
        forward = load(plan(case.dtype, case.d, case.causal, case.group, arch=arch, lse=True))
        kernels[key] = (forward, [load(text) for text in texts], texts[0])
    forward, backwards, text = kernels[key]
    scale = 1.0 / case.d ** 0.5
    run = backward_run(backwards, inputs, saved_forward(forward, inputs, scale), scale)
    torch.cuda.synchronize()
    tiles = [line.split("= ")[1] for line in text.splitlines() if line.startswith("param B")
             or line.startswith("param WARPS")]
    plans = "" if len(backwards) == 1 else f"{len(backwards)} plans, the first "
    return run, f"{plans}BM, BN, WARPS = {', '.join(tiles)}; {backwards[0].how}"


def saved_forward(forward, inputs, scale) -> list:
    """(O, L) of each input set by tlc's forward with the log-sum-exp."""
    saved = []
    for q, k, v, _ in inputs:
        result = forward(Q=q, K=k, V=v, scale=scale)
        saved.append((result["O"], result["L"]))
    return saved


def backward_run(kernels, inputs, saved, scale):
    """run(i) -> (dQ, dK, dV) of input set i: Delta = rowsum(dO ∘ O) by PyTorch, then the
    backward kernels (one, or the deterministic pair), dQ in the inputs' dtype."""
    def run(i):
        q, k, v, do = inputs[i]
        o, lse = saved[i]
        delta = (do.float() * o.float()).sum(-1)
        grads = {}
        for kernel in kernels:
            grads.update(kernel(Q=q, K=k, V=v, dO=do, L=lse, Delta=delta, scale=scale))
        return grads["dQ"].to(q.dtype), grads["dK"], grads["dV"]
    return run


def deterministic_runner(case, inputs, arch, kernels):
    return tlc_runner(case, inputs, arch, kernels, parts=("dkdv", "dq"))


def sdpa_runner(name):
    def make(case, inputs, arch, kernels):
        import torch
        import torch.nn.functional as F
        from torch.nn.attention import SDPBackend, sdpa_kernel

        backend = {"sdpa-flash": SDPBackend.FLASH_ATTENTION,
                   "sdpa-cudnn": SDPBackend.CUDNN_ATTENTION,
                   "sdpa-efficient": SDPBackend.EFFICIENT_ATTENTION}[name]

        def graph(q, k, v, repeat):
            leaves = [x.detach().requires_grad_() for x in (q, k, v)]
            kk, vv = leaves[1], leaves[2]
            if repeat:
                kk, vv = (x.repeat_interleave(case.group, 1) for x in (kk, vv))
            with sdpa_kernel(backend):
                out = F.scaled_dot_product_attention(
                    leaves[0], kk, vv, is_causal=case.causal,
                    enable_gqa=case.group > 1 and not repeat)
            return leaves, out

        note, repeat = "enable_gqa" if case.group > 1 else "", False
        try:
            graphs = [graph(q, k, v, False) for q, k, v, _ in inputs[:1]]
            torch.autograd.grad(graphs[0][1], graphs[0][0], inputs[0][3])
        except RuntimeError as error:
            if case.group == 1:
                raise Unsupported(str(error).splitlines()[0][:120])
            repeat, note = True, "K/V repeated per query head (no GQA support)"
        try:
            graphs = [graph(q, k, v, repeat) for q, k, v, _ in inputs]
            torch.autograd.grad(graphs[0][1], graphs[0][0], inputs[0][3], retain_graph=True)
        except RuntimeError as error:
            raise Unsupported(str(error).splitlines()[0][:120])
        torch.cuda.synchronize()

        def run(i):
            leaves, out = graphs[i]
            with sdpa_kernel(backend):
                return torch.autograd.grad(out, leaves, inputs[i][3], retain_graph=True)
        return run, note
    return make


RUNNERS = {"tlc": tlc_runner, "tlc-deterministic": deterministic_runner,
           **{name: sdpa_runner(name) for name in BACKENDS[1:4]}}



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="sm_80", help="target of the tlc plans")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--dtypes", default="fp16,bf16")
    parser.add_argument("--dims", default="64,128")
    parser.add_argument("--seqs", default="1024,4096,16384")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--rotate", type=int, default=2, help="input sets taken in turn")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    args.json = args.json or os.path.join(os.environ.get("OUT", "."), "backward.json")
    import torch

    device = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in device), None)
    backends = args.backends.split(",")
    unknown = [b for b in backends if b not in RUNNERS]
    if unknown:
        parser.error(f"unknown backends {unknown}; known: {', '.join(BACKENDS)}")
    cases = [Case(dt, int(d), int(n), gqa, causal) for dt, d, n, gqa, causal in itertools.product(
        args.dtypes.split(","), args.dims.split(","), args.seqs.split(","), [False, True],
        [False, True])]
    started, rows, kernels = time.time(), [], {}
    for index, case in enumerate(cases):
        inputs = make_inputs(case, args.rotate, seed=index)
        for backend in backends:
            row = case.row(backend)
            measure(row, lambda: RUNNERS[backend](case, inputs, args.arch, kernels),
                    lambda grads: check_gradients(case, *inputs[0], grads),
                    BACKWARD_FLOPS * flops(case.batch, case.heads, case.n, case.d, case.causal),
                    args.rotate, args.iters, peak, wrong="wrong gradients")
            row.update(gpu=device, pass_="backward")
            rows.append(row)
            print(json.dumps(row), flush=True)
            torch.cuda.empty_cache()
        del inputs
        torch.cuda.empty_cache()
    with open(args.json, "w") as handle:
        json.dump(rows, handle, indent=1)
    print(f"\n{len(cases)} cases x {len(backends)} backends in {time.time() - started:.0f} s "
          f"on {device}; tlc backward plans for {args.arch}; FLOPs 2.5x the forward's")
    print_table(rows, [b for b in BACKENDS if b in backends])
    return 1 if any(r["backend"] == "tlc" and r.get("check") and not r["check"]["ok"]
                    for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
