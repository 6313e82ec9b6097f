"""Loading and launching built kernels through the CUDA driver API, by ctypes: the per-call
path of tlc.torch. It runs on the caller's stream (so CUDA graphs capture it), in the
device's primary context (the one PyTorch uses), and costs a few microseconds a call: the
arguments are packed by one precompiled `struct` format into a buffer whose fields the
kernel-parameter array already points at. libcuda is opened on first use, so importing this
module costs nothing on a machine without a GPU.
"""
from __future__ import annotations

import ctypes
import struct
import threading

from tlc import ir


class DriverError(RuntimeError):
    """The CUDA driver is missing or refused a call; the message names the call and its error."""


# cuFuncSetAttribute's CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES (cuda.h)
_MAX_DYNAMIC_SHARED = 8
# What cuLaunchKernel answers when the thread has no current context or another device's:
# CUDA_ERROR_INVALID_CONTEXT (201), CUDA_ERROR_INVALID_HANDLE (400). The launch then makes
# the kernel's context current and tries again, so the common case queries no context.
_OTHER_CONTEXT = (201, 400)
# The packed type of each kind of kernel argument ('@': native sizes and alignment, which is
# how the driver lays out a kernel's parameters).
_FORMATS = {"tensor": "P", "scalar": "f", "size": "i", "int32": "i", "int64": "q"}

_library = None
_lock = threading.Lock()


def _cuda():
    """libcuda with the prototypes used here, initialised once."""
    global _library
    if _library is None:
        with _lock:
            if _library is None:
                try:
                    library = ctypes.CDLL("libcuda.so.1")
                except OSError as error:
                    raise DriverError(f"the CUDA driver (libcuda.so.1) could not be loaded: "
                                      f"{error}; install the NVIDIA driver") from None
                p, i, u = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint
                prototypes = {
                    "cuInit": [u], "cuDeviceGet": [ctypes.POINTER(i), i],
                    "cuDevicePrimaryCtxRetain": [ctypes.POINTER(p), i],
                    "cuCtxGetCurrent": [ctypes.POINTER(p)], "cuCtxSetCurrent": [p],
                    "cuModuleLoadData": [ctypes.POINTER(p), p],
                    "cuModuleGetFunction": [ctypes.POINTER(p), p, ctypes.c_char_p],
                    "cuFuncSetAttribute": [p, i, i],
                    "cuLaunchKernel": [p, u, u, u, u, u, u, u, p, p, p],
                    "cuGetErrorName": [i, ctypes.POINTER(ctypes.c_char_p)],
                }
                for name, arguments in prototypes.items():
                    function = getattr(library, name)
                    function.argtypes, function.restype = arguments, i
                _check(library, library.cuInit(0), "cuInit")
                _library = library
    return _library


def _check(library, status: int, call: str) -> None:
    if status:
        name = ctypes.c_char_p()
        library.cuGetErrorName(status, ctypes.byref(name))
        raise DriverError(f"{call} failed: {(name.value or b'error').decode()} ({status})")


