"""The checked IR as text (`tlc compile --emit ir`): one line per declaration and statement,
with every level, dtype, shape and clause resolved, in TL's own words where it has them."""
from __future__ import annotations

from tlc import ir
from tlc.passes.facts import text


def ir_text(kernel: ir.Kernel) -> str:
    lines = [f"kernel {kernel.name} for {kernel.target or '(no target)'}"
             + ("  # sketch" if kernel.sketch else "")]
    for tensor in kernel.tensors:
        shape = f" {_shape(tensor.shape)}" if tensor.shape else ""
        pages = (f" with pages ({tensor.pages[0]}, {text(tensor.pages[1])})" if tensor.pages
                 else "")
        lines.append(f"{tensor.role} {tensor.name}{shape} {_dtype(tensor.dtype)}{pages}")
    lines += [f"param {p.name} = {p.value}" for p in kernel.params]
    if kernel.grid:
        lines.append(f"grid {_shape(kernel.grid.extents)} as ({', '.join(kernel.grid.indices)})")
    lines += _body(kernel.body, 0)
    return "\n".join(lines) + "\n"


def _body(ops, depth: int) -> list[str]:
    lines = []
    for op in ops:
        pad = "  " * depth
        if isinstance(op, ir.Loop):
            splits = f" with splits {text(op.splits)}" if op.splits is not None else ""
            lines.append(f"{pad}for {op.var} = {text(op.start)}: {text(op.stop)}{splits}")
            lines += _body(op.body, depth + 1)
            lines.append(f"{pad}end")
        else:
            lines.append(pad + _statement(op))
    return lines


def _statement(op) -> str:
    if isinstance(op, ir.Allocate):
        b = op.buffer
        shape = _shape(b.shape) if b.shape else "(?)"
        return f"Allocate {b.name} in {b.level.value} {shape} {_dtype(b.dtype)}"
    if isinstance(op, ir.Copy):
        tile = f" {_shape(op.tile)}" if op.tile else ""
        coord = (" in coordinate [" + ", ".join(f"{d} = {text(e)}" for d, e in op.coord) + "]"
                 if op.coord else "")
        clauses = [f"{word} {text(value)}" for word, value in
                   (("vector", op.vector), ("stages", op.stages), ("rows", op.rows),
                    ("start", op.start))
                   if value is not None] + ["add"] * op.add
        return (f"Copy {op.name}{tile}{coord} from {op.src.value} to {op.dst.value}"
                + (f" with {', '.join(clauses)}" if clauses else ""))
    if isinstance(op, ir.Gemm):
        verb = "accumulate" if op.accumulate else "get"
        warps = f"warps {_shape(op.warps)}, " if op.warps else ""
        return (f"Compute GEMM {_ref(op.a)}, {_ref(op.b)} and {verb} {op.out} with "
                f"{warps}mma {op.mma}")
    if isinstance(op, ir.Multiply):
        return f"Compute Multiply {_operand(op.a)}, {_operand(op.b)} and get {op.out}"
    if isinstance(op, ir.Softmax):
        return f"Compute Softmax {op.target}"
    if isinstance(op, ir.Logsumexp):
        return f"Compute Logsumexp {op.target} and get {op.out}"
    if isinstance(op, ir.Mask):
        clauses = ["causal"] * op.causal
        if op.window is not None:
            clauses.append(f"window ({text(op.window[0])}, {text(op.window[1])})")
        return f"Compute Mask {op.target} with {', '.join(clauses)}"
    if isinstance(op, ir.Softcap):
        return f"Compute Softcap {op.target} with cap {text(op.cap) if op.cap else '?'}"
    if isinstance(op, ir.Alibi):
        return f"Compute ALiBi {op.target}, {op.slopes} and get {op.out}"
    if isinstance(op, ir.Exp):
        return f"Compute Exp {op.target}, {op.vector} and get {op.out}"
    if isinstance(op, ir.Subtract):
        return f"Compute Subtract {_operand(op.a)}, {_operand(op.b)} and get {op.out}"
    if isinstance(op, ir.SoftcapGrad):
        return (f"Compute SoftcapGrad {op.gradient}, {op.scores} and get {op.out} with cap "
                f"{text(op.cap) if op.cap else '?'}")
    if isinstance(op, ir.Rowsum):
        return f"Compute Rowsum {op.target} and get {op.out}"
    if isinstance(op, ir.Reshape):
        return (f"Reshape {op.name} from {_shape(op.src)} to {_shape(op.dst)}"
                + (f" with dtype {op.dtype.value}" if op.dtype else ""))
    raise TypeError(f"no text for {type(op).__name__}")


def _shape(dims) -> str:
    return "(" + ", ".join(text(d) for d in dims) + ")"


def _dtype(dtype) -> str:
    return dtype.value if dtype else "(dtype unknown)"


def _ref(ref: ir.Ref) -> str:
    return ref.name + ("^T" if ref.transposed else "")


def _operand(value) -> str:
    return _ref(value) if isinstance(value, ir.Ref) else text(value)
