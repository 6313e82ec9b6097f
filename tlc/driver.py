"""The one path from text to a built kernel: read → check (passes, then the lowering itself) →
lower → build. The CLI, the API, tune, the runtime and the benchmarks all go through here.

`tlc check` for a target runs the lowering (about a millisecond): what the target cannot lower
is reported as a located backend-unsupported diagnostic, raised by the lowering rule itself,
and a bug in the lowering becomes an internal-error diagnostic at check time, not a failure at
compile time. So a plan that `check_source` accepts for a target has its CUDA in hand.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from tlc import ast
from tlc.diagnostics import Diagnostic, count, sort_key
from tlc.source import NO_SPAN, Source

# The resource figures of a plan that names no target (or a target not lowered yet) are those
# of the Ampere code.
DEFAULT_MODEL_ARCH = "sm_80"
# Diagnostics kept per file, as compilers cap theirs: past this the first mistake is buried
# (a file of 200 repeated plans gave 7,202). The rest are counted in CheckResult.omitted.
MAX_DIAGNOSTICS = 100


class MissingDependency(ImportError):
    """A package tlc needs is not installed: neither the plan's fault nor a bug in tlc."""

    def __init__(self, name: str):
        super().__init__(f"the {name!r} package is missing: pip install {name}", name=name)


@dataclass(frozen=True)
class CheckResult:
    """What `check` found: the source, its AST and IR (None where it did not parse), the
    diagnostics in source order (at most MAX_DIAGNOSTICS; `omitted` counts the rest), the
    figures of the analyses, the target it was checked against, and its lowering."""

    source: Source
    plan: ast.Plan | None
    kernel: object | None  # tlc.ir.Kernel when the plan parsed
    diagnostics: tuple[Diagnostic, ...]
    facts: dict = field(default_factory=dict, compare=False)  # figures the analyses found
    arch: str | None = None  # the target it was checked against
    lowered: object | None = field(default=None, compare=False)  # backends.Lowered, when done
    omitted: int = 0  # diagnostics past MAX_DIAGNOSTICS, left out

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)

    def to_json(self) -> dict:
        errors, warnings = count(self.diagnostics)
        return {"file": self.source.path, "ok": self.ok, "errors": errors,
                "warnings": warnings,
                "diagnostics": [d.to_json(self.source.path) for d in self.diagnostics],
                "omitted": self.omitted}


class CompileError(Exception):
    """The plan could not be compiled: diagnostics, no backend, or nvcc failing."""


def read_source(path: str) -> tuple[Source, tuple[Diagnostic, ...]]:
    """Read a plan file (`-` is standard input) as UTF-8; problems come back as diagnostics."""
    import sys

    try:
        if path == "-":
            data, shown = sys.stdin.buffer.read(), "<stdin>"
        else:
            with open(path, "rb") as handle:
                data, shown = handle.read(), path
    except OSError as error:
        reason = error.strerror or str(error)
        return Source("", path), (Diagnostic("io-error", f"cannot read {path}: {reason}",
                                             help="check the path and its permissions"),)
    return decode(data, shown)


def decode(data: bytes, path: str) -> tuple[Source, tuple[Diagnostic, ...]]:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return Source(data.decode("utf-8"), path), ()
    except UnicodeDecodeError as error:
        source = Source(data.decode("utf-8", errors="replace"), path)
        offset = len(data[:error.start].decode("utf-8", errors="replace"))
        span = source.span(offset, offset + 1)
        return source, (Diagnostic(
            "encoding", f"the file is not UTF-8 text: byte 0x{data[error.start]:02X} cannot be "
            "decoded", span, help="save the plan as UTF-8; TL itself is plain ASCII"),)


def check(text: str, arch: str | None = None, sketch: bool = False,
          path: str = "<string>", exact: bool = False) -> CheckResult:
    """Parse and check a plan as TL code (or, with sketch=True, as a sketch). With exact, the
    register budget is ptxas's (where nvcc is present) rather than the estimate's."""
    return check_source(Source(text, path), arch=arch, sketch=sketch, exact=exact)


def check_source(source: Source, arch: str | None = None, sketch: bool = False,
                 prior: tuple[Diagnostic, ...] = (), exact: bool = False) -> CheckResult:
    """Parse and check a plan: the passes, then, for a target with a lowering, the lowering.
    With exact (and nvcc present) the register budget is decided by building the kernel and
    reading ptxas's report (cached), not by the estimate."""
    if any(d.is_error for d in prior):
        return CheckResult(source, None, None, prior)
    try:
        result = _check(source, arch, sketch, prior, exact)
    except RecursionError:  # the limits of grammar/limits.py should make this unreachable
        return CheckResult(source, None, None, prior + (Diagnostic(
            "too-deep", "the plan nests deeper than tlc can follow",
            help="nest fewer loops and parentheses"),))
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] in ("lark", "numpy"):
            raise MissingDependency(error.name.partition(".")[0]) from None
        return _internal(source, prior, error)
    except Exception as error:  # a bug of ours must not reach the user as a traceback
        return _internal(source, prior, error)
    if len(result.diagnostics) <= MAX_DIAGNOSTICS:
        return result
    kept = result.diagnostics[:MAX_DIAGNOSTICS]
    return replace(result, diagnostics=kept, omitted=len(result.diagnostics) - len(kept))


