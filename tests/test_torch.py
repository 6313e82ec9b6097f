"""tlc.torch without a GPU: the op's registration and fake implementation (what
torch.compile traces), plan selection per case and GPU, the tuned winner from the tune
cache, and the errors a call gets. Skipped where PyTorch is not installed (CI installs no
torch; tests/gpu/test_torch_gpu.py and benchmarks/torch_op.py run it on the GPU)."""
import json

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (tlc does not need it)")

import tlc.torch as tt  # noqa: E402
from tlc.driver import check  # noqa: E402
from tlc.runtime import ArgumentError  # noqa: E402


def fake_inputs(layout="bhsd", heads=(8, 2), n=(128, 96), d=64, dtype=torch.float16):
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode()
    h, hkv = heads
    dims = (lambda hh, nn: (2, hh, nn, d)) if layout == "bhsd" else (lambda hh, nn: (2, nn, hh, d))
    with mode:
        q = torch.empty(dims(h, n[0]), dtype=dtype, device="cuda")
        k = torch.empty(dims(hkv, n[1]), dtype=dtype, device="cuda")
        v = torch.empty(dims(hkv, n[1]), dtype=dtype, device="cuda")
    return mode, q, k, v


def test_the_op_is_registered_with_its_schema():
    schema = str(torch.ops.tlc.attention.default._schema)
    for part in ("Tensor q", "bool causal", "int window_left", "Tensor? alibi_slopes",
                 "str layout", "-> Tensor"):
        assert part in schema


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
def test_the_fake_output_has_the_real_ones_shape_dtype_and_strides(layout):
    mode, q, k, v = fake_inputs(layout)
    with mode:
        out = tt.attention(q, k, v, causal=True, layout=layout)
    assert out.shape == q.shape and out.dtype == q.dtype and out.device == q.device
    assert out.stride() == tt.contiguous_strides(tuple(q.shape))


def test_torch_compile_traces_one_graph_without_breaks():
    q = torch.empty(2, 8, 128, 64, dtype=torch.float16, device="meta")
    k = torch.empty(2, 2, 128, 64, dtype=torch.float16, device="meta")

    def block(q, k, v):
        return tt.attention(q, k, v, causal=True).sum(dim=-1)

    torch._dynamo.reset()
    explained = torch._dynamo.explain(block)(q, k, k)
    assert explained.graph_break_count == 0 and explained.graph_count == 1
    compiled = torch.compile(block, fullgraph=True, backend="eager")
    assert compiled(q, k, k).shape == (2, 8, 128)
    torch._dynamo.reset()


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
def test_return_lse_traces_to_the_second_op(layout):
    mode, q, k, v = fake_inputs(layout)
    with mode:
        out, lse = tt.attention(q, k, v, causal=True, layout=layout, return_lse=True)
    assert out.shape == q.shape and lse.shape == (2, 8, 128) and lse.dtype == torch.float32
    assert "-> (Tensor, Tensor)" in str(torch.ops.tlc.attention_lse.default._schema)
    assert "Compute Logsumexp S and get L" in tt.plan_for(tt.Case("fp16", 64, lse=True))


def test_shapes_that_disagree_are_refused_while_tracing_too():
    mode, q, k, v = fake_inputs(heads=(8, 3))
    with mode, pytest.raises(ArgumentError, match="multiple of the K/V heads"):
        tt.attention(q, k, v)
    mode, q, k, v = fake_inputs()
    with mode, pytest.raises(ArgumentError, match="one shape"):
        tt.attention(q, k, v[:, :, :5])
    with mode, pytest.raises(ArgumentError, match="4"):
        tt.attention(q[0], k, v)


def test_cpu_tensors_get_a_clear_error():
    q = torch.zeros(1, 2, 8, 64, dtype=torch.float16)
    with pytest.raises(ArgumentError, match="CUDA tensors"):
        tt.attention(q, q, q)


def test_call_options_are_checked():
    mode, q, k, v = fake_inputs()
    with mode:
        with pytest.raises(ArgumentError, match="layout"):
            tt.attention(q, k, v, layout="sbhd")
        with pytest.raises(ArgumentError, match="key counts"):
            tt.attention(q, k, v, window=(-1, 0))
    grad = torch.zeros(1, 2, 8, 64, requires_grad=True)
    with pytest.raises(ArgumentError, match="CUDA tensors"):
        tt.attention(grad, grad, grad)


def test_fake_and_meta_tensors_go_through_the_op():
    mode, q, _, _ = fake_inputs()
    assert not tt._plain_eager(q)
    assert not tt._plain_eager(torch.empty(2, device="meta"))
    assert not tt._plain_eager(torch.empty(2))


@pytest.mark.parametrize("case", [
    tt.Case("fp16", 128, 1, arch="sm_90"), tt.Case("bf16", 64, 4, True, arch="sm_80"),
    tt.Case("fp16", 64, 8, True, (32, 0), arch="sm_75"),
    tt.Case("bf16", 256, 1, softcap=30.0, arch="sm_89"),
    tt.Case("fp16", 128, 1, True, alibi=True, arch="sm_86"),
    tt.Case("fp16", 512, 2, arch="sm_90"), tt.Case("bf16", 96, 1, arch="sm_80")],
    ids=lambda c: c.describe())
