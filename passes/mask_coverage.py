"""mask_coverage: the loop over key blocks visits every key the masks leave visible, and skips
the key blocks the masks hide entirely.

The masks of the scores (`Compute Mask S with causal`, `… window (LEFT, RIGHT)`) run on every
key block the loop visits, so a visited block is always masked where it needs to be; what can
go wrong is the loop's range. A `for n = START: STOP` that ends too early (or starts too late)
drops keys a query should see: the softmax is then wrong with no error at run time. One that
starts below 0 reads before K. One that visits blocks no query of the tile sees is correct but
wastes a GEMM per block.

The range is a formula in the block index and the sequence lengths, and the mask is a
bottom-right-aligned band, so the check is concrete: for every query block of a family of
sequence lengths chosen around the tile sizes and the window (shorter and longer than a tile,
Nq above and below Nk, a window's edge inside and across a tile), the visited key blocks are
compared with those that hold a visible key. A counterexample is reported with its sizes.
Statements that order the score modifiers are checked here too: a Softcap after a Mask would
lift the hidden scores back to -cap, and anything after the Softmax works on probabilities.
"""
from __future__ import annotations

from dataclasses import dataclass

from tlc import ir
from tlc.diagnostics import Diagnostic
from tlc.passes.facts import Facts, global_load, text, updated_tile

FAR = 1 << 40  # an unbounded side of the band


@dataclass(frozen=True)
class Band:
    """Query i sees key j iff i + Nk - Nq - left <= j <= i + Nk - Nq + right."""

    left: int
    right: int
    left_text: str = ""   # as the plan writes them, for the fix
    right_text: str = ""


@dataclass(frozen=True)
class KeyLoop:
    loop: ir.Loop
    query_dim: str   # the size symbols of the query and key sequences
    key_dim: str
    block: str       # the grid index that picks the query tile
    rows: int        # BM: query rows a block holds
    keys: int        # BN: keys a loop step brings
    rows_text: str   # the same, as the plan writes them
    keys_text: str


def mask_coverage(kernel: ir.Kernel, ctx) -> ir.Kernel:
    """Report key loops that miss visible keys or visit hidden blocks, and score modifiers out
    of order."""
    facts = Facts(kernel)
    for op, loops, _ in facts.walk_held():
        if isinstance(op, ir.Gemm) and op.b.transposed and loops and \
                _are_scores(loops[-1], op.out):
            _check_order(loops[-1], op.out, ctx)
            found = _key_loop(facts, op, loops[-1])
            band = _band(facts, loops[-1], op.out)
            if found is not None and band is not None:
                _check_range(facts, found, band, ctx)
    return kernel


def _are_scores(loop: ir.Loop, out: str) -> bool:
    """Whether a transposed GEMM's result is the scores: what a Mask, Softmax or Exp of the
    loop takes (a backward plan's dO·Vᵀ is a transposed GEMM too, but not scores)."""
    names = _score_names(loop, out)
    return any(isinstance(op, (ir.Mask, ir.Softmax, ir.Exp)) and op.target in names
               for op in loop.body)


def _score_names(loop: ir.Loop, scores: str) -> set[str]:
    """The scores' names in the loop: the GEMM's result and what a Multiply or ALiBi of it
    gets (`and get T`), in body order."""
    names = {scores}
    for op in loop.body:
        if updated_tile(op) in names:
            names.add(op.out)
    return names


def _check_order(loop: ir.Loop, scores: str, ctx) -> None:
    masked = softmax = alibi = None
    names = _score_names(loop, scores)
    scale = next((op for op in loop.body if isinstance(op, ir.Multiply)
                  and updated_tile(op) in names), None)
    _check_once(loop, scores, names, scale, ctx)
    scaled = scale is None
    for op in loop.body:
        target = getattr(op, "target", None) or updated_tile(op)  # a Multiply names its `a`
        if target not in names or isinstance(op, ir.Logsumexp):  # it reads, not modifies
            continue
        scaled = scaled or op is scale
        if isinstance(op, (ir.Alibi, ir.Softcap)) and not scaled:
            name = type(op).__name__.replace("Alibi", "ALiBi")
            ctx.report(Diagnostic("score-order", f"Compute {name} {scores} comes before the "
                                  "scale: the scale would multiply its result too (the bias "
                                  "and the cap apply to scaled scores)", op.span,
                                  help=f"move it after `Compute Multiply {scores}, ...`"))
        if isinstance(op, ir.Softcap) and alibi is not None:
            ctx.report(Diagnostic("score-order", f"Compute Softcap {scores} comes after the "
                                  "ALiBi: the cap would squash the bias too (the cap applies "
                                  "to the scaled scores, the bias to the capped ones)", op.span,
                                  help=f"move `Compute ALiBi {scores}, ...` after the Softcap"))
        if isinstance(op, ir.Alibi):
            alibi = op
        if isinstance(op, ir.Softmax):
            softmax = op
        elif softmax is not None:
            name = type(op).__name__.replace("Alibi", "ALiBi")
            ctx.report(Diagnostic("score-order", f"Compute {name} {scores} comes after the "
                                  f"Softmax: it would change probabilities, not scores", op.span,
                                  help="move it before `Compute Softmax " + scores + "`"))
        elif isinstance(op, ir.Mask):
            masked = op
        elif isinstance(op, ir.Softcap) and masked is not None:
            ctx.report(Diagnostic("score-order", f"Compute Softcap {scores} comes after the "
                                  "Mask: tanh would turn the hidden scores (-inf) into -cap, "
                                  "visible again", op.span,
                                  help="move the Softcap before `Compute Mask " + scores + "`"))


