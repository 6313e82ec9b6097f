"""Kernels built from the example plans, on the GPU present, against the float64 reference
with the peers' tolerance rule. Outputs are poisoned (NaN) before each launch."""
from pathlib import Path

import numpy as np
import pytest

from tlc.reference import Variant, attention, attention_low, compare, to_dtype
from tlc.runtime import load

EXAMPLES = Path(__file__).parent.parent.parent / "examples"


def inputs(rng, b, h, hkv, nq, nk, d, dtype):
    arrays = [rng.standard_normal((b, heads, n, d)) for heads, n in ((h, nq), (hkv, nk),
                                                                     (hkv, nk))]
    rounded = [to_dtype(a, dtype) for a in arrays]
    if dtype == "fp16":
        device = [r.astype(np.float16) for r in rounded]
    else:
        device = [(r.view(np.uint32) >> 16).astype(np.uint16) for r in rounded]
    return rounded, device


def as_float(out, dtype):
    if dtype == "fp16":
        return out.astype(np.float64)
    return (out.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


@pytest.fixture(scope="module")
def mha(gpu, tmp_path_factory):
    return load((EXAMPLES / "mha_fwd_fp16_d128_sm80.tl").read_text(),
                cache_dir=tmp_path_factory.mktemp("k"))


@pytest.fixture(scope="module")
def gqa(gpu, tmp_path_factory):
    return load((EXAMPLES / "gqa_causal_fwd_bf16_d64_sm80.tl").read_text(),
                cache_dir=tmp_path_factory.mktemp("k"))


@pytest.mark.parametrize("b, h, nq, nk", [(1, 2, 128, 128), (2, 3, 113, 203), (1, 2, 1, 1041),
                                          (3, 1, 1041, 64)])
def test_mha_fp16_d128(mha, b, h, nq, nk):
    rng = np.random.default_rng(nq * 7 + nk)
    (q, k, v), (qd, kd, vd) = inputs(rng, b, h, h, nq, nk, 128, "fp16")
    scale = 1 / np.sqrt(128)
    out = mha(Q=qd, K=kd, V=vd, scale=scale)["O"]
    ref = attention(q, k, v)
    low = attention_low(q, k, v, "fp16")
    verdict = compare(as_float(out, "fp16"), ref, low, "fp16", q_len=nq, k_len=nk)
    assert verdict.ok, verdict.problems


@pytest.mark.parametrize("b, hkv, nq, nk", [(1, 1, 128, 128), (2, 2, 113, 203), (1, 1, 203, 113),
                                            (1, 2, 1, 1041)])
def test_gqa_causal_bf16_d64(gqa, b, hkv, nq, nk):
    rng = np.random.default_rng(nq * 5 + nk)
    h = 4 * hkv
    (q, k, v), (qd, kd, vd) = inputs(rng, b, h, hkv, nq, nk, 64, "bf16")
    out = gqa(Q=qd, K=kd, V=vd, scale=1 / np.sqrt(64))["O"]
    variant = Variant(causal=True)
    ref = attention(q, k, v, variant)
    low = attention_low(q, k, v, "bf16", variant)
    verdict = compare(as_float(out, "bf16"), ref, low, "bf16", q_len=nq, k_len=nk,
                      variant=variant)
    assert verdict.ok, verdict.problems
