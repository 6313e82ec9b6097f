"""Backward plans (docs/language.md §5.9, tlc/backward_plans.py) on the GPU present: dQ, dK
and dV against the float64 gradients by the peers' rule for gradients (tlc/backward.py), dK
and dV poisoned before the launch and dQ zeroed (it is added into). MHA and GQA 4:1, causal
(its loop starts at the first query tile that sees the key tile), a window, a softcap with its
derivative, ALiBi; Nq != Nk both ways, rows that see no key, one query row, lengths that end
inside a tile. sm_80 plans natively (fp16 and bf16), sm_75 plans (fp16) as compute_75 PTX.
Each case as the one-kernel plan (dQ by atomics) and as the deterministic mode's two plans
(dK and dV; dQ summed per query tile); D = 128 as the two plans, the only form it fits.

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


# D = 128 fits sm_80 only as the two plans (dQ does not fit in registers beside dK and dV)
WIDE = ("mha", "gqa-causal", "gqa-window")


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

    jobs = [(name, arch, part) for name in CASES for arch in ARCHS for part in PARTS]
    jobs += [(name, "sm_80", part, 128) for name in WIDE for part in ("dkdv", "dq")]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 4) as pool:
        list(pool.map(build, jobs))


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


@pytest.mark.parametrize("part", ["dkdv", "dq"])
@pytest.mark.parametrize("name", WIDE)
def test_d128_gradients_by_the_two_plans(gpu, name, part):
    kernel = load(case_plan(name, "sm_80", part, 128))
    group = CASES[name].get("group", 1)
    for nq, nk in SHAPES:
        verdict = check_random(kernel, {"B": 1, "H": 2 * group, "Hkv": 2, "Nq": nq, "Nk": nk},
                               seed=nq + nk)
        assert verdict.ok, (nq, nk, verdict.problems)