def _check_once(loop: ir.Loop, scores: str, names: set, scale, ctx) -> None:
    """Each score modifier once an iteration, and the scores scaled before their Softmax."""
    seen = {}
    for op in loop.body:
        target = getattr(op, "target", None) or updated_tile(op)
        if target not in names or isinstance(op, (ir.Softmax, ir.Mask)):
            continue
        key = (type(op), repr(getattr(op, "b", None)) if isinstance(op, ir.Multiply) else "")
        if key in seen:
            name = type(op).__name__.replace("Alibi", "ALiBi")
            ctx.report(Diagnostic("score-modifiers", f"Compute {name} {scores} a second time in "
                                  "this iteration: the scores would be changed twice", op.span,
                                  help="keep one"))
        seen[key] = op
    softmax = next((op for op in loop.body if isinstance(op, ir.Softmax)
                    and op.target in names), None)
    if softmax is not None and scale is None:
        ctx.report(Diagnostic("score-modifiers", f"the scores `{scores}` reach the Softmax "
                              "unscaled: attention is softmax(scale · Q·K^T), scale = 1/sqrt(D) "
                              "unless the model says otherwise", softmax.span,
                              help=f"add `Compute Multiply {scores}, scale and get new {scores}` "
                                   "after the GEMM, with `input scale fp32` in the header"))


def _key_loop(facts: Facts, gemm: ir.Gemm, loop: ir.Loop) -> KeyLoop | None:
    """The loop's shape when it is the usual one: K tiles picked by the loop variable, the
    query tile by a grid index; None (nothing claimed) for anything else."""
    keys = global_load(loop.body, gemm.b.name)
    queries = global_load(facts.kernel.body, gemm.a.name)
    # a tile of one dimension (rows only) claims nothing here; the shape checks report it
    if keys is None or queries is None or len(keys.tile or ()) < 2 or \
            len(queries.tile or ()) < 2:
        return None
    k_tensor, q_tensor = facts.kernel.tensor(keys.name), facts.kernel.tensor(queries.name)
    if len(k_tensor.shape) < 2 or len(q_tensor.shape) < 2:
        return None
    key_dim, query_dim = text(k_tensor.shape[-2]), text(q_tensor.shape[-2])
    k_coord, q_coord = dict(keys.coord), dict(queries.coord)
    grid = facts.kernel.grid.indices if facts.kernel.grid else ()
    if not (isinstance(k_coord.get(key_dim), ir.Sym) and k_coord[key_dim].name == loop.var
            and isinstance(q_coord.get(query_dim), ir.Sym) and q_coord[query_dim].name in grid):
        return None
    rows, cols = facts.value(queries.tile[-2]), facts.value(keys.tile[-2])
    if not (isinstance(rows, int) and isinstance(cols, int) and rows > 0 and cols > 0):
        return None
    return KeyLoop(loop, query_dim, key_dim, q_coord[query_dim].name, rows, cols,
                   text(queries.tile[-2]), text(keys.tile[-2]))


def _band(facts: Facts, loop: ir.Loop, scores: str) -> Band | None:
    left, right, left_text, right_text = FAR, FAR, "", ""
    names = _score_names(loop, scores)
    for op in loop.body:
        if isinstance(op, ir.Mask) and op.target in names:
            if op.causal and right > 0:
                right, right_text = 0, ""
            if op.window is not None:
                values = [facts.value(w) for w in op.window]
                if not all(isinstance(v, int) for v in values):
                    return None  # a window known only at run time: nothing to compare
                if values[0] < left:
                    left, left_text = values[0], text(op.window[0])
                if values[1] < right:
                    right, right_text = values[1], text(op.window[1])
    return Band(left, right, left_text, right_text)


