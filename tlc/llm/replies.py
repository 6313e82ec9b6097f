"""What a model's reply holds: one TL plan, or the reason it holds none.

A reply is text and stays text: tlc looks for a fenced block, parses what it finds as TL, and
never runs anything. Code in another language, a reply with no plan, and a reply far larger
than any plan are turned away with a reason the model is shown.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from tlc.language import FORMS

MAX_REPLY_CHARS = 64_000  # a plan is a few dozen lines; anything this large is not one
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
_OTHER_LANGUAGES = {"cuda", "cu", "c", "cpp", "c++", "python", "py", "ptx", "bash", "sh"}
_FOREIGN = [(re.compile(r"__global__|#include\s*<|\bthreadIdx\b|\bblockIdx\b"), "CUDA"),
            (re.compile(r"^\s*(def |import |from \w+ import |print\()", re.M), "Python"),
            (re.compile(r"\bmma\.sync\b|\bld\.global\b|^\s*\.reg\b", re.M), "PTX")]


@dataclass(frozen=True)
class Extracted:
    plan: str | None
    reason: str | None = None  # why there is no plan


def extract_plan(reply: str) -> Extracted:
    """The TL plan in a reply: the block tagged `tl`, else the only untagged block, else the
    whole reply if it reads as TL."""
    if len(reply) > MAX_REPLY_CHARS:
        return Extracted(None, f"the reply is {len(reply)} characters long; a plan is a few "
                               "dozen lines")
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(reply)]
    tagged = [body for tag, body in blocks if tag in ("tl", "llm-tl", "tlc")]
    if tagged:
        return _screen(tagged[-1])
    foreign = sorted({tag for tag, _ in blocks if tag in _OTHER_LANGUAGES})
    if foreign:
        return Extracted(None, f"it holds {', '.join(foreign)} code, and tlc takes only TL "
                               "plans")
    untagged = [body for tag, body in blocks if not tag]
    if len(untagged) == 1:
        return _screen(untagged[0])
    first = next((line.split()[0] for line in reply.splitlines()
                  if line.strip() and not line.lstrip().startswith("#")), "")
    if not blocks and first in FORMS:  # a bare plan, without the fence
        return _screen(reply)
    return Extracted(None, "it holds no ```tl block")


def _screen(text: str) -> Extracted:
    for pattern, language in _FOREIGN:
        if pattern.search(text):
            return Extracted(None, f"it holds {language}, and tlc takes only TL plans")
    if not text.strip():
        return Extracted(None, "its ```tl block is empty")
    return Extracted(text.strip() + "\n")
