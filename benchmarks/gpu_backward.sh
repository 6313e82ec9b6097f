#!/usr/bin/env bash
# The backward pass's GPU evidence in one run: the gradient tests (tests/gpu/test_backward_gpu.py,
# built in parallel first), tlc.torch's autograd tests (tests/gpu/test_torch_backward_gpu.py and
# test_torch_gpu.py), then benchmarks/backward.py (tlc against SDPA's backward kernels).
# STEP=tests, STEP=torch or STEP=bench runs a part; QUICK=1 times a small grid (D = 64, N = 1k
# and 4k), ARCH=sm_90 the grid's plans for sm_90; STEP=ablation runs
# benchmarks/backward_ablation.py, STEP=profile Nsight Compute on one call of tlc and SDPA
# flash (benchmarks/profile_backward.py), STEP=warps
# benchmarks/backward_warps.py (GEMM columns split over warps), STEP=order the backward's tile
# order against (4, 1) first in the same run; STEP=ab TREES="before=DIR ..." times
# benchmarks/backward.py (AB_ARGS, default tlc and SDPA flash, fp16, N 4k and 16k) with the tlc
# of each DIR (a `git archive <commit> tlc grammar passes backends` unpacked there), then with
# this tree's ("after"), one after another on the same machine.
# Logs and JSON go to $OUT (default ./out); the short tables are printed last.
set -u
OUT=${OUT:-out}
GPU=${GPU:-h200}
STEP=${STEP:-all}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
status=0
if [ "$STEP" = all ] || [ "$STEP" = tests ]; then
    {
        echo "# python3 -m pytest -q tests/gpu/test_backward_gpu.py   ($(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader))"
        # the backward examples' CUDA by hash: the code these tests ran (tests/test_results.py)
        python3 - <<'PY'
import hashlib
from pathlib import Path
for path in sorted(Path("tests/golden").glob("sm_*/*_bwd_*.cu")):
    print("# golden", hashlib.sha256(path.read_bytes()).hexdigest()[:16], path)
PY
        python3 -c "import runpy; runpy.run_path('tests/gpu/test_backward_gpu.py')['prebuild']()" 2>&1
    } > "$OUT/$GPU-backward-tests.log"
    python3 -m pytest -q -p no:cacheprovider tests/gpu/test_backward_gpu.py \
        >> "$OUT/$GPU-backward-tests.log" 2>&1 || status=1
    tail -15 "$OUT/$GPU-backward-tests.log"
fi
if [ "$STEP" = all ] || [ "$STEP" = torch ]; then
    echo "# python3 -m pytest -q tests/gpu/test_torch_backward_gpu.py tests/gpu/test_torch_gpu.py   ($(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader))" \
        > "$OUT/$GPU-torch-backward-tests.log"
    python3 -m pytest -q -p no:cacheprovider tests/gpu/test_torch_backward_gpu.py \
        tests/gpu/test_torch_gpu.py >> "$OUT/$GPU-torch-backward-tests.log" 2>&1 || status=1
    tail -15 "$OUT/$GPU-torch-backward-tests.log"
fi
if [ "$STEP" = ablation ]; then
    python3 benchmarks/backward_ablation.py --json "$OUT/$GPU-backward-ablation.json" \
        > "$OUT/$GPU-backward-ablation.log" 2>&1 || status=1
    tail -45 "$OUT/$GPU-backward-ablation.log"
fi
if [ "$STEP" = warps ]; then
    # WARPS_ARGS (e.g. "--dims 64 --layouts 128x64/4x2" and WARPS_TAG=-d64) for a narrower run
    python3 benchmarks/backward_warps.py --json "$OUT/$GPU-backward-warps${WARPS_TAG:-}.json" \
        ${WARPS_ARGS:-} > "$OUT/$GPU-backward-warps${WARPS_TAG:-}.log" 2>&1 || status=1
    tail -50 "$OUT/$GPU-backward-warps${WARPS_TAG:-}.log"
