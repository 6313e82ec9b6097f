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


# The public API, imported lazily so that `import tlc` stays cheap: name -> its module.
_API = {"parse": "tlc.api", "check": "tlc.api", "format_plan": "tlc.api",
        "fix_plan": "tlc.api", "CheckResult": "tlc.api", "compile": "tlc.api",
        "evaluate": "tlc.api", "simulate": "tlc.api", "load": "tlc.runtime"}
__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'tlc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
