"""Attention forward, side by side on the GPU present: tlc's kernels and PyTorch's.

One run times every backend on the same grid (DESIGN §6): dtype × head dim D × sequence
length N × MHA or GQA 4:1 × causal or not, with batch = 16384 / N and heads = 2048 / D (rounded
down to a multiple of 4, so that GQA 4:1 divides it: 20 at D = 96).
Each backend's output is checked once against the float64 reference (the last 128 query rows
of the first and the last head, by the peers' tolerance rule) before it is timed; a backend
that fails, or cannot run the case, gets a row saying so and no time. Timing: CUDA events
around each launch, warm-up first, the median of --iters launches, with --rotate sets of
inputs taken in turn so that no backend finds its inputs in L2. FLOPs are 4·B·H·N²·D, halved
for causal; a figure above the GPU's dense peak is reported as an error, not a result.

    python3 benchmarks/attention.py [--arch sm_80|sm_75] [--backends tlc,sdpa-flash,...]
        [--dtypes fp16,bf16] [--dims 64,128] [--seqs 1024,4096,16384] [--json PATH]
        [--tune-only | --no-tune] [--tune-cache PATH] [--merge EARLIER.json]

tlc's plans come from tlc/templates.py for --arch, each then tuned on this GPU by
`tlc tune` (tlc.tune) over TUNE_SPACE at its N = 4096 point; the winners are cached per
(plan, GPU, driver), so --tune-only first and the grid after costs the tuning once. sm_75
plans run as PTX for compute_75 that the driver JIT-compiles, so an H100 stands in for a
Turing GPU (a proxy only: the H100's memory system and SM count are not a T4's). Rows go to
--json (default $OUT/attention.json), the chart (benchmarks/chart.py, with matplotlib)
beside it; the table is printed last, with tlc / sdpa-flash per case and the geometric means.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from functools import partial

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from correctness import FROM_PTX  # noqa: E402
from tlc.templates import plan  # noqa: E402

BACKENDS = ("tlc", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient", "flex", "fa3")
PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "T4": 65.0}  # dense fp16/bf16
CHECK_ROWS = 128


def flops(batch, heads, n, d, causal) -> float:
    return 4.0 * batch * heads * n * n * d / (2 if causal else 1)


def grid_heads(d: int) -> int:
    """2048 / D query heads, a multiple of the GQA group of 4."""
    return max(4, 2048 // d // 4 * 4)


class Case:
    def __init__(self, dtype, d, n, gqa, causal):
        self.dtype, self.d, self.n, self.gqa, self.causal = dtype, d, n, gqa, causal
        self.batch, self.heads = 16384 // n, grid_heads(d)
        self.group = 4 if gqa else 1
        self.kv_heads = self.heads // self.group

    def row(self, backend, **extra) -> dict:
        return {"backend": backend, "dtype": self.dtype, "head_dim": self.d, "seqlen": self.n,
                "batch": self.batch, "heads": self.heads, "kv_heads": self.kv_heads,
                "causal": self.causal, **extra}


def make_inputs(case, sets, seed):
    import torch

    torch_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[case.dtype]
    generator = torch.Generator(device="cuda").manual_seed(seed)
    out = []
    for _ in range(sets):
        q = torch.randn(case.batch, case.heads, case.n, case.d, device="cuda",
                        dtype=torch_dtype, generator=generator)
        k, v = (torch.randn(case.batch, case.kv_heads, case.n, case.d, device="cuda",
                            dtype=torch_dtype, generator=generator) for _ in range(2))
        out.append((q, k, v))
    return out


def check_output(case, q, k, v, o) -> dict:
    """The peers' tolerance rule on the last CHECK_ROWS query rows of two heads."""
    from tlc.reference import Variant, attention, attention_low, compare

    variant = Variant(causal=case.causal)
    rows = min(CHECK_ROWS, case.n)
    got, ref, low = [], [], []
    for b, h in ((0, 0), (case.batch - 1, case.heads - 1)):
        qs = q[b, h, -rows:].float().cpu().numpy()[None, None]
        ks = k[b, h // case.group].float().cpu().numpy()[None, None]
        vs = v[b, h // case.group].float().cpu().numpy()[None, None]
        # The last rows of a bottom-right aligned causal mask are a causal problem of
        # `rows` queries against all N keys.
        ref.append(attention(qs, ks, vs, variant)[0, 0])
        low.append(attention_low(qs, ks, vs, case.dtype, variant)[0, 0])
        got.append(o[b, h, -rows:].float().cpu().numpy().astype(np.float64))
    verdict = compare(np.stack(got), np.stack(ref), np.stack(low), case.dtype, q_len=rows,
                      k_len=case.n, variant=variant)
    return verdict.to_json()


def time_ms(launch, sets: int, iters: int) -> float:
    import torch

    for i in range(5):
        launch(i % sets)
    torch.cuda.synchronize()
    times = []
    for i in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        launch(i % sets)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def measure(row: dict, make_run, check, flop_count: float, sets: int, iters: int,
            peak: float | None, wrong: str = "wrong result") -> dict:
    """Fill a benchmark row: make the backend's run, check its output, then time it. A backend
    that cannot run the case, fails, or computes a wrong result gets a row saying so and no
    time; a figure above the GPU's peak is reported as an error."""
    import torch

    try:
        run, note = make_run()
        out = run(0)
        torch.cuda.synchronize()
        verdict = check(out)
        del out  # the checked output's memory back before timing
        row.update(note=note, check=verdict)
        if not verdict["ok"]:
            row.update(ms=None, tflops=None, error=wrong)
            return row
        ms = time_ms(run, sets, iters)
        tflops = flop_count / ms / 1e9
        row.update(ms=round(ms, 4), tflops=round(tflops, 1))
        if peak and tflops > peak:
            row.update(error=f"{tflops:.0f} TFLOP/s is above the peak {peak}")
    except Unsupported as why:
        row.update(ms=None, tflops=None, error=f"unsupported: {why}")
    except Exception as error:  # a backend's failure is a row, not the end of the run
        row.update(ms=None, tflops=None, error=f"{type(error).__name__}: "
                   f"{str(error).splitlines()[0][:160] if str(error) else ''}")
    return row


# ---- the backends: each returns (run(set index) -> output, note) or raises Unsupported ----

class Unsupported(Exception):
    pass


# What `tlc tune` varies for the benchmark's plans: the tiles FlashAttention-2 and our own
# sweeps found worth trying, a space small enough to measure whole for every plan.
TUNE_SPACE = {"BM": (64, 128), "BN": (32, 64, 128), "WARPS": (4, 8), "STAGES": (2, 3)}
SETTINGS = {"tune_cache": None}  # set by main()


def tuning_shape(case) -> dict:
    """The problem each plan is tuned on: the grid's N = 4096 point of its case."""
    heads = grid_heads(case.d)
    return {"B": 16384 // 4096, "H": heads, "Hkv": heads // case.group, "Nq": 4096,
            "Nk": 4096}


def tlc_plan(case, arch) -> tuple[str, str]:
    """(plan text, how it was chosen): the template's first accepted plan, tuned on this GPU
    by `tlc tune` unless --no-tune."""
    from pathlib import Path

    from tlc.arch import ARCHS
    from tlc.tune import tune

    text = plan(case.dtype, case.d, case.causal, case.group, arch=arch)
    if SETTINGS["tune_cache"] is None:
        return text, "the template's first accepted tiles (not tuned)"
    space = dict(TUNE_SPACE)
    if not ARCHS[arch].has_cp_async:
        space["STAGES"] = (1,)

    def progress(done, total, what, measurement):
        if measurement is not None:
            result = f"{measurement.tflops} TFLOP/s" if measurement.ok else measurement.error
            print(f"  tune {case.dtype} D={case.d} causal={case.causal} group={case.group}: "
                  f"{done}/{total} {what}: {result}", flush=True)
    outcome = tune(text, arch, tuning_shape(case), space=space, from_ptx=arch in FROM_PTX,
                   cache=Path(SETTINGS["tune_cache"]), progress=progress)
    if outcome.best is None:
        raise RuntimeError("tlc tune: no candidate passed its correctness check")
    label = " ".join(f"{k}={v}" for k, v in outcome.best.values.items())
    return outcome.best_text(), f"tuned ({label}, {outcome.best.tflops} TFLOP/s at N=4096)"


def tlc_runner(case, inputs, arch, kernels):
    from tlc.runtime import load

    key = (case.dtype, case.d, case.causal, case.group)
    if key not in kernels:
        text, chosen = tlc_plan(case, arch)
        kernels[key] = (load(text, from_ptx=arch in FROM_PTX), chosen)
    kernel, chosen = kernels[key]
    return launcher(kernel, inputs, scale=1.0 / case.d ** 0.5), f"{chosen}; {kernel.how}"


def launcher(kernel, inputs, **arguments):
    """run(set index) -> O: one call per input set fixes its launch arguments (and output), so
    that the timed launches do nothing else."""
    prepared = []
    for q, k, v in inputs:
        out = kernel(Q=q, K=k, V=v, **arguments)["O"]
        prepared.append((kernel.launch_args, out))

    def run(i):
        kernel.launch_args = prepared[i][0]
        kernel.launch()
        return prepared[i][1]
    return run


def sdpa_runner(name):
    def make(case, inputs, arch, kernels):
        import torch
        import torch.nn.functional as F
        from torch.nn.attention import SDPBackend, sdpa_kernel

        backend = {"sdpa-flash": SDPBackend.FLASH_ATTENTION,
                   "sdpa-cudnn": SDPBackend.CUDNN_ATTENTION,
                   "sdpa-efficient": SDPBackend.EFFICIENT_ATTENTION}[name]
        note = "enable_gqa"
        prepared = inputs

        def call(q, k, v, gqa):
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, is_causal=case.causal,
                                                      enable_gqa=gqa)
        try:
            call(*inputs[0], case.group > 1)
            gqa = case.group > 1
        except RuntimeError as error:
            if case.group == 1:
                raise Unsupported(str(error).splitlines()[0][:120])
            # No GQA in this backend: K and V repeated per query head, before timing.
            prepared = [(q, k.repeat_interleave(case.group, 1), v.repeat_interleave(
                case.group, 1)) for q, k, v in inputs]
            gqa, note = False, "K/V repeated per query head (no GQA support)"
            try:
                call(*prepared[0], False)
            except RuntimeError as error2:
                raise Unsupported(str(error2).splitlines()[0][:120])
        torch.cuda.synchronize()
        return (lambda i: call(*prepared[i], gqa)), note
    return make


def flex_runner(case, inputs, arch, kernels):
    import torch
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    if "flex" not in kernels:
        # Every case is a new shape, so a recompile: past dynamo's limit (8 by default),
        # torch.compile quietly runs flex_attention eagerly, an unfused reference that
        # materialises the scores, and would be timed as if it were FlexAttention.
        import torch._dynamo

        for name, value in (("recompile_limit", 1024), ("cache_size_limit", 1024),
                            ("accumulated_recompile_limit", 4096),
                            ("accumulated_cache_size_limit", 4096)):
            if hasattr(torch._dynamo.config, name):  # the names changed across releases
                setattr(torch._dynamo.config, name, value)
        kernels["flex"] = torch.compile(flex_attention, dynamic=False)
    compiled = kernels["flex"]
    mask = None
    if case.causal:
        mask = create_block_mask(lambda b, h, qi, ki: qi >= ki, None, None, case.n, case.n)
    return (lambda i: compiled(*inputs[i], block_mask=mask, enable_gqa=case.group > 1)), \
        "torch.compile(flex_attention)"


def fa3_runner(case, inputs, arch, kernels):
    """FlashAttention-3's forward from the fa3-fwd wheel (bf16 and FP8 only): (B, N, H, D)
    inputs, made contiguous before timing, as FA3 takes them; GQA native."""
    if case.dtype != "bf16":
        raise Unsupported("the fa3-fwd wheel has no fp16 kernels")
    try:
        import fa3_fwd_interface as fa3
    except Exception as error:  # the wheel is absent or does not load with this PyTorch
        raise Unsupported(f"fa3-fwd does not load: {type(error).__name__}: {error}")
    prepared = [tuple(t.transpose(1, 2).contiguous() for t in three) for three in inputs]

    def run(i):
        out = fa3.flash_attn_func(*prepared[i], causal=case.causal)
        return (out[0] if isinstance(out, tuple) else out).transpose(1, 2)
    return run, "fa3_fwd_interface.flash_attn_func, (B, N, H, D) inputs"


RUNNERS = {"tlc": tlc_runner, "fa3": fa3_runner, "sdpa-flash": sdpa_runner("sdpa-flash"),
           "sdpa-cudnn": sdpa_runner("sdpa-cudnn"),
           "sdpa-efficient": sdpa_runner("sdpa-efficient"), "flex": flex_runner}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="sm_80", help="target of the tlc plans")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--dtypes", default="fp16,bf16")
    parser.add_argument("--dims", default="64,128")
    parser.add_argument("--seqs", default="1024,4096,16384")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--rotate", type=int, default=3, help="input sets taken in turn")
    parser.add_argument("--json", default=None)
    parser.add_argument("--chart", default=None, help="PNG path (default: next to --json)")
    parser.add_argument("--no-tune", action="store_true",
                        help="tlc runs the template's first accepted tiles, untuned")
    parser.add_argument("--tune-cache", default=None,
                        help="tlc tune's cache file (default: $OUT/tune.json)")
    parser.add_argument("--tune-only", action="store_true",
                        help="tune every plan of the grid and stop (the cache keeps the winners)")
    parser.add_argument("--merge", action="append", default=[], metavar="JSON",
                        help="rows of an earlier run to include in the table, JSON and chart "
                             "(this run's rows replace theirs case by case)")
    args = parser.parse_args()
    out = os.environ.get("OUT", ".")
    args.json = args.json or os.path.join(out, "attention.json")
    args.chart = args.chart or os.path.splitext(args.json)[0] + ".png"
    SETTINGS["tune_cache"] = None if args.no_tune else (
        args.tune_cache or os.path.join(out, "tune.json"))
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
    started = time.time()
    if args.tune_only:
        seen = set()
        for case in cases:
            key = (case.dtype, case.d, case.causal, case.group)
            if key not in seen:
                seen.add(key)
                _, chosen = tlc_plan(case, args.arch)
                print(f"{case.dtype} D={case.d} causal={case.causal} group={case.group}: "
                      f"{chosen}", flush=True)
        print(f"tuned {len(seen)} plans in {time.time() - started:.0f} s; cache "
              f"{SETTINGS['tune_cache']}")
        return 0
    rows, kernels = [], {}
    for index, case in enumerate(cases):
        inputs = make_inputs(case, args.rotate, seed=index)
        for backend in backends:
            row = case.row(backend)
            measure(row, partial(RUNNERS[backend], case, inputs, args.arch, kernels),
                    partial(check_output, case, *inputs[0]),
                    flops(case.batch, case.heads, case.n, case.d, case.causal), args.rotate,
                    args.iters, peak)
            row.update(gpu=device)
            rows.append(row)
            print(json.dumps(row), flush=True)
        del inputs
        torch.cuda.empty_cache()
    rows = merged(rows, args.merge)
    with open(args.json, "w") as handle:
        json.dump(rows, handle, indent=1)
    try:
        from chart import draw

        draw(rows, args.chart, title=f"Attention forward on {device}")
        print(f"chart: {args.chart}")
    except ImportError as error:
        print(f"no chart: {error} (benchmarks/chart.py needs matplotlib)")
    print(f"\n{len(cases)} cases x {len(backends)} backends in {time.time() - started:.0f} s "
          f"on {device}; tlc plans for {args.arch}" +
          (f", {len(args.merge)} earlier run(s) merged" if args.merge else ""))
    all_backends = [b for b in BACKENDS if any(r["backend"] == b for r in rows)]
    print_table(rows, all_backends)
    return 1 if any(r["backend"] == "tlc" and r.get("error") for r in rows) else 0


