"""The oracle: attention in float64, the same attention done plainly in low precision, and the
tolerance rule that compares a kernel against them (DESIGN §5, as FlashAttention's tests state
it).

Conventions (FlashAttention >= 2.1): causal masking is aligned bottom-right, so query i sees key
j iff j <= i + Nk - Nq; a window (left, right) shows key j iff
i + Nk - Nq - left <= j <= i + Nk - Nq + right; with GQA query head h reads K/V head
h // (H / Hkv); the scale is 1/sqrt(D) unless given; softcap is cap * tanh(s / cap), applied to
the scaled scores; ALiBi adds -slope[h] * |i + Nk - Nq - j|; a query row that sees no key
outputs exactly 0. Tensors are (batch, heads, sequence, head dim).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Variant:
    """What is computed besides plain softmax attention."""

    causal: bool = False
    window: tuple[int | None, int | None] | None = None  # (left, right); None = unbounded
    softcap: float | None = None
    scale: float | None = None  # None: 1 / sqrt(D)


def alibi_slopes(heads: int) -> np.ndarray:
    """The ALiBi paper's slopes: a geometric sequence from 2^(-8/H) down to 2^-8."""
    return 2.0 ** (-8.0 * np.arange(1, heads + 1) / heads)


def visible(nq: int, nk: int, variant: Variant) -> np.ndarray:
    """(Nq, Nk) booleans: which keys each query row sees."""
    i = np.arange(nq)[:, None] + (nk - nq)  # the query's diagonal, aligned bottom-right
    j = np.arange(nk)[None, :]
    mask = np.ones((nq, nk), dtype=bool)
    if variant.causal:
        mask &= j <= i
    if variant.window is not None:
        left, right = variant.window
        if left is not None:
            mask &= j >= i - left
        if right is not None:
            mask &= j <= i + right
    return mask


def visible_pairs(nq: int, nk: int, variant: Variant) -> int:
    """How many (query, key) pairs are visible, counted row by row (no Nq x Nk array)."""
    i = np.arange(nq, dtype=np.int64) + (nk - nq)
    low, high = np.zeros(nq, dtype=np.int64), np.full(nq, nk - 1, dtype=np.int64)
    if variant.causal:
        high = np.minimum(high, i)
    if variant.window is not None:
        left, right = variant.window
        if left is not None:
            low = np.maximum(low, i - left)
        if right is not None:
            high = np.minimum(high, i + right)
    return int(np.sum(np.maximum(high - low + 1, 0)))


def attention_flops(batch: int, heads: int, nq: int, nk: int, d: int,
                    variant: Variant) -> float:
    """4·B·H·Nq·Nk·D, halved for causal (the peers' convention); with a window, 4·B·H·D
    times the pairs the window shows, since a windowed kernel skips the rest."""
    if variant.window is not None:
        return 4.0 * batch * heads * d * visible_pairs(nq, nk, variant)
    return 4.0 * batch * heads * nq * nk * d / (2 if variant.causal else 1)


