"""The Python API: parse, check and format plans. Everything here returns data that is
JSON-serialisable through `to_json`, for agents and the LLM loop as much as for the CLI."""
from __future__ import annotations

import dataclasses  # noqa: F401 (kept for callers that patch through tlc.api)

from tlc import ast
from tlc.diagnostics import JSON_SCHEMA, Diagnostic, count
from tlc.driver import (MAX_DIAGNOSTICS, CheckResult, MissingDependency, check_source, decode,
                        internal_error, read_source)
from tlc.source import Source

__all__ = ["MAX_DIAGNOSTICS", "CheckResult", "MissingDependency", "check", "check_source",
           "compile", "decode", "evaluate", "fix_plan", "format_plan", "internal_error",
           "known_arch", "parse", "read_source", "results_to_json", "simulate"]


def known_arch(arch: str | None) -> str | None:
    """`arch` if tlc knows the target (None means the plan's own); else a ValueError that
    names the closest known target, as the CLI's --arch does."""
    from tlc.arch import ARCH_NAMES, suggest_arch

    if arch is None or arch in ARCH_NAMES:
        return arch
    guess = suggest_arch(arch) if isinstance(arch, str) else None
    hint = f"; did you mean {guess!r}?" if guess else ""
    raise ValueError(f"unknown arch {arch!r}{hint} (known: {', '.join(ARCH_NAMES)}; "
                     "tlc.report.portability checks every target)")


def _text(text, path: str) -> Source:
    """A Source from str, or from bytes decoded as a plan file is; anything else is a
    TypeError."""
    if isinstance(text, (bytes, bytearray)):
        source, problems = decode(bytes(text), path)
        if problems:
            raise ValueError(problems[0].message)
        return source
    if not isinstance(text, str):
        raise TypeError(f"a plan is text (str or UTF-8 bytes), not {type(text).__name__}")
    return Source(text, path)


def parse(text: str, path: str = "<string>"):
    """Parse TL text: a tlc.grammar.parser.ParseResult (plan, diagnostics)."""
    from tlc.grammar.parser import parse as parse_source

    return parse_source(Source(text, path))


def check(text: str | bytes, arch: str | None = None, sketch: bool = False,
          path: str = "<string>", exact: bool = False) -> CheckResult:
    """Parse and check a plan as TL code (or, with sketch=True, as a sketch).

    text: the plan, as str or UTF-8 bytes. arch: a target of tlc.arch.ARCH_NAMES ("sm_75",
    "sm_80", ...), or None for the plan's own `kernel ... for ARCH`; any other name is a
    ValueError. path: the name diagnostics give the file. exact: the register budget is
    ptxas's (where nvcc is present), not the estimate's. The result's `ok` is True when no
    diagnostic is an error; `to_json()` is what `tlc check --json` prints for the file.
    """
    return check_source(_text(text, path), arch=known_arch(arch), sketch=sketch, exact=exact)


def format_plan(text: str, path: str = "<string>") -> tuple[str | None, tuple[Diagnostic, ...]]:
    """(canonical text, ()) for a plan that parses, else (None, syntax diagnostics)."""
    from tlc.grammar.parser import parse as parse_source
    from tlc.printer import format_plan as print_plan

    parsed = parse_source(Source(text, path))
    if parsed.plan is None:
        return None, parsed.diagnostics
    return print_plan(parsed.plan, text), ()


def fix_plan(text: str, arch: str | None = None, path: str = "<string>",
             rounds: int = 5, applied: list | None = None) -> tuple[str | None, CheckResult]:
    """Apply the edits the diagnostics carry, re-checking after each round, then format.

    With `arch` naming another target than the plan's `for ARCH`, a plan that passes for
    `arch` after the edits also has its `for` line rewritten, so that it checks and compiles
    as it is. `applied`, if given, receives each diagnostic whose edits were made.
    Returns (the new text, or None if the plan does not parse; the check of the result).
    """
    from tlc.fixes import apply_edits

    arch = known_arch(arch)
    result = check(text, arch=arch, path=path)
    for _ in range(rounds):
        fixed = [d for d in result.diagnostics if d.is_error and d.fixes]
        if not fixed:
            break
        text = apply_edits(text, [edit for d in fixed for edit in d.fixes])
        if applied is not None:
            applied += fixed
        result = check(text, arch=arch, path=path)
    if result.plan is None:
        return None, result
    if arch is not None and result.ok:
        text = _retarget(text, result.plan, arch)
    formatted, _ = format_plan(text, path)
    return formatted, check(formatted, arch=arch, path=path)


