"""Where a tile of a global tensor lies, and the coalesced store of a shared tile to global
memory: addressing every target shares."""
from __future__ import annotations

from dataclasses import dataclass

from tlc import ir
from tlc.backends.emit.writer import c_expr
from tlc.backends.schedule import C_TYPES
from tlc.backends.target import Unsupported, stride_name


@dataclass(frozen=True)
class TileAddress:
    """C expressions locating a tile of a global tensor."""

    offset: str             # of the tile's first element
    first_row: str          # the tensor row (sequence position) of the tile's first row
    row_limit: str          # rows in the tensor
    row_stride: str         # elements from one tensor row to the next
    cols_left: str | None   # columns before the row's end, where the last chunk of D is short

    def valid(self, row: str, col: str) -> str:
        """Whether the element (row, col) of the tile lies inside the tensor."""
        test = f"{row} < tlc_rows_left"
        return test + (f" && {col} < {self.cols_left}" if self.cols_left else "")


def tile_address(em, op: ir.Copy, rename: dict, rows: int, cols: int,
                 strides: dict | None = None) -> TileAddress:
    """Where a rows × cols tile of `op` starts in global memory and where its tensor ends;
    `strides` (dimension -> C) stands in for the tensor's stride arguments, for a buffer laid
    out like it (a split's partial output)."""
    strides = strides or {}
    tensor = em.kernel.tensor(op.name)
    shape = tensor.shape
    width = em.facts.value(shape[-1])
    if not isinstance(width, int) or width < cols:
        raise Unsupported(op, f"Copy {op.name}: a tile's row needs a compile-time width no "
                          "wider than its tensor's")
    coord = dict(op.coord)
    terms, first_row, cols_left = [], "0", None
    for position in range(len(shape) - 1, -1, -1):
        dim = shape[position]
        name = dim.name if isinstance(dim, ir.Sym) else None
        index = c_expr(coord[name], rename) if name in coord else "0"
        if position == len(shape) - 2:
            first_row = f"({index}) * {rows}"
            # `start`: the rows this copy sees begin there (a sequence of a packed batch);
            # first_row stays relative to it, as the score rules count positions.
            index = first_row if op.start is None else \
                f"{c_expr(op.start, rename)} + {first_row}"
        elif position == len(shape) - 1 and cols < width:
            # A tile holding part of each row (D split into column chunks): its columns
            # past the end of the row read as zeros and are not written.
            index = f"({index}) * {cols}"
            if width % cols:
                cols_left = f"({width} - {index})"
        if index != "0":
            stride = strides.get(position, stride_name(op.name, position)) \
                if position < len(shape) - 1 else "1LL"
            terms.append(f"(long long)({index}) * {stride}")
    row_stride = strides.get(len(shape) - 2, stride_name(op.name, len(shape) - 2))
    if tensor.pages and not strides:
        terms = _paged_terms(em, tensor, coord, rename, first_row, row_stride, terms)
    offset = " + ".join(terms) or "0"
    limit = c_expr(op.rows, rename) if op.rows is not None else c_expr(shape[-2])
    return TileAddress(offset, first_row, limit, row_stride, cols_left)


def _paged_terms(em, tensor: ir.Tensor, coord: dict, rename: dict, first_row: str,
                 row_stride: str, terms: list) -> list:
    """The address terms of a tile of a paged tensor: its rows lie in page
    table[i, first_row / PAGE] (i the first dimension's index) at row first_row % PAGE, and
    the page takes the first dimension's place. The checker makes the tile rows divide PAGE,
    so a tile never straddles two pages."""
    table, page = tensor.pages
    page_rows = em.facts.value(page)
    first = tensor.shape[0]
    index = c_expr(coord[first.name], rename) if isinstance(first, ir.Sym) and \
        first.name in coord else "0"
    entry = ir.Element(table, (ir.Sym("tlc_i", ir.SymKind.OPEN), ir.Sym("tlc_j", ir.SymKind.OPEN)))
    looked_up = c_expr(entry, {"tlc_i": index, "tlc_j": f"({first_row}) / {page_rows}"})
    kept = [t for t in terms if not t.endswith(f" * {stride_name(tensor.name, 0)}")
            and not t.endswith(f" * {row_stride}")]
    return kept + [f"(long long)({looked_up}) * {stride_name(tensor.name, 0)}",
                   f"(long long)(({first_row}) % {page_rows}) * {row_stride}"]


