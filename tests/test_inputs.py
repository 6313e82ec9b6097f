"""Input a user (or a mutating fuzzer) can give tlc gets a plain diagnostic or a usage error:
never an internal error, never "a bug in tlc", never thousands of diagnostics for one file."""
import json
import os
import subprocess
import sys

import pytest

import tlc
from conftest import MHA_SM80, ROOT

MHA = MHA_SM80.read_text()
HEADER = ("kernel k for sm_80\ninput Q (B, H, Nq, D) fp16\noutput O (B, H, Nq, D) fp16\n"
          "param D = 64\ngrid (Nq, H, B) as (m, h, b)\n")


def codes(result):
    return [d.code for d in result.diagnostics]


@pytest.mark.parametrize("depth", [17, 300, 2000])
def test_deep_loop_nesting_is_a_diagnostic_at_the_first_loop_past_the_limit(depth):
    body = "".join(f"for i{j} = 0: 2\n" for j in range(depth)) + "end\n" * depth
    result = tlc.check(HEADER + body)
    assert codes(result) == ["too-deep"]
    assert result.diagnostics[0].span.line == 5 + 17


def test_loops_up_to_the_limit_still_check():
    body = "".join(f"for i{j} = 0: 2\n" for j in range(16)) + "end\n" * 16
    assert "too-deep" not in codes(tlc.check(MHA + body))


@pytest.mark.parametrize("value", ["(" * 40 + "32" + ")" * 40, "32" + "+0" * 600,
                                   "-" * 900 + "32", "cdiv(" * 400 + "32" + ",1)" * 400])
def test_deep_expressions_are_a_diagnostic(value):
    result = tlc.check(MHA.replace("param BN = 32", f"param BN = {value}"))
    assert codes(result) == ["too-deep"], codes(result)


def test_expressions_within_the_limits_check_clean():
    for value in ["(" * 32 + "32" + ")" * 32, "32" + "+0" * 64, "-" * 2 + "32"]:
        assert tlc.check(MHA.replace("param BN = 32", f"param BN = {value}")).ok, value


@pytest.mark.parametrize("digits", [31, 5000, 100_000])
def test_a_huge_number_is_bad_param_not_an_internal_error(digits):
    result = tlc.check(MHA.replace("param D = 128", "param D = " + "1" * digits))
    assert codes(result) == ["bad-param"]
    assert f"{digits} digits" in result.diagnostics[0].message
    assert len(result.diagnostics[0].message) < 200


def test_a_plan_repeated_200_times_gives_a_capped_list_and_the_count_of_the_rest(tlc_cli,
                                                                              tmp_path):
    from tlc.api import MAX_DIAGNOSTICS

    result = tlc.check(MHA * 200)
    assert len(result.diagnostics) == MAX_DIAGNOSTICS and result.omitted > 1000
    plan = tmp_path / "many.tl"
    plan.write_text(MHA * 200)
    shown = tlc_cli("check", str(plan))
    assert shown.code == 1
    assert f"{result.omitted} more diagnostics not shown" in shown.out
    document = json.loads(tlc_cli("check", "--json", str(plan)).out)
    assert document["files"][0]["omitted"] == result.omitted
    assert len(document["files"][0]["diagnostics"]) == MAX_DIAGNOSTICS


def test_check_all_targets_of_a_plan_with_a_syntax_error(tlc_cli, tmp_path):
    plan = tmp_path / "typo.tl"
    plan.write_text(MHA.replace("to shared with vector 8", "to shared with vector 8", 1)
                    .replace("from global", "form global", 1))
    result = tlc_cli("check", "--arch", "all", str(plan))
    assert result.code == 1, result.err
    assert result.out.count("error[keyword-typo]") == 1
    assert "internal error" not in result.out + result.err
    document = json.loads(tlc_cli("check", "--json", "--arch", "all", str(plan)).out)
    from tlc.arch import ARCH_NAMES

    assert [t["arch"] for t in document["files"][0]["targets"]] == list(ARCH_NAMES)


