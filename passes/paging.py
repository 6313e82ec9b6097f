"""paging: int32 index tables, paged tensors and per-sequence row counts.

An int32 input is a table the plan reads element by element in its expressions
(`cdiv(lengths[b], BN)`, a block table); it is never copied (resolve says so) or written. A tensor
`with pages (table, PAGE)` keeps its rows in pages of PAGE rows: the rows r of entry i of its
first dimension lie in page table[i, r / PAGE] of the same tensor's storage. A tile must
then stay inside one page (its rows divide PAGE), or its rows would come from two places.
`with rows N` on a Copy to or from global memory says the tensor's rows past N are not there
for that tile (a sequence's length in a cache longer than it): they read as zeros, are not
written, and the score rules hide the keys past it. `with start S` says the rows the copy
sees begin at row S (a sequence of a packed, variable-length batch); tile positions, and the
masks, count from there.
"""
from __future__ import annotations

from tlc import ir
from tlc.diagnostics import Diagnostic
from tlc.passes.facts import Facts, text


def paging(kernel: ir.Kernel, ctx) -> ir.Kernel:
    facts = Facts(kernel)
    for tensor in kernel.tensors:
        if tensor.dtype is ir.DType.INT32 and tensor.role == "output":
            ctx.report(Diagnostic("bad-operands", f"`{tensor.name}` is an int32 output: int32 "
                                  "tensors are index tables the kernel reads", tensor.span,
                                  help="declare it as an input, or give the output fp16, bf16 "
                                       "or fp32"))
        if tensor.pages:
            _pages(tensor, facts, ctx)
    for op in ir.walk(kernel.body):
        if not isinstance(op, ir.Copy):
            continue
        if (op.rows is not None or op.start is not None) and \
                ir.Level.GLOBAL not in (op.src, op.dst):
            ctx.report(Diagnostic(
                "bad-clause", "`rows` limits and `start` places a copy's rows in global memory",
                op.span, help="put them on the Copy from or to global memory"))
    return kernel


def _pages(tensor: ir.Tensor, facts: Facts, ctx) -> None:
    table_name, page = tensor.pages
    size = facts.value(page)
    if not isinstance(size, int) or size <= 0:
        ctx.report(Diagnostic("bad-pages", f"the page size `{text(page)}` of `{tensor.name}` must "
                              "be a compile-time count of rows", tensor.span,
                              help="declare `param PAGE = 64` and write "
                                   f"`with pages ({table_name}, PAGE)`"))
        return
    table = facts.tensors[table_name]
    if text(table.shape[0]) != text(tensor.shape[0]):
        ctx.report(Diagnostic(
            "bad-pages", f"`{table_name}` has a row for each {text(table.shape[0])}, but "
            f"`{tensor.name}` pages its {text(tensor.shape[0])} entries", tensor.span,
            help=f"give the table the first dimension of `{tensor.name}`: "
                 f"`input {table_name} ({text(tensor.shape[0])}, PAGES) int32`"))
    for op in ir.walk(facts.kernel.body):
        if not (isinstance(op, ir.Copy) and op.name == tensor.name and
                op.src is ir.Level.GLOBAL and op.tile):
            continue
        rows = facts.value(op.tile[-2]) if len(op.tile) >= 2 else facts.value(op.tile[0])
        if isinstance(rows, int) and rows > 0 and size % rows:
            ctx.report(Diagnostic(
                "bad-pages", f"a tile of {rows} rows of `{tensor.name}` would straddle its "
                f"pages of {size} rows", op.span,
                help=f"use a tile whose rows divide {size} (e.g. {_divisor(size, rows)}), or "
                     "larger pages"))


def _divisor(size: int, rows: int) -> int:
    return max(d for d in range(1, min(size, rows) + 1) if size % d == 0)
