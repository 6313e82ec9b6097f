"""Diagnostics: the only place that renders them, as text or as JSON (docs/diagnostics.md).

A diagnostic has a stable code, a severity, a span, a message that states the problem with the
figures involved, and a `help` that states the change to make. Every code is registered here
with a one-line summary; the docs and the fixture tests are checked against this table.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterable

from tlc.source import NO_SPAN, Source, Span

JSON_SCHEMA = "tlc-diagnostics/1"


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


# code -> (severity, summary). Adding a code means adding it to docs/diagnostics.md and a
# fixture under tests/fixtures/diagnostics/ that triggers it; tests enforce both.
CODES: dict[str, tuple[Severity, str]] = {
    # reading and parsing
    "io-error": (Severity.ERROR, "the file could not be read"),
    "encoding": (Severity.ERROR, "the file is not UTF-8 text"),
    "bad-character": (Severity.ERROR, "a character that no token of the language starts with"),
    "syntax-error": (Severity.ERROR, "the tokens do not form a statement"),
    "keyword-typo": (Severity.ERROR, "a misspelled or miscased keyword"),
    "missing-result": (Severity.ERROR, "a Compute that must name its result does not"),
    "missing-end": (Severity.ERROR, "a `for` loop is never closed with `end`"),
    "unmatched-end": (Severity.ERROR, "an `end` with no open `for` loop"),
    "decl-after-stmt": (Severity.ERROR, "a header declaration after the first statement"),
    "too-deep": (Severity.ERROR, "loops or an expression nested deeper than tlc allows"),
    # resolution
    "missing-header": (Severity.ERROR, "TL code lacks a required header declaration"),
    "duplicate-name": (Severity.ERROR, "a name declared twice in the same role"),
    "undefined-name": (Severity.ERROR, "a name used but never declared"),
    "unknown-level": (Severity.ERROR, "a memory level that is not global, shared or register"),
    "unknown-dtype": (Severity.ERROR, "a data type the language does not have"),
    "unknown-op": (Severity.ERROR, "a Compute operation the language does not have"),
    "unknown-clause": (Severity.ERROR, "a `with` clause the statement does not take"),
    "unknown-function": (Severity.ERROR, "a function in an expression that does not exist"),
    "unknown-arch": (Severity.ERROR, "a target architecture tlc does not know"),
    "unknown-dim": (Severity.ERROR, "a coordinate names a dimension the tensor does not have"),
    "bad-clause": (Severity.ERROR, "a clause with a missing or ill-typed value"),
    "bad-operands": (Severity.ERROR, "a Compute with the wrong number or kind of operands"),
    "bad-param": (Severity.ERROR, "a param that is not a non-negative integer constant"),
    "not-integer": (Severity.ERROR, "a loop bound or coordinate that is not an integer"),
    "bad-grid": (Severity.ERROR, "a grid whose extents and indices do not pair up"),
    "global-allocate": (Severity.ERROR, "TL code allocates a global tensor in the body"),
    "missing-allocation": (Severity.ERROR, "a buffer is used at a level it was not allocated in"),
    "missing-parameter": (Severity.ERROR, "TL code leaves a statement's parameter open"),
    # shapes, levels and the pattern of attention
    "runtime-tile": (Severity.ERROR, "a shared or register tile without a compile-time shape"),
    "shape-mismatch": (Severity.ERROR, "shapes that meet in a statement do not agree"),
    "dtype-mismatch": (Severity.ERROR, "dtypes that meet in a statement do not agree"),
    "tile-extent": (Severity.ERROR, "a tile extent that does not divide its dimension"),
    "incomplete-coordinate": (Severity.ERROR, "a Copy does not say which tile of a dimension"),
    "layout-mismatch": (Severity.ERROR, "a fragment layout other than the statement needs"),
    "write-input": (Severity.ERROR, "a Copy into global memory writes an input"),
    "operand-level": (Severity.ERROR, "a Compute on data that is not in registers"),
    "gemm-orientation": (Severity.ERROR, "a GEMM operand needs (or must drop) `^T`"),
    "missing-reshape": (Severity.ERROR, "a GEMM takes another GEMM's accumulator unreshaped"),
    "online-softmax": (Severity.ERROR, "a Softmax in a loop that is not an online softmax"),
    "score-order": (Severity.ERROR, "a score modifier after the Softmax, or a Softcap after a Mask"),
    "score-modifiers": (Severity.ERROR, "the scores unscaled, or a modifier applied twice"),
    "bad-pages": (Severity.ERROR, "a paged tensor whose table, page size or tiles do not fit"),
    "bad-split": (Severity.ERROR, "a split key loop whose parts cannot be merged, or are empty"),
    "mask-coverage": (Severity.ERROR, "the key loop skips keys the masks leave visible"),
    "grid-coverage": (Severity.ERROR, "a grid that leaves the last, partial tile unlaunched"),
    "masked-blocks": (Severity.WARNING, "the key loop visits key blocks the masks hide entirely"),
    "unwritten-read": (Severity.ERROR, "a buffer read before any statement writes it"),
    "output-coverage": (Severity.ERROR, "an output element written never, twice, or outside it"),
    "output-race": (Severity.ERROR, "an output some stores add into and another overwrites"),
    "backward-recipe": (Severity.ERROR, "a backward plan that does not compute the gradients"),
    "out-of-bounds": (Severity.ERROR, "a Copy's coordinate can leave its tensor"),
    # tiling, resources and features of the target
    "tile-mma": (Severity.ERROR, "a GEMM tile that the MMA shape and warps do not divide"),
    "warp-layout": (Severity.ERROR, "GEMMs of one block with different warp layouts"),
    "vector-width": (Severity.ERROR, "a vectorised Copy of a width or alignment that cannot be"),
    "smem-budget": (Severity.ERROR, "more shared memory than the target allows per block"),
    "register-budget": (Severity.ERROR, "more registers per thread than the target allows"),
    "thread-budget": (Severity.ERROR, "more threads per block than the target allows"),
    "arch-feature": (Severity.ERROR, "an MMA shape, dtype or cp.async the target lacks"),
    "backend-unsupported": (Severity.ERROR, "what tlc cannot generate code for on the target yet"),
    "empty-plan": (Severity.WARNING, "the plan holds no statement (an error in TL code)"),
    # the tool itself
    "internal-error": (Severity.ERROR, "a bug in tlc; please report it with the plan"),
}


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span = NO_SPAN
    help: str | None = None
    notes: tuple[str, ...] = ()
    severity: Severity = field(default=None)  # type: ignore[assignment]
    fixes: tuple = ()  # tlc.fixes.Edit: the text edits that make the change `help` names

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unregistered diagnostic code {self.code!r}")
        if self.severity is None:
            object.__setattr__(self, "severity", CODES[self.code][0])

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def to_json(self, path: str) -> dict:
        return {
            "severity": self.severity.value,
            "code": self.code,
            "message": self.message,
            "help": self.help,
            "notes": list(self.notes),
            "file": path,
            "line": self.span.line,
            "column": self.span.column,
            "end_line": self.span.end_line,
            "end_column": self.span.end_column,
            "fixes": [edit.to_json() for edit in self.fixes],
        }


def render_text(diagnostic: Diagnostic, source: Source) -> str:
    """`plan.tl:12:5: error[code]: message`, the source line, a caret under the span, help."""
    span = diagnostic.span
    head = (f"{source.path}:{span.line}:{span.column}: "
            f"{diagnostic.severity.value}[{diagnostic.code}]: {diagnostic.message}")
    lines = [head]
    text = source.line_text(span.line)
    if text.strip():
        gutter = str(span.line)
        # One column per character, so the caret stays aligned; control characters (a stray
        # carriage return, NUL) would move the terminal's cursor, so they are shown as U+FFFD.
        shown = "".join(c if c.isprintable() else " " if c == "\t" else "\ufffd" for c in text)
        width = span.end_column - span.column if span.end_line == span.line else len(shown)
        width = max(1, min(width, len(shown) - span.column + 1))
        lines.append(f" {gutter} | {shown}")
        lines.append(f" {' ' * len(gutter)} | {' ' * (span.column - 1)}{'^' * width}")
    for note in diagnostic.notes:
        lines.append(f"  note: {note}")
    if diagnostic.help:
        lines.append(f"  help: {diagnostic.help}")
    return "\n".join(lines)


def count(diagnostics: Iterable[Diagnostic]) -> tuple[int, int]:
    """(errors, warnings)."""
    errors = warnings = 0
    for diagnostic in diagnostics:
        if diagnostic.severity is Severity.ERROR:
            errors += 1
        elif diagnostic.severity is Severity.WARNING:
            warnings += 1
    return errors, warnings


def sort_key(diagnostic: Diagnostic) -> tuple[int, int, str]:
    return diagnostic.span.line, diagnostic.span.column, diagnostic.code


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate a typo most likely meant: same letters ignoring case, else a close spelling."""
    import difflib

    candidates = list(candidates)
    for candidate in candidates:
        if candidate.lower() == word.lower():
            return candidate
    lowered = {candidate.lower(): candidate for candidate in candidates}
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A help suffix: ` (did you mean `x`?)`, or an empty string."""
    guess = closest(word, candidates)
    return f"did you mean `{guess}`?" if guess else ""