def _visible_blocks(nq: int, nk: int, r0: int, rows: int, keys: int, band: Band) -> range:
    """The key blocks holding a key that some query row r0 .. r0 + rows - 1 (< nq) sees."""
    shift = nk - nq
    first_row = max(r0, -shift - band.right)   # rows before it see no key (all to the left)
    last_row = min(r0 + rows - 1, nq - 1, nk - 1 - shift + band.left)
    if first_row > last_row or band.left + band.right < 0:
        return range(0)
    first_key = max(0, first_row + shift - band.left)
    last_key = min(nk - 1, last_row + shift + band.right)
    if first_key > last_key:
        return range(0)
    return range(first_key // keys, last_key // keys + 1)


def _sizes(found: KeyLoop, band: Band) -> list[tuple[int, int]]:
    """(Nq, Nk) pairs: query lengths around the tile sizes and the window, each with key
    lengths from Nq - BN to Nq + BN (every offset of the diagonal within a key block, where a
    bound that is off by one shows) and a few further away."""
    bm, bn = found.rows, found.keys
    queries = {1, bn + 1, bm - 1, 2 * bm + 3}
    shifts = set(range(-bn, bn + 1)) | {-bm - 3, bm + 5, 3 * bm + 1}
    for side in (band.left, band.right):
        if 0 < side < FAR:
            queries.add(side + bm + 7)
            shifts |= {side, -side, side + bn // 2 + 1}
    # Nq = Nk first, then the diagonal further off: the first counterexample is the plainest.
    return [(nq, nq + shift) for shift in sorted(shifts, key=lambda s: (abs(s), s))
            for nq in sorted(q for q in queries if q > 0) if nq + shift > 0]


def _check_range(facts: Facts, found: KeyLoop, band: Band, ctx) -> None:
    env = {p.name: p.value for p in facts.kernel.params}
    env.update({name: 0 for name in facts.kernel.grid.indices})
    wasted = None
    for nq, nk in _sizes(found, band):
        for block in range(-(-nq // found.rows)):
            scope = {**env, found.query_dim: nq, found.key_dim: nk, found.block: block}
            try:
                start = ir.evaluate(found.loop.start, scope)
                stop = ir.evaluate(found.loop.stop, scope)
            except (ir.NotConstant, ZeroDivisionError, ValueError, OverflowError):
                return  # a bound that needs run-time values: nothing to compare
            if not (isinstance(start, int) and isinstance(stop, int)):
                return
            visited = range(start, max(start, stop))
            needed = _visible_blocks(nq, nk, block * found.rows, found.rows, found.keys, band)
            where = f"with {found.query_dim} = {nq}, {found.key_dim} = {nk}, block " \
                    f"{found.block} = {block}"
            missed = [b for b in needed if b not in visited]
            if visited and visited.start < 0:
                _report_missed(ctx, found, band, f"{where} it starts at key block "
                               f"{visited.start}, before the first key")
                return
            if missed:
                _report_missed(ctx, found, band, f"{where} it visits key blocks "
                               f"{_blocks(visited)} but keys in block {missed[0]} are visible")
                return
            if wasted is None and any(b not in needed for b in visited):
                wasted = f"{where} it visits {_count(len(visited))}, of which " \
                         f"{len(needed)} hold a visible key"
    if wasted:
        ctx.report(Diagnostic("masked-blocks", f"the loop over `{found.loop.var}` visits key "
                              f"blocks that every query of the tile is masked from: {wasted}",
                              found.loop.span, help=_bounds_help(found, band)))


def _count(blocks: int) -> str:
    return f"{blocks} key block" + ("" if blocks == 1 else "s")


def _blocks(visited: range) -> str:
    return f"{visited.start} .. {visited.stop - 1}" if visited else "none"


def _report_missed(ctx, found: KeyLoop, band: Band, why: str) -> None:
    ctx.report(Diagnostic("mask-coverage", f"the loop over `{found.loop.var}` skips keys the "
                          f"masks leave visible: {why}", found.loop.span,
                          help=_bounds_help(found, band)))


def _bounds_help(found: KeyLoop, band: Band) -> str:
    """The tight range of key blocks for the band, in the plan's names."""
    loop, m, nq, nk = found.loop, found.block, found.query_dim, found.key_dim
    bm, bn = found.rows_text, found.keys_text
    left = _term(band.left, band.left_text)
    start = "0" if band.left >= FAR else f"max(0, ({m} * {bm} + {nk} - {nq} - {left}) / {bn})"
    right = "" if band.right == 0 else f" + {_term(band.right, band.right_text)}"
    stop = f"cdiv({nk}, {bn})" if band.right >= FAR else \
        f"cdiv(min({nk}, ({m} + 1) * {bm} + {nk} - {nq}{right}), {bn})"
    return f"write the loop as `for {loop.var} = {start}: {stop}`"


def _term(value: int, written: str) -> str:
    """A band side as the plan names it, or its value (in parentheses when negative)."""
    if written and not any(ch in written for ch in " +-*/("):
        return written
    return str(value) if value >= 0 else f"({value})"
