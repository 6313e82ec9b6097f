"""Running built kernels on the GPU through PyCUDA, which is imported only here and only when
a kernel runs, so the compiler works on machines without a GPU."""
from __future__ import annotations

from pathlib import Path


class GpuUnavailable(Exception):
    """No usable GPU: PyCUDA missing, no driver, or no device; the message says which."""


_context = None


def driver():
    """pycuda.driver, initialised with a context on device 0."""
    global _context
    try:
        import pycuda.driver as cuda
    except ImportError as error:
        raise GpuUnavailable(f"PyCUDA is not installed ({error}): pip install pycuda")
    if _context is None:
        try:
            cuda.init()
            if cuda.Device.count() == 0:
                raise GpuUnavailable("the CUDA driver sees no GPU")
            # The device's primary context: the one PyTorch uses, so that kernels loaded here
            # can run on tensors PyTorch allocated.
            _context = cuda.Device(0).retain_primary_context()
            _context.push()
            import atexit

            atexit.register(_context.pop)
        except cuda.Error as error:
            raise GpuUnavailable(f"the CUDA driver failed: {error}")
    return cuda


def device_arch() -> str:
    """The present GPU as a target name, e.g. `sm_90` for an H100."""
    major, minor = driver().Context.get_device().compute_capability()
    return f"sm_{major}{minor}"


def device_name() -> str:
    return driver().Context.get_device().name()


def driver_version() -> str:
    """The NVIDIA driver's release (e.g. 580.159.04) where the kernel module says it, else the
    CUDA version the driver supports."""
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8", errors="replace") as handle:
            for word in handle.readline().split():
                if word.count(".") >= 1 and word.replace(".", "").isdigit():
                    return word
    except OSError:
        pass
    version = driver().get_driver_version()
    return f"CUDA {version // 1000}.{version % 1000 // 10}"


def load_module(path):
    """A loaded CUDA module from a .cubin, or from .ptx that the driver compiles (JIT) for
    the GPU present."""
    with open(path, "rb") as handle:
        data = handle.read()
    if str(path).endswith(".ptx"):
        data += b"\0"
    return driver().module_from_buffer(data)


class ArgumentError(ValueError):
    """An argument that does not fit the kernel: the message names it."""


def problem_sizes(sizes) -> dict[str, int]:
    """Runtime sizes from `B=2,H=16,N=4096` or a dict; N stands for both Nq and Nk."""
    if isinstance(sizes, str):
        try:
            sizes = {name.strip(): int(value) for name, _, value in
                     (item.partition("=") for item in sizes.split(","))}
        except ValueError:
            raise ArgumentError(f"sizes are NAME=INT,... not {sizes!r}") from None
    sizes = dict(sizes)
    if "N" in sizes:
        sizes.setdefault("Nq", sizes["N"])
        sizes.setdefault("Nk", sizes["N"])
    return sizes


