"""The hardware table: the figures checks and reports rely on."""
import pytest

from tlc.arch import ARCH_NAMES, ARCHS, suggest_arch
from tlc.ir import DType


@pytest.mark.parametrize("name, per_block, per_sm, threads_per_sm", [
    ("sm_75", 65536, 65536, 1024), ("sm_80", 166912, 167936, 2048),
    ("sm_86", 101376, 102400, 1536), ("sm_89", 101376, 102400, 1536),
    ("sm_90", 232448, 233472, 2048)])
def test_shared_memory_and_threads(name, per_block, per_sm, threads_per_sm):
    arch = ARCHS[name]
    assert (arch.smem_per_block, arch.smem_per_sm, arch.max_threads_per_sm) == (
        per_block, per_sm, threads_per_sm)
    assert arch.regs_per_thread == 255 and arch.regs_per_sm == 65536
    assert arch.max_threads_per_block == 1024 and arch.warp_size == 32


def test_tensor_core_shapes_per_dtype():
    turing, ampere, ada = ARCHS["sm_75"], ARCHS["sm_80"], ARCHS["sm_89"]
    assert [s.name for s in turing.mma_shapes_for(DType.FP16)] == ["m16n8k8"]
    assert turing.mma_shapes_for(DType.BF16) == ()
    assert [s.name for s in ampere.mma_shapes_for(DType.BF16)] == ["m16n8k16", "m16n8k8"]
    assert [s.name for s in ampere.mma_shapes_for(DType.TF32)] == ["m16n8k8"]
    assert ampere.mma_shapes_for(DType.FP8E4M3) == ()
    assert [s.name for s in ada.mma_shapes_for(DType.FP8E4M3)] == ["m16n8k32"]


def test_features():
    assert not ARCHS["sm_75"].has_cp_async
    assert all(ARCHS[n].has_cp_async for n in ARCH_NAMES if n != "sm_75")
    assert all(arch.has_ldmatrix for arch in ARCHS.values())


@pytest.mark.parametrize("typed, meant", [("sm80", "sm_80"), ("ampere", "sm_80"),
                                          ("T4", "sm_75"), ("sm_9O", "sm_90")])
def test_suggestions(typed, meant):
    assert suggest_arch(typed) == meant


def test_two_small_warp_specialized_blocks_share_an_sm():
    """sm_90a asks for two resident blocks where one consumer warpgroup's block fits twice in
    shared memory; each then has half the register file, which setmaxnreg moves from the
    producer (24 a thread) to the consumers: (32768 - 24 * 128) / 128 = 232."""
    hopper, ampere = ARCHS["sm_90a"], ARCHS["sm_80"]
    assert hopper.resident_blocks(128, 84040, 150) == 2
    assert hopper.resident_blocks(128, 84040, 240) == 1      # past 232: one, with 255
    assert hopper.resident_blocks(128, 116 * 1024, 150) == 1  # two would need 234 KB
    assert hopper.resident_blocks(256, 84040, 150) == 1       # two consumer warpgroups
    assert hopper.resident_blocks(128, None, 150) == 1
    assert ampere.resident_blocks(128, 1024, 64) == 1         # no producer warpgroup
    assert hopper.register_limit(128, 2) == 232 and hopper.moves_registers(128, 2)
    assert hopper.register_limit(128) == 255 and not hopper.moves_registers(128)
    assert hopper.register_limit(256) == 240 and hopper.register_limit(384) == 160
