"""Lark parse tree -> tlc.ast, with a span on every node."""
from __future__ import annotations

from lark import Token, Transformer, v_args

from tlc import ast
from tlc.source import Source


@v_args(meta=True)
class ToAst(Transformer):
    """One method per grammar rule; rules the grammar inlines (`?rule`) need none."""

    def __init__(self, source: Source):
        super().__init__()
        self._source = source

    # ---- helpers ----

    def _span(self, meta_or_token):
        """Tokens and rule metadata both carry start_pos and end_pos."""
        return self._source.span(meta_or_token.start_pos, meta_or_token.end_pos)

    def _ident(self, token: Token) -> ast.Ident:
        return ast.Ident(str(token), self._span(token))

    @staticmethod
    def _clauses(children) -> tuple[ast.Clause, ...]:
        for child in children:
            if isinstance(child, tuple) and child and isinstance(child[0], ast.Clause):
                return child
        return ()

    # ---- expressions ----

    def int(self, meta, children):
        return ast.Int(int(children[0]), self._span(meta))

    def float(self, meta, children):
        return ast.Float(str(children[0]), self._span(meta))

    def name(self, meta, children):
        return ast.Name(str(children[0]), self._span(meta))

    def call(self, meta, children):
        return ast.Call(self._ident(children[0]), tuple(children[1:]), self._span(meta))

    def element(self, meta, children):
        return ast.Element(self._ident(children[0]), tuple(children[1:]), self._span(meta))

    def binary(self, meta, children):
        left, op, right = children
        return ast.Binary(str(op), left, right, self._span(meta))

    def neg(self, meta, children):
        return ast.Neg(children[1], self._span(meta))

    # ---- pieces ----

    def shape(self, meta, children):
        return ast.Shape(tuple(children), self._span(meta))

    tuple = shape

    def name_list(self, meta, children):
        return tuple(self._ident(token) for token in children)

    def clause(self, meta, children):
        value = children[1] if len(children) > 1 else None
        return ast.Clause(self._ident(children[0]), value, self._span(meta))

    def with_clauses(self, meta, children):
        return tuple(children)

    def coord(self, meta, children):
        return ast.Coord(self._ident(children[0]), children[1], self._span(meta))

    def coordinate(self, meta, children):
        return ("coordinate", tuple(children))

    def operands(self, meta, children):
        return tuple(child if isinstance(child, ast.Operand)
                     else ast.Operand(child, False, child.span) for child in children)

    def transposed(self, meta, children):
        name = ast.Name(str(children[0]), self._span(children[0]))
        return ast.Operand(name, True, self._span(meta))

    def result(self, meta, children):
        words = [str(token) for token in children]
        return ast.Result(self._ident(children[-1]), accumulate=words[0] == "accumulate",
                          new="new" in words[:-1], span=self._span(meta))

    # ---- declarations ----

    def kernel_decl(self, meta, children):
        word, name, *target = children
        target = self._ident(target[0]) if target else None
        return ast.KernelDecl(self._ident(name), target, str(word) == "sketch", self._span(meta))

    def _tensor(self, role, meta, children):
        shape = children[1] if isinstance(children[1], ast.Shape) else None
        clauses = self._clauses(children)
        tokens = [c for c in children if isinstance(c, Token)]
        return ast.TensorDecl(role, self._ident(tokens[0]), shape, self._ident(tokens[-1]),
                              self._span(meta), clauses)

    def input_decl(self, meta, children):
        return self._tensor("input", meta, children)

    def output_decl(self, meta, children):
        return self._tensor("output", meta, children)

    def param_decl(self, meta, children):
        return ast.ParamDecl(self._ident(children[0]), children[1], self._span(meta))

    def grid_decl(self, meta, children):
        return ast.GridDecl(children[0], children[1], self._span(meta))

    # ---- statements ----

    def allocate(self, meta, children):
        shape = next((c for c in children if isinstance(c, ast.Shape)), None)
        return ast.Allocate(self._ident(children[0]), self._ident(children[1]), shape,
                            self._clauses(children), self._span(meta))

    def copy(self, meta, children):
        name, rest = children[0], children[1:]
        tile = next((c for c in rest if isinstance(c, ast.Shape)), None)
        coord = next((c[1] for c in rest if isinstance(c, tuple) and c[:1] == ("coordinate",)),
                     ())
        levels = [c for c in rest if isinstance(c, Token)]
        return ast.Copy(self._ident(name), tile, coord, self._ident(levels[0]),
                        self._ident(levels[1]), self._clauses(rest), self._span(meta))

    def compute(self, meta, children):
        result = next((c for c in children if isinstance(c, ast.Result)), None)
        return ast.Compute(self._ident(children[0]), children[1], result,
                           self._clauses(children), self._span(meta))

    def reshape(self, meta, children):
        return ast.Reshape(self._ident(children[0]), children[1], children[2],
                           self._clauses(children), self._span(meta))

    def for_head(self, meta, children):
        return (self._ident(children[0]), children[1], children[2], self._clauses(children[3:]))

    def for_loop(self, meta, children):
        (var, start, stop, clauses), body = children
        return ast.For(var, start, stop, body, self._span(meta), clauses)

    def stmts(self, meta, children):
        return tuple(children)

    def decls(self, meta, children):
        return tuple(children)

    def file(self, meta, children):
        decls, body = children
        return ast.Plan(decls, body)  # the parser adds the comments and the whole-file span
