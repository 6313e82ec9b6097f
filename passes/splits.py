"""splits: a key loop cut into parts that blocks of their own run (split-KV decoding).

`for n = 0: cdiv(Nk, BN) with splits SPLITS` gives each of SPLITS blocks a contiguous run of
the loop's iterations. Each block ends with a partial output (its rows normalised by the keys
it saw) and that part's row log-sum-exp; a second kernel merges the parts by their
log-sum-exp, which is exact: the whole softmax is the parts' softmaxes weighted by
exp(lse_part - lse_all). That is only true of the loop that carries an online softmax, run
once per block (not nested in another loop), with nothing after it but the stores of its
output and log-sum-exp: those are the statements the merge takes over.
"""
from __future__ import annotations

from tlc import ir
from tlc.diagnostics import Diagnostic
from tlc.passes.facts import Facts, text

MAX_SPLITS = 256  # more parts than that read more partial output than keys


def split_loops(kernel: ir.Kernel) -> list[ir.Loop]:
    return [op for op in ir.walk(kernel.body) if isinstance(op, ir.Loop) and
            op.splits is not None]


def splits(kernel: ir.Kernel, ctx) -> ir.Kernel:
    loops = split_loops(kernel)
    if not loops:
        return kernel
    facts = Facts(kernel)
    for extra in loops[1:]:
        ctx.report(Diagnostic("bad-split", "a second split loop: a plan splits one key loop",
                              extra.span, help="keep `with splits` on the loop over key blocks"))
    loop = loops[0]
    count = facts.value(loop.splits)
    if not isinstance(count, int) or not 1 <= count <= MAX_SPLITS:
        ctx.report(Diagnostic(
            "bad-split", f"`splits {text(loop.splits)}` must be a compile-time count from 1 to "
            f"{MAX_SPLITS}" + (f", not {count}" if count is not None else ""), loop.span,
            help="declare `param SPLITS = 8` and write `with splits SPLITS`"))
        return kernel
    if loop not in kernel.body:
        ctx.report(Diagnostic(
            "bad-split", f"the loop over `{loop.var}` is split, but it runs inside another "
            "loop: a block's partial result is taken when the split loop ends", loop.span,
            help="split the outermost loop over key blocks, or remove `with splits`"))
        return kernel
    online = [o for o in ctx.facts.get("online_softmax", ()) if o.loop_var == loop.var]
    if not online:
        ctx.report(Diagnostic(
            "bad-split", f"the loop over `{loop.var}` carries no online softmax: only the key "
            "loop's partial outputs merge by their log-sum-exp", loop.span,
            help="put `with splits` on the loop that holds `Compute Softmax S` and the GEMM "
                 "that accumulates O"))
        return kernel
    _after_the_loop(kernel, loop, online[0], ctx)
    ctx.facts["splits"] = ({"loop_var": loop.var, "splits": count,
                            "output": online[0].output},)
    iterations = facts.value(ir.BinOp("-", loop.stop, loop.start))
    if isinstance(iterations, int) and iterations < count:
        ctx.report(Diagnostic(
            "bad-split", f"{count} splits of {iterations} iteration(s) leave "
            f"{count - iterations} split(s) empty", loop.span,
            help=f"use at most {max(iterations, 1)} splits"))
    return kernel


def _after_the_loop(kernel: ir.Kernel, loop: ir.Loop, online, ctx) -> None:
    """After a split loop, a block holds a partial result: what the plan does with it must be
    what the merge replaces (the output's and the log-sum-exp's way out)."""
    vectors = {op.out for op in ir.walk(kernel.body) if isinstance(op, ir.Logsumexp)}
    for op in kernel.body[kernel.body.index(loop) + 1:]:
        if isinstance(op, ir.Logsumexp) or isinstance(op, ir.Allocate):
            continue
        if isinstance(op, ir.Copy) and op.name in {online.output} | vectors:
            continue
        ctx.report(Diagnostic(
            "bad-split", f"after a split loop a block holds part of `{online.output}`; this "
            "statement would work on the part, not the merged result", op.span,
            help=f"after the loop, only store `{online.output}` (and its log-sum-exp), or "
                 "remove `with splits`"))
