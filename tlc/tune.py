"""`tlc tune`: the fastest assignment of a plan's tile parameters on the GPU present.

1. The space: each tunable parameter the plan declares (BM, BN, WARPS, STAGES, DC, SPLITS)
   takes the values of SPACE, or those the caller gives; the others keep the plan's values.
   The ranking below knows nothing of SPLITS (how full the grid is): the timing decides.
2. Candidates: every assignment that `tlc check` accepts for the target, so every candidate
   is one tlc promises to build, fit and compute correctly.
3. Ranking by the resource model (backends/resources.py): predicted blocks per SM from the
   shared memory and the register estimate, and tile sizes. It orders the work and, with
   --top, bounds it; the measurement decides.
4. The top candidates are built in parallel (nvcc runs in threads), then each is checked
   against the float64 reference on a small odd-sized problem (its tails exercised) and
   timed on the problem given, by CUDA events.
5. The winner and every measurement are kept per (plan hash, GPU name, driver) in a JSON
   file, so that the next run answers at once. The plan hash covers the plan's text with the
   tuned parameters' values left out, so a plan rewritten with its winner finds the same
   entry. An interrupted run keeps what it measured and resumes from there.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

SPACE = {"BM": (32, 64, 128, 256), "BN": (16, 32, 64, 128), "WARPS": (2, 4, 8),
         "STAGES": (1, 2, 3), "DC": (32, 64, 128, 256), "SPLITS": (1, 2, 4, 8, 16, 32, 64)}
VERIFY_SEQ = 1000  # sequence lengths of the correctness check: odd, so every tail is exercised
PARAM_LINE = r"(?m)^(?P<head>[ \t]*param[ \t]+{name}[ \t]*=[ \t]*)(?P<value>[^#\n]*?)(?P<tail>[ \t]*(#.*)?)$"


class TuneError(Exception):
    """The plan cannot be tuned as asked; the message says why and what to do."""


@dataclass
class Candidate:
    values: dict[str, int]
    text: str
    check: object = field(repr=False)   # the CheckResult that accepted it
    predicted: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values.items())


@dataclass
class Measurement:
    values: dict[str, int]
    ok: bool
    ms: float | None = None
    tflops: float | None = None
    registers: int | None = None
    spills: int | None = None
    error: str | None = None
    max_error: float | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass
class Outcome:
    key: str
    candidates: list[Candidate]
    rejected: int
    measurements: list[Measurement]
    best: Measurement | None
    cached: bool           # answered from the cache, nothing measured now

    def best_text(self) -> str | None:
        if self.best is None:
            return None
        return next(c.text for c in self.candidates if c.values == self.best.values)


# ---- the space and the candidates (no GPU needed) ----

def declared(text: str) -> dict[str, str]:
    """name -> value text of every `param` line."""
    return {m.group(1): m.group(2).strip() for m in
            re.finditer(r"(?m)^[ \t]*param[ \t]+([A-Za-z_]\w*)[ \t]*=[ \t]*([^#\n]*)", text)}


def space_of(text: str, overrides: dict[str, tuple[int, ...]] | None = None) -> dict:
    """The values each tunable parameter of the plan may take."""
    params = declared(text)
    overrides = overrides or {}
    unknown = [name for name in overrides if name not in params]
    if unknown:
        raise TuneError(f"--space names {', '.join(unknown)}, which the plan does not declare "
                        f"(its params: {', '.join(params) or 'none'})")
    space = {name: tuple(overrides.get(name, SPACE[name])) for name in params
             if name in SPACE or name in overrides}
    if not space:
        raise TuneError("the plan declares none of the parameters tune varies "
                        f"({', '.join(SPACE)}); declare tile sizes as `param BM = 128` and use "
                        "them, or name others with --space NAME=V1,V2")
    return space


def assign(text: str, values: dict[str, int]) -> str:
    """The plan with each named `param` line set to its new value (comments kept)."""
    for name, value in values.items():
        text, count = re.subn(PARAM_LINE.format(name=re.escape(name)),
                              lambda m: f"{m.group('head')}{value}{m.group('tail')}", text,
                              count=1)
        if count != 1:
            raise TuneError(f"the plan has no `param {name} = ...` line")
    return text


def plan_hash(text: str, space: dict, arch: str) -> str:
    """A hash of the plan apart from the values tune chooses, with the target and the space."""
    blank = assign(text, {name: "?" for name in space})
    blob = json.dumps([blank, arch, {k: list(v) for k, v in sorted(space.items())}])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def candidates(text: str, arch: str, space: dict,
               occupancy_arch: str | None = None) -> tuple[list[Candidate], int]:
    """The assignments `tlc check` accepts for arch, best predicted first (occupancy as on
    occupancy_arch, default arch); and how many it refused."""
    from tlc.driver import check
    from tlc.report import resources_json

    accepted, refused = [], 0
    names = list(space)
    for combo in itertools.product(*(space[n] for n in names)):
        values = dict(zip(names, combo))
        variant = assign(text, values)
        result = check(variant, arch=arch)
        if not result.ok and _shape_only(result):  # a wgmma's N follows the tile's (sm_90a)
            variant, result = _with_shapes_fixed(variant, arch, result)
        if not result.ok:
            refused += 1
            continue
        accepted.append(Candidate(values, variant, result,
                                  predict(resources_json(result), values, occupancy_arch)))
    accepted.sort(key=lambda c: (-c.predicted["score"], c.predicted["registers"]))
    return accepted, refused


def _shape_only(result) -> bool:
    """Whether every error is an MMA shape that does not fit the tile (the checker's or the
    lowering's), with the shape to swap in."""
    errors = [d for d in result.diagnostics if d.is_error]
    return bool(errors) and all(d.code in ("backend-unsupported", "tile-mma") and d.fixes
                                and "mma" in d.help for d in errors)


def _with_shapes_fixed(text: str, arch: str, result):
    """The plan with those shapes swapped (a BN of 64 takes m64n64k16), and its check."""
    from tlc.driver import check
    from tlc.fixes import apply_edits

    fixed = apply_edits(text, [e for d in result.diagnostics if d.is_error for e in d.fixes])
    if declared(fixed) != declared(text):  # only the shapes may change
        return text, result
    return fixed, check(fixed, arch=arch)


def predict(resources: dict, values: dict, occupancy_arch: str | None = None) -> dict:
    """What the resource model says of a candidate, and a score to rank by (a heuristic: the
    measurement decides). Its factors: the fraction of 8 resident warps an SM gets (two a
    scheduler keep mma.sync busy; more add little); rows per warp, which reuse each B
    fragment a warp loads (16 rows: each fragment feeds one MMA, 32: two); BN, over which a
    block's barrier and softmax reductions are spread; and a pipeline at least two stages
    deep, which overlaps loads with compute. The half-weights (32 rows, 16 keys) were set
    on the 200 candidates the H100 measured for the benchmark's 16 plans
    (benchmarks/results/h100-tune.json): there each plan's fastest ranks 4th or better.
    Blocks per SM are those of occupancy_arch (the GPU that will run it) where given, else
    of the plan's target."""
    from tlc.arch import ARCHS
    from tlc.report import blocks_per_sm

    threads = resources["threads"]
    smem, regs = resources["shared_memory"]["bytes"], resources["registers"]["estimate"]
    arch = ARCHS.get(occupancy_arch or resources["arch"])
    occupancy = blocks_per_sm(arch, smem, regs, threads) if arch else \
        resources.get("blocks_per_sm", {"blocks": 0, "limited_by": None})
    warps = occupancy["blocks"] * threads // 32
    rows_per_warp = values.get("BM", 64) / max(1, threads // 32)
    bn = values.get("BN", 64)
    overlap = 1.0 if values.get("STAGES", 2) >= 2 else 0.85
    score = min(1.0, warps / 8) * rows_per_warp / (rows_per_warp + 32) * bn / (bn + 16) * overlap
    return {"shared_memory": smem, "registers": regs, "threads": threads,
            "blocks_per_sm": occupancy["blocks"], "limited_by": occupancy["limited_by"],
            "score": round(score, 4)}


def default_shape(check) -> dict[str, int]:
    """A problem of benchmark size when none is given: sequence lengths (sizes named N...)
    4096, the batch (a first dimension) 4, 2048 / D query heads, and the other head counts
    that divided by GROUP where the plan has one."""
    from tlc import ir

    kernel = check.kernel
    params = {p.name: p.value for p in kernel.params}
    q = next(t for t in kernel.tensors if t.role == "input" and t.shape)
    last = q.shape[-1]
    d = 128 if isinstance(last, ir.Sym) and last.kind is ir.SymKind.SIZE else \
        ir.evaluate(last, params)
    heads = max(1, 2048 // d)
    shape: dict[str, int] = {}
    for tensor in kernel.tensors:
        for position, dim in enumerate(tensor.shape):
            if not (isinstance(dim, ir.Sym) and dim.kind is ir.SymKind.SIZE) or dim.name in shape:
                continue
            if dim.name.startswith("N"):
                shape[dim.name] = 4096
            elif position == 0:
                shape[dim.name] = 4
            elif tensor is q or "GROUP" not in params:
                shape[dim.name] = heads
            else:
                shape[dim.name] = max(1, heads // params["GROUP"])
    return shape


# ---- the cache ----

def cache_path() -> Path:
    base = os.environ.get("TLC_TUNE_CACHE")
    if base:
        return Path(base)
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "tlc" / "tune.json"


def load_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # a missing or damaged cache is an empty one; the next save rewrites it


def save_cache(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)  # readers see the old file or the new one, never half


# ---- measuring on the GPU ----

def tune(text: str, arch: str, shape: dict[str, int] | None = None, *, space=None,
         top: int | None = None, jobs: int | None = None, iters: int = 20,
         from_ptx: bool = False, force: bool = False, cache: Path | None = None,
         progress=None) -> Outcome:
    """Tune a plan for the GPU present (see the module's doc). `progress(done, total, what,
    measurement or None)` is called as candidates are built and measured. KeyboardInterrupt propagates after the
    measurements so far are saved, as an incomplete entry that the next run resumes."""
    from tlc.arch import ARCHS
    from tlc.runtime import device_arch, device_name, driver_version

    space = space_of(text, space)
    present = device_arch()
    found, refused = candidates(text, arch, space, present if present in ARCHS else None)
    if not found:
        raise TuneError(f"tlc check accepts none of the {refused} assignments of "
                        f"{', '.join(space)} for {arch}; run `tlc check --arch {arch}` on the "
                        "plan to see why")
    shape = shape or default_shape(found[0].check)
    chosen = found[:top] if top else found
    gpu, driver = device_name(), driver_version()
    key = f"{plan_hash(text, space, arch)}|{gpu}|{driver}"
    cache = cache or cache_path()
    store = load_cache(cache)
    entry = store.get(key, {})
    same_shape = entry.get("shape") == shape and entry.get("from_ptx", False) == from_ptx
    done = _kept(entry) if same_shape and not force else {}
    wanted = [c for c in chosen if _id(c.values) not in done]
    if not wanted and done:
        measured = [done[_id(c.values)] for c in chosen]
        return Outcome(key, found, refused, measured, _best(measured), cached=True)

    def save(complete: bool) -> list[Measurement]:
        measured = [done[_id(c.values)] for c in chosen if _id(c.values) in done]
        best = _best(measured)
        store = load_cache(cache)  # another run may have saved meanwhile
        store[key] = {"plan_hash": key.split("|")[0], "gpu": gpu, "driver": driver,
                      "arch": arch, "shape": shape, "from_ptx": from_ptx, "complete": complete,
                      "best": best.values if best else None,
                      "saved": time.strftime("%Y-%m-%d %H:%M:%S"),
                      "measurements": [m.to_json() for m in measured]}
        save_cache(cache, store)
        return measured

    try:
        built = _build_all(wanted, arch, from_ptx, jobs, progress)
        inputs = {}  # the timing problem's inputs, made once: every candidate takes the same
        for index, candidate in enumerate(wanted):
            measurement = _measure(candidate, built[index], arch, shape, iters, inputs)
            done[_id(candidate.values)] = measurement
            if progress:
                progress(index + 1, len(wanted), candidate.label, measurement)
    except KeyboardInterrupt:
        save(complete=False)
        raise
    measured = save(complete=True)
    return Outcome(key, found, refused, measured, _best(measured), cached=False)


def tuned(text: str, arch: str, gpu: str, driver: str, cache: Path | None = None) -> str | None:
    """The plan with the values a complete tuning of it (over its default space, for `arch` on
    this GPU and driver) found fastest, from the tune cache; None where there is none."""
    space = space_of(text)
    entry = load_cache(cache or cache_path()).get(f"{plan_hash(text, space, arch)}|{gpu}|{driver}")
    if not isinstance(entry, dict) or not entry.get("complete") or not entry.get("best"):
        return None
    try:
        return assign(text, entry["best"])
    except (TuneError, TypeError, AttributeError):
        return None  # an entry in another format: the template stands


def _id(values: dict) -> str:
    return json.dumps(values, sort_keys=True)


def _kept(entry: dict) -> dict:
    """The measurements a cache entry keeps, by their values; none from an entry in another
    format (an older tlc's), which is then measured afresh and replaced."""
    try:
        return {_id(m["values"]): Measurement(**m) for m in entry.get("measurements", [])}
    except (TypeError, KeyError, AttributeError):
        return {}


def _best(measured: list[Measurement]) -> Measurement | None:
    good = [m for m in measured if m.ok and m.ms]
    return min(good, key=lambda m: m.ms) if good else None


def _build_all(wanted, arch, from_ptx, jobs, progress) -> list:
    """(lowered, build result or the BuildError) per candidate, nvcc in parallel threads."""
    from concurrent.futures import ThreadPoolExecutor

    from tlc.build import BuildError
    from tlc.driver import build_for, lowered_of
    from tlc.runtime import device_arch

    from tlc.arch import ARCHS

    # PTX for the plan's own target, sm_90a code for itself (it runs on sm_90 only), else
    # native code for the GPU present
    own = from_ptx or bool(arch in ARCHS and ARCHS[arch].runs_only_on)
    target = arch if own else device_arch()
    lowered = [lowered_of(c.check) for c in wanted]

    def one(item):
        try:
            return build_for(item, target, output="ptx" if from_ptx else "cubin")
        except BuildError as error:
            return error
    jobs = jobs or min(16, os.cpu_count() or 1)
    if progress:
        progress(0, len(wanted), f"building {len(wanted)} candidates, {jobs} at a time", None)
    pool = ThreadPoolExecutor(jobs)
    try:
        results = list(pool.map(one, lowered))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return list(zip(lowered, results))


def _measure(candidate: Candidate, built, arch, shape, iters, inputs: dict) -> Measurement:
    from tlc.build import BuildError
    from tlc.runtime import (check_random, flops_of, load, random_inputs, time_launches)

    lowered, result = built
    if isinstance(result, BuildError):
        return Measurement(candidate.values, False, error=f"build failed (a tlc bug): "
                                                          f"{str(result).splitlines()[0]}")
    report = result.function(lowered.main.name) if result.functions else None
    registers = report.registers if report else None
    spills = (report.spill_stores + report.spill_loads) if report else None
    kernel = load(candidate.check, prebuilt=(lowered, result))
    small = {name: min(value, VERIFY_SEQ) if name.startswith("N") else value
             for name, value in shape.items()}
    verdict = check_random(kernel, small, seed=len(candidate.label))
    if not verdict.ok:
        return Measurement(candidate.values, False, registers=registers, spills=spills,
                           max_error=float(verdict.max_error),
                           error="wrong result: " + "; ".join(verdict.problems))
    if not inputs:
        inputs.update(random_inputs(kernel, shape, seed=1)[0])
    kernel(**inputs)
    ms = time_launches(kernel, iters)
    return Measurement(candidate.values, True, round(ms, 5),
                       round(flops_of(kernel, shape) / ms / 1e9, 1), registers, spills,
                       max_error=float(verdict.max_error))