def test_each_case_gets_a_plan_that_tlc_check_accepts(case):
    text = tt.plan_for(case)
    result = check(text, arch=case.arch)
    assert result.ok, [d.message for d in result.diagnostics]
    params = {p.name: p.value for p in result.kernel.params}
    assert params["D"] == case.head_dim and params["GROUP"] == case.group
    assert ("Mask S with causal" in text) == case.causal
    assert ("Softcap" in text) == bool(case.softcap) and ("ALiBi" in text) == case.alibi
    if case.window:
        assert (params["LEFT"], params["RIGHT"]) == case.window


@pytest.mark.parametrize("case, message", [
    (tt.Case("fp16", 100), "96 and 104"), (tt.Case("fp16", 520), "512"),
    (tt.Case("fp32", 64), "float16"), (tt.Case("bf16", 64, arch="sm_75"), "fp16, D = 64"),
    (tt.Case("fp16", 64, softcap=-1.0), "> 0"), (tt.Case("fp16", 64, window=(-1, 4)), ">= 0")])
def test_an_uncovered_case_names_the_nearest_covered_one(case, message):
    with pytest.raises(tt.NotCovered, match=message):
        tt.plan_for(case)


def test_targets_for_each_gpu():
    assert tt.target_of((9, 0)) == ("sm_90", False)
    assert tt.target_of((8, 9)) == ("sm_89", False)
    assert tt.target_of((7, 5)) == ("sm_75", False)
    assert tt.target_of((12, 0)) == ("sm_86", True)  # newer than tlc knows: PTX
    with pytest.raises(tt.NotCovered, match="sm_75"):
        tt.target_of((7, 0))


def test_a_tuned_winner_is_used_for_its_gpu_and_driver_only():
    from tlc.tune import cache_path, plan_hash, space_of

    case = tt.Case("fp16", 64, 1, arch="sm_80")
    template = tt.plan_for(case)
    key = f"{plan_hash(template, space_of(template), 'sm_80')}|NVIDIA H200|580.1"
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    best = {"BM": 64, "BN": 64}
    path.write_text(json.dumps({key: {"complete": True, "best": best}}))
    try:
        tuned = tt.plan_for(case, "NVIDIA H200", "580.1")
        assert "param BM = 64" in tuned and "param BM = 64" not in template
        assert tt.plan_for(case, "NVIDIA H100", "580.1") == template
        path.write_text(json.dumps({key: {"complete": False, "best": best}}))
        assert tt.plan_for(case, "NVIDIA H200", "580.1") == template
    finally:
        path.unlink()


def test_decoding_splits_fill_the_gpu_but_keep_four_key_tiles_a_split():
    assert tt.choose_splits(1, 32, 1, 131072, 132) == 8     # 32 blocks -> 256 >= 198
    assert tt.choose_splits(1, 8, 4, 131072, 132) == 32     # 8 packed K/V heads -> 256
    assert tt.choose_splits(8, 32, 1, 131072, 132) == 1     # 256 blocks fill it already
    assert tt.choose_splits(1, 32, 1, 1024, 132) == 4       # 1024 keys: four splits of 256
    assert tt.choose_splits(1, 1, 1, 10 ** 7, 132) == 64    # at most 64
    # sm_90a's plans aim at about a block an SM (DECODE_FILL): half sm_80's splits
    hopper = tt.DECODE_FILL["sm_90a"]
    assert tt.choose_splits(1, 32, 1, 131072, 132, hopper) == 4    # 128 blocks
    assert tt.choose_splits(1, 8, 4, 131072, 132, hopper) == 16
    assert tt.shaped_case(tt.Case("bf16", 128, 4, arch="sm_90a"), 1, 32, 1, 8, 131072, -1,
                          False, 132)[0].splits == 16
    assert tt.shaped_case(tt.Case("bf16", 128, 4, arch="sm_90"), 1, 32, 1, 8, 131072, -1,
                          False, 132)[0].splits == 32


def test_one_query_row_of_grouped_heads_packs_them_into_rows():
    assert tt._packs_query_heads(1, 32, 8, -1, None)
    assert not tt._packs_query_heads(2, 32, 8, -1, None)     # rows would be positions
    assert not tt._packs_query_heads(1, 32, 32, -1, None)    # MHA: nothing to share
    assert not tt._packs_query_heads(1, 32, 8, 100, None)    # a window sees positions
    assert not tt._packs_query_heads(1, 32, 8, -1, object())  # ALiBi's slope is per head


def test_a_decoding_case_plans_the_decoding_tiles_and_the_split():
    text = tt.plan_for(tt.Case("bf16", 128, 4, decode=True, splits=16))
    assert "param BM = 32" in text and "param WARPS = 2" in text and "param BN = 64" in text
    assert "param SPLITS = 16" in text
    assert "with splits SPLITS" in text
    assert "with splits" not in tt.plan_for(tt.Case("bf16", 128, 4))


