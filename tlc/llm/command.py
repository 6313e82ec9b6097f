"""`tlc generate`: the command line of the LLM loop (tlc/llm/loop.py does the work)."""
from __future__ import annotations

import argparse
import os
import sys

from tlc.cli_common import EXIT_DIAGNOSTICS, EXIT_OK, EXIT_USAGE, write_atomically
from tlc.cli_common import arch_one, output_file_problem, positive


def add_generate_parser(commands) -> None:
    """`tlc generate`: its arguments and help."""
    generate = commands.add_parser(
        "generate", help="have an LLM write a plan, checked and repaired by tlc",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Ask an LLM (any OpenAI-compatible endpoint) for a TL plan, in the paper's "
                    "two stages:\n"
                    "  1. a sketch (statements only), checked as a sketch;\n"
                    "  2. TL code for --arch, checked with every check for that target.\n"
                    "After each reply tlc extracts the ```tl block (a reply with no plan, with "
                    "CUDA or\nPython, or an enormous one is turned away; nothing a model "
                    "returns is ever run),\nchecks it, and sends the diagnostics back, for up "
                    "to --max-rounds rounds a stage.",
        epilog="The API key is read from OPENAI_API_KEY only and never written anywhere; "
               "OPENAI_BASE_URL\nand TLC_MODEL give defaults for --base-url and --model. "
               "Exit codes: 0 a plan passed\ntlc check; 1 none did (the best attempt is "
               "written next to the output, with its\ndiagnostics); 2 usage error. An "
               "existing file is never overwritten without --force.")
    generate.add_argument("task", metavar="TASK",
                          help='what to write, e.g. "MHA forward, D=128, causal, fp16"')
    generate.add_argument("--arch", type=arch_one, default="sm_80", metavar="ARCH",
                          help="target architecture (default: sm_80)")
    generate.add_argument("-o", "--output", metavar="FILE",
                          help="where to write the accepted plan (default: standard output)")
    generate.add_argument("--model", default=os.environ.get("TLC_MODEL"),
                          help="model name (default: $TLC_MODEL)")
    generate.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"),
                          help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL)")
    generate.add_argument("--max-rounds", type=positive, default=4, metavar="N",
                          help="replies per stage before giving up (default: 4)")
    generate.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                          help="per request (default: 120)")
    generate.add_argument("--transcript", metavar="FILE",
                          help="write every exchange as JSON lines (the key is never written)")
    generate.add_argument("--force", action="store_true",
                          help="overwrite the output file if it exists")
    generate.add_argument("--verify", action="store_true",
                          help="on a GPU host: build and run each accepted plan; a wrong result "
                               "goes back to the model, a correct one with its TFLOP/s for "
                               "--optimize-rounds more tries; the best correct plan is kept")
    generate.add_argument("--shape", metavar="SIZES", default="B=4,H=16,N=2048",
                          help="with --verify: the sizes to run at (default B=4,H=16,N=2048; "
                               "N sets Nq and Nk)")
    generate.add_argument("--optimize-rounds", type=int, default=2, metavar="M",
                          help="with --verify: tries at a faster plan (default 2)")
    generate.set_defaults(run=run_generate)


