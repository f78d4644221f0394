"""Fused varlen attention kernel against its torch reference (CPU: Triton interpreter; small shapes)."""

import math

import pytest
import torch

from fastbert.kernels.attention import attention, attention_dropout_mask, attention_ref

# ragged batch: length-0 and length-1 sequences, one spanning several 16-row interpreter blocks
LENS = [5, 1, 0, 37, 16]


def _cu(lens, device="cpu"):
    return torch.tensor([0] + torch.tensor(lens).cumsum(0).tolist(), dtype=torch.int32, device=device)


def _qkv(total, heads, head_dim, dtype, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    qkv = torch.randn(total, 3, heads, head_dim, generator=g).to(device=device, dtype=dtype)
    return qkv.requires_grad_()


def _run(fn, qkv, cu, max_seqlen, do, **kw):
    q, k, v = qkv.unbind(1)  # non-contiguous views of the packed tensor, as the model passes them
    out = fn(q, k, v, cu, max_seqlen, **kw)
    (dqkv,) = torch.autograd.grad(out, qkv, do)
    return out, dqkv


def _max_err(a, b):
    return (a.float() - b.float()).abs().max().item()


def _check_fp32(out, dqkv, out_ref, dqkv_ref):
    # fp32: the kernel's reduction order differs from torch's einsum/softmax; a few ulp of the O(1) values
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=2e-6)
    torch.testing.assert_close(dqkv, dqkv_ref, rtol=1e-5, atol=5e-6)


@pytest.mark.parametrize("head_dim", [32, 64, 80, 96, 128, 7, 48])
def test_forward_backward_fp32(head_dim):
    heads = 2
    cu = _cu(LENS)
    qkv = _qkv(int(cu[-1]), heads, head_dim, torch.float32)
    do = torch.randn(int(cu[-1]), heads, head_dim)
    out, dqkv = _run(attention, qkv, cu, max(LENS), do)
    out_ref, dqkv_ref = _run(attention_ref, qkv, cu, max(LENS), do)
    _check_fp32(out, dqkv, out_ref, dqkv_ref)
    # and against plain torch SDPA on the longest sequence
    s, e = int(cu[3]), int(cu[4])
    q, k, v = (t[s:e].transpose(0, 1) for t in qkv.detach().unbind(1))
    sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(0, 1)
    torch.testing.assert_close(out[s:e], sdpa, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("head_dim", [64, 80])
def test_low_precision(dtype, head_dim):
    heads = 2
    cu = _cu(LENS)
    total = int(cu[-1])
    qkv = _qkv(total, heads, head_dim, dtype)
    do = torch.randn(total, heads, head_dim).to(dtype)
    out, dqkv = _run(attention, qkv, cu, max(LENS), do)
    qkv32 = qkv.detach().float().requires_grad_()
    out_ref, dqkv_ref = _run(attention_ref, qkv32, cu, max(LENS), do.float())
    if dtype == torch.float16:
        # FlashAttention's rule: at most 2x the error torch's own fp16 computation makes against fp32
        out_pt, dqkv_pt = _run(attention_ref, qkv, cu, max(LENS), do, upcast=False)
        assert _max_err(out, out_ref) <= 2 * _max_err(out_pt, out_ref) + 1e-4
        assert _max_err(dqkv, dqkv_ref) <= 2 * _max_err(dqkv_pt, dqkv_ref) + 1e-4
    else:
        # torch's bf16 matmul cannot run on this CPU, so the bound is fixed: a few bf16 ulps (2^-8) of O(1)
        assert _max_err(out, out_ref) <= 3e-2
        assert _max_err(dqkv, dqkv_ref) <= 6e-2


def test_seqused_k_query_only_rows():
    lens, used = [4, 1, 20, 7], [3, 1, 20, 6]
    heads, head_dim = 2, 32
    cu = _cu(lens)
    su = torch.tensor(used, dtype=torch.int32)
    qkv = _qkv(int(cu[-1]), heads, head_dim, torch.float32)
    do = torch.randn(int(cu[-1]), heads, head_dim)
    out, dqkv = _run(attention, qkv, cu, max(lens), do, seqused_k=su)
    out_ref, dqkv_ref = _run(attention_ref, qkv, cu, max(lens), do, seqused_k=su)
    _check_fp32(out, dqkv, out_ref, dqkv_ref)
    # a query-only row is no key: its dk, dv are exactly zero
    for b in (0, 3):
        row = int(cu[b]) + used[b]
        assert torch.all(dqkv[row, 1:] == 0)


def test_separate_noncontiguous_inputs_and_scale():
    lens, heads, head_dim = [9, 3], 3, 16
    cu = _cu(lens)
    total = int(cu[-1])
    # (heads, total, head_dim) storage viewed as (total, heads, head_dim): row stride head_dim, head stride big
    q, k, v = (torch.randn(heads, total, head_dim).transpose(0, 1).requires_grad_() for _ in range(3))
    assert not q.is_contiguous()
    out = attention(q, k, v, cu, 9, softmax_scale=0.3)
    ref = attention_ref(q, k, v, cu, 9, softmax_scale=0.3)
    do = torch.randn_like(out)
    g = torch.autograd.grad(out, (q, k, v), do)
    g_ref = torch.autograd.grad(ref, (q, k, v), do)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=2e-6)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=5e-6)


