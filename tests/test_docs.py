"""The plans shown in the docs are plans tlc accepts."""
import re
from pathlib import Path

import pytest

import tlc

DOCS = Path(__file__).parent.parent / "docs"
BLOCK = re.compile(r"^```(tl|tl-fragment)\n(.*?)^```", re.M | re.S)


def blocks():
    for path in (DOCS / "language.md", DOCS / "diagnostics.md"):  # llm.md quotes replies
        for match in BLOCK.finditer(path.read_text(encoding="utf-8")):
            line = path.read_text(encoding="utf-8")[:match.start()].count("\n") + 1
            yield pytest.param(match.group(1), match.group(2), id=f"{path.name}:{line}")


@pytest.mark.parametrize("kind, text", list(blocks()))
def test_doc_plan_checks(kind, text):
    if kind == "tl-fragment":
        text = "sketch fragment\n" + text
    result = tlc.check(text)
    assert result.ok, [f"{d.span.line}: {d.code}: {d.message}" for d in result.diagnostics]
    assert not result.diagnostics


def test_readme_commands_are_the_ci_commands():
    root = DOCS.parent
    ci = (root / ".ci" / "run").read_text()
    readme = (root / "README.md").read_text()
    test_command = ci.strip().splitlines()[-1]
    assert test_command in readme


def test_the_llm_exchange_in_the_docs_is_what_tlc_generate_sends_now():
    """docs/llm.md's repair exchange is rendered from a real run (docs/tools/llm_transcript.py):
    when a prompt or an example changes, rerun it with --write."""
    import importlib.util

    pytest.importorskip("openai")
    path = Path(__file__).resolve().parent.parent / "docs" / "tools" / "llm_transcript.py"
    spec = importlib.util.spec_from_file_location("llm_transcript", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    text = tool.DOC.read_text(encoding="utf-8")
    assert text[text.index(tool.START):] == tool.render(tool.run_transcript())


def test_the_portability_table_in_the_docs_is_what_tlc_prints(tlc_cli, monkeypatch):
    """docs/diagnostics.md shows `tlc check --arch all` on the D = 128 example as it is now."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "diagnostics.md").read_text()
    shown = re.search(r"```text\n(examples/mha_fwd_fp16_d128_sm80\.tl\n  arch .*?)```", text,
                      re.S)
    assert shown, "the sample table is missing"
    from conftest import MHA_SM80, ROOT

    monkeypatch.chdir(ROOT)
    result = tlc_cli("check", "--arch", "all", str(MHA_SM80.relative_to(ROOT)))
    assert shown.group(1) == result.out


STALE = ["arrives with the backend", "are not\nchecked yet", "not checked yet",
         "does not detect its absence", "does not check yet", "DESIGN §"]


@pytest.mark.parametrize("doc", sorted((Path(__file__).resolve().parent.parent / "docs")
                                       .glob("*.md")), ids=lambda p: p.name)
def test_docs_say_nothing_stale_and_cite_files_that_exist(doc):
    root = Path(__file__).resolve().parent.parent
    text = doc.read_text(encoding="utf-8")
    assert [s for s in STALE if s in text] == []
    cited = set(re.findall(r"\btests/[\w/]+\.py\b", text))
    assert [c for c in sorted(cited) if not (root / c).exists()] == []
    if "$OUT" in text:
        assert "`OUT` environment" in text, "say what $OUT is"


def test_tlc_load_named_in_the_docs_is_reachable():
    import tlc
    from tlc import runtime

    assert tlc.load is runtime.load


def test_without_pycuda_the_message_says_pip_install_pycuda(monkeypatch):
    import sys

    from tlc import runtime

    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    with pytest.raises(runtime.GpuUnavailable, match=r"pip install pycuda\b"):
        runtime.driver()
