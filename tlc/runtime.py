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
