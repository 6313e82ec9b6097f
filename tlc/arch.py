"""Hardware facts per target architecture, as data.

Everything that differs between GPUs and that tlc checks a plan against lives here: shared
memory and register limits, threads, the tensor-core MMA shapes for each input dtype, and the
features a plan may need. The checker, the reports and (later) the backends and LLM prompts all
read this one table; code asks `arch.has_cp_async`, never `arch.name == "sm_75"`.

Sources, cited per field below:
  [CC]  CUDA C++ Programming Guide, "Compute Capabilities", table "Technical Specifications per
        Compute Capability" (shared memory per SM and per block, registers, threads, warp size;
        the 48 KB limit of statically sized shared memory; 1 KB reserved per block on 8.x/9.0).
  [MMA] PTX ISA, "Warp-level Matrix Multiply-Accumulate Instructions", section "mma": the
        "Matrix shape" table and the target ISA notes (m16n8k8 .f16 needs sm_75; m16n8k16
        .f16/.bf16 and m16n8k8 .bf16/.tf32 need sm_80; m16n8k32 .e4m3/.e5m2 needs sm_89).
  [ASYNC] PTX ISA, "Data Movement and Conversion Instructions", cp.async: requires sm_80.
  [LDM] PTX ISA, ldmatrix: requires sm_75.
  [WGMMA] PTX ISA, "Asynchronous Warpgroup Level Matrix Multiply-Accumulate Instructions":
        wgmma.mma_async m64nNk16 for .f16/.bf16, N a multiple of 8 from 8 to 256, issued by a
        warpgroup (4 consecutive warps from a multiple of 4); sm_90a only.
  [MAXNREG] PTX ISA, setmaxnreg: a warpgroup's register count, a multiple of 8 in 24..256.
"""
from __future__ import annotations

from dataclasses import dataclass

from tlc.ir import DType

KIB = 1024


