"""`tlc`: the command line. Thin: parse arguments, call tlc.api, render, return an exit code.

Exit codes: 0 clean, 1 the plans have errors (or `fmt --check` would change a file),
2 usage or internal error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from tlc.cli_common import (EXIT_DIAGNOSTICS, EXIT_OK, EXIT_USAGE, output_file_problem,
                            output_folder_problem, write_atomically)
from tlc.cli_common import arch as _arch
from tlc.cli_common import arch_one as _arch_one
from tlc.cli_common import positive as _positive


def build_parser() -> argparse.ArgumentParser:
    from tlc import __version__

    parser = argparse.ArgumentParser(
        prog="tlc", description="Compile LLM-TL attention plans into GPU kernels.",
        epilog="Run `tlc COMMAND --help` for a command's options. Language reference: "
               "docs/language.md; diagnostic codes: docs/diagnostics.md.")
    parser.add_argument("--version", action="version", version=f"tlc {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = commands.add_parser(
        "check", help="parse and check plans; report every problem found",
        description="Parse and check TL plans. Every error of every file is reported; the "
                    "exit code is 1 if any file has an error.")
    check.add_argument("files", nargs="+", metavar="FILE", help="plan files (`-` for stdin)")
    check.add_argument("--json", action="store_true",
                       help="print one JSON document (schema in docs/diagnostics.md)")
    check.add_argument("--sketch", action="store_true",
                       help="check as a sketch: statements whose parameters are still open")
    check.add_argument("--arch", type=_arch, metavar="ARCH",
                       help="target architecture (sm_75, sm_80, sm_86, sm_89, sm_90), or `all` "
                            "for a table of every target: fits or not, and what must change; "
                            "default: the plan's `kernel … for ARCH`")
    check.add_argument("--exact", action="store_true",
                       help="decide the register budget by building the kernel and reading "
                            "ptxas's report (cached; needs nvcc) instead of the estimate")
    check.add_argument("--report", action="store_true",
                       help="also print the resource figures: shared memory, estimated "
                            "registers, threads, grid, occupancy")
    check.set_defaults(run=run_check)

    fmt = commands.add_parser(
        "fmt", help="rewrite plans in canonical form",
        description="Rewrite TL plans in canonical form. A file that does not parse is never "
                    "touched; files are replaced atomically.")
    fmt.add_argument("files", nargs="+", metavar="FILE",
                     help="plan files (`-` reads stdin and writes stdout)")
    fmt.add_argument("--check", action="store_true",
                     help="change nothing; exit 1 if a file is not in canonical form")
    fmt.add_argument("--diff", action="store_true",
                     help="change nothing; print what would change as a unified diff")
    fmt.add_argument("--fix", action="store_true",
                     help="also make the changes diagnostics carry as fixes (a missing "
                          "Reshape, a `^T`, and for the target: MMA shape, stages, tile "
                          "sizes), then re-check")
    fmt.add_argument("--arch", type=_arch, metavar="ARCH",
                     help="with --fix: the target to fix the plan for (default: its own)")
    fmt.set_defaults(run=run_fmt)
    _compile_parser(commands)
    run = commands.add_parser(
        "run", help="run a plan on the GPU: error against the reference, and TFLOP/s",
        description="Build a plan for the GPU present, run it on random normal inputs, compare "
                    "two (batch, head) slices with the float64 reference (the peers' tolerance "
                    "rule), and time it with CUDA events (median of --iters launches).")
    run.add_argument("file", metavar="FILE", help="the plan")
    run.add_argument("--shape", required=True, metavar="SIZES",
                     help="the runtime sizes, e.g. B=2,H=16,N=4096 (N sets Nq and Nk)")
    run.add_argument("--arch", type=_arch_one, metavar="ARCH",
                     help="the plan's target (default: its `for ARCH`)")
    run.add_argument("--iters", type=_positive, default=20, help="timed launches (default 20)")
    run.set_defaults(run=run_run)
    from tlc.sim_command import add_sim_parser

    add_sim_parser(commands)
    _tune_parser(commands)
    from tlc.llm.command import add_generate_parser

    add_generate_parser(commands)
    return parser


def _compile_parser(commands) -> None:
    from tlc.compiler import EMITS

    compile_ = commands.add_parser(
        "compile", help="lower a plan to CUDA and build it",
        description="Check a plan, lower it for the target and write <kernel>.cu, and with nvcc "
                    "present <kernel>.ptx and <kernel>.cubin, with <kernel>.manifest.json (the "
                    "arguments, grid and block, shared memory, ptxas registers and spills). "
                    "Same plan, target and tlc version: byte-identical CUDA, and a cached build.")
    compile_.add_argument("file", metavar="FILE", help="the plan")
    compile_.add_argument("--arch", type=_arch_one, metavar="ARCH",
                          help="target (default: the plan's `kernel … for ARCH`)")
    compile_.add_argument("-o", "--output", default=".", metavar="DIR",
                          help="the folder to write into (default: .)")
    compile_.add_argument("--emit", choices=EMITS, default="cubin",
                          help="how far to go: the checked IR, the schedule (what the kernel "
                               "does: held and streamed operands, pipelines, shared memory), "
                               "the CUDA source, PTX, or a cubin (default)")
    compile_.set_defaults(run=run_compile)


def _tune_parser(commands) -> None:
    from tlc.tune import SPACE

    tune = commands.add_parser(
        "tune", help="find the fastest tile parameters of a plan on the GPU present",
        description="Vary the plan's tunable params (BM, BN, WARPS, STAGES, DC, SPLITS), keep the "
                    "assignments `tlc check` accepts, rank them by the resource model, build "
                    "them in parallel, check each against the float64 reference, time them, "
                    "and keep the winner per (plan, GPU, driver) so the next run answers at "
                    "once. Ctrl-C keeps what was measured; the next run resumes.")
    tune.add_argument("file", metavar="FILE", help="the plan")
    tune.add_argument("--arch", type=_arch_one, metavar="ARCH",
                      help="the plan's target (default: its `for ARCH`)")
    tune.add_argument("--shape", metavar="SIZES",
                      help="the problem to time, e.g. B=4,H=16,N=4096 (default: N=4096, B=4, "
                           "2048/D heads)")
    tune.add_argument("--space", action="append", default=[], metavar="NAME=V1,V2",
                      help="the values to try for one param (repeatable; default: "
                           + "; ".join(f"{k} {','.join(map(str, v))}" for k, v in SPACE.items())
                           + ")")
    tune.add_argument("--top", type=_positive, metavar="K",
                      help="measure only the K best-ranked candidates (default: all)")
    tune.add_argument("--jobs", type=_positive, metavar="N", help="parallel builds")
    tune.add_argument("--iters", type=_positive, default=20, help="timed launches (default 20)")
    tune.add_argument("--dry-run", action="store_true",
                      help="list the candidates with their predicted resources; no GPU needed")
    tune.add_argument("--force", action="store_true",
                      help="measure again even where the cache has an answer")
    tune.add_argument("--ptx", action="store_true",
                      help="build PTX for the plan's target and let the driver JIT it (how an "
                           "sm_75 plan runs on a newer GPU as written), not natively")
    tune.add_argument("-o", "--output", metavar="FILE",
                      help="write the plan with the winning values here (a new file)")
    tune.set_defaults(run=run_tune)


def run_tune(args) -> int:
    from tlc.api import check, read_source
    from tlc.runtime import ArgumentError, GpuUnavailable, problem_sizes
    from tlc.tune import TuneError, candidates, cache_path, space_of, tune

    source, problems = read_source(args.file)
    if problems:
        print(problems[0].message, file=sys.stderr)
        return EXIT_DIAGNOSTICS
    if args.output and os.path.exists(args.output):
        print(f"tlc tune: {args.output} exists; tune writes a new file and overwrites nothing "
              "(choose another -o)", file=sys.stderr)
        return EXIT_USAGE
    if args.output and output_file_problem(args.output):
        print(f"tlc tune: -o {output_file_problem(args.output)}", file=sys.stderr)
        return EXIT_USAGE
    first = check(source.text, arch=args.arch, path=source.path)
    arch = args.arch or first.arch or getattr(first.kernel, "target", None)
    if first.kernel is None or arch is None:
        if first.kernel is None:
            from tlc.diagnostics import render_text

            for diagnostic in first.diagnostics:
                print(render_text(diagnostic, source))
            return EXIT_DIAGNOSTICS
        print("tlc tune: the plan names no target: give --arch", file=sys.stderr)
        return EXIT_USAGE
    try:
        space = space_of(source.text, _space_overrides(args.space))
        shape = problem_sizes(args.shape) if args.shape else None
    except (TuneError, ArgumentError, ValueError) as error:
        print(f"tlc tune: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.dry_run:
        found, refused = candidates(source.text, arch, space)
        _print_candidates(found, refused, space, arch, args.top)
        return EXIT_OK if found else EXIT_DIAGNOSTICS
    bar = _ProgressBar(sys.stderr)
    try:
        outcome = tune(source.text, arch, shape, space=space, top=args.top, jobs=args.jobs,
                       iters=args.iters, from_ptx=args.ptx, force=args.force, progress=bar)
    except TuneError as error:
        print(f"tlc tune: {error}", file=sys.stderr)
        return EXIT_DIAGNOSTICS
    except (GpuUnavailable, ArgumentError) as error:
        print(f"tlc tune: {error} (`tlc tune --dry-run` lists the candidates without a GPU)",
              file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        bar.finish()
        print(f"tlc tune: interrupted; the measurements so far are saved in {cache_path()} "
              "and the next run resumes from them", file=sys.stderr)
        return 130
    bar.finish()
    _print_measurements(outcome)
    if outcome.best is None:
        print("tlc tune: no candidate passed its correctness check", file=sys.stderr)
        return EXIT_DIAGNOSTICS
    best = outcome.best
    where = "from the cache" if outcome.cached else "measured now"
    print(f"best: {' '.join(f'{k}={v}' for k, v in best.values.items())}: {best.tflops} TFLOP/s "
          f"({best.ms:.3f} ms), {where}; kept in {cache_path()}")
    if args.output:
        write_atomically(args.output, outcome.best_text(), create=True)
        print(f"wrote {args.output}")
    return EXIT_OK


def _space_overrides(items: list[str]) -> dict[str, tuple[int, ...]]:
    overrides = {}
    for item in items:
        name, _, values = item.partition("=")
        try:
            overrides[name.strip()] = tuple(int(v) for v in values.split(",") if v.strip())
        except ValueError:
            raise ValueError(f"--space {item!r}: write NAME=V1,V2 with integer values") from None
        if not name.strip() or not overrides[name.strip()]:
            raise ValueError(f"--space {item!r}: write NAME=V1,V2")
    return overrides


def _print_candidates(found, refused, space, arch, top) -> None:
    names = list(space)
    print(f"{len(found)} of {len(found) + refused} assignments of {', '.join(names)} pass "
          f"tlc check for {arch}; best predicted first" + (f", the first {top} would be "
                                                           "measured" if top else ""))
    print(f"{'#':>3}  " + " ".join(f"{n:>6}" for n in names) +
          f"  {'smem':>8} {'regs':>5} {'blocks/SM':>9}  {'limited by':<14} {'score':>6}")
    for rank, c in enumerate(found, 1):
        p = c.predicted
        mark = "*" if top and rank <= top else " "
        print(f"{rank:>3}{mark} " + " ".join(f"{c.values[n]:>6}" for n in names) +
              f"  {p['shared_memory']:>8} {p['registers']:>5} {p['blocks_per_sm']:>9}  "
              f"{p['limited_by'] or '-':<14} {p['score']:>6.3f}")


def _print_measurements(outcome) -> None:
    rows = sorted(outcome.measurements, key=lambda m: (not m.ok, m.ms or 0))
    names = list(rows[0].values) if rows else []
    print(" ".join(f"{n:>6}" for n in names) + f"  {'ms':>9} {'TFLOP/s':>8} {'regs':>5} "
          f"{'spills':>6}  result")
    for m in rows:
        print(" ".join(f"{m.values[n]:>6}" for n in names) +
              f"  {m.ms if m.ms else '-':>9} {m.tflops if m.tflops else '-':>8} "
              f"{m.registers if m.registers is not None else '-':>5} "
              f"{m.spills if m.spills is not None else '-':>6}  {'ok' if m.ok else m.error}")


class _ProgressBar:
    """tlc tune's progress on stderr: a tqdm bar redrawn in place on a terminal (done, total,
    rate, time left, the best TFLOP/s so far); elsewhere, a log, one line per step."""

    def __init__(self, stream):
        self.stream = stream
        self.live = hasattr(stream, "isatty") and stream.isatty()
        self.best = None
        self.bar = None

    def __call__(self, done: int, total: int, what: str, measurement) -> None:
        if measurement is not None and measurement.ok and measurement.tflops:
            self.best = max(self.best or 0, measurement.tflops)
        result = "" if measurement is None else (
            f": {measurement.tflops} TFLOP/s" if measurement.ok else f": {measurement.error}")
        best = f" (best {self.best})" if self.best else ""
        if not self.live:
            self.stream.write(f"tune {done}/{total} {what}{result}{best}\n")
            self.stream.flush()
            return
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc="tune", unit="candidate", file=self.stream,
                            dynamic_ncols=True, leave=True)
        self.bar.set_postfix_str(f"{what}{result}{best}", refresh=False)
        self.bar.update(done - self.bar.n)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run_run(args) -> int:
    from tlc.api import read_source
    from tlc.runtime import ArgumentError, GpuUnavailable, load, problem_sizes, run_random

    source, problems = read_source(args.file)
    if problems:
        print(problems[0].message, file=sys.stderr)
        return EXIT_DIAGNOSTICS
    try:
        shape = problem_sizes(args.shape)
    except ArgumentError as error:
        print(f"tlc run: --shape: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        kernel = load(source.text, arch=args.arch)
        missing = [d for d in kernel.kernel.size_names if d not in shape]
        if missing:
            print(f"tlc run: --shape lacks {', '.join(missing)}", file=sys.stderr)
            return EXIT_USAGE
        verdict, milliseconds, tflops = run_random(kernel, shape, args.iters)
    except GpuUnavailable as error:
        print(f"tlc run: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ArgumentError as error:
        print(f"tlc run: {error}", file=sys.stderr)
        return EXIT_DIAGNOSTICS
    print(f"{kernel.how}")
    print(f"error: max {verdict.max_error:.3g} (bound {verdict.max_bound:.3g}), mean "
          f"{verdict.mean_error:.3g}: {'ok' if verdict.ok else 'FAILED ' + '; '.join(verdict.problems)}")
    print(f"time: {milliseconds:.3f} ms, {tflops:.1f} TFLOP/s")
    return EXIT_OK if verdict.ok else EXIT_DIAGNOSTICS


def run_compile(args) -> int:
    from tlc.api import read_source, sketch_problem
    from tlc.compiler import CompileError, compile_plan
    from tlc.diagnostics import render_text

    source, problems = read_source(args.file)
    if problems:
        for diagnostic in problems:
            print(render_text(diagnostic, source))
        return EXIT_DIAGNOSTICS
    sketch = sketch_problem(source)
    if sketch:
        print(f"tlc compile: {sketch}", file=sys.stderr)
        return EXIT_DIAGNOSTICS
    folder = output_folder_problem(args.output)
    if folder:
        print(f"tlc compile: {folder}", file=sys.stderr)
        return EXIT_USAGE
    try:
        compiled = compile_plan(source, args.arch, args.output, args.emit)
    except CompileError as error:
        print(f"tlc compile: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:  # the folder went away or filled up while writing
        print(f"tlc compile: cannot create or write {args.output}: {error.strerror or error}",
              file=sys.stderr)
        return EXIT_USAGE
    _print_diagnostics(compiled.check)
    if not compiled.check.ok:
        return EXIT_DIAGNOSTICS
    for path in compiled.files:
        print(f"wrote {path}")
    kernels = compiled.manifest.get("kernels", [])
    for kernel in kernels:
        ptxas = kernel.get("ptxas")
        if ptxas:
            name = f" {kernel['kernel']}" if len(kernels) > 1 else ""
            print(f"ptxas{name}: {ptxas['registers']} registers, {ptxas['spill_stores']} bytes "
                  f"spill stores, {ptxas['spill_loads']} bytes spill loads")
    if compiled.skipped:
        print(f"tlc compile: {compiled.skipped}", file=sys.stderr)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a plan's bytes must not crash an ASCII terminal
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on a usage error, as argparse does
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    stdout = sys.stdout
    sys.stdout = _PipeSafe(stdout)  # a reader that stops early must not change the exit code
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("tlc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stderr's reader went away: there is no one left to tell
        return 141
    except ImportError as error:
        missing = _missing_dependency(error)
        if missing is None:
            return _internal_error(error)
        print(f"tlc: the {missing!r} package is missing: pip install {missing}",
              file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # a bug of ours: say so in one line, not a traceback
        return _internal_error(error)
    finally:
        sys.stdout = stdout


def _internal_error(error: Exception) -> int:
    if os.environ.get("TLC_TRACEBACK"):
        raise error
    print(f"tlc: internal error: {type(error).__name__}: {error} (this is a bug in tlc; "
          "TLC_TRACEBACK=1 shows the traceback)", file=sys.stderr)
    return EXIT_USAGE


def _missing_dependency(error: ImportError) -> str | None:
    """The third-party package an ImportError says is missing, if it is one tlc needs."""
    from tlc.api import MissingDependency

    if isinstance(error, MissingDependency):
        return error.name
    name = (getattr(error, "name", None) or "").partition(".")[0]
    return name if name in ("lark", "numpy") else None


class _PipeSafe:
    """Standard output that, once its reader has gone (`tlc check … | head`), drops the rest
    of the output instead of raising: the command finishes and returns its own exit code."""

    def __init__(self, stream):
        self._stream, self._broken = stream, False

    def write(self, text: str) -> int:
        if not self._broken:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not self._broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self._broken = True
        try:  # the interpreter flushes stdout at exit; let that go nowhere, quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    def __getattr__(self, name):
        return getattr(self._stream, name)


def run_check(args) -> int:
    from tlc.api import check_source, read_source, results_to_json
    from tlc.diagnostics import count
    from tlc.report import resources_json, resources_text

    if args.arch == "all":
        return run_portability(args)
    results = []
    for path in args.files:
        source, prior = read_source(path)
        results.append(check_source(source, arch=args.arch, sketch=args.sketch, prior=prior,
                                    exact=args.exact))
    internal = any(d.code == "internal-error" for r in results for d in r.diagnostics)
    if args.json:
        document = results_to_json(results)
        if args.report:
            for entry, result in zip(document["files"], results):
                entry["resources"] = resources_json(result)
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for result in results:
            _print_diagnostics(result)
            if args.report:
                print(resources_text(result))
        errors = sum(count(r.diagnostics)[0] for r in results)
        warnings = sum(count(r.diagnostics)[1] for r in results)
        files = f"{len(results)} file{'s' if len(results) != 1 else ''}"
        print(f"checked {files}: {errors} error{'s' if errors != 1 else ''}, "
              f"{warnings} warning{'s' if warnings != 1 else ''}")
    if internal:
        return EXIT_USAGE
    return EXIT_OK if all(r.ok for r in results) else EXIT_DIAGNOSTICS


def run_portability(args) -> int:
    """`tlc check --arch all`: every plan on every target. Exit 1 when a plan does not fit its
    own target (or, naming none, no target at all)."""
    from tlc.api import read_source
    from tlc.report import portability, portability_text, resources_json

    status, documents = EXIT_OK, []
    for path in args.files:
        source, prior = read_source(path)
        if prior:
            from tlc.diagnostics import render_text

            for diagnostic in prior:
                print(render_text(diagnostic, source))
            status = EXIT_DIAGNOSTICS
            continue
        results = portability(source, args.sketch)
        if results[0].plan is None:  # it does not parse: the same errors for every target
            status = EXIT_DIAGNOSTICS
            if not args.json:
                _print_diagnostics(results[0])
                continue
        own = next((r for r in results if r.kernel is not None and r.arch ==
                    getattr(r.kernel, "target", None)), None)
        if not (own.ok if own else any(r.ok for r in results)):
            status = EXIT_DIAGNOSTICS
        if args.json:
            documents.append({"file": source.path, "targets": [
                {"arch": r.arch, "ok": r.ok, "resources": resources_json(r),
                 "diagnostics": [d.to_json(source.path) for d in r.diagnostics]}
                for r in results]})
        else:
            print(portability_text(results))
    if args.json:
        json.dump({"schema": "tlc-portability/1", "files": documents}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return status


def _print_diagnostics(result) -> None:
    """A file's diagnostics as text, and how many more were left out."""
    from tlc.diagnostics import render_text

    for diagnostic in result.diagnostics:
        print(render_text(diagnostic, result.source))
    if result.omitted:
        from tlc.api import MAX_DIAGNOSTICS

        print(f"{result.source.path}: {result.omitted} more diagnostic"
              f"{'s' if result.omitted != 1 else ''} not shown (tlc shows the first "
              f"{MAX_DIAGNOSTICS} of a file; fix these and check again)")