def merged(rows: list[dict], paths: list[str]) -> list[dict]:
    """Earlier runs' rows, then this run's, one row per (case, backend): the latest wins."""
    key = lambda r: (r["backend"], r["dtype"], r["head_dim"], r["seqlen"], r["kv_heads"],
                     r["heads"], r["causal"])
    by = {}
    for path in paths:
        with open(path) as handle:
            for row in json.load(handle):
                by[key(row)] = row
    for row in rows:
        by[key(row)] = row
    return list(by.values())


def print_table(rows, backends) -> None:
    key = lambda r: (r["dtype"], r["head_dim"], r["kv_heads"] != r["heads"], r["causal"],
                     r["seqlen"])
    cases = sorted({key(r) for r in rows})
    by = {(key(r), r["backend"]): r for r in rows}
    versus = "sdpa-flash" if "tlc" in backends and "sdpa-flash" in backends else None
    print(f"{'dtype':5} {'D':>4} {'GQA':>4} {'causal':>6} {'N':>6}  " +
          " ".join(f"{b:>15}" for b in backends) + ("   tlc/flash" if versus else "") +
          "   (TFLOP/s)")
    for c in cases:
        cells = []
        for b in backends:
            r = by.get((c, b), {})
            cells.append(f"{r['tflops']:>15.1f}" if r.get("tflops") else f"{'-':>15}")
        mine, theirs = by.get((c, "tlc"), {}), by.get((c, versus), {})
        ratio = f"   {mine['tflops'] / theirs['tflops']:>9.3f}" if versus and \
            mine.get("tflops") and theirs.get("tflops") else ""
        print(f"{c[0]:5} {c[1]:>4} {str(c[2]):>4} {str(c[3]):>6} {c[4]:>6}  " + " ".join(cells)
              + ratio)
    if "tlc" not in backends:
        return
    mine = [by[(c, "tlc")] for c in cases if (c, "tlc") in by]
    passed = sum(1 for r in mine if r.get("check", {}).get("ok"))
    print(f"tlc correctness: {passed}/{len(mine)} cases passed the float64 reference check")
    for peer in backends:
        if peer == "tlc":
            continue
        ratios = [by[(c, "tlc")]["tflops"] / by[(c, peer)]["tflops"] for c in cases
                  if by.get((c, "tlc"), {}).get("tflops") and by.get((c, peer), {}).get("tflops")]
        if ratios:
            geomean = float(np.exp(np.mean(np.log(ratios))))
            below = sum(1 for r in ratios if r < 0.90)
            print(f"tlc / {peer}: geometric mean {geomean:.3f}, min {min(ratios):.3f}, "
                  f"max {max(ratios):.3f} over {len(ratios)} cases, {below} below 0.90")


if __name__ == "__main__":
    sys.exit(main())
