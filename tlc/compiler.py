"""`tlc compile`: a checked plan, lowered by its target's backend, written as CUDA, built by
nvcc where there is one, with a manifest of how to launch it."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from tlc.driver import CheckResult, CompileError, check_source, lowered_of, target_of
from tlc.source import Source

# How far `tlc compile --emit` goes: the checked IR, then the lowering's stages.
EMITS = ("ir", "schedule", "cuda", "ptx", "cubin")

__all__ = ["EMITS", "CompileError", "Compiled", "compile_plan"]


@dataclass
class Compiled:
    check: CheckResult
    files: list[Path] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)
    skipped: str | None = None  # what was not built, and why


def compile_plan(source: Source, arch: str | None, out_dir: str | Path, emit: str = "cubin",
                 cache_dir=None) -> Compiled:
    """Write <kernel>.cu (and .ptx, .cubin, .manifest.json) for a plan into out_dir; with
    emit "ir" or "schedule", the readable IR or the schedule instead."""
    from tlc.backends.lower import schedule
    from tlc.build import BuildError, build, find_nvcc, nvcc_version

    result = check_source(source, arch=arch)
    compiled = Compiled(result)
    if not result.ok:
        return compiled
    lowered = lowered_of(result)
    target = target_of(result)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = result.kernel.name
    if emit == "ir":
        from tlc.irtext import ir_text

        compiled.files.append(_write(out / f"{name}.ir.txt", ir_text(result.kernel)))
        return compiled
    if emit == "schedule":
        compiled.files.append(_write(out / f"{name}.schedule.txt",
                                     schedule(result.kernel, target).text()))
        return compiled
    compiled.files.append(_write(out / f"{name}.cu", lowered.source))
    compiled.files += [_write(out / header.name, header.read_bytes())
                       for header in headers_of(lowered.source)]
    manifest = {"tlc": _version(), "arch": target.arch, **lowered.main.manifest(),
                "kernels": [k.manifest() for k in lowered.kernels],
                "launch": launch_of(result.kernel),
                "source_sha256": hashlib.sha256(lowered.source.encode()).hexdigest()}
    if emit != "cuda":
        nvcc = find_nvcc()
        if nvcc is None:
            compiled.skipped = "nvcc was not found: wrote the .cu only, no .ptx or .cubin"
        else:
            manifest["nvcc"] = nvcc_version(nvcc)
            kinds = ("ptx", "cubin") if emit == "cubin" else ("ptx",)
            for kind in kinds:
                try:
                    built = build(lowered.source, target.arch, output=kind, cache_dir=cache_dir)
                except BuildError as error:
                    raise CompileError(f"{error}\nThis is a tlc bug: a plan that passes tlc check "
                                       "must build. Please report it with the plan.") from None
                compiled.files.append(_write(out / f"{name}.{kind}", built.path.read_bytes()))
                manifest[f"{kind}_cached"] = built.cached
                if kind == "cubin":
                    for index, kernel in enumerate(lowered.kernels):
                        function = built.function(kernel.name)
                        report = {"registers": function.registers,
                                  "spill_stores": function.spill_stores,
                                  "spill_loads": function.spill_loads,
                                  "stack_frame": function.stack_frame}
                        manifest["kernels"][index]["ptxas"] = report
                        if index == 0:  # the plan's kernel, as before a plan had several
                            manifest["ptxas"] = report
    compiled.manifest = manifest
    compiled.files.append(_write(out / f"{name}.manifest.json",
                                 json.dumps(manifest, indent=2) + "\n"))
    return compiled


def _write(path: Path, data) -> Path:
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def _version() -> str:
    from tlc import __version__

    return __version__


def headers_of(source: str) -> list[Path]:
    """The reviewed headers a kernel source includes, with the ones they include, so that the
    .cu written beside them builds on its own (`nvcc -I<folder>`)."""
    import re

    from tlc.build import include_dir

    found, todo = [], re.findall(r'#include "([^"]+)"', source)
    while todo:
        path = include_dir() / todo.pop(0)
        if path.is_file() and path not in found:
            found.append(path)
            todo += re.findall(r'#include "([^"]+)"', path.read_text(encoding="utf-8"))
    return found


def launch_of(kernel) -> dict:
    """What a host program needs to launch the kernel: the params' values, and the grid as
    the plan writes it (over the runtime sizes and those params)."""
    from tlc.passes.facts import text

    return {"params": {p.name: p.value for p in kernel.params},
            "grid": [text(e) for e in kernel.grid.extents],
            "grid_indices": list(kernel.grid.indices)}
