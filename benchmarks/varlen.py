"""Variable-length prefill on the GPU present: a packed batch of sequences of ragged lengths,
causal, by tlc.torch.attention_varlen against FlashAttention-3's flash_attn_varlen_func (the
fa3-fwd wheel, bf16) and SDPA's flash kernel on the batch padded to its longest sequence.

Each output is checked against the float64 reference (the peers' rule) on the shortest and
the longest sequence, first and last K/V head with their query heads, before it is timed (CUDA events, median of ITERS). TFLOP/s count the
work of the unpadded sequences only (causal: the visible query-key pairs), for every backend.

    python3 benchmarks/varlen.py [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

import tlc.torch as tt
from tlc.reference import Variant, attention, attention_low, compare, visible_pairs

sys.path.insert(0, os.path.dirname(__file__))
from decode import time_call  # noqa: E402

ITERS = 20
CASES = [dict(sequences=16, low=256, high=4096, heads=32, kv_heads=8, head_dim=128),
         dict(sequences=64, low=64, high=1024, heads=32, kv_heads=8, head_dim=128),
         dict(sequences=8, low=1024, high=8192, heads=16, kv_heads=16, head_dim=128)]


def timed(call) -> float:
    return time_call(call, lambda: None, ITERS)  # decode.py's timing; no L2 flush for compute


def run_case(spec, seed=0) -> list[dict]:
    generator = torch.Generator(device="cuda").manual_seed(seed)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(spec["low"], spec["high"] + 1, spec["sequences"])
    h, hkv, d = spec["heads"], spec["kv_heads"], spec["head_dim"]
    total = int(lengths.sum())
    q = torch.randn(total, h, d, device="cuda", generator=generator).to(torch.bfloat16)
    k = torch.randn(total, hkv, d, device="cuda", generator=generator).to(torch.bfloat16)
    v = torch.randn(total, hkv, d, device="cuda", generator=generator).to(torch.bfloat16)
    cu = torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int32,
                      device="cuda")
    longest = int(lengths.max())
    flops = sum(4 * h * d * visible_pairs(int(n), int(n), Variant(causal=True))
                for n in lengths)
    checked = [int(np.argmin(lengths)), int(np.argmax(lengths))]
    # The reference once a case, not once a backend, and on the first and the last K/V head
    # with their query heads (as decode.py checks): the full float64 problem of the longest
    # sequence is minutes of NumPy.
    group = h // hkv
    kv_heads = sorted({0, hkv - 1})
    q_heads = [g * group + i for g in kv_heads for i in range(group)]
    variant = Variant(causal=True)

    def heads_of(tensor, b, heads, repeat=1):
        start, n = int(cu[b]), int(lengths[b])
        part = tensor[start:start + n][:, heads].transpose(0, 1).double().cpu().numpy()
        return np.repeat(part, repeat, axis=0)[None]

    references = {}
    for b in checked:
        qs, ks, vs = heads_of(q, b, q_heads), heads_of(k, b, kv_heads, group), \
            heads_of(v, b, kv_heads, group)
        references[b] = (attention(qs, ks, vs, variant),
                         attention_low(qs, ks, vs, "bf16", variant))

    def verdict(out):
        for b in checked:
            n = int(lengths[b])
            found = compare(heads_of(out, b, q_heads), *references[b], "bf16", q_len=n,
                            k_len=n, variant=variant)
            if not found.ok:
                return found.to_json()
        return found.to_json()

    calls = {"tlc": lambda: tt.attention_varlen(q, k, v, cu, cu, longest, causal=True,
                                                check=False)}
    try:
        import fa3_fwd_interface as fa3

        calls["fa3"] = lambda: fa3.flash_attn_varlen_func(q, k, v, cu, cu, longest, longest,
                                                          causal=True)
    except Exception as error:  # absent, or does not load with this PyTorch
        calls["fa3"] = f"fa3-fwd does not load: {type(error).__name__}: {error}"
    padded = [torch.zeros(spec["sequences"], longest, heads, d, device="cuda",
                          dtype=torch.bfloat16) for heads in (h, hkv, hkv)]
    for b, n in enumerate(lengths):
        for pad, src in zip(padded, (q, k, v)):
            pad[b, :n] = src[int(cu[b]):int(cu[b]) + int(n)]
    qp, kp, vp = (t.transpose(1, 2) for t in padded)

    def sdpa():
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            o = F.scaled_dot_product_attention(qp, kp, vp, is_causal=True,
                                               enable_gqa=h != hkv).transpose(1, 2)
        return torch.cat([o[b, :n] for b, n in enumerate(lengths)])

    calls["sdpa-flash-padded"] = sdpa
    rows = []
    for name, call in calls.items():
        row = dict(spec, backend=name, tokens=total, longest=longest, ms=None, tflops=None)
        if isinstance(call, str):
            rows.append(dict(row, error=f"unsupported: {call}"))
            continue
        try:
            out = call()
            out = out[0] if isinstance(out, tuple) else out
            torch.cuda.synchronize()
            row["check"] = verdict(out)
            if row["check"]["ok"]:
                ms = timed(call)
                row.update(ms=round(ms, 4), tflops=round(flops / ms / 1e9, 1))
            else:
                row["error"] = "wrong result"
        except Exception as error:  # a backend's failure is a row
            row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        rows.append(row)
    return rows


def prebuild() -> None:
    """Build the plans of the cases in parallel (nvcc is a subprocess)."""
    import concurrent.futures

    arch, from_ptx = tt._present_target(0)
    cases = {tt.Case("bf16", spec["head_dim"], spec["heads"] // spec["kv_heads"], True,
                     arch=arch, varlen=True) for spec in CASES}
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 4) as pool:
        list(pool.map(lambda case: tt.built_for(case, 0, from_ptx), cases))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=os.path.join(os.environ.get("OUT", "."),
                                                       "varlen.json"))
    args = parser.parse_args(argv)
    prebuild()
    rows = []
    for spec in CASES:
        rows += run_case(spec)
    tlc = {tuple(sorted((k, v) for k, v in r.items() if k in CASES[0])): r for r in rows
           if r["backend"] == "tlc"}
    summary = {"gpu": torch.cuda.get_device_name(0),
               "tlc_correct": f"{sum(bool(r.get('check', {}).get('ok')) for r in tlc.values())}"
                              f"/{len(tlc)}"}
    for peer in ("fa3", "sdpa-flash-padded"):
        ratios = [tlc[key]["tflops"] / r["tflops"] for r in rows if r["backend"] == peer
                  and r["tflops"] and (key := tuple(sorted((k, v) for k, v in r.items()
                                                           if k in CASES[0]))) in tlc
                  and tlc[key]["tflops"]]
        if ratios:
            summary[f"tlc_vs_{peer}"] = [round(x, 3) for x in ratios]
    with open(args.json, "w") as out:
        json.dump({"summary": summary, "rows": rows}, out, indent=1)
    for row in rows:
        print(f"{row['sequences']:>3} seqs {row['low']}-{row['high']} {row['heads']}/"
              f"{row['kv_heads']} {row['backend']:>18}: "
              + (f"{row['ms']} ms {row['tflops']} TFLOP/s" if row["ms"] else row.get("error")))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
