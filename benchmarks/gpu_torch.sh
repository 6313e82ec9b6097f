#!/usr/bin/env bash
# tlc.torch's GPU evidence in one run: benchmarks/torch_op.py (correctness, torch.compile,
# CUDA graphs, host overhead), then, where .baseline/ holds an older tree, what runtime
# strides cost against it (benchmarks/stride_cost.py). QUICK=1 runs a quarter of the matrix.
# Logs and JSON go to $OUT (default ./out); the short tables are printed last.
set -u
OUT=${OUT:-out}
GPU=${GPU:-h200}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 benchmarks/torch_op.py ${QUICK:+--quick} --json "$OUT/$GPU-torch.json" \
    > "$OUT/$GPU-torch.log" 2>&1
if [ -d .baseline ]; then
    python3 benchmarks/stride_cost.py --json "$OUT/stride-new.json" > "$OUT/$GPU-strides.log" 2>&1
    PYTHONPATH=.baseline:${PYTHONPATH:-} python3 benchmarks/stride_cost.py \
        --json "$OUT/stride-old.json" >> "$OUT/$GPU-strides.log" 2>&1
    python3 benchmarks/stride_cost.py --compare "$OUT/stride-old.json" "$OUT/stride-new.json" \
        >> "$OUT/$GPU-strides.log" 2>&1
    tail -8 "$OUT/$GPU-strides.log"
fi
tail -32 "$OUT/$GPU-torch.log"
