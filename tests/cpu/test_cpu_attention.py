"""fastbert's CPU attention kernel (csrc/cpu/attention.cpp) against softmax attention in float64."""

import pytest
import torch
from masks import all_masks

from fastbert import ops
from fastbert.packing import build_packing, packing_from_lengths

kernels = pytest.importorskip("fastbert._cpu_kernels", reason="the C++ CPU kernels were not built")
BEST = next(name for name, runs in kernels.builds() if runs)
RUNNABLE = [name for name, runs in kernels.builds() if runs]  # every build this CPU can run, forced in turn


@pytest.fixture(params=RUNNABLE)
def isa(request, monkeypatch):
    """Each build of the kernel (FASTBERT_CPU_ISA), with the kernel forced over the measured dispatch."""
    monkeypatch.setenv("FASTBERT_CPU_ISA", request.param)
    monkeypatch.setenv("FASTBERT_CPU_ATTENTION", "kernel")
    assert ops.cpu_isa() == request.param
    return request.param


def _reference(q, k, v, packing, scale):
    """Plain softmax attention per sequence, in float64; keys are the first seqused_k rows."""
    out = torch.empty(q.shape, dtype=torch.float64)
    cu = packing.cu_seqlens.tolist()
    for b in range(len(cu) - 1):
        s, e = cu[b], cu[b + 1]
        used = int(packing.seqused_k[b]) if packing.seqused_k is not None else e - s
        qq, kk, vv = (t.double() for t in (q[s:e], k[s : s + used], v[s : s + used]))
        p = (torch.einsum("qhd,khd->hqk", qq, kk) * scale).softmax(-1)
        out[s:e] = torch.einsum("hqk,khd->qhd", p, vv)
    return out


def _qkv(total, heads, dim, seed, layout="packed"):
    g = torch.Generator().manual_seed(seed)
    if layout == "packed":  # views of one (total, 3, heads, dim) projection, as the model makes them
        return (torch.randn(total, 3, heads, dim, generator=g) * 1.5).unbind(1)
    # head-major storage: row stride smaller than head stride
    return tuple(torch.randn(heads, total, dim, generator=g).transpose(0, 1) for _ in range(3))


@pytest.mark.parametrize("query_only", ["none", "first", "all"])
@pytest.mark.parametrize("head_dim", [7, 8, 16, 24, 32, 40, 64, 128])
def test_matches_reference_on_every_packing(query_only, head_dim, isa):
    for n, (_, mask) in enumerate(all_masks(seed=head_dim)):
        packing = build_packing(mask, query_only)
        q, k, v = _qkv(packing.total, 3, head_dim, seed=n, layout="packed" if n % 2 else "heads")
        scale = head_dim**-0.5
        with torch.no_grad():
            got = ops.attention(q, k, v, packing, scale)
        want = _reference(q, k, v, packing, scale)
        # fp32 dot products of head_dim terms and a softmax over <= 40 keys: ~1e-6 relative error
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("lengths", [[1], [1, 1, 2], [300, 17, 65], [700], [8, 9, 16, 17, 4], [127, 128, 129]])
def test_long_and_one_token_sequences(lengths, isa):
    # sequences longer than 64 rows are split into query blocks across tasks
    packing = packing_from_lengths(lengths)
    q, k, v = _qkv(packing.total, 2, 32, seed=5)
    with torch.no_grad():
        got = ops.attention(q, k, v, packing)
    torch.testing.assert_close(got.double(), _reference(q, k, v, packing, 32**-0.5), rtol=1e-5, atol=1e-5)


def test_thread_count_does_not_change_the_result(monkeypatch, isa):
    packing = packing_from_lengths([33, 5, 120, 64])
    q, k, v = _qkv(packing.total, 4, 64, seed=6)
    outs = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(torch, "get_num_threads", lambda t=threads: t)
        with torch.no_grad():
            outs.append(ops.attention(q, k, v, packing))
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


