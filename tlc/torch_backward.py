"""The backward of `tlc.torch.attention`: dQ, dK and dV by tlc's backward plan for the call's
case (tlc.backward_plans, docs/language.md §5.9), as the op `torch.ops.tlc.attention_backward`
and the autograd formula of `torch.ops.tlc.attention_lse` and `torch.ops.tlc.attention`.

The forward saves O and the row log-sum-exp L; the backward takes
Delta = rowsum(dO ∘ O) − dL (the second term is the gradient through L itself, when the caller
used L: ∂L_i/∂S_ij = P_ij, so it enters dS = P ∘ (dP − Delta) as a shift of Delta), zeroes an
fp32 dQ that the kernel adds into, launches the plan's kernel on the current stream and casts dQ
to the inputs' dtype. With deterministic=True it launches two plans instead: dK and dV as
before without dQ, then a plan whose blocks own a query tile and sum its dQ over the key tiles
in registers, so no two blocks add into one element and dQ has the same bits every run. The
plans run on the GPU's portable target (sm_90 on Hopper: there is no sm_90a backward),
natively, or as PTX for `arch`.
"""
from __future__ import annotations

import threading

import torch

from tlc.runtime import ArgumentError

# The backward plan's tensors, in the order a call hands them over, and its values.
POINTERS = ("Q", "K", "V", "dO", "L", "Delta", "dQ", "dK", "dV", "slopes")
GRID_LIMIT = 65535


def backward_case(case):
    """The case whose backward plan a forward case's gradients run: the portable target (the
    backward has no sm_90a plan), without the forward's own choices (the log-sum-exp output,
    split keys, decoding tiles)."""
    from dataclasses import replace

    from tlc.arch import ARCHS

    arch = case.arch
    facts = ARCHS.get(arch)
    if facts is not None and facts.runs_only_on:
        arch = facts.runs_only_on
    return replace(case, arch=arch, lse=False, splits=1, decode=False)


_texts: dict = {}


# The plans of each mode, launched in this order: one kernel whose blocks add dQ by atomics,
# or the deterministic pair (dK and dV; then dQ summed per query tile).
PARTS = {False: ("all",), True: ("dkdv", "dq")}


def parts_for(case, deterministic: bool) -> tuple[str, ...]:
    """The plans a case's backward launches: the mode's, or the deterministic pair where the
    one-kernel plan does not fit (it holds dQ beside dK and dV: D = 128 on sm_80, 72 on
    sm_75, fits only as two plans); NotCovered naming both where neither fits."""
    from tlc.torch import NotCovered

    if deterministic:
        for part in PARTS[True]:
            backward_text(case, part)
        return PARTS[True]
    try:
        backward_text(case, "all")
        return PARTS[False]
    except NotCovered as one:
        try:
            for part in PARTS[True]:
                backward_text(case, part)
        except NotCovered:
            raise one from None
        return PARTS[True]


def backward_text(case, part: str = "all") -> str:
    """A backward plan for a case (cached): part "all", "dkdv" or "dq" (tlc.backward_plans);
    NotCovered with what to change where no plan of tlc.backward_plans fits it."""
    from tlc.backward_plans import backward_plan
    from tlc.torch import NotCovered, refuse_uncovered

    found = _texts.get((case, part))
    if found is None:
        refuse_uncovered(case)
        try:
            found = backward_plan(case.dtype, case.head_dim, case.causal, case.group,
                                  arch=case.arch, window=case.window, softcap=case.softcap,
                                  alibi=case.alibi, part=part)
        except ValueError as why:
            mode = " (deterministic)" if part != "all" else ""
            raise NotCovered(f"no backward{mode} for {case.describe()}: {why}. The forward "
                             "runs under torch.no_grad()") from None
        _texts[(case, part)] = found
    return found


class BuiltBackward:
    """A case's backward plan, checked, lowered, built and loaded on one device."""

    def __init__(self, case, device: int, from_ptx: bool, part: str = "all"):
        from pathlib import Path

        from tlc import launch
        from tlc.driver import CompileError, build_for, check, lowered_of

        self.case = case
        text = backward_text(case, part)
        result = check(text, arch=case.arch)
        try:
            lowered = lowered_of(result)
        except CompileError as error:
            raise ArgumentError(f"the backward plan for {case.describe()} does not lower: "
                                f"{error}") from None
        present = "sm_{}{}".format(*torch.cuda.get_device_capability(device))
        if not from_ptx:
            from tlc.runtime import check_fits

            check_fits(result, present)
        built = build_for(lowered, case.arch if from_ptx else present,
                          output="ptx" if from_ptx else "cubin")
        image = Path(built.path).read_bytes()
        self.stages = []
        for source in lowered.kernels:
            pointers = [a.name for a in source.arguments if a.kind == "tensor"]
            values = [a.name for a in source.arguments[len(pointers):]]
            unknown = [n for n in pointers if n not in POINTERS]
            if unknown or any(a.kind != "tensor" for a in source.arguments[:len(pointers)]):
                raise ArgumentError(f"the backward plan for {case.describe()} takes tensors "
                                    f"tlc.torch does not supply: {', '.join(unknown)}")
            kernel = launch.Kernel(image, source.name, source.arguments, source.threads,
                                   source.shared_memory, device)
            self.stages.append((kernel, pointers, values,
                                launch.grid_function(result.kernel, source.extents)))


