"""A tile loaded once before a pipelined loop is waited for by the loop's first wait (its
cp.async group is older than the loop's, and groups complete in order), not a memory latency
ahead of the loop's first tiles; a load that something reads before the loop keeps its own
wait."""
from pathlib import Path

from tlc.api import check

ROOT = Path(__file__).resolve().parent.parent.parent
PLAN = (ROOT / "examples" / "mha_fwd_fp16_d128_sm80.tl").read_text()


def main_source(text: str) -> str:
    result = check(text, arch="sm_80")
    assert result.ok, [d.message for d in result.diagnostics]
    return result.lowered.main.source


def before_the_loop(source: str) -> str:
    return source[:source.index("for (int p_n = ")]


def test_a_load_streamed_inside_the_loop_joins_the_loops_first_wait():
    source = main_source(PLAN)
    head = before_the_loop(source)
    assert "// Q: waited for with the first tiles of the loop that follows" in head
    assert "cp_async_wait" not in head
    # the loop's first statement waits; after it, Q's group is waited for in any case
    loop = source[source.index("for (int p_n = "):]
    assert loop.index("tlc::cp_async_wait<0>();") < loop.index("Copy K (")
    assert "tlc::cp_async_wait<0>();  // Q: in case the loop ran no iteration" in source


def test_a_load_read_before_the_loop_keeps_its_own_wait():
    # Q held in registers: copied from shared before the key loop
    held = (ROOT / "examples" / "gqa_causal_fwd_bf16_d64_sm80.tl").read_text()
    assert held.index("\nCopy Q from shared to register") < held.index("\nfor n = ")
    source = main_source(held)
    head = before_the_loop(source)
    assert "waited for with the first tiles" not in source
    assert head.index("tlc::cp_async_wait<0>();") < head.index("__syncthreads();")
    assert "in case the loop ran no iteration" not in source
