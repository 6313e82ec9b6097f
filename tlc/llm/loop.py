"""The generate loop of the paper, made reliable: a sketch first, then TL code, each checked
by tlc and repaired from its diagnostics for a bounded number of rounds."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from tlc.api import check
from tlc.diagnostics import render_text
from tlc.llm import prompts
from tlc.llm.replies import extract_plan

STAGES = ("sketch", "code", "verify")
PLAN = "plan.tl"  # the name diagnostics give the plan in a reply


@dataclass
class Attempt:
    stage: str
    round: int
    plan: str | None  # None when the reply held no plan
    errors: int
    diagnostics: list = field(default_factory=list)  # JSON form
    rejected: str | None = None  # why the reply held no plan


    def annotated(self) -> str:
        """The plan, headed by its diagnostics as comments (so it still parses)."""
        lines = [f"# tlc generate: best attempt ({self.stage} stage, round {self.round}); "
                 "tlc check reported:"]
        for d in self.diagnostics:
            lines.append(f"#   line {d['line']}: {d['severity']}[{d['code']}]: {d['message']}")
            if d.get("help"):
                lines.append(f"#     help: {d['help']}")
        return "\n".join(lines) + "\n" + (self.plan or "")


def attempt_path(output: str) -> str:
    """`plan.attempt.tl` beside `plan.tl`, or `plan.attempt-2.tl` … if that exists: an attempt
    never replaces a file."""
    import os

    stem = output[:-3] if output.endswith(".tl") else output
    candidate, number = f"{stem}.attempt.tl", 1
    while os.path.exists(candidate):
        number += 1
        candidate = f"{stem}.attempt-{number}.tl"
    return candidate


@dataclass
class Outcome:
    ok: bool
    plan: str | None
    attempts: list[Attempt]
    failed_stage: str | None = None

    @property
    def best(self) -> Attempt | None:
        """The attempt closest to a plan: of the latest stage reached, the fewest errors."""
        plans = [a for a in self.attempts if a.plan is not None]
        if not plans:
            return None
        return min(plans, key=lambda a: (-STAGES.index(a.stage), a.errors, -a.round))

    def summary(self) -> dict:
        rounds = {stage: sum(1 for a in self.attempts if a.stage == stage) for stage in STAGES}
        if not rounds["verify"]:
            del rounds["verify"]  # a run without --verify
        return {"ok": self.ok, "rounds": rounds, "failed_stage": self.failed_stage,
                "errors_per_round": [{"stage": a.stage, "round": a.round, "errors": a.errors,
                                      "rejected": a.rejected} for a in self.attempts]}


def generate(task: str, arch: str, model, max_rounds: int, transcript, progress=None,
             verify=None, optimize_rounds: int = 0) -> Outcome:
    """Ask the model for a sketch, then for TL code for `arch`; repair each from diagnostics.
    With `verify` (a plan -> tlc.evaluate-style dict), also run each accepted plan: a wrong
    result goes back to the model, a correct one with its TFLOP/s for `optimize_rounds` more
    tries; the best correct plan is the outcome."""
    messages = [{"role": "system", "content": prompts.system_prompt(arch)},
                {"role": "user", "content": prompts.sketch_prompt(task, arch, max_rounds)}]
    transcript.write("start", task=task, arch=arch, model=model.model,
                     prompts=prompts.VERSION, max_rounds=max_rounds)
    attempts: list[Attempt] = []
    sketch = _stage("sketch", messages, lambda text: check(text, sketch=True, path=PLAN),
                    model, max_rounds, transcript, attempts, progress)
    if sketch is None:
        return _finish(Outcome(False, None, attempts, "sketch"), transcript)
    messages.append({"role": "user", "content": prompts.code_prompt(sketch, arch, max_rounds)})
    checker = lambda text: check(text, arch=arch, path=PLAN)  # noqa: E731
    plan = _stage("code", messages, checker, model, max_rounds, transcript, attempts, progress)
    if plan is None or verify is None:
        return _finish(Outcome(plan is not None, plan, attempts, None if plan else "code"),
                       transcript)
    best = _verify(plan, verify, messages, checker, model, max_rounds, optimize_rounds,
                   transcript, attempts, progress)
    return _finish(Outcome(best is not None, best, attempts, None if best else "verify"),
                   transcript)


def _verify(plan, verify, messages, checker, model, max_rounds, optimize_rounds, transcript,
            attempts, progress):
    """Run plans the checker accepted; feed back wrong results and speeds; keep the best."""
    best, best_tflops, fixes, faster = None, 0.0, 0, 0
    while True:
        found = verify(plan)
        transcript.write("verify", **{k: v for k, v in found.items() if k != "diagnostics"})
        correct = bool(found.get("correct"))
        attempts.append(Attempt("verify", len([a for a in attempts if a.stage == "verify"]) + 1,
                                plan, 0 if correct else 1))
        _report(progress, "verify", attempts[-1].round,
                f"correct, {found.get('tflops', 0):.1f} TFLOP/s" if correct else
                f"not correct: {found.get('error') or found.get('verdict', {}).get('problems')}")
        if correct and not found.get("tflops"):
            return plan  # verified on the CPU (tlc sim): correct, and no speed to improve
        if correct and found["tflops"] > best_tflops:
            best, best_tflops = plan, found["tflops"]
        if correct:
            if faster == optimize_rounds:
                return best
            faster += 1
            prompt = prompts.faster_prompt(found["device"], found["tflops"], found["shape"],
                                           best_tflops)
        else:
            if fixes == max_rounds:
                return best
            fixes += 1
            problems = found.get("error") or "; ".join(found["verdict"]["problems"])
            prompt = prompts.wrong_prompt(plan, found.get("device", "the GPU"), problems)
        messages.append({"role": "user", "content": prompt})
        plan = _stage("code", messages, checker, model, max_rounds, transcript, attempts,
                      progress)
        if plan is None:
            return best


def _stage(stage, messages, checker, model, max_rounds, transcript, attempts, progress):
    for number in range(1, max_rounds + 1):
        transcript.write("request", stage=stage, round=number, content=messages[-1]["content"])
        reply = model.complete(messages)
        transcript.write("reply", stage=stage, round=number, content=reply)
        messages.append({"role": "assistant", "content": reply})
        extracted = extract_plan(reply)
        if extracted.plan is None:
            attempts.append(Attempt(stage, number, None, 1, rejected=extracted.reason))
            transcript.write("rejected", stage=stage, round=number, reason=extracted.reason)
            messages.append({"role": "user", "content": prompts.reject_prompt(extracted.reason)})
            _report(progress, stage, number, f"reply rejected: {extracted.reason}")
            continue
        result = checker(extracted.plan)
        errors = [d for d in result.diagnostics if d.is_error]
        found = [d.to_json(PLAN) for d in result.diagnostics]
        attempts.append(Attempt(stage, number, extracted.plan, len(errors), found))
        transcript.write("check", stage=stage, round=number, ok=result.ok, diagnostics=found)
        _report(progress, stage, number, "accepted" if result.ok else
                f"{len(errors)} error{'' if len(errors) == 1 else 's'}")
        if result.ok:
            return extracted.plan
        text = "\n".join(render_text(d, result.source) for d in result.diagnostics)
        messages.append({"role": "user", "content": prompts.repair_prompt(
            extracted.plan, json.dumps(found, indent=1), text)})
    return None


def _report(progress, stage, number, what) -> None:
    if progress:
        progress(f"{stage} round {number}: {what}")


def _finish(outcome: Outcome, transcript) -> Outcome:
    transcript.write("summary", **outcome.summary())
    return outcome
