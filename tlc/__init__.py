"""tlc: a compiler for LLM-TL, the thinking language for attention kernels."""
from __future__ import annotations

import os as _os

__version__ = "0.1.0"

# In a source checkout that is not installed, grammar/, passes/ and backends/ sit beside tlc/
# rather than inside it; appending the checkout root to the package path makes
# `tlc.grammar`, `tlc.passes` and `tlc.backends` import the same way an installed wheel does.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "grammar", "tl.lark")) and _root not in __path__:
    __path__.append(_root)


def __getattr__(name: str):
    # The public API lives in tlc.api; importing it lazily keeps `import tlc` cheap.
    if name in ("parse", "check", "format_plan", "CheckResult", "compile", "evaluate",
                "simulate"):
        from tlc import api

        return getattr(api, name)
    raise AttributeError(f"module 'tlc' has no attribute {name!r}")