class LoadedKernel:
    """A plan built for the GPU present, callable with NumPy arrays (fp16 as numpy.float16,
    bf16 as the uint16 bit patterns)."""

    def __init__(self, kernel, lowered, module, built_for: str, how: str, image: bytes = b""):
        """`lowered`: the plan's kernels (tlc.backends.target.Lowered), launched in order;
        `image`: the built module's bytes, which kernels taking tensor maps are loaded from
        by tlc.launch (launched through PyCUDA's argument packing, an sm_90a kernel stopped
        the H200 with an illegal instruction; through tlc.launch it computed the right
        answer)."""
        from tlc.launch import Kernel

        self.kernel, self.built_for, self.how = kernel, built_for, how
        self.kernels, self.lowered = lowered.kernels, lowered.main
        cuda = driver()
        self.functions = [
            Kernel(image, k.name, k.arguments, k.threads, k.shared_memory)
            if any(a.kind == "tensormap" for a in k.arguments) else module.get_function(k.name)
            for k in self.kernels]
        self.function = self.functions[0]
        # Inputs a converting load computes as fp16 (bf16 on Turing): values past fp16's range
        # would silently become infinities, so a call refuses them.
        self.converted = [t.name for t in kernel.tensors if t.role == "input" and t.shape and
                          any(b.name == t.name and b.dtype and b.dtype is not t.dtype
                              for b in kernel.buffers)]
        for source, function in zip(self.kernels, self.functions):
            if source.shared_memory > 48 * 1024 and not isinstance(function, Kernel):
                function.set_attribute(cuda.function_attribute.MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                       source.shared_memory)

    def sizes(self, arrays: dict) -> dict:
        """The runtime sizes, read off the tensors' shapes, checked for agreement."""
        from tlc import ir

        sizes: dict[str, int] = {}
        params = {p.name: p.value for p in self.kernel.params}
        for tensor in self.kernel.tensors:
            if tensor.role == "output":
                continue  # outputs are allocated here, from the sizes of the inputs
            if tensor.name not in arrays:
                raise ArgumentError(f"{tensor.name}: missing (the plan's inputs are "
                                    f"{', '.join(t.name for t in self.kernel.tensors if t.role == 'input')})")
            if not tensor.shape:
                if tensor.dtype is ir.DType.INT32:  # a count the call gives: a size
                    sizes[tensor.name] = int(arrays[tensor.name])
                continue
            array = arrays[tensor.name]
            if array.ndim != len(tensor.shape):
                raise ArgumentError(f"{tensor.name}: {array.ndim} dimensions, the plan has "
                                    f"{len(tensor.shape)}")
            shape = list(array.shape)
            if tensor.pages:  # a pool (pages, ..., PAGE, D): its B and rows are the table's
                table, page = tensor.pages
                if shape[-2] != ir.evaluate(page, params):
                    raise ArgumentError(f"{tensor.name}: pages of {shape[-2]} rows, the plan "
                                        f"has {ir.evaluate(page, params)}")
                entries, pages = arrays[table].shape
                shape[0], shape[-2] = entries, pages * shape[-2]
            for dim, extent in zip(tensor.shape, shape):
                if isinstance(dim, ir.Sym) and dim.kind is ir.SymKind.SIZE:
                    if sizes.setdefault(dim.name, extent) != extent:
                        raise ArgumentError(f"{tensor.name}: {dim.name} = {extent}, but another "
                                            f"argument has {dim.name} = {sizes[dim.name]}")
                else:
                    expected = ir.evaluate(dim, params)
                    if expected != extent:
                        raise ArgumentError(f"{tensor.name}: dimension of {extent} where the plan "
                                            f"has {expected}")
        problem = index_problem(self.kernel, sizes) or table_problem(
            self.kernel, {t.name: _host(arrays[t.name]) for t in self.kernel.tensors
                          if t.dtype is ir.DType.INT32 and t.shape}, sizes,
            {t.name: arrays[t.name].shape[0] for t in self.kernel.tensors if t.pages})
        if problem:
            raise ArgumentError(problem)
        return sizes

    def _shape(self, tensor, sizes) -> tuple[int, ...]:
        from tlc import ir

        params = {p.name: p.value for p in self.kernel.params}
        return tuple(sizes[d.name] if isinstance(d, ir.Sym) and d.kind is ir.SymKind.SIZE
                     else ir.evaluate(d, params) for d in tensor.shape)

    def __call__(self, **arrays):
        """Run on NumPy arrays, PyCUDA GPUArrays or PyTorch CUDA tensors (every tensor argument
        of one kind); returns the outputs in that kind, each poisoned with NaN before the
        launch so that an element the kernel does not write shows."""
        import numpy as np

        from tlc import ir

        driver()
        _keep_alive.clear()
        sizes = self.sizes(arrays)
        for name in self.converted:
            _check_fp16_range(arrays[name], name)
        kind = _kind(next(arrays[t.name] for t in self.kernel.tensors if t.shape and
                          t.role == "input"))
        outputs, copies, strides, bound = {}, [], {}, {}
        env = {p.name: p.value for p in self.kernel.params} | sizes
        launches = []
        for source in self.kernels:
            arguments = [self._bind(argument, arrays, sizes, env, kind, outputs, copies,
                                    strides, bound) for argument in source.arguments]
            grid = tuple(int(ir.evaluate(e, env)) for e in source.extents)
            _check_grid(grid)
            if any(a.kind == "tensormap" for a in source.arguments):
                arguments = _driver_arguments(source.arguments, arguments)
            launches.append((arguments, grid + (1,) * (3 - len(grid))))
        self.launch_args = launches
        self.launch()
        for name, handle in copies:
            outputs[name] = handle.get()
        return outputs

    def _bind(self, argument, arrays, sizes, env, kind, outputs, copies, strides, bound):
        """One launch argument of a call; a tensor, output or workspace is made once a call
        and shared by the kernels that take it."""
        import numpy as np

        from tlc import ir

        name, dtype = argument.name, argument.dtype
        if argument.kind in ("tensor", "workspace") and name in bound:
            return bound[name]
        if argument.kind == "size":
            return np.int32(sizes[name])
        if argument.kind == "scalar":
            return np.float32(arrays[name])
        if argument.kind == "stride":
            stride = strides[argument.of][argument.dim]
            if argument.dtype == "int32" and not 0 <= stride < 2 ** 31:
                raise ArgumentError(f"{argument.of}: a stride of {stride} elements along "
                                    f"dimension {argument.dim}; the kernel takes up to "
                                    "2^31 - 1 there: pass .contiguous()")
            return np.int32(stride) if argument.dtype == "int32" else np.int64(stride)
        if argument.kind == "tensormap":
            return self._tensor_map(argument, bound, strides, sizes)
        if argument.kind == "workspace":
            shape = tuple(int(ir.evaluate(d, env)) for d in argument.shape)
            pointer, handle = _poisoned(kind if kind == "torch" else "gpuarray", shape, "fp32")
            _keep_alive.append(handle)
            bound[name] = pointer
            return pointer
        tensor = self.kernel.tensor(name)
        if argument.output:
            # an output the kernel adds into (`with add`, the backward pass's dQ) starts at
            # zero; every other one is poisoned, so an element left unwritten shows
            fill = 0.0 if name in added_outputs(self.kernel) else float("nan")
            pointer, handle = _poisoned(kind, self._shape(tensor, sizes), dtype, fill)
            outputs[name] = handle
            if kind == "numpy":
                copies.append((name, handle))
            strides[name] = contiguous_strides(handle.shape)
        else:
            pointer = _pointer(kind, arrays[name], name, dtype)
            strides[name] = _element_strides(kind, arrays[name])
        bound[name] = pointer
        return pointer

    def _tensor_map(self, argument, bound, strides, sizes):
        """The TMA descriptor of a tensor bound earlier in the call (tensors come first), as
        the 128 bytes PyCUDA passes by value."""
        import numpy as np

        from tlc.launch import DriverError, tensor_map_of

        shape = self._shape(self.kernel.tensor(argument.of), sizes)
        try:
            value = tensor_map_of(int(bound[argument.of]), argument.dtype, shape,
                                  strides[argument.of], argument.box)
        except DriverError as error:
            raise ArgumentError(f"{argument.of}: {error}") from None
        return np.frombuffer(value, dtype=np.uint8).copy()

    def launch(self) -> None:
        """Launch again with the arguments of the last call (for timing)."""
        for source, function, (arguments, grid) in zip(self.kernels, self.functions,
                                                       self.launch_args):
            if isinstance(arguments, DriverArguments):
                function.launch(grid, arguments.pointers, arguments.values)
            else:
                function(*arguments, block=(source.threads, 1, 1), grid=grid,
                         shared=source.shared_memory)


