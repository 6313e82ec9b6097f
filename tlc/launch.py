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
_FORMATS = {"tensor": "P", "workspace": "P", "scalar": "f", "size": "i", "int32": "i", "int64": "q",
            "tensormap": "128s"}
# A CUtensorMap is 128 bytes, 64-byte aligned (cuda.h), passed by value as a __grid_constant__.
TENSORMAP_BYTES, TENSORMAP_ALIGNMENT = 128, 64

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
                    "cuTensorMapEncodeTiled": [p, i, u, p, p, p, p, p, i, i, i, i],
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
    out as C lays out their types (a tensor map on a 64-byte boundary), and each one's byte
    offset in it. The driver reads each parameter through its own pointer."""
    fmt, offsets = "@", []
    for argument in arguments:
        code = _FORMATS[argument.dtype if argument.kind == "stride" else argument.kind]
        if argument.kind == "tensormap":
            padding = -struct.calcsize(fmt) % TENSORMAP_ALIGNMENT
            fmt += f"{padding}x" if padding else ""
        fmt += code
        offsets.append(struct.calcsize(fmt) - struct.calcsize("@" + code))
    return struct.Struct(fmt), offsets


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
        if buffers is None:  # 64-byte aligned, as a tensor map's value must be
            values = ctypes.create_string_buffer(self.packer.size + TENSORMAP_ALIGNMENT)
            shift = -ctypes.addressof(values) % TENSORMAP_ALIGNMENT
            base = ctypes.addressof(values) + shift
            pointers = (ctypes.c_void_p * max(len(self.offsets), 1))(
                *[base + offset for offset in self.offsets])
            buffers = self._local.buffers = (values, shift, pointers)
        return buffers

    def launch(self, grid: tuple[int, int, int], pointers, values, stream: int = 0) -> None:
        """Launch on `stream` (a CUstream handle; 0 the legacy default): the kernel's tensor
        arguments first (device addresses as ints), then its other arguments in order."""
        values_buffer, shift, parameters = self._buffers()
        self.packer.pack_into(values_buffer, shift, *pointers, *values)
        status = self._launch(self.function, grid[0], grid[1], grid[2], self.threads, 1, 1,
                              self.shared_bytes, stream, parameters, None)
        if status in _OTHER_CONTEXT:  # this thread's current context is another device's
            _check(_cuda(), _cuda().cuCtxSetCurrent(self.context), "cuCtxSetCurrent")
            status = self._launch(self.function, grid[0], grid[1], grid[2], self.threads, 1,
                                  1, self.shared_bytes, stream, parameters, None)
        if status:
            _check(_cuda(), status, f"cuLaunchKernel (grid {grid}, {self.threads} threads)")


# cuTensorMapEncodeTiled's enums (cuda.h): element types, and the swizzles by their span.
TENSORMAP_DTYPES = {"fp16": 6, "fp32": 7, "bf16": 9}
TENSORMAP_SWIZZLES = {0: 0, 32: 1, 64: 2, 128: 3}
ELEMENT_BYTES = {"fp16": 2, "bf16": 2, "fp32": 4}


class TensorMapEncoder:
    """CUtensorMaps of one tiled TMA copy (dtype, dims and box in elements, innermost first;
    strides in bytes of each dimension but the innermost; swizzle the span in bytes: 0, 32,
    64 or 128) for any address: the driver's limits are checked and its arguments built
    once, so that `encode` costs one driver call, as a call of tlc.torch on new tensors
    needs. Elements of a box past the tensor's end read as zeros."""

    def __init__(self, dtype: str, dims, strides: tuple[int, ...], box, swizzle: int = 128):
        rank, element = len(dims), ELEMENT_BYTES[dtype]
        problems = []
        if not 1 <= rank <= 5 or len(box) != rank or len(strides) != rank - 1:
            problems.append(f"rank {rank} with {len(box)} box extents and {len(strides)} "
                            "strides (1 to 5 dimensions, a stride for each but the innermost)")
        problems += [f"stride {s} bytes is not a multiple of 16" for s in strides if s % 16]
        problems += [f"box extent {b} is not within 1..256" for b in box if not 1 <= b <= 256]
        if swizzle not in TENSORMAP_SWIZZLES:
            problems.append(f"swizzle {swizzle}: one of 0, 32, 64, 128 bytes")
        elif swizzle and box[0] * element > swizzle:
            problems.append(f"the box's inner extent, {box[0] * element} bytes, exceeds the "
                            f"{swizzle}-byte swizzle span: split it")
        if (box[0] * element) % 16:
            problems.append(f"the box's inner extent, {box[0] * element} bytes, is not a "
                            "multiple of 16")
        if problems:
            raise DriverError("tensor map: " + "; ".join(problems))
        u64, u32 = ctypes.c_uint64, ctypes.c_uint32
        self._fixed = (TENSORMAP_DTYPES[dtype], rank)
        self._arrays = ((u64 * rank)(*dims), (u64 * max(rank - 1, 1))(*strides),
                        (u32 * rank)(*box), (u32 * rank)(*[1] * rank))
        # no interleave; the swizzle; L2 promotion 128 B; zero fill past the tensor's end
        self._modes = (0, TENSORMAP_SWIZZLES[swizzle], 2, 0)
        self._storage = threading.local()  # each thread encodes into its own buffer
        self._what = f"cuTensorMapEncodeTiled (dims {tuple(dims)}, box {tuple(box)})"

    def encode(self, address: int) -> bytes:
        """The 128 bytes of the map of the tensor at `address` (16-byte aligned)."""
        if address % 16:
            raise DriverError(f"tensor map: address {address:#x} is not 16-byte aligned")
        aligned = getattr(self._storage, "aligned", None)
        if aligned is None:
            storage = ctypes.create_string_buffer(TENSORMAP_BYTES + TENSORMAP_ALIGNMENT)
            aligned = ctypes.addressof(storage) + (-ctypes.addressof(storage) %
                                                   TENSORMAP_ALIGNMENT)
            self._storage.buffer, self._storage.aligned = storage, aligned
        cuda = _cuda()
        _check(cuda, cuda.cuTensorMapEncodeTiled(aligned, *self._fixed, address,
                                                 *self._arrays, *self._modes), self._what)
        return ctypes.string_at(aligned, TENSORMAP_BYTES)


