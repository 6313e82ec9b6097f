#!/usr/bin/env bash
# Split-KV decoding's GPU evidence in one run: the split plans' correctness tests
# (tests/gpu/test_splits_gpu.py, built in parallel first), then benchmarks/decode.py (tlc
# against FA3 and SDPA, the copy roof, and with SWEEP=1 every split count). QUICK=1 runs a
# smaller grid; STEP=tests, STEP=varlen (benchmarks/varlen.py), STEP=tests+varlen,
# STEP=bench or STEP=tiles (benchmarks/decode_tiles.py for ARCH, default sm_90a; with
# STEP=tests+tiles after the tests) runs a part. Logs and JSON go to $OUT (default
# ./out); the short tables are printed last.
set -u
OUT=${OUT:-out}
GPU=${GPU:-h200}
STEP=${STEP:-all}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ "$STEP" = all ] || [ "$STEP" = tests ] || [ "$STEP" = tests+varlen ] || \
        [ "$STEP" = tests+tiles ]; then
    for tests in tests/gpu/test_splits_gpu.py tests/gpu/test_kvcache_gpu.py \
            tests/gpu/test_varlen_gpu.py; do
        python3 -c "import runpy; runpy.run_path('$tests')['prebuild']()"
    done > "$OUT/$GPU-splits-tests.log" 2>&1
    python3 -m pytest -q -p no:cacheprovider tests/gpu/test_splits_gpu.py \
        tests/gpu/test_kvcache_gpu.py tests/gpu/test_varlen_gpu.py \
        >> "$OUT/$GPU-splits-tests.log" 2>&1
    tail -5 "$OUT/$GPU-splits-tests.log"
fi
if [ "$STEP" = all ] || [ "$STEP" = varlen ] || [ "$STEP" = tests+varlen ]; then
    python3 benchmarks/varlen.py --json "$OUT/$GPU-varlen.json" > "$OUT/$GPU-varlen.log" 2>&1
    tail -20 "$OUT/$GPU-varlen.log"
fi
if [ "$STEP" = tiles ] || [ "$STEP" = tests+tiles ]; then
    ARCH=${ARCH:-sm_90a}
    python3 benchmarks/decode_tiles.py --arch "$ARCH" --json "$OUT/$GPU-decode-tiles-$ARCH.json" \
        > "$OUT/$GPU-decode-tiles-$ARCH.log" 2>&1
    tail -8 "$OUT/$GPU-decode-tiles-$ARCH.log"
fi
if [ "$STEP" = all ] || [ "$STEP" = bench ]; then
    python3 benchmarks/decode.py ${QUICK:+--quick} ${SWEEP:+--sweep} \
        --json "$OUT/$GPU-decode.json" > "$OUT/$GPU-decode.log" 2>&1
    tail -90 "$OUT/$GPU-decode.log"
fi