class DriverArguments:
    """A call's arguments as tlc.launch.Kernel takes them: device addresses, then the rest
    as Python numbers and tensor-map bytes."""

    def __init__(self, pointers, values):
        self.pointers, self.values = pointers, values


def _driver_arguments(arguments, bound) -> DriverArguments:
    pointers, values = [], []
    for argument, value in zip(arguments, bound):
        if argument.kind in ("tensor", "workspace"):
            pointers.append(int(value))
        elif argument.kind == "tensormap":
            values.append(value.tobytes())
        else:
            values.append(value.item())
    return DriverArguments(pointers, values)


GRID_LIMITS = (2 ** 31 - 1, 65535, 65535)


def _check_grid(grid: tuple[int, ...]) -> None:
    """A grid the driver would refuse, as the ArgumentError of the sizes that made it."""
    for axis, (extent, limit) in enumerate(zip(grid, GRID_LIMITS)):
        if extent > limit:
            raise ArgumentError(f"the grid's {'xyz'[axis]} extent is {extent}, past the "
                                f"{limit} CUDA allows: smaller sizes, or a plan with larger "
                                "tiles")


FP16_MAX = 65504.0


def index_problem(kernel, sizes: dict[str, int]) -> str | None:
    """What is wrong with sizes that the kernel's indexing relies on, or None.

    A Copy from global memory picks its element along an untiled dimension from the block
    indices: `[Hkv = h / GROUP]` reads head h / GROUP of K for every h of the grid. That
    needs the grid's extent to be that dimension times GROUP exactly (H = Hkv · GROUP: more
    reads past K's end, fewer pairs query heads with the wrong K/V heads); any other index
    expression must stay below the dimension for the largest block index.
    """
    from tlc import ir
    from tlc.passes.facts import grouped_heads, text

    if kernel.grid is None:
        return None
    env = {p.name: p.value for p in kernel.params} | sizes
    try:
        extents = {index: int(ir.evaluate(extent, env)) for extent, index in
                   zip(kernel.grid.extents, kernel.grid.indices)}
    except (ir.NotConstant, ArithmeticError, ValueError):
        return None
    spans = dict(zip(kernel.grid.indices, kernel.grid.extents))
    heads = grouped_heads(kernel, sizes)
    if heads is not None and heads != sizes["H"]:
        return (f"H = {sizes['H']}, but the plan needs H = Hkv · GROUP = {sizes['Hkv']} · "
                f"{env['GROUP']} = {heads} (its query heads are its K/V heads' groups)")
    for op in ir.walk(kernel.body):
        if not (isinstance(op, ir.Copy) and ir.Level.GLOBAL in (op.src, op.dst)):
            continue
        tensor = kernel.tensor(op.name)
        if tensor is None or not tensor.shape:
            continue
        tiled = {d.name for d in tensor.shape[len(tensor.shape) - len(op.tile or ()):]
                 if isinstance(d, ir.Sym)}
        for name, expr in op.coord:
            if name in tiled or name not in sizes:
                continue
            used = _names(expr) - {p.name for p in kernel.params}
            if not used or not used <= set(extents):
                continue
            size, where = sizes[name], f"{tensor.name}'s {name} = {text(expr)}"
            if (isinstance(expr, ir.BinOp) and expr.op == "/" and
                    isinstance(expr.left, ir.Sym) and _names(expr.right) <= set(env)):
                index, group = expr.left.name, ir.evaluate(expr.right, env)
                if extents[index] != size * group:
                    return (f"{text(spans[index])} = {extents[index]}, but the plan reads "
                            f"{where} for {index} < {text(spans[index])}, so it needs "
                            f"{text(spans[index])} = {name} · {text(expr.right)} = {size} · "
                            f"{group} = {size * group}")
                continue
            top = ir.evaluate(expr, env | {i: extents[i] - 1 for i in used})
            if not 0 <= top < size:
                return (f"{tensor.name}: {name} = {size}, but the plan reads {where} = {top} "
                        f"for the last block of the grid")
    return None


