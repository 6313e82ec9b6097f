"""gemm_orientation: each GEMM multiplies an (M, K) tile by a (K, N) tile into an (M, N) one.

`X^T` marks an operand stored transposed. When the inner dimensions differ but would agree
with the other orientation, the diagnostic names the `^T` to add or drop and carries the edit
(the paper notes that LLMs confuse these transposes). Operand dtypes must agree and be a
tensor-core input type; the result accumulates in fp32.
"""
from __future__ import annotations

from tlc import ir
from tlc.diagnostics import Diagnostic
from tlc.fixes import Edit
from tlc.passes.facts import Facts, shape_text, text


def gemm_operands(facts: Facts, gemm: ir.Gemm):
    """((M, K), (K', N)) as written, transposes applied, or None when a shape is unknown."""
    shapes = []
    for ref in (gemm.a, gemm.b):
        buffer = facts.buffers.get((ref.name, ir.Level.REGISTER)) or \
            facts.buffers.get((ref.name, ir.Level.SHARED))
        if buffer is None or buffer.shape is None or len(buffer.shape) != 2:
            return None
        shapes.append(buffer.shape[::-1] if ref.transposed else buffer.shape)
    return tuple(shapes)


def gemm_orientation(kernel: ir.Kernel, ctx) -> ir.Kernel:
    """Report GEMMs whose operand shapes do not chain, with the transpose that fixes them."""
    facts = Facts(kernel)
    for op, _, held in facts.walk_held():
        if isinstance(op, ir.Gemm):
            if _orientation(facts, op, ctx.report):
                _result(facts, op, ctx.report)
            _dtypes(op, held, ctx.report)
    return kernel


def _orientation(facts: Facts, gemm: ir.Gemm, report) -> bool:
    """True when the inner dimensions agree (or cannot be known)."""
    operands = gemm_operands(facts, gemm)
    if operands is None:
        return True
    (m, k), (k2, n) = operands
    if facts.same_dim(k, k2):
        return True
    product = f"{gemm.a.name}{'^T' if gemm.a.transposed else ''} {shape_text((m, k))} · " \
              f"{gemm.b.name}{'^T' if gemm.b.transposed else ''} {shape_text((k2, n))}"
    for ref, flipped in ((gemm.b, facts.same_dim(k, n)), (gemm.a, facts.same_dim(m, k2))):
        if flipped:
            word = f"{ref.name}" if ref.transposed else f"{ref.name}^T"
            report(Diagnostic(
                "gemm-orientation", f"{product}: the inner dimensions {text(k)} and {text(k2)} "
                "differ", ref.span, help=f"write `{word}`: the product needs `{ref.name}` "
                f"{'as stored' if ref.transposed else 'transposed'}",
                fixes=(Edit(ref.span, word),)))
            return False
    report(Diagnostic("shape-mismatch", f"{product}: the inner dimensions {text(k)} and "
                      f"{text(k2)} differ, in either orientation", gemm.span,
                      help="a GEMM multiplies (M, K) by (K, N): check which tiles it names"))
    return False


def _result(facts: Facts, gemm: ir.Gemm, report) -> None:
    out = facts.buffers.get((gemm.out, ir.Level.REGISTER))
    operands = gemm_operands(facts, gemm)
    if out is None or out.shape is None or operands is None:
        return
    (m, _), (_, n) = operands
    if len(out.shape) != 2 or not (facts.same_dim(out.shape[0], m) and
                                   facts.same_dim(out.shape[1], n)):
        report(Diagnostic("shape-mismatch", f"the GEMM's product is {shape_text((m, n))} but "
                          f"`{gemm.out}` is {shape_text(out.shape)}", gemm.span,
                          help=f"allocate `{gemm.out}` in register as {shape_text((m, n))}"))


def _dtypes(gemm: ir.Gemm, held, report) -> None:
    a, b = held.get(gemm.a.name), held.get(gemm.b.name)
    if a is None or b is None or "MMA_C" in (a.layout, b.layout):
        return  # unfilled operands and missing Reshapes have their own diagnostics
    if a.dtype and b.dtype and a.dtype is not b.dtype:
        report(Diagnostic("dtype-mismatch", f"the GEMM's operands are {a.dtype.value} "
                          f"(`{gemm.a.name}`) and {b.dtype.value} (`{gemm.b.name}`)", gemm.span,
                          help="tensor cores take two operands of one dtype: convert one with "
                               f"`Reshape … with dtype {b.dtype.value}`"))
    elif a.dtype is ir.DType.FP32:
        report(Diagnostic("dtype-mismatch", "the GEMM's operands are fp32; tensor cores take "
                          "fp16, bf16, tf32 or fp8", gemm.span,
                          help="convert with `Reshape … with dtype fp16` (or bf16)"))
