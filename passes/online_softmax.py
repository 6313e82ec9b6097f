"""online_softmax: recognise the online-softmax pattern, and reject a softmax that cannot be one.

A `Compute Softmax S` inside the loop over key blocks, whose probabilities an accumulating
GEMM then multiplies into O, is online softmax: the running row maximum and row sum are kept
across iterations, O is rescaled whenever the maximum grows, and O is divided by the row sum
once the loop ends. Anything else in a loop would normalise each key block on its own.

The other way round, every accumulating GEMM of a loop whose A operand is a GEMM's scores
needs exactly one Softmax of them in between (none: O sums raw scores; two: the online
softmax runs twice), and accumulates once an iteration (twice: O gets S·V twice against one
row sum).
"""
from __future__ import annotations

from dataclasses import dataclass

from tlc import ir
from tlc.diagnostics import Diagnostic
from tlc.passes.facts import Facts


@dataclass(frozen=True)
class OnlineSoftmax:
    scores: str
    output: str
    loop_var: str


def _softmaxes_in_loops(kernel: ir.Kernel):
    """(softmax, its innermost loop, the GEMM after it that reads its scores or None)."""
    for op, loops, _ in Facts(kernel).walk_held():
        if isinstance(op, ir.Softmax) and loops:
            yield op, loops[-1], _consumer(loops[-1].body, op)


def online_softmaxes(kernel: ir.Kernel) -> tuple[OnlineSoftmax, ...]:
    """The online softmaxes of a kernel (the state the resource model counts)."""
    return tuple(OnlineSoftmax(op.target, gemm.out, loop.var)
                 for op, loop, gemm in _softmaxes_in_loops(kernel)
                 if gemm is not None and gemm.accumulate)


def online_softmax(kernel: ir.Kernel, ctx) -> ir.Kernel:
    """Record each online softmax in ctx.facts; report a softmax in a loop that is not one."""
    for op, loop, gemm in _softmaxes_in_loops(kernel):
        if gemm is None:
            ctx.report(Diagnostic(
                "online-softmax", f"the probabilities in `{op.target}` are never multiplied "
                "into an output in this loop", op.span,
                help=f"follow it with `Compute GEMM {op.target}, V and accumulate O` (after the "
                     "Reshape)"))
        elif not gemm.accumulate:
            ctx.report(Diagnostic(
                "online-softmax", f"inside the loop over `{loop.var}`, `and get {gemm.out}` "
                f"keeps only the last key block", gemm.span,
                help=f"write `and accumulate {gemm.out}`: online softmax adds every block's "
                     "contribution and rescales the sum", fixes=_accumulate(ctx.source, gemm)))
    ctx.facts["online_softmax"] = online_softmaxes(kernel)
    for loop in (op for op in ir.walk(kernel.body) if isinstance(op, ir.Loop)):
        _one_softmax_per_accumulate(loop, ctx)
    _logsumexp_after_the_loop(Facts(kernel), ctx)
    return kernel


def _logsumexp_after_the_loop(facts: Facts, ctx) -> None:
    """A Logsumexp reads the row maximum and sum a Softmax of its scores keeps: it needs that
    Softmax before it and, for an online softmax, the loop over key blocks finished (inside
    it the sum covers only the blocks seen so far). Its result is one value per score row."""
    softmax_loops = {}
    for op, loops, _ in facts.walk_held():
        if isinstance(op, ir.Softmax):
            softmax_loops.setdefault(op.target, loops)
        if not isinstance(op, ir.Logsumexp):
            continue
        if op.target not in softmax_loops:
            ctx.report(Diagnostic(
                "online-softmax", f"Logsumexp reads the row statistics of a Softmax of "
                f"`{op.target}`, and there is none before it", op.span,
                help=f"compute `Compute Softmax {op.target}` in the key loop, and the "
                     "Logsumexp after the loop's `end`"))
            continue
        inside = tuple(softmax_loops[op.target])
        if inside and tuple(loops)[:len(inside)] == inside:
            ctx.report(Diagnostic(
                "online-softmax", f"Logsumexp inside the loop over `{inside[-1].var}` reads "
                "a row sum of the key blocks seen so far", op.span,
                help="move it after the loop's `end`, with the store of the output"))
        rows = facts.buffers.get((op.target, ir.Level.REGISTER))
        vector = facts.buffers.get((op.out, ir.Level.REGISTER))
        if rows is not None and vector is not None and \
                facts.shape(vector) != facts.shape(rows)[:1]:
            ctx.report(Diagnostic(
                "shape-mismatch", f"Logsumexp gives one value per row of `{op.target}` "
                f"{tuple(facts.shape(rows))[:1]}, but `{op.out}` is "
                f"{tuple(facts.shape(vector))}", op.span,
                help=f"allocate `{op.out}` in register with the rows of `{op.target}`, e.g. "
                     f"`Allocate {op.out} in register (BM)`"))


def _one_softmax_per_accumulate(loop: ir.Loop, ctx) -> None:
    body = list(loop.body)
    scores = {op.out: i for i, op in enumerate(body) if isinstance(op, ir.Gemm)
              and not op.accumulate}
    accumulated = {}
    for index, gemm in enumerate(body):
        if not (isinstance(gemm, ir.Gemm) and gemm.accumulate and gemm.a.name in scores):
            continue
        name = gemm.a.name
        if (name, gemm.out) in accumulated:
            ctx.report(Diagnostic(
                "online-softmax", f"`{gemm.out}` accumulates `{name}` a second time in this "
                "iteration, against one row sum", gemm.span,
                help=f"keep one `Compute GEMM {name}, {gemm.b.name} and accumulate {gemm.out}`"))
            continue
        accumulated[(name, gemm.out)] = index
        between = [op for op in body[scores[name]:index]
                   if isinstance(op, ir.Softmax) and op.target == name]
        if not between:
            ctx.report(Diagnostic(
                "online-softmax", f"`{gemm.out}` accumulates the scores `{name}` with no "
                f"`Compute Softmax {name}` before it: it would sum raw scores, not "
                "probabilities", gemm.span,
                help=f"add `Compute Softmax {name}` after the score updates, before the Reshape"))
        for extra in between[1:]:
            ctx.report(Diagnostic(
                "online-softmax", f"a second `Compute Softmax {name}` in this iteration: the "
                "online softmax would run twice on the same scores", extra.span,
                help="keep one Softmax of the scores"))


def _accumulate(source, gemm: ir.Gemm) -> tuple:
    """The edit from `and get [new] O` to `and accumulate O` in the GEMM's line."""
    import re

    from tlc.fixes import Edit

    if source is None:
        return ()
    line = source.text[gemm.span.start:gemm.span.end]
    found = re.search(r"\band\s+get(\s+new)?\s+(?=%s\b)" % re.escape(gemm.out), line)
    if found is None:
        return ()
    start = gemm.span.start + found.start()
    return (Edit(source.span(start, gemm.span.start + found.end()), "and accumulate "),)


def _consumer(body, softmax: ir.Softmax) -> ir.Gemm | None:
    """The first GEMM after the softmax in the loop body that reads its scores."""
    after = False
    for op in ir.walk(body):
        if op is softmax:
            after = True
        elif after and isinstance(op, ir.Gemm) and softmax.target in (op.a.name, op.b.name):
            return op
    return None