def vector_address(em, op: ir.Copy, rename: dict | None = None) -> TileAddress:
    """Where a 1-D tile of `op` (rows along its tensor's last dimension, e.g. a row
    log-sum-exp (B, H, Nq)) starts in global memory, and where the tensor's rows end."""
    tensor = em.kernel.tensor(op.name)
    shape, coord = tensor.shape, dict(op.coord)
    rows = em.facts.value(op.tile[0]) if op.tile and len(op.tile) == 1 else None
    if not isinstance(rows, int):
        raise Unsupported(op, f"store of `{op.name}` needs a compile-time 1-D tile")
    terms, first_row = [], "0"
    for position, dim in enumerate(shape):
        name = dim.name if isinstance(dim, ir.Sym) else None
        index = c_expr(coord[name], rename) if name in coord else "0"
        last = position == len(shape) - 1
        if last:
            first_row = index = f"({index}) * {rows}"
            if op.start is not None:
                index = f"{c_expr(op.start, rename)} + {first_row}"
        if index != "0":
            terms.append(f"(long long)({index}) * "
                         f"{'1LL' if last else stride_name(op.name, position)}")
    limit = c_expr(op.rows, rename) if op.rows is not None else c_expr(shape[-1])
    return TileAddress(" + ".join(terms) or "0", first_row, limit, "1", None)


def shared_tile_address(em, op: ir.Copy, rename: dict) -> TileAddress:
    """The global address of the tile that `op`'s shared buffer holds."""
    tile = em.shared_tile(op.name, op)
    return tile_address(em, op, rename, tile.rows, tile.cols)


def declare_source(em, op: ir.Copy, rename: dict) -> TileAddress:
    """Declare the tile's first element in global memory (tlc_src) and the rows left before
    the end of the sequence (tlc_rows_left)."""
    at = shared_tile_address(em, op, rename)
    em.line(f"const {C_TYPES[em.kernel.tensor(op.name).dtype]}* tlc_src = "
            f"{op.name}_g + {at.offset};")
    em.line(f"const int tlc_rows_left = {at.row_limit} - {at.first_row};")
    return at


def register_tile_address(em, op: ir.Copy) -> TileAddress:
    """The global address of a tile stored straight from registers (its shape from the Copy)."""
    rows, cols = (em.facts.value(d) for d in op.tile) if op.tile and len(op.tile) == 2 \
        else (None, None)
    if not isinstance(rows, int) or not isinstance(cols, int):
        raise Unsupported(op, f"store of `{op.name}` needs a compile-time tile shape")
    return tile_address(em, op, {}, rows, cols)


def shared_to_global(em, op: ir.Copy) -> None:
    """A shared tile into global memory, 16 bytes a thread along each row: coalesced."""
    tile = em.shared_tile(op.name, op)
    rows, cols, stride = tile.rows, tile.cols, tile.stride
    at = shared_tile_address(em, op, {})
    em.block(f"// Copy {op.name} ({rows} x {cols}) from shared to global")
    em.line(f"{tile.ctype}* tlc_dst = {op.name}_g + {at.offset};")
    em.line(f"const int tlc_rows_left = {at.row_limit} - {at.first_row};")
    em.open(f"for (int tlc_c = threadIdx.x; tlc_c < {rows * cols // 8}; "
            f"tlc_c += {em.threads})")
    em.line(f"const int tlc_r = tlc_c / {cols // 8}, tlc_col = (tlc_c % {cols // 8}) * 8;")
    em.line(f"if ({at.valid('tlc_r', 'tlc_col')}) *reinterpret_cast<int4*>(tlc_dst + "
            f"(long long)tlc_r * {at.row_stride} + tlc_col) = *reinterpret_cast<const int4*>("
            f"{op.name}_s + tlc_r * {stride} + tlc_col);")
    em.close()
    em.close()
    if em.loop_stack:  # the next iteration stages its tile over this one
        em.line(em.sync)
