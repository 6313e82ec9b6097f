"""`tlc.torch.attention_with_kvcache`: attention of new query rows against a K/V cache whose
sequences have lengths of their own, contiguous or paged through a block table (the forms
FlashAttention's flash_attn_with_kvcache and vLLM take), by tlc's decoding plans.

The plan states the cache (docs/language.md §5.6): `input lengths (B) int32`, K and V
`with pages (table, PAGE)`, the key loop to `cdiv(lengths[b], BN)`, the copies `with rows
lengths[b]`. Here the call's tensors are checked, then laid out for that plan: the cache's
(B, L, Hkv, D) or (pages, PAGE, Hkv, D) strides, the query heads of a K/V head packed as the
rows of one tile for a single query row, and the keys split to fill the GPU.
"""
from __future__ import annotations

import math

import torch

from tlc import torch as tt
from tlc.runtime import ArgumentError, contiguous_strides


def attention_with_kvcache(q, k_cache, v_cache, cache_seqlens, page_table=None, *,
                           causal: bool = False, softcap: float | None = None,
                           scale: float | None = None, return_lse: bool = False,
                           check: bool = True):
    """Softmax attention of q against the first cache_seqlens[b] keys of each sequence b.

    q: (B, Nq, H, D), fp16 or bf16. Without page_table, k_cache and v_cache are
    (B, Nk, Hkv, D) and sequence b's keys are rows 0 .. cache_seqlens[b] - 1; with
    page_table (B, PAGES) int32 they are a pool (P, PAGE, Hkv, D) and row r of sequence b is
    row r % PAGE of page page_table[b, r // PAGE]. cache_seqlens: (B,) int32. causal aligns
    the queries to the end of each sequence (query i sees key j when
    j <= i + cache_seqlens[b] - Nq). Returns O (B, Nq, H, D), or (O, L) with L (B, H, Nq)
    fp32 the row log-sum-exp (-inf for a row that sees no key; its O is 0).

    check (default True) reads the lengths and the table entries the lengths reach once on
    the device and raises ArgumentError for a length past the cache or a page outside the
    pool: the kernel reads where they point. It costs one synchronisation; check=False
    leaves that to the caller, who must then vouch for both. Outside plain eager calls it
    goes through `torch.ops.tlc.attention_with_kvcache` (and `..._lse`), which
    torch.compile traces by shape.
    """
    if torch.is_grad_enabled() and (q.requires_grad or k_cache.requires_grad or
                                    v_cache.requires_grad):
        raise ArgumentError("attention_with_kvcache has no backward: call it under "
                            "torch.no_grad()")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    arguments = (q, k_cache, v_cache, cache_seqlens, page_table, bool(causal),
                 float(softcap or 0.0), scale, bool(check))
    if tt._plain_eager(q):
        return _kvcache_cuda(*arguments, lse=return_lse)
    return (_op_lse if return_lse else _op)(*arguments)


