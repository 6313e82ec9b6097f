"""resolve: the syntax tree becomes IR, every name checked against what declares it.

In TL code (the default) the header must declare every tensor, size and param a statement
uses, and a buffer must be allocated at a level before a Copy or Compute touches it there. In a
sketch (`tlc check --sketch`) names may stay open and the header may be absent; words the
language fixes (levels, dtypes, operations, clauses) are checked in both.
"""
from __future__ import annotations

from tlc import ast, ir
from tlc.arch import ARCH_NAMES, suggest_arch
from tlc.diagnostics import Diagnostic, Severity, did_you_mean
from tlc.source import NO_SPAN
from tlc.language import FRAGMENT_LAYOUTS, MMA_SHAPES, OPS, STATEMENT_CLAUSES

INT_LIMIT = 2**31 - 1  # params become C `int` constants


def resolve(plan: ast.Plan, ctx) -> ir.Kernel:
    """Resolve a parsed plan into an ir.Kernel, reporting through ctx.report."""
    return _Resolver(ctx).kernel(plan)


class _Resolver:
    def __init__(self, ctx):
        self.ctx = ctx
        self.sketch = ctx.sketch
        self.params: dict[str, int] = {}
        self.symbols: dict[str, ir.SymKind] = {}
        self.tensors: dict[str, ir.Tensor] = {}
        self.buffers: dict[tuple[str, ir.Level], ir.Buffer] = {}
        self.gemm_results: set[str] = set()

    def report(self, code, message, span, help=None):
        self.ctx.report(Diagnostic(code, message, span, help=help))

    # ---- the whole plan ----

    def kernel(self, plan: ast.Plan) -> ir.Kernel:
        self.gemm_results = {stmt.result.name.text for stmt in ast.walk_stmts(plan.body)
                             if isinstance(stmt, ast.Compute) and stmt.op.text == "GEMM"
                             and stmt.result is not None}
        name, target, grid = self._header(plan.decls)
        if not plan.body:  # fatal for a kernel, a reminder for a sketch still being written
            self.ctx.report(Diagnostic(
                "empty-plan", "the plan has no statement",
                plan.decls[0].span if plan.decls else NO_SPAN,
                help="a plan needs at least the Copy and Compute statements of its kernel; "
                     "see examples/", severity=Severity.WARNING if self.sketch else
                Severity.ERROR))
        body = self._stmts(plan.body)
        return ir.Kernel(name, target, tuple(self.tensors.values()),
                         tuple(ir.Param(k, v) for k, v in self.params.items()), grid, body,
                         self.sketch, plan.span)

    # ---- header ----

    def _header(self, decls):
        name = target = grid = None
        for decl in decls:
            if isinstance(decl, ast.KernelDecl):
                if name is not None:
                    self.report("duplicate-name", "a plan declares one kernel", decl.span,
                                help="remove this `kernel` line")
                    continue
                name, target = decl.name.text, self._target(decl.target)
        # Params first, so that a tensor dimension named after a param (`D`) is that param and
        # not a runtime size, wherever the lines stand; then tensors; then the grid, which may
        # use both.
        for decl in decls:
            if isinstance(decl, ast.ParamDecl):
                self._param(decl)
        for decl in decls:
            if isinstance(decl, ast.TensorDecl):
                self._tensor(decl)
        for decl in decls:
            if isinstance(decl, ast.GridDecl):
                if grid is not None:
                    self.report("duplicate-name", "a plan has one grid", decl.span,
                                help="merge the two into one `grid` line")
                    continue
                grid = self._grid(decl)
        return name, target, grid

    def _target(self, ident: ast.Ident | None) -> str | None:
        if ident is None:
            return None
        if ident.text not in ARCH_NAMES:
            guess = suggest_arch(ident.text)
            self.report("unknown-arch", f"unknown target `{ident.text}`", ident.span,
                        help=(f"write `{guess}`. " if guess else "") +
                        f"Targets are {', '.join(ARCH_NAMES)}")
            return None
        return ident.text

    def _declare(self, ident: ast.Ident, kind: ir.SymKind) -> bool:
        if ident.text in self.symbols or ident.text in self.tensors:
            self.report("duplicate-name", f"`{ident.text}` is already declared", ident.span,
                        help="give it another name")
            return False
        self.symbols[ident.text] = kind
        return True

    def _tensor(self, decl: ast.TensorDecl) -> None:
        dtype = self._dtype(decl.dtype)
        if decl.shape is None:
            if decl.role == "output":
                self.report("bad-operands", "an output is a tensor and needs a shape",
                            decl.span, help=f"write `output {decl.name.text} (dims) "
                                            f"{decl.dtype.text}`")
            if self._declare(decl.name, ir.SymKind.SCALAR):
                self.tensors[decl.name.text] = ir.Tensor(decl.name.text, decl.role, (), dtype,
                                                         decl.span)
            return
        for dim in decl.shape.dims:  # a dimension that is no param is a runtime size
            for node in ast.walk_expr(dim):
                if isinstance(node, ast.Name) and node.id not in self.symbols:
                    self.symbols[node.id] = ir.SymKind.SIZE
        shape = tuple(self._expr(dim) for dim in decl.shape.dims)
        if decl.name.text in self.tensors or decl.name.text in self.symbols:
            self.report("duplicate-name", f"`{decl.name.text}` is already declared",
                        decl.name.span, help="give it another name")
            return
        self.tensors[decl.name.text] = ir.Tensor(decl.name.text, decl.role, shape, dtype,
                                                 decl.span)

    def _param(self, decl: ast.ParamDecl) -> None:
        value = self._constant(decl.value, f"param {decl.name.text}")
        if not self._declare(decl.name, ir.SymKind.PARAM) or value is None:
            return
        self.params[decl.name.text] = value

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

    def _grid(self, decl: ast.GridDecl) -> ir.Grid | None:
        extents, indices = decl.extents.dims, decl.indices
        if len(extents) != len(indices) or len(extents) > 3:
            self.report("bad-grid", f"the grid has {len(extents)} extents and {len(indices)} "
                        "indices", decl.span,
                        help="give one index name per extent, at most three: "
                             "`grid (cdiv(Nq, BM), H, B) as (m, h, b)`")
            return None
        resolved = tuple(self._expr(extent) for extent in extents)
        for index in indices:
            self._declare(index, ir.SymKind.BLOCK)
        return ir.Grid(resolved, tuple(i.text for i in indices), decl.span)

    # ---- words the language fixes ----

    def _dtype(self, ident: ast.Ident) -> ir.DType | None:
        try:
            return ir.DType(ident.text)
        except ValueError:
            guess = ir.DTYPE_ALIASES.get(ident.text.lower())
            hint = f"write `{guess}`" if guess else did_you_mean(ident.text, [d.value for d in
                                                                             ir.DType])
            self.report("unknown-dtype", f"unknown data type `{ident.text}`", ident.span,
                        help=_then(hint) + "Dtypes are " +
                        ", ".join(d.value for d in ir.DType))
            return None

    def _level(self, ident: ast.Ident) -> ir.Level | None:
        try:
            return ir.Level(ident.text)
        except ValueError:
            guess = ir.LEVEL_ALIASES.get(ident.text.lower())
            hint = f"write `{guess}`" if guess else did_you_mean(ident.text, [lv.value for lv
                                                                             in ir.Level])
            self.report("unknown-level", f"unknown memory level `{ident.text}`", ident.span,
                        help=_then(hint) + "Levels are global, shared and "
                                                             "register")
            return None

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
                            help=_then(hint) + allowed)
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
                        help=f"e.g. `with {_CLAUSE_EXAMPLES.get(key, key)}`")
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
        args = tuple(self._expr(arg, report_undefined) for arg in expr.args)
        arity = ir.FUNCTIONS.get(expr.func.text)
        if arity is None:
            hint = did_you_mean(expr.func.text, ir.FUNCTIONS)
            self.report("unknown-function", f"unknown function `{expr.func.text}`",
                        expr.func.span, help=_then(hint) + "Functions are " +
                        ", ".join(ir.FUNCTIONS))
        elif arity != len(args):
            self.report("unknown-function", f"`{expr.func.text}` takes {arity} argument"
                        f"{'s' if arity > 1 else ''}, not {len(args)}", expr.span,
                        help=f"call it as `{expr.func.text}({', '.join('xyz'[:arity])})`")
        return ir.Call(expr.func.text, args, expr.span)

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
        hint = did_you_mean(name, known)
        self.report("undefined-name", f"`{name}` is not declared", span,
                    help=f"{hint} Otherwise {fix}" if hint else fix)

    # ---- statements ----

    def _stmts(self, stmts) -> tuple[ir.Op, ...]:
        ops = []
        for stmt in stmts:
            op = getattr(self, f"_stmt_{type(stmt).__name__.lower()}")(stmt)
            if op is not None:
                ops.append(op)
        return tuple(ops)

    def _stmt_for(self, stmt: ast.For):
        start, stop = self._expr(stmt.start), self._expr(stmt.stop)
        shadowed = self.symbols.get(stmt.var.text)
        if shadowed is not None:
            self.report("duplicate-name", f"loop variable `{stmt.var.text}` hides the "
                        f"{shadowed.value} of that name", stmt.var.span,
                        help="name the loop variable differently")
        self.symbols[stmt.var.text] = ir.SymKind.LOOP
        body = self._stmts(stmt.body)
        if shadowed is None:
            del self.symbols[stmt.var.text]
        return ir.Loop(stmt.var.text, start, stop, body, stmt.span)

    def _stmt_allocate(self, stmt: ast.Allocate):
        level = self._level(stmt.level)
        clauses = self._clauses(stmt.clauses, STATEMENT_CLAUSES["Allocate"], "Allocate")
        shape = tuple(self._expr(d) for d in stmt.shape.dims) if stmt.shape else None
        if level is None:
            return None
        if level is ir.Level.GLOBAL and not self.sketch:
            self.report("global-allocate", "TL code declares global tensors in the header, not "
                        "with Allocate", stmt.span,
                        help=f"write `input {stmt.name.text} (dims) DTYPE` in the header and "
                             "select the block's tile with `in coordinate [...]` in the Copy")
            return None
        key = (stmt.name.text, level)
        if key in self.buffers:
            self.report("duplicate-name", f"`{stmt.name.text}` is already allocated in "
                        f"{level.value}", stmt.name.span,
                        help="allocate each buffer once, before the loop that uses it")
            return None
        buffer = ir.Buffer(stmt.name.text, level, shape, self._buffer_dtype(stmt, clauses),
                           clauses.get("offset"), stmt.span)
        self.buffers[key] = buffer
        return ir.Allocate(buffer, stmt.span)

    def _buffer_dtype(self, stmt: ast.Allocate, clauses) -> ir.DType | None:
        """Explicit `with dtype`, else fp32 for a GEMM result (an accumulator), else the dtype
        of the global tensor of the same name."""
        if "dtype" in clauses:
            return clauses["dtype"]
        if stmt.name.text in self.gemm_results:
            return ir.DType.FP32
        tensor = self.tensors.get(stmt.name.text)
        return tensor.dtype if tensor else None

    def _resident(self, ident: ast.Ident, level: ir.Level | None) -> None:
        """Report when a name has no buffer or tensor at the level a statement uses."""
        if self.sketch or level is None:
            return
        name = ident.text
        if level is ir.Level.GLOBAL:
            if name in self.tensors:
                return
        elif (name, level) in self.buffers:
            return
        if not self._is_tensor(name):
            return  # reported once by the statement, as an undefined name
        if level is ir.Level.GLOBAL:
            self.report("missing-allocation", f"`{name}` is not a global tensor", ident.span,
                        help=f"declare `input {name} (dims) DTYPE` or `output …` in the header")
        else:
            self.report("missing-allocation", f"`{name}` has no buffer in {level.value}",
                        ident.span, help=f"add `Allocate {name} in {level.value} (dims)` "
                                         "before this line")

    def _is_tensor(self, name: str) -> bool:
        return name in self.tensors or any(b[0] == name for b in self.buffers)

    def _known(self, ident: ast.Ident) -> bool:
        """Report a tensor or buffer name that nothing has declared or allocated yet."""
        if self._is_tensor(ident.text):
            return True
        self._undefined(ident.text, ident.span, tensor=True)
        return False

    def _stmt_copy(self, stmt: ast.Copy):
        src, dst = self._level(stmt.src), self._level(stmt.dst)
        clauses = self._clauses(stmt.clauses, STATEMENT_CLAUSES["Copy"], "Copy")
        tile = tuple(self._expr(d) for d in stmt.tile.dims) if stmt.tile else None
        if self.sketch or self._known(stmt.name):
            self._resident(stmt.name, src)
            self._resident(stmt.name, dst)
        if src is not None and src == dst:
            self.report("bad-operands", f"a Copy from {src.value} to {src.value} moves nothing",
                        stmt.dst.span, help="name two different levels")
            return None
        coord = tuple(self._coord(stmt.name.text, c) for c in stmt.coord)
        if src is None or dst is None:
            return None
        return ir.Copy(stmt.name.text, src, dst, tile, coord, clauses.get("vector"),
                       clauses.get("stages"), stmt.span)

    def _coord(self, name: str, coord: ast.Coord):
        tensor = self.tensors.get(name)
        if tensor is not None and tensor.shape:
            dims = [d.name for d in tensor.shape if isinstance(d, ir.Sym)]
            if coord.dim.text not in dims:
                hint = did_you_mean(coord.dim.text, dims)
                self.report("unknown-dim", f"`{name}` has no dimension `{coord.dim.text}`",
                            coord.dim.span, help=_then(hint) +
                            f"Its dimensions are {', '.join(dims)}.")
        return coord.dim.text, self._expr(coord.index)

    def _stmt_reshape(self, stmt: ast.Reshape):
        clauses = self._clauses(stmt.clauses, STATEMENT_CLAUSES["Reshape"], "Reshape")
        if not self.sketch:
            self._known(stmt.name)
        for shape in (stmt.src, stmt.dst):
            role = shape.dims[0]
            if not (isinstance(role, ast.Name) and role.id in FRAGMENT_LAYOUTS):
                self.report("bad-operands", "a Reshape's shapes start with the fragment layout "
                            f"they view the data as, one of {', '.join(FRAGMENT_LAYOUTS)}",
                            role.span, help="e.g. `Reshape S from (MMA_C, BM, BN) to "
                                            "(MMA_A, BM, BN)`")
        # The shapes name fragment layouts (MMA_C, MMA_M, ...), not symbols: keep them open.
        src = tuple(self._expr(d, report_undefined=False) for d in stmt.src.dims)
        dst = tuple(self._expr(d, report_undefined=False) for d in stmt.dst.dims)
        return ir.Reshape(stmt.name.text, src, dst, clauses.get("dtype"), stmt.span)

    def _stmt_compute(self, stmt: ast.Compute):
        spec = OPS.get(stmt.op.text)
        if spec is None:
            hint = did_you_mean(stmt.op.text, OPS)
            self.report("unknown-op", f"unknown operation `{stmt.op.text}`", stmt.op.span,
                        help=_then(hint) + "Operations are " +
                        ", ".join(OPS))
            return None
        clauses = self._clauses(stmt.clauses, spec.clauses, f"Compute {spec.name}")
        self._layout_ok(stmt, clauses)
        if not self._compute_shape_ok(stmt, spec, clauses):
            return None
        refs = [self._operand(operand, spec, index) for index, operand in
                enumerate(stmt.operands)]
        out = stmt.result.name.text if stmt.result else refs[0].name
        if stmt.result is not None and not self.sketch:
            self._known(stmt.result.name)
        return _BUILD[spec.name](refs, out, stmt, clauses)

    def _layout_ok(self, stmt: ast.Compute, clauses) -> None:
        """A GEMM's `mma` is a known shape and `warps` splits rows and columns (or rows)."""
        by_key = {c.key.text: c for c in stmt.clauses}
        if "mma" in clauses and clauses["mma"] not in MMA_SHAPES:
            hint = did_you_mean(clauses["mma"], MMA_SHAPES)
            self.report("bad-clause", f"unknown MMA shape `{clauses['mma']}`",
                        by_key["mma"].span, help=_then(hint) + "Shapes are " +
                        ", ".join(MMA_SHAPES))
            del clauses["mma"]
        if "warps" in clauses and len(clauses["warps"]) > 2:
            self.report("bad-clause", "`warps` gives warps along rows and columns: one or two "
                        f"values, not {len(clauses['warps'])}", by_key["warps"].span,
                        help="e.g. `with warps (4, 1)`")
            del clauses["warps"]

    def _compute_shape_ok(self, stmt: ast.Compute, spec, clauses) -> bool:
        op = spec.name
        if len(stmt.operands) != spec.operands:
            self.report("bad-operands", f"Compute {op} takes {spec.operands} operand"
                        f"{'s' if spec.operands > 1 else ''}, not {len(stmt.operands)}",
                        stmt.span, help=f"e.g. `{_OP_EXAMPLES[op]}`")
            return False
        if spec.result and stmt.result is None:
            self.report("missing-result", f"Compute {op} must name its result", stmt.span,
                        help=f"add `and get NAME` (or `and accumulate NAME`): "
                             f"`{_OP_EXAMPLES[op]}`")
            return False
        if not spec.result and stmt.result is not None:
            self.report("bad-operands", f"Compute {op} works in place and names no result",
                        stmt.result.span, help=f"drop the `and …` part: `{_OP_EXAMPLES[op]}`")
            return False
        if stmt.result is not None and not self._result_ok(stmt, spec):
            return False
        if spec.one_of and not any(key in clauses for key in spec.one_of):
            wanted = " or ".join(f"`with {_CLAUSE_EXAMPLES[k]}`" for k in spec.one_of)
            self.report("bad-clause", f"Compute {op} needs {wanted}", stmt.span,
                        help=f"e.g. `{_OP_EXAMPLES[op]}`")
            return False
        return True

    def _result_ok(self, stmt: ast.Compute, spec) -> bool:
        """`accumulate` adds a GEMM's product to its result; `new` overwrites an operand."""
        result = stmt.result
        if result.accumulate and spec.name != "GEMM":
            self.report("bad-operands", f"only a GEMM accumulates; Compute {spec.name} gets its "
                        "result", result.span, help=f"e.g. `{_OP_EXAMPLES[spec.name]}`")
            return False
        if result.new and spec.name == "GEMM":
            self.report("bad-operands", "`new` overwrites an operand, and a GEMM's result is "
                        "never one of its operands", result.span,
                        help=f"write `and get {result.name.text}`, or `and accumulate "
                             f"{result.name.text}` to add to it")
            return False
        return True

    def _operand(self, operand: ast.Operand, spec, index: int):
        """A Ref for a tensor or buffer; an expression for a scalar factor of Multiply."""
        expr = operand.expr
        wants_tensor = not (spec.name == "Multiply" and index == 1)
        if not isinstance(expr, ast.Name):
            if spec.name == "GEMM":
                self.report("bad-operands", "a GEMM operand is a buffer name", operand.span,
                            help="name a buffer allocated in shared or register memory")
            return self._expr(expr)
        if operand.transposed and spec.name != "GEMM":
            self.report("bad-operands", f"only GEMM operands can be transposed", operand.span,
                        help=f"write `{expr.id}` without `^T`")
        if not self._is_tensor(expr.id):
            if wants_tensor and expr.id not in self.symbols and not self.sketch:
                self._undefined(expr.id, expr.span, tensor=True)
                return ir.Ref(expr.id, operand.transposed, operand.span)
            if spec.name == "GEMM" and expr.id in self.symbols:
                self.report("bad-operands", f"`{expr.id}` is a {self.symbols[expr.id].value}, "
                            "not a buffer", operand.span,
                            help="a GEMM multiplies buffers allocated in shared or registers")
            return self._expr(expr)  # a scalar, a param, or an undefined name
        return ir.Ref(expr.id, operand.transposed, operand.span)


