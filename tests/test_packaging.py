"""The wheel installs into a fresh environment and works from outside the checkout."""
import os
import shutil
import subprocess
import sys
import venv

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

PROBE = """
import importlib.resources, pathlib, sys
import tlc, tlc.passes, tlc.grammar, tlc.backends
here = pathlib.Path(tlc.__file__).resolve()
assert str(pathlib.Path(sys.argv[1]).resolve()) not in str(here), here
grammar = importlib.resources.files("tlc.grammar").joinpath("tl.lark")
assert grammar.is_file(), grammar
assert pathlib.Path(tlc.passes.__file__).parent.parent == here.parent, tlc.passes.__file__
from tlc import examples
from tlc.llm import prompts
assert "kernel mha_fwd_fp16_d128 for sm_80" in examples.read("mha_fwd_fp16_d128_sm80")
assert "{" not in prompts.system_prompt("sm_80")
print("ok", here.parent)
"""


def test_wheel_installs_and_imports_from_outside_the_checkout(tmp_path):
    source = tmp_path / "src"
    # Build from a copy, so the build leaves nothing behind in the checkout.
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis", ".pytest_cache",
        ".wheels"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(source)], check=True)
    (wheel,) = wheels.glob("tlc-*.whl")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    _lend_dependencies(python)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run([str(python), "-c", PROBE, str(ROOT)], cwd=outside, env=env,
                           capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    assert str(env_dir) in probe.stdout

    example = ROOT / "examples" / "mha_fwd_fp16_d128_sm80.tl"
    run = subprocess.run([str(env_dir / "bin" / "tlc"), "check", str(example)], cwd=outside,
                         env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def _lend_dependencies(python) -> None:
    """Give the fresh environment this environment's lark and numpy, without a package index.

    Not `system_site_packages`: that is the *base* interpreter's site-packages, which lacks
    lark when the tests run in a virtual environment (the README's way). A .pth file in the
    new environment adds the folders the running interpreter imports them from; they come
    after its own site-packages, so the wheel's tlc is the one imported.
    """
    import lark
    import numpy

    site = subprocess.run([str(python), "-c", "import sysconfig; "
                           "print(sysconfig.get_paths()['purelib'])"], check=True,
                          capture_output=True, text=True).stdout.strip()
    folders = dict.fromkeys(os.path.dirname(os.path.dirname(module.__file__))
                            for module in (lark, numpy))
    with open(os.path.join(site, "tlc-test-dependencies.pth"), "w") as handle:
        handle.write("".join(f"{folder}\n" for folder in folders))


def test_uninstalled_checkout_runs(tmp_path):
    """The checkout fallback: with site-packages off (so no installed or editable tlc is
    seen) and only the checkout and lark on the path, the three folders import as tlc.*."""
    import lark

    lark_home = os.path.dirname(os.path.dirname(lark.__file__))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), lark_home])
    code = ("import tlc.passes, tlc.grammar.parser as p; p.lark_parser(); "
            "print(tlc.passes.__file__)")
    result = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(ROOT / "passes" / "__init__.py")
