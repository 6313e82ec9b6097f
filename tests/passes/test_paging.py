"""int32 tables, `with pages (table, PAGE)` and `with rows N`: a K/V cache whose sequences
have their own lengths, contiguous or paged. The checker's rules (bad-pages, and int32
tables read only by `table[...]`), the formatter, the lowering (the page looked up in the
table, the rows limited by the length) and the build with 0 spills."""
import pytest

from tlc.build import find_nvcc
from tlc.driver import build_for, check, lowered_of
from tlc.templates import DECODE_TILES, plan


def paged_plan(page=64, arch="sm_80", **options):
    options.setdefault("tiles", DECODE_TILES)
    dtype = "bf16" if arch == "sm_80" else "fp16"
    return plan(dtype, 128, group=4, arch=arch, splits=8, page=page, **options)


def codes(text, arch="sm_80"):
    return [(d.code, d.message) for d in check(text, arch=arch).diagnostics if d.is_error]


@pytest.mark.parametrize("page", [16, 64, 256])
def test_paged_plans_check_and_round_trip_through_fmt(page):
    from tlc.api import format_plan

    text = paged_plan(page)
    assert "with pages (table, PAGE)" in text and "rows lengths[b]" in text
    assert "cdiv(lengths[b], BN)" in text
    assert check(text).ok, codes(text)
    formatted, problems = format_plan(text)
    assert formatted == text and not problems


def test_a_tile_that_straddles_pages_is_refused_with_a_tile_that_fits():
    text = paged_plan(64).replace("param PAGE = 64", "param PAGE = 32")
    found = codes(text)
    assert {c for c, _ in found} == {"bad-pages"}, found
    assert "a tile of 64 rows of `K` would straddle its pages of 32 rows" in found[0][1]


@pytest.mark.parametrize("edit, code, words", [
    (("input table (B, PAGES) int32", "input table (B, PAGES) fp32"), "bad-pages",
     "names the block table, an int32 input"),
    (("input table (B, PAGES) int32", "input table (B) int32"), "bad-pages",
     "of two dimensions"),
    (("input table (B, PAGES) int32", "input table (Hkv, PAGES) int32"), "bad-pages",
     "has a row for each Hkv"),
    (("param PAGE = 64", "param PAGE = 0"), "bad-pages", "compile-time count"),
    (("cdiv(lengths[b], BN)", "cdiv(lengths[b, 0], BN)"), "bad-operands",
     "has 1 dimension(s)"),
    (("cdiv(lengths[b], BN)", "cdiv(scale[b], BN)"), "bad-operands", "not one"),
])
def test_bad_tables_and_pages_are_located_errors(edit, code, words):
    text = paged_plan(64).replace(*edit)
    found = codes(text)
    assert any(c == code and words in m for c, m in found), found


def test_an_int32_table_is_read_not_copied_and_never_an_output():
    text = paged_plan(64).replace(
        "Copy Q (BM, D) in coordinate",
        "Copy lengths (BM) in coordinate [B = b] from global to shared\n"
        "Copy Q (BM, D) in coordinate")
    assert any(c == "bad-operands" and "int32 table" in m for c, m in codes(text))
    text = paged_plan(64).replace("output O (B, H, Nq, D) bf16",
                                  "output O (B, H, Nq, D) bf16\noutput P (B) int32")
    assert any(c == "bad-operands" and "int32 output" in m for c, m in codes(text))


def test_rows_limits_a_copy_from_global_memory_only():
    text = paged_plan(64).replace("Copy O from register to shared",
                                  "Copy O from register to shared with rows 3")
    assert any(c == "bad-clause" and "`rows` limits" in m for c, m in codes(text))


def test_an_int32_scalar_is_a_runtime_size():
    text = paged_plan(64).replace("input scale fp32", "input scale fp32\ninput MaxQ int32")
    result = check(text)
    assert result.ok and "MaxQ" in result.kernel.size_names
    arguments = lowered_of(result).main.arguments
    assert [a.kind for a in arguments if a.name == "MaxQ"] == ["size"]


def test_the_lowering_looks_the_page_up_and_stops_at_the_length():
    source = lowered_of(check(paged_plan(64))).main.source
    assert "__ldg(table_g + (long long)(p_b) * table_stride0 + " in source
    assert "tlc_rows_left = __ldg(lengths_g + (p_b))" in source
    assert "% 64) * K_stride2" in source


def test_tlc_sim_says_it_does_not_run_paged_plans():
    from tlc.simulate import NotSimulated, simulate

    with pytest.raises(NotSimulated, match="int32 tables"):
        simulate(check(paged_plan(64)).kernel, {})


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
@pytest.mark.parametrize("arch, page, causal", [("sm_80", 16, False), ("sm_80", 256, True),
                                                ("sm_75", 64, True)])
def test_paged_plans_build_with_no_spills(arch, page, causal, tmp_path):
    text = paged_plan(page, arch, causal=causal, lse=True)
    lowered = lowered_of(check(text, arch=arch))
    built = build_for(lowered, arch, output="cubin", cache_dir=tmp_path)
    for kernel in lowered.kernels:
        report = built.function(kernel.name)
        assert report.spill_stores == 0 and report.spill_loads == 0, (kernel.name, report)


def test_a_packed_batch_plan_checks_places_its_rows_and_builds():
    text = plan("bf16", 128, True, group=4, varlen=True, lse=True)
    assert "input MaxQ int32" in text and "grid (cdiv(MaxQ, BM), H, B)" in text
    assert "start q_start[b], rows q_end[b] - q_start[b]" in text
    result = check(text)
    assert result.ok, codes(text)
    source = lowered_of(result).main.source
    assert "Q_g + (long long)(__ldg(q_start_g + (p_b)) + (p_m) * " in source
    assert "tlc_rows_left = (__ldg(q_end_g + (p_b)) - __ldg(q_start_g + (p_b)))" in source
