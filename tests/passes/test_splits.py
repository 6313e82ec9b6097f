"""`for n = ... with splits N` (split-KV): the checker's rules for a split key loop, the
formatter keeping the clause, the tuner's view of SPLITS, and the lowering: a main kernel
whose grid is N times the plan's, a combine kernel, fp32 workspaces as launch arguments, and
both built with 0 spills."""
import json

import pytest

from tlc.build import find_nvcc
from tlc.driver import build_for, check, lowered_of
from tlc.passes.facts import Facts
from tlc.templates import DECODE_TILES, plan

SPLIT = "with splits SPLITS"


def split_plan(splits=8, **options):
    options.setdefault("tiles", DECODE_TILES)
    return plan("fp16", 128, group=4, splits=splits, **options)


def errors(text, arch="sm_80"):
    return [(d.code, d.message) for d in check(text, arch=arch).diagnostics if d.is_error]


def test_a_split_plan_checks_and_states_its_split():
    text = split_plan(lse=True)
    assert SPLIT in text and "param SPLITS = 8" in text
    result = check(text)
    assert result.ok, errors(text)
    assert "SPLITS" in Facts(result.kernel).tunable_params()


@pytest.mark.parametrize("count, words", [("0", "from 1 to 256, not 0"),
                                          ("Nk", "compile-time count"),
                                          ("257", "not 257")])
def test_a_split_count_outside_1_to_256_is_refused(count, words):
    text = split_plan().replace("with splits SPLITS", f"with splits {count}")
    found = errors(text)
    assert [c for c, _ in found] == ["bad-split"] and words in found[0][1], found


def test_a_split_of_an_inner_loop_is_refused():
    text = plan("fp16", 512, chunk=128, bm=64, bn=32, warps=4)  # the column-chunk loop nests it
    if "for c = " not in text:
        pytest.skip("the template found a tiling without column chunks")
    text = text.replace("for n = 0: cdiv(Nk, BN)", "for n = 0: cdiv(Nk, BN) with splits 4")
    found = errors(text)
    assert ("bad-split" in [c for c, _ in found]) and "inside another loop" in found[0][1]


def test_a_split_loop_without_an_online_softmax_is_refused():
    text = split_plan().replace("for n = 0: cdiv(Nk, BN) with splits SPLITS",
                                "for n = 0: cdiv(Nk, BN)")
    text = text.replace("Copy Q (BM, D) in coordinate",
                        "for z = 0: 2 with splits SPLITS\nend\nCopy Q (BM, D) in coordinate")
    assert "bad-split" in [c for c, _ in errors(text)]


def test_two_split_loops_are_refused():
    text = split_plan().replace("Copy Q (BM, D) in coordinate",
                                "for z = 0: 2 with splits 2\nend\nCopy Q (BM, D) in coordinate")
    assert "bad-split" in [c for c, _ in errors(text)]


def test_splits_that_leave_a_split_empty_are_refused_where_the_count_is_known():
    text = split_plan(splits=8).replace("for n = 0: cdiv(Nk, BN)", "for n = 0: 4")
    found = [m for c, m in errors(text) if c == "bad-split"]
    assert found and "8 splits of 4 iteration(s) leave 4 split(s) empty" in found[0]


def test_a_split_plan_round_trips_through_fmt():
    from tlc.api import format_plan

    text = split_plan()
    formatted, problems = format_plan(text)
    assert formatted == text and not problems


def test_the_schedule_says_how_the_loop_is_split():
    from tlc.backends import target_for
    from tlc.backends.lower import schedule

    result = check(split_plan(splits=16))
    text = schedule(result.kernel, target_for("sm_80")).text()
    assert "loop n: split 16 ways; the parts of O merge in a second kernel" in text


@pytest.mark.parametrize("arch", ["sm_80", "sm_75"])
def test_a_split_plan_lowers_to_a_kernel_and_its_combine(arch):
    text = split_plan(splits=16, lse=True, arch=arch)
    lowered = lowered_of(check(text, arch=arch))
    main, combine = lowered.kernels
    assert combine.name == main.name + "_combine"
    workspaces = [a for a in main.arguments if a.kind == "workspace"]
    assert [(a.name, [str(d) for d in a.to_json()["shape"]]) for a in workspaces] == [
        ("O_part", ["16", "B", "H", "Nq", "D"]), ("O_part_lse", ["16", "B", "H", "Nq"])]
    # pointers first: the launchers pack tensors and workspaces before the values
    kinds = [a.kind for a in main.arguments]
    assert kinds.index("workspace") < kinds.index("scalar")
    assert [a.kind for a in combine.arguments][:4] == ["workspace", "workspace", "tensor",
                                                       "tensor"]
    assert main.grid[0] == "(tlc::cdiv(p_Nq, p_BM) * 16)"
    assert "tlc_split = blockIdx.x % 16" in main.source
    assert "Copy L to global: the combine kernel writes it" in main.source
    json.dumps([k.manifest() for k in lowered.kernels])  # the manifest takes the shapes


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_75"])
@pytest.mark.parametrize("splits", [2, 64])
def test_split_plans_build_with_no_spills(arch, splits, tmp_path):
    text = split_plan(splits=splits, lse=True, causal=True, arch=arch)
    lowered = lowered_of(check(text, arch=arch))
    built = build_for(lowered, arch, output="cubin", cache_dir=tmp_path)
    for kernel in lowered.kernels:
        report = built.function(kernel.name)
        assert report.name == kernel.name
        assert report.spill_stores == 0 and report.spill_loads == 0, (kernel.name, report)


def test_one_warp_with_wide_key_tiles_is_refused_before_it_spills():
    """Found building the decode tiles: BM 16, BN 128, one warp, D = 128 issues 128 cp.async
    copies a thread an iteration, and ptxas spilled it (12 bytes) at an estimate of 199."""
    from tlc.templates import Options, render

    text = render(Options("bf16", 128, group=4, bm=16, bn=128, warps=1, splits=8, lse=True))
    found = errors(text)
    assert [c for c, _ in found] == ["register-budget"], found


def test_the_report_states_the_split():
    from tlc.report import resources_text

    text = resources_text(check(split_plan(splits=16)))
    assert "key split       the loop on n runs in 16 parts, a block each" in text
