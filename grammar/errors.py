"""Syntax errors in the words a person uses, and the common slips named with their fix.

Lark reports the unexpected token and the set of terminals it would have taken; this module
turns that into `expected `from`, `(` or `in`` and recognises the mistakes people and LLMs make
most: a lowercase or misspelled keyword, a Compute without `and get`, levels in the wrong
order, a Python-style loop, C-style comments and braces, a loop left without `end`.
"""
from __future__ import annotations

import re
import unicodedata

from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from tlc.diagnostics import Diagnostic, closest, sort_key
from tlc.fixes import Edit
from tlc.grammar.loader import lark_parser
from tlc.language import FORMS
from tlc.source import Source

_COMMENT = re.compile(r"#[^\n]*")
_WORD = re.compile(r"[A-Za-z_]+")

# Regex terminals, in words; keywords and punctuation are shown as written.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "INT": "an integer",
    "DECIMAL": "a number",
    "_NL": "the end of the line",
    "$END": "the end of the file",
    "TRANSPOSE": "`^T`",
}
_STATEMENT_WORDS = ("Allocate", "Copy", "Compute", "Reshape", "for", "end")
_DECL_WORDS = ("kernel", "input", "output", "param", "grid")


def _terminal_patterns() -> dict[str, str]:

    return {t.name: t.pattern.value for t in lark_parser().terminals
            if t.pattern.type == "str"}


_EXPRESSION_START = {"NAME", "INT", "DECIMAL", "LPAR", "MINUS"}


def _expected_words(expected: set[str]) -> tuple[list[str], list[str]]:
    """(all expected things in words, the keywords among them)."""
    patterns = _terminal_patterns()
    words, keywords = [], []
    if _EXPRESSION_START <= expected:  # "an expression" says it better than five tokens
        words.append("an expression")
        expected = expected - _EXPRESSION_START
    if {"INT", "DECIMAL"} <= expected:
        expected = expected - {"INT"}
    for name in sorted(expected, key=lambda n: (n not in patterns, n)):
        if name in _TERMINAL_WORDS:
            words.append(_TERMINAL_WORDS[name])
        elif name in patterns:
            words.append(f"`{patterns[name]}`")
            if _WORD.fullmatch(patterns[name]):
                keywords.append(patterns[name])
        else:
            words.append(name.lower())
    return words, keywords


def _join(words: list[str]) -> str:
    words = list(dict.fromkeys(words))
    if len(words) > 6:
        words = words[:6] + ["…"]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def describe_error(error: UnexpectedInput, source: Source, offset: int = 0) -> Diagnostic:
    """One diagnostic for a Lark error raised while parsing text that starts at `offset`."""
    if isinstance(error, UnexpectedCharacters):
        return _bad_character(source, offset + error.pos_in_stream)
    if isinstance(error, UnexpectedToken):
        return _unexpected_token(error, source, offset)
    position = offset + (getattr(error, "pos_in_stream", 0) or 0)
    return Diagnostic("syntax-error", "the plan ends before it is complete",
                      source.span(position, position))


def _bad_character(source: Source, position: int) -> Diagnostic:
    char = source.text[position] if position < len(source.text) else ""
    span = source.span(position, position + 1)
    following = source.text[position:position + 2]
    if following == "//":
        return Diagnostic("bad-character", "`//` does not start a comment in TL", span,
                          help="start comments with `#`")
    if char in "{};":
        return Diagnostic("bad-character", f"TL has no `{char}`", span,
                          help="write one statement per line and close a `for` loop with `end`")
    if char.isprintable() and char.isascii():
        return Diagnostic("bad-character", f"unexpected character `{char}`", span,
                          help="remove it; TL uses names, numbers, ( ) [ ] , = : + - * / % ^T "
                               "and # comments")
    if char == "\r":
        return Diagnostic("bad-character", "a carriage return in the middle of a line", span,
                          help="save the file with \\n (or \\r\\n) line ends")
    name = unicodedata.name(char, "control character") if char else "character"
    shown = f"`{char}` " if char.isprintable() else ""
    return Diagnostic("bad-character",
                      f"unexpected character {shown}(U+{ord(char or chr(0)):04X} {name})", span,
                      help="TL is written in ASCII: names use letters, digits and `_`")


