"""The key-loop check against the masks: its block arithmetic agrees with the reference's mask,
the tight bounds it suggests pass it, and bounds one block short fail it."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tlc.api import check
from tlc.passes.mask_coverage import FAR, Band, _visible_blocks
from tlc.reference import Variant, visible
from tlc.templates import Options, render

sides = st.one_of(st.none(), st.integers(0, 90))


@settings(max_examples=300, deadline=None)
@given(nq=st.integers(1, 70), nk=st.integers(1, 70), rows=st.sampled_from([8, 16, 32]),
       keys=st.sampled_from([8, 16]), causal=st.booleans(), left=sides, right=sides)
def test_visible_blocks_match_the_reference_mask(nq, nk, rows, keys, causal, left, right):
    window = None if left is None and right is None else (left, right)
    shown = visible(nq, nk, Variant(causal=causal, window=window))
    band = Band(FAR if left is None else left,
                min(FAR if right is None else right, 0 if causal else FAR))
    for block in range(-(-nq // rows)):
        keys_seen = np.flatnonzero(shown[block * rows:(block + 1) * rows].any(axis=0))
        expected = sorted({int(j) // keys for j in keys_seen})
        assert list(_visible_blocks(nq, nk, block * rows, rows, keys, band)) == expected


def _codes(text):
    return {d.code for d in check(text).diagnostics}


@settings(max_examples=25, deadline=None)
@given(tiles=st.sampled_from([(128, 64, 4), (64, 32, 4), (64, 16, 4)]), causal=st.booleans(),
       window=st.one_of(st.none(), st.tuples(st.integers(1, 300), st.integers(0, 40))))
def test_tight_bounds_pass_and_short_ones_fail(tiles, causal, window):
    bm, bn, warps = tiles
    text = render(Options("fp16", 64, causal=causal, window=window, bm=bm, bn=bn, warps=warps))
    assert not _codes(text) & {"mask-coverage", "masked-blocks"}, text
    loop = next(line for line in text.splitlines() if line.startswith("for n = "))
    start, stop = loop[len("for n = "):].split(": ")
    if causal or window:  # the loop's end is a formula: one block short drops keys
        short_end = text.replace(loop, f"for n = {start}: {stop} - 1")
        assert "mask-coverage" in _codes(short_end)
    if window:  # so is its start: one block late drops keys
        late_start = text.replace(loop, f"for n = {start} + 1: {stop}")
        assert "mask-coverage" in _codes(late_start)
    if causal or window:  # every block: right, but the masks hide some
        assert "masked-blocks" in _codes(text.replace(loop, "for n = 0: cdiv(Nk, BN)"))
