"""resolve: the syntax tree becomes IR, every name checked against what declares it.

In TL code (the default) the header must declare every tensor, size and param a statement
uses, and a buffer must be allocated at a level before a Copy or Compute touches it there. In a
sketch (`tlc check --sketch`) names may stay open and the header may be absent; words the
language fixes (levels, dtypes, operations, clauses) are checked in both.
"""
from __future__ import annotations

import dataclasses

from tlc import ast, ir
from tlc.arch import ARCH_NAMES, suggest_arch
from tlc.diagnostics import Diagnostic, Severity, closest, did_you_mean
from tlc.fixes import Edit
from tlc.language import CLAUSE_EXAMPLES, FRAGMENT_LAYOUTS, MMA_SHAPES, OPS, STATEMENT_CLAUSES
from tlc.passes.scope import Scope, hint_then
from tlc.source import NO_SPAN


def resolve(plan: ast.Plan, ctx) -> ir.Kernel:
    """Resolve a parsed plan into an ir.Kernel, reporting through ctx.report."""
    return _Resolver(ctx).kernel(plan)


# How to launch a fourth dimension: fold it into another extent and split the index again.
_FOLD_GRID = ("fold two extents into one and split its index in the coordinates: "
              "`grid (cdiv(Nq, BM), H * B) as (m, hb)`, then `H = hb % H, B = hb / H`")