def _retarget(text: str, plan: ast.Plan, arch: str) -> str:
    """The text with its `kernel NAME for ARCH` line naming `arch`."""
    kernel = next((d for d in plan.decls if isinstance(d, ast.KernelDecl)), None)
    if kernel is None or (kernel.target is not None and kernel.target.text == arch):
        return text
    if kernel.target is None:
        end = kernel.name.span.end
        return text[:end] + f" for {arch}" + text[end:]
    span = kernel.target.span
    return text[:span.start] + arch + text[span.end:]


def results_to_json(results: list[CheckResult]) -> dict:
    """The document `tlc check --json` prints (docs/diagnostics.md)."""
    from tlc import __version__

    errors = sum(count(r.diagnostics)[0] for r in results)
    warnings = sum(count(r.diagnostics)[1] for r in results)
    return {"schema": JSON_SCHEMA, "tool": f"tlc {__version__}",
            "files": [r.to_json() for r in results],
            "summary": {"files": len(results), "errors": errors, "warnings": warnings}}


def compile(text: str | bytes, arch: str | None = None, out_dir: str | None = None,
            emit: str = "cubin", path: str = "<string>") -> dict:
    """Check, lower and build a plan (`tlc compile`); a JSON-ready summary: ok, diagnostics,
    the files written, the manifest, and what was skipped (no nvcc).

    arch: as for `check`. emit: how far to go, one of tlc.compiler.EMITS ("ir", "cuda",
    "ptx", "cubin"); anything else is a ValueError. out_dir: the folder to write into (a
    fresh temporary folder when None; its path is in the result's "files").
    """
    import tempfile

    from tlc.compiler import EMITS, CompileError, compile_plan

    arch = known_arch(arch)
    if emit not in EMITS:
        raise ValueError(f"unknown emit {emit!r} (known: {', '.join(EMITS)})")
    source = _text(text, path)
    sketch = sketch_problem(source)
    if sketch:
        return {"ok": False, "error": sketch, "diagnostics": []}
    folder = out_dir or tempfile.mkdtemp(prefix="tlc-compile-")
    try:
        compiled = compile_plan(source, arch, folder, emit)
    except CompileError as error:
        return {"ok": False, "error": str(error), "diagnostics": []}
    return {"ok": compiled.check.ok, "arch": compiled.check.arch,
            "diagnostics": [d.to_json(path) for d in compiled.check.diagnostics],
            "files": [str(f) for f in compiled.files], "manifest": compiled.manifest,
            "skipped": compiled.skipped}


def sketch_problem(source: Source) -> str | None:
    """What to say when asked to compile a sketch (a plan whose parameters are still open),
    or None for TL code and for plans that do not parse (their diagnostics say more)."""
    from tlc.grammar.parser import parse as parse_source

    if "sketch" not in source.text:
        return None
    parsed = parse_source(source)
    if parsed.plan is None or not parsed.plan.declares_sketch:
        return None
    return (f"{source.path} is a sketch: its parameters (tile sizes, warps, MMA shape, "
            "target) are still open. Fill them in first: `tlc generate` does it with an "
            "LLM, or write the TL code (docs/language.md, §TL code); then compile that")


def evaluate(text: str, shape: dict, arch: str | None = None, iters: int = 20) -> dict:
    """Build a plan for the GPU present, run it on random inputs of `shape` (e.g. {"B": 2,
    "H": 16, "N": 4096}; N sets Nq and Nk), compare with the float64 reference and time it.
    A JSON-ready summary: ok (built and ran), correct, the verdict, ms, tflops, device."""
    from tlc.runtime import (ArgumentError, GpuUnavailable, device_name, load, problem_sizes,
                             run_random)

    arch = known_arch(arch)
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
    from tlc.simulate import NotSimulated, SimulationError, simulate as run

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
    except NotSimulated as error:
        return {"ok": False, "correct": False, "error": str(error)}
    return {"ok": True, "correct": verdict.ok, "verdict": verdict.to_json(), "shape": sizes}
