"""Every diagnostic code: registered, documented, and triggered by a fixture on its marked line.

A fixture is a .tl file under tests/fixtures/diagnostics/ whose lines carry `# E: code ...`
for every diagnostic expected to start on that line; the check must produce exactly those.
"""
import re
from pathlib import Path

import pytest

from tlc.api import check_source, read_source
from tlc.diagnostics import CODES, Diagnostic, render_text
from tlc.source import Source

FIXTURES = Path(__file__).parent / "fixtures" / "diagnostics"
DOCS = Path(__file__).parent.parent / "docs" / "diagnostics.md"
MARK = re.compile(r"#\s*E:\s*(.*)$")
# Codes no .tl file can trigger: tested in test_cli.py instead.
NOT_FROM_A_FILE = {"io-error", "internal-error"}


def expected_marks(path: Path) -> list[tuple[int, str]]:
    text = path.read_bytes().decode("utf-8", errors="replace")
    marks = []
    for number, line in enumerate(text.split("\n"), start=1):
        match = MARK.search(line)
        if match:
            marks += [(number, code) for code in match.group(1).split()]
    return sorted(marks)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.tl")), ids=lambda p: p.stem)
def test_fixture_reports_exactly_its_marked_diagnostics(path):
    source, prior = read_source(str(path))
    result = check_source(source, prior=prior)
    got = sorted((d.span.line, d.code) for d in result.diagnostics)
    shown = "\n".join(render_text(d, source) for d in result.diagnostics)
    assert got == expected_marks(path), shown
    for diagnostic in result.diagnostics:
        assert diagnostic.help, f"{diagnostic.code} has no help: {diagnostic.message}"


def test_every_code_has_a_fixture():
    covered = {code for path in FIXTURES.glob("*.tl") for _, code in expected_marks(path)}
    assert set(CODES) - NOT_FROM_A_FILE - covered == set()


def test_every_code_is_documented_with_an_example():
    text = DOCS.read_text(encoding="utf-8")
    for code in CODES:
        section = re.search(rf"^### `{re.escape(code)}`\n(.*?)(?=^### |\Z)", text, re.M | re.S)
        assert section, f"docs/diagnostics.md has no section for {code}"
        assert "```" in section.group(1), f"the section for {code} shows no example"


def test_text_rendering():
    source = Source("Compute Softmax S\nCompute Softmx S\n", "plan.tl")
    diagnostic = Diagnostic("unknown-op", "unknown operation `Softmx`",
                            source.span(26, 32), help="did you mean `Softmax`?")
    assert render_text(diagnostic, source) == (
        "plan.tl:2:9: error[unknown-op]: unknown operation `Softmx`\n"
        " 2 | Compute Softmx S\n"
        "   |         ^^^^^^\n"
        "  help: did you mean `Softmax`?")


def test_json_fields():
    source = Source("x\n", "p.tl")
    data = Diagnostic("syntax-error", "m", source.span(0, 1), help="h").to_json("p.tl")
    assert data == {"severity": "error", "code": "syntax-error", "message": "m", "help": "h",
                    "notes": [], "file": "p.tl", "line": 1, "column": 1, "end_line": 1,
                    "end_column": 2, "fixes": []}


def test_unregistered_codes_are_refused():
    with pytest.raises(ValueError):
        Diagnostic("no-such-code", "m")


def test_documented_examples_are_what_tlc_prints():
    """Each code's example in docs/diagnostics.md is the first line tlc prints for a fixture."""
    text = DOCS.read_text(encoding="utf-8")
    printed = set()
    for path in FIXTURES.glob("*.tl"):
        source, prior = read_source(str(path))
        for diagnostic in check_source(source, prior=prior).diagnostics:
            printed.add(render_text(diagnostic, source).splitlines()[0].replace(str(path),
                                                                                 "plan.tl"))
    shown = re.findall(r"^(plan\.tl:\d+:\d+: \w+\[[a-z-]+\]: .*)$", text, re.M)
    assert shown
    assert [line for line in shown if line not in printed] == []
