"""The backward pass's oracle: the float64 gradients against central differences of the
float64 forward, for each variant the forward has (GQA, causal with rows that see no key, a
window, softcap, ALiBi, a given scale), and the gradient rule's verdicts."""
import numpy as np
import pytest

from tlc.reference import (GRADIENT_RATIO, Variant, alibi_slopes, attention, attention_grad,
                           attention_grad_low, compare_grads)

VARIANTS = {
    "plain": (Variant(), False),
    "causal, rows without keys": (Variant(causal=True), False),
    "window": (Variant(window=(1, 1)), False),
    "softcap": (Variant(softcap=2.0), False),
    "alibi": (Variant(causal=True), True),
    "scale": (Variant(scale=0.7), False),
}


def problem(nq=5, nk=4, heads=4, kv_heads=2, d=3, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((1, heads, nq, d))
    k = rng.standard_normal((1, kv_heads, nk, d))
    v = rng.standard_normal((1, kv_heads, nk, d))
    do = rng.standard_normal((1, heads, nq, d))
    return q, k, v, do


def numerical(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + eps
        up = f()
        x[index] = saved - eps
        down = f()
        x[index] = saved
        grad[index] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("name", VARIANTS)
def test_the_gradients_are_those_of_the_forward(name):
    variant, with_alibi = VARIANTS[name]
    q, k, v, do = problem()
    slopes = alibi_slopes(q.shape[1]) if with_alibi else None

    def loss():
        return float(np.sum(attention(q, k, v, variant, slopes) * do))

    dq, dk, dv = attention_grad(q, k, v, do, variant, slopes)
    for got, x in ((dq, q), (dk, k), (dv, v)):
        assert got.shape == x.shape
        np.testing.assert_allclose(got, numerical(loss, x), rtol=1e-6, atol=1e-8)


def test_a_row_that_sees_no_key_has_a_zero_query_gradient_and_moves_no_key():
    q, k, v, do = problem(nq=6, nk=3)
    variant = Variant(causal=True)  # bottom-right: the first three rows see no key
    dq, dk, dv = attention_grad(q, k, v, do, variant)
    assert np.all(dq[:, :, :3] == 0)
    _, dk_rest, dv_rest = attention_grad(q[:, :, 3:], k, v, do[:, :, 3:], variant)
    np.testing.assert_allclose(dk, dk_rest, atol=1e-12)
    np.testing.assert_allclose(dv, dv_rest, atol=1e-12)


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_the_gradient_rule_takes_fp32_work_and_refuses_a_wrong_gradient(dtype):
    q, k, v, do = problem(nq=64, nk=80, d=16, seed=1)
    variant = Variant(causal=True)
    ref = attention_grad(q, k, v, do, variant)
    low = attention_grad_low(q, k, v, do, dtype, variant)
    assert all(np.max(np.abs(lo - r)) > 0 for lo, r in zip(low, ref))  # a yardstick, not 0
    fp32 = attention_grad_low(q, k, v, do, "fp32", variant)
    assert all(v.ok for v in compare_grads(fp32, ref, low, dtype, variant).values())
    wrong = (fp32[0], fp32[1] * 1.1, fp32[2])
    verdicts = compare_grads(wrong, ref, low, dtype, variant)
    assert verdicts["dq"].ok and verdicts["dv"].ok and not verdicts["dk"].ok
    assert GRADIENT_RATIO == 3.0
