#!/usr/bin/env bash
# The sm_90a (Hopper) lowering's GPU evidence in one run: the helper and attention tests on
# the GPU present (STEP=tests), then the attention grid for tlc sm_90a plans against PyTorch's
# SDPA backends, FlexAttention and FlashAttention-3 where its wheel loads (STEP=bench, with
# SEQS/DIMS/DTYPES to narrow it and NAME for its files), the correctness matrix
# (STEP=correctness) and the variant matrix (STEP=variants). Logs and JSON go to $OUT (default ./out); a short table last.
set -u
OUT=${OUT:-out}
GPU=${GPU:-h200}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
step=${STEP:-all}
if [ "$step" = all ] || [ "$step" = tests ]; then
    {
        echo "# python3 -m pytest -q tests/gpu/test_sm90a.py tests/gpu/test_sm90a_attention.py" \
             "  ($(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader))"
        python3 - <<'PY'
import hashlib
from pathlib import Path
for path in sorted(Path("tests/golden").glob("sm_90a/*.cu")):
    print("# golden", hashlib.sha256(path.read_bytes()).hexdigest()[:16], path)
PY
        python3 -m pytest -q -x tests/gpu/test_sm90a.py tests/gpu/test_sm90a_attention.py 2>&1 | tail -25
    } > "$OUT/$GPU-sm90a-tests.log"
    tail -25 "$OUT/$GPU-sm90a-tests.log"
fi
if [ "$step" = all ] || [ "$step" = bench ]; then
    python3 benchmarks/attention.py --arch sm_90a --no-tune \
        --backends "${BACKENDS:-tlc,sdpa-cudnn,sdpa-flash,flex,fa3}" \
        --dtypes "${DTYPES:-fp16,bf16}" --dims "${DIMS:-64,128}" --seqs "${SEQS:-1024,4096,16384}" \
        --json "$OUT/${NAME:-$GPU-attention-sm_90a}.json" > "$OUT/${NAME:-$GPU-attention-sm_90a}.log" 2>&1
    tail -40 "$OUT/${NAME:-$GPU-attention-sm_90a}.log"
fi
if [ "$step" = all ] || [ "$step" = correctness ]; then
    python3 benchmarks/correctness.py --arch sm_90a --json "$OUT/$GPU-correctness-sm_90a.json" \
        > "$OUT/$GPU-correctness-sm_90a.log" 2>&1
    grep -E "correctness: |FAILED" "$OUT/$GPU-correctness-sm_90a.log" | tail -5
fi
if [ "$step" = all ] || [ "$step" = variants ]; then  # window, softcap, ALiBi; wide head dims
    python3 benchmarks/variants.py --skip-benchmark --targets sm_90a \
        > "$OUT/$GPU-variants-correctness-sm_90a.log" 2>&1
    mv "$OUT/variants-correctness-sm_90a.json" "$OUT/$GPU-variants-correctness-sm_90a.json"
    grep -E "variants correctness: |FAILED" "$OUT/$GPU-variants-correctness-sm_90a.log" | tail -5
fi
if [ "$step" = sanitize ]; then  # memcheck, racecheck, synccheck on a few small cases
    for tool in memcheck racecheck synccheck; do
        timeout 200 compute-sanitizer --tool $tool --error-exitcode 9 python3 \
            benchmarks/correctness.py --arch sm_90a --quick --json "$OUT/sanitize-$tool.json" \
            > "$OUT/$GPU-sm90a-$tool.log" 2>&1
        echo "$tool: exit $? $(grep -E 'ERROR SUMMARY' "$OUT/$GPU-sm90a-$tool.log" | tail -1)"
    done
fi
if [ "$step" = drawn ]; then  # accepted sm_90a draws, run against the float64 reference
    # A draw that kills the CUDA context is named by the last "[i]" line; it is rerun alone
    # under compute-sanitizer memcheck and the run goes on without it (at most 4 times).
    skip=""
    for attempt in 1 2 3 4 5; do
        log="$OUT/$GPU-drawn-sm_90a.log"
        python3 benchmarks/drawn_gpu.py --arch sm_90a --count ${COUNT:-40} --skip "$skip" \
            --json "$OUT/$GPU-drawn-sm_90a.json" > "$log" 2>&1
        grep -q "drawn plans:" "$log" && break
        dead=$(grep -oE '^\[[0-9]+\]' "$log" | tail -1 | tr -d '[]')
        [ -n "$dead" ] || { tail -5 "$log"; break; }
        echo "draw $dead killed the context: $(grep -E "^\[$dead\]" "$log")"
        timeout 120 compute-sanitizer --tool memcheck python3 benchmarks/drawn_gpu.py --arch sm_90a \
            --count ${COUNT:-40} --only "$dead" --json "$OUT/dead-$dead.json" \
            > "$OUT/$GPU-drawn-dead-$dead.log" 2>&1
        grep -m 3 -A 6 "Invalid\|Error\|error" "$OUT/$GPU-drawn-dead-$dead.log" | head -12
        skip="$skip$dead,"
    done
    grep -E "drawn plans:|FAILED" "$OUT/$GPU-drawn-sm_90a.log" | tail -6
fi
if [ "$step" = memcheck ]; then  # one example under compute-sanitizer memcheck, small shapes
    timeout ${LIMIT:-60} compute-sanitizer --tool memcheck --error-exitcode 9 python3 -m pytest -q -x \
        "tests/gpu/test_sm90a_attention.py::test_example[mha_fwd_fp16_d128_sm90a]" \
        > "$OUT/$GPU-sm90a-memcheck.log" 2>&1
    echo "memcheck: exit $? $(grep -E 'ERROR SUMMARY|passed|failed' "$OUT/$GPU-sm90a-memcheck.log" | tail -2 | tr '\n' ' ')"
fi
