"""`tlc fmt --fix`: its exit code says whether errors remain, it says what it changed, it never
changes the problem (a head dim), and a port to another target rewrites the `for` line."""
import pytest

import tlc
from conftest import EXAMPLES, MHA_SM80

MHA = MHA_SM80.read_text()


def params(text):
    return {line.split()[1]: line.split()[3] for line in text.splitlines()
            if line.startswith("param ")}


def test_fix_exits_1_while_errors_remain_and_keeps_what_it_fixed(tlc_cli, tmp_path):
    plan = tmp_path / "d100.tl"
    plan.write_text(MHA.replace("param D = 128", "param D = 100"))
    result = tlc_cli("fmt", "--fix", str(plan))
    assert result.code == 1, result.err
    assert "errors left that tlc cannot fix" in result.err
    assert "fixed [vector-width]" in result.err


def test_fix_never_changes_a_head_dim():
    text = MHA.replace("param D = 128", "param D = 100")
    result = tlc.check(text)
    head = [d for d in result.diagnostics if d.code == "tile-mma"]
    assert head and all(not d.fixes and "pad it to 104" in d.help for d in head)
    fixed, _ = tlc.fix_plan(text)
    assert params(fixed)["D"] == "100"


@pytest.mark.parametrize("warps", [16, 64])
def test_too_many_warps_is_fixed_by_fewer_warps_not_a_bigger_tile(warps):
    text = MHA.replace("param WARPS = 4", f"param WARPS = {warps}")
    helps = [d.help for d in tlc.check(text).diagnostics]
    assert helps and all("set WARPS = 8" in h for h in helps), helps
    fixed, result = tlc.fix_plan(text)
    assert result.ok and params(fixed)["BM"] == "128" and params(fixed)["WARPS"] == "8"


def test_fix_that_passes_exits_0_and_lists_the_fixes(tlc_cli, tmp_path):
    plan = tmp_path / "warps.tl"
    plan.write_text(MHA.replace("param WARPS = 4", "param WARPS = 64"))
    result = tlc_cli("fmt", "--fix", str(plan))
    assert result.code == 0, result.err
    assert "fixed [tile-mma]: set WARPS = 8" in result.err
    assert tlc.check(plan.read_text()).ok


@pytest.mark.parametrize("name", ["mha_fwd_fp16_d128_sm80", "gqa_causal_fwd_bf16_d64_sm80"])
def test_a_port_rewrites_the_target_line(tlc_cli, tmp_path, name):
    plan = tmp_path / f"{name}.tl"
    plan.write_text(next(p for p in EXAMPLES if p.stem == name).read_text())
    result = tlc_cli("fmt", "--fix", "--arch", "sm_75", str(plan))
    assert result.code == 0, result.err
    text = plan.read_text()
    assert " for sm_75" in text and " for sm_80" not in text
    assert tlc.check(text).ok  # as it is, with no --arch


def test_fmt_of_a_missing_file_says_it_could_not_be_read(tlc_cli, tmp_path):
    result = tlc_cli("fmt", str(tmp_path / "nope.tl"))
    assert result.code == 1 and "could not be read" in result.err
    assert "does not parse" not in result.err


def test_fixes_never_change_the_problem():
    """Over drawn plans with errors: whatever `fmt --fix` edits, every input and output keeps
    its dtype and shape, and every param in a shape (a head dim, GROUP) keeps its value."""
    from drawn_plans import drawn

    from tlc.api import check, fix_plan
    from tlc.passes.facts import text as expr_text

    def problem(result):
        kernel = result.kernel
        shapes = {t.name: (t.role, tuple(expr_text(d) for d in t.shape), t.dtype)
                  for t in kernel.tensors}
        named = {expr_text(d) for t in kernel.tensors for d in t.shape}
        return shapes, {p.name: p.value for p in kernel.params if p.name in named}

    fixed = 0
    for plan in drawn(5, 150):
        before = check(plan.text, arch=plan.arch)
        if before.ok or before.kernel is None or not any(d.fixes for d in before.diagnostics):
            continue
        text, after = fix_plan(plan.text, arch=plan.arch)
        if text is None or after.kernel is None:
            continue
        assert problem(after) == problem(before), (plan.example, plan.edits)
        fixed += 1
    assert fixed >= 10