def test_long_sequence_many_blocks():
    # 130 rows: 9 key/query blocks of 16 in the interpreter, ragged last block
    lens, heads, head_dim = [130], 1, 16
    cu = _cu(lens)
    qkv = _qkv(130, heads, head_dim, torch.float32)
    do = torch.randn(130, heads, head_dim)
    _check_fp32(*_run(attention, qkv, cu, 130, do), *_run(attention_ref, qkv, cu, 130, do))


def test_empty_batch():
    cu = torch.tensor([0, 0, 0], dtype=torch.int32)
    q = torch.randn(0, 2, 32, requires_grad=True)
    out = attention(q, q, q, cu, 0)
    assert out.shape == (0, 2, 32)
    out.sum().backward()
    assert q.grad.shape == q.shape


def test_dropout_matches_reference_mask():
    heads, head_dim, p, seed = 2, 32, 0.3, 1234
    cu = _cu(LENS)
    qkv = _qkv(int(cu[-1]), heads, head_dim, torch.float32)
    do = torch.randn(int(cu[-1]), heads, head_dim)
    out, dqkv = _run(attention, qkv, cu, max(LENS), do, dropout_p=p, seed=seed)
    out_ref, dqkv_ref = _run(attention_ref, qkv, cu, max(LENS), do, dropout_p=p, seed=seed)
    _check_fp32(out, dqkv, out_ref, dqkv_ref)
    # reproducible with the same seed, different with another
    q, k, v = qkv.detach().unbind(1)
    assert torch.equal(attention(q, k, v, cu, max(LENS), dropout_p=p, seed=seed), out.detach())
    assert not torch.equal(attention(q, k, v, cu, max(LENS), dropout_p=p, seed=seed + 1), out.detach())


def test_dropout_statistics_and_mask_recovery():
    # q = k = 0 gives uniform probabilities 1/n; v = identity makes out[i, j] = keep_ij / ((1 - p) n),
    # so the kernel's mask can be read off its output
    n, p, seed = 64, 0.25, 99
    cu = _cu([n])
    zeros = torch.zeros(n, 1, n)
    eye = torch.eye(n).unsqueeze(1)
    out = attention(zeros, zeros, eye, cu, n, dropout_p=p, seed=seed)
    kept = out[:, 0, :] * (1 - p) * n
    assert torch.allclose(kept, kept.round(), atol=1e-4)
    keep = kept.round().bool()
    assert torch.equal(keep, attention_dropout_mask(cu, n, 1, p, seed)[0])
    frac = keep.float().mean().item()
    assert abs(frac - (1 - p)) < 4 * math.sqrt(p * (1 - p) / n**2)  # 4 sigma over n^2 Bernoulli draws


