"""Padding-free fused attention (FlashAttention-2 style), bidirectional, over packed variable-length sequences.

Layout: ``q, k, v`` are ``(total, heads, head_dim)`` (any row/head strides, unit stride on head_dim, so views
of one packed ``(total, 3, heads, head_dim)`` qkv work as they are). Sequence ``b`` owns rows
``cu_seqlens[b]:cu_seqlens[b+1]`` as queries; its keys/values are the first ``seqused_k[b]`` of those rows (all
when ``seqused_k`` is None). Head dims that are not a power of two are padded to one inside the kernel.

Forward, one program per (query block, sequence, head), scores in base 2 (``c = scale * log2 e``)::

    s_ij = c * q_i . k_j                    running m_i = max_j s_ij,  l_i = sum_j 2^(s_ij - m_i)
    o_i  = sum_j [keep_ij / (1 - p)] 2^(s_ij - m_i) v_j / l_i      (online: rescale acc by 2^(m_old - m_new))
    lse_i = m_i + log2 l_i                  (saved, fp32, (heads, total); nothing of size seq^2 is stored)

Backward recomputes ``P_ij = 2^(s_ij - lse_i)`` from the saved lse; with ``Z = keep / (1 - p)``::

    delta_i = do_i . o_i                    (= sum_j P_ij Z_ij (do_i . v_j), a small pre-pass)
    dv_j = sum_i P_ij Z_ij do_i
    dP_ij = Z_ij (do_i . v_j),   dS_ij = P_ij (dP_ij - delta_i)
    dk_j = scale * sum_i dS_ij q_i,   dq_i = scale * sum_j dS_ij k_j

dK/dV are computed by one program per key block looping over the sequence's queries, dQ by one program per
query block looping over keys: no atomics, deterministic. Dropout keeps element (head h, query row i, key j
local to its sequence) when ``tl.rand(seed, (h * total + i) * max_seqlen + j) >= p``, so the backward
regenerates the forward's mask.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ._common import (
    check_dropout,
    check_float,
    check_seed,
    draw_seed,
    interpreting,
    launch,
    register_op,
)
from .dropout import dropout_mask

_LOG2E = 1.4426950408889634


@triton.jit
def _dot(a, b, IEEE: tl.constexpr):
    # IEEE: exact fp32 products (no tf32) so fp32 results match torch's fp32 math. The interpreter (triton
    # 3.9) multiplies bf16 operands of tl.dot as raw bits, so the launcher sets IEEE for bf16 there too and
    # the operands are upcast; on a GPU bf16 goes to the tensor cores as it is.
    if IEEE:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
        return tl.dot(a, b, input_precision="ieee")
    else:
        return tl.dot(a, b)


@triton.jit
def _keep(seed, dropout_p, rows, cols, max_seqlen):
    """Dropout keep mask for int64 query indices ``rows`` (already ``h * total + i``) and local keys ``cols``."""
    return tl.rand(seed, rows * max_seqlen + cols) >= dropout_p


@triton.jit
def _attn_fwd_kernel(
    Q, K, V,  # (total, heads, head_dim), strides (stride_*t, stride_*h, 1)
    O,  # (total, heads, head_dim) output, strides (stride_ot, stride_oh, 1)
    LSE,  # (heads, total) fp32 log2-sum-exp of the scaled scores
    CU_SEQLENS,  # (batch + 1,) int32
    SEQUSED_K,  # (batch,) int32 number of key rows per sequence (the launchers fill it when not given)
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_ot, stride_oh,
    total, head_dim, qk_scale, dropout_p, seed, max_seqlen,
    HAS_DROPOUT: tl.constexpr, IEEE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid_m = tl.program_id(0)
    b = tl.program_id(1)
    h = tl.program_id(2)
    start = tl.load(CU_SEQLENS + b)
    seqlen = tl.load(CU_SEQLENS + b + 1) - start
    if pid_m * BLOCK_M >= seqlen:
        return
    seqlen_k = tl.load(SEQUSED_K + b)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    m_mask = offs_m < seqlen
    d_mask = offs_d < head_dim
    rows = (start + offs_m).to(tl.int64)
    q = tl.load(Q + rows[:, None] * stride_qt + h * stride_qh + offs_d[None, :],
                mask=m_mask[:, None] & d_mask[None, :], other=0.0)
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    rng_rows = h.to(tl.int64) * total + start + offs_m
    for start_n in range(0, seqlen_k, BLOCK_N):
        cols = start_n + offs_n
        n_mask = cols < seqlen_k
        kv_rows = (start + cols).to(tl.int64)
        kv_mask = n_mask[:, None] & d_mask[None, :]
        k = tl.load(K + kv_rows[:, None] * stride_kt + h * stride_kh + offs_d[None, :], mask=kv_mask, other=0.0)
        s = _dot(q, tl.trans(k), IEEE) * qk_scale
        s = tl.where(n_mask[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        if HAS_DROPOUT:
            keep = _keep(seed, dropout_p, rng_rows[:, None], cols[None, :], max_seqlen)
            p = tl.where(keep, p * (1.0 / (1.0 - dropout_p)), 0.0)
        v = tl.load(V + kv_rows[:, None] * stride_vt + h * stride_vh + offs_d[None, :], mask=kv_mask, other=0.0)
        acc = acc * alpha[:, None] + _dot(p.to(v.dtype), v, IEEE)
        m_i = m_new
    out = acc / l_i[:, None]
    tl.store(O + rows[:, None] * stride_ot + h * stride_oh + offs_d[None, :], out.to(O.dtype.element_ty),
             mask=m_mask[:, None] & d_mask[None, :])
    tl.store(LSE + h.to(tl.int64) * total + rows, m_i + tl.log2(l_i), mask=m_mask)


@triton.jit
def _attn_bwd_delta_kernel(
    O,  # (total, heads, head_dim), strides (stride_ot, stride_oh, 1)
    DO,  # (total, heads, head_dim), strides (stride_dot, stride_doh, 1)
    DELTA,  # (heads, total) fp32: rowsum(do * o)
    stride_ot, stride_oh, stride_dot, stride_doh, total, head_dim,
    BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):
    h = tl.program_id(1)
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    mask = (rows[:, None] < total) & (offs_d[None, :] < head_dim)
    o = tl.load(O + rows[:, None] * stride_ot + h * stride_oh + offs_d[None, :], mask=mask, other=0.0)
    do = tl.load(DO + rows[:, None] * stride_dot + h * stride_doh + offs_d[None, :], mask=mask, other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), axis=1)
    tl.store(DELTA + h.to(tl.int64) * total + rows, delta, mask=rows < total)


@triton.jit
def _attn_bwd_dkdv_kernel(
    Q, K, V, DO,  # (total, heads, head_dim), unit stride on head_dim
    DK, DV,  # (total, heads, head_dim) outputs, contiguous
    LSE, DELTA,  # (heads, total) fp32
    CU_SEQLENS, SEQUSED_K,  # as in the forward
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_dot, stride_doh,
    total, heads, head_dim, sm_scale, qk_scale, dropout_p, seed, max_seqlen,
    HAS_DROPOUT: tl.constexpr, IEEE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid_n = tl.program_id(0)
    b = tl.program_id(1)
    h = tl.program_id(2)
    start = tl.load(CU_SEQLENS + b)
    seqlen = tl.load(CU_SEQLENS + b + 1) - start
    if pid_n * BLOCK_N >= seqlen:
        return
    seqlen_k = tl.load(SEQUSED_K + b)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < head_dim
    n_mask = cols < seqlen_k  # query-only rows (seqlen_k <= col < seqlen) get zero dk, dv
    kv_rows = (start + cols).to(tl.int64)
    kv_mask = n_mask[:, None] & d_mask[None, :]
    k = tl.load(K + kv_rows[:, None] * stride_kt + h * stride_kh + offs_d[None, :], mask=kv_mask, other=0.0)
    v = tl.load(V + kv_rows[:, None] * stride_vt + h * stride_vh + offs_d[None, :], mask=kv_mask, other=0.0)
    dk = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    dv = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    stat_base = h.to(tl.int64) * total + start
    for start_m in range(0, seqlen, BLOCK_M):
        qi = start_m + offs_m
        m_mask = qi < seqlen
        rows = (start + qi).to(tl.int64)
        q_mask = m_mask[:, None] & d_mask[None, :]
        q = tl.load(Q + rows[:, None] * stride_qt + h * stride_qh + offs_d[None, :], mask=q_mask, other=0.0)
        do = tl.load(DO + rows[:, None] * stride_dot + h * stride_doh + offs_d[None, :], mask=q_mask, other=0.0)
        lse = tl.load(LSE + stat_base + qi, mask=m_mask, other=0.0)
        delta = tl.load(DELTA + stat_base + qi, mask=m_mask, other=0.0)
        s_t = _dot(k, tl.trans(q), IEEE) * qk_scale  # (BLOCK_N, BLOCK_M)
        p_t = tl.exp2(s_t - lse[None, :])
        p_t = tl.where(n_mask[:, None] & m_mask[None, :], p_t, 0.0)
        dp_t = _dot(v, tl.trans(do), IEEE)
        if HAS_DROPOUT:
            keep_t = _keep(seed, dropout_p, (h.to(tl.int64) * total + start + qi)[None, :], cols[:, None], max_seqlen)
            pz_t = tl.where(keep_t, p_t * (1.0 / (1.0 - dropout_p)), 0.0)
            dp_t = tl.where(keep_t, dp_t * (1.0 / (1.0 - dropout_p)), 0.0)
        else:
            pz_t = p_t
        dv += _dot(pz_t.to(do.dtype), do, IEEE)
        ds_t = p_t * (dp_t - delta[None, :])
        dk += _dot(ds_t.to(q.dtype), q, IEEE)
    out_rows = (start + cols).to(tl.int64)
    out_mask = (cols < seqlen)[:, None] & d_mask[None, :]
    out_offs = out_rows[:, None] * heads * head_dim + h * head_dim + offs_d[None, :]
    tl.store(DK + out_offs, (dk * sm_scale).to(DK.dtype.element_ty), mask=out_mask)
    tl.store(DV + out_offs, dv.to(DV.dtype.element_ty), mask=out_mask)


@triton.jit
def _attn_bwd_dq_kernel(
    Q, K, V, DO,  # (total, heads, head_dim), unit stride on head_dim
    DQ,  # (total, heads, head_dim) output, contiguous
    LSE, DELTA,  # (heads, total) fp32
    CU_SEQLENS, SEQUSED_K,  # as in the forward
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_dot, stride_doh,
    total, heads, head_dim, sm_scale, qk_scale, dropout_p, seed, max_seqlen,
    HAS_DROPOUT: tl.constexpr, IEEE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid_m = tl.program_id(0)
    b = tl.program_id(1)
    h = tl.program_id(2)
    start = tl.load(CU_SEQLENS + b)
    seqlen = tl.load(CU_SEQLENS + b + 1) - start
    if pid_m * BLOCK_M >= seqlen:
        return
    seqlen_k = tl.load(SEQUSED_K + b)
    qi = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    m_mask = qi < seqlen
    d_mask = offs_d < head_dim
    rows = (start + qi).to(tl.int64)
    q_mask = m_mask[:, None] & d_mask[None, :]
    q = tl.load(Q + rows[:, None] * stride_qt + h * stride_qh + offs_d[None, :], mask=q_mask, other=0.0)
    do = tl.load(DO + rows[:, None] * stride_dot + h * stride_doh + offs_d[None, :], mask=q_mask, other=0.0)
    stat_base = h.to(tl.int64) * total + start
    lse = tl.load(LSE + stat_base + qi, mask=m_mask, other=0.0)
    delta = tl.load(DELTA + stat_base + qi, mask=m_mask, other=0.0)
    dq = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    rng_rows = h.to(tl.int64) * total + start + qi
    for start_n in range(0, seqlen_k, BLOCK_N):
        cols = start_n + offs_n
        n_mask = cols < seqlen_k
        kv_rows = (start + cols).to(tl.int64)
        kv_mask = n_mask[:, None] & d_mask[None, :]
        k = tl.load(K + kv_rows[:, None] * stride_kt + h * stride_kh + offs_d[None, :], mask=kv_mask, other=0.0)
        v = tl.load(V + kv_rows[:, None] * stride_vt + h * stride_vh + offs_d[None, :], mask=kv_mask, other=0.0)
        s = _dot(q, tl.trans(k), IEEE) * qk_scale
        p = tl.exp2(s - lse[:, None])
        p = tl.where(n_mask[None, :], p, 0.0)
        dp = _dot(do, tl.trans(v), IEEE)
        if HAS_DROPOUT:
            keep = _keep(seed, dropout_p, rng_rows[:, None], cols[None, :], max_seqlen)
            dp = tl.where(keep, dp * (1.0 / (1.0 - dropout_p)), 0.0)
        ds = p * (dp - delta[:, None])
        dq += _dot(ds.to(k.dtype), k, IEEE)
    out_offs = rows[:, None] * heads * head_dim + h * head_dim + offs_d[None, :]
    tl.store(DQ + out_offs, (dq * sm_scale).to(DQ.dtype.element_ty), mask=q_mask)


# ------------------------------------------------------------------------------------------------------
# configs and launchers
# ------------------------------------------------------------------------------------------------------

KERNEL_HEAD_DIMS = (16, 32, 64, 128, 256)  # the padded BLOCK_D values the launcher can pick


def block_d(head_dim: int) -> int:
    return max(16, triton.next_power_of_2(head_dim))


def fwd_config(
    head_dim: int, dtype: torch.dtype, capability: tuple[int, int] | None, dropout: bool = False
) -> dict:
    """Tiles for the forward kernel. ``capability`` None means the interpreter (small tiles: fast there).

    Dropout halves BLOCK_M: Philox on a 128x64 tile needs more registers than a thread has (measured with
    ``python -m fastbert.kernels.aot``: 255 registers and spills at 128x64).
    """
    bd = block_d(head_dim)
    if capability is None:
        return {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_D": bd, "num_warps": 4, "num_stages": 1}
    if capability < (8, 0):  # Turing: 64 KB shared memory, no bf16 tensor cores; keep tiles small
        if bd > 128:  # 64x32 tiles need 96-104 KB at head dim 256 (AOT report)
            return {"BLOCK_M": 32, "BLOCK_N": 16, "BLOCK_D": bd, "num_warps": 4, "num_stages": 1}
        return {"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_D": bd, "num_warps": 4, "num_stages": 1}
    if dtype == torch.float32:
        return {"BLOCK_M": 64, "BLOCK_N": 32 if bd <= 64 else 16, "BLOCK_D": bd, "num_warps": 4, "num_stages": 1}
    block_m = 64 if dropout else 128
    if bd <= 64:  # 128-row tiles need 8 warps: 4 spill (measured on sm_90 with the AOT report)
        return {"BLOCK_M": block_m, "BLOCK_N": 64, "BLOCK_D": bd, "num_warps": block_m // 16, "num_stages": 3}
    if bd <= 128:
        return {"BLOCK_M": block_m, "BLOCK_N": 32, "BLOCK_D": bd, "num_warps": 8, "num_stages": 2}
    return {"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_D": bd, "num_warps": 8, "num_stages": 1}


def bwd_config(
    head_dim: int, dtype: torch.dtype, capability: tuple[int, int] | None, dropout: bool = False
) -> dict:
    """Tiles shared by the dK/dV kernel (BLOCK_N keys x loop over BLOCK_M queries) and the dQ kernel."""
    bd = block_d(head_dim)
    if capability is None:
        return {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_D": bd, "num_warps": 4, "num_stages": 1}
    if capability < (8, 0) and bd > 64:
        # Turing's 64 KB of shared memory (AOT report): 32x64 tiles need 80 KB at head dim 128, 32x32 need
        # 68 KB in fp32 at 128 and 96-132 KB at 256
        if bd > 128:
            return {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_D": bd, "num_warps": 4, "num_stages": 1}
        block_m = 16 if dtype == torch.float32 else 32
        return {"BLOCK_M": block_m, "BLOCK_N": 32, "BLOCK_D": bd, "num_warps": 4, "num_stages": 1}
    if dtype == torch.float32 or bd > 128:
        return {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_D": bd, "num_warps": 4, "num_stages": 1}
    stages = 1 if capability < (8, 0) else 2
    if bd <= 64:
        return {"BLOCK_M": 32, "BLOCK_N": 64, "BLOCK_D": bd, "num_warps": 4, "num_stages": stages}
    return {"BLOCK_M": 32, "BLOCK_N": 64, "BLOCK_D": bd, "num_warps": 8, "num_stages": stages}


DELTA_CONFIG = {"BLOCK_M": 64, "num_warps": 4}


def _capability(t: torch.Tensor) -> tuple[int, int] | None:
    if interpreting() or t.device.type != "cuda":
        return None
    return torch.cuda.get_device_capability(t.device)


def _ieee(dtype: torch.dtype) -> bool:
    return dtype == torch.float32 or (dtype == torch.bfloat16 and interpreting())


def _unit_last(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def _fwd_fake(q, k, v, cu_seqlens, seqused_k, max_seqlen, softmax_scale, dropout_p, seed):
    total, heads, _ = q.shape
    return q.new_empty(q.shape), q.new_empty((heads, total), dtype=torch.float32)


@register_op("attention_fwd", _fwd_fake)
def attention_fwd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    seqused_k: torch.Tensor | None,
    max_seqlen: int,
    softmax_scale: float,
    dropout_p: float,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ``out (total, heads, head_dim)`` and ``lse (heads, total)`` fp32 (base-2, scaled scores)."""
    q, k, v = _unit_last(q), _unit_last(k), _unit_last(v)
    total, heads, head_dim = q.shape
    batch = cu_seqlens.shape[0] - 1
    out = torch.empty((total, heads, head_dim), dtype=q.dtype, device=q.device)
    lse = torch.empty((heads, total), dtype=torch.float32, device=q.device)
    if total == 0 or batch == 0 or max_seqlen == 0:
        return out, lse
    seqused_k = _keys_per_sequence(cu_seqlens, seqused_k)
    cfg = fwd_config(head_dim, q.dtype, _capability(q), dropout=dropout_p > 0.0)
    grid = (triton.cdiv(max_seqlen, cfg["BLOCK_M"]), batch, heads)
    launch(_attn_fwd_kernel)[grid](
        q, k, v, out, lse, cu_seqlens, seqused_k,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), out.stride(0), out.stride(1),
        total, head_dim, softmax_scale * _LOG2E, dropout_p, seed, max_seqlen,
        HAS_DROPOUT=dropout_p > 0.0, IEEE=_ieee(q.dtype), **cfg,
    )
    return out, lse


