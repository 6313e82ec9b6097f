"""The `tlc` command: exit codes, output forms, and files left as they were."""
import json
import os
import subprocess
import sys
import time

import pytest

import tlc
from conftest import EXAMPLES, GQA_SM80, MHA_SM80, ROOT

BROKEN = "sketch broken\nCopy A form global to shared\nCompute GEMM A, B S\n"


def test_version(tlc_cli):
    result = tlc_cli("--version")
    assert result.code == 0 and result.out.strip() == f"tlc {tlc.__version__}"


@pytest.mark.parametrize("args", [["--help"], ["check", "--help"], ["fmt", "--help"]])
def test_help_everywhere(tlc_cli, args):
    result = tlc_cli(*args)
    assert result.code == 0 and "usage: tlc" in result.out


@pytest.mark.parametrize("args", [[], ["check"], ["frobnicate"], ["check", "--bogus", "x.tl"]])
def test_usage_errors_exit_2(tlc_cli, args):
    assert tlc_cli(*args).code == 2


def test_unknown_arch_is_a_usage_error_with_a_suggestion(tlc_cli):
    result = tlc_cli("check", "--arch", "sm80", str(GQA_SM80))
    assert result.code == 2 and "did you mean sm_80" in result.err


def test_examples_check_clean(tlc_cli):
    result = tlc_cli("check", *map(str, EXAMPLES))
    assert result.code == 0, result.out
    assert result.out.strip() == f"checked {len(EXAMPLES)} files: 0 errors, 0 warnings"


def test_errors_exit_1_and_every_error_is_reported(tlc_cli, tmp_path):
    plan = tmp_path / "broken.tl"
    plan.write_text(BROKEN)
    result = tlc_cli("check", str(plan))
    assert result.code == 1
    assert f"{plan}:2:8: error[keyword-typo]" in result.out
    assert f"{plan}:3:19: error[missing-result]" in result.out
    assert "help: write `from`" in result.out
    assert "Traceback" not in result.out + result.err


def test_json_output(tlc_cli, tmp_path):
    plan = tmp_path / "broken.tl"
    plan.write_text(BROKEN)
    result = tlc_cli("check", "--json", str(plan), str(GQA_SM80))
    data = json.loads(result.out)
    assert result.code == 1
    assert data["schema"] == "tlc-diagnostics/1"
    assert data["summary"] == {"files": 2, "errors": 2, "warnings": 0}
    broken, clean = data["files"]
    assert clean == {"file": str(GQA_SM80), "ok": True, "errors": 0, "warnings": 0,
                     "diagnostics": [], "omitted": 0}
    assert [(d["line"], d["column"], d["code"]) for d in broken["diagnostics"]] == [
        (2, 8, "keyword-typo"), (3, 19, "missing-result")]
    assert set(broken["diagnostics"][0]) == {"severity", "code", "message", "help", "notes",
                                             "file", "line", "column", "end_line",
                                             "end_column", "fixes"}


def test_sketch_flag(tlc_cli, tmp_path):
    plan = tmp_path / "paper.tl"
    plan.write_text("Copy A from global to shared\nCompute GEMM A, B and get S\n")
    assert tlc_cli("check", str(plan)).code == 1
    assert tlc_cli("check", "--sketch", str(plan)).code == 0


def test_stdin(tlc_cli):
    result = tlc_cli("check", "--sketch", "-", stdin_text="Compute Softmx S\n")
    assert result.code == 1 and "<stdin>:1:9: error[unknown-op]" in result.out


def test_missing_file_is_reported_and_the_others_still_checked(tlc_cli, tmp_path):
    result = tlc_cli("check", "--json", str(tmp_path / "nope.tl"), str(GQA_SM80))
    missing, clean = json.loads(result.out)["files"]
    assert result.code == 1
    assert missing["diagnostics"][0]["code"] == "io-error" and clean["ok"]


def test_internal_error_is_a_diagnostic_not_a_traceback(tlc_cli, monkeypatch):
    import tlc.passes

    def broken_pass(module, ctx):
        raise RuntimeError("boom")

    monkeypatch.setitem(tlc.passes.PIPELINES, "code", (broken_pass,))
    result = tlc_cli("check", str(GQA_SM80))
    assert result.code == 2
    assert "error[internal-error]: internal error in tlc: RuntimeError: boom" in result.out
    assert "Traceback" not in result.out + result.err


# ---- fmt ----

UGLY = ("sketch ugly\n\n\n#  a comment\nfor i = 0:N\nCompute   Multiply S,(a+b)*c and get new S "
        "  # why\n# inside, before end\nend\nCopy K (BN,D) in coordinate [L=i] from global to "
        "shared with vector 8,stages 2\n")