def test_dropout_seed_from_torch_generator():
    cu = _cu([12])
    q = torch.randn(12, 1, 16)
    torch.manual_seed(5)
    a = attention(q, q, q, cu, 12, dropout_p=0.5)
    torch.manual_seed(5)
    b = attention(q, q, q, cu, 12, dropout_p=0.5)
    c = attention(q, q, q, cu, 12, dropout_p=0.5)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_input_errors():
    cu = _cu([4])
    q = torch.randn(4, 2, 16)
    with pytest.raises(ValueError, match="cu_seqlens"):
        attention(q, q, q, cu.long(), 4)
    with pytest.raises(ValueError, match="shapes differ"):
        attention(q, q, q[:, :1], cu, 4)
    with pytest.raises(ValueError, match="dtypes differ"):
        attention(q, q, q.double().float().half(), cu, 4)
    with pytest.raises(ValueError, match="seqused_k"):
        attention(q, q, q, cu, 4, seqused_k=torch.tensor([4, 4], dtype=torch.int32))
    with pytest.raises(ValueError, match="dropout_p"):
        attention(q, q, q, cu, 4, dropout_p=1.0)
    with pytest.raises(ValueError, match="float16, bfloat16 or float32"):
        attention(q.double(), q.double(), q.double(), cu, 4)


def test_torch_compile_fullgraph():
    # the registered ops trace without graph breaks (aot_eager: no GPU code generation needed here)
    cu = _cu([6, 3])
    qkv = _qkv(9, 2, 16, torch.float32)

    def f(qkv):
        q, k, v = qkv.unbind(1)
        return attention(q, k, v, cu, 6, dropout_p=0.1, seed=3).square().sum()

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    (g,) = torch.autograd.grad(compiled(qkv), qkv)
    (g_eager,) = torch.autograd.grad(f(qkv), qkv)
    torch.testing.assert_close(g, g_eager)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("head_dim", [32, 64, 80, 96, 128])
def test_gpu_against_reference(dtype, head_dim):
    lens = [1, 0, 128, 512, 77, 300]
    cu = _cu(lens, "cuda")
    total = int(cu[-1])
    qkv = _qkv(total, 4, head_dim, dtype, device="cuda")
    do = torch.randn(total, 4, head_dim, device="cuda", dtype=dtype)
    out, dqkv = _run(attention, qkv, cu, max(lens), do)
    qkv32 = qkv.detach().float().requires_grad_()
    out_ref, dqkv_ref = _run(attention_ref, qkv32, cu, max(lens), do.float())
    out_pt, dqkv_pt = _run(attention_ref, qkv, cu, max(lens), do, upcast=False)
    assert _max_err(out, out_ref) <= 2 * _max_err(out_pt, out_ref) + 1e-5
    assert _max_err(dqkv, dqkv_ref) <= 2 * _max_err(dqkv_pt, dqkv_ref) + 1e-5


@pytest.mark.gpu
def test_gpu_fp32_and_dropout():
    lens = [3, 200, 64]
    cu = _cu(lens, "cuda")
    total = int(cu[-1])
    qkv = _qkv(total, 2, 64, torch.float32, device="cuda")
    do = torch.randn(total, 2, 64, device="cuda")
    for kw in ({}, {"dropout_p": 0.1, "seed": 7}):
        out, dqkv = _run(attention, qkv, cu, 200, do, **kw)
        out_ref, dqkv_ref = _run(attention_ref, qkv, cu, 200, do, **kw)
        torch.testing.assert_close(out, out_ref, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(dqkv, dqkv_ref, rtol=1e-4, atol=1e-4)
