"""Limits a plan must stay within before it is parsed: how deep loops and expressions nest,
and how many digits a number has.

Real plans nest two or three loops and write numbers of a few digits; past these limits the
recursive stages (the tree transformer, the passes, the printer) would hit Python's recursion
limit or its cap on integer conversion, and the user would see "a bug in tlc". Checking the
text first, line by line, puts the diagnostic on the line that crosses the limit.
"""
from __future__ import annotations

import re

from tlc.diagnostics import Diagnostic
from tlc.source import Source

MAX_LOOP_DEPTH = 16     # `for` loops open at once
MAX_EXPRESSION_DEPTH = 32  # parentheses open at once in one line
MAX_OPERATORS = 64      # arithmetic operators in one line
MAX_DIGITS = 30         # any integer above 2**31 - 1 is refused later with its value

_COMMENT = re.compile(r"#[^\n]*")
_LONG_NUMBER = re.compile(r"(?<![\w.])\d{%d,}(?![\w.])" % (MAX_DIGITS + 1))
_OPERATOR = re.compile(r"[-+*/%]")


def check_limits(source: Source) -> list[Diagnostic]:
    """One diagnostic per line that crosses a limit (the loop limit once, at the first `for`
    past it); an empty list when the plan can be parsed safely."""
    diagnostics: list[Diagnostic] = []
    depth, offset, deep_reported = 0, 0, False
    for raw in source.text.split("\n"):
        start, offset = offset, offset + len(raw) + 1
        code = _COMMENT.sub("", raw)
        words = code.split()
        if words[:1] == ["for"]:
            depth += 1
            if depth > MAX_LOOP_DEPTH and not deep_reported:
                at = start + code.index("for")
                diagnostics.append(Diagnostic(
                    "too-deep", f"loops nested {depth} deep; tlc allows at most "
                    f"{MAX_LOOP_DEPTH}", source.span(at, at + 3),
                    help="an attention kernel needs one loop over key blocks, two with a "
                         "split head dim: remove the extra loops"))
                deep_reported = True
        elif words[:1] == ["end"]:
            depth = max(0, depth - 1)
        diagnostics += _line_limits(code, start, source)
    return diagnostics


def _line_limits(code: str, start: int, source: Source) -> list[Diagnostic]:
    found = []
    for match in _LONG_NUMBER.finditer(code):
        found.append(Diagnostic(
            "bad-param", f"a number of {len(match.group())} digits; integers in a plan are "
            f"at most 2147483647", source.span(start + match.start(), start + match.end()),
            help="params and sizes are non-negative 32-bit integers"))
    open_, deepest, deepest_at = 0, 0, 0
    for index, char in enumerate(code):
        if char in "([":
            open_ += 1
            if open_ > deepest:
                deepest, deepest_at = open_, index
        elif char in ")]":
            open_ = max(0, open_ - 1)
    if deepest > MAX_EXPRESSION_DEPTH:
        found.append(Diagnostic(
            "too-deep", f"parentheses nested {deepest} deep; tlc allows at most "
            f"{MAX_EXPRESSION_DEPTH}", source.span(start + deepest_at, start + deepest_at + 1),
            help="write the expression with fewer parentheses, or as a param"))
    operators = len(_OPERATOR.findall(_LONG_NUMBER.sub("0", code)))
    if operators > MAX_OPERATORS:
        stripped = code.strip()
        at = start + code.index(stripped) if stripped else start
        found.append(Diagnostic(
            "too-deep", f"an expression of {operators} operators; tlc allows at most "
            f"{MAX_OPERATORS} in a line", source.span(at, at + len(stripped)),
            help="split it into params, each computed from the ones above"))
    return found
