"""What a backend cannot lower is refused by `tlc check` for its target, not by `tlc compile`."""
from pathlib import Path

from tlc.api import check

ALIBI = (Path(__file__).resolve().parents[2] / "examples" /
         "alibi_causal_fwd_bf16_d128_sm80.tl").read_text()


def test_a_score_update_into_another_tile_is_refused_for_a_target():
    text = (ALIBI.replace("slopes and get new S", "slopes and get T")
            .replace("Allocate S in register (BM, BN)\n", "Allocate S in register (BM, BN)\n"
                     "Allocate T in register (BM, BN) with dtype fp32\n")
            .replace("param BN = 32", "param BN = 16"))
    found = [(d.code, d.help) for d in check(text).diagnostics]
    assert found == [("backend-unsupported", "write `and get new S`")]
    assert check(text.replace(" for sm_80", "")).ok  # the language allows it
