"""Passes and the named pipelines that run them.

A pass is a plain function `(module, ctx) -> module`; `resolve` turns the syntax tree into IR
and every later pass takes and returns an ir.Kernel. A pass reports problems through
`ctx.report` and never raises for a fault of the plan. Pipelines are tuples, so `--dump-after`
and tests can name a stage.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tlc.diagnostics import Diagnostic
from tlc.passes.complete import complete
from tlc.passes.resolve import resolve


@dataclass
class PassContext:
    sketch: bool = False
    arch: str | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def report(self, diagnostic: Diagnostic) -> None:
        self.diagnostics.append(diagnostic)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)


PIPELINES = {
    # A sketch states what happens; TL code must also state every parameter.
    "sketch": (resolve,),
    "code": (resolve, complete),
}


def run_passes(plan, ctx: PassContext, pipeline: str | None = None):
    """Run a named pipeline over a parsed plan; returns the last module produced."""
    module = plan
    for stage in PIPELINES[pipeline or ("sketch" if ctx.sketch else "code")]:
        module = stage(module, ctx)
    return module