@dataclass(frozen=True)
class MmaShape:
    """One mma.sync shape [MMA]: a warp computes an m×n tile over k, accumulating in fp32."""

    name: str
    m: int
    n: int
    k: int
    # The step a K that is not a multiple of k may end in: m16n8k16 ends in one m16n8k8, which
    # every target with m16n8k16 also has for the same dtypes [MMA].
    last_k: int | None = None

    @property
    def k_step(self) -> int:
        """What K must be a multiple of."""
        return self.last_k or self.k

    @property
    def warpgroup(self) -> bool:
        """A wgmma shape [WGMMA]: four warps issue it together, 16 of its 64 rows each."""
        return self.m == 64

    @property
    def rows_per_warp(self) -> int:
        return 16 if self.warpgroup else self.m

    def extents(self, n: int, k: int, b_transposed: bool) -> tuple[int, int]:
        """(N, K) of a GEMM as this instruction computes it. A warpgroup MMA reads its
        shared operands as tlc's copy engine lays them out, in whole 64-column panels with
        zeros past a row's end (backends/isa/tma.py): an MN-major B (V in P·V) is read a
        whole panel wide, so a head dim that ends inside one is computed to the panel's end;
        where B is K-major (K^T in Q·K^T) both operands' K is a head dim, and a K that ends
        half-way through a 16-deep step ends in those zeros. mma.sync computes what it is
        given."""
        if not self.warpgroup:
            return n, k
        if not b_transposed:
            return -(-n // WGMMA_PANEL) * WGMMA_PANEL, k
        return n, -(-k // self.k) * self.k if k % 8 == 0 else k


M16N8K8 = MmaShape("m16n8k8", 16, 8, 8)
M16N8K16 = MmaShape("m16n8k16", 16, 8, 16, last_k=8)
M16N8K32 = MmaShape("m16n8k32", 16, 8, 32)
# [WGMMA]: the instruction's N is the tile's (or a part of it), so each N has its shape.
WGMMA_PANEL = 64  # 16-bit columns of a 128-byte swizzled row, the unit of a shared operand
WGMMA_SHAPES = tuple(MmaShape(f"m64n{n}k16", 64, n, 16) for n in range(8, 257, 8))
MMA_SHAPES = {shape.name: shape for shape in (M16N8K8, M16N8K16, M16N8K32) + WGMMA_SHAPES}
# [MAXNREG] the producer warpgroup of a warp-specialized kernel keeps this many registers a
# thread, giving the rest of the block's file to the consumers (FlashAttention-3's figure).
PRODUCER_REGISTERS = 24


@dataclass(frozen=True)
class Arch:
    name: str
    family: str
    smem_per_sm: int                # [CC] maximum shared memory per SM
    smem_per_block: int             # [CC] maximum per block, with the dynamic opt-in
    smem_reserved_per_block: int    # [CC] shared memory the system reserves per block
    max_threads_per_sm: int         # [CC]
    max_blocks_per_sm: int          # [CC]
    mma: tuple[tuple[MmaShape, tuple[DType, ...]], ...]  # [MMA] shape -> input dtypes
    has_cp_async: bool              # [ASYNC]
    has_ldmatrix: bool = True       # [LDM]: every target tlc has is sm_75 or newer
    smem_static_per_block: int = 48 * KIB   # [CC] without the opt-in
    regs_per_thread: int = 255      # [CC]
    regs_per_sm: int = 64 * KIB     # [CC] 32-bit registers
    regs_per_block: int = 64 * KIB  # [CC]
    max_threads_per_block: int = 1024  # [CC]
    warp_size: int = 32             # [CC]
    # sm_90a code adds a producer warpgroup (its TMA copies) to the warps a plan names, and
    # moves registers from it to the consumers with setmaxnreg [MAXNREG].
    producer_warps: int = 0
    # Code built for an arch-specific target (sm_90a) runs on that one arch only [PTX ISA,
    # "Target ISA notes"]: the arch of the GPUs it runs on.
    runs_only_on: str | None = None

    def mma_shapes_for(self, dtype: DType) -> tuple[MmaShape, ...]:
        """The MMA shapes whose inputs may be of this dtype, largest k first."""
        shapes = [shape for shape, dtypes in self.mma if dtype in dtypes]
        return tuple(sorted(shapes, key=lambda s: -s.k))

    def block_threads(self, threads: int) -> int:
        """Threads a block runs for a plan whose warps make `threads`: the producer's too."""
        return threads + 32 * self.producer_warps

    def resident_blocks(self, threads: int, shared: int | None, registers: int | None) -> int:
        """Blocks an SM is asked to hold at once (__launch_bounds__' second figure): two where
        a producer warpgroup serves one consumer warpgroup, two blocks' shared memory fits
        and the consumers' estimated `registers` fit in half the file, so that one block's
        first loads and last stores run under the other's GEMMs; else one, and the block may
        have every register. On the H200 at D = 64, causal, N = 1k:
        225 TFLOP/s with three consumer warpgroups, 257 with two, 283 with one and two blocks
        an SM (benchmarks/sm90a_ablation.py, h200-sm90a-blocks.json)."""
        if self.feeds_one_warpgroup(threads) and None not in (shared, registers) and \
                2 * (shared + self.smem_reserved_per_block) <= self.smem_per_sm and \
                registers <= self.register_limit(threads, 2):
            return 2
        return 1

    def feeds_one_warpgroup(self, threads: int) -> bool:
        """Whether a producer warpgroup serves a plan whose warps are one warpgroup."""
        return bool(self.producer_warps) and threads == 4 * self.warp_size

    def _register_pool(self, blocks: int) -> int:
        """The registers one of `blocks` resident blocks may hold."""
        return min(self.regs_per_block, self.regs_per_sm // blocks)

    def moves_registers(self, threads: int, blocks: int = 1) -> bool:
        """Whether a producer warpgroup gives registers to the consumers: there is one, and
        the block's even share of its pool is less than a thread may use."""
        share = self._register_pool(blocks) // self.block_threads(threads) // 8 * 8
        return bool(self.producer_warps) and share < self.regs_per_thread

    def register_limit(self, threads: int, blocks: int = 1) -> int:
        """Registers a thread of the plan's warps may use: the per-thread maximum and the
        block's share of its pool (the file, or half of it for two resident blocks); with a
        producer warpgroup, what is left to the consumers after the producer's
        PRODUCER_REGISTERS, in the multiples of 8 setmaxnreg takes."""
        pool = self._register_pool(blocks)
        if not self.moves_registers(threads, blocks):
            return min(self.regs_per_thread, pool // self.block_threads(threads) // 8 * 8)
        left = pool - PRODUCER_REGISTERS * 32 * self.producer_warps
        return min(self.regs_per_thread, left // threads // 8 * 8)

    @property
    def mma_dtypes(self) -> tuple[DType, ...]:
        """Every input dtype some MMA shape of this arch takes."""
        seen: list[DType] = []
        for _, dtypes in self.mma:
            seen += [d for d in dtypes if d not in seen]
        return tuple(seen)


_F16, _BF16, _TF32 = DType.FP16, DType.BF16, DType.TF32
_FP8 = (DType.FP8E4M3, DType.FP8E5M2)
_AMPERE_MMA = ((M16N8K16, (_F16, _BF16)), (M16N8K8, (_F16, _BF16, _TF32)))

ARCHS: dict[str, Arch] = {arch.name: arch for arch in (
    Arch("sm_75", "Turing", smem_per_sm=64 * KIB, smem_per_block=64 * KIB,
         smem_reserved_per_block=0, max_threads_per_sm=1024, max_blocks_per_sm=16,
         mma=((M16N8K8, (_F16,)),), has_cp_async=False),
    Arch("sm_80", "Ampere", smem_per_sm=164 * KIB, smem_per_block=163 * KIB,
         smem_reserved_per_block=1 * KIB, max_threads_per_sm=2048, max_blocks_per_sm=32,
         mma=_AMPERE_MMA, has_cp_async=True),
    Arch("sm_86", "Ampere (GA10x)", smem_per_sm=100 * KIB, smem_per_block=99 * KIB,
         smem_reserved_per_block=1 * KIB, max_threads_per_sm=1536, max_blocks_per_sm=16,
         mma=_AMPERE_MMA, has_cp_async=True),
    Arch("sm_89", "Ada", smem_per_sm=100 * KIB, smem_per_block=99 * KIB,
         smem_reserved_per_block=1 * KIB, max_threads_per_sm=1536, max_blocks_per_sm=24,
         mma=_AMPERE_MMA + ((M16N8K32, _FP8),), has_cp_async=True),
    Arch("sm_90", "Hopper", smem_per_sm=228 * KIB, smem_per_block=227 * KIB,
         smem_reserved_per_block=1 * KIB, max_threads_per_sm=2048, max_blocks_per_sm=32,
         mma=_AMPERE_MMA + ((M16N8K32, _FP8),), has_cp_async=True),
    # sm_90a is sm_90 with the arch-specific features (wgmma, setmaxnreg) that only code
    # built for exactly sm_90a may use [PTX ISA, "Target ISA notes": sm_90a].
    Arch("sm_90a", "Hopper (sm_90a features)", smem_per_sm=228 * KIB, smem_per_block=227 * KIB,
         smem_reserved_per_block=1 * KIB, max_threads_per_sm=2048, max_blocks_per_sm=32,
         mma=tuple((shape, (_F16, _BF16)) for shape in WGMMA_SHAPES), has_cp_async=True,
         producer_warps=4, runs_only_on="sm_90"),
)}

ARCH_NAMES = tuple(ARCHS)
ARCH_ALIASES = {"turing": "sm_75", "t4": "sm_75", "ampere": "sm_80", "a100": "sm_80",
                "ada": "sm_89", "l4": "sm_89", "hopper": "sm_90", "h100": "sm_90",
                "sm75": "sm_75", "sm80": "sm_80", "sm86": "sm_86", "sm89": "sm_89",
                "sm90": "sm_90", "sm90a": "sm_90a", "h200": "sm_90"}


def suggest_arch(name: str) -> str | None:
    """The arch a mistyped name most likely meant."""
    from tlc.diagnostics import closest

    return ARCH_ALIASES.get(name.lower()) or closest(name, ARCH_NAMES)
