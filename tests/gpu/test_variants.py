"""Attention variants and wide head dims on the GPU present, for both backends, against the
float64 reference (tlc.runtime.check_random: fresh normal inputs, the output poisoned, every
(batch, head) compared by the peers' tolerance rule). Ampere plans are built natively for the
GPU; Turing plans run as PTX for compute_75 that the driver JIT-compiles."""
from pathlib import Path

import pytest

from tlc.runtime import check_random, load
from tlc.templates import plan

ROOT = Path(__file__).parent.parent.parent

VARIANT_EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.tl")
                          if any(word in p.stem for word in ("window", "alibi", "softcap",
                                                             "d512")))
# (Nq, Nk): equal, more keys, more queries (rows that see no key under causal), one query.
SHAPES = [(128, 128), (113, 203), (203, 113), (1, 517)]


def _load(text: str, arch: str, folder):
    return load(text, cache_dir=folder, from_ptx=arch == "sm_75")


def _sizes(kernel, nq: int, nk: int, batch: int = 2, kv_heads: int = 2) -> dict:
    group = next((p.value for p in kernel.kernel.params if p.name == "GROUP"), 1)
    return {"B": batch, "H": kv_heads * group, "Hkv": kv_heads, "Nq": nq, "Nk": nk}


@pytest.mark.parametrize("name", VARIANT_EXAMPLES)
def test_variant_example(gpu, name, tmp_path):
    text = (ROOT / "examples" / f"{name}.tl").read_text()
    arch = "sm_75" if name.endswith("sm75") else "sm_80"
    kernel = _load(text, arch, tmp_path)
    for nq, nk in SHAPES:
        verdict = check_random(kernel, _sizes(kernel, nq, nk), seed=nq + 7 * nk, whole=True)
        assert verdict.ok, (name, nq, nk, verdict.problems)


# The head dims the issue names, and 320: a last column chunk that runs past D (zero-filled).
@pytest.mark.parametrize("arch", ["sm_80", "sm_75"])
@pytest.mark.parametrize("d", [72, 80, 96, 192, 320, 512])
def test_head_dim(gpu, arch, d, tmp_path):
    causal = d in (80, 192, 512)
    kernel = _load(plan("bf16" if d % 16 else "fp16", d, causal, 2, arch), arch, tmp_path)
    for nq, nk in SHAPES[1:3]:
        verdict = check_random(kernel, _sizes(kernel, nq, nk, batch=1), seed=d + nq,
                               whole=True)
        assert verdict.ok, (arch, d, nq, nk, verdict.problems)


COMBINED = {  # every score modifier at once, and a two-sided window without causal
    "all": dict(causal=True, window=(77, 0), softcap=20.0, alibi=True),
    "two-sided window": dict(window=(40, 25)),
}


@pytest.mark.parametrize("arch", ["sm_80", "sm_75"])
@pytest.mark.parametrize("what", COMBINED)
def test_combined_variants(gpu, arch, what, tmp_path):
    options = dict(COMBINED[what])
    causal = options.pop("causal", False)
    kernel = _load(plan("fp16", 64, causal, 4, arch, **options), arch, tmp_path)
    for nq, nk in SHAPES:
        verdict = check_random(kernel, _sizes(kernel, nq, nk), seed=nq * 3 + nk, whole=True)
        assert verdict.ok, (arch, what, nq, nk, verdict.problems)