def tensor_map(address: int, dtype: str, dims, strides: tuple[int, ...], box,
               swizzle: int = 128) -> bytes:
    """The 128-byte CUtensorMap of a tiled TMA copy of the tensor at `address`
    (TensorMapEncoder says the terms). The limits the driver sets are checked here with what
    to change."""
    return TensorMapEncoder(dtype, dims, strides, box, swizzle).encode(address)


def encoder_of(dtype: str, shape, element_strides, box) -> TensorMapEncoder:
    """A TensorMapEncoder for a tensor as callers hold it: shape and strides (in elements)
    outermost first, the last dimension contiguous; box innermost first, as a tensormap
    Argument has it."""
    element = ELEMENT_BYTES[dtype]
    return TensorMapEncoder(dtype, tuple(reversed(tuple(shape))),
                            tuple(s * element for s in reversed(tuple(element_strides)[:-1])),
                            box)


def tensor_map_of(address: int, dtype: str, shape, element_strides, box) -> bytes:
    """tensor_map for a tensor as callers hold it (encoder_of says how)."""
    return encoder_of(dtype, shape, element_strides, box).encode(address)


def grid_function(kernel: ir.Kernel, extents=None):
    """A function from the runtime sizes (a dict) to a grid as three ints, the plan's or
    `extents` (IR, e.g. a KernelSource's): the expressions compiled once into Python
    closures, so that a launch evaluates no IR."""
    params = {p.name: p.value for p in kernel.params}
    extents = [_closure(e, params) for e in (extents or kernel.grid.extents)]
    extents += [lambda sizes: 1] * (3 - len(extents))
    first, second, third = extents
    return lambda sizes: (first(sizes), second(sizes), third(sizes))


def shape_function(kernel: ir.Kernel, exprs):
    """A function from the runtime sizes to the values of `exprs` (a workspace's shape)."""
    params = {p.name: p.value for p in kernel.params}
    closures = [_closure(e, params) for e in exprs]
    return lambda sizes: tuple(c(sizes) for c in closures)


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
