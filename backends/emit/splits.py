"""Split-KV: a key loop `with splits N` run by N blocks per output tile, and the kernel that
merges their parts.

Block (m, s) runs iterations [start + s·P, min(stop, start + (s + 1)·P)) of the loop, P the
iterations divided by N rounded up, so the parts tile the range whatever its length (a part
past the end is empty). Each part leaves its rows of O normalised by its own row sum, and its
row log-sum-exp (-inf for a part that saw no key), in fp32 workspaces laid out like O (and
like O's rows) with the split as a leading dimension. The combine kernel, a warp per row of
O, weights part s by exp(lse_s - lse), lse = log Σ exp(lse_s): the softmax over all keys,
since each part's numerator and denominator share its maximum. It writes O in O's dtype and
strides, and the row log-sum-exp where the plan outputs one.
"""
from __future__ import annotations

from dataclasses import dataclass

from tlc import ir
from tlc.backends.emit.writer import c_expr
from tlc.backends.isa.mma_sync import PACK
from tlc.backends.schedule import C_TYPES
from tlc.backends.target import Argument, KernelSource, Unsupported, stride_name
from tlc.passes.splits import split_loops

COMBINE_WARPS = 4  # rows of O a block of the combine merges, a warp each


@dataclass(frozen=True)
class SplitKV:
    """What the schedule decided about a split key loop."""

    loop_var: str
    splits: int
    output: str              # the accumulator whose parts are merged (O)
    scores: str              # whose online softmax gives each part's row sum and maximum
    store: ir.Copy           # the plan's Copy of the output into global memory
    lse: ir.Copy | None      # the plan's Copy of a row log-sum-exp into global memory

    @property
    def part(self) -> str:
        return f"{self.output}_part"

    @property
    def part_lse(self) -> str:
        return f"{self.output}_part_lse"


def split_of(kernel: ir.Kernel, facts, softmax: dict) -> SplitKV | None:
    """The split key loop of a checked kernel, or None when no loop is split."""
    loops = split_loops(kernel)
    if not loops:
        return None
    loop = loops[0]
    owned = [s for s, out in softmax.items() if out and any(
        isinstance(op, ir.Softmax) and op.target == s for op in ir.walk(loop.body))]
    if not owned:
        raise Unsupported(loop, "a split loop without an online softmax")
    scores = owned[0]
    output = softmax[scores]
    stores = [op for op in kernel.body if isinstance(op, ir.Copy) and op.name == output
              and op.dst is ir.Level.GLOBAL]
    if not stores:
        raise Unsupported(loop, f"a split loop whose output `{output}` is never stored")
    vectors = {op.out for op in ir.walk(kernel.body) if isinstance(op, ir.Logsumexp)}
    lse = next((op for op in kernel.body if isinstance(op, ir.Copy) and op.name in vectors
                and op.dst is ir.Level.GLOBAL), None)
    tensor = kernel.tensor(output)
    width = facts.value(tensor.shape[-1])
    if not isinstance(width, int) or width % 2:
        raise Unsupported(stores[0], f"a split output needs an even compile-time row width, "
                          f"not {width}")
    if lse is not None and [c_expr(d) for d in kernel.tensor(lse.name).shape] != \
            [c_expr(d) for d in tensor.shape[:-1]]:
        raise Unsupported(lse, f"the log-sum-exp `{lse.name}` of a split loop needs the rows "
                          f"of `{output}` as its shape")
    return SplitKV(loop.var, facts.value(loop.splits), output, scores, stores[-1], lse)


def workspace_arguments(kernel: ir.Kernel, split: SplitKV) -> tuple[Argument, ...]:
    """The fp32 workspaces of the parts: O's shape and its rows', split-major."""
    shape = kernel.tensor(split.output).shape
    count = ir.Const(split.splits)
    return (Argument(split.part, "workspace", "fp32", shape=(count,) + tuple(shape)),
            Argument(split.part_lse, "workspace", "fp32", shape=(count,) + tuple(shape[:-1])))


def grid_extents(kernel: ir.Kernel, split: SplitKV | None) -> tuple:
    """The main kernel's grid: the plan's, its first extent times the splits."""
    extents = tuple(kernel.grid.extents)
    if split is None:
        return extents
    return (ir.BinOp("*", extents[0], ir.Const(split.splits)),) + extents[1:]


def block_indices(em, split: SplitKV) -> None:
    """The plan's first block index and the split, both from blockIdx.x."""
    first = em.kernel.grid.indices[0]
    em.line(f"const int p_{first} = blockIdx.x / {split.splits}, tlc_split = blockIdx.x % "
            f"{split.splits};")


def loop_range(em, op: ir.Loop, var: str) -> None:
    """This block's part of a split loop's iterations."""
    count = em.schedule.split.splits
    em.line(f"const int {var}_all_start = {em.expr(op.start)}, {var}_all_stop = "
            f"{em.expr(op.stop)};")
    em.line(f"const int tlc_part = max(0, {var}_all_stop - {var}_all_start + {count - 1}) / "
            f"{count};  // iterations a split runs")
    em.line(f"const int {var}_start = {var}_all_start + tlc_split * tlc_part, {var}_stop = "
            f"min({var}_all_stop, {var}_start + tlc_part);")