def run_generate(args) -> int:
    from tlc.llm.client import ChatModel, LLMError
    from tlc.llm.loop import generate
    from tlc.llm.transcript import Transcript

    key = os.environ.get("OPENAI_API_KEY", "")
    problem = _generate_usage(args, key) or _unlowered(args.arch)
    if problem:
        print(f"tlc generate: {problem}", file=sys.stderr)
        return EXIT_USAGE
    import importlib.util

    if importlib.util.find_spec("openai") is None:
        print("tlc generate: needs the `openai` package: pip install 'tlc[llm]'",
              file=sys.stderr)
        return EXIT_USAGE
    verify = _verifier(args) if args.verify else None
    if args.verify and verify is None:
        return EXIT_USAGE
    transcript = Transcript(args.transcript, secrets=[key])
    model = ChatModel(args.model, args.base_url, key or "unused", timeout=args.timeout,
                      transcript=transcript)
    progress = lambda line: print(f"tlc generate: {line}", file=sys.stderr)  # noqa: E731
    try:
        outcome = generate(args.task, args.arch, model, args.max_rounds, transcript, progress,
                           verify=verify, optimize_rounds=max(0, args.optimize_rounds))
    except LLMError as error:
        transcript.write("error", message=str(error))
        print(f"tlc generate: the model could not be reached: {error}", file=sys.stderr)
        return EXIT_DIAGNOSTICS
    finally:
        transcript.close()
    return _write_outcome(args, outcome)


def _verifier(args):
    """plan -> tlc.evaluate result at --shape, or None after saying why it cannot run."""
    from tlc.api import evaluate
    from tlc.runtime import ArgumentError, GpuUnavailable, device_name, problem_sizes

    try:
        shape = problem_sizes(args.shape)
    except ArgumentError as error:
        print(f"tlc generate: --shape: {error}", file=sys.stderr)
        return None
    try:
        device_name()
    except GpuUnavailable as error:
        print(f"tlc generate: no GPU ({error}): plans are verified on the CPU by tlc sim, "
              "at small sizes, for correctness only", file=sys.stderr)
        return lambda plan: simulated(plan, shape, args.arch)
    return lambda plan: evaluate(plan, shape, arch=args.arch)


def simulated(plan: str, shape: dict, arch: str) -> dict:
    """tlc.simulate's verdict in tlc.evaluate's form, at sizes small enough for the CPU (the
    sequences capped at 200, one batch; the heads as the plan's params make them)."""
    from tlc.api import simulate

    small = {name: min(value, 200) for name, value in shape.items() if name.startswith("N")}
    found = simulate(plan, dict(small, B=1), arch=arch)
    return {**found, "device": "the CPU (tlc sim)", "tflops": 0.0}


def _generate_usage(args, key: str) -> str | None:
    if not args.model:
        return "name the model with --model or TLC_MODEL"
    local = args.base_url and any(host in args.base_url for host in ("127.0.0.1", "localhost"))
    if not key and not local:
        return "set OPENAI_API_KEY (the key is read from the environment only)"
    if args.output and os.path.exists(args.output) and not args.force:
        return f"{args.output} exists; pass --force to overwrite it"
    if args.output and output_file_problem(args.output):
        return f"-o {output_file_problem(args.output)}"
    return None


def _write_outcome(args, outcome) -> int:
    from tlc.llm.loop import attempt_path

    rounds = outcome.summary()["rounds"]
    if outcome.ok:
        if args.output:
            write_atomically(args.output, outcome.plan, create=True)
            print(f"tlc generate: plan accepted after {rounds['sketch']} sketch and "
                  f"{rounds['code']} code round(s); written to {args.output}", file=sys.stderr)
        else:
            sys.stdout.write(outcome.plan)
        return EXIT_OK
    best = outcome.best
    where = None
    if best is not None:
        where = attempt_path(args.output or "tlc-generate.tl")
        write_atomically(where, best.annotated(), create=True)
    print(f"tlc generate: no plan passed tlc check in {args.max_rounds} round(s) of the "
          f"{outcome.failed_stage} stage" + (f"; the best attempt ({best.errors} error(s)) and "
                                             f"its diagnostics are in {where}" if where else
                                             "; no reply held a plan"), file=sys.stderr)
    return EXIT_DIAGNOSTICS


def _unlowered(arch: str) -> str | None:
    """A target tlc checks plans for but does not generate code for: nothing to write."""
    from tlc.backends import target_for

    target = target_for(arch)
    if target is not None and not target.lowers:
        return f"tlc does not generate code for {arch} yet ({target.note})"
    return None
