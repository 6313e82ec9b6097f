"""tlc from PyTorch: `attention(q, k, v, ...)`, a drop-in for `flash_attn_func` or
`F.scaled_dot_product_attention` that runs tlc's kernel for the GPU present. It is the custom
op `torch.ops.tlc.attention`, with a fake implementation, so `torch.compile(fullgraph=True)`
graphs it whole and CUDA graphs capture it.

    import torch, tlc.torch
    q = torch.randn(2, 4096, 16, 128, device="cuda", dtype=torch.float16)   # (B, N, H, D)
    k = v = torch.randn(2, 4096, 4, 128, device="cuda", dtype=torch.float16)
    o = tlc.torch.attention(q, k, v, causal=True, layout="bshd")

The plan for a call is tlc.templates' plan for its case (dtype, head dim, query heads per K/V
head, mask, softcap, ALiBi) on the GPU's target, or that plan's winner where `tlc tune` has
tuned it on this GPU. Each plan is checked, lowered and built once per (plan, GPU,
toolchain), kept in this process and on disk (tlc.build's cache); a call then costs a few
microseconds of host time: checks of its arguments, an output allocation, one launch on the
current stream with the tensors' own strides.
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass

try:
    import torch
except ImportError as error:  # tlc itself never needs PyTorch; only this module does
    raise ImportError("tlc.torch needs PyTorch (pip install torch); the rest of tlc works "
                      "without it") from error

from tlc.runtime import ArgumentError, contiguous_strides

LAYOUTS = ("bhsd", "bshd")  # (batch, heads, sequence, head dim) or (batch, sequence, heads, ...)
DTYPES = {torch.float16: "fp16", torch.bfloat16: "bf16"}
HEAD_DIMS = range(8, 513, 8)  # what the templates tile: a multiple of 8 (16-byte rows), <= 512
GRID_LIMIT = 65535            # blocks along the grid's y (heads) and z (batch)
INT32_LIMIT = 2 ** 31 - 1     # sizes and row strides travel as int32

# Debugging: fill each output with NaN before the launch, so an element the kernel fails to
# write shows (the tests set it; TLC_POISON=1 sets it for a process). Off, the hot path
# allocates and launches only.
poison_outputs = os.environ.get("TLC_POISON") == "1"


class NotCovered(ArgumentError):
    """No plan covers the case; the message names the nearest case that is covered."""


@dataclass(frozen=True)
class Case:
    """What decides the plan of a call (the sizes and the scale do not: they are arguments)."""

    dtype: str
    head_dim: int
    group: int = 1                          # query heads per K/V head
    causal: bool = False
    window: tuple[int, int] | None = None   # (left, right) keys around the diagonal
    softcap: float | None = None
    alibi: bool = False
    arch: str = "sm_80"                     # the plan's target
    lse: bool = False                       # also the row log-sum-exp, (B, H, Nq) fp32
    splits: int = 1                         # blocks per query tile, each on part of the keys
    decode: bool = False                    # a few query rows: the decoding tiles
    lengths: bool = False                   # each sequence's own key count (a K/V cache)
    page: int | None = None                 # a paged K/V cache: rows per page
    varlen: bool = False                    # packed sequences of their own lengths

    def describe(self) -> str:
        parts = [self.dtype, f"D = {self.head_dim}"]
        parts += [f"{self.group} query heads per K/V head"] * (self.group > 1)
        parts += ["causal"] * self.causal + [f"window {self.window}"] * bool(self.window)
        parts += [f"softcap {self.softcap:g}"] if self.softcap else []
        parts += ["ALiBi"] * self.alibi + ["with the log-sum-exp"] * self.lse
        parts += [f"keys split {self.splits} ways"] * (self.splits > 1)
        parts += [f"pages of {self.page} rows"] * bool(self.page)
        parts += ["per-sequence cache lengths"] * (self.lengths and not self.page)
        parts += ["packed sequences of their own lengths"] * self.varlen
        return ", ".join(parts) + f" for {self.arch}"


# ---- plans ----

def target_of(capability: tuple[int, int]) -> tuple[str, bool]:
    """(the plan's target, whether it runs as PTX that the driver compiles) for a GPU of this
    compute capability: its own target where tlc lowers one; a newer GPU runs sm_86 plans
    (the smallest shared memory of the family) as PTX."""
    from tlc.backends import target_for, TARGETS

    arch = f"sm_{capability[0]}{capability[1]}"
    if arch in TARGETS and target_for(arch).lowers:
        return arch, False
    if capability >= (8, 0):
        return "sm_86", True
    raise NotCovered(f"this GPU is {arch}; tlc's plans run on sm_75 (Turing) and newer")


def plan_for(case: Case, gpu: str | None = None, driver: str | None = None) -> str:
    """The plan text a call of this case runs: the template's, or its tuned winner for this
    GPU and driver where the tune cache has one that still passes `tlc check`."""
    from tlc.driver import check
    from tlc.templates import plan
    from tlc.tune import tuned

    refuse_uncovered(case)
    variant = {"window": case.window, "softcap": case.softcap, "alibi": case.alibi,
               "lse": case.lse, "splits": case.splits, "lengths": case.lengths,
               "page": case.page, "varlen": case.varlen}
    try:
        text = plan(case.dtype, case.head_dim, case.causal, case.group, arch=case.arch,
                    decode=case.decode, **variant)
    except ValueError:
        raise NotCovered(f"no tiling of tlc's template fits {case.describe()}; "
                         f"{_nearest(case)}") from None
    if gpu and driver:
        winner = tuned(text, case.arch, gpu, driver)
        if winner and check(winner, arch=case.arch).ok:
            return winner
    return text


def own_target_case(case: Case, strides, element_bytes: int, shape=None) -> Case:
    """The case on the target that only this GPU runs, if there is one (sm_90a on Hopper:
    wgmma and TMA), where its template takes the case and TMA can read the tensors (every
    stride but the last a positive multiple of 16 bytes); else the case as it is, on the GPU's
    portable target. `shape`, where given, shapes a case for the call's sizes on the target
    it runs on (shaped_case: the splits follow the target). Paged and per-sequence K/V caches
    and packed batches have no sm_90a plan yet (tlc.torch_kvcache, tlc.torch_varlen)."""
    from tlc.arch import ARCHS

    shape = shape or (lambda c: c)
    own = [name for name, facts in ARCHS.items() if facts.runs_only_on == case.arch]
    if not own or any(s <= 0 or s * element_bytes % 16 for t in strides for s in t[:-1]):
        return shape(case)
    candidate = shape(_replace(case, arch=own[0]))
    try:
        plan_for(candidate)
    except NotCovered:
        return shape(case)
    return candidate


def refuse_uncovered(case: Case) -> None:
    """Raise NotCovered for a case outside what the templates can state."""
    if case.dtype not in DTYPES.values():
        raise NotCovered(f"dtype {case.dtype}: tlc's plans take torch.float16 or "
                         "torch.bfloat16 (cast with .half() or .bfloat16())")
    if case.head_dim not in HEAD_DIMS:
        raise NotCovered(f"head dim {case.head_dim}: {_nearest(case)}")
    if case.dtype == "bf16" and case.arch == "sm_75":
        raise NotCovered("bf16 on Turing (sm_75): its tensor cores have no bf16 and tlc's "
                         "plan would compute it as fp16, which overflows past 65504; the "
                         f"nearest covered case is {_replace(case, dtype='fp16').describe()}: "
                         "pass .half() tensors")
    if case.window is not None and min(case.window) < 0:
        raise NotCovered(f"window {case.window}: both sides are key counts >= 0 (a window "
                         "unbounded on the left with right side 0 is causal=True)")
    if case.softcap is not None and not case.softcap > 0:
        raise NotCovered(f"softcap {case.softcap}: a cap is > 0 (None for no softcap)")


def _replace(case: Case, **changes) -> Case:
    from dataclasses import replace

    return replace(case, **changes)


def _nearest(case: Case) -> str:
    below = [d for d in HEAD_DIMS if d <= case.head_dim]
    above = [d for d in HEAD_DIMS if d >= case.head_dim]
    near = sorted({d for d in (below[-1:] + above[:1])}) or [HEAD_DIMS[-1]]
    return ("the nearest covered head dims are " + " and ".join(map(str, near)) +
            " (a multiple of 8 up to 512: pad the head dim with zeros)")


# ---- built kernels ----

# The template's kernel arguments: its tensors, taken from the call's tensors in this order,
# then the values a call's signature fixes.
_POINTERS = ["Q", "K", "V", "O", "slopes", "L", "O_part", "O_part_lse", "table", "lengths",
             "q_start", "q_end", "k_start", "k_end"]
_VALUES = ["scale", "B", "H", "Nq", "Hkv", "Nk", "PAGES", "Tq", "Tk", "MaxQ", "L_stride0",
           "L_stride1", "table_stride0"] + [
    f"{t}_stride{d}" for t in "QKVO" for d in range(3)]


class Built:
    """A case's plan, checked, lowered, built and loaded on one device."""

    def __init__(self, case: Case, device: int, from_ptx: bool):
        from pathlib import Path

        from tlc import launch
        from tlc.driver import CompileError, build_for, check, lowered_of
        from tlc.runtime import check_fits

        self.case = case
        gpu = torch.cuda.get_device_name(device)
        self.text = plan_for(case, gpu, _driver_version())
        result = check(self.text, arch=case.arch)
        try:
            lowered = lowered_of(result)
        except CompileError as error:
            raise ArgumentError(f"the plan for {case.describe()} does not lower: {error}")
        from tlc.arch import ARCHS

        present = "sm_{}{}".format(*torch.cuda.get_device_capability(device))
        own = case.arch in ARCHS and ARCHS[case.arch].runs_only_on  # sm_90a: Hopper's own
        if not own:
            check_fits(result, present)
        built = build_for(lowered, case.arch if from_ptx or own else present,
                          output="ptx" if from_ptx else "cubin")
        image = Path(built.path).read_bytes()
        # Each kernel in launch order: (loaded kernel, which pointers, which values, grid).
        self.stages = [self._stage(source, image, device, result.kernel)
                       for source in lowered.kernels]
        # Each kernel's TMA descriptors (sm_90a), made at the call from a tensor's address:
        # (position among its values, which pointer, dtype, its shape function, box).
        self.tensor_maps = [[(source.arguments[len(stage[1]):].index(a), _POINTERS.index(a.of),
                              a.dtype, launch.shape_function(result.kernel,
                                                             result.kernel.tensor(a.of).shape),
                              a.box)
                             for a in source.arguments if a.kind == "tensormap"]
                            for source, stage in zip(lowered.kernels, self.stages)]
        self.kernel, self.grid = self.stages[0][0], self.stages[0][3]
        # Scratch buffers the kernels pass along (a split's parts), fp32, by their shapes.
        self.workspaces = [(_POINTERS.index(a.name), launch.shape_function(result.kernel,
                                                                          a.shape))
                           for a in lowered.main.arguments if a.kind == "workspace"]
        self.how = (f"PTX for compute_{case.arch[3:]}, JIT-compiled for {present}" if from_ptx
                    else f"built for {case.arch}, run on {present}" if own
                    else f"built for {present}")

    def _stage(self, source, image: bytes, device: int, kernel):
        from tlc import launch

        pointers = [a.name for a in source.arguments if a.kind in ("tensor", "workspace")]
        tail = [a.name for a in source.arguments[len(pointers):]]
        maps = {a.name for a in source.arguments if a.kind == "tensormap" and a.of in _POINTERS}
        missing = [name for name in pointers + tail if name not in _POINTERS + _VALUES
                   and name not in maps]
        if missing or any(a.kind in ("tensor", "workspace") for a in
                          source.arguments[len(pointers):]):
            raise ArgumentError(f"the plan for {self.case.describe()} takes arguments "
                                "tlc.torch does not supply: "
                                f"{', '.join(missing) or 'in another order'}")
        loaded = launch.Kernel(image, source.name, source.arguments, source.threads,
                               source.shared_memory, device)
        return (loaded, [_POINTERS.index(n) for n in pointers], tail,
                launch.grid_function(kernel, source.extents))


_built: dict[tuple, Built] = {}
_building: dict[tuple, threading.Lock] = {}  # one lock a key: other cases build meanwhile
_building_lock = threading.Lock()


def _driver_version() -> str | None:
    from tlc.runtime import GpuUnavailable, driver_version

    try:
        return driver_version()
    except (GpuUnavailable, ImportError, OSError):
        return None


def built_for(case: Case, device: int, from_ptx: bool) -> Built:
    """The loaded kernel of a case on a device, built on first use."""
    key = (case, device, from_ptx)
    found = _built.get(key)
    if found is None:
        with _building_lock:
            lock = _building.setdefault(key, threading.Lock())
        with lock:
            found = _built.get(key)
            if found is None:
                found = _built[key] = Built(case, device, from_ptx)
    return found


# ---- the call ----

def attention(q, k, v, *, causal: bool = False, window: tuple[int, int] | None = None,
              softcap: float | None = None, alibi_slopes=None, scale: float | None = None,
              layout: str = "bhsd", return_lse: bool = False, arch: str | None = None,
              deterministic: bool = False):
    """Softmax attention of q against k and v by tlc's kernel for the GPU present.

    q: (B, H, Nq, D) for layout "bhsd", (B, Nq, H, D) for "bshd"; k, v: the same with Hkv
    heads and Nk keys, H a multiple of Hkv (GQA/MQA). fp16 or bf16, on one CUDA device, any
    strides whose last dimension is contiguous (others are copied first). causal masks as
    FlashAttention does, aligned to the bottom right (with Nq < Nk the queries are the last
    Nq positions; SDPA's is_causal aligns top left, which agrees when Nq = Nk); window =
    (left, right) keeps the keys from left before to right after the diagonal; softcap
    squashes scores as cap · tanh(s / cap); alibi_slopes: (H,) fp32 per-head slopes; scale
    defaults to 1 / sqrt(D). A query row that sees no key gives zeros. Returns O in q's
    layout; with return_lse, (O, L) with L the (B, H, Nq) fp32 log-sum-exp of each row's
    scores (natural log, -inf for a row that sees no key). arch runs another target's plan
    (e.g. "sm_75", as PTX the driver compiles). With grad enabled and an input that requires
    grad, the call is differentiable (q, k and v; L too): the backward runs tlc's backward
    plan for the case (tlc/torch_backward.py), and a case without one is refused up front;
    deterministic=True takes the backward whose dQ has the same bits every run (a second
    kernel sums it per query tile instead of atomic adds from every key tile).
    """
    if layout not in LAYOUTS:
        raise ArgumentError(f"layout {layout!r}: one of {', '.join(map(repr, LAYOUTS))}")
    left, right = (-1, -1) if window is None else _window(window)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    arguments = (q, k, v, bool(causal), left, right, 0.0 if softcap is None else float(softcap),
                 alibi_slopes, float(scale), layout, arch or "", bool(deterministic))
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        # the op that saves L for the backward (tlc/torch_backward.py); a case with no
        # backward plan is refused here, before the forward runs
        from tlc.torch_backward import check_covered

        check_covered(*arguments[:8], layout, arch or "", bool(deterministic))
        out, rows = _op_lse(*arguments)
        return (out, rows) if return_lse else out
    if _plain_eager(q):
        return _attention_cuda(*arguments, lse=return_lse)
    return (_op_lse if return_lse else _op)(*arguments)


def _plain_eager(q) -> bool:
    """Whether a call may skip PyTorch's dispatcher (a few microseconds): a plain CUDA
    tensor, outside torch.compile, with no dispatch mode or transform that must see the op
    (fake tensors, make_fx, vmap, ...). Everything else calls torch.ops.tlc.attention."""
    return (type(q) is torch.Tensor and q.is_cuda and not torch.compiler.is_compiling()
            and not _dispatch_modes() and not _wrapped(q))


def _dispatch_modes() -> int:
    return torch._C._len_torch_dispatch_stack()


def _wrapped(q) -> bool:
    functorch = getattr(torch._C, "_functorch", None)
    return bool(functorch and functorch.is_functorch_wrapped_tensor(q))


def _window(window) -> tuple[int, int]:
    try:
        left, right = (int(side) for side in window)
    except (TypeError, ValueError):
        raise ArgumentError(f"window {window!r}: a pair (left, right) of key counts") from None
    if left < 0 or right < 0:
        raise ArgumentError(f"window {window!r}: both sides are key counts >= 0 (causal=True "
                            "is the window unbounded on the left with right side 0)")
    return left, right


def _sizes(q, k, v, layout: str):
    """(B, H, Nq, Hkv, Nk, D) of the call, its arguments checked for agreement."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ArgumentError(f"{name}: {t.dim()} dimensions; attention takes 4 "
                                f"({'B, H, N, D' if layout == 'bhsd' else 'B, N, H, D'})")
    if layout == "bhsd":
        (b, h, nq, d), (bk, hkv, nk, dk) = q.shape, k.shape
    else:
        (b, nq, h, d), (bk, nk, hkv, dk) = q.shape, k.shape
    if tuple(v.shape) != tuple(k.shape):
        raise ArgumentError(f"v: shape {tuple(v.shape)}, k has {tuple(k.shape)}; tlc's plans "
                            "take K and V of one shape")
    if bk != b or dk != d:
        raise ArgumentError(f"k: shape {tuple(k.shape)} does not match q's {tuple(q.shape)} "
                            f"in batch or head dim ({layout})")
    if hkv == 0 or h % hkv:
        raise ArgumentError(f"q has {h} heads and k {hkv}: the query heads must be a multiple "
                            "of the K/V heads")
    if not (q.dtype == k.dtype == v.dtype):
        raise ArgumentError(f"q, k, v are {q.dtype}, {k.dtype}, {v.dtype}: one dtype")
    return b, h, nq, hkv, nk, d


def _case_of(q, h: int, hkv: int, d: int, causal, left, right, softcap, alibi, arch,
             lse) -> Case:
    dtype = DTYPES.get(q.dtype)
    if dtype is None:
        raise NotCovered(f"dtype {q.dtype}: tlc's plans take torch.float16 or torch.bfloat16 "
                         "(cast with .half() or .bfloat16())")
    return Case(dtype, d, h // hkv, causal, None if left < 0 else (left, right),
                softcap or None, alibi, arch, lse)


def _readable(t) -> bool:
    """Whether the kernel reads t in place: 16-byte aligned, contiguous rows (the quick
    test; runtime.layout_problem says what is wrong otherwise)."""
    s = t.stride()
    return s[3] == 1 and not (s[0] % 8 or s[1] % 8 or s[2] % 8 or t.data_ptr() % 16)


def _in_place(t):
    """t, or a fresh contiguous copy where the kernel cannot read t where it lies."""
    if _readable(t):
        return t
    from tlc.runtime import layout_problem

    if layout_problem(t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.element_size()):
        return t.clone(memory_format=torch.contiguous_format)  # a new, aligned allocation
    return t


def _current_stream(device: int) -> int:
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)  # no Stream object: cheaper
    return raw(device) if raw else torch.cuda.current_stream(device).cuda_stream


class _Recipe:
    """What calls of one signature (shapes, strides, dtypes, device, options) launch: the
    kernel and grid, the arguments that stay the same from call to call (scale, sizes,
    strides), and the output's shape; made once, so that a call only allocates its output,
    reads the data pointers and launches."""

    __slots__ = ("launches", "workspaces", "out_shape", "lse_shape", "dtype", "device",
                 "copy", "zeros", "maps", "last_maps")


_recipes: dict[tuple, _Recipe] = {}


def _attention_cuda(q, k, v, causal=False, left=-1, right=-1, softcap=0.0, alibi_slopes=None,
                    scale=1.0, layout="bhsd", arch="", deterministic=False, lse=False):
    """O, or (O, L) with lse: the implementation behind both ops and the eager call
    (`deterministic` is the backward's choice: the forward is the same)."""
    slopes_key = None if alibi_slopes is None else (
        alibi_slopes.shape, alibi_slopes.stride(), alibi_slopes.dtype,
        alibi_slopes.get_device())
    key = (q.shape, k.shape, v.shape, q.stride(), k.stride(), v.stride(), q.dtype, k.dtype,
           v.dtype, q.get_device(), k.get_device(), v.get_device(), causal, left, right,
           softcap, scale, layout, arch, slopes_key, lse)
    recipe = _recipes.get(key)
    if recipe is None:
        recipe = _recipes[key] = _recipe(q, k, v, causal, left, right, softcap, alibi_slopes,
                                         scale, layout, arch, lse)
    out = torch.empty(recipe.out_shape, dtype=recipe.dtype, device=recipe.device)
    rows = torch.empty(recipe.lse_shape, dtype=torch.float32, device=recipe.device) \
        if lse else None
    if recipe.zeros is not None:
        if recipe.zeros:  # no key to see: every row is zeros, its log-sum-exp -inf
            out.zero_()
            if lse:
                rows.fill_(float("-inf"))
        return (out, rows) if lse else out
    if recipe.copy or (q.data_ptr() | k.data_ptr() | v.data_ptr()) & 15:
        q, k, v = _in_place(q), _in_place(k), _in_place(v)
        if recipe.copy:  # the copies' strides are not the caller's: a recipe of their own
            return _attention_cuda(q, k, v, causal, left, right, softcap, alibi_slopes, scale,
                                   layout, arch, lse=lse)
    if poison_outputs:
        out.fill_(float("nan"))
        if lse:
            rows.fill_(float("nan"))
    pointers = [q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(),
                0 if alibi_slopes is None else alibi_slopes.data_ptr(),
                rows.data_ptr() if lse else 0, 0, 0]
    if recipe.workspaces:  # alive until the stream is done with them (the caching allocator)
        parts = [torch.empty(shape, dtype=torch.float32, device=recipe.device)
                 for _, shape in recipe.workspaces]
        for (index, _), part in zip(recipe.workspaces, parts):
            pointers[index] = part.data_ptr()
    stream = _current_stream(recipe.device.index)
    tails = _with_tensor_maps(recipe, pointers) if recipe.maps else None
    for index, (kernel, order, tail, grid) in enumerate(recipe.launches):
        kernel.launch(grid, [pointers[i] for i in order], tails[index] if tails else tail,
                      stream)
    return (out, rows) if lse else out


def _with_tensor_maps(recipe, pointers) -> list:
    """Each kernel's values with its TMA descriptors for these tensors' addresses: encoded
    where the addresses differ from the last call's (a few microseconds a descriptor), else
    the last call's."""
    from tlc.launch import DriverError

    key = tuple(pointers[i] for maps in recipe.maps for _, i, _ in maps)
    last = recipe.last_maps
    if last is not None and last[0] == key:
        return last[1]
    tails = []
    for (_, _, tail, _), maps in zip(recipe.launches, recipe.maps):
        tail = list(tail)
        for position, pointer, encoder in maps:
            try:
                tail[position] = encoder.encode(pointers[pointer])
            except DriverError as error:
                raise ArgumentError(f"{_POINTERS[pointer]}: {error}") from None
        tails.append(tuple(tail))
    recipe.last_maps = (key, tails)
    return tails


def _recipe(q, k, v, causal, left, right, softcap, alibi_slopes, scale, layout, arch, lse):
    """Check a call's arguments and work out what its signature launches (see _Recipe)."""
    b, h, nq, hkv, nk, d = _sizes(q, k, v, layout)
    device = q.get_device()
    if device < 0 or k.get_device() != device or v.get_device() != device:
        raise ArgumentError("q, k and v must be CUDA tensors on one device")
    if arch:
        from tlc.arch import ARCHS

        if arch not in ARCHS:
            raise ArgumentError(f"arch {arch!r}: one of {', '.join(ARCHS)}")
        from_ptx = True
    else:
        arch, from_ptx = _present_target(device)
    case = _case_of(q, h, hkv, d, causal, left, right, softcap, alibi_slopes is not None, arch,
                    lse)
    packed = _packs_query_heads(nq, h, hkv, left, alibi_slopes)
    case = call_case(case, b, h, nq, hkv, nk, left, alibi_slopes is not None,
                     _multiprocessors(device), [t.stride() for t in (q, k, v)],
                     q.element_size(), own=not from_ptx)
    group = h // hkv if packed else 1
    built = built_for(case, device, from_ptx)
    recipe = _Recipe()
    recipe.maps = recipe.last_maps = None
    recipe.out_shape, recipe.dtype, recipe.device = tuple(q.shape), q.dtype, q.device
    recipe.lse_shape = (b, h, nq)
    recipe.zeros = False if b * h * nq == 0 else True if nk == 0 else None  # no launch
    recipe.copy = any(_in_place(t) is not t for t in (q, k, v))
    if recipe.zeros is not None or recipe.copy:
        return recipe
    if max(nq, nk) > INT32_LIMIT or h > GRID_LIMIT or b > GRID_LIMIT:
        raise ArgumentError(f"B = {b}, H = {h}, Nq = {nq}, Nk = {nk}: the kernel's grid "
                            f"takes up to {GRID_LIMIT} heads and batch entries and sequences "
                            f"up to {INT32_LIMIT}")
    if alibi_slopes is not None:
        _check_slopes(alibi_slopes, h, device)
    out_strides = contiguous_strides(recipe.out_shape)
    views = [(t.stride()[0], t.stride()[1], t.stride()[2]) for t in (q, k, v)]
    views.append(out_strides[:3])
    if layout == "bshd":  # (B, N, H, D) tensors seen as (B, H, N, D): swap the middle strides
        views = [(s0, s2, s1) for s0, s1, s2 in views]
    if max(view[2] for view in views) > INT32_LIMIT:
        raise ArgumentError("a row stride past 2^31 elements: pass .contiguous() tensors")
    sizes = {"B": b, "H": h, "Nq": nq, "Hkv": hkv, "Nk": nk}
    values = {"L_stride0": h * nq, "L_stride1": nq}  # L: a fresh contiguous (B, H, Nq)
    if packed:
        # One query row a head: Q and O (B, H, 1, D) seen as (B, Hkv, GROUP, D), the group's
        # heads as rows (head stride apart), and L (B, H, 1) as (B, Hkv, GROUP).
        for index in (0, 3):
            views[index] = (views[index][0], group * views[index][1], views[index][1])
        sizes.update(H=hkv, Nq=group)
        values = {"L_stride0": h, "L_stride1": group}
    values.update(sizes, scale=scale)
    for name, view in zip("QKVO", views):
        values.update({f"{name}_stride{dim}": view[dim] for dim in range(3)})
    recipe.launches = [(kernel, order, tuple(values.get(name) for name in tail), grid(sizes))
                       for kernel, order, tail, grid in built.stages]
    # a TMA descriptor sees each tensor as the kernel does: its shape, the strides of `views`
    from tlc.launch import DriverError, encoder_of

    strides = dict(zip("QKVO", views))
    try:
        recipe.maps = [[(position, pointer, encoder_of(dtype, shape(sizes), strides[
                            _POINTERS[pointer]] + (1,), box))
                        for position, pointer, dtype, shape, box in maps]
                       for maps in built.tensor_maps]
    except DriverError as error:
        raise ArgumentError(f"q, k, v as TMA reads them: {error}") from None
    recipe.maps = recipe.maps if any(recipe.maps) else None
    recipe.workspaces = [(index, shape(sizes)) for index, shape in built.workspaces]
    return recipe


def _check_slopes(slopes, heads: int, device: int) -> None:
    if slopes.dtype != torch.float32 or tuple(slopes.shape) != (heads,):
        raise ArgumentError(f"alibi_slopes: {tuple(slopes.shape)} {slopes.dtype}; tlc's plans "
                            f"take ({heads},) torch.float32, a slope per query head")
    if slopes.get_device() != device:
        raise ArgumentError("alibi_slopes must be on q's device")
    if slopes.stride(0) != 1 or slopes.data_ptr() % 4:
        raise ArgumentError("alibi_slopes: pass a contiguous tensor (.contiguous())")


DECODE_ROWS = 16          # query rows up to which a call takes the decoding plan
DECODE_KEY_TILE = 64      # the narrowest key tile of the decoding plans (templates)
MAX_SPLITS = 64
# Blocks a multiprocessor that the splits of a decoding call aim for, by the plan's target
# (default 1.5). Measured on the H200 (benchmarks/decode.py --sweep): the sm_80 plans (two
# warps, cp.async) ran one sequence, 32 heads, 16k-128k keys fastest at 8 splits (256
# blocks), 5 % ahead of 16; the sm_90a plans (a TMA ring, one consumer warpgroup) ran the
# same shapes and 8 packed K/V heads fastest at half those splits, about a block an SM
# (benchmarks/decode_tiles.py --arch sm_90a, h200-decode-tiles-sm_90a.json).
DECODE_FILL = {"sm_90a": 0.75}


def choose_splits(b: int, h: int, nq: int, nk: int, multiprocessors: int,
                  fill: float = 1.5) -> int:
    """How many blocks share one query tile's keys, a power of two: the fewest that reach
    `fill` blocks a multiprocessor (DECODE_FILL), but no split of fewer than four key tiles
    (a split's fixed cost, its part written and merged, must stay small against the keys it
    reads). h and nq are the heads and rows the kernel sees (K/V heads and the group's heads
    where the query heads are packed)."""
    blocks = b * h * -(-nq // DECODE_ROWS)
    splits = 1
    while (blocks * splits < fill * multiprocessors and splits < MAX_SPLITS and
           nk >= 2 * splits * 4 * DECODE_KEY_TILE):
        splits *= 2
    return splits


def shaped_case(case: Case, b: int, h: int, nq: int, hkv: int, nk: int, left: int,
                alibi: bool, multiprocessors: int) -> tuple[Case, bool]:
    """(the case a call of these sizes runs, whether its query heads are packed as rows)."""
    packed = _packs_query_heads(nq, h, hkv, left, alibi or None)
    if packed:  # the group's query heads are the rows of one tile: K and V are read once
        case = _replace(case, group=1, causal=False)
    if nq <= DECODE_ROWS:  # decoding: one warp's rows, and the keys split to fill the GPU
        rows = h // hkv * nq if packed else nq
        case = _replace(case, decode=True, splits=choose_splits(
            b, hkv if packed else h, rows, nk, multiprocessors,
            DECODE_FILL.get(case.arch, 1.5)))
    return case, packed


def call_case(case: Case, b: int, h: int, nq: int, hkv: int, nk: int, left: int, alibi: bool,
              multiprocessors: int, strides, element_bytes: int, own: bool = True) -> Case:
    """The case a call of these sizes and strides runs: shaped for them (shaped_case), on the
    GPU's own target where `own` and that target takes it (own_target_case), else on case's."""
    def shape(unshaped: Case) -> Case:
        return shaped_case(unshaped, b, h, nq, hkv, nk, left, alibi, multiprocessors)[0]

    return own_target_case(case, strides, element_bytes, shape) if own else shape(case)


def _packs_query_heads(nq: int, h: int, hkv: int, left: int, slopes) -> bool:
    """Whether a call runs its query heads as the rows of their K/V head's tile: one query
    row (decoding, where a bottom-right causal mask hides nothing), grouped heads, and no
    per-row rule that would see the rows as positions (a window) or per-head data (ALiBi)."""
    return nq == 1 and hkv < h and left < 0 and slopes is None


_multiprocessor_counts: dict[int, int] = {}


def _multiprocessors(device: int) -> int:
    found = _multiprocessor_counts.get(device)
    if found is None:
        found = _multiprocessor_counts[device] = \
            torch.cuda.get_device_properties(device).multi_processor_count
    return found


_present: dict[int, tuple[str, bool]] = {}


def _present_target(device: int) -> tuple[str, bool]:
    found = _present.get(device)
    if found is None:
        found = _present[device] = target_of(torch.cuda.get_device_capability(device))
    return found


def _attention_cpu(q, *_):
    raise ArgumentError("q, k, v are CPU tensors; tlc's kernels run on CUDA tensors "
                        "(.cuda()), or use torch.nn.functional.scaled_dot_product_attention")


def _attention_fake(q, k, v, causal=False, left=-1, right=-1, softcap=0.0, alibi_slopes=None,
                    scale=1.0, layout="bhsd", arch="", deterministic=False):
    """What torch.compile traces: the output's shape, dtype and (contiguous) strides."""
    _sizes(q, k, v, layout)
    return q.new_empty(q.shape)


def _attention_lse_cuda(*arguments):
    return _attention_cuda(*arguments, lse=True)


def _attention_lse_fake(q, k, v, causal=False, left=-1, right=-1, softcap=0.0,
                        alibi_slopes=None, scale=1.0, layout="bhsd", arch="",
                        deterministic=False):
    b, h, nq, _, _, _ = _sizes(q, k, v, layout)
    return q.new_empty(q.shape), q.new_empty((b, h, nq), dtype=torch.float32)


# ---- registration ----

ARGUMENTS = ("(Tensor q, Tensor k, Tensor v, bool causal=False, int window_left=-1, "
             "int window_right=-1, float softcap=0.0, Tensor? alibi_slopes=None, "
             "float scale=1.0, str layout='bhsd', str arch='', bool deterministic=False)")
SCHEMA = "attention" + ARGUMENTS + " -> Tensor"
SCHEMA_LSE = "attention_lse" + ARGUMENTS + " -> (Tensor, Tensor)"  # (O, L)

_library = torch.library.Library("tlc", "DEF")


def register(schema: str, cuda, fake):
    """Define `torch.ops.tlc.<name>` from its schema: the CUDA kernel, a CPU refusal and the
    fake torch.compile traces; returns the default overload (one lookup less a call)."""
    name = schema.split("(")[0]
    _library.define(schema)
    _library.impl(name, cuda, "CUDA")
    _library.impl(name, _attention_cpu, "CPU")
    torch.library.register_fake(f"tlc::{name}")(fake)
    return getattr(torch.ops.tlc, name).default


_op = register(SCHEMA, _attention_cuda, _attention_fake)
_op_lse = register(SCHEMA_LSE, _attention_lse_cuda, _attention_lse_fake)
from tlc import torch_backward  # noqa: E402  (its op and the autograd formulas of these two)

torch_backward.register(_library, _attention_cpu)
from tlc.torch_kvcache import attention_with_kvcache  # noqa: E402  (they read this module)
from tlc.torch_varlen import attention_varlen  # noqa: E402
from tlc.torch_ring import ring_attention  # noqa: E402
