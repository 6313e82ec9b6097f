"""The Lark parser of grammar/tl.lark, built once per process and its tables cached on disk.
Both the parser and the friendly syntax errors (errors.py) use it."""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

GRAMMAR_FILE = "tl.lark"
def grammar_text() -> str:
    return resources.files("tlc.grammar").joinpath(GRAMMAR_FILE).read_text(encoding="utf-8")


def _cache_path(grammar: str) -> str | None:
    """A per-user file for Lark's pickled parser tables: building them costs more than the
    rest of a `tlc check`. None where no cache directory can be made."""
    import lark

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    digest = hashlib.sha256(f"{lark.__version__}\0{grammar}".encode()).hexdigest()[:16]
    folder = Path(base) / "tlc"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return str(folder / f"parser-{digest}.lark")


LARK_OPTIONS = dict(parser="lalr", start=["file", "line"], propagate_positions=True,
                    maybe_placeholders=False)


def build_parser():
    """A freshly built Lark parser, with its grammar object (a cached one has none)."""
    from lark import Lark

    return Lark(grammar_text(), **LARK_OPTIONS)


@lru_cache(maxsize=1)
def lark_parser():
    """The LALR parser for both start symbols, built once per process and cached on disk."""
    from lark import Lark

    grammar = grammar_text()
    cache = _cache_path(grammar)
    if cache:
        try:
            return Lark(grammar, cache=cache, **LARK_OPTIONS)
        except OSError:
            pass
    return build_parser()