def _part_strides(shape) -> dict:
    """C strides of a contiguous tensor of `shape` (the workspace laid out like O)."""
    strides, running = {}, "1LL"
    for position in range(len(shape) - 1, 0, -1):
        running = f"{running} * {c_expr(shape[position])}"
        strides[position - 1] = f"({running})"
    return strides


def _rows(shape) -> str:
    return " * ".join(f"(long long){c_expr(d)}" for d in shape[:-1]) or "1LL"


def store_part(em, op: ir.Copy) -> None:
    """The block's part of O (normalised by its own row sum) and the part's row
    log-sum-exp into the workspaces, from the accumulator's fragments."""
    from tlc.backends.emit.tiles import tile_address

    split = em.schedule.split
    tensor = em.kernel.tensor(split.output)
    width = em.facts.value(tensor.shape[-1])
    store = split.store
    if store.tile and len(store.tile) == 2:
        rows, cols = (em.facts.value(d) for d in store.tile)
    else:
        tile = em.shared_tile(split.output, store)
        rows, cols = tile.rows, tile.cols
    if cols != width:
        raise Unsupported(store, f"a split output stored {cols} columns at a time: the parts "
                          f"are stored whole rows ({width}) at a time")
    at = tile_address(em, store, {}, rows, cols, _part_strides(tensor.shape))
    tiles = em.schedule.tiles_of(split.output)
    layout, scores = em.layout, split.scores
    em.block(f"// Copy {split.output}: this split's part (normalised by the keys it saw) and "
             "the part's row log-sum-exp, into the fp32 workspaces the combine merges")
    em.line(f"const long long tlc_rows = {_rows(tensor.shape)};")
    em.line(f"float* tlc_dst = {split.part}_g + (long long)tlc_split * tlc_rows * {width} + "
            f"{at.offset};")
    em.line(f"float* tlc_lse = {split.part_lse}_g + (long long)tlc_split * tlc_rows + "
            f"({at.offset}) / {width};")
    em.line(f"const int tlc_rows_left = {at.row_limit} - {at.first_row};")
    em.open(layout.each_row(tiles))
    em.line(f"const int tlc_row = {layout.row_of_half(tiles)};")
    em.line(f"const float tlc_total = {layout.row_reduce[1]}({scores}_sum[i][h]);")
    em.line("const float tlc_inverse = tlc_total > 0.f ? 1.f / tlc_total : 0.f;")
    em.open("if (tlc_row < tlc_rows_left)")
    first, second = layout.half_elements(f"{split.output}_acc")
    em.line(f"for (int j = 0; j < {tiles.n}; ++j) *reinterpret_cast<float2*>(tlc_dst + "
            f"(long long)tlc_row * {width} + j * 8 + tlc_pair) = make_float2({first} * "
            f"tlc_inverse, {second} * tlc_inverse);")
    em.line(f"if (tlc_pair == 0) tlc_lse[tlc_row] = tlc_total > 0.f ? {scores}_max[i][h] + "
            "logf(tlc_total) : -INFINITY;")
    em.close()
    em.close()
    em.close()


