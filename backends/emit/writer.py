"""Generated C as lines of text, indented by scope; IR expressions as C."""
from __future__ import annotations

import re

from tlc import ir
from tlc.backends.target import stride_name

C_FUNCTIONS = {"cdiv": "tlc::cdiv", "min": "min", "max": "max", "sqrt": "sqrtf",
               "rsqrt": "rsqrtf", "log2": "log2f", "exp2": "exp2f"}


def c_expr(e: ir.Expr, rename: dict | None = None) -> str:
    """An IR expression in C (integer arithmetic; float literals stay floats). Plan names
    live under p_, apart from tlc's own; `rename` maps a name to other C."""
    rename = rename or {}
    if isinstance(e, ir.Const):
        return repr(float(e.value)) + "f" if isinstance(e.value, float) else str(e.value)
    if isinstance(e, ir.Sym):
        return rename.get(e.name, f"p_{e.name}")
    if isinstance(e, ir.Neg):
        return f"(-{c_expr(e.operand, rename)})"
    if isinstance(e, ir.Call):
        args = ", ".join(c_expr(a, rename) for a in e.args)
        return C_FUNCTIONS[e.func] + f"({args})"
    if isinstance(e, ir.Element):  # the kernel's strides of the table, its last dim contiguous
        *outer, last = [c_expr(a, rename) for a in e.args]
        terms = [f"(long long)({a}) * {stride_name(e.tensor, d)}" for d, a in enumerate(outer)]
        return f"__ldg({e.tensor}_g + " + " + ".join(terms + [f"({last})"]) + ")"
    return f"({c_expr(e.left, rename)} {e.op} {c_expr(e.right, rename)})"


class CodeWriter:
    def __init__(self):
        self.lines: list[str] = []
        self.depth = 1

    def line(self, text: str = "") -> None:
        self.lines.append("    " * self.depth + text if text else "")

    def open(self, text: str) -> None:
        assert "//" not in text, "a comment would swallow the brace: use block()"
        self.line(text + " {")
        self.depth += 1

    def block(self, comment: str) -> None:
        """A `{` scope headed by a comment line."""
        self.line(comment)
        self.line("{")
        self.depth += 1

    def close(self, text: str = "}") -> None:
        self.depth -= 1
        self.line(text)


def unroll_policy(lines: list[str]) -> list[str]:
    """Every loop of tlc's own has a compile-time trip count: unrolled, its fragment arrays
    stay in registers (indexed at run time they would spill to local memory). Plan loops
    (p_ names) and the copy loop over chunks (tlc_c) stay rolled: unrolled, the copy loop's
    per-chunk addresses would be hoisted out of the key loop and held in registers for all
    of it."""
    lines = [re.sub(r"\bfor \(int (?!p_|tlc_c\b)", '_Pragma("unroll") for (int ', line)
             for line in lines]
    return [line.replace("for (int tlc_c ", '_Pragma("unroll 1") for (int tlc_c ')
            for line in lines]