fi
if [ "$STEP" = ab ]; then
    args=${AB_ARGS:---backends tlc,sdpa-flash --dtypes fp16 --seqs 4096,16384}
    sides="${TREES:?STEP=ab needs TREES=\"name=DIR ...\"} after=$(pwd)"
    for side in $sides; do
        name=${side%%=*} root=${side#*=}
        echo "# $name: tlc from $root ($(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader))" \
            > "$OUT/$GPU-backward-ab-$name.log"
        PYTHONPATH="$root:${PYTHONPATH:-}" python3 benchmarks/backward.py $args \
            --json "$OUT/$GPU-backward-ab-$name.json" >> "$OUT/$GPU-backward-ab-$name.log" 2>&1 || status=1
    done
    for side in $sides; do echo "## ${side%%=*}"; grep -v '^{' "$OUT/$GPU-backward-ab-${side%%=*}.log" | tail -14; done
fi
if [ "$STEP" = order ]; then
    # the tile order in the same run: TILES as they stand, then with 64 x 64 on warps (4, 1)
    # (rows only) put first; fp16, D = 64, tlc and SDPA flash
    for order in as-is rows-first; do
        GPU=$GPU OUT=$OUT ORDER=$order python3 - <<'PY' >> "$OUT/$GPU-backward-order.log" 2>&1 || status=1
import os, runpy, sys
import tlc.backward_plans as plans
order = os.environ["ORDER"]
if order == "rows-first":
    plans.TILES = ((64, 64, 4, 1),) + plans.TILES
print(f"# TILES {order}: {plans.TILES}")
sys.argv = ["backward.py", "--backends", "tlc,sdpa-flash", "--dims", "64", "--dtypes", "fp16",
            "--json", os.path.join(os.environ["OUT"], f"{os.environ['GPU']}-backward-order-{order}.json")]
runpy.run_path("benchmarks/backward.py", run_name="__main__")  # exits with its status
PY
    done
    grep -v '^{' "$OUT/$GPU-backward-order.log" | tail -40
fi
if [ "$STEP" = profile ]; then
    # Nsight Compute on one backward call of tlc and of SDPA flash (PROFILE_ARGS for
    # benchmarks/profile_backward.py): the kernels' details page, then tlc's per-instruction
    # stall samples (SASS) as CSV
    rep="$OUT/$GPU-backward-profile"
    ncu --clock-control none --set full --import-source no -k regex:bwd -f -o "$rep" \
        python3 benchmarks/profile_backward.py ${PROFILE_ARGS:-} > "$rep.ncu.log" 2>&1 || status=1
    ncu -i "$rep.ncu-rep" --page details > "$rep.txt" 2>&1 || status=1
    ncu -i "$rep.ncu-rep" --page source --csv --print-source sass -k regex:mha_bwd \
        > "$rep-sass.csv" 2>&1 || true
    tail -5 "$rep.ncu.log"
    grep -E "^  [a-z_]+.*\(|Duration|Issue Slots Busy|Warp Cycles Per Issued|No Eligible|Registers Per|Achieved Occupancy|Compute \(SM\) Throughput|Memory Throughput|L2 Hit|Stall" "$rep.txt" | head -120
fi
if [ "$STEP" = all ] || [ "$STEP" = bench ]; then
    # ARCH=sm_90: the plans tlc.torch's backward takes on an H100 or H200 (sm_80's
    # instructions, Hopper's shared memory), logged as $GPU-backward-sm90.*
    tag=${ARCH:+-${ARCH//_/}}
    python3 benchmarks/backward.py ${QUICK:+--dims 64 --seqs 1024,4096} ${ARCH:+--arch $ARCH} \
        --json "$OUT/$GPU-backward$tag.json" > "$OUT/$GPU-backward$tag.log" 2>&1 || status=1
    tail -40 "$OUT/$GPU-backward$tag.log"
fi
exit $status
