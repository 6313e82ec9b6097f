"""Scope: what the names and fixed words of a plan mean at a point of the plan.

The symbol table (params, sizes, block indices, loop variables, scalars), the tensors of the
header and the buffers allocated so far, and the checks of the words the language fixes
(levels, dtypes, clauses, functions). The resolve pass walks the plan through a Scope.
"""
from __future__ import annotations

from tlc import ast, ir
from tlc.diagnostics import Diagnostic, closest, did_you_mean
from tlc.fixes import Edit
from tlc.language import CLAUSE_EXAMPLES

INT_LIMIT = 2**31 - 1  # params become C `int` constants


def hint_then(hint: str) -> str:
    """A "did you mean" hint, ready to be followed by the list of what is allowed."""
    if not hint:
        return ""
    return f"{hint} " if hint.endswith("?") else f"{hint}. "


class Scope:
    """Names declared so far and the words of the language, with the checks that report on
    them; a pass that walks a plan in order subclasses it."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.sketch = ctx.sketch
        self.params: dict[str, int] = {}
        self.symbols: dict[str, ir.SymKind] = {}
        self.tensors: dict[str, ir.Tensor] = {}
        self.buffers: dict[tuple[str, ir.Level], ir.Buffer] = {}
        self.gemm_results: set[str] = set()
        self.bad_grid = False  # a wrong grid line: the indices coordinates use may be missing

    def report(self, code, message, span, help=None, fixes=()):
        self.ctx.report(Diagnostic(code, message, span, help=help, fixes=fixes))

    def _declare(self, ident: ast.Ident, kind: ir.SymKind) -> bool:
        if ident.text in self.symbols or ident.text in self.tensors:
            self.report("duplicate-name", f"`{ident.text}` is already declared", ident.span,
                        help="give it another name")
            return False
        self.symbols[ident.text] = kind
        return True

    def _constant(self, expr: ast.Expr, what: str) -> int | None:
        """A compile-time integer, or None after reporting why it is not one."""
        try:
            value = ir.evaluate(self._expr(expr, report_undefined=False), self.params)
        except ir.NotConstant as error:
            kind = self.symbols.get(error.sym.name)
            why = (f"`{error.sym.name}` is a runtime size" if kind is ir.SymKind.SIZE
                   else f"`{error.sym.name}` is not a param declared above")
            self.report("bad-param", f"{what} must be a compile-time integer; {why}",
                        expr.span, help="use integers and params declared on earlier lines")
            return None
        except (ZeroDivisionError, ValueError, OverflowError):
            self.report("bad-param", f"{what} has no value (division by zero or overflow)",
                        expr.span, help="use integers and params declared on earlier lines")
            return None
        if not isinstance(value, int):
            self.report("bad-param", f"{what} must be an integer, not {value!r}", expr.span,
                        help="params are integers; a float belongs in a Compute operand")
            return None
        if not 0 <= value <= INT_LIMIT:
            self.report("bad-param", f"{what} = {value} is outside 0 … {INT_LIMIT}", expr.span,
                        help="params are non-negative 32-bit integers")
            return None
        return value

    # ---- words the language fixes ----

    def _dtype(self, ident: ast.Ident) -> ir.DType | None:
        return self._word(ident, ir.DType, ir.DTYPE_ALIASES, "unknown-dtype", "data type",
                          "Dtypes")

    def _level(self, ident: ast.Ident) -> ir.Level | None:
        return self._word(ident, ir.Level, ir.LEVEL_ALIASES, "unknown-level", "memory level",
                          "Levels")

    def _word(self, ident: ast.Ident, words, aliases, code: str, what: str, plural: str):
        """The member of a fixed vocabulary an identifier names, or None after reporting it
        with the spelling the language uses (for a known alias) or the closest word."""
        try:
            return words(ident.text)
        except ValueError:
            known = [word.value for word in words]
            guess = aliases.get(ident.text.lower())
            hint = f"write `{guess}`" if guess else did_you_mean(ident.text, known)
            guess = guess or closest(ident.text, known)
            self.report(code, f"unknown {what} `{ident.text}`", ident.span,
                        help=hint_then(hint) + f"{plural} are " + ", ".join(known),
                        fixes=(Edit(ident.span, guess),) if guess else ())
            # Go on as if the guess were written, so that uses of the name further down
            # are not reported as well: one typo, one error.
            return words(guess) if guess else None

    def _clauses(self, clauses, table: dict[str, str], where: str) -> dict[str, object]:
        """{key: resolved value} for the clauses the table allows; reports the others."""
        values: dict[str, object] = {}
        for clause in clauses:
            key = clause.key.text
            if key not in table:
                hint = did_you_mean(key, table)
                allowed = (f"It takes {', '.join(f'`{k}`' for k in table)}." if table
                           else f"Remove the clause: {where} takes none.")
                self.report("unknown-clause", f"{where} takes no `{key}` clause", clause.key.span,
                            help=hint_then(hint) + allowed)
                continue
            if key in values:
                self.report("bad-clause", f"`{key}` is given twice", clause.span,
                            help="keep one of them")
                continue
            value = self._clause_value(clause, table[key])
            if value is not None:
                values[key] = value
        return values

    def _clause_value(self, clause: ast.Clause, kind: str):
        key, value = clause.key.text, clause.value
        shapes = {"flag": "no value", "name": "a name", "dtype": "a data type",
                  "expr": "one expression", "pair": "two values `(a, b)`",
                  "layout": "a number or a tuple like `(4, 1)`"}
        ok = {"flag": value is None,
              "name": isinstance(value, ast.Name),
              "dtype": isinstance(value, ast.Name),
              "expr": value is not None and not isinstance(value, ast.Shape),
              "pair": isinstance(value, ast.Shape) and len(value.dims) == 2,
              "layout": value is not None}[kind]
        if not ok:
            self.report("bad-clause", f"`{key}` takes {shapes[kind]}", clause.span,
                        help=f"e.g. `with {CLAUSE_EXAMPLES.get(key, key)}`")
            return None
        if kind == "flag":
            return True
        if kind == "name":
            return value.id
        if kind == "dtype":
            return self._dtype(ast.Ident(value.id, value.span))
        if isinstance(value, ast.Shape):
            return tuple(self._expr(dim) for dim in value.dims)
        return (self._expr(value),) if kind == "layout" else self._expr(value)

    # ---- expressions ----

    def _expr(self, expr: ast.Expr, report_undefined: bool = True) -> ir.Expr:
        if isinstance(expr, ast.Int):
            return ir.Const(expr.value, expr.span)
        if isinstance(expr, ast.Float):
            return ir.Const(expr.value, expr.span)
        if isinstance(expr, ast.Name):
            kind = self.symbols.get(expr.id)
            if kind is None:
                if report_undefined and not self.sketch:
                    self._undefined(expr.id, expr.span)
                kind = ir.SymKind.OPEN
            return ir.Sym(expr.id, kind, expr.span)
        if isinstance(expr, ast.Neg):
            return ir.Neg(self._expr(expr.operand, report_undefined), expr.span)
        if isinstance(expr, ast.Binary):
            return ir.BinOp(expr.op, self._expr(expr.left, report_undefined),
                            self._expr(expr.right, report_undefined), expr.span)
        if isinstance(expr, ast.Element):
            return self._element(expr, report_undefined)
        args = tuple(self._expr(arg, report_undefined) for arg in expr.args)
        arity = ir.FUNCTIONS.get(expr.func.text)
        if arity is None:
            hint, guess = did_you_mean(expr.func.text, ir.FUNCTIONS), closest(
                expr.func.text, ir.FUNCTIONS)
            self.report("unknown-function", f"unknown function `{expr.func.text}`",
                        expr.func.span, help=hint_then(hint) + "Functions are " +
                        ", ".join(ir.FUNCTIONS),
                        fixes=(Edit(expr.func.span, guess),) if guess else ())
        elif arity != len(args):
            self.report("unknown-function", f"`{expr.func.text}` takes {arity} argument"
                        f"{'s' if arity > 1 else ''}, not {len(args)}", expr.span,
                        help=f"call it as `{expr.func.text}({', '.join('xyz'[:arity])})`")
        return ir.Call(expr.func.text, args, expr.span)

    def _element(self, expr: ast.Element, report_undefined: bool) -> ir.Expr:
        """`lengths[b]`: an element of an int32 input, one index a dimension."""
        args = tuple(self._expr(arg, report_undefined) for arg in expr.args)
        name = expr.tensor.text
        tensor = getattr(self, "tensors", {}).get(name)
        if tensor is None:
            if report_undefined and not self.sketch:
                self._undefined(name, expr.tensor.span)
        elif tensor.role != "input" or tensor.dtype is not ir.DType.INT32 or not tensor.shape:
            self.report("bad-operands", f"`{name}[...]` reads an element of an int32 input, and "
                        f"`{name}` is not one", expr.span,
                        help=f"declare the table as `input {name} (dims) int32`")
        elif len(tensor.shape) != len(args):
            self.report("bad-operands", f"`{name}` has {len(tensor.shape)} dimension(s); "
                        f"`{name}[...]` gives {len(args)} index(es)", expr.span,
                        help=f"index each dimension: `{name}["
                             + ", ".join("i" * (k + 1) for k in range(len(tensor.shape))) + "]`")
        return ir.Element(name, args, expr.span)

    def _integer_expr(self, expr: ast.Expr, what: str, report_undefined: bool = True) -> ir.Expr:
        """An expression that counts blocks or tiles (a loop bound, a coordinate): a float in
        it is reported here, where the plan says it, not later as arithmetic that fails."""
        stack = [expr]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.Float):
                self.report("not-integer", f"{what} must be an integer expression, and "
                            f"{node.value!r} is not an integer", node.span,
                            help="loop bounds and coordinates count blocks and tiles: write "
                                 "an integer")
                break
            stack += [getattr(node, name) for name in ("operand", "left", "right")
                      if hasattr(node, name)] + list(getattr(node, "args", ()))
        return self._expr(expr, report_undefined)

    def _undefined(self, name: str, span, tensor: bool = False) -> None:
        """Report an undeclared name; tensor says it stands where a tensor or buffer goes."""
        if tensor:
            known = list(self.tensors) + [b[0] for b in self.buffers]
            fix = (f"declare `input {name} (dims) DTYPE` in the header, or add "
                   f"`Allocate {name} in LEVEL (dims)` before this line")
        else:
            known = list(self.symbols) + list(self.tensors)
            fix = (f"declare it in the header: `param {name} = …`, or as a dimension of an "
                   "input")
        hint, guess = did_you_mean(name, known), closest(name, known)
        # `b` for `B` is a block index for a size far more often than a typo: no edit then.
        edit = (Edit(span, guess),) if guess and guess.lower() != name.lower() else ()
        self.report("undefined-name", f"`{name}` is not declared", span,
                    help=f"{hint} Otherwise {fix}" if hint else fix, fixes=edit)

    def _is_tensor(self, name: str) -> bool:
        return name in self.tensors or any(b[0] == name for b in self.buffers)

    def _known(self, ident: ast.Ident) -> bool:
        """Report a tensor or buffer name that nothing has declared or allocated yet."""
        if self._is_tensor(ident.text):
            return True
        self._undefined(ident.text, ident.span, tensor=True)
        return False
