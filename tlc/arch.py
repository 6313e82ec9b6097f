"""Target architectures tlc knows by name.

The per-architecture hardware table (shared memory, registers, MMA shapes, features, with the
PTX ISA sections they come from) is the validation issue's work; until then this module only
names the targets so that plans and `--arch` can be checked for typos.
"""
from __future__ import annotations

ARCH_NAMES = ("sm_75", "sm_80", "sm_86", "sm_89", "sm_90")
ARCH_ALIASES = {"turing": "sm_75", "t4": "sm_75", "ampere": "sm_80", "a100": "sm_80",
                "hopper": "sm_90", "h100": "sm_90", "sm75": "sm_75", "sm80": "sm_80",
                "sm86": "sm_86", "sm89": "sm_89", "sm90": "sm_90"}


def suggest_arch(name: str) -> str | None:
    """The arch a mistyped name most likely meant."""
    from tlc.diagnostics import closest

    return ARCH_ALIASES.get(name.lower()) or closest(name, ARCH_NAMES)
