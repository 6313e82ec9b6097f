"""The shared CUDA emitter: every IR statement lowers by its own rule (`emit_<op>`), calling
the reviewed helpers of backends/include; a target's differences come from its Backend's
attributes. An IR node without a rule is an internal error, never silence.

The lowering this version supports, checked by the GPU tests: warps split the rows of every
GEMM (`warps (W, 1)`), 16-bit operands loaded 16 deep along k and multiplied by the
backend's MMA helpers (m16n8k16, or two m16n8k8 on Turing), tiles whose rows are whole rows
of their tensor (the head dimension in one tile), global -> shared copies in 16-byte chunks
(zero-filled past the end of a sequence): by cp.async software-pipelined `stages` deep inside
a loop, or where the target has no cp.async through registers one compute phase ahead
(passes/register_pipeline.py), converting bf16 to fp16 when the plan asks; operands streamed from shared memory by ldmatrix one k-step at a time or held
in registers, online softmax with exp2 and quad reductions, and the accumulator -> A-operand
Reshape. Anything else is refused with BackendUnsupported, saying what.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from tlc import ir
from tlc.backends.base import BackendUnsupported, Lowered
from tlc.passes import register_pipeline
from tlc.passes.facts import Facts, global_load
from tlc.passes.gemm_orientation import gemm_operands

C_TYPES = {ir.DType.FP16: "__half", ir.DType.BF16: "__nv_bfloat16", ir.DType.FP32: "float"}
PACK = {ir.DType.FP16: "tlc::pack_half2", ir.DType.BF16: "tlc::pack_bf162"}
LOG2E = 1.4426950408889634
RESCALE_LOG2 = 8  # how far (in powers of 2) a row's kept maximum may trail its true one


@dataclass(frozen=True)
class TileAddress:
    """C expressions locating a tile of a global tensor."""

    offset: str             # of the tile's first element
    first_row: str          # the tensor row (sequence position) of the tile's first row
    row_limit: str          # rows in the tensor
    length: str             # elements in one tensor row
    cols_left: str | None   # columns before the row's end, where the last chunk of D is short

    def valid(self, row: str, col: str) -> str:
        """Whether the element (row, col) of the tile lies inside the tensor."""
        test = f"{row} < tlc_rows_left"
        return test + (f" && {col} < {self.cols_left}" if self.cols_left else "")


class CudaEmitter:
    def __init__(self, kernel: ir.Kernel, backend):
        self.kernel, self.backend, self.facts = kernel, backend, Facts(kernel)
        warps = self.facts.warps
        if warps is None or warps[1] != 1:
            raise BackendUnsupported(f"warps {warps}: this backend splits GEMM rows over warps "
                                     "only; write `with warps (W, 1)`")
        self.warps = warps[0]
        self.threads = 32 * self.warps
        self.lines: list[str] = []
        self.depth = 1
        self.loop_stack: list[ir.Loop] = []
        self.shared = self._layout_shared()
        self.gemm_of = {}  # accumulator name -> GEMM that produced it
        self.streamed = self._streamed_operands()
        self.online = self._online_softmax()

    # ---- output helpers ----

    def line(self, text: str = "") -> None:
        self.lines.append("    " * self.depth + text if text else "")

    def open(self, text: str) -> None:
        assert "//" not in text, "a comment would swallow the brace: use block()"
        self.line(text + " {")
        self.depth += 1

    def block(self, comment: str) -> None:
        """A `{` scope headed by a comment line."""
        self.line(comment)
        self.line("{")
        self.depth += 1

    def close(self, text: str = "}") -> None:
        self.depth -= 1
        self.line(text)

    def expr(self, e: ir.Expr, rename: dict | None = None) -> str:
        """An IR expression in C (integer arithmetic; float literals stay floats)."""
        rename = rename or {}
        if isinstance(e, ir.Const):
            return repr(float(e.value)) + "f" if isinstance(e.value, float) else str(e.value)
        if isinstance(e, ir.Sym):  # plan names live under p_, apart from tlc's own
            return rename.get(e.name, f"p_{e.name}")
        if isinstance(e, ir.Neg):
            return f"(-{self.expr(e.operand, rename)})"
        if isinstance(e, ir.Call):
            args = ", ".join(self.expr(a, rename) for a in e.args)
            return {"cdiv": "tlc::cdiv", "min": "min", "max": "max", "sqrt": "sqrtf",
                    "rsqrt": "rsqrtf", "log2": "log2f", "exp2": "exp2f"}[e.func] + f"({args})"
        return f"({self.expr(e.left, rename)} {e.op} {self.expr(e.right, rename)})"

    # ---- analysis of the plan ----

    def _layout_shared(self) -> dict:
        """name -> (rows, cols, stride, stages, C type, byte offset) of each shared buffer,
        placed as passes/estimate.py counts them (so the report's figure is the kernel's)."""
        from tlc.passes.estimate import shared_memory

        use = shared_memory(self.facts, self.backend.smem_padding)
        layout, offset = {}, 0
        buffers = {b.name: b for b in self.kernel.buffers if b.level is ir.Level.SHARED}
        for name, size, stages in use.parts:
            buffer, shape = buffers[name], self.facts.shape(buffers[name])
            if len(shape) != 2 or buffer.dtype not in PACK:
                raise BackendUnsupported(f"shared buffer `{name}`: this backend takes 2-D "
                                         "tiles of fp16 or bf16")
            rows, cols = shape
            layout[name] = (rows, cols, cols + self.backend.smem_padding, stages,
                            C_TYPES[buffer.dtype], offset)
            offset += -(-size * stages // 16) * 16
        self.shared_bytes = offset
        assert offset == use.total
        return layout

    def _streamed_operands(self) -> set[str]:
        streamed, loops_of = set(), {}
        for op, loops, _ in self.facts.walk_held():
            loops_of.setdefault(id(op), loops)
            if isinstance(op, ir.Copy) and op.dst is ir.Level.REGISTER:
                for gemm, gloops, _ in self.facts.walk_held():
                    if isinstance(gemm, ir.Gemm) and op.name in (gemm.a.name, gemm.b.name) \
                            and loops and gloops == loops:
                        streamed.add(op.name)
        return streamed

    def _online_softmax(self) -> dict:
        """scores name -> output accumulator its probabilities are multiplied into."""
        pairs = {}
        for op in ir.walk(self.kernel.body):
            if isinstance(op, ir.Gemm) and op.accumulate:
                pairs.setdefault(op.a.name, op.out)
        return pairs

    def gemm_dims(self, gemm: ir.Gemm) -> tuple[int, int, int]:
        shapes = gemm_operands(self.facts, gemm)
        (m, k), (_, n) = shapes
        values = tuple(self.facts.value(d) for d in (m, n, k))
        if not all(isinstance(v, int) for v in values):
            raise BackendUnsupported("GEMM tiles need compile-time shapes")
        return values

    def tiles(self, gemm: ir.Gemm) -> tuple[int, int, int]:
        m, n, k = self.gemm_dims(gemm)
        if gemm.mma not in self.backend.mma_shapes:
            raise BackendUnsupported(f"mma {gemm.mma}: this backend emits "
                                     f"{', '.join(self.backend.mma_shapes)}")
        return m // (self.warps * 16), n // 8, k // 16

    # ---- the kernel ----

    def emit(self) -> Lowered:
        arguments = self._arguments()
        self.lines = [f'#include "{self.backend.header}"', "",
                      f"// {self.kernel.name}: lowered by tlc for {self.backend.arch}",
                      # (threads, 1): one block per SM is enough, so ptxas may use all the
                      # registers the plan was checked for rather than spill to fit two.
                      f'extern "C" __global__ void __launch_bounds__({self.threads}, 1) '
                      f"{self.kernel.name}(" + ", ".join(self._parameter(n, k) for n, k in
                                                        arguments) + ") {"]
        self._prologue()
        for op in self.kernel.body:
            self.emit_op(op)
        self.lines.append("}")
        # Every loop of tlc's own has a compile-time trip count: unrolled, its fragment arrays
        # stay in registers (indexed at run time they would spill to local memory).
        # The copy loop stays rolled: unrolled, its per-chunk addresses would be hoisted out of
        # the key loop and held in registers for all of it.
        self.lines = [re.sub(r"\bfor \(int (?!p_|tlc_c\b)", '_Pragma("unroll") for (int ', line)
                      for line in self.lines]
        self.lines = [line.replace("for (int tlc_c ", '_Pragma("unroll 1") for (int tlc_c ')
                      for line in self.lines]
        grid = tuple(self.expr(e) for e in self.kernel.grid.extents)
        return Lowered(self.kernel.name, "\n".join(self.lines) + "\n", arguments, grid,
                       self.threads, self.shared_bytes)

    def _arguments(self) -> tuple[tuple[str, str], ...]:
        tensors = [(t.name, f"tensor:{t.dtype.value}") for t in self.kernel.tensors if t.shape]
        scalars = [(t.name, f"scalar:{t.dtype.value}") for t in self.kernel.tensors
                   if not t.shape]
        sizes = []
        for tensor in self.kernel.tensors:
            for dim in tensor.shape:
                if isinstance(dim, ir.Sym) and dim.kind is ir.SymKind.SIZE and \
                        (dim.name, "size") not in sizes:
                    sizes.append((dim.name, "size"))
        return tuple(tensors + scalars + sizes)

    def _parameter(self, name: str, kind: str) -> str:
        if kind == "size":
            return f"const int p_{name}"
        dtype = ir.DType(kind.split(":")[1])
        if kind.startswith("scalar"):
            return f"const float p_{name}"
        const = "" if self.kernel.tensor(name).role == "output" else "const "
        return f"{const}{C_TYPES[dtype]}* __restrict__ {name}_g"

    def _prologue(self) -> None:
        for param in self.kernel.params:
            self.line(f"constexpr int p_{param.name} = {param.value};")
        for axis, index in zip("xyz", self.kernel.grid.indices):
            self.line(f"const int p_{index} = blockIdx.{axis};")
        self.line("const int tlc_warp = threadIdx.x / 32, tlc_lane = threadIdx.x % 32;")
        self.line("const int tlc_group = tlc::fragment_group(tlc_lane), tlc_pair = tlc::fragment_pair(tlc_lane);")
        self.line("extern __shared__ __align__(16) unsigned char tlc_smem[];")
        for name, (rows, cols, stride, stages, ctype, offset) in self.shared.items():
            self.line(f"{ctype}* {name}_s = reinterpret_cast<{ctype}*>(tlc_smem + {offset});"
                      f"  // {stages} x {rows} x {cols}, rows {stride} apart")
        for op in ir.walk(self.kernel.body):
            if isinstance(op, ir.Gemm) and op.out not in self.gemm_of:
                self.gemm_of[op.out] = op
                mt, nt, _ = self.tiles(op)
                self.line(f"float {op.out}_acc[{mt}][{nt}][4] = {{}};")
        for scores in self.online:
            if scores in self.gemm_of:
                mt, _, _ = self.tiles(self.gemm_of[scores])
                self.line(f"float {scores}_max[{mt}][2], {scores}_sum[{mt}][2];")
                self.line(f"for (int i = 0; i < {mt}; ++i) for (int h = 0; h < 2; ++h) "
                          f"{{ {scores}_max[i][h] = -INFINITY; {scores}_sum[i][h] = 0.f; }}")

    def emit_op(self, op) -> None:
        method = getattr(self, f"emit_{type(op).__name__.lower()}", None)
        if method is None:
            raise TypeError(f"no lowering rule for {type(op).__name__}")  # a tlc bug
        method(op)

    # ---- statements ----

    def emit_allocate(self, op: ir.Allocate) -> None:
        pass  # storage is laid out in the prologue, from the whole plan

    def emit_loop(self, op: ir.Loop) -> None:
        if self.loop_stack:
            self._reset_online_state(op)
        if not self.backend.has_cp_async and register_pipeline.staged_copies(op):
            self._register_pipeline_loop(op)
            return
        start, stop = self.expr(op.start), self.expr(op.stop)
        staged = [c for c in op.body if isinstance(c, ir.Copy) and c.src is ir.Level.GLOBAL]
        depth = max([self.facts.stages(c.name) for c in staged] or [1])
        var = f"p_{op.var}"
        self.line(f"const int {var}_start = {start}, {var}_stop = {stop};")
        for ahead in range(depth - 1):  # the pipeline's prologue: the first tiles in flight
            self.open(f"if ({var}_start + {ahead} < {var}_stop)")
            self._issue_tiles(staged, f"({var}_start + {ahead})", str(ahead), op.var)
            self.close()
            self.line("tlc::cp_async_commit();")
        self.open(f"for (int {var} = {var}_start; {var} < {var}_stop; ++{var})")
        self.loop_stack.append(op)
        if staged and depth > 1:
            # One barrier an iteration: once block n has landed and every warp is past the
            # barrier, every warp is done with block n - 1, so its stage takes block
            # n + depth - 1 while this block is computed.
            self.line(f"tlc::cp_async_wait<{depth - 2}>();")
            self.line("__syncthreads();")
            self.line(f"const int tlc_stage = ({var} - {var}_start) % {depth};")
            self.line(f"const int tlc_next = {var} + {depth - 1};")
            self.open(f"if (tlc_next < {var}_stop)")
            self._issue_tiles(staged, "tlc_next", f"((tlc_next - {var}_start) % {depth})", op.var)
            self.close()
            self.line("tlc::cp_async_commit();")
        elif staged:  # one stage: load, wait, compute, and wait for every warp before reloading
            self._issue_tiles(staged, var, "0", op.var)
            self.line("tlc::cp_async_commit();")
            self.line("tlc::cp_async_wait<0>();")
            self.line("__syncthreads();")
            self.line("const int tlc_stage = 0;")
        for inner in op.body:
            self.emit_op(inner)
        if staged and depth == 1:
            self.line("__syncthreads();  // the next iteration refills the stage just read")
        self.loop_stack.pop()
        self.close()
        if staged and depth > 1:
            self.line("__syncthreads();  // what follows may refill the stages")

    def _reset_online_state(self, op: ir.Loop) -> None:
        """Zero the accumulators a nested loop adds into and restart their online softmax
        (the prologue did it for a loop that runs once; this one runs once per outer step,
        e.g. per column chunk of a split head dim)."""
        for gemm in op.body:
            if not (isinstance(gemm, ir.Gemm) and gemm.accumulate):
                continue
            mt, nt, _ = self.tiles(gemm)
            self.line(f"// {gemm.out} and the online softmax of {gemm.a.name} start afresh")
            self.line(f"for (int i = 0; i < {mt}; ++i) for (int j = 0; j < {nt}; ++j) "
                      f"for (int e = 0; e < 4; ++e) {gemm.out}_acc[i][j][e] = 0.f;")
            if gemm.a.name in self.gemm_of:
                self.line(f"for (int i = 0; i < {mt}; ++i) for (int h = 0; h < 2; ++h) "
                          f"{{ {gemm.a.name}_max[i][h] = -INFINITY; {gemm.a.name}_sum[i][h] = 0.f; }}")

    def _register_pipeline_loop(self, op: ir.Loop) -> None:
        """A loop whose tiles reach shared memory through registers (no cp.async), on the
        schedule of passes/register_pipeline.py."""
        start, stop = self.expr(op.start), self.expr(op.stop)
        var = f"p_{op.var}"
        groups = register_pipeline.groups(op)
        self.line(f"const int {var}_start = {start}, {var}_stop = {stop};")
        for group in groups:
            for copy in group.copies:
                self.line(f"uint4 {copy.name}_next[{self._chunks(copy.name)}];  // the next "
                          f"{copy.name} tile, on its way to shared memory")
        self.open(f"if ({var}_start < {var}_stop)")
        self._load_group(groups[0], f"{var}_start", op.var)
        self.close()
        self.open(f"for (int {var} = {var}_start; {var} < {var}_stop; ++{var})")
        self.loop_stack.append(op)
        for index in range(len(op.body) + 1):
            for g, group in enumerate(groups):
                if group.store == index:
                    self._store_group(group, groups, g, var, op.var)
            if index < len(op.body):
                self.emit_op(op.body[index])
        self.loop_stack.pop()
        self.close()

    def _store_group(self, group, groups, g: int, var: str, loop_var: str) -> None:
        names = ", ".join(c.name for c in group.copies)
        if group.sync_before_store:
            self.line(f"__syncthreads();  // every warp is done with the {names} tile replaced")
        for copy in group.copies:
            self._store_registers(copy)
        self.line("__syncthreads();")
        if g + 1 < len(groups):
            self._load_group(groups[g + 1], var, loop_var)
        else:
            self.open(f"if ({var} + 1 < {var}_stop)")
            self._load_group(groups[0], f"({var} + 1)", loop_var)
            self.close()

    def _chunks(self, name: str) -> int:
        rows, cols = self.shared[name][:2]
        return register_pipeline.chunks_per_thread(rows, cols, self._bytes(name), self.threads)

    def _bytes(self, name: str) -> int:
        """Bytes of one element of `name` in global memory (what the chunks carry)."""
        return self.kernel.tensor(name).dtype.bytes

    def _load_group(self, group, index: str, loop_var: str) -> None:
        """Issue the global loads of each tile of the group into its registers."""
        for copy in group.copies:
            rows, cols = self.shared[copy.name][:2]
            self.block(f"// Copy {copy.name} ({rows} x {cols}) from global, into registers")
            at = self._global_tile(copy, {loop_var: index})
            row, col, valid = self._chunk(copy.name)
            self.open(f"for (int tlc_v = 0; tlc_v < {self._chunks(copy.name)}; ++tlc_v)")
            self.line(f"const int tlc_r = {row}, tlc_col = {col};")
            self.line(f"const bool tlc_valid = {valid} && {at.valid('tlc_r', 'tlc_col')};")
            # The address is formed for every chunk (compile-time steps from tlc_src) and only
            # the load is predicated: nothing past the end is read.
            self.line(f"{copy.name}_next[tlc_v] = tlc::load_16(tlc_src + (long long)tlc_r * "
                      f"{at.length} + tlc_col, tlc_valid);")
            self.close()
            self.close()

    def _global_tile(self, op: ir.Copy, rename: dict) -> TileAddress:
        """Declare the tile's first element in global memory (tlc_src) and the rows left before
        the end of the sequence (tlc_rows_left)."""
        at = self._tile_address(op, rename)
        self.line(f"const {C_TYPES[self.kernel.tensor(op.name).dtype]}* tlc_src = "
                  f"{op.name}_g + {at.offset};")
        self.line(f"const int tlc_rows_left = {at.row_limit} - {at.first_row};")
        return at

    def _chunk(self, name: str) -> tuple[str, str, str]:
        """C for this thread's chunk tlc_v of a tile: (row, column, whether the block's chunks
        reach it), per passes/register_pipeline.py's distribution."""
        rows, cols = self.shared[name][:2]
        per_row = cols // 8
        per_pass = register_pipeline.rows_per_pass(cols, self._bytes(name), self.threads)
        if per_pass:
            valid = "true" if per_pass * per_row == self.threads else \
                f"threadIdx.x < {per_pass * per_row}"
            if rows % per_pass:
                valid += f" && threadIdx.x / {per_row} + tlc_v * {per_pass} < {rows}"
            return (f"threadIdx.x / {per_row} + tlc_v * {per_pass}",
                    f"(threadIdx.x % {per_row}) * 8", valid)
        chunk = f"(threadIdx.x + tlc_v * {self.threads})"
        valid = "true" if rows * per_row % self.threads == 0 else f"{chunk} < {rows * per_row}"
        return f"{chunk} / {per_row}", f"({chunk} % {per_row}) * 8", valid

    def _store_registers(self, copy: ir.Copy) -> None:
        stride = self.shared[copy.name][2]
        row, col, valid = self._chunk(copy.name)
        self.block(f"// Copy {copy.name} into shared memory{self._converting(copy)}")
        self.open(f"for (int tlc_v = 0; tlc_v < {self._chunks(copy.name)}; ++tlc_v)")
        if valid != "true":
            self.line(f"if (!({valid})) break;")
        self.line(f"*reinterpret_cast<uint4*>({copy.name}_s + ({row}) * {stride} + {col}) = "
                  f"{self._convert(copy, f'{copy.name}_next[tlc_v]')};")
        self.close()
        self.close()

    def _converting(self, copy: ir.Copy) -> str:
        tensor = self.kernel.tensor(copy.name).dtype
        local = self.shared[copy.name][4]
        return f", {tensor.value} to fp16" if C_TYPES[tensor] != local else ""

    def _convert(self, copy: ir.Copy, raw: str) -> str:
        """C for 16 loaded bytes as the shared tile stores them."""
        return f"tlc::bf16x8_to_f16x8({raw})" if self._converting(copy) else raw

    def _load_once(self, op: ir.Copy) -> None:
        """A tile outside any loop, through registers: loaded, stored, made visible."""
        rows, cols, stride = self.shared[op.name][:3]
        self.block(f"// Copy {op.name} ({rows} x {cols}) from global to shared, through registers"
                   f"{self._converting(op)}")
        at = self._global_tile(op, {})
        self.open(f"for (int tlc_c = threadIdx.x; tlc_c < {rows * cols // 8}; tlc_c += {self.threads})")
        self.line(f"const int tlc_r = tlc_c / {cols // 8}, tlc_col = (tlc_c % {cols // 8}) * 8;")
        self.line(f"const bool tlc_valid = {at.valid('tlc_r', 'tlc_col')};")
        self.line(f"const uint4 tlc_raw = tlc::load_16(tlc_src + (tlc_valid ? (long long)tlc_r "
                  f"* {at.length} + tlc_col : 0), tlc_valid);")
        self.line(f"*reinterpret_cast<uint4*>({op.name}_s + tlc_r * {stride} + tlc_col) = "
                  f"{self._convert(op, 'tlc_raw')};")
        self.close()
        self.close()
        self.line("__syncthreads();")

    def emit_copy(self, op: ir.Copy) -> None:
        if op.src is ir.Level.GLOBAL and op.dst is ir.Level.SHARED:
            if self.loop_stack:
                self.line(f"// Copy {op.name}: issued by the loop's pipeline")
                return
            if not self.backend.has_cp_async:
                self._load_once(op)
                return
            self._issue_tiles([op], None, "0", None)
            self.line("tlc::cp_async_commit();")
            self.line("tlc::cp_async_wait<0>();")
            self.line("__syncthreads();")
        elif op.src is ir.Level.SHARED and op.dst is ir.Level.REGISTER:
            if op.name in self.streamed:
                self.line(f"// Copy {op.name}: streamed into its GEMM one k-step at a time")
            else:
                self._hold_operand(op.name)
        elif op.src is ir.Level.REGISTER and op.dst is ir.Level.GLOBAL:
            self._store(op)
        elif op.src is ir.Level.REGISTER and op.dst is ir.Level.SHARED:
            self._stage(op)
        elif op.src is ir.Level.SHARED and op.dst is ir.Level.GLOBAL:
            self._store_rows(op)
        else:
            raise BackendUnsupported(f"Copy from {op.src.value} to {op.dst.value}")

    def _tile_address(self, op: ir.Copy, rename: dict) -> "TileAddress":
        """Where a tile of `op` starts in global memory and where its tensor ends."""
        tensor = self.kernel.tensor(op.name)
        rows, cols = self.shared[op.name][:2]
        shape = tensor.shape
        width = self.facts.value(shape[-1])
        if not isinstance(width, int) or width < cols:
            raise BackendUnsupported(f"Copy {op.name}: a tile's row needs a compile-time width "
                                     "no wider than its tensor's")
        coord = dict(op.coord)
        terms, stride = [], "1LL"
        first_row, cols_left = "0", None
        for position in range(len(shape) - 1, -1, -1):
            dim = shape[position]
            name = dim.name if isinstance(dim, ir.Sym) else None
            index = self.expr(coord[name], rename) if name in coord else "0"
            if position == len(shape) - 2:
                first_row = f"({index}) * {rows}"
                index = first_row
            elif position == len(shape) - 1 and cols < width:
                # A tile holding part of each row (D split into column chunks): its columns
                # past the end of the row read as zeros and are not written.
                index = f"({index}) * {cols}"
                if width % cols:
                    cols_left = f"({width} - {index})"
            if index != "0":
                terms.append(f"(long long)({index}) * {stride}")
            stride = f"{stride} * {self.expr(dim)}"
        offset = " + ".join(terms) or "0"
        return TileAddress(offset, first_row, self.expr(shape[-2]), self.expr(shape[-1]),
                           cols_left)

    def _issue_tiles(self, copies, index: str | None, stage: str, var: str | None) -> None:
        for op in copies:
            rows, cols, stride, stages, ctype, _ = self.shared[op.name]
            rename = {var: index} if var else {}
            at = self._tile_address(op, rename)
            self.block(f"// Copy {op.name} ({rows} x {cols}) from global to shared")
            self.line(f"{ctype}* tlc_dst = {op.name}_s + ({stage}) * {rows * stride};")
            self.line(f"const {ctype}* tlc_src = {op.name}_g + {at.offset};")
            self.line(f"const int tlc_rows_left = {at.row_limit} - {at.first_row};")
            per_row = cols // 8  # 16-byte chunks in a row of the tile
            if self.threads % per_row == 0 and rows * per_row % self.threads == 0:
                self._copy_passes(op, at, per_row, stride)
                self.close()
                continue
            self.open(f"for (int tlc_c = threadIdx.x; tlc_c < {rows * cols // 8}; tlc_c += {self.threads})")
            self.line(f"const int tlc_r = tlc_c / {cols // 8}, tlc_col = (tlc_c % {cols // 8}) * 8;")
            self.line(f"const bool tlc_valid = {at.valid('tlc_r', 'tlc_col')};")
            self.line(f"tlc::cp_async_16(tlc::smem_address(tlc_dst + tlc_r * {stride} + tlc_col), "
                      f"tlc_src + (tlc_valid ? (long long)tlc_r * {at.length} + tlc_col : 0), tlc_valid);")
            self.close()
            self.close()

    def _copy_passes(self, op: ir.Copy, at: TileAddress, per_row: int, stride: int) -> None:
        """A tile whose chunks the block's threads cover in whole passes: each thread keeps one
        column and a first row, and pass t adds a compile-time row offset, so every cp.async
        addresses [register + immediate] and no per-chunk index arithmetic remains."""
        rows_per_pass = self.threads // per_row
        passes = self.shared[op.name][0] * per_row // self.threads
        element = 2  # shared tiles are fp16 or bf16 (_layout_shared)
        self.line(f"const int tlc_r0 = threadIdx.x / {per_row}, tlc_col = (threadIdx.x % {per_row}) * 8;")
        self.line(f"const auto* tlc_from = tlc_src + (long long)tlc_r0 * {at.length} + tlc_col;")
        self.line(f"const uint32_t tlc_to = tlc::smem_address(tlc_dst + tlc_r0 * {stride} + tlc_col);")
        self.open(f"for (int tlc_t = 0; tlc_t < {passes}; ++tlc_t)")
        self.line(f"const bool tlc_valid = {at.valid(f'tlc_r0 + tlc_t * {rows_per_pass}', 'tlc_col')};")
        self.line(f"tlc::cp_async_16(tlc_to + tlc_t * {rows_per_pass * stride * element}, tlc_valid ? "
                  f"tlc_from + (long long)tlc_t * {rows_per_pass} * {at.length} : tlc_src, tlc_valid);")
        self.close()

    def _smem(self, name: str) -> str:
        """The shared tile of `name` that the current loop iteration reads."""
        rows, _, stride, stages, _, _ = self.shared[name]
        staged = any(isinstance(c, ir.Copy) and c.name == name and c.src is ir.Level.GLOBAL
                     for loop in self.loop_stack for c in loop.body)
        return f"({name}_s + tlc_stage * {rows * stride})" if staged and stages > 1 \
            else f"{name}_s"

    def _hold_operand(self, name: str) -> None:
        gemm = next(g for g in self.facts.gemms if g.a.name == name)
        if gemm.b.name == name:
            raise BackendUnsupported(f"holding `{name}` as a B operand in registers")
        mt, _, kt = self.tiles(gemm)
        tail = self.k_tail(gemm)
        stride = self.shared[name][2]
        self.line(f"uint32_t {name}_frag[{mt}][{kt + tail}][4];")
        self.block(f"// Copy {name} from shared to register, held whole")
        self.line(f"const uint32_t tlc_base = tlc::smem_address({self._smem(name)}) + "
                  f"((tlc_warp * {mt * 16} + tlc_lane % 16) * {stride} + (tlc_lane / 16) * 8) * 2;")
        self.line(f"for (int i = 0; i < {mt}; ++i) for (int kk = 0; kk < {kt}; ++kk) "
                  f"tlc::ldmatrix_x4({name}_frag[i][kk], tlc_base + (i * {16 * stride} + kk * 16) * 2);")
        if tail:  # the last 8 columns: two 8x8 matrices, rows 0-7 and 8-15 (lanes 16-31 idle)
            self.line(f"for (int i = 0; i < {mt}; ++i) tlc::ldmatrix_x2(*reinterpret_cast<uint32_t"
                      f"(*)[2]>({name}_frag[i][{kt}]), tlc::smem_address({self._smem(name)}) + "
                      f"((tlc_warp * {mt * 16} + i * 16 + tlc_lane % 16) * {stride} + {kt * 16}) * 2);")
        self.close()

    def k_tail(self, gemm: ir.Gemm) -> int:
        """1 when the GEMM's K leaves 8 after its 16-deep steps: one m16n8k8 step ends it."""
        return 1 if self.gemm_dims(gemm)[2] % 16 == 8 else 0

    def emit_gemm(self, op: ir.Gemm) -> None:
        if op.a.transposed:
            raise BackendUnsupported("a transposed A operand")
        mt, nt, kt = self.tiles(op)
        a_dtype = self._operand_dtype(op.a.name)
        self.block(f"// Compute GEMM {op.a.name}, {op.b.name}{'^T' if op.b.transposed else ''} "
                  f"{'accumulating into' if op.accumulate else 'into'} {op.out}")
        if not op.accumulate:
            self.line(f"for (int i = 0; i < {mt}; ++i) for (int j = 0; j < {nt}; ++j) "
                      f"for (int e = 0; e < 4; ++e) {op.out}_acc[i][j][e] = 0.f;")
        self._operand_bases(op, mt)
        self.open(f"for (int kk = 0; kk < {kt}; ++kk)")
        self._a_fragments(op, mt)
        self._b_fragments_and_mma(op, mt, nt, self._mma(self.backend.mma_k16, a_dtype))
        self.close()
        if self.k_tail(op):
            self._k8_tail(op, mt, nt, kt, self._mma(self.backend.mma_k8, a_dtype))
        self.close()

    def _mma(self, helpers: dict[str, str], dtype: ir.DType) -> str:
        if dtype.value not in helpers:
            raise BackendUnsupported(f"{self.backend.arch} tensor cores do not take "
                                     f"{dtype.value} operands")
        return helpers[dtype.value]

    def _k8_tail(self, op: ir.Gemm, mt: int, nt: int, kt: int, mma: str) -> None:
        """The last 8 of K with m16n8k8: A is the first half of an m16n8k16 A fragment, B one
        8x8 matrix per n-tile (ldmatrix.x2: lanes 8-15 repeat lanes 0-7)."""
        self.block("// the last 8 of K: one m16n8k8 step")
        name = op.a.name
        if name in self.streamed:
            stride = self.shared[name][2]
            self.line(f"uint32_t a[{mt}][2];")
            self.line(f"for (int i = 0; i < {mt}; ++i) tlc::ldmatrix_x2(a[i], tlc::smem_address("
                      f"{self._smem(name)}) + ((tlc_warp * {mt * 16} + i * 16 + tlc_lane % 16) * "
                      f"{stride} + {kt * 16}) * 2);")
        else:
            self.line(f"uint32_t a[{mt}][2];")
            self.line(f"for (int i = 0; i < {mt}; ++i) {{ a[i][0] = {name}_frag[i][{kt}][0]; "
                      f"a[i][1] = {name}_frag[i][{kt}][1]; }}")
        stride = self.shared[op.b.name][2]
        if op.b.transposed:  # rows are n: row j*8 + lane % 8, the columns from kt*16
            where = f"((j * 8 + tlc_lane % 8) * {stride} + {kt * 16}) * 2"
            load = "tlc::ldmatrix_x2"
        else:  # rows are k: row kt*16 + lane % 8, the columns of n-tile j
            where = f"(({kt * 16} + tlc_lane % 8) * {stride} + j * 8) * 2"
            load = "tlc::ldmatrix_x2_trans"
        self.open(f"for (int j = 0; j < {nt}; ++j)")
        self.line("uint32_t b[2];")
        self.line(f"{load}(b, tlc::smem_address({self._smem(op.b.name)}) + {where});")
        self.line("const uint32_t tlc_b0[1] = {b[0]};")
        self.line(f"for (int i = 0; i < {mt}; ++i) {mma}({op.out}_acc[i][j], a[i], "
                  f"tlc_b0, {op.out}_acc[i][j]);")
        self.close()
        self.close()

    def _operand_dtype(self, name: str) -> ir.DType:
        for buffer in self.kernel.buffers:
            if buffer.name == name and buffer.dtype in PACK:
                return buffer.dtype
        for op in ir.walk(self.kernel.body):
            if isinstance(op, ir.Reshape) and op.name == name and op.dtype in PACK:
                return op.dtype
        raise BackendUnsupported(f"`{name}`: GEMM operands are fp16 or bf16")

    def _a_fragments(self, op: ir.Gemm, mt: int) -> None:
        name = op.a.name
        if name in self.streamed:
            stride = self.shared[name][2]
            self.line(f"uint32_t a[{mt}][4];")
            self.line(f"for (int i = 0; i < {mt}; ++i) tlc::ldmatrix_x4(a[i], tlc_a_base + "
                      f"(i * {16 * stride} + kk * 16) * 2);")
            self.line("#define TLC_A(i) a[i]")
        else:  # held whole in registers, or re-viewed by a Reshape
            self.line(f"#define TLC_A(i) {name}_frag[i][kk]")

    def _operand_bases(self, op: ir.Gemm, mt: int) -> None:
        """32-bit shared addresses of this lane's first ldmatrix row, once per GEMM: the
        k-steps and tiles then add compile-time byte offsets (cheaper than 64-bit pointers)."""
        if op.a.name in self.streamed:
            stride = self.shared[op.a.name][2]
            self.line(f"const uint32_t tlc_a_base = tlc::smem_address({self._smem(op.a.name)}) + "
                      f"((tlc_warp * {mt * 16} + tlc_lane % 16) * {stride} + (tlc_lane / 16) * 8) * 2;")
        stride = self.shared[op.b.name][2]
        if op.b.transposed:  # stored (N, K): rows are n, read as they are
            lane = f"((tlc_lane / 16) * 8 + tlc_lane % 8) * {stride} + ((tlc_lane / 8) % 2) * 8"
        else:  # stored (K, N): rows are k, read transposed
            lane = f"(((tlc_lane / 8) % 2) * 8 + tlc_lane % 8) * {stride} + (tlc_lane / 16) * 8"
        self.line(f"const uint32_t tlc_b_base = tlc::smem_address({self._smem(op.b.name)}) + "
                  f"({lane}) * 2;")

    def _b_fragments_and_mma(self, op: ir.Gemm, mt: int, nt: int, mma: str) -> None:
        name = op.b.name
        if name not in self.shared:
            raise BackendUnsupported(f"B operand `{name}` without a shared tile")
        stride = self.shared[name][2]
        # Byte offset of n-tile j at k-step kk from this lane's first row.
        step = f"(j * {8 * stride} + kk * 16) * 2" if op.b.transposed else \
            f"(kk * {16 * stride} + j * 8) * 2"
        load = "tlc::ldmatrix_x4" if op.b.transposed else "tlc::ldmatrix_x4_trans"
        self.open(f"for (int j = 0; j + 1 < {nt}; j += 2)")
        self.line("uint32_t b[4];")
        self.line(f"{load}(b, tlc_b_base + {step});")
        self.line("const uint32_t tlc_b0[2] = {b[0], b[1]}, tlc_b1[2] = {b[2], b[3]};")
        self.open(f"for (int i = 0; i < {mt}; ++i)")
        self.line(f"{mma}({op.out}_acc[i][j], TLC_A(i), tlc_b0, {op.out}_acc[i][j]);")
        self.line(f"{mma}({op.out}_acc[i][j + 1], TLC_A(i), tlc_b1, {op.out}_acc[i][j + 1]);")
        self.close()
        self.close()
        if nt % 2:  # the odd last n-tile: two 8x8 matrices; lanes 16-31 repeat lanes 0-15
            self.block("// the odd last n-tile")
            self.line(f"const int j = {nt - 1};")
            self.line("uint32_t b[2];")
            self.line(f"{load.replace('x4', 'x2')}(b, tlc_b_base + {step});")
            self.line(f"for (int i = 0; i < {mt}; ++i) {mma}({op.out}_acc[i][j], "
                      f"TLC_A(i), b, {op.out}_acc[i][j]);")
            self.close()
        self.line("#undef TLC_A")

    # ---- elementwise work on the scores ----

    def _each_score(self, name: str, body: str) -> None:
        """Run `body` for every accumulator element of `name`, with tlc_row/tlc_col in the tile."""
        mt, nt, _ = self.tiles(self.gemm_of[name])
        self.open(f"for (int i = 0; i < {mt}; ++i) for (int j = 0; j < {nt}; ++j) "
                  "for (int e = 0; e < 4; ++e)")
        self.line(f"float& x = {name}_acc[i][j][e];")
        self.line(f"const int tlc_row = tlc_warp * {mt * 16} + i * 16 + tlc_group + (e / 2) * 8;")
        self.line("const int tlc_col = j * 8 + tlc_pair + (e % 2);")
        self.line(body)
        self.close()

    def emit_multiply(self, op: ir.Multiply) -> None:
        factor = op.b
        if isinstance(factor, ir.Ref):  # a scalar argument is named like a tensor
            tensor = self.kernel.tensor(factor.name)
            if tensor is None or tensor.shape:
                raise BackendUnsupported("Multiply by a tile")
            factor = ir.Sym(factor.name, ir.SymKind.SCALAR)
        if not isinstance(op.a, ir.Ref) or op.out != op.a.name:
            raise BackendUnsupported("Multiply of a tile by a scalar, in place, only")
        self.line(f"// Compute Multiply {op.a.name} by a scalar")
        self._each_score(op.a.name, f"x *= (float)({self.expr(factor)}); (void)tlc_row; (void)tlc_col;")

    def _score_origin(self, name: str):
        """C expressions: (first query tlc_row, query count, first tlc_key, tlc_key count) of a score
        tile, from the copies that brought its GEMM's operands."""
        gemm = self.gemm_of[name]
        origin = []
        for operand in (gemm.a.name, gemm.b.name):
            at = self._tile_address(global_load(self.kernel.body, operand), {})
            origin += [at.first_row, at.row_limit]
        return origin

    def emit_mask(self, op: ir.Mask) -> None:
        q0, nq, k0, nk = self._score_origin(op.target)
        mt, nt, _ = self.tiles(self.gemm_of[op.target])
        rows, keys = self.warps * mt * 16, nt * 8
        tests, needed = [], []
        diagonal = f"(({q0}) + tlc_row + {nk} - {nq})"
        # The whole tile's extremes decide whether any element of it is hidden: a tile left of
        # every row's diagonal (and inside every window) skips the per-element work.
        first, last = f"(({q0}) + {nk} - {nq})", f"(({q0}) + {rows - 1} + {nk} - {nq})"
        if op.causal:
            tests.append(f"tlc_key > {diagonal}")
            needed.append(f"({k0}) + {keys - 1} > {first}")
        if op.window is not None:
            left, right = (self.expr(w) for w in op.window)
            tests += [f"tlc_key < {diagonal} - ({left})", f"tlc_key > {diagonal} + ({right})"]
            needed += [f"({k0}) < {last} - ({left})", f"({k0}) + {keys - 1} > {first} + ({right})"]
        self.line(f"// Compute Mask {op.target}, on the tiles that cross a boundary")
        self.open(f"if ({' || '.join(needed)})")
        self._each_score(op.target, f"const int tlc_key = ({k0}) + tlc_col; "
                                    f"if ({' || '.join(tests)}) x = -INFINITY;")
        self.close()

    def emit_softcap(self, op: ir.Softcap) -> None:
        cap = self.expr(op.cap)
        self.block(f"// Compute Softcap {op.target}: cap * tanh(s / cap)")
        self.line(f"const float tlc_cap = (float)({cap}), tlc_inverse_cap = 1.f / tlc_cap;")
        self._each_score(op.target, "x = tlc::softcap(x, tlc_cap, tlc_inverse_cap); "
                                    "(void)tlc_row; (void)tlc_col;")
        self.close()

    def emit_alibi(self, op: ir.Alibi) -> None:
        if op.out != op.target:
            raise BackendUnsupported("ALiBi in place only: `and get new S`")
        q0, nq, k0, nk = self._score_origin(op.target)
        head = self._slope_index(op)
        self.block(f"// Compute ALiBi {op.target}: minus slope * distance from the diagonal")
        self.line(f"const float tlc_slope = {op.slopes}_g[{head}];")
        self._each_score(op.target, f"x -= tlc_slope * (float)abs(({q0}) + tlc_row + {nk} - "
                                    f"{nq} - (({k0}) + tlc_col));")
        self.close()

    def _slope_index(self, op: ir.Alibi) -> str:
        """C for the query head whose slope applies: the coordinate that the copy of the scores'
        query operand gives the slopes' one dimension (`H = h`)."""
        dim = self.kernel.tensor(op.slopes).shape[0]
        query = self.gemm_of[op.target].a.name
        coord = dict(global_load(self.kernel.body, query).coord)
        if not isinstance(dim, ir.Sym) or dim.name not in coord:
            raise BackendUnsupported(f"ALiBi slopes ({dim}): the copy of `{query}` names no "
                                     f"{dim} in its coordinate")
        return self.expr(coord[dim.name])

    def emit_softmax(self, op: ir.Softmax) -> None:
        name = op.target
        out = self.online.get(name)
        mt, nt, _ = self.tiles(self.gemm_of[name])
        _, _, k0, nk = self._score_origin(name)
        out_nt = self.tiles(self.gemm_of[out])[1] if out in self.gemm_of else 0
        self.block(f"// Compute Softmax {name}: online, rescaling {out} when a row's maximum grows "
                   f"past 2^{RESCALE_LOG2}")
        keys = nt * 8
        self.line("// the last key tile: hide the keys past the end")
        self.open(f"if (({k0}) + {keys} > {nk})")
        self._each_score(name, f"if (({k0}) + tlc_col >= {nk}) x = -INFINITY; (void)tlc_row;")
        self.close()
        # A row keeps the maximum it has until a block's scores exceed it by more than
        # 2^RESCALE_LOG2 (in exp2 units): its exponentials then stay below 2^RESCALE_LOG2,
        # which fp16 and bf16 hold at full relative precision, and O and the sum are rescaled
        # only when some row of the warp moves, a branch the whole warp takes or skips. The
        # result is the same softmax: numerator and denominator share whichever maximum is
        # kept. After the first few blocks a row's maximum rarely moves that far, so most
        # iterations skip the multiply of every O accumulator.
        self.line(f"float tlc_keep[{mt}][2]; bool tlc_moves = false;")
        self.open(f"for (int i = 0; i < {mt}; ++i) for (int h = 0; h < 2; ++h)")
        self.line("float tlc_top = -INFINITY;")
        self.line(f"for (int j = 0; j < {nt}; ++j) tlc_top = fmaxf(tlc_top, fmaxf({name}_acc[i][j][2 * h],"
                  f" {name}_acc[i][j][2 * h + 1]));")
        self.line("tlc_top = tlc::quad_max(tlc_top);")
        self.line("// from -inf (nothing seen yet) any finite maximum moves; -inf to -inf (a row "
                  "all masked so far) gives NaN > x, false")
        self.line(f"const bool tlc_up = (tlc_top - {name}_max[i][h]) * {LOG2E}f > {RESCALE_LOG2}.f;")
        self.line(f"tlc_keep[i][h] = tlc_up ? tlc_top : {name}_max[i][h];")
        self.line("tlc_moves |= tlc_up;")
        self.close()
        self.open("if (__any_sync(0xffffffffu, tlc_moves))")
        self.open(f"for (int i = 0; i < {mt}; ++i) for (int h = 0; h < 2; ++h)")
        self.line(f"const float tlc_alpha = tlc_keep[i][h] == {name}_max[i][h] ? 1.f : "
                  f"tlc::exp2_approx(({name}_max[i][h] - tlc_keep[i][h]) * {LOG2E}f);")
        self.line(f"{name}_sum[i][h] *= tlc_alpha;")
        self.line(f"{name}_max[i][h] = tlc_keep[i][h];")
        if out_nt:
            self.line(f"for (int j = 0; j < {out_nt}; ++j) {{ {out}_acc[i][j][2 * h] *= tlc_alpha; "
                      f"{out}_acc[i][j][2 * h + 1] *= tlc_alpha; }}")
        self.close()
        self.close()
        self.open(f"for (int i = 0; i < {mt}; ++i) for (int h = 0; h < 2; ++h)")
        self.line(f"const float tlc_base = {name}_max[i][h] == -INFINITY ? 0.f : "
                  f"{name}_max[i][h] * {LOG2E}f;")
        self.line("float tlc_sum = 0.f;")
        self.open(f"for (int j = 0; j < {nt}; ++j) for (int e = 2 * h; e < 2 * h + 2; ++e)")
        self.line(f"float& x = {name}_acc[i][j][e];")
        self.line(f"x = tlc::exp2_approx(x * {LOG2E}f - tlc_base);")
        self.line("tlc_sum += x;")
        self.close()
        self.line(f"{name}_sum[i][h] += tlc_sum;")
        self.close()
        self.close()

    def emit_reshape(self, op: ir.Reshape) -> None:
        role = op.dst[0].name if op.dst and isinstance(op.dst[0], ir.Sym) else None
        if role != "MMA_A" or op.dtype not in PACK:
            raise BackendUnsupported("Reshape to MMA_A fp16 or bf16 only")
        mt, nt, _ = self.tiles(self.gemm_of[op.name])
        pack = PACK[op.dtype]
        self.line(f"// Reshape {op.name}: accumulator pairs of n-tiles become A fragments")
        self.line(f"uint32_t {op.name}_frag[{mt}][{(nt + 1) // 2}][4];")
        self.open(f"for (int i = 0; i < {mt}; ++i) for (int kk = 0; kk < {nt // 2}; ++kk)")
        acc = f"{op.name}_acc[i]"
        self.line(f"{op.name}_frag[i][kk][0] = {pack}({acc}[2 * kk][0], {acc}[2 * kk][1]);")
        self.line(f"{op.name}_frag[i][kk][1] = {pack}({acc}[2 * kk][2], {acc}[2 * kk][3]);")
        self.line(f"{op.name}_frag[i][kk][2] = {pack}({acc}[2 * kk + 1][0], {acc}[2 * kk + 1][1]);")
        self.line(f"{op.name}_frag[i][kk][3] = {pack}({acc}[2 * kk + 1][2], {acc}[2 * kk + 1][3]);")
        self.close()
        if nt % 2:  # an odd last n-tile is the first half of an A fragment: a k8 step's A
            last = nt - 1
            self.line(f"for (int i = 0; i < {mt}; ++i) {{ {op.name}_frag[i][{nt // 2}][0] = "
                      f"{pack}({acc}[{last}][0], {acc}[{last}][1]); {op.name}_frag[i][{nt // 2}][1]"
                      f" = {pack}({acc}[{last}][2], {acc}[{last}][3]); }}")

    def _store(self, op: ir.Copy) -> None:
        """Accumulator fragments straight into global memory (4 bytes a thread; a plan that
        stages the tile through shared memory gets coalesced 16-byte stores instead)."""
        tensor = self.kernel.tensor(op.name)
        if op.name not in self.gemm_of or tensor.dtype not in PACK:
            raise BackendUnsupported(f"store of `{op.name}`: an accumulator into fp16 or bf16")
        mt, nt, _ = self.tiles(self.gemm_of[op.name])
        at = self._register_tile_address(op)
        self.block(f"// Copy {op.name} from register to global")
        self.line(f"{C_TYPES[tensor.dtype]}* tlc_dst = {op.name}_g + {at.offset};")
        self.line(f"const int tlc_rows_left = {at.row_limit} - {at.first_row};")
        columns = f" if (j * 8 < {at.cols_left})" if at.cols_left else ""
        self._normalised_rows(op, mt, f"if (tlc_row < tlc_rows_left) for (int j = 0; j < {nt}; "
                              f"++j){columns} *reinterpret_cast<uint32_t*>(tlc_dst + (long long)"
                              f"tlc_row * {at.length} + j * 8 + tlc_pair) = {PACK[tensor.dtype]}("
                              f"{op.name}_acc[i][j][2 * h] * tlc_inverse, "
                              f"{op.name}_acc[i][j][2 * h + 1] * tlc_inverse);")
        self.close()

    def _normalised_rows(self, op: ir.Copy, mt: int, write: str) -> None:
        """For each accumulator row this thread holds: the online softmax's division by the
        row sum (when `op.name` is its output), then `write` for each n-tile."""
        scores = next((s for s, o in self.online.items() if o == op.name), None)
        self.open(f"for (int i = 0; i < {mt}; ++i) for (int h = 0; h < 2; ++h)")
        self.line(f"const int tlc_row = tlc_warp * {mt * 16} + i * 16 + tlc_group + h * 8;")
        if scores:
            self.line(f"const float tlc_total = tlc::quad_sum({scores}_sum[i][h]);")
            self.line("const float tlc_inverse = tlc_total > 0.f ? 1.f / tlc_total : 0.f;")
        else:
            self.line("const float tlc_inverse = 1.f;")
        self.line(write)
        self.close()

    def _stage(self, op: ir.Copy) -> None:
        """Accumulator fragments into a shared tile (converting), for a coalesced store."""
        buffer = next(b for b in self.kernel.buffers if b.name == op.name and
                      b.level is ir.Level.SHARED)
        if op.name not in self.gemm_of or buffer.dtype not in PACK:
            raise BackendUnsupported(f"Copy {op.name} from register to shared: an accumulator "
                                     "into an fp16 or bf16 tile")
        mt, nt, _ = self.tiles(self.gemm_of[op.name])
        stride = self.shared[op.name][2]
        pack = PACK[buffer.dtype]
        self.block(f"// Copy {op.name} from register to shared")
        self._normalised_rows(op, mt, f"for (int j = 0; j < {nt}; ++j) *reinterpret_cast<"
                              f"uint32_t*>({op.name}_s + tlc_row * {stride} + j * 8 + tlc_pair) = "
                              f"{pack}({op.name}_acc[i][j][2 * h] * tlc_inverse, "
                              f"{op.name}_acc[i][j][2 * h + 1] * tlc_inverse);")
        self.close()
        self.line("__syncthreads();")

    def _store_rows(self, op: ir.Copy) -> None:
        """A shared tile into global memory, 16 bytes a thread along each row: coalesced."""
        rows, cols, stride, _, ctype, _ = self.shared[op.name]
        at = self._tile_address(op, {})
        self.block(f"// Copy {op.name} ({rows} x {cols}) from shared to global")
        self.line(f"{ctype}* tlc_dst = {op.name}_g + {at.offset};")
        self.line(f"const int tlc_rows_left = {at.row_limit} - {at.first_row};")
        self.open(f"for (int tlc_c = threadIdx.x; tlc_c < {rows * cols // 8}; "
                  f"tlc_c += {self.threads})")
        self.line(f"const int tlc_r = tlc_c / {cols // 8}, tlc_col = (tlc_c % {cols // 8}) * 8;")
        self.line(f"if ({at.valid('tlc_r', 'tlc_col')}) *reinterpret_cast<int4*>(tlc_dst + "
                  f"(long long)tlc_r * {at.length} + tlc_col) = *reinterpret_cast<const int4*>("
                  f"{op.name}_s + tlc_r * {stride} + tlc_col);")
        self.close()
        self.close()
        if self.loop_stack:  # the next iteration stages its tile over this one
            self.line("__syncthreads();")

    def _register_tile_address(self, op: ir.Copy) -> TileAddress:
        rows, cols = (self.facts.value(d) for d in op.tile) if op.tile and len(op.tile) == 2 \
            else (None, None)
        if not isinstance(rows, int) or not isinstance(cols, int):
            raise BackendUnsupported(f"store of `{op.name}` needs a compile-time tile shape")
        self.shared[op.name] = (rows, cols, 0, 1, "", 0)
        try:
            return self._tile_address(op, {})
        finally:
            del self.shared[op.name]
