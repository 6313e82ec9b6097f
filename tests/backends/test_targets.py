"""Targets are data; the driver checks with the lowering; sm_86/sm_89 lower with sm_80's
instruction sets and their own limits; sm_90a lowers with its own (wgmma, TMA), and an sm_80
plan is ported to it by `tlc fmt --fix`."""
import json
from pathlib import Path

import pytest

from tlc.api import check, fix_plan
from tlc.backends import TARGETS, target_for
from tlc.cli import main

ROOT = Path(__file__).resolve().parents[2]
MHA = (ROOT / "examples" / "mha_fwd_fp16_d128_sm80.tl").read_text()
GQA = (ROOT / "examples" / "gqa_causal_fwd_bf16_d64_sm80.tl").read_text()


def test_every_arch_has_a_target_and_every_target_an_arch():
    from tlc.arch import ARCHS

    assert set(TARGETS) == set(ARCHS)
    assert all(t.lowers for t in TARGETS.values())


def test_the_ampere_family_shares_instruction_sets_and_differs_in_limits():
    sm80, sm86, sm89 = (target_for(a) for a in ("sm_80", "sm_86", "sm_89"))
    assert sm86.gemm is sm80.gemm and sm89.copies is sm80.copies
    assert sm86.facts.smem_per_block < sm80.facts.smem_per_block


def test_a_plan_for_sm80_that_fits_sm86_lowers_for_it():
    result = check(GQA, arch="sm_86")
    assert result.ok and result.lowered.main.source.count("lowered by tlc for sm_86") == 1


def test_fmt_fix_ports_a_plan_to_sm89():
    assert not check(MHA, arch="sm_89").ok  # 104448 B of shared memory > 99 KB
    fixed, result = fix_plan(MHA, arch="sm_89")
    assert result.ok and result.lowered is not None
    assert "param STAGES = 1" in fixed


def test_an_sm80_plan_for_sm90a_is_told_the_warpgroup_shapes():
    result = check(MHA, arch="sm_90a")
    found = [(d.code, d.help) for d in result.diagnostics]
    assert found == [("arch-feature", "use `mma m64n32k16`"),
                     ("arch-feature", "use `mma m64n128k16`")], found
    assert "warpgroup MMAs m64nNk16" in result.diagnostics[0].message


def test_fmt_fix_ports_the_mma_shapes_and_the_backend_names_the_rest(tmp_path):
    """The shapes are edits; BN = 32 (no 32-wide wgmma in tlc) is the lowering's refusal,
    with the change; a 128-row tile needs two warpgroups."""
    fixed, result = fix_plan(MHA, arch="sm_90a")
    assert "mma m64n32k16" in fixed and "mma m64n128k16" in fixed
    assert [d.code for d in result.diagnostics] == ["backend-unsupported"]
    assert "N = 64 or 128" in result.diagnostics[0].message
    wider = fixed.replace("param BN = 32", "param BN = 64").replace("m64n32k16", "m64n64k16")
    assert not check(wider, arch="sm_90a").ok  # 4 warps for 128 rows
    assert check(wider.replace("param WARPS = 4", "param WARPS = 8"), arch="sm_90a").ok


def test_sm90a_examples_lower_with_a_producer_warpgroup():
    for path in sorted((ROOT / "examples").glob("*_sm90a.tl")):
        result = check(path.read_text())
        assert result.ok, [d.message for d in result.diagnostics]
        kernel = result.lowered.main
        assert kernel.threads == result.facts["threads"] + 128
        assert [a.of for a in kernel.arguments if a.kind == "tensormap"] == ["Q", "K", "V"]


def test_check_arch_all_lists_every_target(tlc_cli):
    run = tlc_cli("check", "--arch", "all", str(ROOT / "examples" / "mha_fwd_fp16_d128_sm80.tl"))
    listed = [line.split()[0] for line in run.out.splitlines() if line.startswith("  sm_")]
    assert listed == ["sm_75", "sm_80", "sm_86", "sm_89", "sm_90", "sm_90a"]