PRETTY = ("sketch ugly\n\n#  a comment\nfor i = 0: N\n  Compute Multiply S, (a + b) * c and get "
          "new S  # why\n  # inside, before end\nend\nCopy K (BN, D) in coordinate [L = i] from "
          "global to shared with vector 8, stages 2\n")


def test_fmt_rewrites_in_canonical_form_and_keeps_mode(tlc_cli, tmp_path):
    plan = tmp_path / "ugly.tl"
    plan.write_text(UGLY)
    os.chmod(plan, 0o640)
    assert tlc_cli("fmt", "--check", str(plan)).code == 1
    assert plan.read_text() == UGLY
    result = tlc_cli("fmt", str(plan))
    assert result.code == 0 and "reformatted" in result.err
    assert plan.read_text() == PRETTY
    assert os.stat(plan).st_mode & 0o777 == 0o640
    assert tlc_cli("fmt", "--check", str(plan)).code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["ugly.tl"]  # no temporary file left


def test_fmt_never_touches_a_file_that_does_not_parse(tlc_cli, tmp_path):
    plan = tmp_path / "broken.tl"
    plan.write_text(BROKEN)
    before = plan.stat().st_mtime_ns
    result = tlc_cli("fmt", str(plan))
    assert result.code == 1 and "not formatted" in result.err
    assert plan.read_text() == BROKEN and plan.stat().st_mtime_ns == before


def test_fmt_diff_and_stdin(tlc_cli, tmp_path):
    plan = tmp_path / "ugly.tl"
    plan.write_text(UGLY)
    result = tlc_cli("fmt", "--diff", str(plan))
    assert result.code == 1 and "+for i = 0: N" in result.out and plan.read_text() == UGLY
    result = tlc_cli("fmt", "-", stdin_text=UGLY)
    assert result.code == 0 and result.out == PRETTY


def test_examples_are_in_canonical_form(tlc_cli):
    assert tlc_cli("fmt", "--check", *map(str, EXAMPLES)).code == 0


# ---- as a user runs it ----

def test_check_one_example_is_fast():
    """`tlc check` on one example, interpreter start included, in under 0.5 s, as an
    installed tlc runs: with its bytecode compiled (pip compiles it on install; a checkout
    under PYTHONDONTWRITEBYTECODE=1 would otherwise recompile 70 modules every run, about
    0.15 s here) and the parser cache warm."""
    command = [sys.executable, "-m", "tlc", "check", str(GQA_SM80)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-m", "compileall", "-q"] +
                   [str(ROOT / folder) for folder in ("tlc", "passes", "backends", "grammar")],
                   check=True, capture_output=True)
    subprocess.run(command, check=True, capture_output=True, env=env)  # warms the parser cache
    best = min(_timed(command, env) for _ in range(3))
    assert best < 0.5, f"tlc check took {best:.2f} s"


def _timed(command, env):
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


# ---- reports and fixes ----

def test_portability_table_for_every_example(tlc_cli):
    result = tlc_cli("check", "--arch", "all", *map(str, EXAMPLES))
    assert result.code == 0, result.out
    for path in EXAMPLES:
        assert str(path) in result.out
    table = result.out.split(str(MHA_SM80))[1]  # the sm_80 MHA example's table
    rows = {line.split()[0]: line for line in table.splitlines()[2:7]}
    assert rows["sm_80"].split()[1] == "yes"
    assert rows["sm_75"].split()[1] == "no" and "set STAGES = 1" in rows["sm_75"]
    assert "mma m16n8k8" in rows["sm_75"]


def test_portability_json(tlc_cli):
    result = tlc_cli("check", "--arch", "all", "--json", str(MHA_SM80))
    data = json.loads(result.out)
    targets = {t["arch"]: t for t in data["files"][0]["targets"]}
    assert data["schema"] == "tlc-portability/1"
    assert targets["sm_80"]["ok"] and not targets["sm_75"]["ok"]
    assert targets["sm_80"]["resources"]["shared_memory"]["bytes"] == 104448
    assert any(d["fixes"] for d in targets["sm_75"]["diagnostics"])


def test_report(tlc_cli):
    result = tlc_cli("check", "--report", str(MHA_SM80))
    assert result.code == 0
    assert "shared memory   104448 B of 166912 B" in result.out
    assert "registers       ~" in result.out and "online softmax  S" in result.out
    data = json.loads(tlc_cli("check", "--report", "--json", str(MHA_SM80)).out)
    resources = data["files"][0]["resources"]
    assert resources["threads"] == 128 and resources["registers"]["limit"] == 255


def test_fmt_fix_ports_a_plan(tlc_cli, tmp_path):
    plan = tmp_path / "plan.tl"
    plan.write_text(MHA_SM80.read_text())
    result = tlc_cli("fmt", "--fix", "--arch", "sm_75", str(plan))
    assert result.code == 0, result.err
    assert tlc_cli("check", "--arch", "sm_75", str(plan)).code == 0