def _report_fixes(path: str, applied, checked, formatted: str) -> None:
    """On stderr: each fix made (from the diagnostics of the text it was made on), then
    what is left, in full."""
    from tlc.diagnostics import count, render_text
    from tlc.source import Source

    for diagnostic in applied:
        print(f"{path}:{diagnostic.span.line}: fixed [{diagnostic.code}]: "
              f"{diagnostic.help or diagnostic.message}", file=sys.stderr)
    for diagnostic in checked.diagnostics:
        print(render_text(diagnostic, Source(formatted, path)), file=sys.stderr)
    errors = count(checked.diagnostics)[0]
    if errors:
        print(f"{path}: {errors} error{'s' if errors != 1 else ''} left that tlc cannot "
              "fix by itself", file=sys.stderr)


def run_fmt(args) -> int:
    import difflib

    from tlc.api import fix_plan, format_plan, read_source
    from tlc.diagnostics import render_text

    status = EXIT_OK
    for path in args.files:
        source, problems = read_source(path)
        unread = bool(problems)
        formatted = None
        if not problems and args.fix:
            applied: list = []
            formatted, checked = fix_plan(source.text, args.arch, source.path,
                                          applied=applied)
            problems = () if formatted is not None else checked.diagnostics
            if formatted is not None:
                _report_fixes(source.path, applied, checked, formatted)
                if not checked.ok:  # what was fixed is kept; the rest is the user's to fix
                    status = EXIT_DIAGNOSTICS
        elif not problems:
            formatted, problems = format_plan(source.text, source.path)
        if problems:
            for diagnostic in problems:
                print(render_text(diagnostic, source), file=sys.stderr)
            why = "it could not be read" if unread else "it does not parse"
            print(f"{source.path}: not formatted ({why})", file=sys.stderr)
            status = EXIT_DIAGNOSTICS
            continue
        if path == "-":
            sys.stdout.write(formatted)
            continue
        if formatted == source.text:
            continue
        if args.diff:
            sys.stdout.writelines(difflib.unified_diff(
                source.text.splitlines(keepends=True), formatted.splitlines(keepends=True),
                fromfile=path, tofile=f"{path} (formatted)"))
        if args.check or args.diff:
            print(f"would reformat {path}", file=sys.stderr)
            status = EXIT_DIAGNOSTICS
            continue
        write_atomically(path, formatted)
        print(f"reformatted {path}", file=sys.stderr)
    return status