def test_the_plan_is_checked_against_the_gpu_present():
    """`tlc run` / `tlc.load` on a GPU other than the plan's target: its limits apply too."""
    from tlc.runtime import ArgumentError, check_fits

    result = check(MHA)
    with pytest.raises(ArgumentError, match=r"sm_86.*STAGES"):
        check_fits(result, "sm_86")
    check_fits(result, "sm_90")  # fits: nothing raised
    check_fits(check(GQA), "sm_86")


def test_compile_emits_the_schedule_and_readable_ir(tmp_path, capsys):
    plan = str(ROOT / "examples" / "mha_fwd_fp16_d128_sm80.tl")
    assert main(["compile", plan, "-o", str(tmp_path), "--emit", "schedule"]) == 0
    schedule = (tmp_path / "mha_fwd_fp16_d128.schedule.txt").read_text()
    assert "K: 2 x 32 x 128 fp16, rows 136 apart" in schedule
    assert "Q streamed, K streamed" in schedule and "loop n: copies K, V by cp.async, 2" in schedule
    assert main(["compile", plan, "-o", str(tmp_path), "--emit", "ir"]) == 0
    ir = (tmp_path / "mha_fwd_fp16_d128.ir.txt").read_text()
    assert "Copy K (BN, D) in coordinate [B = b, H = h, Nk = n] from global to shared" in ir
    assert "Kernel(" not in ir  # not a Python repr


def test_the_manifest_lists_kernels_with_typed_arguments(tmp_path):
    plan = str(ROOT / "examples" / "gqa_causal_fwd_bf16_d64_sm80.tl")
    assert main(["compile", plan, "-o", str(tmp_path), "--emit", "cuda"]) == 0
    manifest = json.loads(next(tmp_path.glob("*.manifest.json")).read_text())
    assert len(manifest["kernels"]) == 1
    arguments = manifest["kernels"][0]["arguments"]
    assert arguments[0] == {"name": "Q", "kind": "tensor", "dtype": "bf16"}
    assert {"name": "O", "kind": "tensor", "dtype": "bf16", "output": True} in arguments
    assert {"name": "Hkv", "kind": "size"} in arguments


@pytest.mark.skipif(__import__("tlc.build", fromlist=["find_nvcc"]).find_nvcc() is None,
                    reason="nvcc is not on this machine")
def test_exact_lets_ptxas_decide_the_register_budget(tlc_cli, tmp_path):
    """The D = 128 example with Q held: the estimate says 296 registers, ptxas builds it at
    255 with no spills; --exact accepts it."""
    held = MHA.replace("  Copy Q from shared to register\n", "").replace(
        "for n = 0: cdiv(Nk, BN)\n", "Copy Q from shared to register\nfor n = 0: cdiv(Nk, BN)\n")
    assert [d.code for d in check(held).diagnostics] == ["register-budget"]
    exact = check(held, exact=True)
    assert exact.ok and exact.facts["ptxas"].spill_stores == 0
    plan = tmp_path / "held.tl"
    plan.write_text(held)
    assert tlc_cli("check", str(plan)).code == 1 and tlc_cli("check", "--exact", str(plan)).code == 0


@pytest.mark.skipif(__import__("tlc.build", fromlist=["find_nvcc"]).find_nvcc() is None,
                    reason="nvcc is not on this machine")
def test_the_written_cu_builds_on_its_own_and_the_manifest_says_how_to_launch(tmp_path):
    import subprocess

    from tlc.build import find_nvcc

    plan = str(ROOT / "examples" / "mha_fwd_fp16_d64_sm75.tl")
    assert main(["compile", plan, "-o", str(tmp_path), "--emit", "cuda"]) == 0
    assert {p.name for p in tmp_path.glob("*.cuh")} == {"tlc_sm75.cuh", "tlc_common.cuh"}
    run = subprocess.run([find_nvcc(), "-arch=sm_75", "--ptx", "-I", str(tmp_path), "-o",
                          str(tmp_path / "k.ptx"), str(tmp_path / "mha_fwd_fp16_d64.cu")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    launch = json.loads(next(tmp_path.glob("*.manifest.json")).read_text())["launch"]
    assert launch["params"]["BM"] == 64 and launch["grid"] == ["cdiv(Nq, BM)", "H", "B"]
