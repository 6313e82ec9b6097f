"""Kernels built from the example plans, on the GPU present, against the float64 reference
with the peers' tolerance rule. Outputs are poisoned (NaN) before each launch."""
from pathlib import Path

import numpy as np
import pytest

from tlc.reference import (Variant, attention, attention_low, compare, from_storage, to_dtype,
                           to_storage)
from tlc.runtime import load

EXAMPLES = Path(__file__).parent.parent.parent / "examples"


def inputs(rng, b, h, hkv, nq, nk, d, dtype):
    arrays = [rng.standard_normal((b, heads, n, d)) for heads, n in ((h, nq), (hkv, nk),
                                                                     (hkv, nk))]
    rounded = [to_dtype(a, dtype) for a in arrays]
    return rounded, [to_storage(r, dtype) for r in rounded]



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
    verdict = compare(from_storage(out, "fp16"), ref, low, "fp16", q_len=nq, k_len=nk)
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
    verdict = compare(from_storage(out, "bf16"), ref, low, "bf16", q_len=nq, k_len=nk,
                      variant=variant)
    assert verdict.ok, verdict.problems


def test_torch_tensors_and_gpu_arrays(mha):
    torch = pytest.importorskip("torch")
    from pycuda import gpuarray

    rng = np.random.default_rng(11)
    (q, k, v), (qd, kd, vd) = inputs(rng, 1, 2, 2, 70, 90, 128, "fp16")
    expected = mha(Q=qd, K=kd, V=vd, scale=0.1)["O"]
    on_gpu = mha(Q=gpuarray.to_gpu(qd), K=gpuarray.to_gpu(kd), V=gpuarray.to_gpu(vd),
                 scale=0.1)["O"]
    np.testing.assert_array_equal(on_gpu.get(), expected)
    tensors = {n: torch.from_numpy(a).cuda() for n, a in zip("QKV", (qd, kd, vd))}
    out = mha(**tensors, scale=0.1)["O"]
    assert out.is_cuda and out.dtype == torch.float16
    np.testing.assert_array_equal(out.cpu().numpy(), expected)


def test_argument_mismatches_are_named(mha):
    from tlc.runtime import ArgumentError

    rng = np.random.default_rng(12)
    _, (qd, kd, vd) = inputs(rng, 1, 2, 2, 16, 16, 128, "fp16")
    with pytest.raises(ArgumentError, match="K: .*dimension of 64"):
        mha(Q=qd, K=kd[..., :64], V=vd, scale=0.1)
    with pytest.raises(ArgumentError, match="V: expected float16"):
        mha(Q=qd, K=kd, V=vd.astype(np.float32), scale=0.1)
    with pytest.raises(ArgumentError, match="V: missing"):
        mha(Q=qd, K=kd, scale=0.1)


def test_tlc_run(gpu, capsys):
    from tlc.cli import main

    assert main(["run", str(EXAMPLES / "gqa_causal_fwd_bf16_d64_sm80.tl"), "--shape",
                 "B=2,H=8,Hkv=2,N=1000", "--iters", "3"]) == 0
    out = capsys.readouterr().out
    assert "built natively for sm_" in out and ": ok" in out and "TFLOP/s" in out


@pytest.mark.parametrize("staged", [True, False], ids=["through-shared", "direct"])
def test_both_ways_out_of_registers(gpu, staged, tmp_path):
    import sys

    sys.path.insert(0, str(EXAMPLES.parent / "benchmarks"))
    from tlc.templates import plan

    kernel = load(plan("fp16", 64, True, 4, staged=staged), cache_dir=tmp_path)
    rng = np.random.default_rng(21)
    (q, k, v), (qd, kd, vd) = inputs(rng, 2, 8, 2, 77, 130, 64, "fp16")
    out = kernel(Q=qd, K=kd, V=vd, scale=0.125)["O"]
    variant = Variant(causal=True, scale=0.125)
    verdict = compare(from_storage(out, "fp16"), attention(q, k, v, variant),
                      attention_low(q, k, v, "fp16", variant), "fp16", q_len=77, k_len=130,
                      variant=variant)
    assert verdict.ok, verdict.problems


@pytest.mark.parametrize("d, bn, held", [(40, 64, False), (72, 40, True), (136, 32, False)])
def test_head_dims_that_are_multiples_of_8(gpu, d, bn, held, tmp_path):
    """K = D ending in 8 (an m16n8k8 step), an odd number of n-tiles, and a Reshape of an odd
    number of score tiles (BN = 40) into the second GEMM's A operand."""
    import sys

    sys.path.insert(0, str(EXAMPLES.parent / "benchmarks"))
    from tlc.templates import Options, render

    text = render(Options("bf16", d, bm=64, bn=bn, warps=4, held=held))
    kernel = load(text, cache_dir=tmp_path)
    rng = np.random.default_rng(d)
    (q, k, v), (qd, kd, vd) = inputs(rng, 2, 3, 3, 99, 157, d, "bf16")
    out = kernel(Q=qd, K=kd, V=vd, scale=1 / np.sqrt(d))["O"]
    verdict = compare(from_storage(out, "bf16"), attention(q, k, v),
                      attention_low(q, k, v, "bf16"), "bf16", q_len=99, k_len=157)
    assert verdict.ok, verdict.problems


def test_evaluate(gpu):
    import json

    import tlc

    result = tlc.evaluate((EXAMPLES / "mha_fwd_fp16_d128_sm80.tl").read_text(),
                          {"B": 2, "H": 4, "N": 512}, iters=3)
    json.dumps(result)
    assert result["ok"] and result["correct"] and result["tflops"] > 0