def _token_span(error: UnexpectedToken, source: Source, offset: int):
    token = error.token
    if token.type in ("$END", "_NL") or token.start_pos is None:
        # The line ended early: point just after its last code character, before any comment.
        start = offset + (token.start_pos or 0) if token.start_pos is not None else offset
        line = source.position(min(start, len(source.text)))[0]
        if token.type == "$END" and not source.line_text(line).strip() and line > 1:
            line -= 1  # the end of the file: the last line with code is the one above
        end = _code_span(source, line).end
        return source.span(end, end), ""
    return source.span(offset + token.start_pos, offset + token.end_pos), str(token)


def _unexpected_token(error: UnexpectedToken, source: Source, offset: int) -> Diagnostic:
    span, text = _token_span(error, source, offset)
    for start in (span.start, span.start - 1):  # `//` lexes as division, but means a comment
        if text == "/" and start >= 0 and source.text.startswith("//", start):
            return _bad_character(source, start)
    expected = set(error.accepts or error.expected or ())  # accepts: after the pending reductions
    words, keywords = _expected_words(expected)
    want = _join(words) if words else "something else"
    line_text = source.line_text(span.line).lstrip()
    slip = _unclosed_bracket(source, span, text, expected) or _known_slip(text, expected, keywords,
                                                                     line_text, span)
    if slip is not None:
        return slip
    if not text:
        return Diagnostic("syntax-error",
                          f"the line ends before the statement is complete: expected {want}",
                          span, help=_completion_hint(line_text))
    return Diagnostic("syntax-error", f"unexpected `{text}`: expected {want}", span,
                      help=_completion_hint(line_text))


_CLOSERS = {"(": (")", "RPAR"), "[": ("]", "RSQB")}


def _unclosed_bracket(source: Source, span, text: str, expected: set[str]):
    """A diagnostic for a `(` or `[` still open where its closer was expected, or None."""
    line_start = span.start - (span.column - 1)
    before = source.text[line_start:span.start]
    stack = []
    for column, char in enumerate(before, start=1):
        if char in _CLOSERS:
            stack.append((char, column))
        elif stack and char == _CLOSERS[stack[-1][0]][0]:
            stack.pop()
    if not stack:
        return None
    opener, column = stack[-1]
    closer, terminal = _CLOSERS[opener]
    if terminal not in expected:
        return None
    here = f"before `{text}`" if text else "at the end of the line"
    return Diagnostic("syntax-error", f"the `{opener}` at column {column} is never closed", span,
                      help=f"add `{closer}` {here}")


def _known_slip(text, expected, keywords, line_text, span):
    """A diagnostic for a mistake common enough to deserve its own words, or None."""
    if text in ("get", "accumulate") and "AND" in expected:
        return Diagnostic("missing-result", f"`{text}` must follow `and`", span,
                          help=f"write `and {text} <name>`")
    if "AND" in expected and line_text.startswith("Compute") and text and _WORD.match(text):
        return Diagnostic("missing-result", f"expected `and get {text}` or `and accumulate "
                          f"{text}`, found the name `{text}` alone", span,
                          help=f"name the result with `and get {text}` (or `and accumulate "
                               f"{text}` to add to it)")
    if {"GET", "ACCUMULATE"} & expected and text:
        return Diagnostic("missing-result", f"after `and`, expected `get` or `accumulate`, "
                          f"found `{text}`", span,
                          help="write `and get X` for a new result or `and accumulate X`")
    if text == "to" and "FROM" in expected:
        return Diagnostic("syntax-error", "a Copy names the source level first", span,
                          help="write `from <source level> to <destination level>`, e.g. "
                               "`from global to shared`")
    if text == "in" and "EQUAL" in expected and line_text.startswith("for"):
        return Diagnostic("syntax-error", "a loop is written `for i = start: stop`", span,
                          help="e.g. `for n = 0: cdiv(Nk, BN)` in place of `for n in range(...)`")
    if text and _WORD.fullmatch(text):
        candidates = list(keywords)
        if {"ALLOCATE", "COPY", "COMPUTE", "FOR"} & expected:
            candidates += list(_STATEMENT_WORDS) + list(_DECL_WORDS)
        guess = closest(text, candidates)
        if guess and guess != text:
            case_only = guess.lower() == text.lower()
            message = (f"keywords are case-sensitive: `{text}` is written `{guess}`" if case_only
                       else f"`{text}` is not a keyword here; did you mean `{guess}`?")
            return Diagnostic("keyword-typo", message, span, help=f"write `{guess}`",
                              fixes=(Edit(span, guess),))
    return None


