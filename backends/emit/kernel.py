"""The kernel skeleton every CUDA target shares: signature and arguments, the prologue that
places shared memory and declares accumulators, and a rule per IR statement. GEMMs, Reshapes
and copies from global to shared memory go to the target's instruction sets; the other
copies are told apart by their level pair. A statement with no rule is a tlc bug, not silence.
"""
from __future__ import annotations

from tlc import ir
from tlc.passes.online_softmax import online_softmaxes
from tlc.backends.emit import scores, splits, tiles
from tlc.backends.emit.writer import CodeWriter, c_expr, unroll_policy
from tlc.backends.resources import registers
from tlc.backends.schedule import (C_TYPES, SWIZZLE_ALIGNMENT, Pipeline, Schedule, SharedTile,
                                   prefetched_vectors)
from tlc.backends.target import (Argument, KernelSource, LoweringBug, Target, Unsupported,
                                stride_name)


class KernelEmitter(CodeWriter):
    def __init__(self, kernel: ir.Kernel, target: Target, schedule: Schedule):
        super().__init__()
        self.kernel, self.target, self.schedule = kernel, target, schedule
        self.facts, self.shared = schedule.facts, schedule.shared
        self.warps, self.threads = schedule.warps, schedule.threads
        self.layout = target.gemm.layout
        self.loop_stack: list[ir.Loop] = []
        self.declared: set[str] = set()  # C names declared once per kernel (fragments, tiles)
        self.fragment_dtypes: dict[str, ir.DType] = {}  # reshaped tiles: their A fragments' type
        self.emitted: list[tuple[object, int, int]] = []  # (statement, first line, end line)
        self.following: list = []  # the kernel body's statements after the one being emitted
        # cp.async groups issued before a loop and left for its first wait (CpAsync.load_once)
        self.joined_loads: list[str] = []
        # the block's threads: the plan's warps, and a producer warpgroup where the target adds one
        self.block_threads = target.facts.block_threads(self.threads)
        # blocks an SM is asked to hold: one, or two small warp-specialized ones (the
        # checker's register estimate decides, as it did for the plan's limit)
        estimate = registers(self.facts, target, online_softmaxes(kernel))
        self.resident_blocks = target.facts.resident_blocks(
            self.threads, schedule.shared_bytes, estimate.peak if estimate else None)
        self.sync = "__syncthreads();"  # a barrier among the threads that run the statements
        # id of a GEMM -> (lines before it is issued, lines once it is): the copy engine's
        # ordering of warpgroups (isa/tma.py, ping-pong)
        self.turns: dict[int, tuple[list[str], list[str]]] = {}
        # the softmax leaves its output's rescale for later (an MMA into it is in flight)
        self.deferred_rescale = False
        # Multiplies of scores that the Exp after them applies (scores.ScaleFold)
        self.scale_folds = scores.scale_folds(self)
        # vector copies loaded an iteration ahead: id of the Copy -> its loop's last reader
        self.prefetched = prefetched_vectors(kernel)
        self.prefetch_after = {id(reader) for reader in self.prefetched.values()}

    def expr(self, e: ir.Expr, rename: dict | None = None) -> str:
        return c_expr(e, rename)

    def shared_tile(self, name: str, op) -> SharedTile:
        if name not in self.shared:
            raise Unsupported(op, f"`{name}` has no shared tile: this backend reads GEMM "
                              "operands and copies tiles through shared memory",
                              help=f"add `Allocate {name} in shared (...)` and copy `{name}` "
                                   "through it")
        return self.shared[name]

    def smem(self, name: str) -> str:
        """The shared tile of `name` that the current loop iteration reads."""
        tile = self.shared[name]
        staged = any(isinstance(c, ir.Copy) and c.name == name and c.src is ir.Level.GLOBAL
                     for loop in self.loop_stack for c in loop.body)
        return f"({name}_s + tlc_stage * {tile.stage_elements})" if staged and tile.stages > 1 \
            else f"{name}_s"

    def schedule_pipeline(self, loop: ir.Loop) -> Pipeline:
        return next(p for p in self.schedule.pipelines if p.loop_var == loop.var)

    # ---- the kernel ----

    def emit(self) -> tuple[KernelSource, ...]:
        """The kernel, and the combine of its parts where a loop is split."""
        split = self.schedule.split
        arguments = kernel_arguments(self.kernel)
        if split:  # pointers first, as launchers pack them
            tensors = sum(a.kind == "tensor" for a in arguments)
            arguments = arguments[:tensors] + splits.workspace_arguments(self.kernel, split) \
                + arguments[tensors:]
        maps = self.target.copies.tensor_maps(self.kernel, self.schedule)
        if maps:  # after the pointers (a split's workspaces too), which launchers pack first
            pointers = sum(a.kind in ("tensor", "workspace") for a in arguments)
            arguments = arguments[:pointers] + maps + arguments[pointers:]
        self.lines = [f'#include "{self.target.header}"', "",
                      f"// {self.kernel.name}: lowered by tlc for {self.target.arch}",
                      # (threads, 1): one block per SM is enough, so ptxas may use all the
                      # registers the plan was checked for rather than spill to fit two; the
                      # checker counted the same figure (Arch.resident_blocks).
                      f'extern "C" __global__ void __launch_bounds__({self.block_threads}, '
                      f'{self.resident_blocks}) '
                      f"{self.kernel.name}(" + ", ".join(self._parameter(a) for a in arguments)
                      + ") {"]
        self._prologue()
        self.target.copies.emit_body(self)
        self.lines.append("}")
        extents = splits.grid_extents(self.kernel, split)
        main = KernelSource(self.kernel.name, "\n".join(unroll_policy(self.lines)) + "\n",
                            arguments, tuple(c_expr(e) for e in extents), self.block_threads,
                            self.schedule.shared_bytes, extents)
        if not split:
            return (main,)
        return main, splits.combine_kernel(self.kernel, self.target, split)

    def _parameter(self, argument: Argument) -> str:
        if argument.kind == "size":
            return f"const int p_{argument.name}"
        if argument.kind == "scalar":
            return f"const float p_{argument.name}"
        if argument.kind == "stride":
            return f"const {STRIDE_TYPES[argument.dtype]} {argument.name}"
        if argument.kind == "workspace":
            return f"float* __restrict__ {argument.name}_g"
        if argument.kind == "tensormap":  # 128 bytes by value, in the kernel's parameter space
            return f"const __grid_constant__ CUtensorMap {argument.name}"
        const = "" if argument.output else "const "
        return f"{const}{C_TYPES[ir.DType(argument.dtype)]}* __restrict__ {argument.name}_g"

    def _prologue(self) -> None:
        for param in self.kernel.params:
            self.line(f"constexpr int p_{param.name} = {param.value};")
        for axis, index in zip("xyz", self.kernel.grid.indices):
            if axis == "x" and self.schedule.split:
                splits.block_indices(self, self.schedule.split)
            elif axis == "x" and self.target.copies.long_rows_first and \
                    _bounds_a_loop(self.kernel, index):
                # a row tile's key range grows with its index (causal): the GPU starts blocks
                # in blockIdx order, so the longest start first and the short ones fill in
                self.line(f"const int p_{index} = gridDim.x - 1 - blockIdx.x;  // longest first")
            else:
                self.line(f"const int p_{index} = blockIdx.{axis};")
        self.line("const int tlc_warp = threadIdx.x / 32, tlc_lane = threadIdx.x % 32;")
        self.line("const int tlc_group = tlc::fragment_group(tlc_lane), tlc_pair = "
                  "tlc::fragment_pair(tlc_lane);")
        if any(tile.swizzled for tile in self.shared.values()):
            # swizzled tiles sit on 1024-byte boundaries of shared memory itself (the
            # allocation has the slack): align the base at run time
            self.line("extern __shared__ __align__(1024) unsigned char tlc_smem_base[];")
            self.line(f"unsigned char* tlc_smem = tlc_smem_base + (-tlc::smem_address("
                      f"tlc_smem_base) % {SWIZZLE_ALIGNMENT});")
        else:
            self.line("extern __shared__ __align__(16) unsigned char tlc_smem[];")
        for tile in self.shared.values():
            self.line(f"{tile.ctype}* {tile.name}_s = reinterpret_cast<{tile.ctype}*>(tlc_smem + "
                      f"{tile.offset});  // {tile.stages} x {tile.rows} x {tile.cols}, rows "
                      f"{tile.stride} apart")

    def emit_state(self) -> None:
        """The registers the statements keep: accumulators and online-softmax state."""
        for name, gemm in self.schedule.accumulators.items():
            self.line(self.layout.declare(name, self.schedule.warp_tiles(gemm)))
        for name in self.schedule.derived:
            self.line(self.layout.declare(name, self.schedule.tiles_of(name)))
        for name in self.schedule.softmax:
            scores.declare_softmax_state(self, name)

    def emit_statements(self) -> None:
        """Every statement of the kernel body, in order, by its rule."""
        for position, op in enumerate(self.kernel.body):
            self.following = self.kernel.body[position + 1:]
            self.emit_op(op)

    def emit_op(self, op) -> None:
        rule = RULES.get(type(op))
        if rule is None:
            raise TypeError(f"no lowering rule for {type(op).__name__}")  # a tlc bug
        first = len(self.lines)
        try:
            rule(self, op)
            if id(op) in self.prefetch_after:
                scores.prefetch_vectors(self, op)
            self.emitted.append((op, first, len(self.lines)))
        except Unsupported as refusal:
            if refusal.statement is None:
                refusal.statement = op
            raise
        except LoweringBug:
            raise
        except Exception as error:  # a bug of tlc's lowering, located at its statement
            raise LoweringBug(op, error) from error

    def loop_range(self, op: ir.Loop) -> str:
        """Declare the iterations a loop runs (`p_n_start` up to `p_n_stop`) and return the C
        name of its variable: one place for every engine's loop."""
        var = f"p_{op.var}"
        if op.splits is not None:
            splits.loop_range(self, op, var)
        else:
            self.line(f"const int {var}_start = {self.expr(op.start)}, {var}_stop = "
                      f"{self.expr(op.stop)};")
        return var

    # ---- statements ----

    def emit_loop(self, op: ir.Loop) -> None:
        if self.loop_stack:
            scores.restart(self, op)
        scores.first_vectors(self, op)
        self.target.copies.emit_loop(self, op)

    def emit_plain_loop(self, op: ir.Loop) -> None:
        """A loop that copies nothing from global memory."""
        var = self.loop_range(op)
        self.open(f"for (int {var} = {var}_start; {var} < {var}_stop; ++{var})")
        self.loop_stack.append(op)
        for inner in op.body:
            self.emit_op(inner)
        self.loop_stack.pop()
        self.close()

    def emit_copy(self, op: ir.Copy) -> None:
        levels = (op.src, op.dst)
        split = self.schedule.split
        if split and op.name == split.output and op.src is ir.Level.REGISTER:
            splits.store_part(self, op)
        elif split and op.dst is ir.Level.GLOBAL and (
                op.name == split.output or split.lse and op.name == split.lse.name):
            self.line(f"// Copy {op.name} to global: the combine kernel writes it")
        elif levels == (ir.Level.GLOBAL, ir.Level.SHARED):
            if self.loop_stack:
                self.line(f"// Copy {op.name}: issued by the loop's pipeline")
            else:
                self.target.copies.load_once(self, op)
        elif levels == (ir.Level.SHARED, ir.Level.REGISTER):
            if op.name in self.schedule.streamed:
                self.line(f"// Copy {op.name}: streamed into its GEMM one k-step at a time")
            else:
                self.target.gemm.hold_operand(self, op)
        elif levels == (ir.Level.GLOBAL, ir.Level.REGISTER):
            scores.vector_to_registers(self, op)
        elif levels == (ir.Level.REGISTER, ir.Level.GLOBAL) and op.add:
            scores.register_add_to_global(self, op)
        elif levels == (ir.Level.REGISTER, ir.Level.GLOBAL) and op.name in \
                self.schedule.logsumexp:
            scores.logsumexp_to_global(self, op)
        elif levels == (ir.Level.REGISTER, ir.Level.GLOBAL):
            scores.register_to_global(self, op)
        elif levels == (ir.Level.REGISTER, ir.Level.SHARED) and f"{op.name}_frag" in \
                self.declared:
            self._store_fragments(op)
        elif levels == (ir.Level.REGISTER, ir.Level.SHARED):
            scores.register_to_shared(self, op)
        elif levels == (ir.Level.SHARED, ir.Level.GLOBAL):
            tiles.shared_to_global(self, op)
        else:
            raise Unsupported(op, f"Copy from {op.src.value} to {op.dst.value}")


    def _store_fragments(self, op: ir.Copy) -> None:
        """A reshaped tile into shared memory, for every warp to read (the backward pass's P
        and dS): the block waits for it once, where the next such store comes first, before
        anything reads it (P stored before dP's GEMM waits with dS, stored after it)."""
        store = getattr(self.target.gemm, "store_fragments", None)
        if store is None:
            raise Unsupported(op, f"Copy {op.name} from register to shared after a Reshape: "
                              f"not on {self.target.arch}")
        store(self, op)
        body = self.loop_stack[-1].body if self.loop_stack else self.kernel.body
        at = next(i for i, x in enumerate(body) if x is op)
        reshaped = set(self.fragment_dtypes)
        for after in body[at + 1:]:
            if isinstance(after, ir.Reshape):
                reshaped.add(after.name)
            elif isinstance(after, ir.Copy) and (after.src, after.dst) == (
                    ir.Level.REGISTER, ir.Level.SHARED) and after.name in reshaped:
                return  # that store of fragments waits for this one too
            elif isinstance(after, ir.Loop) or _reads_shared(after, op.name):
                break
        self.line(self.sync)