def _kvcache_cuda(q, k_cache, v_cache, cache_seqlens, page_table=None, causal=False,
                  softcap=0.0, scale=1.0, check=True, lse=False):
    """O, or (O, L) with lse: the implementation behind the ops and the eager call."""
    return_lse = lse
    b, nq, h, d, hkv, capacity, page = _shapes(q, k_cache, v_cache, cache_seqlens, page_table)
    if check:
        _check_values(cache_seqlens, page_table, capacity, page, k_cache.shape[0])
    dtype = tt.DTYPES.get(q.dtype)
    if dtype is None:
        raise tt.NotCovered(f"dtype {q.dtype}: tlc's plans take torch.float16 or torch.bfloat16")
    device = q.get_device()
    group = h // hkv
    case, packed = cache_case(dtype, b, nq, h, hkv, d, capacity, page, causal, softcap,
                              return_lse, device)
    built = tt.built_for(case, device, tt._present_target(device)[1])
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    rows = torch.empty((b, h, nq), dtype=torch.float32, device=q.device) if return_lse else None
    if b * h * nq == 0:
        return (out, rows) if return_lse else out
    if tt.poison_outputs:
        out.fill_(float("nan"))
        if rows is not None:
            rows.fill_(float("nan"))
    q = q if tt._readable(q) else q.contiguous()
    sizes = {"B": b, "H": h, "Nq": nq, "Hkv": hkv, "Nk": capacity}
    values = {"PAGES": page_table.shape[1] if page is not None else 0,
              "table_stride0": page_table.stride(0) if page is not None else 0,
              "L_stride0": h * nq, "L_stride1": nq}
    sq = q.stride()
    views = {"Q": (sq[0], sq[2], sq[1]), "O": _bshd_view(contiguous_strides(out.shape))}
    for name, cache in (("K", k_cache), ("V", v_cache)):
        s = cache.stride()  # (B, Nk, Hkv, D), or (pages, PAGE, Hkv, D): page, head, row
        views[name] = (s[0], s[2], s[1])
    if packed:  # the group's heads are the rows of their K/V head's tile
        for name in ("Q", "O"):
            views[name] = (views[name][0], group * views[name][1], views[name][1])
        sizes.update(H=hkv, Nq=group)
        values.update(L_stride0=h, L_stride1=group)
    values.update(sizes, scale=scale)
    for name, view in views.items():
        values.update({f"{name}_stride{dim}": view[dim] for dim in range(3)})
    if max(view[2] for view in views.values()) > tt.INT32_LIMIT:
        raise ArgumentError("a row stride past 2^31 elements: pass .contiguous() tensors")
    pointers = [q.data_ptr(), k_cache.data_ptr(), v_cache.data_ptr(), out.data_ptr(), 0,
                rows.data_ptr() if rows is not None else 0, 0, 0,
                page_table.data_ptr() if page is not None else 0, cache_seqlens.data_ptr()]
    parts = [torch.empty(shape(sizes), dtype=torch.float32, device=q.device)
             for _, shape in built.workspaces]
    for (index, _), part in zip(built.workspaces, parts):
        pointers[index] = part.data_ptr()
    stream = tt._current_stream(device)
    for kernel, order, tail, grid in built.stages:
        kernel.launch(grid(sizes), [pointers[i] for i in order],
                      [values[name] for name in tail], stream)
    return (out, rows) if return_lse else out


def cache_case(dtype: str, b: int, nq: int, h: int, hkv: int, d: int, capacity: int,
               page: int | None, causal: bool, softcap, lse: bool, device: int):
    """(the Case a call of these sizes runs, whether its query heads are packed as rows)."""
    arch, _ = tt._present_target(device)
    packed = tt._packs_query_heads(nq, h, hkv, -1, None)
    case = tt.Case(dtype, d, 1 if packed else h // hkv, causal and not packed,
                   softcap=softcap or None, arch=arch, lse=lse, lengths=True, page=page)
    if nq <= tt.DECODE_ROWS:
        case = tt._replace(case, decode=True, splits=tt.choose_splits(
            b, hkv if packed else h, h // hkv * nq if packed else nq, capacity,
            tt._multiprocessors(device)))
    return case, packed


def _bshd_view(strides):
    return (strides[0], strides[2], strides[1])


