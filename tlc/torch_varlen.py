"""`tlc.torch.attention_varlen`: attention over a batch of sequences of their own lengths,
packed one after another as FlashAttention's varlen functions take them, by tlc's plans.

The plan states the packing (docs/language.md §5.7): Q, K, V as (heads, rows, D) tensors,
sequence b's rows from `q_start[b]` (`with start ..., rows ...` on its copies), and a grid
over the longest sequence, MaxQ, an int32 count of the call. The cumulative offsets
cu_seqlens (B + 1) serve as both starts and ends: the kernel reads cu[0:B] and cu[1:B + 1]
in place.
"""
from __future__ import annotations

import math

import torch

from tlc import torch as tt
from tlc.runtime import ArgumentError


def attention_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q: int, *,
                     causal: bool = False, softcap: float | None = None,
                     scale: float | None = None, return_lse: bool = False, check: bool = True):
    """Softmax attention of each sequence's queries against its own keys.

    q: (Tq, H, D), k and v: (Tk, Hkv, D), fp16 or bf16, on one CUDA device; sequence b's
    queries are rows cu_seqlens_q[b] .. cu_seqlens_q[b + 1] - 1 of q (and of the output),
    its keys rows cu_seqlens_k[b] .. cu_seqlens_k[b + 1] - 1 of k and v; both offsets
    (B + 1,) int32; max_seqlen_q at least the longest query sequence. causal aligns each
    sequence's queries to the end of its keys (bottom right). A sequence with no key gives
    zeros (and a log-sum-exp of -inf). Returns O (Tq, H, D), or (O, L) with L (H, Tq) fp32.
    Rows of q that no sequence holds are not written.

    check (default True) reads the offsets once on the device and raises ArgumentError
    unless they are non-decreasing from 0 within the tensors and max_seqlen_q covers every
    sequence; check=False leaves that to the caller. Outside plain eager calls it goes
    through `torch.ops.tlc.attention_varlen` (and `..._lse`), which torch.compile traces.
    """
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        raise ArgumentError("attention_varlen has no backward: call it under torch.no_grad()")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    arguments = (q, k, v, cu_seqlens_q, cu_seqlens_k, int(max_seqlen_q), bool(causal),
                 float(softcap or 0.0), scale, bool(check))
    if tt._plain_eager(q):
        return _varlen_cuda(*arguments, lse=return_lse)
    return (_op_lse if return_lse else _op)(*arguments)


def _varlen_cuda(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, causal=False,
                 softcap=0.0, scale=1.0, check=True, lse=False):
    """O, or (O, L) with lse: the implementation behind the ops and the eager call."""
    return_lse = lse
    tq, h, d, tk, hkv, b = _shapes(q, k, v, cu_seqlens_q, cu_seqlens_k)
    if check:
        _check_offsets(cu_seqlens_q, cu_seqlens_k, tq, tk, max_seqlen_q)
    dtype = tt.DTYPES.get(q.dtype)
    if dtype is None:
        raise tt.NotCovered(f"dtype {q.dtype}: tlc's plans take torch.float16 or torch.bfloat16")
    device = q.get_device()
    arch, from_ptx = tt._present_target(device)
    case = tt.Case(dtype, d, h // hkv, bool(causal), softcap=softcap or None, arch=arch,
                   lse=return_lse, varlen=True)
    built = tt.built_for(case, device, from_ptx)
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    rows = torch.empty((h, tq), dtype=torch.float32, device=q.device) if return_lse else None
    if tq * h == 0 or b == 0 or max_seqlen_q == 0:
        return (out, rows) if return_lse else out
    if tt.poison_outputs:
        out.fill_(float("nan"))
        if rows is not None:
            rows.fill_(float("nan"))
    sizes = {"B": b, "H": h, "Hkv": hkv, "Tq": tq, "Tk": tk, "MaxQ": max_seqlen_q}
    values = dict(sizes, scale=scale, L_stride0=tq)
    for name, t in (("Q", q), ("K", k), ("V", v), ("O", out)):  # (rows, heads, D) as (heads, rows, D)
        values.update({f"{name}_stride0": t.stride(1), f"{name}_stride1": t.stride(0)})
    if max(values["Q_stride1"], values["K_stride1"], values["V_stride1"]) > tt.INT32_LIMIT:
        raise ArgumentError("a row stride past 2^31 elements: pass .contiguous() tensors")
    pointers = [q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(), 0,
                rows.data_ptr() if rows is not None else 0, 0, 0, 0, 0,
                cu_seqlens_q.data_ptr(), cu_seqlens_q.data_ptr() + 4,
                cu_seqlens_k.data_ptr(), cu_seqlens_k.data_ptr() + 4]
    stream = tt._current_stream(device)
    for kernel, order, tail, grid in built.stages:
        kernel.launch(grid(sizes), [pointers[i] for i in order],
                      [values[name] for name in tail], stream)
    return (out, rows) if return_lse else out