_built: dict[tuple, BuiltBackward] = {}
_lock = threading.Lock()


def built_for(case, device: int, from_ptx: bool, part: str = "all") -> BuiltBackward:
    key = (case, device, from_ptx, part)
    with _lock:  # a backward build is rare: one lock for all
        found = _built.get(key)
        if found is None:
            found = _built[key] = BuiltBackward(case, device, from_ptx, part)
    return found


def _bhsd(t, layout: str):
    """t seen as (B, H, N, D) (a view: no copy)."""
    return t if layout == "bhsd" else t.transpose(1, 2)


def delta_of(dout, out, dlse, layout: str):
    """Delta = rowsum(dO ∘ O) − dL: (B, H, Nq) fp32, contiguous over Nq as the plan reads it
    (dL None where the caller did not use L)."""
    delta = (_bhsd(dout, layout).float() * _bhsd(out, layout).float()).sum(-1)
    if dlse is not None:
        delta = delta - dlse.float()
    return delta.contiguous()


def _attention_backward_cuda(dout, q, k, v, out, lse, dlse=None, causal=False, left=-1,
                             right=-1, softcap=0.0, alibi_slopes=None, scale=1.0,
                             layout="bhsd", arch="", deterministic=False):
    """(dq, dk, dv) in the inputs' layout and dtype, contiguous."""
    from tlc import torch as tt

    b, h, nq, hkv, nk, d = tt._sizes(q, k, v, layout)
    _check_saved(dout, q, out, lse, dlse, b, h, nq)
    dk, dv = torch.empty_like(k, memory_format=torch.contiguous_format), \
        torch.empty_like(v, memory_format=torch.contiguous_format)
    if b * h * nq == 0 or nk == 0:  # no query or no key: nothing flows back
        return torch.zeros_like(q, memory_format=torch.contiguous_format), dk.zero_(), \
            dv.zero_()
    device = q.get_device()
    case = _backward_case_of(q, h, hkv, d, causal, left, right, softcap, alibi_slopes, arch,
                             device)
    parts = parts_for(case, bool(deterministic))
    # dQ summed by atomics needs fp32 zeros to add into; the dQ plan writes q's dtype itself
    dq = torch.zeros(q.shape, dtype=torch.float32, device=q.device) if "all" in parts else \
        torch.empty(q.shape, dtype=q.dtype, device=q.device)
    builts = [built_for(case, device, bool(arch), part) for part in parts]
    if hkv > GRID_LIMIT or b > GRID_LIMIT:
        raise ArgumentError(f"B = {b}, Hkv = {hkv}: the backward's grid takes up to "
                            f"{GRID_LIMIT} K/V heads and batch entries")
    q, k, v, dout = (tt._in_place(t) for t in (q, k, v, dout))
    if max(max(nq, nk), *(t.stride(2 if layout == "bhsd" else 1) for t in (q, k, v, dout))) \
            > tt.INT32_LIMIT:
        raise ArgumentError("a sequence or row stride past 2^31 elements: the kernels take "
                            "them as int32 (pass .contiguous() tensors)")
    delta = delta_of(dout, out, dlse, layout)
    lse = lse.contiguous()
    tensors = {"Q": q, "K": k, "V": v, "dO": dout, "dQ": dq, "dK": dk, "dV": dv}
    values = {"scale": scale, "B": b, "H": h, "Nq": nq, "Hkv": hkv, "Nk": nk}
    for name, t in tensors.items():
        strides = t.stride()[:3]
        if layout == "bshd":  # (B, N, H, D) seen as (B, H, N, D)
            strides = (strides[0], strides[2], strides[1])
        values.update({f"{name}_stride{i}": s for i, s in enumerate(strides)})
    for name, t in (("L", lse), ("Delta", delta)):
        values.update({f"{name}_stride0": t.stride(0), f"{name}_stride1": t.stride(1)})
    tensors.update(L=lse, Delta=delta)
    if alibi_slopes is not None:
        tt._check_slopes(alibi_slopes, h, device)
        tensors["slopes"] = alibi_slopes
    sizes = {"B": b, "H": h, "Nq": nq, "Hkv": hkv, "Nk": nk}
    stream = tt._current_stream(device)
    for built in builts:
        for kernel, pointers, names, grid in built.stages:
            kernel.launch(grid(sizes), [tensors[n].data_ptr() for n in pointers],
                          [values[n] for n in names], stream)
    return dq.to(q.dtype), dk, dv


