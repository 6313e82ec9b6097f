import io
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.tl"))
GQA_SM80 = ROOT / "examples" / "gqa_causal_fwd_bf16_d64_sm80.tl"
MHA_SM80 = ROOT / "examples" / "mha_fwd_fp16_d128_sm80.tl"


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Builds and the parser cache go to a folder of this run, not ~/.cache/tlc: a test that
    reads ptxas's figures must see a build of this run, not one stored by an earlier one."""
    folder = tmp_path_factory.mktemp("cache")
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before


class CliResult:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def tlc_cli(capsys, monkeypatch):
    """Run `tlc ARGS...` in this process; stdin_text feeds `-`."""
    from tlc.cli import main

    def run(*args, stdin_text=None):
        if stdin_text is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin_text.encode())))
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse usage errors and --help/--version
            code = exit_.code
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def plan_errors(text, sketch=False):
    """[(line, code)] of a plan's diagnostics."""
    import tlc

    result = tlc.check(text, sketch=sketch)
    return [(d.span.line, d.code) for d in result.diagnostics]


# ---- GPU tests: tests/gpu/, marked `gpu`, skipped with the reason where there is no GPU ----

def pytest_collection_modifyitems(items):
    for item in items:
        if f"{Path('tests', 'gpu')}" in str(item.fspath):
            item.add_marker(pytest.mark.gpu)


@pytest.fixture(scope="session")
def gpu():
    """(pycuda.driver, the GPU's arch), or a skip that says why there is none."""
    from tlc.runtime import GpuUnavailable, device_arch, driver

    try:
        return driver(), device_arch()
    except GpuUnavailable as why:
        pytest.skip(f"no GPU: {why}")


@pytest.fixture
def torch_poisoned(monkeypatch):
    """tlc.torch with its outputs filled with NaN before each launch (an element a kernel
    does not write shows), and autograd off, for the tests of its calls."""
    import torch

    import tlc.torch as tt

    monkeypatch.setattr(tt, "poison_outputs", True)
    with torch.no_grad():
        yield


def run_ranks(context, world: int, target, args_of, timeout: float = 120) -> dict:
    """Run `target(*args_of(rank, results))` in `world` processes of a multiprocessing
    context; each puts (rank, value...) on `results`. {rank: (value...)}, after every
    process exited cleanly."""
    results = context.Queue()
    workers = [context.Process(target=target, args=args_of(rank, results))
               for rank in range(world)]
    for worker in workers:
        worker.start()
    found = {}
    for _ in workers:
        rank, *values = results.get(timeout=timeout)
        found[rank] = tuple(values)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    return found
