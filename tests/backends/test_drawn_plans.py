"""The checker's promise over plans drawn as a person or an LLM edits the examples
(tests/drawn_plans.py): no draw gives an internal error, every plan `tlc check --arch A`
accepts has its CUDA in hand (check ran the lowering), and the accepted plans build with nvcc
and ptxas with 0 bytes of spills. CI draws a fixed sample; TLC_DRAWN=N draws N plans and builds
every accepted one (`TLC_DRAWN=3000 python3 -m pytest -s -m slow tests/backends/test_drawn_plans.py`,
about ten minutes on two cores)."""
import os
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from drawn_plans import drawn
from tlc.api import check
from tlc.build import build, find_nvcc

SEED = 2026
CI_DRAWS, CI_BUILDS = 200, 24
BATCH = 24  # kernels per nvcc call: ptxas reports each entry on its own
needs_nvcc = pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not on this machine")


def accepted_plans(count: int, seed: int = SEED):
    """(draw, CheckResult) of each accepted draw; asserts the promise on every draw."""
    found = []
    for plan in drawn(seed, count):
        result = check(plan.text, arch=plan.arch)
        bugs = [d.message for d in result.diagnostics if d.code == "internal-error"]
        assert not bugs, (plan.example, plan.arch, plan.edits, bugs)
        if result.ok:
            assert result.lowered is not None, (plan.example, plan.edits)
            found.append((plan, result))
    return found


def build_together(results, arch: str, cache_dir) -> dict:
    """Build many kernels of one target in few nvcc calls: each kernel renamed apart, one
    translation unit per batch. kernel name -> (ptxas report, the draw)."""
    sources, names = [], {}
    for index, (plan, result) in enumerate(results):
        kernel = result.lowered.main
        name = f"{kernel.name}_{index}"
        sources.append(re.sub(rf"\b{re.escape(kernel.name)}\(", f"{name}(", kernel.source, 1))
        names[name] = plan
    batches = [sources[i:i + BATCH] for i in range(0, len(sources), BATCH)]

    def one(batch):
        return build("".join(batch), arch, cache_dir=cache_dir).functions

    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
        reports = [f for functions in pool.map(one, batches) for f in functions]
    return {r.name: (r, names[r.name]) for r in reports if r.name in names}


def assert_no_spills(results, cache_dir) -> int:
    built = 0
    for arch in sorted({r.arch for _, r in results}):
        mine = [(p, r) for p, r in results if r.arch == arch]
        reports = build_together(mine, arch, cache_dir)
        assert len(reports) == len(mine)
        spilled = [(p.example, p.edits, r.registers) for r, p in reports.values()
                   if r.spill_stores or r.spill_loads]
        assert spilled == []
        built += len(reports)
    return built


def test_no_draw_is_an_internal_error_and_every_accepted_one_is_lowered():
    found = accepted_plans(CI_DRAWS)
    assert len(found) > CI_DRAWS // 5  # the draws still reach plans worth checking
    assert {r.arch for _, r in found} == {"sm_75", "sm_80", "sm_90a"}


@needs_nvcc
def test_accepted_draws_build_without_spills(tmp_path):
    found = accepted_plans(CI_DRAWS)
    sample = found[::max(1, len(found) // CI_BUILDS)][:CI_BUILDS]
    assert assert_no_spills(sample, tmp_path) == len(sample)


@pytest.mark.slow
@needs_nvcc
@pytest.mark.skipif(not os.environ.get("TLC_DRAWN"), reason="set TLC_DRAWN=N to draw N plans")
def test_many_accepted_draws_build_without_spills(tmp_path):
    found = accepted_plans(int(os.environ["TLC_DRAWN"]))
    built = assert_no_spills(found, tmp_path)
    by_arch = {a: sum(r.arch == a for _, r in found) for a in ("sm_75", "sm_80", "sm_90a")}
    print(f"\ndrawn plans: seed {SEED}, {os.environ['TLC_DRAWN']} drawn, {len(found)} accepted "
          f"({by_arch}), {built} built, 0 spilled")
