"""Property tests: no input gives a traceback; formatting is idempotent and keeps meaning."""
import random
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from conftest import EXAMPLES
from tlc.api import check_source, decode, format_plan
from tlc.diagnostics import render_text
from tlc.grammar.parser import build_parser, parse
from tlc.source import Source

EXAMPLE_TEXTS = [path.read_text() for path in EXAMPLES]
_WORD = re.compile(r"[A-Za-z_]+")


def _grammar_strategy():
    """Plans drawn from the grammar itself. Words are padded with spaces, as a person would
    write them, so that a keyword and the name after it do not run together."""
    parser = build_parser()
    keywords = {t.pattern.value for t in parser.terminals
                if t.pattern.type == "str" and _WORD.fullmatch(t.pattern.value)}
    explicit = {t.name: st.just(f" {t.pattern.value} ") for t in parser.terminals
                if t.pattern.type == "str" and t.pattern.value in keywords}
    explicit["NAME"] = (st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
                        .filter(lambda name: name not in keywords).map(lambda n: f" {n} "))
    explicit["INT"] = st.integers(0, 10**12).map(lambda n: f" {n} ")
    # A comment runs to the end of its line, so one drawn between two tokens, or at the end of a
    # drawn newline, would swallow the rest of the statement: draw whole comment lines only.
    explicit["COMMENT"] = st.just(" ")
    explicit["_NL"] = st.sampled_from(["\n", "\n\n", "\r\n", "\n# a comment\n", "\n\t\n  "])
    explicit["DECIMAL"] = st.sampled_from([" 0.5 ", " 30.0 ", " 1e-3 ", " 2.5E+4 "])
    return from_lark(parser, start="file", explicit=explicit)


PLANS = _grammar_strategy()


def assert_only_diagnostics(text: str, sketch: bool = False):
    result = check_source(Source(text, "fuzz.tl"), sketch=sketch)
    for diagnostic in result.diagnostics:
        assert diagnostic.code != "internal-error", diagnostic.message
        assert diagnostic.span.line >= 1 and diagnostic.span.column >= 1
        render_text(diagnostic, result.source)
    return result


# ---- (a) never a traceback ----

@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PLANS)
def test_grammar_drawn_plans_parse_and_check_without_internal_errors(text):
    assert parse(Source(text)).plan is not None, text
    assert_only_diagnostics(text)
    assert_only_diagnostics(text, sketch=True)


def mutate(text: str, rng: random.Random) -> str:
    """One of the mistakes a person, an LLM or a broken pipe makes to a plan."""
    tokens = re.findall(r"\w+|[^\w\s]|\s+", text)
    if not tokens:  # an earlier mutation left nothing: start again from noise
        return "".join(rng.choice("()[],=:+-*/%^T# \nabcAllocate") for _ in range(20))
    kind = rng.randrange(9)
    i = rng.randrange(len(tokens))
    if kind == 0:
        del tokens[i]
    elif kind == 1:
        tokens.insert(i, tokens[i])
    elif kind == 2 and i + 1 < len(tokens):
        tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
    elif kind == 3:
        numbers = [k for k, t in enumerate(tokens) if t.isdigit()]
        if numbers:
            tokens[rng.choice(numbers)] = rng.choice(["99999999999999999999999", "-1", "0",
                                                      "-2147483649", "1e999"])
    elif kind == 4:
        tokens.insert(i, rng.choice(["é", "→", "\u200b", "\x00", "\ufffd", "😀", "\r", "\t"]))
    elif kind == 5:
        return text[:rng.randrange(len(text) + 1)]
    elif kind == 6:
        return "".join(rng.choice("()[],=:+-*/%^T# \nabcAllocate") for _ in range(80))
    elif kind == 7:
        words = [k for k, t in enumerate(tokens) if t.isalpha()]
        if words:
            k = rng.choice(words)
            tokens[k] = tokens[k].swapcase() if rng.random() < 0.5 else tokens[k][::-1]
    else:
        lines = text.split("\n")
        rng.shuffle(lines)
        return "\n".join(lines)
    return "".join(tokens)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(EXAMPLE_TEXTS), st.lists(st.integers(0, 2**32), min_size=1,
                                                 max_size=4))
def test_mutated_examples_give_only_diagnostics(text, seeds):
    for seed in seeds:
        text = mutate(text, random.Random(seed))
    assert_only_diagnostics(text)
    formatted, _ = format_plan(text)
    if formatted is not None:
        assert format_plan(formatted)[0] == formatted


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_give_only_diagnostics(data):
    source, prior = decode(data, "bytes.tl")
    result = check_source(source, prior=prior)
    assert all(d.code != "internal-error" for d in result.diagnostics)
    for diagnostic in result.diagnostics:
        render_text(diagnostic, source)


def test_a_float_loop_bound_is_a_diagnostic_not_an_internal_error():
    """Found by test_mutated_examples_give_only_diagnostics: `for c = 1e999: cdiv(D, DC)` in
    the D = 512 Turing example stopped the output-coverage check (int(inf))."""
    path = next(p for p in EXAMPLES if p.stem == "mha_fwd_fp16_d512_sm75")
    text = path.read_text().replace(
        "for c = 0: cdiv(D, DC)", "for c = 1e999: cdiv(D, DC)")
    result = assert_only_diagnostics(text)
    assert [d.code for d in result.diagnostics if d.is_error] == ["not-integer"]


def test_a_grid_extent_naming_its_own_index_is_a_bad_grid():
    """Found by test_mutated_examples_give_only_diagnostics: `grid (cdiv(Nq, BM), h, B) as
    (m, h, b)` reached the output-coverage check, which could not size the grid."""
    path = next(p for p in EXAMPLES if p.stem == "mha_fwd_fp16_d512_sm75")
    text = path.read_text().replace("grid (cdiv(Nq, BM), H, B)", "grid (cdiv(Nq, BM), h, B)")
    result = assert_only_diagnostics(text)
    assert [d.code for d in result.diagnostics if d.is_error] == ["bad-grid"]


def test_a_query_tile_of_one_dimension_is_a_shape_mismatch():
    """Found by test_mutated_examples_give_only_diagnostics: `Copy Q ( D) ...` in the causal
    ALiBi example reached the mask-coverage check, which read the tile's rows (IndexError)."""
    path = next(p for p in EXAMPLES if p.stem == "alibi_causal_fwd_bf16_d128_sm80")
    text = path.read_text().replace("Copy Q (BM, D) in coordinate", "Copy Q ( D) in coordinate")
    result = assert_only_diagnostics(text)
    assert "shape-mismatch" in [d.code for d in result.diagnostics if d.is_error]


def test_empty_file():
    codes = [d.code for d in assert_only_diagnostics("").diagnostics]
    assert "empty-plan" in codes


# ---- (b) formatting ----

@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PLANS)
def test_format_is_idempotent_and_keeps_the_plan(text):
    formatted, problems = format_plan(text)
    assert problems == ()
    assert format_plan(formatted)[0] == formatted
    assert parse(Source(formatted)).plan == parse(Source(text)).plan


def test_examples_round_trip():
    for text in EXAMPLE_TEXTS:
        formatted, _ = format_plan(text)
        assert formatted == text
        assert parse(Source(formatted)).plan == parse(Source(text)).plan
