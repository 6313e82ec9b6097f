"""Code generation per target: `target_for(arch)` gives the Target (backends/targets: data
that picks instruction sets), `lower(kernel, target)` the CUDA (backends/lower.py)."""
from __future__ import annotations

from tlc.backends.lower import lower
from tlc.backends.target import Lowered, Target, Unsupported
from tlc.backends.targets.sm75 import SM75
from tlc.backends.targets.sm80 import SM80
from tlc.backends.targets.sm86 import SM86
from tlc.backends.targets.sm89 import SM89
from tlc.backends.targets.sm90 import SM90
from tlc.backends.targets.sm90a import SM90A

TARGETS: dict[str, Target] = {t.arch: t for t in (SM75, SM80, SM86, SM89, SM90, SM90A)}


def target_for(arch: str | None) -> Target | None:
    """The Target of an arch name, or None for a name tlc has no target for."""
    return TARGETS.get(arch or "")


__all__ = ["TARGETS", "Lowered", "Target", "Unsupported", "lower", "target_for"]