class _Resolver(Scope):
    # ---- the whole plan ----

    def kernel(self, plan: ast.Plan) -> ir.Kernel:
        # results computed in fp32 registers: GEMM accumulators, and what the elementwise
        # operations of the backward pass make of them
        self.fp32_results = {stmt.result.name.text for stmt in ast.walk_stmts(plan.body)
                             if isinstance(stmt, ast.Compute) and stmt.op.text in FP32_RESULTS
                             and stmt.result is not None}
        name, target, grid = self._header(plan.decls)
        # A sketch may allocate a buffer after its first use; what it must not do is use one
        # it never allocates, declares or computes.
        self.sketch_names = set(self.tensors) | {
            stmt.name.text for stmt in ast.walk_stmts(plan.body)
            if isinstance(stmt, ast.Allocate)} | {
            stmt.result.name.text for stmt in ast.walk_stmts(plan.body)
            if isinstance(stmt, ast.Compute) and stmt.result is not None}
        if not plan.body:  # fatal for a kernel, a reminder for a sketch still being written
            self.ctx.report(Diagnostic(
                "empty-plan", "the plan has no statement",
                plan.decls[0].span if plan.decls else NO_SPAN,
                help="a plan needs at least the Copy and Compute statements of its kernel; "
                     "see examples/", severity=Severity.WARNING if self.sketch else
                Severity.ERROR))
        body = self._stmts(plan.body)
        params = tuple(ir.Param(d.name.text, self.params[d.name.text], d.span, d.value.span)
                       for d in plan.decls if isinstance(d, ast.ParamDecl)
                       and self.params.get(d.name.text) is not None
                       and self.symbols.get(d.name.text) is ir.SymKind.PARAM)
        params = tuple(p for i, p in enumerate(params)  # a duplicate keeps the first
                       if all(q.name != p.name for q in params[:i]))
        return ir.Kernel(name, target, tuple(self.tensors.values()), params, grid, body,
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
        for kind, declare in ((ast.ParamDecl, self._param), (ast.TensorDecl, self._tensor)):
            for decl in decls:
                if isinstance(decl, kind):
                    declare(decl)
        for decl in decls:  # a page table may be declared after the tensor it pages
            if isinstance(decl, ast.TensorDecl) and decl.clauses:
                self._pages(decl)
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

    def _tensor(self, decl: ast.TensorDecl) -> None:
        dtype = self._dtype(decl.dtype)
        if decl.shape is None:
            if decl.role == "output":
                self.report("bad-operands", "an output is a tensor and needs a shape",
                            decl.span, help=f"write `output {decl.name.text} (dims) "
                                            f"{decl.dtype.text}`")
            # An int32 scalar is a count the call gives (the longest sequence of a varlen
            # batch): a runtime size like a tensor's dimension; other scalars are floats.
            kind = ir.SymKind.SIZE if dtype is ir.DType.INT32 else ir.SymKind.SCALAR
            if self._declare(decl.name, kind):
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

    def _pages(self, decl: ast.TensorDecl) -> None:
        """`input K (B, Hkv, Nk, D) fp16 with pages (table, PAGE)`."""
        found = None
        for clause in decl.clauses:  # the table is a tensor, not a symbol: read it here
            if clause.key.text != "pages":
                self._clauses((clause,), STATEMENT_CLAUSES["input"], decl.role)
            elif found is not None:
                self.report("bad-clause", "`pages` is given twice", clause.span,
                            help="keep one of them")
            elif not (isinstance(clause.value, ast.Shape) and len(clause.value.dims) == 2
                      and isinstance(clause.value.dims[0], ast.Name)):
                self.report("bad-clause", "`pages` takes the block table and the page size",
                            clause.span, help=f"e.g. `with {CLAUSE_EXAMPLES['pages']}`")
            else:
                found = clause.value.dims
        tensor = self.tensors.get(decl.name.text)
        if found is None or tensor is None:
            return
        table, page = ir.Sym(found[0].id, ir.SymKind.OPEN, found[0].span), self._expr(found[1])
        if decl.role != "input" or len(tensor.shape) < 3:
            self.report("bad-pages", "pages hold the rows of an input of three or more "
                        "dimensions (a K or V cache)", decl.span,
                        help="remove `with pages`, or page a (B, Hkv, Nk, D) input")
            return
        if not isinstance(table, ir.Sym) or table.name not in self.tensors or \
                self.tensors[table.name].dtype is not ir.DType.INT32 or \
                len(self.tensors[table.name].shape) != 2:
            self.report("bad-pages", "the first value of `pages` names the block table, an "
                        "int32 input of two dimensions (sequence, page)", decl.span,
                        help="declare `input table (B, PAGES) int32` and write "
                             "`with pages (table, PAGE)`")
            return
        self.tensors[tensor.name] = dataclasses.replace(tensor, pages=(table.name, page))

    def _param(self, decl: ast.ParamDecl) -> None:
        value = self._constant(decl.value, f"param {decl.name.text}")
        if not self._declare(decl.name, ir.SymKind.PARAM) or value is None:
            return
        self.params[decl.name.text] = value

    def _grid(self, decl: ast.GridDecl) -> ir.Grid | None:
        extents, indices = decl.extents.dims, decl.indices
        for index in indices:  # declared even on a bad grid: uses of them are not errors too
            self._declare(index, ir.SymKind.BLOCK)
        self.bad_grid = len(extents) > 3 or len(extents) != len(indices)
        if len(extents) > 3:
            self.report("bad-grid", f"the grid has {len(extents)} extents; a CUDA grid has "
                        "at most three", decl.span, help=_FOLD_GRID)
            return None
        if len(extents) != len(indices):
            self.report("bad-grid", f"the grid has {len(extents)} extents and {len(indices)} "
                        "indices", decl.span,
                        help="give one index name per extent, at most three: "
                             "`grid (cdiv(Nq, BM), H, B) as (m, h, b)`")
            return None
        resolved = tuple(self._expr(extent) for extent in extents)
        for extent in resolved:
            blocks = [n for n in ir.symbols(extent) if n.kind is ir.SymKind.BLOCK]
            if blocks:  # the grid's size cannot depend on which block is running
                self.report("bad-grid", f"the grid's extent names its own index "
                            f"`{blocks[0].name}`", blocks[0].span,
                            help="grid extents are sizes and params, e.g. `grid (cdiv(Nq, BM), "
                                 "H, B) as (m, h, b)`")
                self.bad_grid = True
                return None
        return ir.Grid(resolved, tuple(i.text for i in indices), decl.span)

    # ---- statements ----

    def _stmts(self, stmts) -> tuple[ir.Op, ...]:
        ops = []
        for stmt in stmts:
            op = getattr(self, f"_stmt_{type(stmt).__name__.lower()}")(stmt)
            if op is not None:
                ops.append(op)
        return tuple(ops)

    def _stmt_for(self, stmt: ast.For):
        start = self._integer_expr(stmt.start, "a loop's start")
        stop = self._integer_expr(stmt.stop, "a loop's bound")
        clauses = self._clauses(stmt.clauses, STATEMENT_CLAUSES["for"], "for")
        shadowed = self.symbols.get(stmt.var.text)
        if shadowed is not None:
            self.report("duplicate-name", f"loop variable `{stmt.var.text}` hides the "
                        f"{shadowed.value} of that name", stmt.var.span,
                        help="name the loop variable differently")
        self.symbols[stmt.var.text] = ir.SymKind.LOOP
        body = self._stmts(stmt.body)
        if shadowed is None:
            del self.symbols[stmt.var.text]
        else:
            self.symbols[stmt.var.text] = shadowed
        return ir.Loop(stmt.var.text, start, stop, body, stmt.span, clauses.get("splits"))

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
        dtype = self._buffer_dtype(stmt, clauses, level)
        buffer = ir.Buffer(stmt.name.text, level, shape, dtype, clauses.get("offset"), stmt.span)
        self.buffers[key] = buffer
        return ir.Allocate(buffer, stmt.span)

    def _buffer_dtype(self, stmt: ast.Allocate, clauses, level: ir.Level) -> ir.DType | None:
        """Explicit `with dtype`, else fp32 for a GEMM, Exp, Subtract or Rowsum result in
        registers (an accumulator, or elementwise work on one),
        else, in registers, the dtype of the shared tile of the same name (what a Copy from it
        brings), else the dtype of the global tensor of the same name (a staging tile in shared
        memory holds what is stored)."""
        if "dtype" in clauses:
            return clauses["dtype"]
        if stmt.name.text in self.fp32_results and level is ir.Level.REGISTER:
            return ir.DType.FP32
        shared = self.buffers.get((stmt.name.text, ir.Level.SHARED))
        if level is ir.Level.REGISTER and shared is not None and shared.dtype is not None:
            return shared.dtype
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

    def _stmt_copy(self, stmt: ast.Copy):
        table = self.tensors.get(stmt.name.text)
        if table is not None and table.dtype is ir.DType.INT32:
            self.report("bad-operands", f"`{table.name}` is an int32 table: a plan reads its "
                        "elements in expressions, it does not copy it", stmt.span,
                        help=f"use `{table.name}[...]` where its values are needed, e.g. in a "
                             "loop bound")
            return None
        src, dst = self._level(stmt.src), self._level(stmt.dst)
        clauses = self._clauses(stmt.clauses, STATEMENT_CLAUSES["Copy"], "Copy")
        tile = tuple(self._expr(d) for d in stmt.tile.dims) if stmt.tile else None
        if self.sketch:
            self._in_sketch(stmt.name.text, stmt.name.span)
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
                       clauses.get("stages"), stmt.span, clauses.get("rows"),
                       clauses.get("start"), "add" in clauses)

    def _coord(self, name: str, coord: ast.Coord):
        tensor = self.tensors.get(name)
        if tensor is not None and tensor.shape:
            dims = [d.name for d in tensor.shape if isinstance(d, ir.Sym)]
            if coord.dim.text not in dims:
                hint, guess = did_you_mean(coord.dim.text, dims), closest(coord.dim.text, dims)
                self.report("unknown-dim", f"`{name}` has no dimension `{coord.dim.text}`",
                            coord.dim.span, help=hint_then(hint) +
                            f"Its dimensions are {', '.join(dims)}.",
                            fixes=(Edit(coord.dim.span, guess),) if guess else ())
        # With the grid line wrong, an index it lacks is that line's error, not this one's.
        return coord.dim.text, self._integer_expr(coord.index, "a coordinate",
                                                  report_undefined=not self.bad_grid)

    def _stmt_reshape(self, stmt: ast.Reshape):
        clauses = self._clauses(stmt.clauses, STATEMENT_CLAUSES["Reshape"], "Reshape")
        if not self.sketch:
            self._known(stmt.name)
        else:
            self._in_sketch(stmt.name.text, stmt.name.span)
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
            hint, guess = did_you_mean(stmt.op.text, OPS), closest(stmt.op.text, OPS)
            self.report("unknown-op", f"unknown operation `{stmt.op.text}`", stmt.op.span,
                        help=hint_then(hint) + "Operations are " +
                        ", ".join(OPS), fixes=(Edit(stmt.op.span, guess),) if guess else ())
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
                        by_key["mma"].span, help=hint_then(hint) + "Shapes are " +
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
                        stmt.span, help=f"e.g. `{OPS[op].example}`")
            return False
        if spec.result and stmt.result is None:
            self.report("missing-result", f"Compute {op} must name its result", stmt.span,
                        help=f"add `and get NAME` (or `and accumulate NAME`): "
                             f"`{OPS[op].example}`")
            return False
        if not spec.result and stmt.result is not None:
            self.report("bad-operands", f"Compute {op} works in place and names no result",
                        stmt.result.span, help=f"drop the `and …` part: `{OPS[op].example}`")
            return False
        if stmt.result is not None and not self._result_ok(stmt, spec):
            return False
        if spec.one_of and not any(key in clauses for key in spec.one_of):
            wanted = " or ".join(f"`with {CLAUSE_EXAMPLES[k]}`" for k in spec.one_of)
            self.report("bad-clause", f"Compute {op} needs {wanted}", stmt.span,
                        help=f"e.g. `{OPS[op].example}`")
            return False
        return True

    def _result_ok(self, stmt: ast.Compute, spec) -> bool:
        """`accumulate` adds a GEMM's product to its result; `new` overwrites an operand."""
        result = stmt.result
        if result.accumulate and spec.name != "GEMM":
            self.report("bad-operands", f"only a GEMM accumulates; Compute {spec.name} gets its "
                        "result", result.span, help=f"e.g. `{spec.example}`")
            return False
        if result.new and spec.name == "GEMM":
            self.report("bad-operands", "`new` overwrites an operand, and a GEMM's result is "
                        "never one of its operands", result.span,
                        help=f"write `and get {result.name.text}`, or `and accumulate "
                             f"{result.name.text}` to add to it")
            return False
        return True

    def _in_sketch(self, name: str, span) -> None:
        """In a sketch: report a buffer that no line allocates, declares or computes when it
        is a near miss of one that is (`Kx` for `K`). The paper's sketches use buffers they
        never allocate, so a name like no other stays open."""
        if name in self.sketch_names:
            return
        guess = closest(name, self.sketch_names)
        self.sketch_names.add(name)  # one error a name, at its first use
        if guess is None:
            return
        self.report("undefined-name", f"`{name}` is never allocated in this sketch; "
                    f"`{guess}` is", span, help=f"did you mean `{guess}`?",
                    fixes=(Edit(span, guess),))

    def _operand(self, operand: ast.Operand, spec, index: int):
        """A Ref for a tensor or buffer; an expression for a scalar factor of Multiply."""
        expr = operand.expr
        wants_tensor = not (spec.name in ("Multiply", "Subtract") and index == 1)
        if not isinstance(expr, ast.Name):
            if spec.name == "GEMM":
                self.report("bad-operands", "a GEMM operand is a buffer name", operand.span,
                            help="name a buffer allocated in shared or register memory")
            return self._expr(expr)
        if operand.transposed and spec.name != "GEMM":
            self.report("bad-operands", "only GEMM operands can be transposed", operand.span,
                        help=f"write `{expr.id}` without `^T`")
        if self.sketch and wants_tensor and expr.id not in self.symbols:
            self._in_sketch(expr.id, expr.span)
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