def _keys_per_sequence(cu_seqlens: torch.Tensor, seqused_k: torch.Tensor | None) -> torch.Tensor:
    """Keys of each sequence: ``seqused_k``, or every row. The kernels always read it (one variant fewer to
    compile than a constexpr switch, for one int32 load per program)."""
    if seqused_k is not None:
        return seqused_k
    return (cu_seqlens[1:] - cu_seqlens[:-1]).to(torch.int32)


def _bwd_fake(do, q, k, v, out, lse, cu_seqlens, seqused_k, max_seqlen, softmax_scale, dropout_p, seed):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


@register_op("attention_bwd", _bwd_fake)
def attention_bwd(
    do: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    cu_seqlens: torch.Tensor,
    seqused_k: torch.Tensor | None,
    max_seqlen: int,
    softmax_scale: float,
    dropout_p: float,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns ``dq, dk, dv`` (contiguous ``(total, heads, head_dim)``); rows of query-only tokens get 0 dk/dv."""
    q, k, v, do, out = (_unit_last(t) for t in (q, k, v, do, out))
    total, heads, head_dim = q.shape
    batch = cu_seqlens.shape[0] - 1
    dq = torch.empty((total, heads, head_dim), dtype=q.dtype, device=q.device)
    dk = torch.empty((total, heads, head_dim), dtype=k.dtype, device=q.device)
    dv = torch.empty((total, heads, head_dim), dtype=v.dtype, device=q.device)
    if total == 0 or batch == 0 or max_seqlen == 0:
        return dq, dk, dv
    bd = block_d(head_dim)
    delta = torch.empty((heads, total), dtype=torch.float32, device=q.device)
    launch(_attn_bwd_delta_kernel)[(triton.cdiv(total, DELTA_CONFIG["BLOCK_M"]), heads)](
        out, do, delta, out.stride(0), out.stride(1), do.stride(0), do.stride(1), total, head_dim,
        BLOCK_D=bd, **DELTA_CONFIG,
    )
    seqused_k = _keys_per_sequence(cu_seqlens, seqused_k)
    cfg = bwd_config(head_dim, q.dtype, _capability(q), dropout=dropout_p > 0.0)
    args = (
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), do.stride(0), do.stride(1),
        total, heads, head_dim, softmax_scale, softmax_scale * _LOG2E, dropout_p, seed, max_seqlen,
    )
    flags = dict(HAS_DROPOUT=dropout_p > 0.0, IEEE=_ieee(q.dtype))
    launch(_attn_bwd_dkdv_kernel)[(triton.cdiv(max_seqlen, cfg["BLOCK_N"]), batch, heads)](
        q, k, v, do, dk, dv, lse, delta, cu_seqlens, seqused_k, *args, **flags, **cfg,
    )
    launch(_attn_bwd_dq_kernel)[(triton.cdiv(max_seqlen, cfg["BLOCK_M"]), batch, heads)](
        q, k, v, do, dq, lse, delta, cu_seqlens, seqused_k, *args, **flags, **cfg,
    )
    return dq, dk, dv


class _AttentionFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, cu_seqlens, seqused_k, max_seqlen, softmax_scale, dropout_p, seed):
        out, lse = attention_fwd(q, k, v, cu_seqlens, seqused_k, max_seqlen, softmax_scale, dropout_p, seed)
        ctx.save_for_backward(q, k, v, out, lse, cu_seqlens, seqused_k)
        ctx.args = (max_seqlen, softmax_scale, dropout_p, seed)
        return out

    @staticmethod
    def backward(ctx, do):
        q, k, v, out, lse, cu_seqlens, seqused_k = ctx.saved_tensors
        dq, dk, dv = attention_bwd(do, q, k, v, out, lse, cu_seqlens, seqused_k, *ctx.args)
        return dq, dk, dv, None, None, None, None, None, None


def _check(q, k, v, cu_seqlens, max_seqlen, seqused_k):
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 3:
            raise ValueError(f"{name} must be (total, heads, head_dim), got shape {tuple(t.shape)}")
        check_float(name, t)
        if t.device != q.device:
            raise ValueError(f"{name} is on {t.device} but q is on {q.device}")
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"q, k, v shapes differ: {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"q, k, v dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    if q.shape[-1] == 0 or q.shape[-1] > 256:
        raise ValueError(f"head_dim must be in 1..256, got {q.shape[-1]}")
    if cu_seqlens.dim() != 1 or cu_seqlens.shape[0] < 1 or cu_seqlens.dtype != torch.int32:
        raise ValueError(f"cu_seqlens must be int32 (batch + 1,), got {cu_seqlens.dtype} {tuple(cu_seqlens.shape)}")
    if cu_seqlens.device != q.device:
        raise ValueError(f"cu_seqlens is on {cu_seqlens.device} but q is on {q.device}")
    batch = cu_seqlens.shape[0] - 1
    if seqused_k is not None:
        if seqused_k.shape != (batch,) or seqused_k.dtype != torch.int32 or seqused_k.device != q.device:
            raise ValueError(
                f"seqused_k must be int32 ({batch},) on {q.device}, got {seqused_k.dtype} "
                f"{tuple(seqused_k.shape)} on {seqused_k.device}"
            )
    if int(max_seqlen) < 0:
        raise ValueError(f"max_seqlen must be >= 0, got {max_seqlen}")


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_seqlen: int,
    seqused_k: torch.Tensor | None = None,
    softmax_scale: float | None = None,
    dropout_p: float = 0.0,
    seed: int | None = None,
) -> torch.Tensor:
    """Bidirectional attention inside each packed sequence; returns ``(total, heads, head_dim)``.

    ``max_seqlen`` must be at least the longest ``cu_seqlens`` difference (it sizes the grid and the dropout
    index space; it is not checked, to avoid a device sync). ``softmax_scale`` defaults to
    ``1/sqrt(head_dim)``. Dropout on the attention probabilities follows torch: zero with probability ``p``,
    survivors scaled by ``1/(1-p)``, reproducible from ``seed`` (drawn from torch's generator when None).
    """
    _check(q, k, v, cu_seqlens, max_seqlen, seqused_k)
    if (q.dtype == torch.float32 and block_d(q.shape[-1]) > 128 and torch.is_grad_enabled()
            and any(t.requires_grad for t in (q, k, v)) and (_capability(q) or (9, 0)) < (8, 0)):
        raise ValueError(
            "the fp32 attention backward at head dim > 128 needs more shared memory than sm_75's 64 KB; "
            "train in fp16/bf16 on this GPU, or use the torch path (fastbert.force_backend('torch'))"
        )
    scale = float(softmax_scale) if softmax_scale is not None else 1.0 / math.sqrt(q.shape[-1])
    dropout_p = check_dropout(dropout_p)
    seed = check_seed(seed if seed is not None else draw_seed()) if dropout_p > 0 else 0
    return _AttentionFn.apply(q, k, v, cu_seqlens, seqused_k, int(max_seqlen), scale, dropout_p, seed)


# ------------------------------------------------------------------------------------------------------
# torch reference
# ------------------------------------------------------------------------------------------------------


def attention_dropout_mask(cu_seqlens, max_seqlen: int, heads: int, dropout_p: float, seed: int) -> torch.Tensor:
    """The kernels' keep mask as a dense ``(heads, total, max_seqlen)`` bool tensor (key index local)."""
    total = int(cu_seqlens[-1])
    return dropout_mask((heads, total, max_seqlen), dropout_p, seed, device=cu_seqlens.device)


def attention_ref(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_seqlen: int,
    seqused_k: torch.Tensor | None = None,
    softmax_scale: float | None = None,
    dropout_p: float = 0.0,
    seed: int | None = None,
    upcast: bool = True,
) -> torch.Tensor:
    """Torch reference, one sequence at a time (math in fp32 when ``upcast``; output in q's dtype).

    With ``dropout_p > 0`` and a ``seed`` it applies the kernels' own mask; with no seed, torch's dropout.
    """
    dtype = q.dtype
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(q.shape[-1])
    if upcast:
        q, k, v = q.float(), k.float(), v.float()
    bounds = cu_seqlens.tolist()
    used = seqused_k.tolist() if seqused_k is not None else None
    keep = None
    if dropout_p > 0 and seed is not None:
        keep = attention_dropout_mask(cu_seqlens, max_seqlen, q.shape[1], dropout_p, seed)
    outs = []
    for b in range(len(bounds) - 1):
        s, e = bounds[b], bounds[b + 1]
        if e == s:
            continue
        n_k = used[b] if used is not None else e - s
        qb, kb, vb = q[s:e], k[s : s + n_k], v[s : s + n_k]
        scores = torch.einsum("qhd,khd->hqk", qb, kb) * scale
        probs = torch.softmax(scores, dim=-1)
        if dropout_p > 0:
            if keep is None:
                probs = torch.nn.functional.dropout(probs, dropout_p)
            else:
                probs = torch.where(keep[:, s:e, :n_k], probs / (1.0 - dropout_p), torch.zeros_like(probs))
        outs.append(torch.einsum("hqk,khd->qhd", probs, vb))
    if not outs:
        return q.new_empty(q.shape).to(dtype)
    return torch.cat(outs, 0).to(dtype)
