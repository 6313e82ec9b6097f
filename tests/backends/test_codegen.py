"""The backends on the CPU (sm_80 and, from its own data, sm_75): golden CUDA per example,
nvcc builds with 0 bytes of spills, and the checker's promise exercised: parameter choices
`tlc check --arch A` accepts build for A without spilling. (Running the kernels is tests/gpu.)"""
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlc.api import check
from tlc.build import build, find_nvcc
from tlc.cli import main

ROOT = Path(__file__).resolve().parent.parent.parent
GOLDEN = ROOT / "tests" / "golden"
SM80_EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*_sm80.tl"))
SM75_EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*_sm75.tl"))
SM90A_EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*_sm90a.tl"))
OWN_TARGET = [("sm_80", p) for p in SM80_EXAMPLES] + [("sm_75", p) for p in SM75_EXAMPLES] + [
    ("sm_90a", p) for p in SM90A_EXAMPLES]
needs_nvcc = pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not on this machine")


def lowered(text: str, arch: str = "sm_80"):
    """The main kernel of a plan that checks for arch (check runs the lowering)."""
    result = check(text, arch=arch)
    assert result.ok, [d.message for d in result.diagnostics]
    return result.lowered.main


@pytest.mark.parametrize("arch, path", OWN_TARGET, ids=lambda x: getattr(x, "stem", x))
def test_golden_cuda(arch, path):
    """Same plan, same tlc: byte-identical CUDA. TLC_UPDATE_GOLDEN=1 rewrites the files, to be
    reviewed as a diff."""
    source = lowered(path.read_text(), arch).source
    golden = GOLDEN / arch / f"{path.stem}.cu"
    if os.environ.get("TLC_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(source)
    assert source == golden.read_text()
    assert source == lowered(path.read_text(), arch).source  # deterministic


@needs_nvcc
@pytest.mark.parametrize("arch, path", OWN_TARGET, ids=lambda x: getattr(x, "stem", x))
def test_compile_writes_cu_cubin_and_manifest_with_no_spills(arch, path, tmp_path):
    assert main(["compile", str(path), "--arch", arch, "-o", str(tmp_path)]) == 0
    manifest = json.loads(next(tmp_path.glob("*.manifest.json")).read_text())
    assert {p.suffix for p in tmp_path.iterdir()} == {".cu", ".cuh", ".ptx", ".cubin", ".json"}
    assert manifest["ptxas"]["spill_stores"] == manifest["ptxas"]["spill_loads"] == 0
    result = check(path.read_text())
    assert manifest["shared_memory"] == result.facts["shared_memory"].total
    tensors = [t.name for t in result.kernel.tensors if t.shape]  # in the plan's order
    assert [a["name"] for a in manifest["arguments"]][:len(tensors)] == tensors
    assert tensors[:3] == ["Q", "K", "V"] and ("O" in tensors or "dQ" in tensors)


def test_compile_without_nvcc_writes_the_cuda_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("tlc.build.find_nvcc", lambda: None)
    assert main(["compile", str(SM80_EXAMPLES[0]), "-o", str(tmp_path)]) == 0
    assert {p.suffix for p in tmp_path.iterdir()} == {".cu", ".cuh", ".json"}
    assert "nvcc was not found" in capsys.readouterr().err


def test_compile_refuses_a_plan_with_errors(tmp_path, capsys):
    plan = tmp_path / "bad.tl"
    plan.write_text(SM80_EXAMPLES[0].read_text().replace("mma m16n8k16", "mma m16n8k8"))
    assert main(["compile", str(plan), "--arch", "sm_75", "-o", str(tmp_path / "o")]) == 1


SOUND = SM80_EXAMPLES[0].read_text()  # the GQA causal bf16 plan


@needs_nvcc
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(d=st.sampled_from([32, 40, 64, 72, 96, 128, 256]), bm=st.sampled_from([64, 128]),
       bn=st.sampled_from([32, 64, 128]), stages=st.integers(1, 3),
       arch=st.sampled_from(["sm_80", "sm_90"]))
def test_what_the_checker_accepts_builds_without_spills(d, bm, bn, stages, arch, tmp_path_factory):
    text = (SOUND.replace("param D = 64", f"param D = {d}")
            .replace("param BM = 128", f"param BM = {bm}")
            .replace("param BN = 64", f"param BN = {bn}")
            .replace("param STAGES = 2", f"param STAGES = {stages}"))
    result = check(text, arch=arch)
    if not result.ok:
        return  # rejected: the promise is about what is accepted
    kernel = result.lowered.main
    built = build(kernel.source, arch, cache_dir=tmp_path_factory.mktemp("k"))
    report = built.function(kernel.name)
    assert report.spill_stores == report.spill_loads == 0, (d, bm, bn, stages, arch)
    assert kernel.shared_memory == result.facts["shared_memory"].total


TURING = SM75_EXAMPLES[0].read_text()  # the GQA causal bf16 plan computed as fp16


@needs_nvcc
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(d=st.sampled_from([32, 40, 64, 72, 96, 128, 256]), bm=st.sampled_from([64, 128]),
       bn=st.sampled_from([16, 32, 64, 128]), warps=st.sampled_from([2, 4, 8]),
       held=st.booleans(), staged=st.booleans(), bf16=st.booleans())
def test_what_the_checker_accepts_for_sm75_builds_without_spills(d, bm, bn, warps, held, staged,
                                                                 bf16, tmp_path_factory):
    """Turing's register pipeline holds a tile in flight: the estimate must cover it."""
    text = (TURING.replace("param D = 128", f"param D = {d}")
            .replace("param BM = 64", f"param BM = {bm}")
            .replace("param BN = 32", f"param BN = {bn}")
            .replace("param WARPS = 4", f"param WARPS = {warps}"))
    if not held:  # Q streamed: loaded one k-step at a time inside the loop
        text = text.replace("Copy Q from shared to register\n", "").replace(
            "  Copy K from shared to register\n",
            "  Copy Q from shared to register\n  Copy K from shared to register\n")
    if not staged:
        text = text.replace("Allocate O in shared (BM, D)\n", "").replace(
            "Copy O from register to shared\n", "").replace(
            "from shared to global with vector 8\n", "from register to global\n")
    if not bf16:
        text = text.replace(" bf16", " fp16").replace(" with dtype fp16", "")
    result = check(text, arch="sm_75")
    if not result.ok:
        assert not any(d.code == "internal-error" for d in result.diagnostics)
        return
    kernel = result.lowered.main
    report = build(kernel.source, "sm_75", cache_dir=tmp_path_factory.mktemp("k")).function(
        kernel.name)
    assert report.spill_stores == report.spill_loads == 0, (d, bm, bn, warps, held, staged)
    assert kernel.shared_memory == result.facts["shared_memory"].total


@needs_nvcc
@pytest.mark.parametrize("arch", ["sm_75", "sm_80", "sm_90", "sm_90a"])
@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.tl")), ids=lambda p: p.stem)
def test_every_example_the_checker_accepts_for_a_target_builds(path, arch, tmp_path):
    """The promise across the examples: accepted for arch (its own or not) means it compiles
    for arch with no spills; rejected means the diagnostics say why."""
    result = check(path.read_text(), arch=arch)
    if not result.ok or result.kernel.sketch:
        assert result.kernel is None or result.kernel.sketch or result.diagnostics
        return
    kernel = result.lowered.main
    report = build(kernel.source, arch, cache_dir=tmp_path).function(kernel.name)
    assert report.spill_stores == report.spill_loads == 0
