"""The backward pass's conventions and its verdict (docs/language.md §5.9).

A backward plan is one that takes the output's gradient, an input named `dO` of O's shape.
The step before it takes O and dO and gives `Delta` = rowsum(dO ∘ O); it is judged against
that sum in float64 (reference.compare's rule, against the sum of the products rounded to
the dtype). The backward kernel itself takes more.
Next to it come Q, K and V, the forward's row log-sum-exp `L` (B, H, Nq) and
`Delta` = rowsum(dO ∘ O) (B, H, Nq), both fp32. It gives any of `dQ` (Q's shape), `dK` and
`dV` (K's and V's shapes). A run is judged on fresh normal Q, K, V and dO. L and Delta come
from the float64 forward: O is rounded to dO's dtype, as a kernel would have stored it.
Each gradient is compared with reference.attention_grad by the peers' rule for gradients
(reference.compare_grads).
"""
from __future__ import annotations

import dataclasses

from tlc.ir import is_backward  # noqa: F401  (the convention, where passes read it)

GRADIENTS = ("dQ", "dK", "dV")


class NotBackward(ValueError):
    """A plan that takes dO but lacks what a backward pass (or the step before it) takes or
    gives; the message names what is missing."""




def check_backward(loaded, arrays: dict, rounded: dict, variant, slopes_name):
    """Run a backward plan once on the random inputs runtime.check_random made (L and Delta
    replaced by the forward's) and return one verdict over its gradients: the worst of them
    (by error over bound), with each one's problems named."""
    import numpy as np

    from tlc.reference import (attention, attention_grad, attention_grad_low, compare_grads,
                               from_storage, logsumexp, to_dtype, to_storage)

    kernel = loaded.kernel
    delta = kernel.tensor("Delta")
    if delta is not None and delta.role == "output":
        return _check_delta(loaded, arrays, rounded)
    missing = [n for n in ("Q", "K", "V", "L", "Delta") if kernel.tensor(n) is None]
    if missing:
        raise NotBackward(f"a backward plan takes Q, K, V, dO, L and Delta; this one has no "
                         f"{', '.join(missing)}")
    _check_shapes(kernel)
    q, k, v, do = (rounded[n].astype(np.float64) for n in ("Q", "K", "V", "dO"))
    dtype = kernel.tensor("Q").dtype.value
    slopes = None if slopes_name is None else np.asarray(arrays[slopes_name], np.float64)
    out = to_dtype(attention(q, k, v, variant, slopes), dtype).astype(np.float64)
    arrays["L"] = to_storage(logsumexp(q, k, variant, slopes), "fp32")
    arrays["Delta"] = to_storage(np.sum(do * out, axis=-1), "fp32")
    results = loaded(**arrays)
    ref = attention_grad(q, k, v, do, variant, slopes)
    low = attention_grad_low(q, k, v, do, dtype, variant, slopes)
    given = [name for name in GRADIENTS if name in results]
    if not given:
        raise NotBackward("a backward plan gives dQ, dK or dV; this one gives none of them")
    got = [from_storage(results[name], kernel.tensor(name).dtype.value) if name in results
           else r for name, r in zip(GRADIENTS, ref)]
    verdicts = dict(zip(GRADIENTS, compare_grads(got, ref, low, dtype, variant).values()))
    verdicts = {name: verdicts[name] for name in given}
    worst = max(verdicts.values(), key=lambda v: v.max_error / max(v.max_bound, 1e-30))
    problems = tuple(f"{name}: {p}" for name, v in verdicts.items() for p in v.problems)
    return dataclasses.replace(worst, ok=all(v.ok for v in verdicts.values()),
                               problems=problems)


def _check_shapes(kernel) -> None:
    """dO and dQ have Q's shape, dK and dV K's and V's, L and Delta Q's rows."""
    from tlc.passes.facts import shape_text

    q = kernel.tensor("Q").shape
    wanted = {"dO": q, "L": q[:-1], "Delta": q[:-1], "dQ": q, "dK": kernel.tensor("K").shape,
              "dV": kernel.tensor("V").shape}
    for name, shape in wanted.items():
        tensor = kernel.tensor(name)
        if tensor is not None and shape_text(tensor.shape) != shape_text(shape):
            raise NotBackward(f"`{name}` is {shape_text(tensor.shape)}; a backward plan takes "
                              f"it as {shape_text(shape)}")


def _check_delta(loaded, arrays: dict, rounded: dict):
    """The step before the backward pass, Delta = rowsum(dO ∘ O), against float64."""
    import numpy as np

    from tlc.reference import compare, to_dtype

    kernel = loaded.kernel
    if kernel.tensor("O") is None:
        raise NotBackward("the step before the backward pass takes O and dO; this one has no O")
    o, do = (rounded[n].astype(np.float64) for n in ("O", "dO"))
    dtype = kernel.tensor("dO").dtype.value
    ref = np.sum(do * o, axis=-1)
    low = np.sum(to_dtype(do * o, dtype).astype(np.float64), axis=-1)
    got = np.asarray(loaded(**arrays)["Delta"], dtype=np.float64)
    return compare(got, ref, low, "fp32")
