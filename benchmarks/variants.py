"""Attention variants and wide head dims on the GPU present: a correctness matrix for tlc's
sm_80 and sm_75 plans, then tlc side by side with PyTorch SDPA and FlexAttention.

Correctness: for each target (--targets: sm_80 and sm_75 unless told; sm_90a on a Hopper
GPU), each variant (sliding window, softcap, ALiBi, all three with causal and GQA) at D = 64
and 128, and each head dim of 72, 80, 96, 192, 320 and 512 (plain and causal), fp16 and
bf16, over the sequence
pairs of benchmarks/correctness.py: every (batch, head) of the output against the float64
reference by the peers' tolerance rule (tlc.runtime.check_random; the output poisoned with
NaN first). sm_75 plans run as PTX for compute_75, JIT-compiled by the driver; sm_90a plans
are built for sm_90a.

Benchmark: fp16, MHA, batch = 16384 / N, heads = 2048 / D (rounded down), for each variant
and head dim: tlc (sm_80 plans, and sm_75 plans as PTX), SDPA's flash, cuDNN and efficient
backends and FlexAttention (compiled). A variant SDPA has no argument for (a window, ALiBi)
is given to it as an explicit attn_mask; softcap has no SDPA form. Every output is checked on
the last 128 query rows of two heads before it is timed; a backend that cannot run a case
gets a row saying why. FLOPs: 4·B·H·N²·D, halved for causal; with a window, 4·B·H·D times
the visible pairs.

    python3 benchmarks/variants.py [--skip-correctness] [--skip-benchmark] [--seqs 1024,4096]
                                   [--targets sm_90a]

Writes $OUT/variants-correctness.json and $OUT/variants.json; tables are printed last.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attention import PEAK_TFLOPS, Unsupported, launcher, measure  # noqa: E402
from correctness import SEQS  # noqa: E402
from tlc.templates import plan  # noqa: E402

VARIANTS = {
    "window": dict(causal=True, window=(256, 0)),
    "softcap": dict(softcap=30.0),
    "alibi": dict(causal=True, alibi=True),
    "all": dict(causal=True, window=(200, 0), softcap=30.0, alibi=True),
}
WIDE_DIMS = [72, 80, 96, 192, 320, 512]
TARGETS = ("sm_80", "sm_75")
CHECK_ROWS = 128


def _cases(arch: str):
    """(name, dtype, D, options, GROUP) of the correctness matrix."""
    for dtype in ("fp16", "bf16"):
        for name, d in itertools.product(VARIANTS, (64, 128)):
            yield name, dtype, d, dict(VARIANTS[name]), 4 if name == "all" else 1
        for d, causal in itertools.product(WIDE_DIMS, (False, True)):
            yield ("causal" if causal else "plain"), dtype, d, dict(causal=causal), 1


def _build(text, arch, present):
    from tlc.api import check
    from tlc.driver import build_for, lowered_of

    lowered = lowered_of(check(text, arch=arch))
    if arch == "sm_75":  # as a Turing GPU would get it: PTX JIT-compiled by the driver
        return lowered, build_for(lowered, arch, output="ptx")
    if arch == "sm_90a":  # arch-specific code, for itself only
        return lowered, build_for(lowered, arch)
    return lowered, build_for(lowered, present)


def correctness(path: str, targets=TARGETS) -> list[dict]:
    from tlc.runtime import check_random, device_arch, device_name, load

    present = device_arch()
    texts = {}
    for arch in targets:
        for name, dtype, d, options, group in _cases(arch):
            causal = options.pop("causal", False)
            texts[(arch, name, dtype, d)] = plan(dtype, d, causal, group, arch, **options)
    started = time.time()
    with ThreadPoolExecutor(12) as pool:
        built = dict(zip(texts, pool.map(lambda key: _build(texts[key], key[0], present),
                                         texts)))
    print(f"built {len(built)} kernels in {time.time() - started:.0f} s", flush=True)
    rows, seed = [], 0
    for key, text in texts.items():
        kernel = load(text, prebuilt=built[key])
        group = next((p.value for p in kernel.kernel.params if p.name == "GROUP"), 1)
        for nq, nk in SEQS:
            seed += 1
            batch = 1 + seed % 2 if nq * nk < 1041 * 1041 else 1
            sizes = {"B": batch, "H": 2 * group, "Hkv": 2, "Nq": nq, "Nk": nk}
            verdict = check_random(kernel, sizes, seed=seed, whole=True)
            row = dict(zip(("arch", "variant", "dtype", "head_dim"), key), nq=nq, nk=nk,
                       batch=batch, **verdict.to_json())
            rows.append(row)
            if not verdict.ok:
                print("FAILED", json.dumps(row), flush=True)
    with open(path, "w") as handle:
        json.dump({"device": device_name(), "cases": rows}, handle, indent=1)
    print(f"{'arch':6} {'variant':8} {'dtype':5} {'D':>4}  cases  passed  worst max/bound")
    for key, group in itertools.groupby(rows, key=lambda r: (r["arch"], r["variant"],
                                                             r["dtype"], r["head_dim"])):
        group = list(group)
        worst = max(r["max_error"] / r["max_bound"] for r in group)
        print(f"{key[0]:6} {key[1]:8} {key[2]:5} {key[3]:>4}  {len(group):>5}  "
              f"{sum(r['ok'] for r in group):>6}  {worst:.2f}")
    passed = sum(r["ok"] for r in rows)
    print(f"variants correctness: {passed}/{len(rows)} cases passed on {device_name()} "
          f"(targets {', '.join(targets)}: sm_80 plans built natively, sm_75 plans as "
          "compute_75 PTX, sm_90a plans for sm_90a)", flush=True)
    return rows


# ---- the benchmark ----

class Bench:
    def __init__(self, label, d, n, options):
        self.label, self.d, self.n = label, d, n
        self.options = dict(options)
        self.causal = self.options.pop("causal", False)
        self.batch, self.heads = 16384 // n, max(1, 2048 // d)

    @property
    def variant(self):
        from tlc.reference import Variant

        return Variant(causal=self.causal, window=self.options.get("window"),
                       softcap=self.options.get("softcap"))

    def slopes(self):
        from tlc.reference import alibi_slopes

        return alibi_slopes(self.heads).astype(np.float32) if self.options.get("alibi") else None


def _inputs(bench, sets):
    import torch

    generator = torch.Generator(device="cuda").manual_seed(bench.n + bench.d)
    return [tuple(torch.randn(bench.batch, bench.heads, bench.n, bench.d, device="cuda",
                              dtype=torch.float16, generator=generator) for _ in range(3))
            for _ in range(sets)]


def _check(bench, q, k, v, o) -> dict:
    from tlc.reference import attention, attention_low, compare

    rows = min(CHECK_ROWS, bench.n)
    slopes, got, ref, low = bench.slopes(), [], [], []
    for b, h in ((0, 0), (bench.batch - 1, bench.heads - 1)):
        one = [x[b, h, -rows:] if x is q else x[b, h] for x in (q, k, v)]
        one = [x.float().cpu().numpy().astype(np.float64)[None, None] for x in one]
        slope = None if slopes is None else slopes[h:h + 1]
        # The last rows of a bottom-right aligned mask are the same problem with `rows` queries.
        ref.append(attention(*one, bench.variant, slope)[0, 0])
        low.append(attention_low(*one, "fp16", bench.variant, slope)[0, 0])
        got.append(o[b, h, -rows:].float().cpu().numpy().astype(np.float64))
    return compare(np.stack(got), np.stack(ref), np.stack(low), "fp16", q_len=rows,
                   k_len=bench.n, variant=bench.variant).to_json()


def tlc_runner(arch):
    def make(bench, inputs, cache):
        import torch

        from tlc.runtime import load

        options = dict(bench.options)
        key = (arch, bench.label, bench.d)
        if key not in cache:
            cache[key] = load(plan("fp16", bench.d, bench.causal, 1, arch, **options),
                              from_ptx=arch == "sm_75")
        kernel = cache[key]
        extra = {}
        if bench.options.get("alibi"):
            extra["slopes"] = torch.tensor(bench.slopes(), device="cuda")
        return launcher(kernel, inputs, scale=1.0 / bench.d ** 0.5, **extra), kernel.how
    return make


def _bias(bench):
    """The variant as an additive (1, H, N, N) mask for SDPA: -inf where hidden, ALiBi's
    bias where shown; None when plain causal says it all."""
    import torch

    if not bench.options.get("window") and not bench.options.get("alibi"):
        return None
    if bench.options.get("softcap"):
        raise Unsupported("SDPA has no softcap")
    if bench.n > 4096:
        raise Unsupported("an explicit N x N mask is too large at this N")
    i = torch.arange(bench.n, device="cuda")[:, None]
    j = torch.arange(bench.n, device="cuda")[None, :]
    shown = torch.ones(bench.n, bench.n, dtype=torch.bool, device="cuda")
    if bench.causal:
        shown &= j <= i
    if bench.options.get("window"):
        left, right = bench.options["window"]
        shown &= (j >= i - left) & (j <= i + right)
    bias = torch.zeros(1, bench.heads, bench.n, bench.n, device="cuda", dtype=torch.float16)
    if bench.options.get("alibi"):
        slopes = torch.tensor(bench.slopes(), device="cuda")[None, :, None, None]
        bias -= (slopes * (i - j).abs()[None, None]).half()
    return bias.masked_fill(~shown, float("-inf"))


def sdpa_runner(name):
    def make(bench, inputs, cache):
        import torch.nn.functional as F
        from torch.nn.attention import SDPBackend, sdpa_kernel

        if bench.options.get("softcap"):
            raise Unsupported("SDPA has no softcap")
        backend = {"sdpa-flash": SDPBackend.FLASH_ATTENTION,
                   "sdpa-cudnn": SDPBackend.CUDNN_ATTENTION,
                   "sdpa-efficient": SDPBackend.EFFICIENT_ATTENTION}[name]
        bias = _bias(bench)
        note = "explicit attn_mask" if bias is not None else "is_causal" if bench.causal else ""

        def call(i):
            q, k, v = inputs[i]
            with sdpa_kernel(backend):
                if bias is not None:
                    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
                return F.scaled_dot_product_attention(q, k, v, is_causal=bench.causal)
        try:
            call(0)
        except RuntimeError as error:
            raise Unsupported(str(error).splitlines()[0][:120])
        return call, note
    return make


def flex_runner(bench, inputs, cache):
    import torch
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    compiled = cache.setdefault("flex", torch.compile(flex_attention))
    causal, window = bench.causal, bench.options.get("window")
    cap = bench.options.get("softcap")
    slopes = torch.tensor(bench.slopes(), device="cuda") if bench.options.get("alibi") else None

    def visible(b, h, qi, ki):
        shown = qi >= 0
        if causal:
            shown = shown & (ki <= qi)
        if window:
            shown = shown & (ki >= qi - window[0]) & (ki <= qi + window[1])
        return shown

    def score(s, b, h, qi, ki):
        if cap:
            s = cap * torch.tanh(s / cap)
        if slopes is not None:
            s = s - slopes[h] * (qi - ki).abs()
        return s
    mask = create_block_mask(visible, None, None, bench.n, bench.n) if causal or window else None
    mod = score if cap or slopes is not None else None
    return (lambda i: compiled(*inputs[i], score_mod=mod, block_mask=mask)), \
        "torch.compile(flex_attention)"


RUNNERS = {"tlc": tlc_runner("sm_80"), "tlc-sm75": tlc_runner("sm_75"),
           "sdpa-flash": sdpa_runner("sdpa-flash"), "sdpa-cudnn": sdpa_runner("sdpa-cudnn"),
           "sdpa-efficient": sdpa_runner("sdpa-efficient"), "flex": flex_runner}


def benchmark(path: str, seqs: list[int], iters: int, rotate: int) -> list[dict]:
    import torch

    from tlc.reference import attention_flops

    device = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in device), None)
    benches = [Bench(label, d, n, VARIANTS[label]) for label in ("window", "softcap", "alibi")
               for d in (64, 128) for n in seqs]
    benches += [Bench("plain", d, n, {}) for d in WIDE_DIMS for n in seqs]
    rows, cache = [], {}
    for bench in benches:
        inputs = _inputs(bench, rotate)
        for backend, make in RUNNERS.items():
            row = {"backend": backend, "variant": bench.label, "dtype": "fp16",
                   "head_dim": bench.d, "seqlen": bench.n, "batch": bench.batch,
                   "heads": bench.heads, "kv_heads": bench.heads, "causal": bench.causal}
            flops = attention_flops(bench.batch, bench.heads, bench.n, bench.n, bench.d,
                                    bench.variant)
            measure(row, partial(make, bench, inputs, cache), partial(_check, bench, *inputs[0]),
                    flops, rotate, iters, peak)
            rows.append(row)
            print(json.dumps(row), flush=True)
        del inputs
        torch.cuda.empty_cache()
    with open(path, "w") as handle:
        json.dump(rows, handle, indent=1)
    _table(rows, device)
    return rows


def _table(rows, device) -> None:
    backends = list(RUNNERS)
    by = {(r["variant"], r["head_dim"], r["seqlen"], r["backend"]): r for r in rows}
    cases = sorted({(r["variant"], r["head_dim"], r["seqlen"]) for r in rows})
    print(f"\nTFLOP/s on {device} (fp16, MHA; '-' = cannot run it, see the JSON)")
    print(f"{'variant':8} {'D':>4} {'N':>6} " + " ".join(f"{b:>14}" for b in backends))
    for case in cases:
        cells = [by.get((*case, b), {}).get("tflops") for b in backends]
        print(f"{case[0]:8} {case[1]:>4} {case[2]:>6} " +
              " ".join(f"{c:>14.1f}" if c else f"{'-':>14}" for c in cells))
    for peer in backends[2:]:
        ratios = [by[(*c, "tlc")]["tflops"] / by[(*c, peer)]["tflops"] for c in cases
                  if by.get((*c, "tlc"), {}).get("tflops") and by.get((*c, peer), {}).get("tflops")]
        if ratios:
            print(f"tlc / {peer}: geometric mean {np.exp(np.mean(np.log(ratios))):.2f}, "
                  f"min {min(ratios):.2f}, max {max(ratios):.2f} over {len(ratios)} cases "
                  f"it runs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-correctness", action="store_true")
    parser.add_argument("--skip-benchmark", action="store_true")
    parser.add_argument("--seqs", default="1024,4096")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--rotate", type=int, default=3, help="input sets taken in turn")
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help="the plans' targets for the correctness matrix (sm_80,sm_75)")
    args = parser.parse_args()
    out = os.environ.get("OUT", ".")
    failed = False
    if not args.skip_correctness:
        suffix = "" if args.targets == ",".join(TARGETS) else f"-{args.targets.replace(',', '-')}"
        rows = correctness(os.path.join(out, f"variants-correctness{suffix}.json"),
                           args.targets.split(","))
        failed |= not all(r["ok"] for r in rows)
    if not args.skip_benchmark:
        rows = benchmark(os.path.join(out, "variants.json"),
                         [int(n) for n in args.seqs.split(",")], args.iters, args.rotate)
        failed |= any(r["backend"].startswith("tlc") and r.get("error") for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
