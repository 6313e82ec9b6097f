"""One test per construct: the text parses to the syntax tree it means."""
import pytest

import tlc
from tlc import ast
from tlc.source import Source
from tlc.grammar.parser import parse

PAPER_FORMS = """\
Allocate A in global (M, K) with offset batch_offset
Allocate C in register (BM, BN)
Copy A from global to shared
Copy A (BM, BK) in coordinate [L = i] from global to shared
Compute GEMM A, B and get S
Compute GEMM A, B and accumulate S
Compute Multiply A, x and get new A
Compute Multiply A, x and get B
Compute Softmax A
Reshape G from (MMA_C, MMA_M, MMA_N) to (MMA_A, MMA_M, MMA_N_new)
for i = 0: N
  Compute Softmax A
end
"""


def parse_ok(text):
    result = parse(Source(text))
    assert result.diagnostics == (), [d.message for d in result.diagnostics]
    return result.plan


def only_stmt(text):
    (stmt,) = parse_ok(text).body
    return stmt


def test_paper_statement_forms_parse_verbatim_and_pass_as_a_sketch():
    plan = parse_ok(PAPER_FORMS)
    assert len(plan.body) == 11
    assert tlc.check(PAPER_FORMS, sketch=True).diagnostics == ()


def test_paper_forms_are_not_tl_code():
    codes = {d.code for d in tlc.check(PAPER_FORMS).diagnostics}
    assert {"missing-header", "global-allocate", "undefined-name"} <= codes


def test_allocate():
    stmt = only_stmt("Allocate A in global (M, K) with offset batch_offset\n")
    assert stmt == ast.Allocate(ast.Ident("A"), ast.Ident("global"),
                                ast.Shape((ast.Name("M"), ast.Name("K"))),
                                (ast.Clause(ast.Ident("offset"), ast.Name("batch_offset")),))


def test_copy_with_tile_coordinate_and_clauses():
    stmt = only_stmt("Copy K (BN, D) in coordinate [B = b, Hkv = h / G, Nk = n] "
                     "from global to shared with vector 8, stages 2\n")
    assert stmt.name.text == "K" and (stmt.src.text, stmt.dst.text) == ("global", "shared")
    assert [c.dim.text for c in stmt.coord] == ["B", "Hkv", "Nk"]
    assert stmt.coord[1].index == ast.Binary("/", ast.Name("h"), ast.Name("G"))
    assert [(c.key.text, c.value) for c in stmt.clauses] == [("vector", ast.Int(8)),
                                                             ("stages", ast.Int(2))]


def test_copy_without_parameters():
    stmt = only_stmt("Copy A from global to shared")
    assert stmt.tile is None and stmt.coord == () and stmt.clauses == ()


@pytest.mark.parametrize("text, accumulate, new", [
    ("Compute GEMM A, B and get S", False, False),
    ("Compute GEMM A, B and accumulate S", True, False),
    ("Compute Multiply A, x and get new A", False, True),
])
def test_compute_results(text, accumulate, new):
    stmt = only_stmt(text)
    assert (stmt.result.accumulate, stmt.result.new) == (accumulate, new)


def test_gemm_with_transpose_and_layout():
    stmt = only_stmt("Compute GEMM Q, K^T and get S with warps (4, 1), mma m16n8k16")
    assert [o.transposed for o in stmt.operands] == [False, True]
    warps, mma = stmt.clauses
    assert warps.value == ast.Shape((ast.Int(4), ast.Int(1)))
    assert mma.value == ast.Name("m16n8k16")


@pytest.mark.parametrize("text, key, value", [
    ("Compute Mask S with causal", "causal", None),
    ("Compute Mask S with window (256, 0)", "window", ast.Shape((ast.Int(256), ast.Int(0)))),
    ("Compute Softcap S with cap 30.0", "cap", ast.Float("30.0")),
])
def test_variant_clauses(text, key, value):
    (clause,) = only_stmt(text).clauses
    assert (clause.key.text, clause.value) == (key, value)


def test_alibi_and_multiply_by_expression():
    assert len(only_stmt("Compute ALiBi S, slopes and get new S").operands) == 2
    stmt = only_stmt("Compute Multiply S, rsqrt(D) and get new S")
    assert stmt.operands[1].expr == ast.Call(ast.Ident("rsqrt"), (ast.Name("D"),))


def test_reshape():
    stmt = only_stmt("Reshape S from (MMA_C, BM, BN) to (MMA_A, BM, BN) with dtype fp16")
    assert stmt.src.dims[0] == ast.Name("MMA_C") and stmt.dst.dims[0] == ast.Name("MMA_A")


def test_nested_loops_and_spans():
    plan = parse_ok("for i = 0: N\n  for j = i: min(N, i + 4)\n    Compute Softmax S\n  end\nend\n")
    (outer,) = plan.body
    (inner,) = outer.body
    assert inner.start == ast.Name("i")
    assert (outer.span.line, outer.span.end_line) == (1, 5)
    assert (inner.body[0].span.line, inner.body[0].span.column) == (3, 5)


def test_header():
    plan = parse_ok("kernel attn for sm_80\ninput Q (B, H, N, D) fp16\ninput scale fp32\n"
                    "output O (B, H, N, D) fp16\nparam BM = 64 * 2\n"
                    "grid (cdiv(N, BM), H, B) as (m, h, b)\n")
    kernel, q, scale, o, param, grid = plan.decls
    assert (kernel.name.text, kernel.target.text, kernel.sketch) == ("attn", "sm_80", False)
    assert q.role == "input" and len(q.shape.dims) == 4 and q.dtype.text == "fp16"
    assert scale.shape is None
    assert param.value == ast.Binary("*", ast.Int(64), ast.Int(2))
    assert [i.text for i in grid.indices] == ["m", "h", "b"]


def test_sketch_header():
    (decl,) = parse_ok("sketch flash\n").decls
    assert decl.sketch


def test_expression_precedence_and_unary_minus():
    stmt = only_stmt("for i = -1: a - b - c * d % e\nend")
    assert stmt.start == ast.Neg(ast.Int(1))
    assert stmt.stop == ast.Binary("-", ast.Binary("-", ast.Name("a"), ast.Name("b")),
                                   ast.Binary("%", ast.Binary("*", ast.Name("c"), ast.Name("d")),
                                              ast.Name("e")))


def test_comments_blank_lines_crlf_and_missing_final_newline():
    plan = parse_ok("# head\r\n\r\nCompute Softmax S  # trailing\r\n   # own\r\nCompute Softmax P")
    assert len(plan.body) == 2
    assert [(c.line, c.own_line) for c in plan.comments] == [(1, True), (3, False), (4, True)]


def test_empty_file_parses_to_an_empty_plan():
    assert parse_ok("") == ast.Plan((), ())
    assert parse_ok("# only a comment\n\n") == ast.Plan((), ())


def test_spans_do_not_take_part_in_equality():
    assert parse_ok("Compute  Softmax   S") == parse_ok("\n\nCompute Softmax S\n")
