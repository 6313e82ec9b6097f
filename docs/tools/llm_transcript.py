"""Render the repair exchange of docs/llm.md from a real `tlc generate` run against the test
suite's scripted endpoint (tests/fake_llm.py): the D = 128 sketch, then the D = 128 example
with its Reshape left out, then the example itself.

    python3 docs/tools/llm_transcript.py          # print the section
    python3 docs/tools/llm_transcript.py --write  # replace it in docs/llm.md

tests/test_docs.py checks that docs/llm.md holds what this prints, so the exchange cannot go
stale when a prompt or an example changes.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "llm.md"
START = "**start**"
TASK = "MHA forward, D=128, fp16"


def run_transcript() -> list[dict]:
    """The transcript events of the scripted run."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_llm import FakeLLM

    from tlc import examples
    from tlc.cli import main

    good = examples.read("mha_fwd_fp16_d128_sm80")
    broken = good.replace("  Reshape S from (MMA_C, BM, BN) to (MMA_A, BM, BN) with dtype fp16\n",
                          "")
    replies = [examples.read("paper_sketch"), broken, good]
    script = [{"reply": f"Here is the plan.\n\n```tl\n{text}```\n"} for text in replies]
    with tempfile.TemporaryDirectory() as folder, FakeLLM(script) as server:
        log = os.path.join(folder, "run.jsonl")
        code = main(["generate", TASK, "--arch", "sm_80", "--model", "fake-model",
                     "--base-url", server.url, "--transcript", log, "-o",
                     os.path.join(folder, "plan.tl")])
        assert code == 0, code
        return [json.loads(line) for line in Path(log).read_text().splitlines()]


def render(events: list[dict]) -> str:
    out = []
    for event in events:
        kind = event["event"]
        where = f"({event.get('stage')} stage, round {event.get('round')})"
        if kind == "start":
            out.append(f"{START}: task `{event['task']}`, arch `{event['arch']}`, model "
                       f"`{event['model']}`, prompts `{event['prompts']}`, at most "
                       f"{event['max_rounds']} rounds a stage.")
        elif kind == "request":
            out.append(f"**request** {where}, the new user message:\n\n````text\n"
                       f"{event['content'].rstrip()}\n````")
        elif kind == "reply":
            out.append(f"**reply** {where}, the model's text:\n\n````text\n"
                       f"{event['content'].rstrip()}\n````")
        elif kind == "check":
            codes = ", ".join(dict.fromkeys(d["code"] for d in event["diagnostics"]))
            out.append(f"**check** {where}: ok = {str(event['ok']).lower()}" +
                       (f", diagnostics: {codes}" if codes else ""))
        elif kind == "summary":
            body = {k: v for k, v in event.items() if k not in ("event", "time")}
            out.append(f"**summary**:\n\n```json\n{json.dumps(body, indent=2)}\n```")
    return "\n\n".join(out) + "\n"


def main() -> int:
    section = render(run_transcript())
    if "--write" in sys.argv[1:]:
        text = DOC.read_text(encoding="utf-8")
        DOC.write_text(text[:text.index(START)] + section, encoding="utf-8")
    else:
        sys.stdout.write(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
