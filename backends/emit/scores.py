"""The score rules: scale, mask, softcap, ALiBi, online softmax with its rescale, and the
normalised store of the output, written against the fragment layout of the target's GEMM
instruction set (which element of an accumulator a thread holds, its row and column)."""
from __future__ import annotations

from dataclasses import dataclass

from tlc import ir
from tlc.backends.emit.tiles import register_tile_address, shared_tile_address, vector_address
from tlc.backends.isa.mma_sync import PACK, fragment_element
from tlc.backends.schedule import C_TYPES
from tlc.backends.target import Unsupported
from tlc.passes.facts import global_load, register_reads, register_writes

LOG2E = 1.4426950408889634
RESCALE_LOG2 = 8  # how far (in powers of 2) a row's kept maximum may trail its true one


def _each_score(em, name: str, body: str) -> None:
    """Run `body` for every accumulator element of `name`, with tlc_row/tlc_col in the tile."""
    layout, tiles = em.layout, _tiles(em, name)
    em.open(layout.each_element(tiles))
    em.line(f"float& x = {name}_acc[i][j][e];")
    em.line(f"const int tlc_row = {layout.row(tiles)};")
    em.line(f"const int tlc_col = {layout.col(tiles)};")
    em.line(body)
    em.close()


def _tiles(em, name: str):
    if not em.schedule.in_registers(name):
        raise Unsupported(None, f"`{name}` is not a GEMM's result: the score rules work on an "
                          "accumulator in registers")
    return em.schedule.tiles_of(name)