def test_model_inference_uses_the_kernel_and_training_does_not(monkeypatch):
    from fastbert import BertConfig, BertModel

    monkeypatch.setenv("FASTBERT_CPU_ATTENTION", "kernel")  # not left to the calibration: this tests the wiring
    calls = []
    real = ops._cpu_attention
    monkeypatch.setattr(ops, "_cpu_attention", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=48, max_position_embeddings=16)).eval()
    ids = torch.randint(1, 40, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[0, 6:] = 0
    mask[1, :2] = 0
    with torch.inference_mode():
        fast = model(ids, attention_mask=mask)
    assert len(calls) == 2
    with torch.inference_mode(), ops.force_backend("torch"):
        ref = model(ids, attention_mask=mask)
    assert len(calls) == 2
    torch.testing.assert_close(fast.last_hidden_state, ref.last_hidden_state, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.pooler_output, ref.pooler_output, rtol=1e-5, atol=1e-5)
    model(ids, attention_mask=mask).last_hidden_state.sum().backward()  # autograd: the torch path
    assert len(calls) == 2


def test_bad_arguments_raise_clear_errors():
    q = torch.randn(5, 2, 8)
    out = torch.empty(5, 2, 8)
    cu = torch.tensor([0, 2, 5]).numpy()
    none = torch.zeros(0, dtype=torch.int64).numpy()
    with pytest.raises(ValueError, match="end at the number of rows"):
        kernels.attention_varlen(q.numpy(), q.numpy(), q.numpy(), out.numpy(), torch.tensor([0, 2, 4]).numpy(),
                                 none, 1.0, 1, BEST)
    with pytest.raises(ValueError, match="keys <= rows"):
        kernels.attention_varlen(q.numpy(), q.numpy(), q.numpy(), out.numpy(), cu, torch.tensor([3, 1]).numpy(),
                                 1.0, 1, BEST)
    with pytest.raises(ValueError, match="keys <= rows"):
        kernels.attention_varlen(q.numpy(), q.numpy(), q.numpy(), out.numpy(), torch.tensor([0, 0, 5]).numpy(),
                                 none, 1.0, 1, BEST)
    with pytest.raises(ValueError, match="shape"):
        kernels.attention_varlen(q.numpy(), q[:, :1].numpy(), q.numpy(), out.numpy(), cu, none, 1.0, 1, BEST)
    with pytest.raises(ValueError, match="float32"):
        kernels.attention_varlen(q.numpy(), q.double().numpy(), q.numpy(), out.numpy(), cu, none, 1.0, 1, BEST)
    with pytest.raises(ValueError, match="must not overlap"):
        kernels.attention_varlen(q.numpy(), q.numpy(), q.numpy(), q.numpy(), cu, none, 1.0, 1, BEST)
    with pytest.raises(ValueError, match="native byte order"):
        kernels.attention_varlen(q.numpy(), q.numpy().astype(">f4"), q.numpy(), out.numpy(), cu, none, 1.0, 1, BEST)
    with pytest.raises(ValueError, match="contiguous along head_dim"):
        kernels.attention_varlen(q.numpy(), q.numpy(), torch.randn(5, 2, 16)[..., ::2].numpy(), out.numpy(), cu,
                                 none, 1.0, 1, BEST)


def test_kernel_is_a_named_row_under_the_profiler():
    from torch.profiler import profile

    packing = packing_from_lengths([5, 7])
    q, k, v = _qkv(packing.total, 2, 8, seed=7)
    with torch.no_grad(), profile() as prof:
        ops.attention(q, k, v, packing)
    assert any(e.key == "fastbert::cpu_attention" for e in prof.key_averages())


def test_unknown_or_unrunnable_build_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("FASTBERT_CPU_ISA", "avx1024")
    with pytest.raises(ValueError, match="FASTBERT_CPU_ISA='avx1024'"):
        ops.cpu_isa()
    q = torch.randn(4, 1, 8)
    with pytest.raises(ValueError, match="no CPU attention build named 'avx1024'"):
        kernels.attention_varlen(q.numpy(), q.numpy(), q.numpy(), torch.empty(4, 1, 8).numpy(),
                                 torch.tensor([0, 4]).numpy(), torch.zeros(0, dtype=torch.int64).numpy(), 1.0, 1,
                                 "avx1024")


def test_inner_loops_keep_their_accumulators_in_registers():
    """The FMA loops of every build touch no stack slot with a vector register: the blocking fits the
    register file (16 ymm for AVX2, 32 zmm for AVX-512), so nothing spills (benchmarks/check_cpu_kernel_asm.py
    prints the loops)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    if shutil.which("objdump") is None or not BEST.startswith("avx"):
        pytest.skip("needs objdump and an x86-64 build")
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "check_cpu_kernel_asm.py"
    run = subprocess.run([sys.executable, str(script), kernels.__file__], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "avx2" in run.stdout and "avx512" in run.stdout
