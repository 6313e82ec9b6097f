"""Plans that also write each row's log-sum-exp (`Compute Logsumexp S and get L`), on the GPU
present against the float64 reference: O by the peers' rule and L by reference.compare_lse
(rows that see no key exactly -inf), both outputs poisoned first. sm_80 plans built natively;
sm_75 plans as compute_75 PTX."""
import pytest

from tlc.runtime import check_random, load
from tlc.templates import plan

# (Nq, Nk): equal, more keys, more queries (causal rows that see no key), one query.
SHAPES = [(128, 128), (113, 203), (203, 113), (1, 517)]
CASES = [dict(dtype="fp16", d=64, causal=False), dict(dtype="bf16", d=128, causal=True),
         dict(dtype="fp16", d=128, causal=True, window=(40, 8)),
         dict(dtype="fp16", d=64, causal=False, softcap=30.0)]


@pytest.mark.parametrize("arch", ["sm_80", "sm_75"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_the_log_sum_exp_matches_the_reference(gpu, arch, case, tmp_path):
    options = dict(case)
    if arch == "sm_75" and options["dtype"] == "bf16":
        options["dtype"] = "fp16"
    text = plan(options.pop("dtype"), options.pop("d"), options.pop("causal"), group=2,
                arch=arch, lse=True, **options)
    kernel = load(text, cache_dir=tmp_path, from_ptx=arch == "sm_75")
    for nq, nk in SHAPES:
        verdict = check_random(kernel, {"B": 2, "H": 4, "Hkv": 2, "Nq": nq, "Nk": nk},
                               whole=True)
        assert verdict.ok, (nq, nk, verdict.problems)
