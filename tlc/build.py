"""Building CUDA: nvcc as a subprocess, the ptxas report read back, failures reproducible.

A plan that passes `tlc check` must build; when nvcc or ptxas fails anyway, the error shows
their stderr and the exact command to repeat it, and it is a checker bug to add to the tests.
Builds are cached by the hash of everything that decides their output.
"""
from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path



def include_dir() -> Path:
    """backends/include: the reviewed PTX helpers, shipped as package data of tlc.backends."""
    from importlib import resources

    return Path(str(resources.files("tlc.backends").joinpath("include")))


class BuildError(Exception):
    """nvcc or ptxas failed, or is missing; `command` repeats the failing call."""

    def __init__(self, message: str, command: str = "", stderr: str = ""):
        super().__init__(message)
        self.command, self.stderr = command, stderr

    def __str__(self) -> str:
        text = super().__str__()
        if self.stderr:
            text += "\n" + self.stderr.rstrip()
        if self.command:
            text += f"\nrepeat it with:\n  {self.command}"
        return text


@dataclass(frozen=True)
class FunctionReport:
    """What ptxas says of one kernel: its registers, spills and static shared memory."""

    name: str
    registers: int = 0
    spill_stores: int = 0
    spill_loads: int = 0
    stack_frame: int = 0
    shared_memory: int = 0


@dataclass(frozen=True)
class BuildResult:
    path: Path  # the .cubin or .ptx
    command: str
    functions: tuple[FunctionReport, ...] = field(default=())
    cached: bool = False

    def function(self, name_part: str) -> FunctionReport:
        """The function named `name_part`, else the first whose name holds it (a mangled
        name): a plan's kernel before its combine kernel, whose name extends it."""
        exact = [f for f in self.functions if f.name == name_part]
        return (exact or [f for f in self.functions if name_part in f.name])[0]


def find_nvcc() -> str | None:
    """nvcc on PATH, or under $CUDA_HOME / $CUDA_PATH."""
    found = shutil.which("nvcc")
    if found:
        return found
    for variable in ("CUDA_HOME", "CUDA_PATH"):
        root = os.environ.get(variable)
        if root and os.path.isfile(os.path.join(root, "bin", "nvcc")):
            return os.path.join(root, "bin", "nvcc")
    return None


def find_cuobjdump() -> tuple[str, dict] | None:
    """(cuobjdump, the environment to run it in), from the CUDA toolkit or from the
    nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm wheels (the test extra installs them);
    cuobjdump needs nvdisasm beside it to print SASS."""
    import importlib.util
    import glob

    folders = [os.path.dirname(p) for p in filter(None, (shutil.which("cuobjdump"),))]
    folders += [os.path.join(os.environ[v], "bin") for v in ("CUDA_HOME", "CUDA_PATH")
                if os.environ.get(v)] + ["/usr/local/cuda/bin"]
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations or []) if spec else []:
        folders += sorted(glob.glob(os.path.join(root, "cu*", "bin")), reverse=True)
    for folder in folders:
        tool, disassembler = os.path.join(folder, "cuobjdump"), os.path.join(folder, "nvdisasm")
        if os.access(tool, os.X_OK) and (os.access(disassembler, os.X_OK) or
                                         shutil.which("nvdisasm")):
            environment = dict(os.environ)
            if os.access(disassembler, os.X_OK):
                environment["PATH"] = folder + os.pathsep + environment.get("PATH", "")
            return tool, environment
    return None


def sass(cubin: str | Path) -> str:
    """The SASS of a cubin as cuobjdump prints it; BuildError when there is no cuobjdump."""
    found = find_cuobjdump()
    if found is None:
        raise BuildError("cuobjdump was not found: pip install nvidia-cuda-cuobjdump "
                         "nvidia-cuda-nvdisasm, or put the CUDA toolkit's bin on PATH")
    tool, environment = found
    run = subprocess.run([tool, "-sass", str(cubin)], capture_output=True, text=True,
                         env=environment, check=False)
    if run.returncode != 0:
        raise BuildError(f"cuobjdump failed (exit {run.returncode})",
                         shlex.join([tool, "-sass", str(cubin)]), run.stderr)
    return run.stdout


def nvcc_version(nvcc: str) -> str:
    result = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "unknown"


_ENTRY = re.compile(r"Compiling entry function '([^']+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")


def parse_ptxas(report: str) -> tuple[FunctionReport, ...]:
    """The per-kernel figures of `ptxas -v` output (the formats of CUDA 11 to 13)."""
    functions, current = [], None
    for line in report.splitlines():
        entry = _ENTRY.search(line)
        if entry:
            current = {"name": entry.group(1)}
            functions.append(current)
            continue
        if current is None:
            continue
        frame = _FRAME.search(line)
        if frame:
            current.update(stack_frame=int(frame.group(1)), spill_stores=int(frame.group(2)),
                           spill_loads=int(frame.group(3)))
        used = _USED.search(line)
        if used:
            current["registers"] = int(used.group(1))
            smem = _SMEM.search(line)
            current["shared_memory"] = int(smem.group(1)) if smem else 0
    return tuple(FunctionReport(**f) for f in functions)


def build(source: str, arch: str, output: str = "cubin", flags: tuple[str, ...] = (),
          cache_dir: str | Path | None = None, nvcc: str | None = None) -> BuildResult:
    """Compile CUDA source for arch (`sm_80`) to a cubin, or to PTX for `compute_80`.

    The cache key covers the source, the arch, the output kind, the flags, the headers in
    backends/include and nvcc's version; a hit returns the stored file and report.
    """
    nvcc = nvcc or find_nvcc()
    if nvcc is None:
        raise BuildError("nvcc was not found: install the CUDA toolkit, put nvcc on PATH or set "
                         "CUDA_HOME")
    number = arch.removeprefix("sm_")
    target = [f"-arch=sm_{number}", "-cubin"] if output == "cubin" else \
        [f"-arch=compute_{number}", "--ptx"]
    key = _cache_key(source, arch, output, flags, nvcc_version(nvcc))
    folder = Path(cache_dir) if cache_dir else _default_cache()
    stored = folder / key
    result_path, report_path = stored / f"kernel.{output}", stored / "ptxas.txt"
    if result_path.is_file() and report_path.is_file():
        return BuildResult(result_path, "", parse_ptxas(report_path.read_text()), cached=True)
    with tempfile.TemporaryDirectory(prefix="tlc-build-") as work:
        cu = Path(work) / "kernel.cu"
        cu.write_text(source)
        out = Path(work) / f"kernel.{output}"
        command = [nvcc, *target, "-O3", "-std=c++17", f"-I{include_dir()}", "-Xptxas", "-v",
                   *flags, "-o", str(out), str(cu)]
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        shown = shlex.join(command)
        if run.returncode != 0:
            raise BuildError(f"nvcc failed for {arch} (exit {run.returncode})", shown,
                             run.stderr + run.stdout)
        stored.mkdir(parents=True, exist_ok=True)
        (stored / "kernel.cu").write_text(source)
        report_path.write_text(run.stderr + run.stdout)
        os.replace(out, result_path)
    return BuildResult(result_path, shown, parse_ptxas(report_path.read_text()))


def _cache_key(source, arch, output, flags, version) -> str:
    from tlc import __version__

    digest = hashlib.sha256()
    for part in (__version__, source, arch, output, " ".join(flags), version):
        digest.update(part.encode() + b"\0")
    for header in sorted(include_dir().glob("*.cuh")):
        digest.update(header.name.encode() + header.read_bytes())
    return digest.hexdigest()[:24]


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tlc" / "kernels"
