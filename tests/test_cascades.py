"""One mistake, one error: what follows from an earlier error is left out, and a one-word
"did you mean" carries the edit that `tlc fmt --fix` makes."""
import pytest

import tlc
from conftest import MHA_SM80

MHA = MHA_SM80.read_text()


def codes(text):
    return [d.code for d in tlc.check(text).diagnostics]


def test_a_four_extent_grid_is_one_error_whose_help_folds_an_extent():
    text = MHA.replace("grid (cdiv(Nq, BM), H, B) as (m, h, b)",
                       "grid (cdiv(Nq, BM), H, B, 2) as (m, h, b, z)")
    result = tlc.check(text)
    assert [d.code for d in result.diagnostics] == ["bad-grid"]
    assert "at most three" in result.diagnostics[0].message
    assert "H * B" in result.diagnostics[0].help


def test_the_folded_grid_the_help_shows_checks_clean():
    text = (MHA.replace("grid (cdiv(Nq, BM), H, B) as (m, h, b)",
                        "grid (cdiv(Nq, BM), H * B) as (m, hb)")
            .replace("B = b, H = h,", "B = hb / H, H = hb % H,"))
    assert tlc.check(text).ok


def test_a_grid_with_too_few_indices_does_not_cascade():
    text = MHA.replace("as (m, h, b)", "as (m, h)")
    assert codes(text) == ["bad-grid"]


@pytest.mark.parametrize("old, new", [("Allocate S in register", "Allocate S in local"),
                                      ("input V (B, H, Nk, D) fp16",
                                       "input V (B, H, Nk, D) float16"),
                                      ("Allocate K in shared", "Allocate K in shard")])
def test_a_wrong_word_is_one_error_and_fix_makes_the_plan_pass(old, new):
    text = MHA.replace(old, new, 1)
    assert len(codes(text)) == 1, codes(text)
    fixed, result = tlc.fix_plan(text)
    assert result.ok and new.split()[-1] not in fixed.replace(old, "")


@pytest.mark.parametrize("old, new", [("Compute Softmax S", "Compute SoftMax S"),
                                      ("Compute Multiply S, scale", "Compute Multiply S, scal"),
                                      ("Nk = n]", "N = n]"),
                                      ("cdiv(Nk, BN)", "cdv(Nk, BN)")])
def test_did_you_mean_carries_a_machine_fix(old, new):
    text = MHA.replace(old, new)
    result = tlc.check(text)
    assert result.diagnostics and all(d.fixes for d in result.diagnostics)
    fixed, after = tlc.fix_plan(text)
    assert after.ok


def test_a_block_index_is_not_fixed_into_a_size_of_another_case():
    text = MHA.replace("grid (cdiv(Nq, BM), H, B) as (m, h, b)",
                       "grid (cdiv(Nq, BM), H, B) as (m, hh, bb)")
    result = tlc.check(text)
    assert {d.code for d in result.diagnostics} == {"undefined-name"}
    assert all(not d.fixes or d.fixes[0].text not in ("B", "H") for d in result.diagnostics)


def test_a_grid_that_rounds_down_is_an_error_with_its_fix():
    text = MHA.replace("grid (cdiv(Nq, BM), H, B)", "grid (Nq / BM, H, B)")
    result = tlc.check(text)
    assert [d.code for d in result.diagnostics] == ["grid-coverage"]
    assert "never computed" in result.diagnostics[0].message
    fixed, after = tlc.fix_plan(text)
    assert after.ok and "grid (cdiv(Nq, BM), H, B)" in fixed


def test_any_runtime_size_divided_in_the_grid_is_caught_and_a_product_is_not():
    text = MHA.replace("grid (cdiv(Nq, BM), H, B)", "grid (cdiv(Nq, BM), H, B / 1)")
    assert "grid-coverage" in [d.code for d in tlc.check(text).diagnostics]
    text = MHA.replace("grid (cdiv(Nq, BM), H, B)", "grid (cdiv(Nq, BM), H, B * 1)")
    assert tlc.check(text).ok


def test_get_instead_of_accumulate_in_the_loop_carries_its_fix():
    text = MHA.replace("Compute GEMM S, V and accumulate O", "Compute GEMM S, V and get O")
    result = tlc.check(text)
    assert [d.code for d in result.diagnostics] == ["online-softmax"]
    assert result.diagnostics[0].fixes
    fixed, after = tlc.fix_plan(text)
    assert after.ok and "Compute GEMM S, V and accumulate O" in fixed


def test_the_warp_layout_help_agrees_with_the_backends():
    text = MHA.replace("and get S with warps (WARPS, 1)", "and get S with warps (1, WARPS)")
    helps = {d.help for d in tlc.check(text).diagnostics if "warps (" in (d.help or "")}
    import re

    assert len({re.search(r"warps \(\d+, \d+\)", h).group() for h in helps}) == 1, helps
