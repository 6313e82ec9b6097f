"""tlc.torch.attention_varlen on the GPU present against the float64 reference (the peers'
rule; reference.compare_lse for the log-sum-exp), outputs poisoned first: packed batches of
ragged sequences (lengths from 0 to a few hundred, queries and keys of different lengths, a
sequence with queries but no key), causal and not, GQA and MHA, fp16 and bf16; and the
refusals of bad offsets."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed")
if not torch.cuda.is_available():
    pytest.skip("PyTorch sees no GPU", allow_module_level=True)

import tlc.torch as tt  # noqa: E402
from tlc.reference import (Variant, attention, attention_low, compare, compare_lse,  # noqa: E402
                           logsumexp)
from tlc.runtime import ArgumentError  # noqa: E402

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
Q_LENGTHS = [1, 0, 300, 77, 128, 5]
K_LENGTHS = [1, 40, 300, 200, 0, 513]


pytestmark = pytest.mark.usefixtures("torch_poisoned")  # tests/conftest.py


def offsets(lengths):
    return torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int32,
                        device="cuda")


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("heads, d", [((8, 2), 128), ((4, 4), 64)])
def test_packed_ragged_sequences_match_the_reference(dtype, causal, heads, d):
    generator = torch.Generator(device="cuda").manual_seed(3)
    h, hkv = heads
    dt = DTYPES[dtype]
    q = torch.randn(sum(Q_LENGTHS), h, d, device="cuda", generator=generator).to(dt)
    k = torch.randn(sum(K_LENGTHS), hkv, d, device="cuda", generator=generator).to(dt)
    v = torch.randn(sum(K_LENGTHS), hkv, d, device="cuda", generator=generator).to(dt)
    cu_q, cu_k = offsets(Q_LENGTHS), offsets(K_LENGTHS)
    out, rows = tt.attention_varlen(q, k, v, cu_q, cu_k, max(Q_LENGTHS), causal=causal,
                                    return_lse=True)
    group, variant = h // hkv, Variant(causal=causal)
    for b, (nq, nk) in enumerate(zip(Q_LENGTHS, K_LENGTHS)):
        q0, k0 = int(cu_q[b]), int(cu_k[b])
        if nq == 0:
            continue
        got = out[q0:q0 + nq].transpose(0, 1)[None].double().cpu().numpy()
        lse = rows[:, q0:q0 + nq][None].double().cpu().numpy()
        if nk == 0:
            assert np.all(got == 0) and np.all(lse == -np.inf), b
            continue
        qs = q[q0:q0 + nq].transpose(0, 1)[None].double().cpu().numpy()
        ks = np.repeat(k[k0:k0 + nk].transpose(0, 1)[None].double().cpu().numpy(), group, 1)
        vs = np.repeat(v[k0:k0 + nk].transpose(0, 1)[None].double().cpu().numpy(), group, 1)
        verdict = compare(got, attention(qs, ks, vs, variant),
                          attention_low(qs, ks, vs, dtype, variant), dtype, q_len=nq, k_len=nk,
                          variant=variant)
        assert verdict.ok, (b, nq, nk, verdict.problems)
        lse_verdict = compare_lse(lse, logsumexp(qs, ks, variant),
                                  logsumexp(qs, ks, variant, dtype=dtype))
        assert lse_verdict.ok, (b, nq, nk, lse_verdict.problems)


def test_bad_offsets_are_argument_errors():
    q = torch.randn(10, 2, 64, device="cuda").half()
    k = torch.randn(12, 2, 64, device="cuda").half()
    good = offsets([4, 6])
    with pytest.raises(ArgumentError, match="cu_seqlens_q: offsets must start at 0"):
        tt.attention_varlen(q, k, k, offsets([4, 7]), offsets([6, 6]), 7)
    with pytest.raises(ArgumentError, match="cu_seqlens_k: offsets must start at 0"):
        tt.attention_varlen(q, k, k, good, torch.tensor([0, 8, 7], dtype=torch.int32,
                                                        device="cuda"), 6)
    with pytest.raises(ArgumentError, match="max_seqlen_q = 5: a query sequence is longer"):
        tt.attention_varlen(q, k, k, good, offsets([6, 6]), 5)
    with pytest.raises(ArgumentError, match="a \\(B \\+ 1,\\) torch.int32"):
        tt.attention_varlen(q, k, k, good.long(), offsets([6, 6]), 6)


def prebuild() -> None:
    """Build the plans the tests above run, in parallel (benchmarks/gpu_decode.sh)."""
    import concurrent.futures
    import os

    arch, from_ptx = tt._present_target(0)
    cases = [tt.Case(dtype, d, h // hkv, causal, arch=arch, lse=True, varlen=True)
             for dtype in DTYPES for causal in (False, True)
             for (h, hkv), d in (((8, 2), 128), ((4, 4), 64))]
    cases.append(tt.Case("fp16", 64, 1, False, arch=arch, varlen=True))
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 4) as pool:
        list(pool.map(lambda case: tt.built_for(case, 0, from_ptx), cases))
