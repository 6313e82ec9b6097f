"""The Python API: parse, check and format plans. Everything here returns data that is
JSON-serialisable through `to_json`, for agents and the LLM loop as much as for the CLI."""
from __future__ import annotations

from tlc.diagnostics import JSON_SCHEMA, Diagnostic, count
from tlc.driver import CheckResult, check, check_source, decode, internal_error, read_source
from tlc.source import Source

__all__ = ["CheckResult", "check", "check_source", "compile", "decode", "evaluate",
           "fix_plan", "format_plan", "internal_error", "parse", "read_source",
           "results_to_json", "simulate"]


def parse(text: str, path: str = "<string>"):
    """Parse TL text: a tlc.grammar.parser.ParseResult (plan, diagnostics)."""
    from tlc.grammar.parser import parse as parse_source

    return parse_source(Source(text, path))


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

    from tlc.compiler import compile_plan
    from tlc.driver import CompileError

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


def simulate(text: str, shape: dict | str | None = None, arch: str | None = None,
             seed: int = 0, path: str = "plan.tl") -> dict:
    """Run a plan's statements on the CPU with NumPy (`tlc sim`) on random inputs of `shape`
    (sizes not given default small, consistent with the plan's params) and judge the result
    against the float64 reference. A JSON-ready summary: ok (it ran), correct, the verdict,
    the sizes, or the diagnostics / the located out-of-bounds access."""
    from tlc.runtime import problem_sizes
    from tlc.simulate import SimulationError, simulate as run

    result = check(text, arch=arch, path=path)
    if not result.ok or result.kernel is None or result.kernel.sketch:
        return {"ok": False, "correct": False, "error": "the plan does not pass tlc check"
                if not result.ok else "a sketch cannot run",
                "diagnostics": [d.to_json(path) for d in result.diagnostics]}
    try:
        verdict, sizes = run(result.kernel, problem_sizes(shape or {}), seed=seed)
    except SimulationError as error:
        return {"ok": False, "correct": False, "error": str(error),
                "line": error.statement.span.line}
    return {"ok": True, "correct": verdict.ok, "verdict": verdict.to_json(), "shape": sizes}