def _shapes(q, k, v, cu_q, cu_k, placed: bool = True):
    """(Tq, H, D, Tk, Hkv, B), checked; `placed`: also where the tensors lie (not for the
    fake tensors torch.compile traces with)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() != 3:
            raise ArgumentError(f"{name}: a 3-dimensional tensor (rows, heads, D)")
        if placed and (not t.is_cuda or t.stride(-1) != 1):
            raise ArgumentError(f"{name}: a CUDA tensor with a contiguous last dimension")
        if t.dtype != q.dtype or t.device != q.device:
            raise ArgumentError(f"{name}: {t.dtype} on {t.device}; q is {q.dtype} on {q.device}")
        if placed and (t.data_ptr() % 16 or t.stride(0) % 8 or t.stride(1) % 8):
            raise ArgumentError(f"{name}: 16-byte aligned rows; pass .contiguous()")
    if tuple(k.shape) != tuple(v.shape):
        raise ArgumentError(f"k {tuple(k.shape)} and v {tuple(v.shape)} differ")
    tq, h, d = q.shape
    tk, hkv, dk = k.shape
    if dk != d:
        raise ArgumentError(f"k has head dim {dk}, q {d}")
    if hkv == 0 or h % hkv:
        raise ArgumentError(f"q has {h} heads, k {hkv}: a multiple of them")
    for name, cu in (("cu_seqlens_q", cu_q), ("cu_seqlens_k", cu_k)):
        if not isinstance(cu, torch.Tensor) or cu.dtype != torch.int32 or cu.dim() != 1:
            raise ArgumentError(f"{name}: a (B + 1,) torch.int32 tensor")
        if cu.device != q.device or cu.stride(0) != 1:
            raise ArgumentError(f"{name}: contiguous, on q's device")
    if cu_q.shape != cu_k.shape or cu_q.shape[0] < 1:
        raise ArgumentError(f"cu_seqlens_q {tuple(cu_q.shape)} and cu_seqlens_k "
                            f"{tuple(cu_k.shape)}: one entry a sequence, plus one")
    return tq, h, d, tk, hkv, cu_q.shape[0] - 1


def _check_offsets(cu_q, cu_k, tq: int, tk: int, max_q: int) -> None:
    """One device round trip: offsets from 0, non-decreasing, within their tensors, and no
    query sequence longer than max_seqlen_q."""
    flags = []
    for cu, rows in ((cu_q, tq), (cu_k, tk)):
        steps = cu[1:] - cu[:-1]
        flags += [(cu[0] != 0) | (steps < 0).any() | (cu[-1] > rows)]
    flags.append(((cu_q[1:] - cu_q[:-1]) > max_q).any())
    bad = torch.stack(flags).cpu().tolist()
    for flag, name, rows in zip(bad, ("cu_seqlens_q", "cu_seqlens_k"), (tq, tk)):
        if flag:
            raise ArgumentError(f"{name}: offsets must start at 0, never decrease and end "
                                f"within the {rows} rows")
    if bad[2]:
        raise ArgumentError(f"max_seqlen_q = {max_q}: a query sequence is longer")


def _varlen_fake(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, causal=False,
                 softcap=0.0, scale=1.0, check=True):
    _shapes(q, k, v, cu_seqlens_q, cu_seqlens_k, placed=False)
    return q.new_empty(q.shape)


def _varlen_lse_cuda(*arguments):
    return _varlen_cuda(*arguments, lse=True)


def _varlen_lse_fake(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, causal=False,
                     softcap=0.0, scale=1.0, check=True):
    tq, h, *_ = _shapes(q, k, v, cu_seqlens_q, cu_seqlens_k, placed=False)
    return q.new_empty(q.shape), q.new_empty((h, tq), dtype=torch.float32)


ARGUMENTS = ("(Tensor q, Tensor k, Tensor v, Tensor cu_seqlens_q, Tensor cu_seqlens_k, "
             "int max_seqlen_q, bool causal=False, float softcap=0.0, float scale=1.0, "
             "bool check=True)")
_op = tt.register("attention_varlen" + ARGUMENTS + " -> Tensor", _varlen_cuda, _varlen_fake)
_op_lse = tt.register("attention_varlen_lse" + ARGUMENTS + " -> (Tensor, Tensor)",
                      _varlen_lse_cuda, _varlen_lse_fake)
