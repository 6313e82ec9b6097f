"""The sm_90a lowering on the CPU: what `tlc check --arch sm_90a` accepts builds for sm_90a with
no spills and the shared memory the checker counted, and its SASS runs Hopper's instructions
where they matter: HGMMA inside the key loop (no mma.sync fallback), TMA loads, and the
register hand-over (USETMAXREG) between the producer and the consumers. Running the kernels
is tests/gpu/test_sm90a_attention.py."""
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlc.api import check
from tlc.build import build, find_cuobjdump, find_nvcc, sass

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*_sm90a.tl"))
needs_nvcc = pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not on this machine")
needs_cuobjdump = pytest.mark.skipif(
    find_nvcc() is None or find_cuobjdump() is None,
    reason="nvcc or cuobjdump (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm) is not "
           "on this machine")


def loops(code: str) -> list[tuple[int, int]]:
    """(first, last) instruction addresses of every backward branch's range: the loops."""
    found = []
    for at, target in re.findall(r"/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P\d\s+)?BRA(?:\.\S+)? 0x([0-9a-f]+)",
                                 code):
        if int(target, 16) < int(at, 16):
            found.append((int(target, 16), int(at, 16)))
    return found


def addresses(code: str, opcode: str) -> list[int]:
    return [int(a, 16) for a in re.findall(rf"/\*([0-9a-f]{{4,}})\*/\s+(?:@!?U?P\d\s+)?{opcode}\b",
                                           code)]


@needs_cuobjdump
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_sass_has_hgmma_in_the_key_loop(path, tmp_path):
    result = check(path.read_text())
    built = build(result.lowered.main.source, "sm_90a", cache_dir=tmp_path)
    code = sass(built.path)
    hgmma = addresses(code, "HGMMA")
    # the key loop: the backward branch whose range holds the MMAs
    assert hgmma and any(all(first <= a <= last for a in hgmma) for first, last in loops(code))
    assert "UTMALDG.4D" in code and code.count("USETMAXREG") in (0, 2)
    assert "HMMA" not in code.replace("HGMMA", "")  # no mma.sync anywhere
    if result.facts["threads"] >= 256:  # two consumer warpgroups: registers move to them
        assert code.count("USETMAXREG") == 2


SOUND = (ROOT / "examples" / "mha_fwd_fp16_d128_sm90a.tl").read_text()


@needs_nvcc
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(d=st.sampled_from([32, 40, 64, 72, 96, 128, 192, 256]), bm=st.sampled_from([64, 128, 192]),
       bn=st.sampled_from([64, 128]), warps=st.sampled_from([4, 8, 12]),
       stages=st.integers(1, 3), causal=st.booleans())