def _stored_tiles(em, name: str) -> int:
    """The n-tiles of accumulator `name` that hold its columns: all of them but the zero
    columns of whole panels that wgmma accumulates past a head dim (isa/wgmma.py)."""
    tiles = _tiles(em, name)
    buffer = em.facts.buffers.get((name, ir.Level.REGISTER))
    shape = em.facts.shape(buffer) if buffer else ()
    columns = shape[-1] if shape else None
    return min(tiles.n, -(-columns // 8)) if isinstance(columns, int) else tiles.n


def multiply(em, op: ir.Multiply) -> None:
    if isinstance(op.b, ir.Ref) and em.schedule.in_registers(op.b.name):
        return _tile_by_tile(em, op, "*")
    factor = _scalar(em, op.b)
    if factor is None:
        raise Unsupported(op, "Multiply by a tile")
    if not isinstance(op.a, ir.Ref) or op.out != op.a.name:
        raise Unsupported(op, "Multiply of a tile by a scalar, in place, only",
                          help=f"write `and get new {op.a.name}`"
                          if isinstance(op.a, ir.Ref) else "")
    fold = em.scale_folds.get(id(op))
    if fold is not None:
        where = "below" if isinstance(fold.into, ir.Exp) else "above"
        em.line(f"// Compute Multiply {op.a.name} by a scalar: in the FFMA of the "
                f"{type(fold.into).__name__} {where}")
        return
    em.line(f"// Compute Multiply {op.a.name} by a scalar")
    _each_score(em, op.a.name, f"x *= (float)({em.expr(factor)}); (void)tlc_row; (void)tlc_col;")


def _tile_by_tile(em, op, operator: str) -> None:
    """out = a (op) b, element by element, for two tiles of one accumulator layout."""
    a, b = op.a.name, op.b.name
    if em.schedule.tiles_of(a) != em.schedule.tiles_of(b):
        raise Unsupported(op, f"`{a}` and `{b}` are laid out as different GEMMs' results")
    if op.out in em.fragment_dtypes:
        raise Unsupported(op, f"`{op.out}` was reshaped into A fragments before this line: "
                          "a new tile, not it, takes the result")
    em.line(f"// Compute {type(op).__name__} {a}, {b} and get {op.out}")
    _each_score(em, op.out, f"x = {_element(em, a)} {operator} {_element(em, b)}; "
                            "(void)tlc_row; (void)tlc_col;")


def _element(em, name: str) -> str:
    """Element [i][j][e] of tile `name` as a float: its accumulator's, or where a Reshape has
    packed it, the rounded value its fragment holds (the accumulator is dead by then)."""
    dtype = em.fragment_dtypes.get(name)
    return f"{name}_acc[i][j][e]" if dtype is None else fragment_element(name, dtype)


def _from(em, op, source: str) -> str:
    """The C accumulator an elementwise rule reads: `source`'s, where the result is a new
    tile (written whole by the rule, so `x` starts as the source element)."""
    return "" if op.out == source else f"x = {source}_acc[i][j][e]; "


def subtract(em, op: ir.Subtract) -> None:
    """out = a - b: b a tile of a's layout, a per-row vector (the backward pass's Delta)
    or a scalar."""
    if not isinstance(op.a, ir.Ref) or not em.schedule.in_registers(op.a.name):
        raise Unsupported(op, "Subtract from a GEMM's result in registers only")
    b = op.b
    if isinstance(b, ir.Ref) and em.schedule.in_registers(b.name):
        return _tile_by_tile(em, op, "-")
    if isinstance(b, ir.Ref) and f"{b.name}_row" in em.declared:
        term = f"{b.name}_row[i][e / 2]"
    elif isinstance(b, ir.Ref):
        tensor = em.kernel.tensor(b.name)
        if tensor is None or tensor.shape:
            raise Unsupported(op, f"Subtract `{b.name}`: a tile, a per-row vector loaded "
                              "into registers, or a scalar")
        term = f"(float)({em.expr(ir.Sym(b.name, ir.SymKind.SCALAR))})"
    else:
        term = f"(float)({em.expr(b)})"
    fold = em.scale_folds.get(id(op))
    scaled = "" if fold is None else f", times {em.expr(fold.factor)} (a Multiply below)"
    em.line(f"// Compute Subtract {op.a.name}, {em.expr(b) if not isinstance(b, ir.Ref) else b.name}"
            f" and get {op.out}{scaled}")
    if fold is None:
        rule = f"x -= {term};"
    else:
        factor = f"(float)({em.expr(fold.factor)})"
        rule = f"x = fmaf(x, {factor}, -{term} * {factor});"
    _each_score(em, op.out, f"{_from(em, op, op.a.name)}{rule} (void)tlc_row; (void)tlc_col;")


@dataclass(frozen=True)
class ScaleFold:
    """A tile's multiply by a scalar done by an FFMA the kernel issues anyway, one instruction
    an element fewer:
    - scores read only by the Exp after them (the backward's `Multiply S, scale` then
      `Exp S, L`): the Exp's exp2(s * scale * log2 e - L * log2 e). The Masks between the two
      zero the probabilities once the Exp has written them, where they would hide the scores
      before it: the same, as exp(-inf - L) is 0, whatever the scalar's sign;
    - a product of tiles, one of them a Subtract's by a row vector or scalar that nothing else
      reads (the backward's dS = P * (dP - Delta), then `Multiply dS, scale`): the Subtract's
      dP * scale - Delta * scale, as P * (dP - Delta) * scale is P * (dP * scale - Delta * scale).
    """
    factor: ir.Expr
    into: object  # the statement that applies the factor: an Exp or a Subtract
    masks: tuple[ir.Mask, ...] = ()


def scale_folds(em) -> dict[int, ScaleFold]:
    """id of each statement a fold covers (its Multiply, the statement that applies the
    factor, the Masks between) -> the fold."""
    folds: dict[int, ScaleFold] = {}
    statements = list(ir.walk(em.kernel.body))

    def read_elsewhere(name: str, covered: set[int]) -> bool:
        return any(name in register_reads(other) for other in statements
                   if id(other) not in covered)

    for body in [em.kernel.body] + [op.body for op in statements if isinstance(op, ir.Loop)]:
        for position, op in enumerate(body):
            factor = _scalar_factor(em, op)
            if factor is None:
                continue
            fold = _into_exp(op, factor, body[position + 1:], read_elsewhere) or \
                _into_subtract(em, op, factor, body[:position], read_elsewhere)
            if fold is not None:
                covered = (op, fold.into) + fold.masks
                folds.update(dict.fromkeys(map(id, covered), fold))
    return folds


def _into_exp(op, factor, after, read_elsewhere) -> ScaleFold | None:
    scores, after = op.out, list(after)
    masks = []
    while after and isinstance(after[0], ir.Mask) and after[0].target == scores:
        masks.append(after.pop(0))
    if not after or not isinstance(after[0], ir.Exp) or after[0].target != scores:
        return None
    exp = after[0]
    if exp.out != scores and read_elsewhere(scores, {id(op), id(exp), *map(id, masks)}):
        return None  # the scaled scores are read again: they stay in registers
    return ScaleFold(factor, exp, tuple(masks))


def _into_subtract(em, op, factor, before, read_elsewhere) -> ScaleFold | None:
    tile = op.out
    writers = [i for i, other in enumerate(before) if tile in register_writes(other)]
    if not writers:
        return None
    product = before[writers[-1]]
    if not isinstance(product, ir.Multiply) or not all(
            isinstance(r, ir.Ref) and em.schedule.in_registers(r.name)
            for r in (product.a, product.b)):
        return None
    if any(tile in register_reads(other) for other in before[writers[-1] + 1:]):
        return None  # something reads the product before it is scaled
    for operand in (product.a.name, product.b.name):
        sources = [other for other in before[:writers[-1]] if operand in register_writes(other)]
        source = sources[-1] if sources else None
        if isinstance(source, ir.Subtract) and source.out == operand and not (
                isinstance(source.b, ir.Ref) and em.schedule.in_registers(source.b.name)) \
                and not read_elsewhere(operand, {id(source), id(product)}):
            return ScaleFold(factor, source)
    return None


def _scalar_factor(em, op) -> ir.Expr | None:
    """The scalar an in-place Multiply of a register tile applies, or None."""
    if not isinstance(op, ir.Multiply) or not isinstance(op.a, ir.Ref) or op.out != op.a.name \
            or not em.schedule.in_registers(op.a.name):
        return None
    return _scalar(em, op.b)


def _scalar(em, factor) -> ir.Expr | None:
    """A Multiply's factor as a scalar expression (a scalar argument is named like a tensor),
    or None where it is a tile."""
    if not isinstance(factor, ir.Ref):
        return factor
    tensor = em.kernel.tensor(factor.name)
    if em.schedule.in_registers(factor.name) or tensor is None or tensor.shape:
        return None
    return ir.Sym(factor.name, ir.SymKind.SCALAR)


def exp(em, op: ir.Exp) -> None:
    """out = exp(scores - vector[row]), the probabilities of a softmax whose row
    log-sum-exp is the vector: 0 for a hidden score, a key past the end, a query row past the
    end and a row whose log-sum-exp is -inf (it saw no key). An element takes one FFMA and
    one exp2: each row's term (vector[row] * log2 e, or +inf for a row that takes none) is
    worked out once, and only a key tile that crosses the end of the keys tests columns,
    after the exp2s."""
    if f"{op.vector}_row" not in em.declared:
        raise Unsupported(op, f"Exp {op.target}, {op.vector}: the per-row vector is copied "
                          "into registers first",
                          help=f"add `Copy {op.vector} (...) in coordinate [...] from global to "
                               "register` before this line")
    q0, nq, k0, nk = _score_origin(em, op.target)
    tiles, layout = _tiles(em, op.out), em.layout
    fold = em.scale_folds.get(id(op))
    em.block(f"// Compute Exp {op.target}, {op.vector} and get {op.out}")
    em.line(f"const int tlc_keys_left = {nk} - ({k0}), tlc_queries_left = {nq} - ({q0});")
    factor = f"{LOG2E}f" if fold is None else f"(float)({em.expr(fold.factor)}) * {LOG2E}f"
    em.line(f"const float tlc_log2_factor = {factor};")
    em.line(f"{layout.row_state('tlc_row_term', tiles)};")
    em.open(layout.each_row(tiles))
    em.line(f"const int tlc_row = {layout.row_of_half(tiles)};")
    em.line(f"const float tlc_l = {op.vector}_row[i][h];")
    em.line(f"tlc_row_term[i][h] = tlc_row < tlc_queries_left && tlc_l != -INFINITY ? "
            f"tlc_l * {LOG2E}f : INFINITY;")
    em.close()
    value = (f"tlc::exp2_approx(fmaf({op.target}_acc[i][j][e], tlc_log2_factor, "
             "-tlc_row_term[i][e / 2]))")
    # every element, with no branch between the Exp and the GEMM whose scores it reads, so
    # that ptxas issues each exp2 as soon as its score is done, under the GEMM's last MMAs
    em.line(f"{layout.each_element(tiles)} {op.out}_acc[i][j][e] = {value};")
    # then, on the one key tile that crosses the end of the keys, those past it (their
    # scores come from zero-filled keys, whatever their exp2 made of them) become 0
    em.open(f"if (tlc_keys_left < {tiles.cols})")
    _each_score(em, op.out, "if (tlc_col >= tlc_keys_left) x = 0.f; (void)tlc_row;")
    em.close()
    for hidden in fold.masks if fold else ():
        _hide(em, hidden, op.out, "0.f")
    em.close()


def softcap_grad(em, op: ir.SoftcapGrad) -> None:
    """out = gradient * (1 - (scores / cap)^2), scores the capped ones: 0 where a score is
    hidden (-inf), whatever the gradient holds there."""
    for name in (op.gradient, op.scores):
        if not em.schedule.in_registers(name):
            raise Unsupported(op, f"SoftcapGrad: `{name}` is not a tile in registers")
    em.block(f"// Compute SoftcapGrad {op.gradient}, {op.scores} and get {op.out}")
    em.line(f"const float tlc_inverse_cap = 1.f / (float)({em.expr(op.cap)});")
    _each_score(em, op.out, f"const float tlc_t = {op.scores}_acc[i][j][e] * tlc_inverse_cap; "
                            f"{_from(em, op, op.gradient)}x = tlc_t == -INFINITY ? 0.f : "
                            "x * (1.f - tlc_t * tlc_t); (void)tlc_row; (void)tlc_col;")
    em.close()


def vector_to_registers(em, op: ir.Copy) -> None:
    """A per-row vector (the forward's log-sum-exp, Delta) from global memory into the rows
    of the accumulator layout that reads it: each thread loads the rows it holds; a row past
    the end reads 0 (the rules that read the vector hide those rows). A vector the schedule
    prefetches was loaded before its loop for the first iteration and by prefetch_vectors
    for the others."""
    rows = _vector_rows(em, op)
    if id(op) in em.prefetched:
        em.line(f"// Copy {op.name} from global to register: loaded an iteration ahead")
        return
    tiles = _tiles(em, rows)
    if f"{op.name}_row" in em.declared:
        raise Unsupported(op, f"`{op.name}` is copied into registers twice",
                          help=f"keep one `Copy {op.name} ... from global to register`, where "
                               "its rows change (in the loop over query tiles)")
    em.declared.add(f"{op.name}_row")
    em.line(f"{em.layout.row_state(f'{op.name}_row', tiles)};")
    _load_vector(em, op, tiles, {}, f"// Copy {op.name} from global to register, the rows of "
                 f"{rows}")


def _vector_rows(em, op: ir.Copy) -> str:
    """The tile in registers whose rows a vector copy's elements are: that of the Exp or
    the Subtract that reads it."""
    reader = next((r for r in ir.walk(em.kernel.body)
                   if isinstance(r, ir.Exp) and r.vector == op.name
                   or isinstance(r, ir.Subtract) and isinstance(r.b, ir.Ref)
                   and r.b.name == op.name), None)
    tiles_name = None if reader is None else reader.target if isinstance(reader, ir.Exp) \
        else reader.a.name
    if tiles_name is None or not em.schedule.in_registers(tiles_name):
        raise Unsupported(op, f"Copy {op.name} from global to register: a per-row vector read "
                          "by an Exp or a Subtract of a GEMM's result")
    if em.kernel.tensor(op.name).dtype is not ir.DType.FP32:
        raise Unsupported(op, f"`{op.name}`: a per-row vector is fp32")
    return tiles_name


def first_vectors(em, loop: ir.Loop) -> None:
    """Before a loop: the rows of its first iteration of each vector it prefetches
    (schedule.prefetched_vectors), in registers declared here, outside the loop that
    carries them from one iteration into the next."""
    for op in loop.body:
        if id(op) not in em.prefetched:
            continue
        rows = _vector_rows(em, op)
        tiles = _tiles(em, rows)
        em.declared.add(f"{op.name}_row")
        em.line(f"{em.layout.row_state(f'{op.name}_row', tiles)};  // loaded an iteration "
                "ahead")
        first = f"({em.expr(loop.start)})"
        _load_vector(em, op, tiles, {loop.var: first}, f"// Copy {op.name} from global to "
                     f"register for the loop's first iteration, the rows of {rows}",
                     f"{first} < {em.expr(loop.stop)}")


def prefetch_vectors(em, reader) -> None:
    """After the last reader of prefetched vectors in its loop's body: their rows for the
    loop's next iteration, predicated rather than branched around (no branch splits the
    statements ptxas schedules together)."""
    loop = em.loop_stack[-1] if em.loop_stack else None
    for op in loop.body if loop else ():
        if em.prefetched.get(id(op)) is reader:
            var = f"p_{loop.var}"
            _load_vector(em, op, _tiles(em, _vector_rows(em, op)), {loop.var: f"({var} + 1)"},
                         f"// Copy {op.name} for the next iteration (its last reader is done)",
                         f"{var} + 1 < {var}_stop")


def _load_vector(em, op: ir.Copy, tiles, rename: dict, comment: str,
                 when: str | None = None) -> None:
    """Each row of `{op.name}_row` this thread holds from global memory (0 past the end,
    and everywhere unless `when`)."""
    at = vector_address(em, op, rename)
    em.block(comment)
    em.line(f"const float* tlc_src = {op.name}_g + {at.offset};")
    em.line(f"const int tlc_rows_left = {at.row_limit} - {at.first_row};")
    if when:
        em.line(f"const bool tlc_load = {when};")
    em.open(em.layout.each_row(tiles))
    em.line(f"const int tlc_row = {em.layout.row_of_half(tiles)};")
    em.line(f"{op.name}_row[i][h] = {'tlc_load && ' if when else ''}tlc_row < tlc_rows_left ? "
            "tlc_src[tlc_row] : 0.f;")
    em.close()
    em.close()


def register_add_to_global(em, op: ir.Copy) -> None:
    """`with add`: an accumulator added into an fp32 tensor by reductions, a thread's two
    neighbouring columns at a time (tlc::add_pair: one 8-byte reduction where the GPU has it),
    as blocks of other key tiles add into the same rows; nothing past the tensor's end."""
    tensor = em.kernel.tensor(op.name)
    if not em.schedule.in_registers(op.name) or tensor.dtype is not ir.DType.FP32:
        raise Unsupported(op, f"`Copy {op.name} ... with add`: an accumulator into fp32")
    stored = _stored_tiles(em, op.name)
    at = register_tile_address(em, op)
    tiles = _tiles(em, op.name)
    em.block(f"// Copy {op.name} from register to global with add")
    em.line(f"float* tlc_dst = {op.name}_g + {at.offset};")
    em.line(f"const int tlc_rows_left = {at.row_limit} - {at.first_row};")
    column = em.layout.pair_col(tiles)
    columns = f" && {column} < {at.cols_left}" if at.cols_left else ""
    first, second = em.layout.half_elements(f"{op.name}_acc")
    # the loops twice, so that neither tests the pairs' alignment (a constant in each)
    for aligned in ("true", "false"):
        em.open(f"if (tlc::pair_reductions(tlc_dst, {at.row_stride}))" if aligned == "true"
                else "else")
        em.open(em.layout.each_row(tiles))
        em.line(f"const int tlc_row = {em.layout.row_of_half(tiles)};")
        em.open(f"if (tlc_row < tlc_rows_left) for (int j = 0; j < {stored}; ++j)")
        em.line(f"float* tlc_at = tlc_dst + (long long)tlc_row * {at.row_stride} + {column};")
        em.line(f"if (true{columns}) tlc::add_pair(tlc_at, {first}, {second}, {aligned});")
        em.close()
        em.close()
        em.close()
    em.close()


def _score_origin(em, name: str) -> tuple[str, str, str, str]:
    """C expressions: (first query row, query count, first key, key count) of a score tile,
    from the copies that brought its GEMM's operands."""
    gemm = em.schedule.accumulators[em.schedule.source_of(name)]
    origin = []
    for operand in (gemm.a.name, gemm.b.name):
        copy = global_load(em.kernel.body, operand)
        if copy is None:
            raise Unsupported(gemm, f"`{operand}` is not loaded from global memory: the score "
                              "rules place a tile by the copy that brought it")
        at = shared_tile_address(em, copy, {})
        origin += [at.first_row, at.row_limit]
    return tuple(origin)


def mask(em, op: ir.Mask) -> None:
    if id(op) in em.scale_folds:
        em.line(f"// Compute Mask {op.target}: on the probabilities, after the Exp below")
        return
    _hide(em, op, op.target, "-INFINITY")


def _hide(em, op: ir.Mask, tile: str, hidden: str) -> None:
    """Set the elements of `tile` (laid out as op.target's scores) that `op` hides to
    `hidden`: -inf in the scores, or 0 in the probabilities an Exp made of them."""
    q0, nq, k0, nk = _score_origin(em, op.target)
    tiles = _tiles(em, op.target)
    rows, keys = tiles.rows, tiles.cols
    tests, needed = [], []
    diagonal = f"(({q0}) + tlc_row + {nk} - {nq})"
    # The whole tile's extremes decide whether any element of it is hidden: a tile left of
    # every row's diagonal (and inside every window) skips the per-element work.
    first, last = f"(({q0}) + {nk} - {nq})", f"(({q0}) + {rows - 1} + {nk} - {nq})"
    if op.causal:
        tests.append(f"tlc_key > {diagonal}")
        needed.append(f"({k0}) + {keys - 1} > {first}")
    if op.window is not None:
        left, right = (em.expr(w) for w in op.window)
        tests += [f"tlc_key < {diagonal} - ({left})", f"tlc_key > {diagonal} + ({right})"]
        needed += [f"({k0}) < {last} - ({left})", f"({k0}) + {keys - 1} > {first} + ({right})"]
    where = "" if tile == op.target else f" (on {tile})"
    em.line(f"// Compute Mask {op.target}{where}, on the tiles that cross a boundary")
    em.open(f"if ({' || '.join(needed)})")
    _each_score(em, tile, f"const int tlc_key = ({k0}) + tlc_col; "
                          f"if ({' || '.join(tests)}) x = {hidden};")
    em.close()


def softcap(em, op: ir.Softcap) -> None:
    cap = em.expr(op.cap)
    em.block(f"// Compute Softcap {op.target}: cap * tanh(s / cap)")
    em.line(f"const float tlc_cap = (float)({cap}), tlc_inverse_cap = 1.f / tlc_cap;")
    _each_score(em, op.target, "x = tlc::softcap(x, tlc_cap, tlc_inverse_cap); "
                               "(void)tlc_row; (void)tlc_col;")
    em.close()


def alibi(em, op: ir.Alibi) -> None:
    if op.out != op.target:
        raise Unsupported(op, "ALiBi in place only: `and get new S`",
                          help=f"write `and get new {op.target}`")
    q0, nq, k0, nk = _score_origin(em, op.target)
    head = _slope_index(em, op)
    em.block(f"// Compute ALiBi {op.target}: minus slope * distance from the diagonal")
    em.line(f"const float tlc_slope = {op.slopes}_g[{head}];")
    _each_score(em, op.target, f"x -= tlc_slope * (float)abs(({q0}) + tlc_row + {nk} - "
                               f"{nq} - (({k0}) + tlc_col));")
    em.close()


def _slope_index(em, op: ir.Alibi) -> str:
    """C for the query head whose slope applies: the coordinate that the copy of the scores'
    query operand gives the slopes' one dimension (`H = h`)."""
    dim = em.kernel.tensor(op.slopes).shape[0]
    query = em.schedule.accumulators[op.target].a.name
    coord = dict(global_load(em.kernel.body, query).coord)
    if not isinstance(dim, ir.Sym) or dim.name not in coord:
        raise Unsupported(op, f"ALiBi slopes ({dim}): the copy of `{query}` names no {dim} in "
                          "its coordinate")
    return em.expr(coord[dim.name])


def softmax(em, op: ir.Softmax) -> None:
    name = op.target
    out = em.schedule.softmax.get(name)
    layout, tiles = em.layout, _tiles(em, name)
    mt, nt = tiles.m, tiles.n
    _, _, k0, nk = _score_origin(em, name)
    out_nt = em.schedule.tiles_of(out).n if out else 0
    em.block(f"// Compute Softmax {name}: online, rescaling {out} when a row's maximum grows "
             f"past 2^{RESCALE_LOG2}")
    keys = nt * 8
    em.line("// the last key tile: hide the keys past the end")
    em.open(f"if (({k0}) + {keys} > {nk})")
    _each_score(em, name, f"if (({k0}) + tlc_col >= {nk}) x = -INFINITY; (void)tlc_row;")
    em.close()
    top, total = layout.row_reduce
    # A row keeps the maximum it has until a block's scores exceed it by more than
    # 2^RESCALE_LOG2 (in exp2 units): its exponentials then stay below 2^RESCALE_LOG2,
    # which fp16 and bf16 hold at full relative precision, and O and the sum are rescaled
    # only when some row of the warp moves, a branch the whole warp takes or skips. The
    # result is the same softmax: numerator and denominator share whichever maximum is
    # kept. After the first few blocks a row's maximum rarely moves that far, so most
    # iterations skip the multiply of every O accumulator.
    em.line(f"float tlc_keep[{mt}][2]; bool tlc_moves = false;")
    em.open(layout.each_row(tiles))
    em.line("float tlc_top = -INFINITY;")
    first, second = layout.half_elements(f"{name}_acc")
    em.line(f"for (int j = 0; j < {nt}; ++j) tlc_top = fmaxf(tlc_top, fmaxf({first},"
            f" {second}));")
    em.line(f"tlc_top = {top}(tlc_top);")
    em.line("// from -inf (nothing seen yet) any finite maximum moves; -inf to -inf (a row "
            "all masked so far) gives NaN > x, false")
    em.line(f"const bool tlc_up = (tlc_top - {name}_max[i][h]) * {LOG2E}f > {RESCALE_LOG2}.f;")
    em.line(f"tlc_keep[i][h] = tlc_up ? tlc_top : {name}_max[i][h];")
    em.line("tlc_moves |= tlc_up;")
    em.close()
    em.open("if (__any_sync(0xffffffffu, tlc_moves))")
    em.open(layout.each_row(tiles))
    em.line(f"const float tlc_alpha = tlc_keep[i][h] == {name}_max[i][h] ? 1.f : "
            f"tlc::exp2_approx(({name}_max[i][h] - tlc_keep[i][h]) * {LOG2E}f);")
    em.line(f"{name}_sum[i][h] *= tlc_alpha;")
    em.line(f"{name}_max[i][h] = tlc_keep[i][h];")
    if out_nt and em.deferred_rescale:  # O is still being written by an MMA in flight
        em.line("tlc_alphas[i][h] = tlc_alpha;")
    elif out_nt:
        first, second = layout.half_elements(f"{out}_acc")
        em.line(f"for (int j = 0; j < {out_nt}; ++j) {{ {first} *= tlc_alpha; "
                f"{second} *= tlc_alpha; }}")
    em.close()
    if out_nt and em.deferred_rescale:
        em.line("tlc_rescale = true;")
    em.close()
    em.open(layout.each_row(tiles))
    em.line(f"const float tlc_base = {name}_max[i][h] == -INFINITY ? 0.f : "
            f"{name}_max[i][h] * {LOG2E}f;")
    em.line("float tlc_sum = 0.f;")
    em.open(f"for (int j = 0; j < {nt}; ++j) for (int e = 2 * h; e < 2 * h + 2; ++e)")
    em.line(f"float& x = {name}_acc[i][j][e];")
    em.line(f"x = tlc::exp2_approx(x * {LOG2E}f - tlc_base);")
    em.line("tlc_sum += x;")
    em.close()
    em.line(f"{name}_sum[i][h] += tlc_sum;")
    em.close()
    em.close()


def declare_deferred_rescale(em, scores: str) -> None:
    """Where the rescale of the output waits (isa/tma.py's overlapped loop: until the next
    P·V is issued): the softmax leaves each row's factor here and says whether any row
    moved."""
    em.line(f"float tlc_alphas[{_tiles(em, scores).m}][2]; bool tlc_rescale = false;")


def deferred_rescale(em, scores: str) -> None:
    """The output's rescale the softmax of `scores` left for later (before the next MMA into
    the output), done once."""
    out = em.schedule.softmax.get(scores)
    tiles, out_tiles = _tiles(em, scores), em.schedule.tiles_of(out)
    first, second = em.layout.half_elements(f"{out}_acc")
    em.open("if (tlc_rescale)")
    em.open(em.layout.each_row(tiles))
    em.line(f"for (int j = 0; j < {out_tiles.n}; ++j) {{ {first} *= tlc_alphas[i][h]; "
            f"{second} *= tlc_alphas[i][h]; }}")
    em.close()
    em.line("tlc_rescale = false;")
    em.close()


def declare_softmax_state(em, scores: str) -> None:
    """The running maximum and sum of each row a thread holds, before any key block."""
    tiles = _tiles(em, scores)
    em.line(f"float {scores}_max[{tiles.m}][2], {scores}_sum[{tiles.m}][2];")
    em.line(_reset_state(em, scores, tiles))


def _reset_state(em, scores: str, tiles) -> str:
    return (f"{em.layout.each_row(tiles)} "
            f"{{ {scores}_max[i][h] = -INFINITY; {scores}_sum[i][h] = 0.f; }}")


def restart(em, loop: ir.Loop) -> None:
    """Zero the accumulators a nested loop adds into and restart their online softmax (the
    prologue did it for a loop that runs once; this one runs once per outer step, e.g. per
    column chunk of a split head dim)."""
    for gemm in loop.body:
        if not (isinstance(gemm, ir.Gemm) and gemm.accumulate):
            continue
        tiles = em.schedule.warp_tiles(gemm)
        em.line(f"// {gemm.out} and the online softmax of {gemm.a.name} start afresh")
        em.line(em.layout.zero(gemm.out, tiles))
        if gemm.a.name in em.schedule.softmax:
            em.line(_reset_state(em, gemm.a.name, tiles))


def _normalised_rows(em, op: ir.Copy, write: str) -> None:
    """For each accumulator row this thread holds: the online softmax's division by the row
    sum (when `op.name` is its output), then `write` for each n-tile."""
    scores = next((s for s, o in em.schedule.softmax.items() if o == op.name), None)
    tiles = _tiles(em, op.name)
    em.open(em.layout.each_row(tiles))
    em.line(f"const int tlc_row = {em.layout.row_of_half(tiles)};")
    if scores:
        em.line(f"const float tlc_total = {em.layout.row_reduce[1]}({scores}_sum[i][h]);")
        em.line("const float tlc_inverse = tlc_total > 0.f ? 1.f / tlc_total : 0.f;")
    else:
        em.line("const float tlc_inverse = 1.f;")
    em.line(write)
    em.close()


def _packed_pair(em, name: str, pack: str) -> str:
    first, second = em.layout.half_elements(f"{name}_acc")
    return f"{pack}({first} * tlc_inverse, {second} * tlc_inverse)"


def register_to_global(em, op: ir.Copy) -> None:
    """Accumulator fragments straight into global memory (4 bytes a thread; a plan that
    stages the tile through shared memory gets coalesced 16-byte stores instead)."""
    tensor = em.kernel.tensor(op.name)
    if op.name not in em.schedule.accumulators or tensor.dtype not in PACK:
        raise Unsupported(op, f"store of `{op.name}`: an accumulator into fp16 or bf16")
    stored = _stored_tiles(em, op.name)
    at = register_tile_address(em, op)
    em.block(f"// Copy {op.name} from register to global")
    em.line(f"{C_TYPES[tensor.dtype]}* tlc_dst = {op.name}_g + {at.offset};")
    em.line(f"const int tlc_rows_left = {at.row_limit} - {at.first_row};")
    tiles = _tiles(em, op.name)
    columns = f" if ({tiles.col_offset('j * 8')} < {at.cols_left})" if at.cols_left else ""
    _normalised_rows(em, op, f"if (tlc_row < tlc_rows_left) for (int j = 0; j < {stored}; "
                     f"++j){columns} *reinterpret_cast<uint32_t*>(tlc_dst + (long long)"
                     f"tlc_row * {at.row_stride} + {em.layout.pair_col(tiles)}) = "
                     f"{_packed_pair(em, op.name, PACK[tensor.dtype])};")
    em.close()


def register_to_shared(em, op: ir.Copy) -> None:
    """Accumulator fragments into a shared tile (converting), for a coalesced store."""
    tile = em.shared_tile(op.name, op)
    if op.name not in em.schedule.accumulators or tile.dtype not in PACK:
        raise Unsupported(op, f"Copy {op.name} from register to shared: an accumulator into "
                          "an fp16 or bf16 tile")
    em.block(f"// Copy {op.name} from register to shared")
    _normalised_rows(em, op, f"for (int j = 0; j < {_stored_tiles(em, op.name)}; ++j) "
                     f"*reinterpret_cast<"
                     f"uint32_t*>({op.name}_s + tlc_row * {tile.stride} + "
                     f"{em.layout.pair_col(_tiles(em, op.name))}) = "
                     f"{_packed_pair(em, op.name, PACK[tile.dtype])};")
    em.close()
    em.line(em.sync)


def logsumexp(em, op: ir.Logsumexp) -> None:
    """Each row's log-sum-exp from its online softmax's kept maximum and sum, which share
    that maximum, so max + log(sum) is exact whichever maximum was kept: into a per-row
    register vector; -inf for a row that saw no key."""
    layout, tiles = em.layout, _tiles(em, op.target)
    em.line(f"{layout.row_state(f'{op.out}_lse', tiles)};")
    em.block(f"// Compute Logsumexp {op.target} and get {op.out}")
    em.open(layout.each_row(tiles))
    em.line(f"const float tlc_total = {layout.row_reduce[1]}({op.target}_sum[i][h]);")
    em.line(f"{op.out}_lse[i][h] = tlc_total > 0.f ? {op.target}_max[i][h] + logf(tlc_total) "
            ": -INFINITY;")
    em.close()
    em.close()


def logsumexp_to_global(em, op: ir.Copy) -> None:
    """A row log-sum-exp vector into global memory: the four threads of a quad hold the same
    rows, and the first of them writes."""
    tensor = em.kernel.tensor(op.name)
    if tensor.dtype is not ir.DType.FP32:
        raise Unsupported(op, f"store of the log-sum-exp `{op.name}`: into an fp32 output",
                          help=f"declare `output {op.name} (...) fp32`")
    tiles = _tiles(em, em.schedule.logsumexp[op.name])
    at = vector_address(em, op)
    em.block(f"// Copy {op.name} from register to global")
    em.line(f"float* tlc_dst = {op.name}_g + {at.offset};")
    em.line(f"const int tlc_rows_left = {at.row_limit} - {at.first_row};")
    em.open(em.layout.each_row(tiles))
    em.line(f"const int tlc_row = {em.layout.row_of_half(tiles)};")
    em.line(f"if (tlc_pair == 0 && tlc_row < tlc_rows_left) tlc_dst[tlc_row] = "
            f"{op.name}_lse[i][h];")
    em.close()
    em.close()
