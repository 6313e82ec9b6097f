#!/usr/bin/env bash
# Issue 15's GPU evidence: accepted drawn plans correct against the reference, and clean under
# compute-sanitizer. Usage: bash benchmarks/gpu_drawn.sh [correct+memcheck | racecheck]
# Logs and JSON go to $OUT (default ./out), named for $GPU (default h200).
set -u
OUT=${OUT:-out}
GPU=${GPU:-h200}
COUNT=${COUNT:-120}
SAN=${SAN:-/usr/local/cuda/bin/compute-sanitizer}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
mode=${1:-correct+memcheck}
if [ "$mode" = "correct+memcheck" ]; then
    python3 benchmarks/drawn_gpu.py --count "$COUNT" --json "$OUT/$GPU-drawn-plans.json" \
        > "$OUT/$GPU-drawn-plans.log" 2>&1
    tail -4 "$OUT/$GPU-drawn-plans.log"
    tools=${TOOLS:-memcheck}
else
    tools="racecheck"
fi
for tool in $tools; do
    log="$OUT/$GPU-drawn-plans-$tool.log"
    echo "# $SAN --tool $tool --error-exitcode 9 python3 benchmarks/drawn_gpu.py --count $COUNT --sizes small" > "$log"
    $SAN --tool $tool --error-exitcode 9 python3 benchmarks/drawn_gpu.py --count "$COUNT" \
        --sizes small --json "$OUT/$GPU-drawn-plans-$tool.json" >> "$log" 2>&1
    echo "$tool exit $?: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|hazard' "$log" | tail -1)"
    tail -1 "$log"
done
