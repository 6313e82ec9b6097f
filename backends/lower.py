"""Lowering, in named stages: schedule (what the kernel does) -> cuda (the source). Building
(ptx, cubin) is tlc/build.py's; tlc/driver.py runs them all."""
from __future__ import annotations

from tlc import ir
from tlc.backends.emit.kernel import KernelEmitter
from tlc.backends.schedule import Schedule, build_schedule
from tlc.backends.target import Lowered, LoweringBug, Target, Unsupported

STAGES = ("schedule", "cuda", "ptx", "cubin")


def schedule(kernel: ir.Kernel, target: Target) -> Schedule:
    """The schedule of a checked kernel for a target; Unsupported where it has none."""
    if not target.lowers:
        raise Unsupported(None, f"tlc does not generate code for {target.arch} yet",
                          help=target.note)
    rowsum = next((op for op in ir.walk(kernel.body) if isinstance(op, ir.Rowsum)), None)
    if rowsum is not None:
        raise Unsupported(rowsum, f"Rowsum (the step before the backward pass) has no "
                          f"{target.arch} lowering yet",
                          help="tlc.torch computes Delta = rowsum(dO * O) itself; `tlc sim FILE` "
                               "runs this plan on the CPU (docs/language.md §5.9)")
    if not hasattr(target.gemm, "store_fragments"):
        backward = next((op for op in ir.walk(kernel.body) if is_backward(op)), None)
        if backward is not None:
            raise Unsupported(backward, "the backward pass's statements have no "
                              f"{target.arch} lowering yet",
                              help="lower it for sm_80 or sm_75 (`--arch sm_80`); `tlc sim FILE` "
                                   "runs it on the CPU (docs/language.md §5.9)")
    return build_schedule(kernel, target)


def is_backward(op) -> bool:
    """A statement only the backward pass uses, which no target lowers yet."""
    if isinstance(op, (ir.Exp, ir.Subtract, ir.SoftcapGrad, ir.Rowsum)):
        return True
    return isinstance(op, ir.Copy) and (op.add or (op.src, op.dst) == (ir.Level.GLOBAL,
                                                                      ir.Level.REGISTER))


def lower(kernel: ir.Kernel, target: Target) -> Lowered:
    """CUDA for a checked kernel: its schedule, then emission; Unsupported where the target
    cannot lower a statement."""
    try:
        plan = schedule(kernel, target)
        return Lowered(target.arch, KernelEmitter(kernel, target, plan).emit())
    except (Unsupported, LoweringBug):
        raise
    except Exception as error:  # a bug of tlc's, outside any one statement's rule
        raise LoweringBug(None, error) from error
