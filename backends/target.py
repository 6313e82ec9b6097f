"""What a lowering target is, and what lowering gives back.

A Target is data: the arch whose limits it is checked against, the header of reviewed PTX
helpers its kernels include, and the instruction-set modules that lower its GEMMs and copies
(backends/isa). Shared emission (backends/emit) asks the target's modules, never its name.
A target with no instruction sets is declared (checked against its limits) but not lowered.

`Lowered` is a list of kernels with typed launch arguments, so one plan can lower to several
kernels (a main kernel and a combine step, a backward pass's kernels).
"""
from __future__ import annotations

from dataclasses import dataclass

from tlc.arch import ARCHS, Arch


class Unsupported(Exception):
    """A plan the target cannot lower: raised by the lowering rule of `statement` (an IR node
    with a span, or None for the whole plan), reported by `tlc check` as backend-unsupported.
    `replace` is an (old, new) word swap inside the statement that fixes it, where one does."""

    def __init__(self, statement, message: str, help: str = "",
                 replace: tuple[str, str] | None = None):
        super().__init__(message)
        self.statement, self.message, self.help, self.replace = statement, message, help, replace


class LoweringBug(Exception):
    """A lowering rule failed other than by refusing: a tlc bug, located at its statement."""

    def __init__(self, statement, error: Exception):
        super().__init__(f"{type(error).__name__}: {error}")
        self.statement, self.error = statement, error


@dataclass(frozen=True)
class Argument:
    """One launch argument of a kernel, in order. kind: "tensor" (a device pointer to `dtype`
    elements), "scalar" (a float), "size" (an int, a runtime dimension), "stride" (elements
    between neighbours along dimension `dim` of tensor `of`, an int32 or int64 as `dtype` says),
    "workspace" (a contiguous scratch buffer of `shape`, IR expressions over the sizes and
    params, that the caller allocates and the kernels of one plan pass along: a split's
    parts), "tensormap" (the TMA descriptor of tensor `of`, copied `box` at a time, by value:
    launchers build it from the tensor's address, shape and strides)."""

    name: str
    kind: str
    dtype: str | None = None
    output: bool = False
    of: str | None = None
    dim: int | None = None
    shape: tuple | None = None
    box: tuple | None = None  # a tensormap's box of `of`, elements innermost first

    def to_json(self) -> dict:
        shown = {"name": self.name, "kind": self.kind}
        if self.dtype:
            shown["dtype"] = self.dtype
        if self.output:
            shown["output"] = True
        if self.of is not None:
            shown.update(of=self.of)
        if self.dim is not None:
            shown.update(dim=self.dim)
        if self.box is not None:
            shown.update(box=list(self.box))
        if self.shape is not None:
            from tlc.passes.facts import text
            shown["shape"] = [text(d) for d in self.shape]
        return shown


def stride_name(tensor: str, dim: int) -> str:
    """The kernel parameter holding the stride of `tensor` along dimension `dim`."""
    return f"{tensor}_stride{dim}"


@dataclass(frozen=True)
class KernelSource:
    """One kernel as CUDA source with what it takes to launch it."""

    name: str
    source: str
    arguments: tuple[Argument, ...]
    grid: tuple[str, ...]   # C expressions over the size arguments and params
    threads: int
    shared_memory: int      # dynamic shared memory, bytes
    extents: tuple = ()     # the grid as IR expressions, what launchers evaluate

    def manifest(self) -> dict:
        return {"kernel": self.name, "arguments": [a.to_json() for a in self.arguments],
                "grid": list(self.grid), "threads": self.threads,
                "shared_memory": self.shared_memory}


@dataclass(frozen=True)
class Lowered:
    """A plan lowered for a target: its kernels, launched in order, all in one source."""

    target: str
    kernels: tuple[KernelSource, ...]

    @property
    def main(self) -> KernelSource:
        return self.kernels[0]

    @property
    def source(self) -> str:
        return "".join(k.source for k in self.kernels)


@dataclass(frozen=True)
class Target:
    arch: str                          # the name in tlc.arch.ARCHS whose limits apply
    header: str | None = None          # backends/include file the kernels include
    gemm: object | None = None         # a GEMM instruction set (backends/isa)
    copies: object | None = None       # a global -> shared copy engine (backends/isa)
    smem_padding: int = 8              # elements added to each shared row (see isa.mma_sync)
    examples: tuple[str, ...] = ()     # example plans prompts show: the first that fits
    note: str = ""                     # for a declared target: what to use meanwhile

    @property
    def facts(self) -> Arch:
        return ARCHS[self.arch]

    @property
    def lowers(self) -> bool:
        return self.gemm is not None and self.copies is not None