def _check_saved(dout, q, out, lse, dlse, b: int, h: int, nq: int) -> None:
    """The tensors the forward saved and the gradients that reach them, as the op's caller
    may pass any: shapes, dtypes and device checked before a kernel reads them."""
    expected = [("the output gradient", dout, tuple(q.shape), q.dtype),
                ("out", out, tuple(q.shape), q.dtype),
                ("lse", lse, (b, h, nq), torch.float32)]
    if dlse is not None:
        expected.append(("the log-sum-exp's gradient", dlse, (b, h, nq), None))
    for name, t, shape, dtype in expected:
        if tuple(t.shape) != shape or (dtype is not None and t.dtype != dtype):
            raise ArgumentError(f"{name} is {tuple(t.shape)} {t.dtype}; the call needs "
                                f"{shape} {dtype or 'floating point'}")
        if t.device != q.device:
            raise ArgumentError(f"{name} is on {t.device}, q on {q.device}")


def _backward_case_of(q, h, hkv, d, causal, left, right, softcap, alibi_slopes, arch, device):
    from tlc import torch as tt
    from tlc.arch import ARCHS

    if arch and arch not in ARCHS:
        raise ArgumentError(f"arch {arch!r}: one of {', '.join(ARCHS)}")
    target = arch or tt._present_target(device)[0]
    return backward_case(tt._case_of(q, h, hkv, d, causal, left, right, softcap,
                                     alibi_slopes is not None, target, False))


def check_covered(q, k, v, causal, left, right, softcap, alibi_slopes, layout, arch,
                  deterministic=False) -> None:
    """Refuse, before the forward runs, a call whose gradients tlc has no plan for."""
    from tlc import torch as tt

    _, h, _, hkv, _, d = tt._sizes(q, k, v, layout)
    if q.get_device() < 0 and not arch:
        return  # no GPU to name the target: the forward says what is wrong with CPU tensors
    parts_for(_backward_case_of(q, h, hkv, d, causal, left, right, softcap, alibi_slopes, arch,
                                q.get_device()), bool(deterministic))


def _attention_backward_fake(dout, q, k, v, out, lse, dlse=None, causal=False, left=-1,
                             right=-1, softcap=0.0, alibi_slopes=None, scale=1.0,
                             layout="bhsd", arch="", deterministic=False):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


SCHEMA = ("attention_backward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out, "
          "Tensor lse, Tensor? dlse, bool causal=False, int window_left=-1, "
          "int window_right=-1, float softcap=0.0, Tensor? alibi_slopes=None, float scale=1.0, "
          "str layout='bhsd', str arch='', bool deterministic=False) -> "
          "(Tensor, Tensor, Tensor)")


# ---- the autograd formulas ----


def _setup(ctx, inputs, output, with_lse: bool):
    q, k, v, *options = inputs
    if with_lse:
        out, lse = output
        ctx.save_for_backward(q, k, v, out, lse)
    else:
        ctx.save_for_backward(q, k, v)
    ctx.options = options
    ctx.with_lse = with_lse


def _setup_lse(ctx, inputs, output):
    _setup(ctx, inputs, output, True)


def _setup_plain(ctx, inputs, output):
    _setup(ctx, inputs, output, False)


def _no_option_gradients(ctx) -> tuple:
    return (None,) * len(ctx.options)


def _backward_lse(ctx, dout, dlse):
    q, k, v, out, lse = ctx.saved_tensors
    grads = torch.ops.tlc.attention_backward(dout.to(q.dtype), q, k, v, out, lse, dlse,
                                             *ctx.options)
    return (*grads, *_no_option_gradients(ctx))


def _backward_plain(ctx, dout):
    """torch.ops.tlc.attention saves no L: the forward runs again for it (tlc.torch.attention
    calls attention_lse when gradients are wanted, which saves it)."""
    q, k, v = ctx.saved_tensors
    out, lse = torch.ops.tlc.attention_lse(q, k, v, *ctx.options)
    grads = torch.ops.tlc.attention_backward(dout.to(q.dtype), q, k, v, out, lse, None,
                                             *ctx.options)
    return (*grads, *_no_option_gradients(ctx))


def register(library, refuse_cpu) -> None:
    """Define torch.ops.tlc.attention_backward and the forward ops' autograd formulas."""
    library.define(SCHEMA)
    library.impl("attention_backward", _attention_backward_cuda, "CUDA")
    library.impl("attention_backward", refuse_cpu, "CPU")
    torch.library.register_fake("tlc::attention_backward")(_attention_backward_fake)
    torch.library.register_autograd("tlc::attention_lse", _backward_lse,
                                    setup_context=_setup_lse, lib=library)
    torch.library.register_autograd("tlc::attention", _backward_plain,
                                    setup_context=_setup_plain, lib=library)
