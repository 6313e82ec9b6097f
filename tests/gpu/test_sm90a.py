"""The Hopper helpers of backends/include/tlc_sm90a.cuh on the GPU, one at a time, before a
backend uses them: a CUtensorMap passed by value (64-byte aligned, 128 bytes) between other
arguments through tlc.launch, TMA boxes with zero fill past the tensor's end, the 128-byte
swizzle, mbarrier phases, the wgmma accumulator layout, shared-memory descriptors for K-major
and MN-major operands, and A from registers. Built for sm_90a; skipped on other GPUs."""
from pathlib import Path

import numpy as np
import pytest

from tlc import launch
from tlc.backends.target import Argument
from tlc.build import build

SOURCE = (Path(__file__).parent / "kernels" / "sm90a.cu").read_text()


@pytest.fixture(scope="module")
def image(gpu, tmp_path_factory):
    _, arch = gpu
    if arch != "sm_90":
        pytest.skip(f"the GPU is {arch}; these helpers need Hopper (sm_90a)")
    return Path(build(SOURCE, "sm_90a", cache_dir=tmp_path_factory.mktemp("build")).path) \
        .read_bytes()


def kernel(image, name, *kinds):
    arguments = [Argument(f"a{i}", kind, dtype) for i, (kind, dtype) in
                 enumerate(k if isinstance(k, tuple) else (k, None) for k in kinds)]
    return launch.Kernel(image, name, arguments, threads=128, shared_bytes=0)


def device(array):
    from pycuda import gpuarray

    return gpuarray.to_gpu(np.ascontiguousarray(array))


def fp16_map(array, box, swizzle=128):
    """A tensor map of a 2-D fp16 device array (rows, cols), box (cols, rows)."""
    rows, cols = array.shape
    return launch.tensor_map(int(array.gpudata), "fp16", (cols, rows), (cols * 2,), box,
                             swizzle)


def unswizzle(tile: np.ndarray) -> np.ndarray:
    """A 64 x 64 fp16 tile back in row order from the 128-byte swizzle: the 16-byte chunk c
    of row r lies at chunk c ^ (r % 8)."""
    out = np.empty_like(tile)
    for r in range(tile.shape[0]):
        for c in range(8):
            out[r, 8 * c:8 * c + 8] = tile[r, 8 * (c ^ (r % 8)):8 * (c ^ (r % 8)) + 8]
    return out


@pytest.mark.parametrize("n", [64, 128])
def test_wgmma_from_shared_memory(image, n):
    rng = np.random.default_rng(n)
    a = rng.standard_normal((64, 64)).astype(np.float16)
    b = rng.standard_normal((n, 64)).astype(np.float16)
    a_device, b_device = device(a), device(b)
    out = device(np.full((64, n), np.nan, dtype=np.float32))
    run = kernel(image, f"wgmma_ss_n{n}", "tensormap", "tensormap", ("tensor", "fp32"))
    run.launch((1, 1, 1), (), (fp16_map(a_device, (64, 64)), fp16_map(b_device, (64, 64)),
                               int(out.gpudata)))
    expected = a.astype(np.float64) @ b.astype(np.float64).T
    np.testing.assert_allclose(out.get(), expected, rtol=1e-4, atol=1e-3)


def test_wgmma_with_a_from_registers_and_b_transposed(image):
    rng = np.random.default_rng(7)
    p = rng.standard_normal((64, 64)).astype(np.float16)
    v = rng.standard_normal((64, 64)).astype(np.float16)
    p_device, v_device = device(p), device(v)
    out = device(np.full((64, 64), np.nan, dtype=np.float32))
    run = kernel(image, "wgmma_rs_n64", ("tensor", "fp16"), "tensormap", ("tensor", "fp32"))
    run.launch((1, 1, 1), (), (int(p_device.gpudata), fp16_map(v_device, (64, 64)),
                               int(out.gpudata)))
    expected = p.astype(np.float64) @ v.astype(np.float64)
    np.testing.assert_allclose(out.get(), expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("swizzle", [0, 128])
@pytest.mark.parametrize("c0, c1", [(8, 60), (104, 50), (152, 0)])
def test_tma_boxes_through_an_mbarrier(image, swizzle, c0, c1):
    rng = np.random.default_rng(c0)
    x = rng.standard_normal((100, 200)).astype(np.float16)
    x_device = device(x)
    out = device(np.full(8194, 0xFFFF, dtype=np.uint16))  # poisoned
    run = kernel(image, "tma_boxes", ("size", None), ("tensormap", None), ("tensor", "fp16"),
                 ("size", None), ("size", None), ("size", None))
    run.launch((1, 1, 1), (), (1234, fp16_map(x_device, (64, 64), swizzle),
                               int(out.gpudata), c0, c1, 4321))
    got = out.get()
    padded = np.zeros((300, 400), dtype=np.float16)
    padded[:100, :200] = x
    for round in range(2):
        tile = got[4096 * round:4096 * (round + 1)].view(np.float16).reshape(64, 64)
        if swizzle:
            tile = unswizzle(tile)
        left = c0 + 64 * round
        np.testing.assert_array_equal(tile, padded[c1:c1 + 64, left:left + 64])
    assert list(got[8192:]) == [1234, 4321]
