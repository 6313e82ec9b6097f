#!/usr/bin/env bash
# The lowering's GPU evidence in one run on the GPU present: the GPU test suite, the
# correctness matrices of sm_80 plans (built natively for the GPU) and sm_75 plans (PTX for
# compute_75, JIT-compiled by the driver), and the variant matrix of both. The generated CUDA
# of every example is recorded by hash in the test log, so the evidence names the code it ran.
# STEP=tests runs the test suite alone. Logs go to $OUT (default ./out); a short table is
# printed last.
set -u
OUT=${OUT:-out}
GPU=${GPU:-h200}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
{
    echo "# python3 -m pytest -q -m gpu tests   ($(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader))"
    python3 - <<'PY'
import hashlib
from pathlib import Path
for path in sorted(Path("tests/golden").glob("sm_*/*.cu")):
    print("# golden", hashlib.sha256(path.read_bytes()).hexdigest()[:16], path)
PY
    python3 -m pytest -q -m gpu tests 2>&1 | tail -15
} > "$OUT/$GPU-gpu-tests.log"
if [ "${STEP:-all}" = tests ]; then  # STEP=tests: the test suite only
    tail -1 "$OUT/$GPU-gpu-tests.log"
    exit 0
fi
for arch in sm_80 sm_75; do
    suffix=$([ $arch = sm_80 ] && echo "" || echo "-$arch")
    python3 benchmarks/correctness.py --arch $arch --json "$OUT/$GPU-correctness$suffix.json" \
        > "$OUT/$GPU-correctness$suffix.log" 2>&1
done
python3 benchmarks/variants.py --skip-benchmark > "$OUT/$GPU-variants-correctness.log" 2>&1
mv "$OUT/variants-correctness.json" "$OUT/$GPU-variants-correctness.json"
echo "== summary =="
tail -1 "$OUT/$GPU-gpu-tests.log"
for log in "$OUT/$GPU-correctness.log" "$OUT/$GPU-correctness-sm_75.log" \
           "$OUT/$GPU-variants-correctness.log"; do
    grep -E "correctness: " "$log" | tail -1
done
