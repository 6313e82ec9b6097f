"""Per-rule goldens: the CUDA each statement's lowering rule emits, one small file per
statement, for a few examples that between them reach every rule (cp.async and register
copies, held and streamed operands, masks, softcap, ALiBi, a split head dim, the stores).
A change to one rule shows as a diff of the few files of that rule. TLC_UPDATE_GOLDEN=1
rewrites them, to be reviewed as a diff. (The whole kernels are tests/golden/<arch>/.)"""
import os
import re
from pathlib import Path

import pytest

from tlc.api import check
from tlc.backends import target_for
from tlc.backends.emit.kernel import KernelEmitter
from tlc.backends.emit.writer import unroll_policy
from tlc.backends.lower import schedule

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = ROOT / "tests" / "golden" / "rules"
EXAMPLES = ["mha_fwd_fp16_d128_sm80", "window_causal_gqa_fwd_fp16_d128_sm80",
            "alibi_causal_fwd_bf16_d128_sm80", "softcap_fwd_bf16_d256_sm80",
            "mha_fwd_fp16_d512_sm80", "gqa_causal_fwd_bf16_d128_sm75",
            "mha_fwd_fp16_d512_sm75"]


def snippets(example: str) -> dict[str, str]:
    """file name -> the CUDA of each statement that emits any, by its line in the plan."""
    text = (ROOT / "examples" / f"{example}.tl").read_text()
    result = check(text)
    assert result.ok, [d.message for d in result.diagnostics]
    target = target_for(result.arch)
    emitter = KernelEmitter(result.kernel, target, schedule(result.kernel, target))
    emitter.emit()
    lines = unroll_policy(emitter.lines)
    found = {}
    for op, first, end in emitter.emitted:
        body = lines[first:end]
        if type(op).__name__ == "Loop":  # the loop's own lines (its pipeline), not its body's
            inner = {i for o, f, e in emitter.emitted if o in op.body for i in range(f, e)}
            body = [line for i, line in enumerate(lines[first:end], first) if i not in inner]
        if not body:
            continue
        words = re.sub(r"[^A-Za-z0-9]+", "-", text.split("\n")[op.span.line - 1].strip())
        found[f"{op.span.line:02d}-{words.strip('-')[:48]}.cu"] = "\n".join(body) + "\n"
    return found


@pytest.mark.parametrize("example", EXAMPLES)
def test_each_rule_emits_its_golden_snippet(example):
    folder = SNIPPETS / example
    found = snippets(example)
    if os.environ.get("TLC_UPDATE_GOLDEN"):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.cu"):
            old.unlink()
        for name, body in found.items():
            (folder / name).write_text(body)
    assert sorted(found) == sorted(p.name for p in folder.glob("*.cu"))
    for name, body in found.items():
        assert body == (folder / name).read_text(), name


def test_the_snippets_are_the_kernel():
    """What the emitter records per statement is the kernel's own text, not a second copy."""
    result = check((ROOT / "examples" / "mha_fwd_fp16_d128_sm80.tl").read_text())
    source = result.lowered.main.source.split("\n")
    for body in snippets("mha_fwd_fp16_d128_sm80").values():
        lines = body.rstrip("\n").split("\n")
        at = [i for i, line in enumerate(source) if line == lines[0]]
        assert any(source[i:i + len(lines)] == lines for i in at) or set(lines) <= set(source)