def _reads_shared(op, name: str) -> bool:
    """Whether a statement may read shared tile `name`: a Copy of it out of shared memory, or
    a GEMM taking it (an operand a GEMM streams comes from shared memory); elementwise rules
    work on registers."""
    if isinstance(op, ir.Copy):
        return op.name == name and op.src is ir.Level.SHARED
    return isinstance(op, ir.Gemm) and name in (op.a.name, op.b.name)


def _bounds_a_loop(kernel: ir.Kernel, index: str) -> bool:
    """Whether grid index `index` appears in the bounds of a loop (a causal key range)."""
    return any(index in {sym.name for sym in ir.symbols(bound)} for loop in ir.walk(kernel.body)
               if isinstance(loop, ir.Loop) for bound in (loop.start, loop.stop))


def kernel_arguments(kernel: ir.Kernel) -> tuple[Argument, ...]:
    """Tensors in the plan's order, then scalars, then each runtime size once, then the
    strides of each tensor's dimensions but its last, which is contiguous: a caller's views
    (PyTorch's (B, N, H, D) layout, a slice of a fused QKV) run without a copy."""
    tensors = [Argument(t.name, "tensor", t.dtype.value, t.role == "output")
               for t in kernel.tensors if t.shape]
    scalars = [Argument(t.name, "scalar", t.dtype.value) for t in kernel.tensors
               if not t.shape and t.dtype is not ir.DType.INT32]  # int32 ones are sizes
    sizes = [Argument(name, "size") for name in kernel.size_names]
    # A row's stride is a 32-bit int, which costs fewer registers in the copy loops (a row of
    # 2^31 elements is past any tensor); the outer ones are 64-bit (B · H · N · D can pass 2^31).
    strides = [Argument(stride_name(t.name, dim), "stride",
                        "int32" if dim == len(t.shape) - 2 else "int64", of=t.name, dim=dim)
               for t in kernel.tensors for dim in range(len(t.shape) - 1)]
    return tuple(tensors + scalars + sizes + strides)



STRIDE_TYPES = {"int32": "int", "int64": "long long"}

RULES = {
    ir.Allocate: lambda em, op: None,  # storage is laid out in the prologue, from the whole plan
    ir.Loop: KernelEmitter.emit_loop,
    ir.Copy: KernelEmitter.emit_copy,
    ir.Gemm: lambda em, op: em.target.gemm.emit_gemm(em, op),
    ir.Reshape: lambda em, op: em.target.gemm.emit_reshape(em, op),
    ir.Multiply: scores.multiply,
    ir.Mask: scores.mask,
    ir.Softcap: scores.softcap,
    ir.Alibi: scores.alibi,
    ir.Softmax: scores.softmax,
    ir.Logsumexp: scores.logsumexp,
    ir.Exp: scores.exp,
    ir.Subtract: scores.subtract,
    ir.SoftcapGrad: scores.softcap_grad,
}
