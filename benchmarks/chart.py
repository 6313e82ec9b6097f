"""The chart of an attention benchmark run: TFLOP/s against sequence length, one line per
backend (solid MHA, dashed GQA 4:1), one panel per (dtype, head dim, causal), the layout of
the QiMeng-Attention paper's figure. Needs matplotlib (not a dependency of tlc itself).

    python3 benchmarks/chart.py benchmarks/results/h100-attention.json [-o chart.png]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

COLORS = {"tlc": "#d62728", "sdpa-flash": "#1f77b4", "sdpa-cudnn": "#2ca02c",
          "sdpa-efficient": "#9467bd", "flex": "#ff7f0e"}


def draw(rows: list[dict], path: str, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["dtype"], r["head_dim"], r["causal"]) for r in rows})
    backends = [b for b in COLORS if any(r["backend"] == b for r in rows)]
    columns = min(4, len(panels))
    lines = -(-len(panels) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 3.4 * lines),
                                squeeze=False, sharey=True)
    for ax, (dtype, d, causal) in zip(axes.flat, panels):
        for backend in backends:
            for gqa, style in ((False, "-"), (True, "--")):
                points = sorted((r["seqlen"], r["tflops"]) for r in rows
                                if r["backend"] == backend and r["dtype"] == dtype and
                                r["head_dim"] == d and r["causal"] == causal and
                                (r["kv_heads"] != r["heads"]) == gqa and r.get("tflops"))
                if points:
                    ax.plot([p[0] for p in points], [p[1] for p in points], style, marker="o",
                            markersize=3, color=COLORS[backend],
                            label=f"{backend}{' GQA' if gqa else ''}")
        ax.set_xscale("log", base=2)
        ax.set_title(f"{dtype}, D={d}, {'causal' if causal else 'full'}", fontsize=10)
        ax.set_xlabel("sequence length")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("TFLOP/s")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.08, 1, 0.96))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="rows written by benchmarks/attention.py")
    parser.add_argument("-o", "--output", default=None, help="PNG path (default: beside JSON)")
    args = parser.parse_args()
    with open(args.json) as handle:
        rows = json.load(handle)
    gpus = sorted({r["gpu"] for r in rows if r.get("gpu")})
    path = args.output or os.path.splitext(args.json)[0] + ".png"
    draw(rows, path, title=f"Attention forward on {', '.join(gpus)}" if gpus else "")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
