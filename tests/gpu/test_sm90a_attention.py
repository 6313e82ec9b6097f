"""sm_90a plans (wgmma, TMA by a producer warpgroup, mbarrier rings) on the H200 against the
float64 reference: tlc.runtime.check_random (fresh normal inputs, the output poisoned, every
(batch, head) compared by the peers' tolerance rule). Skipped on GPUs other than Hopper."""
from pathlib import Path

import pytest

from tlc.runtime import check_random, load
from tlc.templates import plan

ROOT = Path(__file__).parent.parent.parent
EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*_sm90a.tl"))
# (Nq, Nk): one tile, partial tiles both ways, more queries than keys (rows that see no key
# under causal), one query row, fewer keys than a tile, a long loop (many ring turns).
SHAPES = [(128, 128), (113, 203), (203, 113), (1, 517), (70, 5), (257, 2100)]


@pytest.fixture
def hopper(gpu):
    _, arch = gpu
    if arch != "sm_90":
        pytest.skip(f"the GPU is {arch}; sm_90a code runs on Hopper (sm_90) only")


def _sizes(kernel, nq: int, nk: int, batch: int = 2, kv_heads: int = 2) -> dict:
    group = next((p.value for p in kernel.kernel.params if p.name == "GROUP"), 1)
    return {"B": batch, "H": kv_heads * group, "Hkv": kv_heads, "Nq": nq, "Nk": nk}


def _check(kernel, label, shapes=SHAPES, batch=2):
    for nq, nk in shapes:
        verdict = check_random(kernel, _sizes(kernel, nq, nk, batch), seed=nq + 7 * nk,
                               whole=True)
        assert verdict.ok, (label, nq, nk, verdict.problems)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example(hopper, name, tmp_path):
    text = (ROOT / "examples" / f"{name}.tl").read_text()
    _check(load(text, cache_dir=tmp_path), name)


CASES = {  # (dtype, D, causal, group, variant)
    "fp16 d64": ("fp16", 64, False, 1, {}),
    "bf16 d128 causal gqa": ("bf16", 128, True, 4, {}),
    "fp16 d128 window": ("fp16", 128, False, 1, dict(window=(100, 20))),
    "bf16 d64 alibi causal": ("bf16", 64, True, 2, dict(alibi=True)),
    "fp16 d256 softcap causal": ("fp16", 256, True, 1, dict(softcap=30.0)),
    "fp16 d128 everything": ("fp16", 128, True, 2, dict(window=(77, 0), softcap=20.0,
                                                        alibi=True)),
    # head dims that end inside a 64-column panel: the copy engine's zeros fill the rest
    "bf16 d72 causal gqa": ("bf16", 72, True, 4, {}),
    "fp16 d96": ("fp16", 96, False, 1, {}),
    "fp16 d40 causal": ("fp16", 40, True, 1, {}),
    "bf16 d32 window": ("bf16", 32, False, 2, dict(window=(50, 10))),
    # a head dim split into column chunks, the TMA ring going on across them
    "bf16 d512 causal gqa": ("bf16", 512, True, 4, {}),
}


@pytest.mark.parametrize("case", CASES)
def test_template(hopper, case, tmp_path):
    dtype, d, causal, group, variant = CASES[case]
    _check(load(plan(dtype, d, causal, group, arch="sm_90a", **variant), cache_dir=tmp_path),
           case)


def test_runs_only_on_hopper_is_said(gpu, tmp_path):
    _, arch = gpu
    if arch == "sm_90":
        pytest.skip("this GPU is Hopper")
    from tlc.runtime import ArgumentError

    with pytest.raises(ArgumentError, match="runs on sm_90 GPUs only"):
        load((ROOT / "examples" / f"{EXAMPLES[0]}.tl").read_text(), cache_dir=tmp_path)


def test_a_repeated_copy_of_q(hopper, tmp_path):
    """Drawn plan 14 of seed 2026 (benchmarks/drawn_gpu.py): Q copied twice once killed the
    context, the second TMA copy landing after the block had exited."""
    copy = "Copy Q (BM, D) in coordinate [B = b, H = h, Nq = m] from global to shared\n"
    text = (ROOT / "examples" / "softcap_fwd_bf16_d256_sm90a.tl").read_text()
    _check(load(text.replace(copy, copy * 2), cache_dir=tmp_path), "Q copied twice",
           shapes=[(272, 272), (1, 5)])