def table_problem(kernel, tables: dict, sizes: dict[str, int], pools: dict[str, int]):
    """What is wrong with a call's int32 tables (host arrays) for the rows they place, or
    None. Every Copy's `start` and `rows` are evaluated for every block of the grid: each
    must read its tables within their shapes and keep the rows inside the tensor (0 <= start,
    0 <= rows, start + rows <= its rows); a paged tensor's table entries that those rows
    reach must name pages of its pool (`pools`: pages in each paged tensor's storage). The
    kernel reads where they point, so this is what keeps it inside its arguments."""
    import itertools

    import numpy as np

    from tlc import ir
    from tlc.passes.facts import text

    if not tables or kernel.grid is None:
        return None
    env = {p.name: p.value for p in kernel.params} | sizes | tables
    extents = {i: int(ir.evaluate(e, env)) for e, i in zip(kernel.grid.extents,
                                                            kernel.grid.indices)}
    for op in ir.walk(kernel.body):
        if not isinstance(op, ir.Copy) or (op.rows is None and op.start is None):
            continue
        tensor = kernel.tensor(op.name)
        used = sorted({s.name for e in (op.rows, op.start) if e is not None
                       for s in ir.symbols(e)} & set(extents))
        capacity = int(ir.evaluate(tensor.shape[-2], env))
        for values in itertools.product(*(range(extents[i]) for i in used)):
            where = env | dict(zip(used, values))
            shown = ", ".join(f"{i} = {v}" for i, v in zip(used, values))
            try:
                start = int(ir.evaluate(op.start, where)) if op.start is not None else 0
                rows = int(ir.evaluate(op.rows, where)) if op.rows is not None else \
                    capacity - start
            except ValueError as error:
                return f"{op.name}: at {shown}: {error}"
            if start < 0 or rows < 0 or start + rows > capacity:
                return (f"{op.name}: at {shown}, rows {start} .. {start + rows - 1} "
                        f"({text(op.start) if op.start is not None else '0'} and "
                        f"{text(op.rows) if op.rows is not None else 'the rest'}) leave its "
                        f"{capacity} rows")
            if tensor.pages and rows:
                table, page = tensor.pages
                first = dict(op.coord).get(tensor.shape[0].name) if isinstance(
                    tensor.shape[0], ir.Sym) else None
                entry = int(ir.evaluate(first, where)) if first is not None else 0
                size = int(ir.evaluate(page, env))
                reached = np.asarray(tables[table])[entry, :-(-(start + rows) // size)]
                bad = reached[(reached < 0) | (reached >= pools[tensor.name])]
                if bad.size:
                    return (f"{table}: entry {int(bad[0])} of row {entry} is reached by "
                            f"{op.name}'s rows and is outside its pool of "
                            f"{pools[tensor.name]} pages")
    return None


def _host(array):
    """An int32 table's values on the host (NumPy as it is; a GPUArray or tensor copied)."""
    import numpy as np

    if hasattr(array, "get"):
        return array.get()
    if hasattr(array, "cpu"):
        return array.cpu().numpy()
    return np.asarray(array)


def _names(expr) -> set[str]:
    from tlc import ir

    return {sym.name for sym in ir.symbols(expr)}


def _check_fp16_range(array, name: str) -> None:
    """Refuse a bf16 input with a finite value of magnitude above 65504, which the plan's
    conversion to fp16 would turn into an infinity (docs/backend.md, "bf16 on Turing")."""
    import numpy as np

    if _kind(array) == "torch":
        import torch

        finite = torch.where(torch.isfinite(array), array.abs(), torch.zeros_like(array))
        largest = float(finite.amax()) if array.numel() else 0.0
    else:
        bits = array.get() if _kind(array) == "gpuarray" else np.asarray(array)
        magnitude = bits.view(np.uint16) & 0x7FFF
        magnitude = magnitude[magnitude < 0x7F80]  # drop infinities and NaNs
        largest = float((magnitude.astype(np.uint32) << 16).view(np.float32).max()) \
            if magnitude.size else 0.0
    if largest > FP16_MAX:
        raise ArgumentError(f"{name}: holds {largest:g}; this plan computes its bf16 inputs "
                            f"as fp16, whose largest value is {FP16_MAX:g}: scale the input "
                            "or run a plan that keeps bf16 (sm_80 or newer)")


_NUMPY_DTYPES = {"fp16": "float16", "bf16": "uint16", "fp32": "float32"}
_TORCH_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
_NAN_BITS = {"fp16": 0x7E00, "bf16": 0x7FC0}


def _kind(array) -> str:
    if hasattr(array, "gpudata"):
        return "gpuarray"
    if hasattr(array, "data_ptr") and hasattr(array, "is_cuda"):
        return "torch"
    return "numpy"


def _pointer(kind: str, array, name: str, dtype: str):
    import numpy as np

    if _kind(array) != kind:
        raise ArgumentError(f"{name}: pass every tensor as the same kind of array")
    if kind == "torch":
        import torch

        if not array.is_cuda or array.dtype != getattr(torch, _TORCH_DTYPES[dtype]):
            raise ArgumentError(f"{name}: expected a CUDA tensor of torch.{_TORCH_DTYPES[dtype]}")
        problem = layout_problem(array.data_ptr(), tuple(array.shape), tuple(array.stride()),
                                 array.element_size())
        if problem:
            raise ArgumentError(f"{name}: {problem}")
        return np.uintp(array.data_ptr())
    if array.dtype != np.dtype(_NUMPY_DTYPES[dtype]):
        raise ArgumentError(f"{name}: expected {_NUMPY_DTYPES[dtype]} ({dtype}), got "
                            f"{array.dtype}")
    if kind == "gpuarray":
        if not array.flags.c_contiguous:
            raise ArgumentError(f"{name}: expected a contiguous array")
        return array.gpudata
    from pycuda import gpuarray

    device = gpuarray.to_gpu(np.ascontiguousarray(array))
    _keep_alive.append(device)
    return device.gpudata


_keep_alive: list = []  # device copies of NumPy inputs, alive until the next call

ACCESS_BYTES = 16  # the widest global access a kernel makes (a 16-byte vector)


def layout_problem(address: int, shape: tuple[int, ...], strides: tuple[int, ...],
                   itemsize: int) -> str | None:
    """What keeps a tensor at this address with these element strides from being read in
    place, or None. A kernel reads each row's elements in 16-byte pieces: the last dimension
    must be contiguous, and the start of every row 16-byte aligned (a 1-D tensor is read an
    element at a time). The stride of a dimension of extent 1 is never used."""
    if shape and shape[-1] > 1 and strides[-1] != 1:
        return (f"its last dimension has stride {strides[-1]}; the kernel needs it contiguous "
                "(stride 1): pass .contiguous()")
    alignment = ACCESS_BYTES if len(shape) > 1 else itemsize
    if address % alignment:
        return (f"its data starts {address % alignment} bytes past a {alignment}-byte "
                f"boundary; the kernel reads {alignment}-byte pieces: pass .clone()")
    if any((stride * itemsize) % alignment for stride, extent in zip(strides[:-1], shape)
           if extent > 1):
        return (f"its strides {tuple(strides)} (in elements) leave rows off {alignment}-byte "
                "boundaries: pass .contiguous()")
    return None


def contiguous_strides(shape) -> tuple[int, ...]:
    strides, step = [], 1
    for extent in reversed(tuple(shape)):
        strides.append(step)
        step *= extent
    return tuple(reversed(strides))


def _element_strides(kind: str, array) -> tuple[int, ...]:
    """The strides of an argument as the kernel sees it, in elements: NumPy arrays travel as
    contiguous copies, GPUArrays must be contiguous, PyTorch tensors keep their own."""
    if kind == "torch":
        return tuple(array.stride())
    return contiguous_strides(array.shape)


def added_outputs(kernel) -> set[str]:
    """The outputs a kernel stores into `with add` (they start at zero)."""
    from tlc import ir

    return {op.name for op in ir.walk(kernel.body) if isinstance(op, ir.Copy) and op.add}


def _poisoned(kind: str, shape, dtype: str, fill: float = float("nan")):
    """(launch argument, handle) for an output filled with NaN (or `fill`)."""
    import numpy as np

    if kind == "torch":
        import torch

        out = torch.full(shape, fill, dtype=getattr(torch, _TORCH_DTYPES[dtype]),
                         device="cuda")
        return np.uintp(out.data_ptr()), out
    from pycuda import gpuarray

    if fill == 0.0:
        host = np.zeros(shape, dtype=np.float32 if dtype == "fp32" else _NUMPY_DTYPES[dtype])
    else:
        host = np.full(shape, np.nan, dtype=np.float32) if dtype == "fp32" else \
            np.full(shape, _NAN_BITS[dtype], dtype=np.uint16).view(_NUMPY_DTYPES[dtype])
    out = gpuarray.to_gpu(host)
    return out.gpudata, out


def load(plan, arch: str | None = None, cache_dir=None, prebuilt=None,
         from_ptx: bool = False) -> LoadedKernel:
    """Check a plan (its text, or a CheckResult already in hand), lower it for its target,
    and build it for the GPU present: natively for that GPU's arch from the same source (a
    cubin for sm_80 does not load on sm_90), or, with from_ptx, as PTX for the plan's own
    target that the driver JIT-compiles for the GPU present (how an sm_75 plan runs on a
    newer GPU exactly as written for Turing). `prebuilt` is a (lowered, build result) pair
    made earlier, e.g. by parallel builds. The plan is checked against the GPU present too:
    a plan that does not fit it (its shared memory, say) is refused with what to change."""
    from tlc.arch import ARCHS
    from tlc.driver import check
    from tlc.driver import CompileError, build_for, lowered_of

    result = plan if hasattr(plan, "diagnostics") else check(plan, arch=arch)
    if not result.ok:
        raise ArgumentError("the plan does not pass tlc check:\n" + _lines(result))
    try:
        lowered = lowered_of(result)
    except CompileError as error:
        raise ArgumentError(str(error)) from None
    present = device_arch()
    only = ARCHS[result.arch].runs_only_on if result.arch in ARCHS else None
    if only and present != only:
        raise ArgumentError(f"an {result.arch} plan runs on {only} GPUs only; this GPU is "
                            f"{present} ({device_name()}): check the plan for {present}")
    if not only:
        check_fits(result, present)
    if prebuilt is not None:
        lowered, built = prebuilt
    else:  # arch-specific code (sm_90a) is built for its own target
        built = build_for(lowered, result.arch if from_ptx or only else present,
                          output="ptx" if from_ptx else "cubin", cache_dir=cache_dir)
    if str(built.path).endswith(".ptx"):
        how = (f"PTX for compute_{result.arch[3:]}, JIT-compiled by the driver for {present} "
               f"({device_name()})")
    elif only:
        how = f"built for {result.arch}, run on {present} ({device_name()})"
    else:
        how = f"built natively for {present} ({device_name()}) from the {result.arch} plan"
    return LoadedKernel(result.kernel, lowered, load_module(built.path), present, how,
                        image=Path(built.path).read_bytes())


def _lines(result) -> str:
    return "\n".join(f"  line {d.span.line}: {d.code}: {d.message}" for d in result.diagnostics
                     if d.is_error)


HARDWARE_LIMITS = ("smem-budget", "thread-budget")


def check_fits(result, present: str) -> None:
    """The plan's shared memory and threads checked against the GPU present, where tlc knows
    it and it is not the plan's own target: a plan for an A100 may not fit an RTX 4090's
    shared memory. (Its code is the plan's target's, so the other checks stay that target's.)"""
    from tlc.driver import check_source
    from tlc.arch import ARCHS

    if present == result.arch or present not in ARCHS:
        return
    here = check_source(result.source, arch=present)
    problems = [d for d in here.diagnostics if d.code in HARDWARE_LIMITS]
    if problems:
        raise ArgumentError(f"the plan does not fit the GPU present ({present}): "
                            + "; ".join(f"line {d.span.line}: {d.message} ({d.help})"
                                        for d in problems[:3]))


def variant_of(kernel) -> tuple:
    """(reference.Variant, name of the ALiBi slopes input or None): what the plan computes
    besides plain softmax attention, its window sides and softcap evaluated from its params."""
    from tlc import ir
    from tlc.reference import Variant

    params = {p.name: p.value for p in kernel.params}
    causal, window, softcap, slopes = False, None, None, None
    for op in ir.walk(kernel.body):
        if isinstance(op, ir.Mask):
            causal = causal or op.causal
            if op.window is not None:
                window = tuple(int(ir.evaluate(side, params)) for side in op.window)
        elif isinstance(op, ir.Softcap):
            softcap = float(ir.evaluate(op.cap, params))
        elif isinstance(op, ir.Alibi):
            slopes = op.slopes
    return Variant(causal=causal, window=window, softcap=softcap), slopes


def random_inputs(kernel: LoadedKernel, shape: dict[str, int], seed: int = 0):
    """Fresh normal inputs of the given sizes for a loaded plan: (the arguments in storage
    form, the values as rounded to their dtype, the name of the ALiBi slopes or None). The
    softmax scale is 1/sqrt(D); ALiBi slopes are the ALiBi paper's."""
    import numpy as np

    from tlc import ir
    from tlc.reference import alibi_slopes, to_dtype, to_storage

    tables = [t.name for t in kernel.kernel.tensors if t.dtype is ir.DType.INT32]
    if tables:  # random tables would be random pages and lengths, not a cache
        raise ArgumentError(f"the plan reads int32 tables ({', '.join(tables)}): random inputs "
                            "would not be a K/V cache; run it through "
                            "tlc.torch.attention_with_kvcache with a cache of your own")
    rng = np.random.default_rng(seed)
    params = {p.name: p.value for p in kernel.kernel.params}
    _, slopes_name = variant_of(kernel.kernel)
    arrays, rounded = {}, {}
    for tensor in kernel.kernel.tensors:
        if tensor.role != "input":
            continue
        if not tensor.shape:
            last = [t for t in kernel.kernel.tensors if t.shape][0].shape[-1]
            arrays[tensor.name] = 1.0 / np.sqrt(ir.evaluate(last, params))  # softmax scale
            continue
        dims = tuple(shape[d.name] if isinstance(d, ir.Sym) and d.kind is ir.SymKind.SIZE
                     else ir.evaluate(d, params) for d in tensor.shape)
        if tensor.name == slopes_name:
            arrays[tensor.name] = alibi_slopes(dims[0]).astype(np.float32)
            continue
        dtype = tensor.dtype.value
        values = to_dtype(rng.standard_normal(dims, dtype=np.float32), dtype)
        rounded[tensor.name] = values
        arrays[tensor.name] = to_storage(values, dtype)
    return arrays, rounded, slopes_name


def check_random(kernel: LoadedKernel, shape: dict[str, int], seed: int = 0,
                 whole: bool = False):
    """Run a loaded plan once on fresh normal inputs of the given sizes (ALiBi slopes as the
    ALiBi paper sets them; the output poisoned first) and return the verdict against the
    float64 reference: of every (batch, head) with whole, else of the first and the last. A
    plan that writes the row log-sum-exp has it compared too (reference.compare_lse). A
    backward plan's gradients are judged instead (tlc/backward.py)."""
    import dataclasses

    import numpy as np

    from tlc import ir
    from tlc.backward import check_backward, is_backward
    from tlc.reference import (attention, attention_low, compare, compare_lse, from_storage,
                               logsumexp)

    if is_backward(kernel.kernel):  # its gradients, judged by tlc/backward.py
        variant, slopes_name = variant_of(kernel.kernel)
        arrays, rounded, _ = random_inputs(kernel, shape, seed)
        return check_backward(kernel, arrays, rounded, variant, slopes_name)
    variant, _ = variant_of(kernel.kernel)
    arrays, rounded, slopes_name = random_inputs(kernel, shape, seed)
    q_name, k_name, v_name = [t.name for t in kernel.kernel.tensors
                              if t.role == "input" and t.shape and t.name != slopes_name][:3]
    lse_names = {op.out for op in ir.walk(kernel.kernel.body) if isinstance(op, ir.Logsumexp)}
    out_name = next(t.name for t in kernel.kernel.tensors
                    if t.role == "output" and t.name not in lse_names)
    dtype = kernel.kernel.tensor(q_name).dtype.value
    results = kernel(**arrays)
    out = from_storage(results[out_name], dtype)
    q, k, v = rounded[q_name], rounded[k_name], rounded[v_name]
    group = q.shape[1] // k.shape[1]
    slices = sorted({(0, 0), (q.shape[0] - 1, q.shape[1] - 1)}) if not whole else \
        [(b, h) for b in range(q.shape[0]) for h in range(q.shape[1])]
    ref, low = [], []
    for b, h in slices:
        one = [x[b, head][None, None] for x, head in ((q, h), (k, h // group), (v, h // group))]
        slope = None if slopes_name is None else arrays[slopes_name][h:h + 1]
        ref.append(attention(*one, variant, slope)[0, 0])
        low.append(attention_low(*one, dtype, variant, slope)[0, 0])
    got = np.stack([out[b, h] for b, h in slices])
    verdict = compare(got, np.stack(ref), np.stack(low), dtype, q_len=q.shape[2],
                      k_len=k.shape[2], variant=variant)
    for name in sorted(lse_names & set(results)):
        lse = np.asarray(results[name])  # NumPy inputs give NumPy outputs
        expected, rough = [], []
        for b, h in slices:
            one = [x[b, head][None, None] for x, head in ((q, h), (k, h // group))]
            slope = None if slopes_name is None else arrays[slopes_name][h:h + 1]
            expected.append(logsumexp(*one, variant, slope)[0, 0])
            rough.append(logsumexp(*one, variant, slope, dtype=dtype)[0, 0])
        rows = compare_lse(np.stack([lse[b, h] for b, h in slices]), np.stack(expected),
                           np.stack(rough))
        verdict = dataclasses.replace(verdict, ok=verdict.ok and rows.ok,
                                      problems=verdict.problems + rows.problems)
    return verdict


def flops_of(kernel: LoadedKernel, shape: dict[str, int]) -> float:
    """The attention FLOPs of one launch at these sizes (4·B·H·Nq·Nk·D, only the pairs the
    masks leave visible)."""
    from tlc import ir
    from tlc.reference import attention_flops

    variant, slopes = variant_of(kernel.kernel)
    q, k = [t for t in kernel.kernel.tensors if t.role == "input" and t.shape
            and t.name != slopes][:2]
    sizes = {**{p.name: p.value for p in kernel.kernel.params}, **shape}
    b, h, nq, d = (ir.evaluate(dim, sizes) for dim in q.shape)
    return attention_flops(b, h, nq, ir.evaluate(k.shape[-2], sizes), d, variant)


def run_random(kernel: LoadedKernel, shape: dict[str, int], iters: int = 20, seed: int = 0):
    """check_random on two (batch, head) slices, then the timing: returns (verdict,
    milliseconds per launch, TFLOP/s)."""
    verdict = check_random(kernel, shape, seed)
    milliseconds = time_launches(kernel, iters)
    return verdict, milliseconds, flops_of(kernel, shape) / milliseconds / 1e9


def time_launches(kernel: LoadedKernel, iters: int) -> float:
    """Median milliseconds of `iters` launches after 3 warm-up launches, by CUDA events."""
    import statistics

    cuda = driver()
    for _ in range(3):
        kernel.launch()
    times = []
    for _ in range(iters):
        start, end = cuda.Event(), cuda.Event()
        start.record()
        kernel.launch()
        end.record()
        end.synchronize()
        times.append(start.time_till(end))
    return statistics.median(times)
