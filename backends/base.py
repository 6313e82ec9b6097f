"""The Backend: what a target can do, as class attributes, and the entry points a compiler
calls. Shared lowering lives in cuda.py and asks these attributes, never the arch name."""
from __future__ import annotations

from dataclasses import dataclass


class BackendUnsupported(Exception):
    """A plan the checker accepts but this backend cannot lower yet; the message says what."""


@dataclass(frozen=True)
class Lowered:
    """A kernel as CUDA source with what it takes to launch it."""

    name: str
    source: str
    arguments: tuple[tuple[str, str], ...]  # (name, kind): "tensor:fp16", "scalar:fp32", "size"
    grid: tuple[str, ...]  # C expressions over the size arguments
    threads: int
    shared_memory: int  # dynamic shared memory, bytes

    def manifest(self) -> dict:
        return {"kernel": self.name, "arguments": [{"name": n, "kind": k}
                                                    for n, k in self.arguments],
                "grid": list(self.grid), "threads": self.threads,
                "shared_memory": self.shared_memory}


class Backend:
    arch: str = ""
    header: str = ""           # the per-arch PTX helpers the kernel includes
    has_cp_async: bool = False
    mma_shapes: tuple[str, ...] = ()
    # The device helper that does one 16-deep k-step of a 16x8 tile, and the one for a last
    # 8-deep step, per operand dtype (operands always load 16 deep: see tlc_sm75.cuh).
    mma_k16: dict[str, str] = {}
    mma_k8: dict[str, str] = {}
    smem_padding: int = 8      # elements added to each shared row: ldmatrix rows stay 16-byte
                               # aligned and consecutive rows fall in different banks
    # What the lowering covers, checked by `tlc check` (passes/features.py) so that a plan it
    # accepts for a target always compiles for it.
    computes: tuple[str, ...] = ()   # Compute operations with a lowering rule
    warp_columns: int = 1            # warps a GEMM may split its columns over

    def lower(self, kernel) -> Lowered:
        from tlc.backends.cuda import CudaEmitter

        return CudaEmitter(kernel, self).emit()
