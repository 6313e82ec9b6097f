"""Code generation per target architecture.

`backend_for(arch)` gives the Backend that lowers plans for a target: sm_80 and the newer
targets share the Ampere lowering (their differences are limits the checker already holds);
Turing (sm_75) has its own data and copies through registers.
"""
from __future__ import annotations


def backend_for(arch: str):
    """The Backend for a target, or None where tlc cannot generate code for it yet."""
    from tlc.backends.sm75 import Sm75
    from tlc.backends.sm80 import Sm80

    if arch == "sm_75":
        return Sm75()
    return Sm80() if arch in ("sm_80", "sm_86", "sm_89", "sm_90") else None
