"""The register pipeline: how a loop's global -> shared copies run on a target without cp.async.

Each tile is loaded into registers one compute phase ahead and stored to shared memory just
before the first statement that reads it. Copies first read at the same statement form a
group. Group g's loads are issued right after group g - 1 is stored (group 0's, for the next
iteration, right after the last group is stored), so their latency hides behind the compute
in between, and a thread holds only one group's tiles at a time: for attention, V arrives
while Q·K^T runs and the next K while P·V runs.

One `__syncthreads()` after each store makes the tile visible. A store needs one before it
too only when a reader of the tile it replaces may still be running: for group 0 when the
last group is stored before group 0's last reader (or there is one group only); a later
group's old tile was last read in the previous iteration, before group 0's store and sync.

The emitter (backends/cuda.py) follows this plan and the register estimate
(passes/estimate.py) counts the tiles in flight from it, so both see the same schedule.
"""
from __future__ import annotations

from dataclasses import dataclass

from tlc import ir

CHUNK_BYTES = 16  # one uint4 load per thread per chunk


@dataclass(frozen=True)
class Group:
    copies: tuple[ir.Copy, ...]
    store: int              # body index whose statement first reads the tiles
    issue: int              # body index after whose store the loads start (the previous group's)
    sync_before_store: bool


def staged_copies(loop: ir.Loop) -> list[ir.Copy]:
    return [op for op in loop.body if isinstance(op, ir.Copy) and op.src is ir.Level.GLOBAL
            and op.dst is ir.Level.SHARED]


def groups(loop: ir.Loop) -> list[Group]:
    """The loop's staged copies grouped by store point, in body order."""
    stores: dict[int, list[ir.Copy]] = {}
    last_read: dict[int, int] = {}
    for copy in staged_copies(loop):
        at = loop.body.index(copy)
        readers = [i for i, op in enumerate(loop.body) if i > at and _reads(op, copy.name)]
        store = readers[0] if readers else len(loop.body)
        stores.setdefault(store, []).append(copy)
        last_read[store] = max([last_read.get(store, store)] + readers)
    points = sorted(stores)
    result = []
    for g, store in enumerate(points):
        previous = points[g - 1]  # for group 0: the last group, an iteration earlier
        sync = g == 0 and (len(points) == 1 or last_read[store] >= previous)
        result.append(Group(tuple(stores[store]), store, previous, sync))
    return result


def in_flight(group: Group, index: int, count: int) -> bool:
    """Whether the group's loads occupy registers while the statement at body index runs."""
    if count == 1:
        return True
    if group.issue < group.store:
        return group.issue <= index < group.store
    return index >= group.issue or index < group.store  # group 0: across the loop's back edge


def rows_per_pass(cols: int, element_bytes: int, threads: int) -> int:
    """Rows of a tile the block loads in one pass, each thread at one fixed 16-byte column of
    them (threads past rows × chunks-per-row idle), so that a thread's chunks lie whole rows
    apart: compile-time offsets from one address, instead of an address per chunk that the
    compiler would hoist out of the loop and keep in registers. 0 when a row has more chunks
    than the block has threads."""
    return threads // (cols * element_bytes // CHUNK_BYTES)


def chunks_per_thread(rows: int, cols: int, element_bytes: int, threads: int) -> int:
    """16-byte chunks of a rows × cols tile that each thread loads."""
    per_pass = rows_per_pass(cols, element_bytes, threads)
    if per_pass:
        return -(-rows // per_pass)
    return -(-rows * cols * element_bytes // CHUNK_BYTES // threads)


def _reads(op, name: str) -> bool:
    if isinstance(op, ir.Loop):
        return any(_reads(inner, name) for inner in op.body)
    if isinstance(op, ir.Copy):
        return op.name == name
    if isinstance(op, ir.Gemm):
        return name in (op.a.name, op.b.name)
    return False
