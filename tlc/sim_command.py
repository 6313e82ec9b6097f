"""`tlc sim PLAN [--shape ...]`: the plan run on the CPU by tlc/simulate.py, judged against the
float64 reference; exit 0 when correct, 1 when not (or when a statement reads or writes
outside a tensor, shown at that statement), 2 for a usage error."""
from __future__ import annotations

import sys


def add_sim_parser(commands) -> None:
    sim = commands.add_parser(
        "sim", help="run a plan on the CPU (NumPy) and check it against the reference",
        description="Run the plan's statements with NumPy on the CPU — its grid, loops, copies "
                    "between levels, GEMMs, masks, online softmax and stores, as the plan "
                    "states them — on random normal inputs, and compare every (batch, head) "
                    "with the float64 reference by the peers' tolerance rule. Sizes the plan "
                    "does not give get small defaults consistent with its params (sequences a "
                    "little over a tile; H = Hkv * GROUP). No GPU needed; seconds at small sizes.")
    sim.add_argument("file", metavar="FILE", help="the plan")
    sim.add_argument("--shape", default="", metavar="SIZES",
                     help="run-time sizes, e.g. B=1,H=4,N=200 (N sets Nq and Nk); the rest "
                          "default")
    sim.add_argument("--arch", metavar="ARCH", help="check the plan for this target first")
    sim.add_argument("--seed", type=int, default=0, help="the inputs' random seed (default 0)")
    sim.set_defaults(run=run_sim)


def run_sim(args) -> int:
    from tlc.cli_common import EXIT_DIAGNOSTICS, EXIT_OK, EXIT_USAGE
    from tlc.diagnostics import render_text
    from tlc.driver import check_source, read_source
    from tlc.runtime import ArgumentError, problem_sizes
    from tlc.backward import NotBackward
    from tlc.simulate import NotSimulated, SimulationError, simulate

    source, problems = read_source(args.file)
    result = check_source(source, arch=args.arch, prior=problems)
    for diagnostic in result.diagnostics:
        print(render_text(diagnostic, source))
    # The simulator runs the plan's statements, not generated code: a plan the target
    # cannot lower yet (the backward pass) still runs, when no --arch asks for that target.
    blocking = [d for d in result.diagnostics if d.is_error and not (
        d.code == "backend-unsupported" and args.arch is None)]
    if blocking or result.kernel is None:
        return EXIT_DIAGNOSTICS
    if result.kernel.sketch:
        print("tlc sim: this is a sketch: fill in its parameters (`tlc generate`, or write the "
              "TL code) before running it", file=sys.stderr)
        return EXIT_USAGE
    try:
        sizes = problem_sizes(args.shape) if args.shape else {}
    except ArgumentError as error:
        print(f"tlc sim: --shape: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        verdict, used = simulate(result.kernel, sizes, seed=args.seed)
    except SimulationError as error:
        print(render_text(_located(error), source))
        return EXIT_DIAGNOSTICS
    except (NotSimulated, NotBackward) as error:
        print(f"tlc sim: {error}", file=sys.stderr)
        return EXIT_USAGE
    shown = ", ".join(f"{k}={v}" for k, v in used.items() if k in result.kernel.size_names)
    print(f"simulated on the CPU at {shown}")
    print(f"error: max {verdict.max_error:.3g} (bound {verdict.max_bound:.3g}), mean "
          f"{verdict.mean_error:.3g}: "
          + ("ok" if verdict.ok else "FAILED " + "; ".join(verdict.problems)))
    return EXIT_OK if verdict.ok else EXIT_DIAGNOSTICS


def _located(error):
    from tlc.diagnostics import Diagnostic

    return Diagnostic("out-of-bounds", str(error), error.statement.span,
                      help="keep every coordinate of the Copy inside its tensor for every "
                           "block of the grid (e.g. `Hkv = h / GROUP` for the K/V head of "
                           "query head h)")

