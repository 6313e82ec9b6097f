"""The canonical form of a plan: what `tlc fmt` writes.

One statement per line, two spaces of indent per loop, single spaces around words, `, ` in
lists, the fewest parentheses that keep an expression's meaning, comments kept where they
were, and at most one blank line in a row. Printing a parsed plan and parsing the result gives
an equal plan.
"""
from __future__ import annotations

from tlc import ast

INDENT = "  "
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "%": 2}


def format_expr(expr: ast.Expr, context: int = 0) -> str:
    """An expression with parentheses only where precedence or left-associativity needs them."""
    if isinstance(expr, ast.Int):
        return str(expr.value)
    if isinstance(expr, ast.Float):
        return expr.text
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Call):
        return f"{expr.func.text}({', '.join(format_expr(a) for a in expr.args)})"
    if isinstance(expr, ast.Element):
        return f"{expr.tensor.text}[{', '.join(format_expr(a) for a in expr.args)}]"
    if isinstance(expr, ast.Neg):
        return "-" + format_expr(expr.operand, 3)
    level = _PRECEDENCE[expr.op]
    # The right operand of a left-associative operator needs parentheses at equal precedence.
    text = f"{format_expr(expr.left, level)} {expr.op} {format_expr(expr.right, level + 1)}"
    return f"({text})" if level < context else text


def _shape(shape: ast.Shape) -> str:
    return "(" + ", ".join(format_expr(d) for d in shape.dims) + ")"


def _clauses(clauses: tuple[ast.Clause, ...]) -> str:
    if not clauses:
        return ""
    parts = []
    for clause in clauses:
        value = clause.value
        if value is None:
            parts.append(clause.key.text)
        elif isinstance(value, ast.Shape):
            parts.append(f"{clause.key.text} {_shape(value)}")
        else:
            parts.append(f"{clause.key.text} {format_expr(value)}")
    return " with " + ", ".join(parts)


def format_line(node) -> str:
    """The canonical text of one declaration or statement (a loop's `for` line only)."""
    if isinstance(node, ast.KernelDecl):
        word = "sketch" if node.sketch else "kernel"
        return f"{word} {node.name.text}" + (f" for {node.target.text}" if node.target else "")
    if isinstance(node, ast.TensorDecl):
        shape = f" {_shape(node.shape)}" if node.shape else ""
        return f"{node.role} {node.name.text}{shape} {node.dtype.text}{_clauses(node.clauses)}"
    if isinstance(node, ast.ParamDecl):
        return f"param {node.name.text} = {format_expr(node.value)}"
    if isinstance(node, ast.GridDecl):
        names = ", ".join(i.text for i in node.indices)
        return f"grid {_shape(node.extents)} as ({names})"
    if isinstance(node, ast.Allocate):
        shape = f" {_shape(node.shape)}" if node.shape else ""
        return f"Allocate {node.name.text} in {node.level.text}{shape}{_clauses(node.clauses)}"
    if isinstance(node, ast.Copy):
        tile = f" {_shape(node.tile)}" if node.tile else ""
        coord = ""
        if node.coord:
            pairs = ", ".join(f"{c.dim.text} = {format_expr(c.index)}" for c in node.coord)
            coord = f" in coordinate [{pairs}]"
        return (f"Copy {node.name.text}{tile}{coord} from {node.src.text} to {node.dst.text}"
                f"{_clauses(node.clauses)}")
    if isinstance(node, ast.Compute):
        operands = ", ".join(format_expr(o.expr) + ("^T" if o.transposed else "")
                             for o in node.operands)
        result = ""
        if node.result:
            verb = "accumulate" if node.result.accumulate else (
                "get new" if node.result.new else "get")
            result = f" and {verb} {node.result.name.text}"
        return f"Compute {node.op.text} {operands}{result}{_clauses(node.clauses)}"
    if isinstance(node, ast.Reshape):
        return (f"Reshape {node.name.text} from {_shape(node.src)} to {_shape(node.dst)}"
                f"{_clauses(node.clauses)}")
    if isinstance(node, ast.For):
        return (f"for {node.var.text} = {format_expr(node.start)}: {format_expr(node.stop)}"
                f"{_clauses(node.clauses)}")
    raise TypeError(f"no printer for {type(node).__name__}")  # an internal error, not input


def _layout(stmts, depth: int, out: list) -> None:
    """(source line, depth, text, is_end) for each printed line, in order."""
    for stmt in stmts:
        out.append((stmt.span.line, depth, format_line(stmt), False))
        if isinstance(stmt, ast.For):
            _layout(stmt.body, depth + 1, out)
            out.append((stmt.span.end_line, depth, "end", True))


def format_plan(plan: ast.Plan, source_text: str | None = None) -> str:
    """The canonical text of a plan. With the original text, blank lines are kept (one at most)
    and comments stay beside the lines they were written with."""
    rows: list[tuple[int, int, str, bool]] = [(d.span.line, 0, format_line(d), False)
                                              for d in plan.decls]
    _layout(plan.body, 0, rows)
    trailing = {c.line: c.text for c in plan.comments if not c.own_line}
    own = sorted((c.line, c.text) for c in plan.comments if c.own_line)
    blank = _blank_lines(source_text)
    out: list[str] = []
    last_line = 0

    def emit(line: int, depth: int, text: str) -> None:
        nonlocal last_line
        if out and any(n in blank for n in range(last_line + 1, line)):
            out.append("")
        out.append(INDENT * depth + text)
        last_line = line

    position = 0
    for line, depth, text, is_end in rows:
        while position < len(own) and own[position][0] < line:
            # A comment just before `end` belongs to the loop body, one level deeper.
            emit(own[position][0], depth + 1 if is_end else depth, own[position][1])
            position += 1
        emit(line, depth, text + (f"  {trailing[line]}" if line in trailing else ""))
    for line, text in own[position:]:
        emit(line, 0, text)
    return "\n".join(out) + "\n" if out else ""


def _blank_lines(text: str | None) -> set[int]:
    if text is None:
        return set()
    return {number for number, line in enumerate(text.split("\n"), start=1) if not line.strip()}
