"""`tlc tune` without a GPU: the space, the candidates the checker accepts, the plan hash, the
cache and its resumption after an interrupt (the GPU's part replaced by a stand-in), and the
command line's refusals."""
import itertools
import json

import pytest

import tlc.tune as tune_module
from tlc.api import check
from tlc.tune import (Measurement, TuneError, assign, candidates, declared, default_shape,
                      load_cache, plan_hash, space_of, tune)

from conftest import GQA_SM80, MHA_SM80

SMALL = {"BM": (64, 128), "BN": (32, 64), "WARPS": (4,), "STAGES": (1, 2)}


def test_space_holds_the_declared_tunable_params_only():
    text = MHA_SM80.read_text()
    space = space_of(text)
    assert set(space) == {"BM", "BN", "WARPS", "STAGES"}  # D is the problem, not a choice
    assert space_of(text, {"BM": (64,)})["BM"] == (64,)
    with pytest.raises(TuneError, match="does not declare"):
        space_of(text, {"BQ": (64,)})
    with pytest.raises(TuneError, match="none of the parameters"):
        space_of("kernel k for sm_80\nparam D = 64\n")


def test_assign_rewrites_the_value_and_keeps_the_comment():
    text = "param BM = 128  # rows of a block\nparam BN = 32\n"
    assert assign(text, {"BM": 64}) == "param BM = 64  # rows of a block\nparam BN = 32\n"
    with pytest.raises(TuneError, match="no `param BK"):
        assign(text, {"BK": 16})


def test_every_candidate_passes_check_and_the_rest_are_counted():
    text = MHA_SM80.read_text()
    found, refused = candidates(text, "sm_80", SMALL)
    assert len(found) + refused == len(list(itertools.product(*SMALL.values())))
    assert found, "the example's own tiles at least"
    for candidate in found:
        assert check(candidate.text, arch="sm_80").ok
        assert {k: int(v) for k, v in declared(candidate.text).items() if k in SMALL} == \
            candidate.values
    scores = [c.predicted["score"] for c in found]
    assert scores == sorted(scores, reverse=True)


def test_plan_hash_ignores_the_tuned_values_only():
    text = MHA_SM80.read_text()
    space = space_of(text)
    assert plan_hash(text, space, "sm_80") == plan_hash(assign(text, {"BN": 64}), space, "sm_80")
    assert plan_hash(text, space, "sm_80") != plan_hash(text, space, "sm_75")
    assert plan_hash(text, space, "sm_80") != plan_hash(text.replace("fp16", "bf16"), space,
                                                        "sm_80")


def test_default_shape_is_benchmark_sized():
    result = check(GQA_SM80.read_text(), arch="sm_80")
    assert default_shape(result) == {"B": 4, "H": 32, "Hkv": 8, "Nq": 4096, "Nk": 4096}


def test_a_damaged_cache_reads_as_empty(tmp_path):
    path = tmp_path / "tune.json"
    path.write_text("{ not json")
    assert load_cache(path) == {}


@pytest.fixture
def fake_gpu(monkeypatch):
    """tune() with the GPU's part stood in for: builds are None, a measurement's time falls
    with BM * BN; `measured` records what was measured."""
    import tlc.runtime

    measured = []
    monkeypatch.setattr(tlc.runtime, "device_arch", lambda: "sm_90")
    monkeypatch.setattr(tlc.runtime, "device_name", lambda: "Fake GPU")
    monkeypatch.setattr(tlc.runtime, "driver_version", lambda: "1.2.3")
    monkeypatch.setattr(tune_module, "_build_all", lambda wanted, *a: [None] * len(wanted))

    def measure(candidate, built, arch, shape, iters, inputs):
        measured.append(candidate.values)
        ms = 1000.0 / (candidate.values["BM"] * candidate.values["BN"])
        return Measurement(candidate.values, True, ms, 1.0 / ms)
    monkeypatch.setattr(tune_module, "_measure", measure)
    return measured


