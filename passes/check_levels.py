"""check_levels: each Copy and Compute uses memory levels where the hardware can do it.

GEMM operands and results, and every other Compute, live in registers: an operand kept in
shared memory must be copied to a register buffer first (but a warpgroup MMA reads its B,
and its A where A has no register buffer, from shared memory), and a register buffer must be filled
(by a Copy, a GEMM or a Reshape) before it is read. A Copy into global memory writes an output.
"""
from __future__ import annotations

from tlc import ir
from tlc.arch import MMA_SHAPES
from tlc.diagnostics import Diagnostic
from tlc.passes.facts import Facts, register_reads, register_writes, shape_text


def check_levels(kernel: ir.Kernel, ctx) -> ir.Kernel:
    """Report a Compute on data that is not in registers, and a store into an input."""
    facts = Facts(kernel)
    for op, _, held in facts.walk_held():
        if isinstance(op, ir.Copy) and op.dst is ir.Level.GLOBAL:
            tensor = facts.tensors.get(op.name)
            if tensor is not None and tensor.role == "input":
                ctx.report(Diagnostic(
                    "write-input", f"`{op.name}` is an input: a kernel does not write its "
                    "inputs", op.span, help=f"store into an output (`output {op.name}_out …`) "
                                            "or declare this tensor as an output"))
        if isinstance(op, (ir.Copy, ir.Allocate, ir.Loop)):
            continue  # a Copy's levels are its own business; Compute and Reshape work here
        reads = register_reads(op)
        for name in dict.fromkeys(reads + register_writes(op)):
            _check_register(facts, op, name, name in reads, held, ctx.report)
    return kernel


def _check_register(facts: Facts, op, name: str, reads: bool, held, report) -> None:
    if isinstance(op, ir.Multiply) and name in facts.tensors and not facts.tensors[name].shape:
        return  # a scalar argument
    if reads_from_shared(facts, op, name):
        return
    if (name, ir.Level.REGISTER) not in facts.buffers:
        shared = facts.buffers.get((name, ir.Level.SHARED))
        shape = shape_text(shared.shape) if shared and shared.shape else "(dims)"
        fill = f" and `Copy {name} from shared to register`" if shared else ""
        report(Diagnostic("operand-level", f"`{name}` has no register buffer; Compute works on "
                          "registers", op.span,
                          help=f"add `Allocate {name} in register {shape}`{fill} before this "
                               "line"))
        return
    if reads and name not in held and not (isinstance(op, ir.Gemm) and name == op.out):
        source = "a Copy from shared memory" if (name, ir.Level.SHARED) in facts.buffers \
            else "a GEMM or a Copy"
        report(Diagnostic("operand-level", f"`{name}` is read from registers before anything "
                          "fills them", op.span,
                          help=f"fill it first with {source}, e.g. `Copy {name} from shared to "
                               "register` before this line"))


def reads_from_shared(facts: Facts, op, name: str) -> bool:
    """Whether a GEMM reads operand `name` straight from its shared buffer: a warpgroup MMA
    (wgmma) takes B, and A unless it is in registers, from shared memory [PTX ISA, wgmma]."""
    if not isinstance(op, ir.Gemm) or name not in (op.a.name, op.b.name) or name == op.out:
        return False
    shape = MMA_SHAPES.get(op.mma or "")
    if shape is None or not shape.warpgroup or (name, ir.Level.SHARED) not in facts.buffers:
        return False
    return name == op.b.name or (name, ir.Level.REGISTER) not in facts.buffers
