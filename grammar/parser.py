"""Parse TL text into a tlc.ast.Plan, or into diagnostics that say what to change.

The whole file is parsed first with the `file` rule. Only if that fails is every line parsed
alone with the `line` rule: each line that does not parse gets its own diagnostic, and the
block structure (for/end, header before statements) is checked from the lines that do, so one
run reports every syntax error of a file, not just the first.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from tlc import ast
from tlc.diagnostics import Diagnostic
from tlc.grammar.loader import build_parser, grammar_text, lark_parser  # noqa: F401 (re-export)
from tlc.source import Source

_COMMENT = re.compile(r"#[^\n]*")


@dataclass(frozen=True)
class ParseResult:
    plan: ast.Plan | None
    diagnostics: tuple[Diagnostic, ...]


def parse(source: Source) -> ParseResult:
    """Parse a whole plan. On failure plan is None and diagnostics holds every syntax error."""
    from lark.exceptions import UnexpectedInput

    from tlc.grammar.errors import describe_error, describe_line_errors
    from tlc.grammar.limits import check_limits
    from tlc.grammar.transformer import ToAst

    beyond = check_limits(source)
    if beyond:  # past them the recursive stages would fail; nothing else is reported
        return ParseResult(None, tuple(beyond))
    text = source.text if source.text.endswith("\n") else source.text + "\n"
    try:
        tree = lark_parser().parse(text, start="file")
    except UnexpectedInput as first_error:
        diagnostics = describe_line_errors(source)
        if not diagnostics:  # every line parses alone, so the first error says it best
            diagnostics = [describe_error(first_error, source)]
        return ParseResult(None, tuple(diagnostics))
    plan = ToAst(source).transform(tree)
    whole = source.span(0, len(source.text))
    plan = ast.Plan(plan.decls, plan.body, comments=collect_comments(source), span=whole)
    return ParseResult(plan, ())


def collect_comments(source: Source) -> tuple[ast.Comment, ...]:
    """Every `#` comment; TL has no string literals, so a `#` always starts one."""
    comments = []
    for match in _COMMENT.finditer(source.text):
        line, column = source.position(match.start())
        own_line = not source.line_text(line)[:column - 1].strip()
        comments.append(ast.Comment(match.group().rstrip(), line, own_line))
    return tuple(comments)
