"""The Python API: parse, check and format plans. Everything here returns data that is
JSON-serialisable through `to_json`, for agents and the LLM loop as much as for the CLI."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from tlc import ast
from tlc.diagnostics import JSON_SCHEMA, Diagnostic, count, sort_key
from tlc.source import Source

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
    figures of the analyses, and the target it was checked against."""

    source: Source
    plan: ast.Plan | None
    kernel: object | None  # tlc.ir.Kernel when the plan parsed
    diagnostics: tuple[Diagnostic, ...]
    facts: dict = field(default_factory=dict, compare=False)  # figures the analyses found
    arch: str | None = None  # the target it was checked against
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


def check(text: str | bytes, arch: str | None = None, sketch: bool = False,
          path: str = "<string>") -> CheckResult:
    """Parse and check a plan as TL code (or, with sketch=True, as a sketch).

    text: the plan, as str or UTF-8 bytes. arch: a target of tlc.arch.ARCH_NAMES ("sm_75",
    "sm_80", ...), or None for the plan's own `kernel ... for ARCH`; any other name is a
    ValueError. path: the name diagnostics give the file. The result's `ok` is True when no
    diagnostic is an error; `to_json()` is what `tlc check --json` prints for the file.
    """
    return check_source(_text(text, path), arch=known_arch(arch), sketch=sketch)


def check_source(source: Source, arch: str | None = None, sketch: bool = False,
                 prior: tuple[Diagnostic, ...] = ()) -> CheckResult:
    if any(d.is_error for d in prior):
        return CheckResult(source, None, None, prior)
    try:
        result = _check(source, arch, sketch, prior)
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
    return dataclasses.replace(result, diagnostics=kept,
                               omitted=len(result.diagnostics) - len(kept))


def _internal(source: Source, prior, error: Exception) -> CheckResult:
    if os.environ.get("TLC_TRACEBACK"):
        raise error
    return CheckResult(source, None, None, prior + (internal_error(error),))


def _check(source: Source, arch, sketch, prior) -> CheckResult:
    from tlc.grammar.parser import parse as parse_source
    from tlc.passes import PassContext, run_passes

    parsed = parse_source(source)
    if parsed.plan is None:
        return CheckResult(source, None, None, prior + parsed.diagnostics, arch=arch)
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
