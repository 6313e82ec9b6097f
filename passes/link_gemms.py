"""link_gemms: between two linked GEMMs stands the Reshape that re-views the first one's
accumulator as the second one's operand.

`S = Q·Kᵀ` leaves S in accumulator (MMA_C) fragments of fp32; `O += S·V` needs S as A-operand
(MMA_A) fragments of the input dtype. The Reshape says so; the paper notes that LLMs forget
it. The diagnostic carries the line to insert, which `tlc fmt --fix` applies.
"""
from __future__ import annotations

from tlc import ir
from tlc.diagnostics import Diagnostic
from tlc.fixes import Edit
from tlc.passes.facts import Facts, text
from tlc.source import Span


def link_gemms(kernel: ir.Kernel, ctx) -> ir.Kernel:
    """Report a GEMM operand still in accumulator layout, with the Reshape that fixes it."""
    facts = Facts(kernel)
    for op, _, held in facts.walk_held():
        if not isinstance(op, ir.Gemm):
            continue
        for ref, other, role in ((op.a, op.b, "MMA_A"), (op.b, op.a, "MMA_B")):
            now = held.get(ref.name)
            if now is None or now.layout != "MMA_C":
                continue
            line = _reshape_line(facts, ref.name, role, held.get(other.name))
            start = op.span.start - (op.span.column - 1)
            insert = Edit(Span(start, start, op.span.line, 1, op.span.line, 1),
                          " " * (op.span.column - 1) + line + "\n")
            ctx.report(Diagnostic(
                "missing-reshape", f"`{ref.name}` is still the fp32 accumulator of an earlier "
                f"GEMM; this GEMM takes it as its {'A' if role == 'MMA_A' else 'B'} operand",
                ref.span, help=f"add `{line}` before this line", fixes=(insert,)))
    return kernel


def _reshape_line(facts: Facts, name: str, role: str, other) -> str:
    buffer = facts.buffers.get((name, ir.Level.REGISTER))
    dims = ", ".join(text(d) for d in buffer.shape) if buffer and buffer.shape else "…"
    dtype = other.dtype if other and other.dtype and other.dtype is not ir.DType.FP32 \
        else ir.DType.FP16
    return f"Reshape {name} from (MMA_C, {dims}) to ({role}, {dims}) with dtype {dtype.value}"
