"""The Python API: parse, check and format plans. Everything here returns data that is
JSON-serialisable through `to_json`, for agents and the LLM loop as much as for the CLI."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from tlc import ast
from tlc.diagnostics import JSON_SCHEMA, Diagnostic, count, sort_key
from tlc.source import Source


@dataclass(frozen=True)
class CheckResult:
    source: Source
    plan: ast.Plan | None
    kernel: object | None  # tlc.ir.Kernel when the plan parsed
    diagnostics: tuple[Diagnostic, ...]
    facts: dict = field(default_factory=dict, compare=False)  # figures the analyses found
    arch: str | None = None  # the target it was checked against

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)

    def to_json(self) -> dict:
        errors, warnings = count(self.diagnostics)
        return {"file": self.source.path, "ok": self.ok, "errors": errors,
                "warnings": warnings,
                "diagnostics": [d.to_json(self.source.path) for d in self.diagnostics]}


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


def parse(text: str, path: str = "<string>"):
    """Parse TL text: a tlc.grammar.parser.ParseResult (plan, diagnostics)."""
    from tlc.grammar.parser import parse as parse_source

    return parse_source(Source(text, path))


def check(text: str, arch: str | None = None, sketch: bool = False,
          path: str = "<string>") -> CheckResult:
    """Parse and check a plan as TL code (or, with sketch=True, as a sketch)."""
    return check_source(Source(text, path), arch=arch, sketch=sketch)


def check_source(source: Source, arch: str | None = None, sketch: bool = False,
                 prior: tuple[Diagnostic, ...] = ()) -> CheckResult:
    if any(d.is_error for d in prior):
        return CheckResult(source, None, None, prior)
    try:
        return _check(source, arch, sketch, prior)
    except Exception as error:  # a bug of ours must not reach the user as a traceback
        if os.environ.get("TLC_TRACEBACK"):
            raise
        return CheckResult(source, None, None, prior + (internal_error(error),))


def _check(source: Source, arch, sketch, prior) -> CheckResult:
    from tlc.grammar.parser import parse as parse_source
    from tlc.passes import PassContext, run_passes

    parsed = parse_source(source)
    if parsed.plan is None:
        return CheckResult(source, None, None, prior + parsed.diagnostics)
    ctx = PassContext(sketch=sketch or parsed.plan.declares_sketch, arch=arch, source=source)
    kernel = run_passes(parsed.plan, ctx)
    diagnostics = prior + tuple(sorted(ctx.diagnostics, key=sort_key))
    target = arch or getattr(kernel, "target", None)
    return CheckResult(source, parsed.plan, kernel, diagnostics, ctx.facts, target)


def internal_error(error: Exception) -> Diagnostic:
    return Diagnostic("internal-error", f"internal error in tlc: {type(error).__name__}: "
                      f"{error}", help="this is a bug in tlc, not in the plan: please report it "
                                       "with the plan; TLC_TRACEBACK=1 shows the traceback")


def format_plan(text: str, path: str = "<string>") -> tuple[str | None, tuple[Diagnostic, ...]]:
    """(canonical text, ()) for a plan that parses, else (None, syntax diagnostics)."""
    from tlc.grammar.parser import parse as parse_source
    from tlc.printer import format_plan as print_plan

    parsed = parse_source(Source(text, path))
    if parsed.plan is None:
        return None, parsed.diagnostics
    return print_plan(parsed.plan, text), ()


def fix_plan(text: str, arch: str | None = None, path: str = "<string>",
             rounds: int = 5) -> tuple[str | None, CheckResult]:
    """Apply the edits the diagnostics carry, re-checking after each round, then format.

    Returns (the new text, or None if the plan does not parse; the check of the result).
    """
    from tlc.fixes import apply_edits

    result = check(text, arch=arch, path=path)
    for _ in range(rounds):
        edits = [edit for d in result.diagnostics if d.is_error for edit in d.fixes]
        if not edits:
            break
        text = apply_edits(text, edits)
        result = check(text, arch=arch, path=path)
    if result.plan is None:
        return None, result
    formatted, _ = format_plan(text, path)
    return formatted, check(formatted, arch=arch, path=path)


def results_to_json(results: list[CheckResult]) -> dict:
    """The document `tlc check --json` prints (docs/diagnostics.md)."""
    from tlc import __version__

    errors = sum(count(r.diagnostics)[0] for r in results)
    warnings = sum(count(r.diagnostics)[1] for r in results)
    return {"schema": JSON_SCHEMA, "tool": f"tlc {__version__}",
            "files": [r.to_json() for r in results],
            "summary": {"files": len(results), "errors": errors, "warnings": warnings}}


def compile(text: str, arch: str | None = None, out_dir: str | None = None,
            emit: str = "cubin", path: str = "plan.tl") -> dict:
    """Check, lower and build a plan (`tlc compile`); a JSON-ready summary: ok, diagnostics,
    the files written, the manifest, and what was skipped (no nvcc)."""
    import tempfile

    from tlc.compiler import CompileError, compile_plan

    folder = out_dir or tempfile.mkdtemp(prefix="tlc-compile-")
    try:
        compiled = compile_plan(Source(text, path), arch, folder, emit)
    except CompileError as error:
        return {"ok": False, "error": str(error), "diagnostics": []}
    return {"ok": compiled.check.ok, "arch": compiled.check.arch,
            "diagnostics": [d.to_json(path) for d in compiled.check.diagnostics],
            "files": [str(f) for f in compiled.files], "manifest": compiled.manifest,
            "skipped": compiled.skipped}


def evaluate(text: str, shape: dict, arch: str | None = None, iters: int = 20) -> dict:
    """Build a plan for the GPU present, run it on random inputs of `shape` (e.g. {"B": 2,
    "H": 16, "N": 4096}; N sets Nq and Nk), compare with the float64 reference and time it.
    A JSON-ready summary: ok (built and ran), correct, the verdict, ms, tflops, device."""
    from tlc.runtime import (ArgumentError, GpuUnavailable, device_name, load, problem_sizes,
                             run_random)

    shape = problem_sizes(shape)
    result = check(text, arch=arch)
    if not result.ok:
        return {"ok": False, "correct": False, "error": "the plan does not pass tlc check",
                "diagnostics": [d.to_json("plan.tl") for d in result.diagnostics]}
    try:
        kernel = load(text, arch=arch)
        verdict, milliseconds, tflops = run_random(kernel, shape, iters)
    except (GpuUnavailable, ArgumentError, KeyError) as error:
        return {"ok": False, "correct": False, "error": f"{type(error).__name__}: {error}"}
    return {"ok": True, "correct": verdict.ok, "verdict": verdict.to_json(),
            "ms": milliseconds, "tflops": tflops, "device": device_name(), "how": kernel.how,
            "shape": shape}
