"""The ctypes launch path's pieces that need no GPU: the kernel-parameter packing against C's
layout, the launch-time grid against the IR's evaluation, and the layout check of tensors
read in place."""
import ctypes
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tlc import ir, launch
from tlc.backends.target import Argument
from tlc.driver import check, lowered_of
from tlc.runtime import contiguous_strides, layout_problem

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*_sm*.tl"))
C_TYPES = {"tensor": ctypes.c_void_p, "scalar": ctypes.c_float, "size": ctypes.c_int,
           "int32": ctypes.c_int, "int64": ctypes.c_longlong}


def test_importing_opens_no_driver():
    """libcuda is opened by the first load, not at import: tlc works where there is none."""
    code = "import tlc.launch as l; assert l._library is None; print('ok')"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parent.parent)
    assert run.stdout.strip() == "ok", run.stderr


@pytest.mark.parametrize("path", [p for p in EXAMPLES if "sm90a" not in p.stem][:6],
                         ids=lambda p: p.stem)
def test_parameters_are_packed_as_c_lays_them_out(path):
    arch = "sm_75" if "sm75" in path.stem else "sm_80"
    arguments = lowered_of(check(path.read_text(), arch=arch)).main.arguments
    packer, offsets = launch.parameter_layout(arguments)

    class Parameters(ctypes.Structure):
        _fields_ = [(f"a{i}", C_TYPES[a.dtype if a.kind == "stride" else a.kind])
                    for i, a in enumerate(arguments)]

    assert offsets == [getattr(Parameters, f"a{i}").offset for i in range(len(arguments))]
    last = arguments[-1]
    # struct pads no tail, C pads to the widest member: the fields are where C has them
    assert packer.size == offsets[-1] + ctypes.sizeof(
        C_TYPES[last.dtype if last.kind == "stride" else last.kind]) <= ctypes.sizeof(Parameters)


def test_tensor_maps_sit_on_64_byte_boundaries_after_the_pointers():
    """An sm_90a kernel's CUtensorMaps (128 bytes, 64-byte aligned, cuda.h) follow its four
    pointers: padding first, then one map every 128 bytes, then the scalars."""
    path = next(p for p in EXAMPLES if p.stem == "mha_fwd_fp16_d128_sm90a")
    arguments = lowered_of(check(path.read_text())).main.arguments
    _, offsets = launch.parameter_layout(arguments)
    kinds = [a.kind for a in arguments]
    assert kinds[:7] == ["tensor"] * 4 + ["tensormap"] * 3
    assert offsets[:8] == [0, 8, 16, 24, 64, 192, 320, 448]


def test_mixed_widths_are_aligned():
    arguments = [Argument("x", "scalar"), Argument("s", "stride", "int64", of="Q", dim=0),
                 Argument("n", "size"), Argument("p", "tensor", "fp16")]
    _, offsets = launch.parameter_layout(arguments)
    assert offsets == [0, 8, 16, 24]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_the_launch_grid_is_the_plans_grid(path):
    arch = "sm_75" if "sm75" in path.stem else "sm_90a" if "sm90a" in path.stem else "sm_80"
    kernel = check(path.read_text(), arch=arch).kernel
    grid = launch.grid_function(kernel)
    params = {p.name: p.value for p in kernel.params}
    draw = random.Random(path.stem)
    for _ in range(20):
        sizes = {name: draw.randint(1, 5000) for name in kernel.size_names}
        expected = [ir.evaluate(e, params | sizes) for e in kernel.grid.extents]
        assert list(grid(sizes)) == expected + [1] * (3 - len(expected))


def test_layout_problems_name_what_to_change():
    shape = (2, 4, 100, 64)
    assert layout_problem(4096, shape, contiguous_strides(shape), 2) is None
    assert layout_problem(4096, (2, 100, 4, 64), (3 * 25600, 768, 64, 1), 2) is None  # fused QKV
    assert "stride 2" in layout_problem(4096, shape, (51200, 12800, 128, 2), 2)
    assert "bytes past" in layout_problem(4098, shape, contiguous_strides(shape), 2)
    assert "leave rows" in layout_problem(4096, (2, 4, 100, 60), (24000, 6000, 60, 1), 2)
    # The stride of a dimension of extent 1 is never used; a 1-D tensor is read by element.
    assert layout_problem(4096, (1, 4, 100, 64), (7, 6400, 64, 1), 2) is None
    assert layout_problem(4100, (16,), (1,), 4) is None
    assert "stride 2" in layout_problem(4096, (16,), (2,), 4)
