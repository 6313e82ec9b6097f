"""`tlc generate` against a local fake endpoint: the real openai client, scripted replies."""
import json

import pytest

from conftest import ROOT
from fake_llm import FakeLLM

pytest.importorskip("openai")

KEY = "sk-test-secret-0123456789"
SKETCH = (ROOT / "examples" / "paper_sketch.tl").read_text()
GOOD = (ROOT / "examples" / "mha_fwd_fp16_d128_sm80.tl").read_text()
NO_RESHAPE = GOOD.replace("  Reshape S from (MMA_C, BM, BN) to (MMA_A, BM, BN) with dtype fp16\n",
                          "")
CUDA = "Here is the kernel:\n```cuda\n__global__ void attn(half* q) { }\n```\n"


def tl(text: str) -> dict:
    return {"reply": f"Here is the plan.\n\n```tl\n{text}```\n"}


@pytest.fixture
def generate(tlc_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)

    def run(script, *extra, rounds=3):
        with FakeLLM(script) as server:
            result = tlc_cli("generate", "MHA forward, D=128, fp16", "--arch", "sm_80",
                             "--model", "fake", "--base-url", server.url, "--max-rounds",
                             str(rounds), "--transcript", "run.jsonl", "--timeout", "1", *extra)
        transcript = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text()
                      .splitlines()] if (tmp_path / "run.jsonl").exists() else []
        return result, server, transcript

    return run


def test_a_broken_plan_is_repaired_from_its_diagnostics(generate, tmp_path):
    result, server, transcript = generate([tl(SKETCH), tl(NO_RESHAPE), tl(GOOD)],
                                          "-o", "plan.tl")
    assert result.code == 0, result.err
    assert (tmp_path / "plan.tl").read_text() == GOOD
    assert len(server.requests) == 3
    repair = server.user_messages(2)
    assert "missing-reshape" in repair and "Reshape S from (MMA_C, BM, BN)" in repair
    assert "Compute GEMM S, V and accumulate O" in repair  # the rejected plan goes back too
    summary = transcript[-1]
    assert summary["event"] == "summary" and summary["ok"]
    assert summary["rounds"] == {"sketch": 1, "code": 2}
    assert [r["errors"] for r in summary["errors_per_round"]] == [0, 1, 0]
    text = (tmp_path / "run.jsonl").read_text()
    assert KEY not in text and KEY not in result.out + result.err


def test_garbage_and_cuda_are_rejected_never_run(generate):
    script = [{"reply": "I would rather talk about the weather."}, tl(SKETCH), {"reply": CUDA},
              tl(GOOD)]
    result, server, transcript = generate(script)
    assert result.code == 0 and result.out == GOOD
    rejected = [e for e in transcript if e["event"] == "rejected"]
    assert [e["stage"] for e in rejected] == ["sketch", "code"]
    assert "CUDA" in rejected[1]["reason"] or "cuda" in rejected[1]["reason"]
    assert "not accepted" in server.user_messages(1) and "cuda" in server.user_messages(3)


def test_an_enormous_reply_is_rejected(generate):
    result, server, transcript = generate([{"reply": "Allocate " * 20000}, tl(SKETCH),
                                           tl(GOOD)])
    assert result.code == 0
    assert "characters long" in [e for e in transcript if e["event"] == "rejected"][0]["reason"]


def test_a_timeout_and_a_429_are_retried(generate):
    script = [{"delay": 2.5, "reply": "too late"}, tl(SKETCH),
              {"status": 429, "headers": {"retry-after": "0"}}, tl(GOOD)]
    result, server, transcript = generate(script)
    assert result.code == 0, result.err
    retries = [e for e in transcript if e["event"] == "retry"]
    assert [e["error"] for e in retries] == ["APITimeoutError", "RateLimitError (HTTP 429)"]
    assert retries[1]["delay"] == 0.0


def test_a_model_that_never_converges(generate, tmp_path):
    (tmp_path / "plan.attempt.tl").write_text("# mine\n")
    result, server, transcript = generate([tl(SKETCH)] + [tl(NO_RESHAPE)] * 2, "-o", "plan.tl",
                                          rounds=2)
    assert result.code == 1
    assert not (tmp_path / "plan.tl").exists()
    assert (tmp_path / "plan.attempt.tl").read_text() == "# mine\n"  # never overwritten
    attempt = (tmp_path / "plan.attempt-2.tl").read_text()
    assert "error[missing-reshape]" in attempt and attempt.endswith(NO_RESHAPE)
    assert "no plan passed tlc check in 2 round(s) of the code stage" in result.err
    assert transcript[-1]["rounds"] == {"sketch": 1, "code": 2}


