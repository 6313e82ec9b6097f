"""Split-KV plans (`for n = ... with splits N`) on the GPU present against the float64
reference: the parts and their merge give O by the peers' rule and the row log-sum-exp L by
reference.compare_lse, outputs poisoned first. Split counts 2, 3, 16 and 64 with key counts
that leave some splits empty (Nk below N key tiles) or are one key long; decoding shapes
(one query row, GQA 4:1) and prefill ones (causal rows that see no key). sm_80 plans
natively, sm_75 plans as compute_75 PTX, sm_90a plans (TMA and wgmma) on Hopper only.

`prebuild()` builds every plan here in parallel (nvcc is a subprocess), into the default
build cache that load() then finds: benchmarks/gpu_decode.sh calls it before pytest."""
import concurrent.futures
import os

import pytest

from tlc.runtime import check_random, load
from tlc.templates import plan

# (Nq, Nk): decoding against short and long caches, a cache of one key, prefill shapes.
SHAPES = [(1, 1), (1, 77), (1, 1000), (1, 4097), (3, 515), (113, 203), (203, 113)]
SPLITS = [2, 3, 16, 64]
ARCHS = ["sm_80", "sm_75", "sm_90a"]
VARIANTS = {"window": dict(window=(100, 0)), "softcap": dict(softcap=30.0),
            "alibi": dict(alibi=True)}


def split_plan(arch, splits, causal):
    dtype = "fp16" if arch == "sm_75" else "bf16"
    return plan(dtype, 128, causal, group=4, arch=arch, lse=True, splits=splits, decode=True)


def variant_plan(name, arch="sm_80"):
    return plan("fp16", 64, True, group=1, arch=arch, splits=8, decode=True, **VARIANTS[name])


def _runs(arch: str, present: str) -> bool:
    """Whether plans for `arch` run on the GPU present (sm_90a's only on Hopper)."""
    from tlc.arch import ARCHS

    return ARCHS[arch].runs_only_on in (None, present)


def prebuild() -> None:
    from tlc.driver import build_for, check, lowered_of
    from tlc.runtime import device_arch

    present = device_arch()
    archs = [arch for arch in ARCHS if _runs(arch, present)]
    jobs = [(split_plan(arch, s, c), arch) for arch in archs for s in SPLITS
            for c in (False, True)] + [(variant_plan(v, arch), arch) for v in VARIANTS
                                       for arch in archs if arch != "sm_75"]

    def build(job):
        text, arch = job
        lowered = lowered_of(check(text, arch=arch))
        ptx = arch == "sm_75"
        build_for(lowered, present if arch == "sm_80" else arch,
                  output="ptx" if ptx else "cubin")

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 4) as pool:
        list(pool.map(build, jobs))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("splits", SPLITS)
@pytest.mark.parametrize("causal", [False, True])
def test_split_key_loops_merge_to_the_reference(gpu, arch, splits, causal):
    if not _runs(arch, gpu[1]):
        pytest.skip(f"the GPU is {gpu[1]}; sm_90a code runs on Hopper (sm_90) only")
    text = split_plan(arch, splits, causal)
    assert f"param SPLITS = {splits}" in text
    kernel = load(text, from_ptx=arch == "sm_75")
    assert len(kernel.kernels) == 2
    for nq, nk in SHAPES:
        verdict = check_random(kernel, {"B": 2, "H": 8, "Hkv": 2, "Nq": nq, "Nk": nk},
                               whole=True)
        assert verdict.ok, (nq, nk, verdict.problems)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_split_variants_match_the_reference(gpu, name, arch):
    if not _runs(arch, gpu[1]):
        pytest.skip(f"the GPU is {gpu[1]}; sm_90a code runs on Hopper (sm_90) only")
    kernel = load(variant_plan(name, arch))
    for nq, nk in [(1, 999), (64, 700), (5, 5)]:
        verdict = check_random(kernel, {"B": 1, "H": 4, "Hkv": 4, "Nq": nq, "Nk": nk},
                               whole=True)
        assert verdict.ok, (nq, nk, verdict.problems)
