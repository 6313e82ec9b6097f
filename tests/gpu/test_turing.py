"""The Turing (sm_75) backend on the GPU present, from PTX for compute_75 that the driver
JIT-compiles: its helpers, the sm_75 examples against the float64 reference (head dims above
64 included), and the bf16-as-fp16 policy (the error bound, and out-of-range inputs refused)."""
from pathlib import Path

import numpy as np
import pytest

from tlc.build import build
from tlc.reference import (Variant, attention, attention_low, compare, from_storage, to_dtype,
                           to_storage)
from tlc.runtime import ArgumentError, load, load_module

EXAMPLES = Path(__file__).parent.parent.parent / "examples"
SOURCE = (Path(__file__).parent / "kernels" / "turing.cu").read_text()


@pytest.fixture(scope="module")
def helpers(gpu, tmp_path_factory):
    return load_module(build(SOURCE, "sm_75", output="ptx",
                             cache_dir=tmp_path_factory.mktemp("b")).path)


def test_a_k16_step_as_two_k8_mmas(helpers, gpu):
    cuda, _ = gpu
    rng = np.random.default_rng(1)
    a = rng.standard_normal((16, 16)).astype(np.float16)
    b = rng.standard_normal((16, 8)).astype(np.float16)
    c = np.full((16, 8), np.nan, dtype=np.float32)
    helpers.get_function("mma_k16_by_k8")(cuda.In(a), cuda.In(b), cuda.Out(c),
                                          block=(32, 1, 1), grid=(1, 1))
    np.testing.assert_allclose(c, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-5,
                               atol=1e-5)


def test_bf16_to_fp16_is_exact_in_fp16_range_and_rounds_below(helpers, gpu):
    cuda, _ = gpu
    rng = np.random.default_rng(2)
    sign = rng.choice([-1.0, 1.0], 8192)
    normal = sign[:4096] * np.exp2(rng.uniform(-14, 15.99, 4096))  # fp16's normal range
    tiny = sign[4096:] * np.exp2(rng.uniform(-30, -14, 4096))  # fp16 subnormals: rounded
    values = to_dtype(np.concatenate([normal, tiny, [0.0, -0.0, 65280.0, -65280.0]]), "bf16")
    values = np.concatenate([values, np.zeros(-len(values) % 8, np.float32)])
    out = np.zeros(len(values), dtype=np.float16)
    helpers.get_function("convert_bf16")(cuda.In(to_storage(values, "bf16")), cuda.Out(out),
                                         np.int32(len(values) // 8), block=(128, 1, 1),
                                         grid=((len(values) // 8 + 127) // 128, 1))
    exact = np.abs(values) >= 2.0 ** -14
    np.testing.assert_array_equal(out[exact].astype(np.float64), values[exact])
    assert np.max(np.abs(out[~exact].astype(np.float64) - values[~exact])) <= 2.0 ** -25


def test_masked_chunks_load_as_zeros(helpers, gpu):
    cuda, _ = gpu
    data = np.arange(32 * 4, dtype=np.int32) + 1
    out = np.full(32 * 4, -1, dtype=np.int32)
    helpers.get_function("masked_load")(cuda.In(data), cuda.Out(out), np.int32(20),
                                        block=(32, 1, 1), grid=(1, 1))
    np.testing.assert_array_equal(out[:80], data[:80])
    assert np.all(out[80:] == 0)


CASES = {  # example -> (D, query heads per K/V head, causal, dtype)
    "mha_fwd_fp16_d64_sm75": (64, 1, False, "fp16"),
    "mha_fwd_fp16_d128_sm75": (128, 1, False, "fp16"),
    "gqa_causal_fwd_fp16_d64_sm75": (64, 4, True, "fp16"),
    "gqa_causal_fwd_bf16_d128_sm75": (128, 4, True, "bf16"),
}


@pytest.fixture(scope="module")
def kernels(gpu, tmp_path_factory):
    folder = tmp_path_factory.mktemp("k")
    return {name: load((EXAMPLES / f"{name}.tl").read_text(), cache_dir=folder, from_ptx=True)
            for name in CASES}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("b, hkv, nq, nk", [(1, 2, 128, 128), (2, 1, 113, 203),
                                            (1, 1, 203, 113), (1, 1, 1, 1041)])
def test_example_from_compute_75_ptx(kernels, name, b, hkv, nq, nk):
    d, group, causal, dtype = CASES[name]
    kernel = kernels[name]
    assert "PTX for compute_75" in kernel.how
    rng = np.random.default_rng(nq * 3 + nk + d)
    shapes = ((hkv * group, nq), (hkv, nk), (hkv, nk))
    q, k, v = (to_dtype(rng.standard_normal((b, h, n, d)), dtype) for h, n in shapes)
    out = kernel(Q=to_storage(q, dtype), K=to_storage(k, dtype), V=to_storage(v, dtype),
                 scale=1 / np.sqrt(d))["O"]
    variant = Variant(causal=causal)
    verdict = compare(from_storage(out, dtype), attention(q, k, v, variant),
                      attention_low(q, k, v, dtype, variant), dtype, q_len=nq, k_len=nk,
                      variant=variant)
    assert verdict.ok, verdict.problems


def test_bf16_inputs_beyond_fp16_range_are_refused(kernels):
    kernel = kernels["gqa_causal_fwd_bf16_d128_sm75"]
    q = np.zeros((1, 4, 16, 128), np.float32)
    k = np.zeros((1, 1, 16, 128), np.float32)
    k[0, 0, 3, 5] = 1e5
    with pytest.raises(ArgumentError, match="65504"):
        kernel(Q=to_storage(q, "bf16"), K=to_storage(k, "bf16"), V=to_storage(k * 0, "bf16"),
               scale=1.0)