def test_compile_into_an_existing_file_is_a_usage_error_and_the_file_is_kept(tlc_cli,
                                                                          tmp_path):
    existing = tmp_path / "existing.txt"
    existing.write_text("mine\n")
    result = tlc_cli("compile", str(MHA_SM80), "--emit", "cuda", "-o", str(existing))
    assert result.code == 2
    assert "is a file, not a directory" in result.err and "bug" not in result.err
    assert existing.read_text() == "mine\n"
    below = tlc_cli("compile", str(MHA_SM80), "--emit", "cuda", "-o", str(existing / "sub"))
    assert below.code == 2 and "cannot create" in below.err and "bug" not in below.err


def test_compile_into_a_folder_that_cannot_be_made(tlc_cli, tmp_path, monkeypatch):
    import tlc.compiler

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tlc.compiler, "compile_plan", refuse)
    result = tlc_cli("compile", str(MHA_SM80), "-o", str(tmp_path / "out"))
    assert result.code == 2 and "cannot create or write" in result.err
    assert "bug" not in result.err


@pytest.mark.parametrize("arch", [[], ["--arch", "sm_80"]])
def test_compiling_a_sketch_says_it_is_a_sketch(tlc_cli, tmp_path, arch):
    result = tlc_cli("compile", str(ROOT / "examples" / "paper_sketch.tl"), *arch,
                     "-o", str(tmp_path / "out"))
    assert result.code == 1
    assert "is a sketch" in result.err and "tlc generate" in result.err
    assert "None" not in result.err
    assert not (tmp_path / "out").exists()


def test_api_compile_of_a_sketch_says_it_is_a_sketch(tmp_path):
    result = tlc.compile((ROOT / "examples" / "paper_sketch.tl").read_text(),
                         out_dir=str(tmp_path))
    assert not result["ok"] and "is a sketch" in result["error"]


@pytest.mark.parametrize("arch", ["sm_100", "ampere", "all", "SM_80", ""])
def test_api_refuses_unknown_targets(arch, tmp_path):
    with pytest.raises(ValueError, match="unknown arch"):
        tlc.check(MHA, arch=arch)
    with pytest.raises(ValueError, match="unknown arch"):
        tlc.compile(MHA, arch=arch, out_dir=str(tmp_path))
    with pytest.raises(ValueError, match="unknown arch"):
        tlc.fix_plan(MHA, arch=arch)