def _scores(q, k, variant: Variant, slopes, dot) -> np.ndarray:
    """Scaled, capped, biased and masked scores (B, H, Nq, Nk); hidden ones are -inf."""
    heads, kv_heads = q.shape[1], k.shape[1]
    if heads % kv_heads:
        raise ValueError(f"{heads} query heads do not share {kv_heads} K/V heads evenly")
    k = np.repeat(k, heads // kv_heads, axis=1)  # query head h reads K/V head h // group
    scale = variant.scale if variant.scale is not None else 1.0 / np.sqrt(q.shape[-1])
    scores = dot(q, k, scale)
    if variant.softcap:
        scores = variant.softcap * np.tanh(scores / variant.softcap)
    nq, nk = q.shape[2], k.shape[2]
    if slopes is not None:
        distance = np.abs(np.arange(nq)[:, None] + (nk - nq) - np.arange(nk)[None, :])
        scores = scores - np.asarray(slopes, dtype=np.float64)[None, :, None, None] * distance
    return np.where(visible(nq, nk, variant), scores, -np.inf)


def _softmax_rows(scores: np.ndarray) -> np.ndarray:
    """Row softmax that gives 0 (not NaN) to a row with no visible key."""
    top = np.max(scores, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    weights = np.exp(scores - top)
    total = np.sum(weights, axis=-1, keepdims=True)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)


def attention(q, k, v, variant: Variant = Variant(), slopes=None) -> np.ndarray:
    """The float64 reference output (B, H, Nq, D)."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    scores = _scores(q, k, variant, slopes, lambda a, b, s: (a @ np.swapaxes(b, -1, -2)) * s)
    v = np.repeat(v, q.shape[1] // v.shape[1], axis=1)
    return _softmax_rows(scores) @ v


def logsumexp(q, k, variant: Variant = Variant(), slopes=None,
              dtype: str | None = None) -> np.ndarray:
    """Each query row's log-sum-exp of its scores (B, H, Nq), natural log, -inf for a row that
    sees no key: in float64, or with dtype as attention_low computes the scores."""
    if dtype is None:
        q, k = (np.asarray(x, dtype=np.float64) for x in (q, k))
        scores = _scores(q, k, variant, slopes, lambda a, b, s: (a @ np.swapaxes(b, -1, -2)) * s)
    else:
        q, k = (to_dtype(x, dtype) for x in (q, k))
        scores = _scores(q, k, variant, slopes, lambda a, b, s: to_dtype(
            a @ np.swapaxes(to_dtype(b * np.float32(s), dtype), -1, -2), dtype).astype(np.float64))
    top = np.max(scores, axis=-1)
    finite = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        total = np.sum(np.exp(scores - finite[..., None]), axis=-1)
        return np.where(total > 0, finite + np.log(np.where(total > 0, total, 1.0)), -np.inf)


def compare_lse(out, ref, low) -> "Verdict":
    """The log-sum-exp rule: rows that see no key exactly -inf, no NaN, and
    max|out - ref| <= 2 max|low - ref| + 1e-5 (1 + max|ref|) over the other rows."""
    out, ref, low = (np.asarray(x, dtype=np.float64) for x in (out, ref, low))
    problems = []
    empty = ~np.isfinite(ref)
    if np.any(np.isnan(out)):
        problems.append(f"{int(np.sum(np.isnan(out)))} log-sum-exps are NaN")
    if np.any(out[empty] != -np.inf):
        problems.append("a row that sees no key has a log-sum-exp other than -inf")
    seen = ~empty
    error = float(np.max(np.abs(out[seen] - ref[seen]), initial=0.0))
    scale = 1.0 + float(np.max(np.abs(ref[seen]), initial=0.0))
    bound = 2.0 * float(np.max(np.abs(low[seen] - ref[seen]), initial=0.0)) + 1e-5 * scale
    if not error <= bound:
        problems.append(f"log-sum-exp error {error:.3g} exceeds {bound:.3g}")
    mean = float(np.mean(np.abs(out[seen] - ref[seen]))) if seen.any() else 0.0
    return Verdict(not problems, error, bound, mean, None, tuple(problems))


def to_dtype(x, dtype: str) -> np.ndarray:
    """x rounded to fp16, bf16 (round to nearest even) or fp32, returned as float32."""
    x = np.asarray(x, dtype=np.float32)
    if dtype == "fp16":
        return x.astype(np.float16).astype(np.float32)
    if dtype == "bf16":
        bits = x.view(np.uint32).astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        out = rounded.astype(np.uint32).view(np.float32)
        return np.where(np.isnan(x), x, out)
    if dtype == "fp32":
        return x
    raise ValueError(f"no rounding for {dtype}")


def to_storage(x, dtype: str) -> np.ndarray:
    """x as a kernel stores it: numpy.float16 for fp16, the 16-bit patterns (uint16) for bf16,
    which NumPy has no type for."""
    rounded = to_dtype(x, dtype)
    if dtype == "fp16":
        return rounded.astype(np.float16)
    if dtype == "bf16":
        return (rounded.view(np.uint32) >> 16).astype(np.uint16)
    return rounded


def from_storage(x, dtype: str) -> np.ndarray:
    """A kernel's stored values as float64 (the inverse of to_storage)."""
    x = np.asarray(x)
    if dtype == "bf16":
        return (x.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return x.astype(np.float64)


def attention_low(q, k, v, dtype: str, variant: Variant = Variant(), slopes=None) -> np.ndarray:
    """The same attention done plainly in the input dtype: each product rounded to it, the
    scale applied to K first, as the peers' tests do. Its error against the reference is the
    yardstick for a kernel's."""
    q, k, v = (to_dtype(x, dtype) for x in (q, k, v))

    def dot(a, b, scale):
        scaled = to_dtype(b * np.float32(scale), dtype)
        return to_dtype(a @ np.swapaxes(scaled, -1, -2), dtype).astype(np.float64)

    scores = _scores(q, k, variant, slopes, dot)
    probabilities = to_dtype(_softmax_rows(scores), dtype)
    v = np.repeat(v, q.shape[1] // v.shape[1], axis=1)
    return to_dtype(probabilities @ v, dtype).astype(np.float64)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    max_error: float
    max_bound: float
    mean_error: float
    mean_bound: float | None
    problems: tuple[str, ...]

    def to_json(self) -> dict:
        return {"ok": self.ok, "max_error": self.max_error, "max_bound": self.max_bound,
                "mean_error": self.mean_error, "mean_bound": self.mean_bound,
                "problems": list(self.problems)}


def compare(out, ref, low, dtype: str, q_len: int | None = None, k_len: int | None = None,
            variant: Variant = Variant(), softcap: bool = False,
            long_keys: int = 1024, ratio: float | None = None) -> Verdict:
    """The tolerance rule: max|out - ref| <= r * max|low - ref| + atol, with r = 2 (3 with
    softcap) and atol = 2 * max|(ref + 0.3 - 0.3) - ref| in the output dtype; no NaN or Inf;
    rows that see no key exactly 0; and for key sequences of at least `long_keys`,
    mean|out - ref| <= 1.5 * mean|low - ref|, which catches accumulation in too low a
    precision. `ratio` overrides r (gradients take 3, as the peers' backward tests do)."""
    out = np.asarray(out, dtype=np.float64)
    ref_rounded = to_dtype(ref, dtype).astype(np.float64)
    problems = []
    if not np.all(np.isfinite(out)):
        problems.append(f"{int(np.sum(~np.isfinite(out)))} outputs are NaN or Inf")
    shifted = to_dtype(to_dtype(ref_rounded + 0.3, dtype) - 0.3, dtype).astype(np.float64)
    atol = 2.0 * float(np.max(np.abs(shifted - ref_rounded), initial=0.0))
    if ratio is None:
        ratio = 3.0 if softcap or variant.softcap else 2.0
    finite = np.where(np.isfinite(out), out, np.inf)
    max_error = float(np.max(np.abs(finite - ref_rounded), initial=0.0))
    max_bound = ratio * float(np.max(np.abs(low - ref_rounded), initial=0.0)) + atol
    if max_error > max_bound:
        problems.append(f"max error {max_error:.3g} exceeds {max_bound:.3g}")
    if q_len is not None and k_len is not None:
        empty = ~visible(q_len, k_len, variant).any(axis=1)
        if empty.any() and np.any(out[..., empty, :] != 0):
            problems.append("a query row that sees no key is not exactly 0")
    mean_error = float(np.mean(np.abs(finite - ref_rounded))) if out.size else 0.0
    mean_bound = None
    if k_len is not None and k_len >= long_keys:
        mean_bound = 1.5 * float(np.mean(np.abs(low - ref_rounded)))
        if mean_error > mean_bound:
            problems.append(f"mean error {mean_error:.3g} exceeds {mean_bound:.3g}")
    return Verdict(not problems, max_error, max_bound, mean_error, mean_bound, tuple(problems))


# ---- the backward pass ----

GRADIENT_RATIO = 3.0  # FlashAttention's backward tests allow 3x the plain low-precision error


def _gradients(q, k, v, do, variant: Variant, slopes, rounded):
    """dQ, dK, dV of O = softmax(scores) V against the output gradient dO, every product
    passed through `rounded` (float64 for the reference, a dtype's rounding for the plain
    low-precision yardstick). The chain: P from the scores; dV = Pᵀ dO; dP = dO Vᵀ;
    δ = rowsum(dO ∘ O); dS = P ∘ (dP - δ), times 1 - tanh² of the capped score with softcap
    (ALiBi's bias and the masks are constants); dQ = scale dS K and dK = scale dSᵀ Q. A K/V
    head's gradients sum over the query heads that share it."""
    heads, kv_heads = q.shape[1], k.shape[1]
    group = heads // kv_heads
    scale = variant.scale if variant.scale is not None else 1.0 / np.sqrt(q.shape[-1])
    k_rep, v_rep = (np.repeat(x, group, axis=1) for x in (k, v))

    def dot(a, b, s):
        return rounded(rounded(a @ np.swapaxes(b, -1, -2)) * s)

    scores = _scores(q, k, variant, slopes, dot)
    p = rounded(_softmax_rows(scores))
    o = rounded(p @ v_rep)
    dv = rounded(np.swapaxes(p, -1, -2) @ do)
    dp = rounded(do @ np.swapaxes(v_rep, -1, -2))
    delta = np.sum(do * o, axis=-1, keepdims=True)
    ds = rounded(p * (dp - delta))
    if variant.softcap:
        raw = rounded(rounded(q @ np.swapaxes(k_rep, -1, -2)) * scale)
        ds = rounded(ds * (1.0 - np.tanh(raw / variant.softcap) ** 2))
    dq = rounded(rounded(ds @ k_rep) * scale)
    dk = rounded(rounded(np.swapaxes(ds, -1, -2) @ q) * scale)
    shape = (k.shape[0], kv_heads, group) + k.shape[2:]
    return dq, rounded(dk.reshape(shape).sum(axis=2)), rounded(dv.reshape(shape).sum(axis=2))


def attention_grad(q, k, v, do, variant: Variant = Variant(), slopes=None):
    """The float64 reference gradients (dQ, dK, dV) of attention(q, k, v) against dO."""
    q, k, v, do = (np.asarray(x, dtype=np.float64) for x in (q, k, v, do))
    return _gradients(q, k, v, do, variant, slopes, lambda x: x)


def attention_grad_low(q, k, v, do, dtype: str, variant: Variant = Variant(), slopes=None):
    """The same gradients done plainly in the input dtype, each product rounded to it: the
    yardstick for a kernel's gradients, as attention_low is for its output."""
    q, k, v, do = (to_dtype(x, dtype).astype(np.float64) for x in (q, k, v, do))
    return _gradients(q, k, v, do, variant, slopes,
                      lambda x: to_dtype(x, dtype).astype(np.float64))


def compare_grads(got, ref, low, dtype: str, variant: Variant = Variant()) -> dict:
    """Each of (dQ, dK, dV) by compare's rule with r = GRADIENT_RATIO: name -> Verdict."""
    return {name: compare(g, r, lo, dtype, variant=variant, ratio=GRADIENT_RATIO)
            for name, g, r, lo in zip(("dq", "dk", "dv"), got, ref, low)}