def combine_kernel(kernel: ir.Kernel, target, split: SplitKV) -> KernelSource:
    """The second kernel: a warp per row of O merges the parts by their log-sum-exp."""
    tensor = kernel.tensor(split.output)
    shape, width = tensor.shape, ir.evaluate(tensor.shape[-1],
                                             {p.name: p.value for p in kernel.params})
    lse = kernel.tensor(split.lse.name) if split.lse else None
    sizes = [name for name in kernel.size_names
             if any(isinstance(d, ir.Sym) and d.name == name for d in shape)]
    outputs = [tensor] + ([lse] if lse else [])
    arguments = workspace_arguments(kernel, split) + tuple(
        Argument(t.name, "tensor", t.dtype.value, True) for t in outputs) + tuple(
        Argument(name, "size") for name in sizes) + tuple(
        Argument(stride_name(t.name, dim), "stride",
                 "int32" if dim == len(t.shape) - 2 else "int64", of=t.name, dim=dim)
        for t in outputs for dim in range(len(t.shape) - 1))
    name = f"{kernel.name}_combine"
    types = {"int32": "int", "int64": "long long"}
    parameters = [f"const float* __restrict__ {split.part}_g",
                  f"const float* __restrict__ {split.part_lse}_g"]
    parameters += [f"{C_TYPES[t.dtype]}* __restrict__ {t.name}_g" for t in outputs]
    parameters += [f"const int p_{n}" for n in sizes]
    parameters += [f"const {types[a.dtype]} {a.name}" for a in arguments if a.kind == "stride"]
    rows = _rows(shape)
    per_lane = -(-split.splits // 32)
    vector = 4 if width % 4 == 0 else 2  # columns a lane merges at a time (width is even)
    vector_type = {4: "float4", 2: "float2"}[vector]
    lines = [f"// {name}: merges the {split.splits} split parts of {split.output} by their "
             "log-sum-exp",
             f'extern "C" __global__ void __launch_bounds__({32 * COMBINE_WARPS}) {name}('
             + ", ".join(parameters) + ") {"]
    body = [f"constexpr int p_{p.name} = {p.value};" for p in kernel.params]
    body += [
        f"const long long tlc_rows = {rows};",
        f"const long long tlc_row = (long long)blockIdx.x * {COMBINE_WARPS} + threadIdx.x / 32;",
        "if (tlc_row >= tlc_rows) return;",
        "const int tlc_lane = threadIdx.x % 32;",
        "// lane t holds the log-sum-exp of parts t, t + 32, ...: each is read once, and the",
        "// weights reach the column loop by shuffles, so its loads do not wait on each other",
        f"float tlc_l[{per_lane}], tlc_w[{per_lane}];",
        "float tlc_top = -INFINITY;",
        f"_Pragma(\"unroll\") for (int k = 0; k < {per_lane}; ++k) {{",
        "    const int s = tlc_lane + 32 * k;",
        f"    tlc_l[k] = s < {split.splits} ? {split.part_lse}_g[s * tlc_rows + tlc_row] : -INFINITY;",
        "    tlc_top = fmaxf(tlc_top, tlc_l[k]);",
        "}",
        "tlc_top = tlc::warp_max(tlc_top);",
        "float tlc_total = 0.f;",
        f"_Pragma(\"unroll\") for (int k = 0; k < {per_lane}; ++k) tlc_total += tlc_l[k] == "
        "-INFINITY ? 0.f : __expf(tlc_l[k] - tlc_top);",
        "tlc_total = tlc::warp_sum(tlc_total);",
        "// -inf: no split saw a key, and the row's output is 0",
        "const float tlc_all = tlc_top == -INFINITY ? -INFINITY : tlc_top + __logf(tlc_total);",
        "// a part that saw no key weighs 0 (and its part, all zeros, adds nothing)",
        f"_Pragma(\"unroll\") for (int k = 0; k < {per_lane}; ++k) tlc_w[k] = tlc_l[k] == "
        "-INFINITY ? 0.f : __expf(tlc_l[k] - tlc_all);",
        "long long tlc_rest = tlc_row;",
    ]
    for position in range(len(shape) - 2, -1, -1):
        body.append(f"const long long tlc_i{position} = tlc_rest % {c_expr(shape[position])}; "
                    f"tlc_rest /= {c_expr(shape[position])};")
    offset = " + ".join(f"tlc_i{p} * {stride_name(tensor.name, p)}"
                        for p in range(len(shape) - 1))
    body += [
        "(void)tlc_rest;",
        f"{C_TYPES[tensor.dtype]}* tlc_dst = {tensor.name}_g + {offset};",
        f"const float* tlc_part = {split.part}_g + tlc_row * {width};",
        "// every lane runs every pass (the shuffles need the whole warp); a lane past the",
        "// row's end loads and stores nothing",
        f"for (int tlc_c0 = 0; tlc_c0 < {width}; tlc_c0 += {32 * vector}) {{",
        f"    const int c = tlc_c0 + {vector} * tlc_lane;",
        f"    const bool tlc_live = c < {width};",
        f"    float tlc_x[{vector}] = {{}};",
        f"    _Pragma(\"unroll\") for (int k = 0; k < {per_lane}; ++k) "
        f"_Pragma(\"unroll {min(split.splits, 16)}\") for (int t = 0; t < min(32, {split.splits} - 32 * k); ++t) {{",
        "        const float w = __shfl_sync(0xffffffffu, tlc_w[k], t);  // part 32 k + t's",
        f"        const {vector_type} v = tlc_live ? *reinterpret_cast<const {vector_type}*>("
        f"tlc_part + (long long)(32 * k + t) * tlc_rows * {width} + c) : {vector_type}{{}};",
        "        " + " ".join(f"tlc_x[{e}] += w * v.{f};" for e, f in enumerate("xyzw"[:vector])),
        "    }",
        "    if (!tlc_live) continue;",
    ] + [f"    *reinterpret_cast<uint32_t*>(tlc_dst + c + {e}) = {PACK[tensor.dtype]}("
         f"tlc_x[{e}], tlc_x[{e + 1}]);" for e in range(0, vector, 2)] + [
        "}",
    ]
    if lse is not None:
        at = " + ".join(f"tlc_i{p} * {stride_name(lse.name, p)}" for p in range(len(shape) - 2))
        at = f"{at + ' + ' if at else ''}tlc_i{len(shape) - 2}"
        body.append(f"if (tlc_lane == 0) {lse.name}_g[{at}] = tlc_all;")
    source = "\n".join(lines + ["    " + b for b in body] + ["}"]) + "\n"
    extents = (ir.Call("cdiv", (_rows_expr(shape), ir.Const(COMBINE_WARPS))),)
    return KernelSource(name, source, arguments, tuple(c_expr(e) for e in extents),
                        32 * COMBINE_WARPS, 0, extents)


def _rows_expr(shape) -> ir.Expr:
    rows = shape[0] if len(shape) > 1 else ir.Const(1)
    for dim in shape[1:-1]:
        rows = ir.BinOp("*", rows, dim)
    return rows