def primary_context(device: int) -> int:
    """The primary context of device `device` (retained), made current on this thread."""
    cuda = _cuda()
    handle, context = ctypes.c_int(), ctypes.c_void_p()
    _check(cuda, cuda.cuDeviceGet(ctypes.byref(handle), device), "cuDeviceGet")
    _check(cuda, cuda.cuDevicePrimaryCtxRetain(ctypes.byref(context), handle.value),
           "cuDevicePrimaryCtxRetain")
    _check(cuda, cuda.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    return context.value


def parameter_layout(arguments) -> tuple[struct.Struct, list[int]]:
    """The packing of a kernel's arguments (target.Argument, in order) into one buffer laid
    out as the driver lays out kernel parameters, and each one's byte offset in it."""
    codes = [_FORMATS[a.dtype if a.kind == "stride" else a.kind] for a in arguments]
    offsets = [struct.calcsize("@" + "".join(codes[:k + 1])) - struct.calcsize("@" + codes[k])
               for k in range(len(codes))]
    return struct.Struct("@" + "".join(codes)), offsets


class Kernel:
    """One kernel loaded from a cubin or from PTX (which the driver JIT-compiles for the GPU),
    in the primary context of `device`, launchable with its arguments in order."""

    def __init__(self, image: bytes, name: str, arguments, threads: int, shared_bytes: int,
                 device: int = 0):
        cuda = _cuda()
        self.context = primary_context(device)
        self.threads, self.shared_bytes = threads, shared_bytes
        module, function = ctypes.c_void_p(), ctypes.c_void_p()
        # The image must stay alive while the driver reads it; a PTX text ends with NUL.
        self._image = ctypes.create_string_buffer(image.rstrip(b"\0") + b"\0")
        _check(cuda, cuda.cuModuleLoadData(ctypes.byref(module), self._image),
               f"cuModuleLoadData ({name})")
        _check(cuda, cuda.cuModuleGetFunction(ctypes.byref(function), module, name.encode()),
               f"cuModuleGetFunction ({name})")
        self.module, self.function = module.value, function.value
        if shared_bytes > 48 * 1024:  # above 48 KB a kernel must opt in to dynamic shared memory
            _check(cuda, cuda.cuFuncSetAttribute(self.function, _MAX_DYNAMIC_SHARED, shared_bytes),
                   f"cuFuncSetAttribute ({name}, {shared_bytes} bytes of shared memory)")
        self.packer, self.offsets = parameter_layout(arguments)
        self._local = threading.local()  # each thread packs into its own buffer
        self._launch = cuda.cuLaunchKernel

    def _buffers(self):
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:
            values = ctypes.create_string_buffer(max(self.packer.size, 1))
            base = ctypes.addressof(values)
            pointers = (ctypes.c_void_p * max(len(self.offsets), 1))(
                *[base + offset for offset in self.offsets])
            buffers = self._local.buffers = (values, pointers)
        return buffers

    def launch(self, grid: tuple[int, int, int], pointers, values, stream: int = 0) -> None:
        """Launch on `stream` (a CUstream handle; 0 the legacy default): the kernel's tensor
        arguments first (device addresses as ints), then its other arguments in order."""
        values_buffer, parameters = self._buffers()
        self.packer.pack_into(values_buffer, 0, *pointers, *values)
        status = self._launch(self.function, grid[0], grid[1], grid[2], self.threads, 1, 1,
                              self.shared_bytes, stream, parameters, None)
        if status in _OTHER_CONTEXT:  # this thread's current context is another device's
            _check(_cuda(), _cuda().cuCtxSetCurrent(self.context), "cuCtxSetCurrent")
            status = self._launch(self.function, grid[0], grid[1], grid[2], self.threads, 1,
                                  1, self.shared_bytes, stream, parameters, None)
        if status:
            _check(_cuda(), status, f"cuLaunchKernel (grid {grid}, {self.threads} threads)")


def grid_function(kernel: ir.Kernel):
    """A function from the runtime sizes (a dict) to the kernel's grid as three ints: the
    grid's expressions compiled once into Python closures, so that a launch evaluates no IR."""
    params = {p.name: p.value for p in kernel.params}
    extents = [_closure(e, params) for e in kernel.grid.extents]
    extents += [lambda sizes: 1] * (3 - len(extents))
    first, second, third = extents
    return lambda sizes: (first(sizes), second(sizes), third(sizes))


_OPERATORS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
              "/": lambda a, b: a // b, "%": lambda a, b: a % b}


def _closure(expr: ir.Expr, params: dict):
    """`expr` as a function of the runtime sizes, with the params folded in. Sizes and params
    are never negative, so floor division is C's division here."""
    try:
        value = ir.evaluate(expr, params)
        return lambda sizes: value
    except ir.NotConstant:
        pass
    if isinstance(expr, ir.Sym):
        name = expr.name
        return lambda sizes: sizes[name]
    if isinstance(expr, ir.BinOp) and expr.op in _OPERATORS:
        operator = _OPERATORS[expr.op]
        left, right = _closure(expr.left, params), _closure(expr.right, params)
        return lambda sizes: operator(left(sizes), right(sizes))
    if isinstance(expr, ir.Call):
        name, arguments = expr.func, [_closure(a, params) for a in expr.args]
        return lambda sizes: ir.call(name, [a(sizes) for a in arguments])
    raise DriverError(f"the grid extent {expr} has no launch-time form")
