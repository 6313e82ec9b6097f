"""Passes and the named pipelines that run them.

A pass is a plain function `(module, ctx) -> module`; `resolve` turns the syntax tree into IR
and every later pass takes and returns an ir.Kernel. A pass reports problems through
`ctx.report` and never raises for a fault of the plan. Pipelines are tuples, so `--dump-after`
and tests can name a stage.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tlc.diagnostics import Diagnostic
from tlc.source import Source
from tlc.passes.backward_recipe import backward_recipe
from tlc.passes.check_levels import check_levels
from tlc.passes.complete import complete
from tlc.passes.features import features
from tlc.passes.gemm_orientation import gemm_orientation
from tlc.passes.infer_shapes import infer_shapes
from tlc.passes.link_gemms import link_gemms
from tlc.passes.mask_coverage import mask_coverage
from tlc.passes.online_softmax import online_softmax
from tlc.passes.resolve import resolve
from tlc.passes.resources import resources
from tlc.passes.semantics import semantics
from tlc.passes.paging import paging
from tlc.passes.splits import splits
from tlc.passes.tiling import tiling


@dataclass
class PassContext:
    sketch: bool = False
    arch: str | None = None  # the target to check against; None: the plan's own `for ARCH`
    source: Source | None = None  # for fixes that edit the text
    # arch name -> the resource model of that target's code (backends/resources.py), handed in
    # by the driver so that no pass imports a backend.
    resource_model: object | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    facts: dict = field(default_factory=dict)  # what analyses found, for reports

    def report(self, diagnostic: Diagnostic) -> None:
        self.diagnostics.append(diagnostic)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)


# The analyses read shapes, levels and parameters that resolve and complete vouch for, so they
# run only on a plan those two passed; all of them run, so every problem is reported at once,
# except the resource budgets: figures of a plan that is wrong anyway (a missing Reshape keeps
# fp32 scores alive) would only send the reader after the wrong change.
ANALYSES = (infer_shapes, check_levels, gemm_orientation, link_gemms, online_softmax,
            splits, paging, mask_coverage, tiling, semantics, backward_recipe, resources, features)

PIPELINES = {
    # A sketch states what happens; TL code must also state every parameter.
    "sketch": (resolve,),
    "code": (resolve, complete) + ANALYSES,
}


def run_passes(plan, ctx: PassContext, pipeline: str | None = None):
    """Run a named pipeline over a parsed plan; returns the last module produced."""
    module = plan
    for stage in PIPELINES[pipeline or ("sketch" if ctx.sketch else "code")]:
        if stage is ANALYSES[0] and ctx.has_errors:
            break
        if stage is resources and ctx.has_errors:
            continue
        module = stage(module, ctx)
    return module
