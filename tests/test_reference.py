"""The oracle itself: the float64 reference against a row-by-row reading of DESIGN §5, and the
tolerance rule against outputs it must accept and outputs it must reject."""
import math

import numpy as np
import pytest

from tlc.reference import (Variant, attention, attention_low, compare, from_storage, to_dtype,
                           to_storage, visible)


def naive(q, k, v, variant, slopes=None):
    """Attention one query row at a time, written straight from the conventions."""
    b_, h_, nq, d = q.shape
    hkv, nk = k.shape[1], k.shape[2]
    scale = variant.scale or 1 / math.sqrt(d)
    out = np.zeros((b_, h_, nq, d))
    for b in range(b_):
        for h in range(h_):
            g = h // (h_ // hkv)
            for i in range(nq):
                diag = i + nk - nq
                keys = []
                for j in range(nk):
                    if variant.causal and j > diag:
                        continue
                    if variant.window and variant.window[0] is not None and j < diag - variant.window[0]:
                        continue
                    if variant.window and variant.window[1] is not None and j > diag + variant.window[1]:
                        continue
                    s = float(q[b, h, i] @ k[b, g, j]) * scale
                    if variant.softcap:
                        s = variant.softcap * math.tanh(s / variant.softcap)
                    if slopes is not None:
                        s -= slopes[h] * abs(diag - j)
                    keys.append((j, s))
                if not keys:
                    continue
                top = max(s for _, s in keys)
                weights = [(j, math.exp(s - top)) for j, s in keys]
                total = sum(w for _, w in weights)
                out[b, h, i] = sum(w / total * v[b, g, j] for j, w in weights)
    return out


CASES = [
    (Variant(), 1, 2, 2, 5, 7, False),
    (Variant(causal=True), 2, 4, 2, 9, 6, False),       # Nq > Nk: early rows see nothing
    (Variant(causal=True), 1, 4, 1, 3, 11, False),      # MQA, Nq < Nk
    (Variant(window=(2, 1)), 1, 2, 2, 8, 8, False),
    (Variant(causal=True, window=(3, 0), softcap=5.0), 1, 3, 1, 6, 10, True),
]


@pytest.mark.parametrize("variant, b, h, hkv, nq, nk, alibi", CASES)
def test_reference_matches_a_row_by_row_reading(variant, b, h, hkv, nq, nk, alibi):
    rng = np.random.default_rng(7)
    q = rng.standard_normal((b, h, nq, 16))
    k = rng.standard_normal((b, hkv, nk, 16))
    v = rng.standard_normal((b, hkv, nk, 16))
    slopes = rng.uniform(0.1, 1.0, h) if alibi else None
    np.testing.assert_allclose(attention(q, k, v, variant, slopes), naive(q, k, v, variant, slopes),
                               rtol=1e-12, atol=1e-12)


def test_rows_that_see_no_key_are_zero():
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((1, 1, n, 8)) for n in (6, 3, 3))
    out = attention(q, k, v, Variant(causal=True))
    assert not visible(6, 3, Variant(causal=True))[:3].any()
    assert np.all(out[0, 0, :3] == 0) and np.all(out[0, 0, 3:] != 0)


def test_bf16_rounds_to_nearest_even():
    ulp = 2.0 ** -7
    values = np.array([1.0, 1 + ulp / 2, 1 + 1.5 * ulp, -3.0, np.inf], dtype=np.float32)
    assert to_dtype(values, "bf16").tolist() == [1.0, 1.0, 1 + 2 * ulp, -3.0, np.inf]
    assert to_dtype([1 + 2.0 ** -11], "fp16").tolist() == [1.0]


@pytest.fixture
def problem():
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((2, 4, n, 64)) for n in (33, 1100, 1100))
    return q, k, v


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_the_rule_accepts_a_plain_low_precision_result(problem, dtype):
    q, k, v = problem
    ref = attention(q, k, v)
    low = attention_low(q, k, v, dtype)
    verdict = compare(low, ref, low, dtype, q_len=33, k_len=1100)
    assert verdict.ok, verdict.problems
    assert verdict.mean_bound is not None  # 1100 keys: the mean rule applies


def test_the_rule_rejects_wrong_results(problem):
    q, k, v = problem
    ref = attention(q, k, v)
    low = attention_low(q, k, v, "fp16")
    unscaled = attention(q, k, v, Variant(scale=1.0))
    assert not compare(unscaled, ref, low, "fp16").ok
    noisy = low + 20 * (low - to_dtype(ref, "fp16"))
    assert not compare(noisy, ref, low, "fp16").ok
    poisoned = low.copy()
    poisoned[0, 0, 0, 0] = np.nan
    assert "NaN" in compare(poisoned, ref, low, "fp16").problems[0]


def test_the_rule_demands_exact_zero_rows():
    rng = np.random.default_rng(5)
    q, k, v = (rng.standard_normal((1, 1, n, 32)) for n in (8, 4, 4))
    variant = Variant(causal=True)
    ref = attention(q, k, v, variant)
    low = attention_low(q, k, v, "fp16", variant)
    leaky = low.copy()
    leaky[0, 0, 0, 0] = 1e-4  # row 0 sees no key
    verdict = compare(leaky, ref, low, "fp16", q_len=8, k_len=4, variant=variant)
    assert "exactly 0" in " ".join(verdict.problems)


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_storage_round_trip(dtype):
    x = np.random.default_rng(9).standard_normal(64)
    stored = to_storage(x, dtype)
    assert stored.dtype == (np.float16 if dtype == "fp16" else np.uint16)
    np.testing.assert_array_equal(from_storage(stored, dtype), to_dtype(x, dtype))


def test_problem_sizes():
    from tlc.runtime import ArgumentError, problem_sizes

    assert problem_sizes("B=2, H=16,N=4096") == {"B": 2, "H": 16, "N": 4096, "Nq": 4096,
                                                  "Nk": 4096}
    assert problem_sizes({"N": 8, "Nk": 3}) == {"N": 8, "Nq": 8, "Nk": 3}
    with pytest.raises(ArgumentError):
        problem_sizes("B=two")
