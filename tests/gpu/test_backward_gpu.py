"""Backward plans (docs/language.md §5.9, tlc/backward_plans.py) on the GPU present: dQ, dK
and dV against the float64 gradients by the peers' rule for gradients (tlc/backward.py), dK
and dV poisoned before the launch and dQ zeroed (it is added into). MHA and GQA 4:1, causal
(its loop starts at the first query tile that sees the key tile), a window, a softcap with its
derivative, ALiBi; Nq != Nk both ways, rows that see no key, one query row, lengths that end
inside a tile. sm_80 plans natively (fp16 and bf16), sm_75 plans (fp16) as compute_75 PTX.
Each case as the one-kernel plan (dQ by atomics) and as the deterministic mode's two plans
(dK and dV; dQ summed per query tile); D = 128, 192 and 256 (the last as the two plans only).

`prebuild()` builds every plan here in parallel, into the build cache load() then finds."""
import concurrent.futures
import os

import pytest

from tlc.backward_plans import backward_plan
from tlc.runtime import check_random, load

# (Nq, Nk): equal, more keys, more queries (causal rows that see no key), one query row
SHAPES = [(128, 128), (113, 203), (203, 113), (1, 517), (64, 1)]
CASES = {"mha": dict(dtype="fp16"), "mha-bf16": dict(dtype="bf16"),
         "gqa-causal": dict(dtype="bf16", causal=True, group=4),
         "mha-causal": dict(dtype="fp16", causal=True),
         "gqa-window": dict(dtype="fp16", group=4, window=(40, 8)),
         "mha-softcap": dict(dtype="fp16", softcap=2.0),
         "gqa-causal-alibi": dict(dtype="fp16", causal=True, group=4, alibi=True)}
ARCHS = ("sm_80", "sm_75")


PARTS = ("all", "dkdv", "dq")


# wide heads on sm_80: D = 128 and 192 as one kernel (8 warps: 128 x 64 on (4, 2), 64 x 64 on
# (4, 2)) and as the two plans; D = 256 only as the two (dQ does not fit beside dK and dV)
WIDE = ("mha", "gqa-causal", "gqa-window")
WIDE_PARTS = [(128, "all"), (128, "dkdv"), (128, "dq"), (192, "all"), (256, "dkdv"),
              (256, "dq")]


def case_plan(name: str, arch: str, part: str = "all", d: int = 64) -> str:
    options = dict(CASES[name])
    if arch == "sm_75":  # Turing's tensor cores take fp16
        options["dtype"] = "fp16"
    return backward_plan(options.pop("dtype"), d, arch=arch, part=part, **options)


def prebuild() -> None:
    from tlc.driver import build_for, check, lowered_of
    from tlc.runtime import device_arch

    present = device_arch()

    def build(job):
        name, arch, part, *d = job
        lowered = lowered_of(check(case_plan(name, arch, part, *d), arch=arch))
        ptx = arch == "sm_75"
        build_for(lowered, arch if ptx else present, output="ptx" if ptx else "cubin")

    def build_split(job):
        lowered = lowered_of(check(split_plan(*job), arch="sm_80"))
        build_for(lowered, present, output="cubin")

    jobs = [(name, arch, part) for name in CASES for arch in ARCHS for part in PARTS]
    jobs += [(name, "sm_80", part, d) for name in WIDE for d, part in WIDE_PARTS]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 4) as pool:
        list(pool.map(build, jobs))
        list(pool.map(build_split, SPLIT_JOBS))


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", list(CASES))
def test_the_gradients_match_the_reference(gpu, arch, name, part):
    kernel = load(case_plan(name, arch, part), from_ptx=arch == "sm_75")
    group = CASES[name].get("group", 1)
    for nq, nk in SHAPES:
        verdict = check_random(kernel, {"B": 2, "H": 2 * group, "Hkv": 2, "Nq": nq, "Nk": nk},
                               seed=nq + nk)
        assert verdict.ok, (nq, nk, verdict.problems)


@pytest.mark.parametrize("d, part", WIDE_PARTS)
@pytest.mark.parametrize("name", WIDE)
def test_wide_head_dims_gradients(gpu, name, d, part):
    kernel = load(case_plan(name, "sm_80", part, d))
    group = CASES[name].get("group", 1)
    for nq, nk in SHAPES:
        verdict = check_random(kernel, {"B": 1, "H": 2 * group, "Hkv": 2, "Nq": nq, "Nk": nk},
                               seed=nq + nk)
        assert verdict.ok, (nq, nk, verdict.problems)


# GEMM columns split over warps (sm_80's gemm.splits_columns): (D, BM, BN, WARPS, WARPS_N)
# that the checker accepts, each as the one-kernel plan and as the deterministic mode's dK
# and dV plan (its dQ plan keeps whole rows in a warp: the checker refuses the split there)
SPLIT_LAYOUTS = [(64, 64, 64, 2, 2), (64, 64, 64, 4, 2), (64, 64, 128, 4, 2),
                 (128, 64, 64, 4, 2), (128, 64, 64, 2, 4), (128, 128, 64, 4, 2),
                 (128, 64, 32, 2, 2)]
SPLIT_CASES = ("mha", "gqa-causal", "gqa-window", "mha-softcap", "gqa-causal-alibi")
SPLIT_JOBS = [(name, layout, part) for name in SPLIT_CASES for layout in SPLIT_LAYOUTS
              for part in ("all", "dkdv")]


def split_plan(name: str, layout: tuple, part: str) -> str:
    options = dict(CASES[name])
    d, bm, bn, warps, warps_n = layout
    return backward_plan(options.pop("dtype"), d, arch="sm_80", part=part,
                         tiles=[(bm, bn, warps, warps_n)], **options)


@pytest.mark.parametrize("name, layout, part", SPLIT_JOBS,
                         ids=["{}-d{}-{}x{}-{}x{}-{}".format(n, *lay, p)
                              for n, lay, p in SPLIT_JOBS])
def test_the_gradients_with_columns_split_over_warps(gpu, name, layout, part):
    text = split_plan(name, layout, part)
    assert "param WARPS_N" in text
    kernel = load(text)
    group = CASES[name].get("group", 1)
    for nq, nk in SHAPES:
        verdict = check_random(kernel, {"B": 1, "H": 2 * group, "Hkv": 2, "Nq": nq, "Nk": nk},
                               seed=nq + nk + 7)
        assert verdict.ok, (nq, nk, verdict.problems)
