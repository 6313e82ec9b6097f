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
    backward = next((op for op in ir.walk(kernel.body) if is_backward(op)), None)
    if backward is not None:
        raise Unsupported(backward, "the backward pass's statements (Exp, Subtract, "
                          "SoftcapGrad, Rowsum, a "
                          "per-row vector loaded from global memory, a store `with add`) have "
                          f"no {target.arch} lowering yet",
                          help="`tlc sim FILE` runs the plan on the CPU against the float64 "
                               "gradients (docs/language.md §5.9)")
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