def _shapes(q, k_cache, v_cache, lengths, table, placed: bool = True):
    """(B, Nq, H, D, Hkv, key capacity a sequence, page size or None), checked; `placed`:
    also where the tensors lie (not for the fake tensors torch.compile traces with)."""
    for name, t in (("q", q), ("k_cache", k_cache), ("v_cache", v_cache)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            raise ArgumentError(f"{name}: a 4-dimensional tensor, "
                                f"{'(B, Nq, H, D)' if name == 'q' else 'the cache'}")
        if placed and (not t.is_cuda or t.stride(-1) != 1):
            raise ArgumentError(f"{name}: a CUDA tensor with a contiguous last dimension")
        if t.dtype != q.dtype:
            raise ArgumentError(f"{name} is {t.dtype}, q is {q.dtype}: one dtype")
        if t.device != q.device:
            raise ArgumentError(f"{name} is on {t.device}, q on {q.device}: one device")
    if tuple(k_cache.shape) != tuple(v_cache.shape):
        raise ArgumentError(f"k_cache {tuple(k_cache.shape)} and v_cache "
                            f"{tuple(v_cache.shape)} differ")
    b, nq, h, d = q.shape
    rows, hkv, dk = k_cache.shape[1], k_cache.shape[2], k_cache.shape[3]
    if dk != d:
        raise ArgumentError(f"k_cache has head dim {dk}, q {d}")
    if hkv == 0 or h % hkv:
        raise ArgumentError(f"q has {h} heads, the cache {hkv}: a multiple of them")
    _int32(lengths, "cache_seqlens", (b,), q.device)
    if lengths.stride(0) != 1:
        raise ArgumentError("cache_seqlens: pass a contiguous tensor")
    if table is None:
        if k_cache.shape[0] != b:
            raise ArgumentError(f"k_cache has {k_cache.shape[0]} sequences, q {b}")
        for name, t in (("k_cache", k_cache), ("v_cache", v_cache)):
            if placed and (t.data_ptr() % 16 or any(s % 8 for s in t.stride()[:3])):
                raise ArgumentError(f"{name}: 16-byte aligned rows; pass .contiguous()")
        return b, nq, h, d, hkv, rows, None
    _int32(table, "page_table", None, q.device)
    if table.dim() != 2 or table.shape[0] != b or table.stride(1) != 1:
        raise ArgumentError(f"page_table: (B = {b}, pages) int32 with contiguous rows, not "
                            f"{tuple(table.shape)}")
    if rows % 16:
        raise ArgumentError(f"a page of {rows} rows: tlc's plans take pages of a multiple of "
                            "16 rows")
    return b, nq, h, d, hkv, table.shape[1] * rows, rows


def _int32(t, name: str, shape, device) -> None:
    if not isinstance(t, torch.Tensor) or t.dtype != torch.int32:
        raise ArgumentError(f"{name}: a torch.int32 tensor")
    if t.device != device:
        raise ArgumentError(f"{name} is on {t.device}, q on {device}: one device")
    if shape is not None and tuple(t.shape) != shape:
        raise ArgumentError(f"{name}: shape {shape}, not {tuple(t.shape)}")


def _check_values(lengths, table, capacity: int, page: int | None, pool: int) -> None:
    """One device round trip: every length within the cache, and every page the lengths
    reach within the pool. (runtime.table_problem checks any plan's tables the same way on
    the host, block by block; this is that check for this call's plan, on the device, so a
    decoding step does not copy its table to the host.)"""
    bad_length = ((lengths < 0) | (lengths > capacity)).any()
    if table is None:
        if bad_length.item():
            raise ArgumentError(f"cache_seqlens: a length outside 0..{capacity}, the cache's "
                                "rows")
        return
    reached = torch.arange(table.shape[1], device=table.device)[None, :] < \
        ((lengths.clamp(0, capacity) + page - 1) // page)[:, None]
    bad_page = (((table < 0) | (table >= pool)) & reached).any()
    flags = torch.stack((bad_length, bad_page)).cpu()
    if flags[0]:
        raise ArgumentError(f"cache_seqlens: a length outside 0..{capacity}, the rows its "
                            "page_table row can address")
    if flags[1]:
        raise ArgumentError(f"page_table: an entry the lengths reach is outside the pool of "
                            f"{pool} pages")


def _kvcache_fake(q, k_cache, v_cache, cache_seqlens, page_table=None, causal=False,
                  softcap=0.0, scale=1.0, check=True):
    _shapes(q, k_cache, v_cache, cache_seqlens, page_table, placed=False)
    return q.new_empty(q.shape)


def _kvcache_lse_cuda(*arguments):
    return _kvcache_cuda(*arguments, lse=True)


def _kvcache_lse_fake(q, k_cache, v_cache, cache_seqlens, page_table=None, causal=False,
                      softcap=0.0, scale=1.0, check=True):
    b, nq, h, *_ = _shapes(q, k_cache, v_cache, cache_seqlens, page_table, placed=False)
    return q.new_empty(q.shape), q.new_empty((b, h, nq), dtype=torch.float32)


ARGUMENTS = ("(Tensor q, Tensor k_cache, Tensor v_cache, Tensor cache_seqlens, "
             "Tensor? page_table=None, bool causal=False, float softcap=0.0, float scale=1.0, "
             "bool check=True)")
_op = tt.register("attention_with_kvcache" + ARGUMENTS + " -> Tensor", _kvcache_cuda,
                  _kvcache_fake)
_op_lse = tt.register("attention_with_kvcache_lse" + ARGUMENTS + " -> (Tensor, Tensor)",
                      _kvcache_lse_cuda, _kvcache_lse_fake)