def test_what_the_checker_accepts_for_sm90a_builds_without_spills(d, bm, bn, warps, stages,
                                                                  causal, tmp_path_factory):
    mma_o = 128 if -(-d // 64) % 2 == 0 else 64  # P·V's N in whole 64-column panels
    text = (SOUND.replace("param D = 128", f"param D = {d}")
            .replace("param BM = 128", f"param BM = {bm}")
            .replace("param BN = 128", f"param BN = {bn}")
            .replace("param WARPS = 8", f"param WARPS = {warps}")
            .replace("param STAGES = 2", f"param STAGES = {stages}")
            .replace("get S with warps (WARPS, 1), mma m64n128k16",
                     f"get S with warps (WARPS, 1), mma m64n{bn}k16")
            .replace("accumulate O with warps (WARPS, 1), mma m64n128k16",
                     f"accumulate O with warps (WARPS, 1), mma m64n{mma_o}k16"))
    if causal:
        text = text.replace("for n = 0: cdiv(Nk, BN)",
                            "for n = 0: cdiv(min(Nk, (m + 1) * BM + Nk - Nq), BN)").replace(
            "  Compute Softmax S", "  Compute Mask S with causal\n  Compute Softmax S")
    result = check(text, arch="sm_90a")
    if not result.ok:
        assert not any(x.code == "internal-error" for x in result.diagnostics)
        return
    kernel = result.lowered.main
    report = build(kernel.source, "sm_90a", cache_dir=tmp_path_factory.mktemp("k")).function(
        kernel.name)
    assert report.spill_stores == report.spill_loads == 0, (d, bm, bn, warps, stages)
    assert kernel.shared_memory == result.facts["shared_memory"].total


def test_tune_varies_the_tile_and_the_wgmma_shape_follows():
    """`tlc tune` on an sm_90a plan: a BN of 64 takes m64n64k16 for Q·K^T (the checker's fix,
    applied to the candidate), and every candidate's params are the ones it is listed with."""
    from tlc.tune import candidates, declared, space_of

    text = SOUND
    found, _ = candidates(text, "sm_90a", space_of(text))
    narrow = [c for c in found if c.values["BN"] == 64]
    assert narrow and all("get S with warps (WARPS, 1), mma m64n64k16" in c.text for c in narrow)
    for c in found:
        params = declared(c.text)
        assert all(params[name] == str(value) for name, value in c.values.items())
        assert c.check.ok and c.values["BM"] == 16 * c.values["WARPS"]


QCOPY = "Copy Q (BM, D) in coordinate [B = b, H = h, Nq = m] from global to shared\n"


def test_a_repeated_copy_of_q_is_issued_once():
    """A drawn plan that copies Q twice killed the CUDA context on the H200: the second TMA
    copy was still landing when the block exited. A repeat of the same Copy is issued once."""
    text = (ROOT / "examples" / "softcap_fwd_bf16_d256_sm90a.tl").read_text()
    assert QCOPY in text
    once, twice = check(text, arch="sm_90a"), check(text.replace(QCOPY, QCOPY * 2),
                                                     arch="sm_90a")
    assert twice.ok, twice.diagnostics
    code = twice.lowered.source
    assert code.count("&Q_map, &tlc_bar[0]") == 4  # four 64-column panels, once
    assert once.lowered.source.count("mbarrier_init") == code.count("mbarrier_init")
    assert re.findall(r"i < (\d+); \+\+i\) tlc::sm90a::mbarrier_init", code) == \
        re.findall(r"i < (\d+); \+\+i\) tlc::sm90a::mbarrier_init", once.lowered.source)


def test_a_second_copy_of_q_from_elsewhere_is_refused():
    text = (ROOT / "examples" / "mha_fwd_fp16_d128_sm90a.tl").read_text()
    other = QCOPY.replace("Nq = m]", "Nq = m + 1]")
    result = check(text.replace(QCOPY, QCOPY + other), arch="sm_90a")
    assert [d.code for d in result.diagnostics] == ["backend-unsupported"]
    diagnostic = result.diagnostics[0]
    assert "either order" in diagnostic.message and diagnostic.span.line == \
        text.splitlines().index(QCOPY.strip()) + 2


@needs_nvcc
def test_a_d64_template_plan_runs_two_blocks_an_sm():
    """At D = 64 the template takes one consumer warpgroup, two blocks an SM: launch bounds
    that say so, ptxas within half the register file at entry (128 a thread), setmaxnreg to
    the 232 the checker allowed, and no spills."""
    from tlc.templates import plan

    result = check(plan("bf16", 64, True, 1, arch="sm_90a"), arch="sm_90a")
    kernel = result.lowered.main
    assert "__launch_bounds__(256, 2)" in kernel.source
    assert "registers_increase<232>" in kernel.source
    assert "registers_decrease<24>" in kernel.source
    report = build(result.lowered.source, "sm_90a").function(kernel.name)
    assert report.registers <= 128 and report.spill_stores == report.spill_loads == 0
    assert 2 * (kernel.shared_memory + 1024) <= 228 * 1024


def test_a_head_dim_that_ends_inside_a_panel_is_computed_to_the_panel_end():
    """D = 72: each tile takes two whole 64-column panels (shared memory counts them), TMA
    announces the whole boxes (their zero fill included), Q·K^T runs five 16-deep steps (the
    fifth half zeros), P·V accumulates 128 columns, and only O's 72 (nine n-tiles) are
    stored."""
    text = (SOUND.replace("param D = 128", "param D = 72"))
    result = check(text, arch="sm_90a")
    assert result.ok, result.diagnostics
    source = result.lowered.main.source
    assert "mbarrier_arrive_expect_tx(&tlc_bar[0], 32768);  // Copy Q (128 x 72)" in source
    assert source.count("&Q_map, &tlc_bar[0], 64,") == 1  # the second panel's box
    assert "for (int kk = 0; kk < 5; ++kk)" in source
    assert "float O_acc[1][16][4]" in source
    assert "for (int j = 0; j < 9; ++j) *reinterpret_cast<uint32_t*>(O_s + tlc_row * 80" in source
    # Q, and K and V two stages each, in whole panels; O's shared tile padded rows of 80
    panels = (128 * 128 * 2) * (1 + 2 + 2)
    assert result.facts["shared_memory"].total >= panels + 128 * 80 * 2


def test_a_wgmma_too_wide_for_a_head_dim_in_panels_gets_the_panel_width():
    """D = 32 is one 64-column panel: P·V with m64n128k16 would read past V's tile; the fix
    is the panel's width, which the backend has."""
    text = (SOUND.replace("param D = 128", "param D = 32"))
    result = check(text, arch="sm_90a")
    found = [d for d in result.diagnostics if d.code == "tile-mma"]
    assert found and "64 in whole 64-column panels" in found[0].message
    assert "m64n64k16" in found[0].help
    fixed = text.replace("accumulate O with warps (WARPS, 1), mma m64n128k16",
                         "accumulate O with warps (WARPS, 1), mma m64n64k16")
    assert check(fixed, arch="sm_90a").ok


def test_a_k_major_wgmma_operand_is_not_padded_past_its_rows():
    """Q·K^T's N is K's rows (the keys): the next tile follows them in shared memory, not
    zeros, so a BN that is not a multiple of the MMA's N stays refused."""
    text = (SOUND.replace("param BN = 128", "param BN = 96")
            .replace("get S with warps (WARPS, 1), mma m64n128k16",
                     "get S with warps (WARPS, 1), mma m64n64k16"))
    result = check(text, arch="sm_90a")
    assert not result.ok
    assert any(d.code == "tile-mma" and "N = BN = 96 is not a multiple of 64" in d.message
               for d in result.diagnostics)


SPLIT = (ROOT / "examples" / "mha_fwd_fp16_d512_sm90a.tl").read_text()


def test_a_column_split_keeps_one_ring_across_the_chunks():
    """D = 512 in chunks of 128: the flash loop runs once per chunk, and the producer and the
    consumers count the ring's iterations on from the chunks before, so stage and parity
    agree on both sides (the ring does not restart at stage 0 with stale parity)."""
    result = check(SPLIT, arch="sm_90a")
    assert result.ok, result.diagnostics
    source = result.lowered.main.source
    assert source.count("int tlc_ring = 0;") == 2  # the producer's thread and the consumers
    assert "const int tlc_i = tlc_ring + p_n - p_n_start, tlc_stage = tlc_i % 2;" in source
    assert "tlc_stage = tlc_ring % 2;" in source  # the first key block of a chunk
    assert "(tlc_ring + p_n - p_n_start) % 2" in source
    assert source.count("if (p_n_stop > p_n_start) tlc_ring += p_n_stop - p_n_start;") == 2
    assert "// O and the online softmax of S start afresh" in source
    # V's chunk: columns c * 128 on, two panels
    assert "&V_map, &tlc_bar[3 + tlc_stage], (p_c) * 128 + 64," in source


def test_a_copying_loop_two_loops_deep_is_refused():
    lines = SPLIT.splitlines()
    at = next(k for k, line in enumerate(lines) if line.startswith("for c"))
    deep = lines[:at] + ["for r = 0: 1"] + ["  " + line for line in lines[at:]] + ["end"]
    result = check("\n".join(deep) + "\n", arch="sm_90a")
    assert [d.code for d in result.diagnostics] == ["backend-unsupported"]
    assert "two loops deep" in result.diagnostics[0].message


def _decoding_plan(splits: int = 8, lse: bool = True) -> str:
    from tlc.templates import plan

    return plan("bf16", 128, False, 1, arch="sm_90a", decode=True, splits=splits, lse=lse)


def test_a_split_key_loop_lowers_to_the_ring_and_a_combine():
    """Split-KV on sm_90a: the producer and the consumers run the same part of the key
    range (one block index gives both the tile and the split), the parts leave the consumers'
    registers for the fp32 workspaces, and the kernel takes the workspace pointers before
    the tensor maps (launchers pack every pointer first)."""
    result = check(_decoding_plan(), arch="sm_90a")
    assert result.ok, result.diagnostics
    main, combine = result.lowered.kernels
    source = main.source
    assert "tlc_split = blockIdx.x % 8" in source
    assert source.count("p_n_start = p_n_all_start + tlc_split * tlc_part") == 2
    assert "O_part_g + (long long)tlc_split" in source and "tma_load_4d" in source
    kinds = [a.kind for a in main.arguments]
    assert kinds.index("tensormap") > max(i for i, k in enumerate(kinds)
                                          if k in ("tensor", "workspace"))
    assert combine.name == main.name + "_combine"


@needs_cuobjdump
@pytest.mark.parametrize("splits", [2, 16])
def test_a_split_decoding_plan_builds_without_spills_and_runs_hgmma(splits, tmp_path):
    result = check(_decoding_plan(splits), arch="sm_90a")
    built = build(result.lowered.source, "sm_90a", cache_dir=tmp_path)
    for kernel in result.lowered.kernels:
        report = built.function(kernel.name)
        assert report.spill_stores == report.spill_loads == 0, kernel.name
    code = sass(built.path)
    hgmma = addresses(code, "HGMMA")
    assert hgmma and any(all(first <= a <= last for a in hgmma) for first, last in loops(code))
    assert "UTMALDG.4D" in code