def test_api_refuses_an_unknown_emit(tmp_path):
    with pytest.raises(ValueError, match="unknown emit 'sass'"):
        tlc.compile(MHA, emit="sass", out_dir=str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_api_check_takes_bytes_and_refuses_other_types():
    assert tlc.check(MHA.encode()).ok
    assert codes(tlc.check(b"kernel x for sm_80")) == codes(tlc.check("kernel x for sm_80"))
    with pytest.raises(TypeError, match="not int"):
        tlc.check(42)


def test_public_api_is_listed_and_load_is_reachable():
    from tlc import runtime

    assert tlc.load is runtime.load
    assert {"check", "compile", "evaluate", "format_plan", "fix_plan", "load",
            "parse", "CheckResult"} <= set(dir(tlc)) & set(tlc.__all__)


def test_a_missing_lark_is_a_dependency_message(tmp_path):
    """Run the checkout with lark hidden: a one-line message that names the package."""
    blocker = tmp_path / "lark.py"
    blocker.write_text("raise ModuleNotFoundError(\"No module named 'lark'\", name='lark')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    run = subprocess.run([sys.executable, "-m", "tlc", "check", str(MHA_SM80)], cwd=tmp_path,
                         env=env, capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip() == "tlc: the 'lark' package is missing: pip install lark"
    assert "bug" not in run.stdout + run.stderr and "1:1" not in run.stdout
    api = subprocess.run([sys.executable, "-c", "import tlc; tlc.check('x')"], env=env,
                         cwd=tmp_path, capture_output=True, text=True)
    assert "MissingDependency: the 'lark' package is missing" in api.stderr


@pytest.mark.parametrize("args", [["check", "--arch", "sm_75", str(MHA_SM80)],
                                  ["check", "--json", "--arch", "sm_75", str(MHA_SM80)],
                                  ["check", str(MHA_SM80)]])
def test_a_closed_pipe_keeps_the_exit_code(args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    plain = subprocess.run([sys.executable, "-m", "tlc", *args], env=env,
                           capture_output=True)
    piped = subprocess.run(f"{sys.executable} -m tlc {' '.join(args)} | head -c 1 >/dev/null;"
                           " exit ${PIPESTATUS[0]}", shell=True, executable="/bin/bash",
                           env=env, capture_output=True)
    assert piped.returncode == plain.returncode, piped.stderr
    assert b"Traceback" not in piped.stderr and b"Exception ignored" not in piped.stderr


def test_cli_and_generate_command_import_without_a_cycle():
    code = "import tlc.llm.command, tlc.cli, tlc.cli_common as c; print(c.EXIT_USAGE)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True)
    assert run.stdout.strip() == "2", run.stderr
    source = (ROOT / "tlc" / "llm" / "command.py").read_text()
    assert "tlc.cli " not in source and "from tlc.cli import" not in source


def _garbage():
    """Mutants of the kinds a fuzzer and a careless edit make, one or two of each."""
    nested = "".join(f"for i{j} = 0: 2\n" for j in range(500)) + "end\n" * 500
    yield "deep loops", MHA + nested
    yield "deep parentheses", MHA.replace("cdiv(Nk, BN)", "(" * 3000 + "Nk" + ")" * 3000)
    yield "long expression", MHA.replace("cdiv(Nk, BN)", " + ".join(["Nk"] * 3000))
    yield "huge number", MHA.replace("param BM = 128", "param BM = " + "7" * 20000)
    yield "huge number in a shape", MHA.replace("(BM, D)", "(" + "9" * 5000 + ", D)")
    yield "huge warps", MHA.replace("param WARPS = 4", "param WARPS = 2147483647")
    yield "repeated", MHA * 120
    for cut in (1, 17, len(MHA) // 3, len(MHA) // 2, len(MHA) - 5):
        yield f"truncated at {cut}", MHA[:cut]
    for char in ("\x00", "\x07", "\x1b", "\x7f", "\u202e", "\ufeff"):
        yield f"control {ord(char):#x}", MHA.replace("Copy", f"Co{char}py", 3)
    yield "control soup", "".join(chr(c) for c in range(32)) * 40
    yield "only ends", "end\n" * 5000


@pytest.mark.parametrize("name, text", list(_garbage()), ids=[n for n, _ in _garbage()])
@pytest.mark.parametrize("sketch", [False, True])
def test_garbage_gets_plain_diagnostics_and_not_too_many(name, text, sketch):
    from tlc.api import MAX_DIAGNOSTICS

    result = tlc.check(text, sketch=sketch)
    assert "internal-error" not in codes(result)
    assert len(result.diagnostics) <= MAX_DIAGNOSTICS
    assert all(len(d.message) < 400 for d in result.diagnostics)
    formatted, _ = tlc.format_plan(text)
    fixed, _ = tlc.fix_plan(text)


@pytest.mark.parametrize("command", [["tune", str(MHA_SM80), "--dry-run"],
                                     ["generate", "MHA", "--model", "m",
                                      "--base-url", "http://127.0.0.1:9"]])
def test_an_output_file_in_a_missing_folder_is_a_usage_error(tlc_cli, tmp_path, command):
    result = tlc_cli(*command, "-o", str(tmp_path / "missing" / "best.tl"))
    assert result.code == 2 and "does not exist" in result.err
    assert "bug" not in result.err


def test_a_closed_pipe_during_a_diff_keeps_the_exit_code(tmp_path):
    plan = tmp_path / "ugly.tl"
    plan.write_text(MHA.replace("Compute GEMM Q, K^T", "Compute  GEMM Q,K^T") * 1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    piped = subprocess.run(f"{sys.executable} -m tlc fmt --diff {plan} | head -c 1 >/dev/null;"
                           " exit ${PIPESTATUS[0]}", shell=True, executable="/bin/bash",
                           env=env, capture_output=True)
    assert piped.returncode == 1 and b"Traceback" not in piped.stderr