def _gemm(refs, out, stmt, clauses):
    a, b = refs
    warps = clauses.get("warps")
    warps = warps if warps is None or len(warps) == 2 else warps + (ir.Const(1),)
    return ir.Gemm(a, b, out, stmt.result.accumulate, warps, clauses.get("mma"), stmt.span)


def _ref_name(ref) -> str:
    return ref.name if isinstance(ref, ir.Ref) else getattr(ref, "name", "?")


# Compute operations whose register results are fp32 unless an Allocate says otherwise.
FP32_RESULTS = ("GEMM", "Exp", "Subtract", "SoftcapGrad", "Rowsum")

_BUILD = {
    "GEMM": _gemm,
    "Multiply": lambda refs, out, stmt, c: ir.Multiply(refs[0], refs[1], out,
                                                       stmt.result.new, stmt.span),
    "Softmax": lambda refs, out, stmt, c: ir.Softmax(_ref_name(refs[0]), stmt.span),
    "Logsumexp": lambda refs, out, stmt, c: ir.Logsumexp(_ref_name(refs[0]), out, stmt.span),
    "Mask": lambda refs, out, stmt, c: ir.Mask(_ref_name(refs[0]), "causal" in c,
                                               c.get("window"), stmt.span),
    "Softcap": lambda refs, out, stmt, c: ir.Softcap(_ref_name(refs[0]), c.get("cap"),
                                                     stmt.span),
    "ALiBi": lambda refs, out, stmt, c: ir.Alibi(_ref_name(refs[0]), _ref_name(refs[1]), out,
                                                 stmt.span),
    "Exp": lambda refs, out, stmt, c: ir.Exp(_ref_name(refs[0]), _ref_name(refs[1]), out,
                                             stmt.span),
    "Subtract": lambda refs, out, stmt, c: ir.Subtract(refs[0], refs[1], out,
                                                       stmt.result.new, stmt.span),
    "SoftcapGrad": lambda refs, out, stmt, c: ir.SoftcapGrad(
        _ref_name(refs[0]), _ref_name(refs[1]), c.get("cap"), out, stmt.span),
    "Rowsum": lambda refs, out, stmt, c: ir.Rowsum(_ref_name(refs[0]), out, stmt.span),
}

