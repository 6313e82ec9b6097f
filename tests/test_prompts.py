"""The prompts state what the checker holds: every plan they show passes the check it
illustrates, the target card lists what the backend lowers, and the semantics an author
would otherwise guess are written down."""
import re

import pytest

import tlc
from tlc.arch import ARCH_NAMES, ARCHS
from tlc.backends import target_for
from tlc.llm import prompts

TL_BLOCK = re.compile(r"```tl\n(.*?)```", re.S)


@pytest.mark.parametrize("arch", [a for a in ARCH_NAMES if target_for(a).lowers])
def test_every_plan_a_prompt_shows_passes_the_check_it_illustrates(arch):
    (sketch,) = TL_BLOCK.findall(prompts.sketch_prompt("MHA forward", arch))
    assert tlc.check(sketch, sketch=True).ok
    (accepted, example) = TL_BLOCK.findall(prompts.code_prompt(sketch, arch))
    result = tlc.check(example, arch=arch)
    assert result.ok, [d.message for d in result.diagnostics]


def test_the_sketch_example_writes_what_the_language_card_says():
    card = prompts.language_card()
    sketch = prompts.example_for("sm_80", sketch=True)
    assert "K^T" in sketch and "K^T" in card
    assert "Reshape S from (MMA_C, BM, BN) to (MMA_A, BM, BN) with dtype fp16" in sketch
    assert "batch_offset" not in sketch and "MMA_N_new" not in sketch


def test_every_example_line_of_the_card_parses():
    from tlc.language import OPS

    for spec in OPS.values():
        assert tlc.check(f"sketch x\n{spec.example}\n", sketch=True).plan is not None, spec


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_the_target_card_lists_the_mma_shapes_the_backend_lowers(arch):
    card = prompts.hardware_card(ARCHS[arch])
    target = target_for(arch)
    if not target.lowers:  # declared only (sm_90a): the card says so and offers no shape
        assert "does not generate code" in card and prompts.lowered_mma_shapes(arch) == ()
        return
    lowered = set(target.gemm.shapes)
    listed = set(re.findall(r"m\d+n\d+k\d+", card))
    assert listed and listed <= lowered
    assert prompts.lowered_mma_shapes(arch) == tuple(target.gemm.shapes)


def test_sm80_card_no_longer_offers_a_shape_the_backend_refuses():
    assert "m16n8k8" not in prompts.hardware_card(ARCHS["sm_80"])
    assert "m16n8k8" in prompts.hardware_card(ARCHS["sm_75"])


@pytest.mark.parametrize("fact", [
    "both ends inclusive", "aligned bottom-right", "combine: a key is visible only if every",
    "|i + Nk - Nq - j|", "Softcap before any Mask", "Hkv = h / GROUP", "H = Hkv * GROUP",
    "a * b warps", "at most three extents", "rows padded" , "addresses, indices",
    "checks them against the masks rather than deriving them", "`input NAME DTYPE`"])
def test_the_prompts_state_the_semantics(fact):
    text = prompts.system_prompt("sm_80").replace("each row padded", "rows padded")
    assert fact in text


def test_the_prompts_say_how_many_rounds_from_the_first_request():
    assert "3 replies in all for this stage" in prompts.sketch_prompt("t", "sm_80", rounds=3)
    sketch = prompts.example_for("sm_80", sketch=True)
    assert "5 replies in all" in prompts.code_prompt(sketch, "sm_80", rounds=5)


def test_the_prompt_says_what_a_sketch_is_checked_for_and_the_check_holds_it():
    assert prompts.SKETCH_CHECKS in prompts.language_card()
    ok = "sketch s\nAllocate K in global (L, D)\nAllocate S in register (BM, BN)\n"
    assert tlc.check(ok + "Compute GEMM Q, K^T and get S\n", sketch=True).ok  # Q stays open
    typo = tlc.check(ok + "Compute GEMM Q, Kx^T and get S\n", sketch=True)
    assert [d.code for d in typo.diagnostics] == ["undefined-name"]
    assert typo.diagnostics[0].fixes[0].text == "K"
    assert not tlc.check("sketch s\nCompute Softmx S\n", sketch=True).ok