def _then(hint: str) -> str:
    """A "did you mean" hint, ready to be followed by the list of what is allowed."""
    if not hint:
        return ""
    return f"{hint} " if hint.endswith("?") else f"{hint}. "


def _gemm(refs, out, stmt, clauses):
    a, b = refs
    warps = clauses.get("warps")
    warps = warps if warps is None or len(warps) == 2 else warps + (ir.Const(1),)
    return ir.Gemm(a, b, out, stmt.result.accumulate, warps, clauses.get("mma"), stmt.span)


def _ref_name(ref) -> str:
    return ref.name if isinstance(ref, ir.Ref) else getattr(ref, "name", "?")


_BUILD = {
    "GEMM": _gemm,
    "Multiply": lambda refs, out, stmt, c: ir.Multiply(refs[0], refs[1], out,
                                                       stmt.result.new, stmt.span),
    "Softmax": lambda refs, out, stmt, c: ir.Softmax(_ref_name(refs[0]), stmt.span),
    "Mask": lambda refs, out, stmt, c: ir.Mask(_ref_name(refs[0]), "causal" in c,
                                               c.get("window"), stmt.span),
    "Softcap": lambda refs, out, stmt, c: ir.Softcap(_ref_name(refs[0]), c.get("cap"),
                                                     stmt.span),
    "ALiBi": lambda refs, out, stmt, c: ir.Alibi(_ref_name(refs[0]), _ref_name(refs[1]), out,
                                                 stmt.span),
}

_OP_EXAMPLES = {
    "GEMM": "Compute GEMM Q, K^T and get S",
    "Multiply": "Compute Multiply S, scale and get new S",
    "Softmax": "Compute Softmax S",
    "Mask": "Compute Mask S with causal",
    "Softcap": "Compute Softcap S with cap 30.0",
    "ALiBi": "Compute ALiBi S, slopes and get new S",
}

_CLAUSE_EXAMPLES = {
    "warps": "warps (4, 1)", "mma": "mma m16n8k16", "causal": "causal",
    "window": "window (256, 0)", "cap": "cap 30.0", "dtype": "dtype fp32",
    "offset": "offset batch_offset", "vector": "vector 8", "stages": "stages 2",
}
