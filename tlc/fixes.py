"""Machine-applicable fixes: a diagnostic may carry the text edits that make its change.

`tlc fmt --fix` applies them; the portability report shows them; tests apply them and check
that the plan then passes. An edit replaces the text of a span (an empty span inserts).
"""
from __future__ import annotations

from dataclasses import dataclass

from tlc.source import Span


@dataclass(frozen=True)
class Edit:
    span: Span
    text: str

    def to_json(self) -> dict:
        return {"line": self.span.line, "column": self.span.column,
                "end_line": self.span.end_line, "end_column": self.span.end_column,
                "text": self.text}


def apply_edits(text: str, edits) -> str:
    """The text with every edit made; an edit overlapping one already made is skipped."""
    done: list[Edit] = []
    for edit in sorted(set(edits), key=lambda e: (e.span.start, e.span.end)):
        if done and edit.span.start < done[-1].span.end:
            continue
        done.append(edit)
    for edit in reversed(done):
        text = text[:edit.span.start] + edit.text + text[edit.span.end:]
    return text
