#!/usr/bin/env bash
# The Turing (sm_75) backend's GPU evidence in one run on the GPU present, from PTX for
# compute_75: the GPU tests, the correctness matrix, the sanitizers on a small matrix, and the
# benchmark against SDPA (memory-efficient: what Turing users get today; flash for scale).
# Logs go to $OUT (default ./out); results quoted in docs/backend.md live in benchmarks/results/.
set -u
OUT=${OUT:-out}
mkdir -p "$OUT"
SAN=/usr/local/cuda/bin/compute-sanitizer
python3 -m pytest -q -m gpu tests 2>&1 | tail -15 > "$OUT/gpu-tests.log"
tail -3 "$OUT/gpu-tests.log"
python3 benchmarks/correctness.py --arch sm_75 --json "$OUT/correctness-sm_75.json" \
    > "$OUT/correctness-sm_75.log" 2>&1
tail -1 "$OUT/correctness-sm_75.log"
for tool in memcheck racecheck; do
    echo "# compute-sanitizer --tool $tool --error-exitcode 9 python3 benchmarks/correctness.py --arch sm_75 --quick" > "$OUT/sanitize-sm_75-$tool.log"
    $SAN --tool $tool --error-exitcode 9 python3 benchmarks/correctness.py --arch sm_75 --quick \
        --json "$OUT/sanitize-$tool.json" >> "$OUT/sanitize-sm_75-$tool.log" 2>&1
    echo "$tool exit $?: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|hazard' "$OUT/sanitize-sm_75-$tool.log" | tail -1)"
done
python3 benchmarks/attention.py --arch sm_75 --backends tlc,sdpa-efficient,sdpa-flash \
    --json "$OUT/attention-sm_75.json" > "$OUT/attention-sm_75.log" 2>&1
tail -22 "$OUT/attention-sm_75.log"