def test_an_interrupted_tune_keeps_its_measurements_and_resumes(fake_gpu, tmp_path):
    text, cache = MHA_SM80.read_text(), tmp_path / "tune.json"
    total = len(candidates(text, "sm_80", SMALL)[0])
    assert total >= 3

    def interrupt_after_two(done, count, what, measurement):
        if measurement is not None and done == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        tune(text, "sm_80", {"B": 1}, space=SMALL, cache=cache, progress=interrupt_after_two)
    entry = next(iter(json.loads(cache.read_text()).values()))
    assert entry["complete"] is False and len(entry["measurements"]) == 2
    assert entry["gpu"] == "Fake GPU" and entry["driver"] == "1.2.3"

    outcome = tune(text, "sm_80", {"B": 1}, space=SMALL, cache=cache)
    assert len(fake_gpu) == total  # the two kept, the rest measured once each
    assert not outcome.cached and len(outcome.measurements) == total
    assert outcome.best.values == max((c.values for c in outcome.candidates),
                                      key=lambda v: v["BM"] * v["BN"])
    assert check(outcome.best_text(), arch="sm_80").ok

    again = tune(text, "sm_80", {"B": 1}, space=SMALL, cache=cache)
    assert again.cached and again.best.values == outcome.best.values
    assert len(fake_gpu) == total  # answered from the cache: nothing measured
    tune(text, "sm_80", {"B": 1}, space=SMALL, cache=cache, force=True)
    assert len(fake_gpu) == 2 * total


def test_cli_dry_run_lists_candidates_without_a_gpu(tlc_cli):
    result = tlc_cli("tune", str(MHA_SM80), "--dry-run", "--space", "BM=64,128", "--top", "2")
    assert result.code == 0, result.err
    assert "pass tlc check for sm_80" in result.out and "blocks/SM" in result.out
    assert "the first 2 would be measured" in result.out


def test_cli_refuses_to_overwrite_and_bad_spaces(tlc_cli, tmp_path):
    existing = tmp_path / "best.tl"
    existing.write_text("mine")
    result = tlc_cli("tune", str(MHA_SM80), "-o", str(existing))
    assert result.code == 2 and "overwrites nothing" in result.err
    assert existing.read_text() == "mine"
    result = tlc_cli("tune", str(MHA_SM80), "--dry-run", "--space", "BM=big")
    assert result.code == 2 and "NAME=V1,V2" in result.err
    result = tlc_cli("tune", str(MHA_SM80), "--dry-run", "--space", "BQ=64")
    assert result.code == 2 and "does not declare" in result.err


def test_cli_without_a_gpu_says_so(tlc_cli, monkeypatch):
    import tlc.runtime

    def no_gpu():
        raise tlc.runtime.GpuUnavailable("the CUDA driver sees no GPU")
    monkeypatch.setattr(tlc.runtime, "device_arch", no_gpu)
    result = tlc_cli("tune", str(MHA_SM80), "--space", "BM=128")
    assert result.code == 2 and "no GPU" in result.err and "--dry-run" in result.err


def test_a_cache_entry_in_another_format_is_measured_afresh(fake_gpu, tmp_path):
    text, cache = MHA_SM80.read_text(), tmp_path / "tune.json"
    tune(text, "sm_80", {"B": 1}, space=SMALL, cache=cache)
    first = len(fake_gpu)
    data = json.loads(cache.read_text())
    for entry in data.values():
        entry["measurements"] = [{"values": m["values"], "speed": 1} for m in entry["measurements"]]
    cache.write_text(json.dumps(data))
    outcome = tune(text, "sm_80", {"B": 1}, space=SMALL, cache=cache)
    assert not outcome.cached and len(fake_gpu) == 2 * first


class _Measured:
    def __init__(self, tflops):
        self.ok, self.tflops, self.error = True, tflops, None


def test_tune_progress_is_a_tqdm_bar_on_a_terminal_and_lines_in_a_log():
    import io

    from tlc.cli import _ProgressBar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    bar = _ProgressBar(terminal)
    bar(0, 3, "building 3 candidates", None)
    bar(1, 3, "BN=32", _Measured(101.5))
    bar(2, 3, "BN=64", _Measured(120.0))
    assert type(bar.bar).__module__.startswith("tqdm")
    assert bar.bar.n == 2 and bar.bar.total == 3
    bar.finish()
    assert "2/3" in terminal.getvalue() and "best 120.0" in terminal.getvalue()
    log = io.StringIO()
    plain = _ProgressBar(log)
    plain(1, 3, "BN=32", _Measured(101.5))
    assert log.getvalue() == "tune 1/3 BN=32: 101.5 TFLOP/s (best 101.5)\n"