def test_a_decoding_case_on_hopper_takes_its_own_target_with_its_own_splits():
    """Contiguous decoding runs sm_90a's plan on Hopper (one consumer warpgroup, the parts
    stored from registers), shaped for that target; a layout TMA cannot read keeps sm_90."""
    text = tt.plan_for(tt.Case("bf16", 128, 1, arch="sm_90a", decode=True, splits=16))
    assert "param BM = 64" in text and "param WARPS = 4" in text and "mma m64n" in text
    assert "Allocate O in shared" not in text and "with splits SPLITS" in text

    def shape(case):
        return tt.shaped_case(case, 1, 32, 1, 8, 131072, -1, False, 132)[0]

    strides = [(32 * 128, 32 * 128, 128, 1), (8 * 128 * 131072, 8 * 128, 128, 1)]
    own = tt.own_target_case(tt.Case("bf16", 128, 4, arch="sm_90"), strides, 2, shape)
    assert (own.arch, own.decode, own.splits, own.group) == ("sm_90a", True, 16, 1)
    odd = [(32 * 128, 32 * 128, 128, 1), (8 * 128 * 131072 + 3, 8 * 128, 128, 1)]
    portable = tt.own_target_case(tt.Case("bf16", 128, 4, arch="sm_90"), odd, 2, shape)
    assert (portable.arch, portable.splits) == ("sm_90", 32)


def test_the_kvcache_call_refuses_what_it_cannot_read_before_it_looks_at_a_gpu():
    q = torch.zeros(2, 1, 8, 64, dtype=torch.float16)
    cache = torch.zeros(2, 128, 2, 64, dtype=torch.float16)
    lengths = torch.tensor([3, 4], dtype=torch.int32)
    with pytest.raises(ArgumentError, match="CPU tensors"):
        tt.attention_with_kvcache(q, cache, cache, lengths)
    meta = [t.to("meta") for t in (q, cache, lengths)]
    with pytest.raises(ArgumentError, match="q: a 4-dimensional tensor"):
        tt.attention_with_kvcache(meta[0][0], meta[1], meta[1], meta[2])
    with pytest.raises(ArgumentError, match="cache_seqlens: a torch.int32 tensor"):
        tt.attention_with_kvcache(meta[0], meta[1], meta[1], meta[2].long())


def test_torch_compile_traces_a_decoding_step_and_a_packed_batch_without_breaks():
    q = torch.empty(2, 1, 8, 64, dtype=torch.bfloat16, device="meta")
    pool = torch.empty(6, 64, 2, 64, dtype=torch.bfloat16, device="meta")
    table = torch.empty(2, 3, dtype=torch.int32, device="meta")
    lengths = torch.empty(2, dtype=torch.int32, device="meta")
    packed = torch.empty(300, 8, 64, dtype=torch.bfloat16, device="meta")
    cu = torch.empty(4, dtype=torch.int32, device="meta")

    def step(q, pool, lengths, table, packed, cu):
        o, lse = tt.attention_with_kvcache(q, pool, pool, lengths, table, return_lse=True)
        p, plse = tt.attention_varlen(packed, packed, packed, cu, cu, 128, causal=True,
                                      return_lse=True)
        return o.sum() + lse.sum() + p.sum() + plse.sum(), o.shape, lse.shape, plse.shape

    torch._dynamo.reset()
    explained = torch._dynamo.explain(step)(q, pool, lengths, table, packed, cu)
    assert explained.graph_break_count == 0 and explained.graph_count == 1
    _, o_shape, lse_shape, plse_shape = step(q, pool, lengths, table, packed, cu)
    assert (o_shape, lse_shape, plse_shape) == ((2, 1, 8, 64), (2, 8, 1), (8, 300))
    torch._dynamo.reset()


def test_a_cache_case_is_a_decoding_plan_with_lengths_and_pages():
    case = tt.Case("bf16", 128, 1, lengths=True, page=64, decode=True, splits=8)
    text = tt.plan_for(case)
    assert "with pages (table, PAGE)" in text and "param PAGE = 64" in text
    assert "rows lengths[b]" in text and "with splits SPLITS" in text


def test_the_varlen_call_refuses_bad_arguments_before_it_looks_at_a_gpu():
    q = torch.zeros(10, 2, 64, dtype=torch.float16)
    cu = torch.tensor([0, 4, 10], dtype=torch.int32)
    with pytest.raises(ArgumentError, match="CPU tensors"):
        tt.attention_varlen(q, q, q, cu, cu, 6)
    meta_q, meta_cu = q.to("meta"), cu.to("meta")
    with pytest.raises(ArgumentError, match="q: a 3-dimensional tensor"):
        tt.attention_varlen(meta_q[None], meta_q, meta_q, meta_cu, meta_cu, 6)


def test_a_varlen_case_plans_packed_sequences():
    text = tt.plan_for(tt.Case("fp16", 64, 2, True, varlen=True))
    assert "input Q (H, Tq, D) fp16" in text and "start q_start[b]" in text
