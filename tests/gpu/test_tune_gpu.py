"""`tlc tune` on the GPU present: every candidate built, checked against the float64
reference and timed; the winner is the fastest correct one and a second run answers from the
cache; the command writes the winning plan to a new file."""
import pytest

from tlc.api import check
from tlc.tune import tune

from conftest import GQA_SM80, MHA_SM80

SPACE = {"BM": (64, 128), "BN": (32, 64), "WARPS": (4,), "STAGES": (2,)}
SHAPE = {"B": 1, "H": 8, "Hkv": 2, "Nq": 777, "Nk": 777}  # the plan has GROUP = 4


@pytest.mark.gpu
def test_tune_measures_every_candidate_and_caches_the_winner(gpu, tmp_path):
    text, cache = GQA_SM80.read_text(), tmp_path / "tune.json"
    outcome = tune(text, "sm_80", SHAPE, space=SPACE, cache=cache, iters=5)
    assert len(outcome.measurements) == len(outcome.candidates) >= 2
    assert all(m.ok and m.ms > 0 and m.spills == 0 for m in outcome.measurements), \
        [m.to_json() for m in outcome.measurements]
    assert outcome.best.ms == min(m.ms for m in outcome.measurements)
    assert check(outcome.best_text(), arch="sm_80").ok
    again = tune(text, "sm_80", SHAPE, space=SPACE, cache=cache)
    assert again.cached and again.best.values == outcome.best.values


@pytest.mark.gpu
def test_tune_command_writes_the_winning_plan(gpu, tlc_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("TLC_TUNE_CACHE", str(tmp_path / "tune.json"))
    best = tmp_path / "best.tl"
    result = tlc_cli("tune", str(MHA_SM80), "--shape", "B=1,H=2,N=640", "--space", "BM=128",
                     "--space", "BN=32", "--space", "WARPS=4", "--iters", "3", "-o", str(best))
    assert result.code == 0, result.err
    assert "best: BM=128 BN=32 WARPS=4" in result.out and "measured now" in result.out
    assert check(best.read_text(), arch="sm_80").ok
    result = tlc_cli("tune", str(MHA_SM80), "--shape", "B=1,H=2,N=640", "--space", "BM=128",
                     "--space", "BN=32", "--space", "WARPS=4")
    assert result.code == 0 and "from the cache" in result.out
