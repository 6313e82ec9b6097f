"""The syntax tree of a TL plan: what was written, with a span on every node.

Nodes are frozen dataclasses. Spans do not take part in equality, so two parses of the same
plan laid out differently compare equal; that is the property `tlc fmt` is tested against.
Names keep their spelling; the resolver (passes/resolve.py) gives them meaning.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from tlc.source import NO_SPAN, Span


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


# ---- expressions ----

@dataclass(frozen=True)
class Int:
    value: int
    span: Span = _span()


@dataclass(frozen=True)
class Float:
    text: str  # as written, so the formatter reproduces it exactly
    span: Span = _span()

    @property
    def value(self) -> float:
        return float(self.text)


@dataclass(frozen=True)
class Name:
    id: str
    span: Span = _span()


@dataclass(frozen=True)
class Call:
    func: "Ident"
    args: tuple["Expr", ...]
    span: Span = _span()


@dataclass(frozen=True)
class Element:
    """`lengths[b]`: one value of an int32 input, read at run time."""

    tensor: "Ident"
    args: tuple["Expr", ...]
    span: Span = _span()


@dataclass(frozen=True)
class Binary:
    op: str  # one of + - * / %
    left: "Expr"
    right: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class Neg:
    operand: "Expr"
    span: Span = _span()


Expr = Union[Int, Float, Name, Call, Binary, Neg]


# ---- pieces of statements ----

@dataclass(frozen=True)
class Ident:
    """A name in a position that is not an expression: a declared name, a level, a dtype."""

    text: str
    span: Span = _span()


@dataclass(frozen=True)
class Shape:
    dims: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Clause:
    """`with key value`: a parameter of a statement. value is None for a flag like `causal`."""

    key: Ident
    value: Union[Expr, Shape, None]
    span: Span = _span()


@dataclass(frozen=True)
class Coord:
    """`L = i` in `in coordinate [L = i]`: tile index i along dimension L."""

    dim: Ident
    index: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Operand:
    expr: Expr
    transposed: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class Result:
    """`and get X`, `and get new X` or `and accumulate X`."""

    name: Ident
    accumulate: bool = False
    new: bool = False
    span: Span = _span()


# ---- declarations (the header) ----

@dataclass(frozen=True)
class KernelDecl:
    """`kernel NAME [for ARCH]`, or `sketch NAME [for ARCH]` for a plan whose parameters are
    still open."""

    name: Ident
    target: Ident | None = None
    sketch: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class TensorDecl:
    """`input Q (B, H, Nq, D) fp16` or `output O (...) fp16`; no shape makes a scalar."""

    role: str  # "input" or "output"
    name: Ident
    shape: Shape | None
    dtype: Ident
    span: Span = _span()
    clauses: tuple["Clause", ...] = ()


@dataclass(frozen=True)
class ParamDecl:
    name: Ident
    value: Expr
    span: Span = _span()


@dataclass(frozen=True)
class GridDecl:
    extents: Shape
    indices: tuple[Ident, ...]
    span: Span = _span()


Decl = Union[KernelDecl, TensorDecl, ParamDecl, GridDecl]


# ---- statements ----

@dataclass(frozen=True)
class Allocate:
    name: Ident
    level: Ident
    shape: Shape | None
    clauses: tuple[Clause, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class Copy:
    name: Ident
    tile: Shape | None
    coord: tuple[Coord, ...]
    src: Ident
    dst: Ident
    clauses: tuple[Clause, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class Compute:
    op: Ident
    operands: tuple[Operand, ...]
    result: Result | None
    clauses: tuple[Clause, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class Reshape:
    name: Ident
    src: Shape
    dst: Shape
    clauses: tuple[Clause, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class For:
    var: Ident
    start: Expr
    stop: Expr
    body: tuple["Stmt", ...]
    span: Span = _span()  # from `for` to the end of its `end`
    clauses: tuple[Clause, ...] = ()


Stmt = Union[Allocate, Copy, Compute, Reshape, For]


@dataclass(frozen=True)
class Comment:
    text: str  # including the leading '#'
    line: int
    own_line: bool  # False for a comment after a statement on the same line


@dataclass(frozen=True)
class Plan:
    decls: tuple[Decl, ...]
    body: tuple[Stmt, ...]
    comments: tuple[Comment, ...] = field(default=(), compare=False, repr=False)
    span: Span = _span()

    @property
    def declares_sketch(self) -> bool:
        """True when the plan's first line says `sketch NAME`."""
        return any(isinstance(d, KernelDecl) and d.sketch for d in self.decls)


def walk_stmts(stmts: tuple[Stmt, ...]):
    """Every statement, loops included, in program order (a loop before its body)."""
    for stmt in stmts:
        yield stmt
        if isinstance(stmt, For):
            yield from walk_stmts(stmt.body)


def walk_expr(expr):
    """An expression and all its sub-expressions."""
    yield expr
    if isinstance(expr, Binary):
        yield from walk_expr(expr.left)
        yield from walk_expr(expr.right)
    elif isinstance(expr, Neg):
        yield from walk_expr(expr.operand)
    elif isinstance(expr, (Call, Element)):
        for arg in expr.args:
            yield from walk_expr(arg)
