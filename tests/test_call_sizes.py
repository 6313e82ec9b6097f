"""A call's sizes are checked against every relation the kernel's indexing relies on, before
any launch (so this runs without a GPU): GQA's H = Hkv · GROUP above all."""
import numpy as np
import pytest

import tlc
from conftest import GQA_SM80, MHA_SM80
from tlc.runtime import ArgumentError, LoadedKernel, index_problem


def kernel_of(path):
    result = tlc.check(path.read_text())
    assert result.ok
    return result.kernel


def arrays(B, H, Hkv, N, D):
    q = np.zeros((B, H, N, D), np.uint16)
    kv = np.zeros((B, Hkv, N, D), np.uint16)
    return {"Q": q, "K": kv, "V": kv, "scale": 0.125}


def sizes_of(kernel, **shape):
    loaded = object.__new__(LoadedKernel)  # no GPU: only the size checks
    loaded.kernel = kernel
    return loaded.sizes(arrays(**shape))


def test_gqa_sizes_that_agree_pass():
    kernel = kernel_of(GQA_SM80)  # GROUP = 4
    assert sizes_of(kernel, B=2, H=8, Hkv=2, N=64, D=64)["H"] == 8


@pytest.mark.parametrize("H, Hkv", [(8, 1), (8, 4), (6, 2)])
def test_gqa_sizes_that_disagree_are_an_argument_error(H, Hkv):
    kernel = kernel_of(GQA_SM80)
    with pytest.raises(ArgumentError, match=rf"needs H = Hkv · GROUP = {Hkv} · 4 = {Hkv * 4}"):
        sizes_of(kernel, B=2, H=H, Hkv=Hkv, N=64, D=64)


def test_a_plain_index_is_checked_against_its_dimension():
    text = (MHA_SM80.read_text().replace("grid (cdiv(Nq, BM), H, B)",
                                         "grid (cdiv(Nq, BM), H + 1, B)"))
    kernel = tlc.check(text).kernel
    problem = index_problem(kernel, {"B": 1, "H": 4, "Nq": 64, "Nk": 64})
    assert problem and "H = 4" in problem and "= 4 for the last block" in problem
    assert index_problem(kernel_of(MHA_SM80), {"B": 1, "H": 4, "Nq": 64, "Nk": 64}) is None
