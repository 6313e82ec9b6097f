"""Running built kernels on the GPU through PyCUDA, which is imported only here and only when
a kernel runs, so the compiler works on machines without a GPU."""
from __future__ import annotations


class GpuUnavailable(Exception):
    """No usable GPU: PyCUDA missing, no driver, or no device; the message says which."""


_context = None


def driver():
    """pycuda.driver, initialised with a context on device 0."""
    global _context
    try:
        import pycuda.driver as cuda
    except ImportError as error:
        raise GpuUnavailable(f"PyCUDA is not installed ({error}): pip install 'tlc[gpu]'")
    if _context is None:
        try:
            cuda.init()
            if cuda.Device.count() == 0:
                raise GpuUnavailable("the CUDA driver sees no GPU")
            _context = cuda.Device(0).make_context()
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


class LoadedKernel:
    """A plan built for the GPU present, callable with NumPy arrays (fp16 as numpy.float16,
    bf16 as the uint16 bit patterns)."""

    def __init__(self, kernel, lowered, module, built_for: str, how: str):
        self.kernel, self.lowered, self.built_for, self.how = kernel, lowered, built_for, how
        cuda = driver()
        self.function = module.get_function(lowered.name)
        if lowered.shared_memory > 48 * 1024:
            self.function.set_attribute(
                cuda.function_attribute.MAX_DYNAMIC_SHARED_SIZE_BYTES, lowered.shared_memory)

    def sizes(self, arrays: dict) -> dict:
        """The runtime sizes, read off the tensors' shapes, checked for agreement."""
        from tlc import ir

        sizes: dict[str, int] = {}
        params = {p.name: p.value for p in self.kernel.params}
        for tensor in self.kernel.tensors:
            if not tensor.shape or tensor.role == "output":
                continue  # outputs are allocated here, from the sizes of the inputs
            if tensor.name not in arrays:
                raise ArgumentError(f"{tensor.name}: missing (the plan's inputs are "
                                    f"{', '.join(t.name for t in self.kernel.tensors if t.role == 'input')})")
            array = arrays[tensor.name]
            if array.ndim != len(tensor.shape):
                raise ArgumentError(f"{tensor.name}: {array.ndim} dimensions, the plan has "
                                    f"{len(tensor.shape)}")
            for dim, extent in zip(tensor.shape, array.shape):
                if isinstance(dim, ir.Sym) and dim.kind is ir.SymKind.SIZE:
                    if sizes.setdefault(dim.name, extent) != extent:
                        raise ArgumentError(f"{tensor.name}: {dim.name} = {extent}, but another "
                                            f"argument has {dim.name} = {sizes[dim.name]}")
                else:
                    expected = ir.evaluate(dim, params)
                    if expected != extent:
                        raise ArgumentError(f"{tensor.name}: dimension of {extent} where the plan "
                                            f"has {expected}")
        return sizes

    def __call__(self, **arrays):
        import numpy as np

        from tlc import ir

        cuda = driver()
        sizes = self.sizes(arrays)
        arguments, outputs = [], {}
        for name, kind in self.lowered.arguments:
            if kind == "size":
                arguments.append(np.int32(sizes[name]))
            elif kind.startswith("scalar"):
                arguments.append(np.float32(arrays[name]))
            else:
                tensor = self.kernel.tensor(name)
                if tensor.role == "output":
                    shape = tuple(sizes.get(d.name, None) if isinstance(d, ir.Sym) and
                                  d.kind is ir.SymKind.SIZE else ir.evaluate(d, {
                                      p.name: p.value for p in self.kernel.params})
                                  for d in tensor.shape)
                    host = np.full(shape, np.nan, dtype=np.float16) if kind.endswith("fp16") \
                        else np.full(shape, 0x7FC0, dtype=np.uint16)  # poisoned: NaN
                    outputs[name] = host
                    arguments.append(cuda.InOut(host))
                else:
                    array = np.ascontiguousarray(arrays[name])
                    arguments.append(cuda.In(array))
        env = {p.name: p.value for p in self.kernel.params} | sizes
        grid = tuple(int(ir.evaluate(e, env)) for e in self.kernel.grid.extents)
        grid = grid + (1,) * (3 - len(grid))
        self.function(*arguments, block=(self.lowered.threads, 1, 1), grid=grid,
                      shared=self.lowered.shared_memory)
        return outputs


def load(plan: str, arch: str | None = None, cache_dir=None, prebuilt=None) -> LoadedKernel:
    """Check a plan, lower it for its target, and build it for the GPU present: natively for
    that GPU's arch from the same source (a cubin for sm_80 does not load on sm_90).
    `prebuilt` is a (lowered, build result) pair made earlier, e.g. by parallel builds."""
    from tlc.api import check
    from tlc.backends import backend_for
    from tlc.build import build

    result = check(plan, arch=arch)
    if not result.ok:
        raise ArgumentError("the plan does not pass tlc check:\n" + "\n".join(
            f"  line {d.span.line}: {d.code}: {d.message}" for d in result.diagnostics))
    backend = backend_for(result.arch or "")
    if backend is None:
        raise ArgumentError(f"no backend generates code for {result.arch} yet")
    present = device_arch()
    if prebuilt is not None:
        lowered, built = prebuilt
    else:
        lowered = backend.lower(result.kernel)
        built = build(lowered.source, present, cache_dir=cache_dir)
    how = f"built natively for {present} ({device_name()}) from the {result.arch} plan"
    return LoadedKernel(result.kernel, lowered, load_module(built.path), present, how)