def test_an_unreachable_model_fails_cleanly(generate):
    result, server, transcript = generate([{"status": 500}] * 4)
    assert result.code == 1
    assert "could not be reached" in result.err and "gave up after 4 attempts" in result.err
    assert "Traceback" not in result.err


def test_existing_output_is_refused_before_any_request(generate, tmp_path):
    (tmp_path / "plan.tl").write_text("# mine\n")
    result, server, _ = generate([tl(SKETCH)], "-o", "plan.tl")
    assert result.code == 2 and "--force" in result.err
    assert server.requests == [] and (tmp_path / "plan.tl").read_text() == "# mine\n"


def test_no_key_for_a_remote_endpoint_is_a_usage_error(tlc_cli, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = tlc_cli("generate", "x", "--model", "m", "--base-url", "https://example.invalid/v1")
    assert result.code == 2 and "OPENAI_API_KEY" in result.err


def test_prompts_come_from_the_tables():
    from tlc.arch import ARCHS
    from tlc.language import OPS
    from tlc.llm import prompts

    system = prompts.system_prompt("sm_75")
    assert all(spec.example in system for spec in OPS.values())
    assert str(ARCHS["sm_75"].smem_per_block) in system and "m16n8k8" in system
    assert "m16n8k16" not in prompts.hardware_card(ARCHS["sm_75"])
    assert "kernel mha_fwd_fp16_d64 for sm_75" in prompts.code_prompt(SKETCH, "sm_75")


def test_verify_feeds_back_a_wrong_result_then_keeps_the_fastest(generate, monkeypatch):
    """--verify with tlc.evaluate replaced by a scripted one (the CPU has no GPU): a wrong
    result is sent back, a correct plan gets an optimisation round, the fastest is kept."""
    faster = GOOD.replace("param STAGES = 2", "param STAGES = 3")
    results = iter([
        {"ok": True, "correct": False, "verdict": {"problems": ["max error 0.5 exceeds 0.01"]},
         "device": "a GPU"},
        {"ok": True, "correct": True, "tflops": 200.0, "device": "a GPU", "shape": {"B": 1}},
        {"ok": True, "correct": True, "tflops": 250.0, "device": "a GPU", "shape": {"B": 1}},
    ])
    monkeypatch.setattr("tlc.llm.command._verifier", lambda args: lambda plan: next(results))
    script = [tl(SKETCH), tl(GOOD), tl(GOOD), tl(faster)]
    result, server, transcript = generate(script, "--verify", "--optimize-rounds", "1")
    assert result.code == 0, result.err
    assert result.out == faster
    assert "computed a wrong result: max error 0.5 exceeds 0.01" in server.user_messages(2)
    assert "200.0 TFLOP/s" in server.user_messages(3)
    assert [e["correct"] for e in transcript if e["event"] == "verify"] == [False, True, True]
    assert transcript[-1]["rounds"] == {"sketch": 1, "code": 3, "verify": 3}


def test_api_is_json_ready(tmp_path):
    import tlc

    compiled = tlc.compile(GOOD, out_dir=str(tmp_path))
    json.dumps(compiled)
    assert compiled["ok"] and any(f.endswith(".cu") for f in compiled["files"])
    bad = tlc.compile(NO_RESHAPE, out_dir=str(tmp_path / "bad"))
    assert not bad["ok"] and bad["diagnostics"][0]["code"] == "missing-reshape"
    evaluated = tlc.evaluate(NO_RESHAPE, {"B": 1, "H": 2, "N": 64})
    json.dumps(evaluated)
    assert evaluated["ok"] is False and evaluated["diagnostics"]


def test_verify_without_a_gpu_uses_tlc_sim(generate):
    """No GPU here: --verify runs each accepted plan on the CPU with tlc sim; a wrong plan is
    sent back with what was wrong, a correct one is kept (there is no speed to improve)."""
    wrong = GOOD.replace("  Compute Softmax S\n", "  Compute Softmax S\n  Compute Softmax S\n")
    from tlc.llm.command import simulated

    assert simulated(GOOD, {"N": 4096}, "sm_80")["correct"]
    assert not simulated(wrong, {"N": 4096}, "sm_80")["correct"]
    result, server, transcript = generate([tl(SKETCH), tl(GOOD)], "--verify")
    assert result.code == 0, result.err
    assert "verified on the CPU by tlc sim" in result.err
    verified = [e for e in transcript if e["event"] == "verify"]
    assert len(verified) == 1 and verified[0]["correct"] and verified[0]["device"] == "the CPU (tlc sim)"