def _internal(source: Source, prior, error: Exception) -> CheckResult:
    if os.environ.get("TLC_TRACEBACK"):
        raise error
    return CheckResult(source, None, None, prior + (internal_error(error),))


def _check(source: Source, arch, sketch, prior, exact=False) -> CheckResult:
    from tlc.backends import target_for
    from tlc.grammar.parser import parse as parse_source
    from tlc.passes import PassContext, run_passes

    parsed = parse_source(source)
    if parsed.plan is None:
        return CheckResult(source, None, None, prior + parsed.diagnostics, arch=arch)
    ctx = PassContext(sketch=sketch or parsed.plan.declares_sketch, arch=arch, source=source,
                      resource_model=resource_model)
    kernel = run_passes(parsed.plan, ctx)
    target_name = arch or getattr(kernel, "target", None)
    lowered = None
    estimated = [d for d in ctx.diagnostics if d.code == "register-budget"]
    if exact and estimated and len(estimated) == sum(d.is_error for d in ctx.diagnostics):
        from tlc.build import find_nvcc

        if find_nvcc():  # ptxas decides: the estimate's refusal is set aside
            ctx.diagnostics = [d for d in ctx.diagnostics if d not in estimated]
    if not ctx.has_errors and not ctx.sketch and target_name and kernel is not None:
        lowered = _lower_for_check(kernel, target_for(target_name), ctx)
        if exact and lowered is not None:
            _ptxas_budget(lowered, target_name, estimated, ctx)
    diagnostics = prior + tuple(sorted(ctx.diagnostics, key=sort_key))
    return CheckResult(source, parsed.plan, kernel, diagnostics, ctx.facts, target_name,
                       lowered if not ctx.has_errors else None)


def resource_model(arch: str | None):
    """The resource model the checker counts with for a target (the Ampere code's where the
    target has no lowering, or none is named)."""
    from tlc.backends import target_for
    from tlc.backends.resources import ResourceModel

    target = target_for(arch)
    if target is None or not target.lowers:
        target = target_for(DEFAULT_MODEL_ARCH)
    return ResourceModel(target)


def _lower_for_check(kernel, target, ctx):
    """Run the lowering; its refusals and failures become diagnostics at their statement."""
    from tlc.backends import lower
    from tlc.backends.target import LoweringBug, Unsupported
    from tlc.passes.features import replace_word

    if target is None:
        return None
    try:
        return lower(kernel, target)
    except Unsupported as refusal:
        span = getattr(refusal.statement, "span", None) or kernel.span
        fixes = replace_word(ctx.source, *refusal.replace, span) if refusal.replace else ()
        ctx.report(Diagnostic("backend-unsupported", refusal.message, span,
                              help=refusal.help or "see docs/backend.md for what the "
                              f"{target.arch} lowering covers", fixes=fixes))
    except LoweringBug as bug:
        if os.environ.get("TLC_TRACEBACK"):
            raise bug.error
        ctx.report(internal_error(bug.error, getattr(bug.statement, "span", None)))
    return None


def _ptxas_budget(lowered, arch: str, estimated, ctx) -> None:
    """--exact: build the kernel (cached) and refuse it only if ptxas spills."""
    from tlc.build import BuildError, build, find_nvcc

    if find_nvcc() is None:
        return  # no ptxas here: the estimate stood (its refusals were kept)
    try:
        report = build(lowered.source, arch).function(lowered.main.name)
    except BuildError as error:
        ctx.report(internal_error(error))
        return
    ctx.facts["ptxas"] = report
    if report.spill_stores or report.spill_loads:
        span = estimated[0].span if estimated else NO_SPAN
        ctx.report(Diagnostic(
            "register-budget", f"ptxas spills {report.spill_stores} bytes at "
            f"{report.registers} registers per thread", span,
            help=estimated[0].help if estimated else "use smaller tiles or stream an operand"))


def internal_error(error: Exception, span=None) -> Diagnostic:
    where = {"span": span} if span is not None else {}
    return Diagnostic("internal-error", f"internal error in tlc: {type(error).__name__}: "
                      f"{error}", help="this is a bug in tlc, not in the plan: please report it "
                                       "with the plan; TLC_TRACEBACK=1 shows the traceback",
                      **where)


def target_of(result: CheckResult):
    """The Target a checked plan lowers for; CompileError when there is none."""
    from tlc.backends import target_for

    target = target_for(result.arch)
    if target is None or not target.lowers:
        raise CompileError(f"no backend generates code for {result.arch} yet" if result.arch
                           else "the plan names no target: give `kernel NAME for sm_80` or "
                                "--arch")
    return target


def lowered_of(result: CheckResult):
    """The Lowered of a plan that passed check for a target (lowered there already)."""
    if not result.ok:
        raise CompileError("the plan does not pass tlc check")
    if getattr(result.kernel, "sketch", False):
        raise CompileError("this is a sketch: fill in its parameters (`tlc generate`, or write "
                           "the TL code) before compiling it")
    target_of(result)
    if result.lowered is None:  # checked with the lowering skipped: a tlc bug
        raise CompileError("the plan was checked but not lowered (a bug in tlc)")
    return result.lowered


def build_for(lowered, arch: str, output: str = "cubin", cache_dir=None):
    """nvcc for the source of a Lowered: a BuildResult (tlc/build.py)."""
    from tlc.build import build

    return build(lowered.source, arch, output=output, cache_dir=cache_dir)
