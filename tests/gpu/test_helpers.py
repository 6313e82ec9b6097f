"""The PTX helpers of backends/include on the GPU present: MMA fragment layouts (built by
hand and loaded with ldmatrix), quad reductions, exp2, and masked cp.async."""
from pathlib import Path

import numpy as np
import pytest

from tlc.build import build
from tlc.reference import to_dtype, to_storage
from tlc.runtime import load_module

SOURCE = (Path(__file__).parent / "kernels" / "fragments.cu").read_text()


@pytest.fixture(scope="module", params=["native", "ptx-jit"])
def module(gpu, request, tmp_path_factory):
    """The kernels built for the GPU present, or as compute_80 PTX the driver compiles."""
    _, arch = gpu
    folder = tmp_path_factory.mktemp("build")
    if request.param == "native":
        return load_module(build(SOURCE, arch, cache_dir=folder).path)
    return load_module(build(SOURCE, "sm_80", output="ptx", cache_dir=folder).path)


def bf16_bits(x):
    return to_storage(x, "bf16")


def run(module, gpu, name, *arrays, scalars=(), out_shape=(16, 8)):
    cuda, _ = gpu
    out = np.full(out_shape, np.nan, dtype=np.float32)  # poisoned: every element must be written
    args = [cuda.In(a) for a in arrays] + [cuda.Out(out)] + [np.int32(s) for s in scalars]
    module.get_function(name)(*args, block=(32, 1, 1), grid=(1, 1))
    return out


@pytest.mark.parametrize("loaded", [0, 1], ids=["by-hand", "ldmatrix"])
def test_mma_m16n8k16_fp16(module, gpu, loaded):
    rng = np.random.default_rng(loaded)
    a = rng.standard_normal((16, 16)).astype(np.float16)
    b = rng.standard_normal((16, 8)).astype(np.float16)
    c = run(module, gpu, "mma_f16", a, b, scalars=(loaded,))
    np.testing.assert_allclose(c, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("loaded", [0, 1], ids=["by-hand", "ldmatrix"])
def test_mma_m16n8k16_bf16(module, gpu, loaded):
    rng = np.random.default_rng(10 + loaded)
    a, b = rng.standard_normal((16, 16)), rng.standard_normal((16, 8))
    c = run(module, gpu, "mma_bf16", bf16_bits(a), bf16_bits(b), scalars=(loaded,))
    expected = to_dtype(a, "bf16").astype(np.float64) @ to_dtype(b, "bf16").astype(np.float64)
    np.testing.assert_allclose(c, expected, rtol=1e-5, atol=1e-5)


def test_mma_m16n8k8_fp16(module, gpu):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((16, 8)).astype(np.float16)
    b = rng.standard_normal((8, 8)).astype(np.float16)
    c = run(module, gpu, "mma_f16_k8", a, b)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-5,
                               atol=1e-5)


def test_quad_reductions_and_exp2(module, gpu):
    x = np.random.default_rng(4).uniform(-4, 4, 32).astype(np.float32)
    out = run(module, gpu, "quad_ops", x, out_shape=(32, 3))
    quads = x.reshape(8, 4)
    np.testing.assert_array_equal(out[:, 0], np.repeat(quads.max(axis=1), 4))
    np.testing.assert_allclose(out[:, 1], np.repeat(quads.sum(axis=1), 4), rtol=1e-6)
    np.testing.assert_allclose(out[:, 2], np.exp2(x), rtol=2e-6)


def test_cp_async_zero_fills_masked_chunks(module, gpu):
    cuda, _ = gpu
    data = np.arange(32 * 4, dtype=np.int32) + 1
    out = np.full(32 * 4, -1, dtype=np.int32)
    module.get_function("async_copy")(cuda.In(data), cuda.Out(out), np.int32(20),
                                      block=(32, 1, 1), grid=(1, 1))
    np.testing.assert_array_equal(out[:80], data[:80])
    assert np.all(out[80:] == 0)