def _completion_hint(line_text: str) -> str | None:
    first = line_text.split(maxsplit=1)[0] if line_text.split() else ""
    form = FORMS.get(first)
    if form:
        return f"the form is `{form}`"
    return "statements start with Allocate, Copy, Compute, Reshape, for or end; the header " \
           "uses kernel, input, output, param and grid"


# ---- every error of a file, line by line ----

def describe_line_errors(source: Source) -> list[Diagnostic]:
    """Parse each line alone; report each bad line, then the block structure of the good ones."""

    parser = lark_parser()
    diagnostics: list[Diagnostic] = []
    kinds: list[tuple[str, int]] = []
    offset = 0
    for number, raw in enumerate(source.text.split("\n"), start=1):
        line_offset, offset = offset, offset + len(raw) + 1
        if not _COMMENT.sub("", raw).strip():
            continue
        try:
            tree = parser.parse(raw + "\n", start="line")
        except UnexpectedInput as error:
            diagnostics.append(describe_error(error, source, line_offset))
            continue
        kinds.append((_kind(tree.data), number))
    return sorted(diagnostics + _structure_errors(kinds, source), key=sort_key)


def _kind(rule: str) -> str:
    if rule == "for_head":
        return "for"
    if rule == "end_line":
        return "end"
    return "decl" if rule.endswith("_decl") else "stmt"


def _code_span(source: Source, line: int):
    """The span of a line's code, without indentation or a trailing comment."""
    whole = source.line_span(line)
    code = _COMMENT.sub("", source.line_text(line)).rstrip()
    end = whole.start + len(code.strip())
    return source.span(whole.start, max(whole.start, end))


def _structure_errors(kinds: list[tuple[str, int]], source: Source) -> list[Diagnostic]:
    diagnostics = []
    open_loops: list[int] = []
    first_stmt = None
    for kind, line in kinds:
        span = _code_span(source, line)
        if kind == "decl" and first_stmt is not None:
            diagnostics.append(Diagnostic(
                "decl-after-stmt", "header declarations must come before the first statement",
                span, help=f"move this line above line {first_stmt}"))
            continue
        if kind in ("stmt", "for") and first_stmt is None:
            first_stmt = line
        if kind == "for":
            open_loops.append(line)
        elif kind == "end":
            if open_loops:
                open_loops.pop()
            else:
                diagnostics.append(Diagnostic("unmatched-end", "`end` closes no `for` loop", span,
                                              help="remove this `end`, or add the `for` line "
                                                   "that opens the loop"))
    for line in open_loops:
        loop_var = source.line_text(line).split()[1:2]
        name = f"`for {loop_var[0]}`" if loop_var else "this `for`"
        diagnostics.append(Diagnostic("missing-end", f"{name} is never closed",
                                      _code_span(source, line),
                                      help="add a line `end` after the last statement of the "
                                           "loop body"))
    return diagnostics
