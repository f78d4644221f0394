"""Fused (bias + dropout + residual) LayerNorm: ``y = LN(dropout(x + x_bias) + residual)`` over the last dim.

Math, per row of ``N`` features (everything in fp32)::

    z     = keep * (x + x_bias) / (1 - p) + residual          keep ~ Bernoulli(1 - p), from Philox(seed, row*N+col)
    mean  = sum(z) / N,   rstd = 1 / sqrt(sum((z - mean)^2) / N + eps)
    x_hat = (z - mean) * rstd,   y = x_hat * w + b

Backward (g = w * dy)::

    dz = rstd * (g - mean(g) - x_hat * mean(g * x_hat))
    dresidual = dz,   dx = dz * keep / (1 - p),   dx_bias = sum_rows(dx)
    dw = sum_rows(dy * x_hat),   db = sum_rows(dy)

The forward saves only ``mean`` and ``rstd`` (fp32, one per row); the backward recomputes ``z`` from the
inputs and regenerates the dropout mask from the seed. Column sums are written as fp32 partials, one row of
partials per program, and reduced by torch afterwards: deterministic, no atomics.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import (
    as_rows,
    check_dropout,
    check_float,
    check_same_device,
    check_seed,
    draw_seed,
    launch,
    partial_programs,
    register_op,
)
from .dropout import dropout_mask


@triton.jit
def _load_z(X, X_BIAS, RES, row, cols, mask, stride_x, stride_res, N, dropout_p, seed,
            HAS_X_BIAS: tl.constexpr, HAS_RES: tl.constexpr, HAS_DROPOUT: tl.constexpr):
    """``z`` of one row (``row`` is int64) in fp32, masked columns 0, and the dropout keep mask."""
    row64 = row
    z = tl.load(X + row64 * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    if HAS_X_BIAS:
        z += tl.load(X_BIAS + cols, mask=mask, other=0.0).to(tl.float32)
    keep = mask
    if HAS_DROPOUT:
        keep = tl.rand(seed, row64 * N + cols) >= dropout_p
        z = tl.where(keep, z * (1.0 / (1.0 - dropout_p)), 0.0)
    if HAS_RES:
        z += tl.load(RES + row64 * stride_res + cols, mask=mask, other=0.0).to(tl.float32)
    return z, keep


@triton.jit
def _layer_norm_fwd_kernel(
    X,  # (M, N) input, row stride stride_x, unit column stride
    X_BIAS,  # (N,) bias added to x before dropout (HAS_X_BIAS)
    RES,  # (M, N) residual added after dropout (HAS_RES)
    W,  # (N,) LayerNorm weight (HAS_W)
    B,  # (N,) LayerNorm bias (HAS_B)
    Y,  # (M, N) output, contiguous
    MEAN,  # (M,) fp32
    RSTD,  # (M,) fp32
    stride_x, stride_res, N, eps, dropout_p, seed,
    HAS_X_BIAS: tl.constexpr, HAS_RES: tl.constexpr, HAS_W: tl.constexpr, HAS_B: tl.constexpr,
    HAS_DROPOUT: tl.constexpr, BLOCK_N: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    z, keep = _load_z(X, X_BIAS, RES, row, cols, mask, stride_x, stride_res, N, dropout_p, seed,
                      HAS_X_BIAS, HAS_RES, HAS_DROPOUT)
    mean = tl.sum(z, axis=0) / N
    zc = tl.where(mask, z - mean, 0.0)
    var = tl.sum(zc * zc, axis=0) / N
    rstd = 1.0 / tl.sqrt(var + eps)
    y = zc * rstd
    if HAS_W:
        y = y * tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    if HAS_B:
        y = y + tl.load(B + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(Y + row * N + cols, y.to(Y.dtype.element_ty), mask=mask)
    tl.store(MEAN + row, mean)
    tl.store(RSTD + row, rstd)


@triton.jit
def _layer_norm_bwd_kernel(
    X, X_BIAS, RES, W,  # as in the forward
    MEAN, RSTD,  # (M,) fp32, saved by the forward
    DY,  # (M, N) output gradient, row stride stride_dy
    DX,  # (M, N) gradient of x, contiguous
    DRES,  # (M, N) gradient of the residual, contiguous (HAS_RES)
    DW_PART, DB_PART, DXB_PART,  # (programs, N) fp32 partial column sums of dy*x_hat, dy, dx
    stride_x, stride_res, stride_dy, M, N, rows_per_program, dropout_p, seed,
    HAS_X_BIAS: tl.constexpr, HAS_RES: tl.constexpr, HAS_W: tl.constexpr, HAS_DROPOUT: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    if HAS_W:
        w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    dw = tl.zeros((BLOCK_N,), dtype=tl.float32)
    db = tl.zeros((BLOCK_N,), dtype=tl.float32)
    dxb = tl.zeros((BLOCK_N,), dtype=tl.float32)
    row_start = pid.to(tl.int64) * rows_per_program
    row_end = tl.minimum(row_start + rows_per_program, M)
    for row in range(row_start, row_end):
        z, keep = _load_z(X, X_BIAS, RES, row, cols, mask, stride_x, stride_res, N, dropout_p, seed,
                          HAS_X_BIAS, HAS_RES, HAS_DROPOUT)
        mean = tl.load(MEAN + row)
        rstd = tl.load(RSTD + row)
        x_hat = tl.where(mask, (z - mean) * rstd, 0.0)
        row64 = row
        dy = tl.load(DY + row64 * stride_dy + cols, mask=mask, other=0.0).to(tl.float32)
        g = dy * w if HAS_W else dy
        c1 = tl.sum(g * x_hat, axis=0) / N
        c2 = tl.sum(g, axis=0) / N
        dz = tl.where(mask, (g - (x_hat * c1 + c2)) * rstd, 0.0)
        if HAS_RES:
            tl.store(DRES + row64 * N + cols, dz.to(DRES.dtype.element_ty), mask=mask)
        dx = dz
        if HAS_DROPOUT:
            dx = tl.where(keep, dz * (1.0 / (1.0 - dropout_p)), 0.0)
        tl.store(DX + row64 * N + cols, dx.to(DX.dtype.element_ty), mask=mask)
        dw += dy * x_hat
        db += dy
        dxb += dx
    tl.store(DW_PART + pid * N + cols, dw, mask=mask)
    tl.store(DB_PART + pid * N + cols, db, mask=mask)
    if HAS_X_BIAS:
        tl.store(DXB_PART + pid * N + cols, dxb, mask=mask)


# ------------------------------------------------------------------------------------------------------
# launchers
# ------------------------------------------------------------------------------------------------------


def fwd_config(n: int) -> dict:
    """Block and warp count for a row of ``n`` features (shared by the launcher and the AOT check)."""
    block_n = triton.next_power_of_2(max(n, 1))
    return {"BLOCK_N": block_n, "num_warps": min(max(block_n // 256, 1), 16)}


def bwd_config(n: int) -> dict:
    return fwd_config(n)


def _empty(t: torch.Tensor) -> torch.Tensor:
    return t.new_empty(0)


def _fwd_fake(x, weight, bias, residual, x_bias, eps, dropout_p, seed, out_fp32):
    m = x.shape[0]
    f32 = dict(dtype=torch.float32, device=x.device)
    return x.new_empty(x.shape, dtype=torch.float32 if out_fp32 else x.dtype), torch.empty(m, **f32), \
        torch.empty(m, **f32)


@register_op("layer_norm_fwd", _fwd_fake)
def layer_norm_fwd(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    residual: torch.Tensor | None,
    x_bias: torch.Tensor | None,
    eps: float,
    dropout_p: float,
    seed: int,
    out_fp32: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x, residual``: ``(M, N)``; returns ``y (M, N)`` in x's dtype (fp32 with ``out_fp32``), ``mean, rstd
    (M,)`` fp32."""
    x = as_rows(x)
    m, n = x.shape
    res = as_rows(residual) if residual is not None else None
    y = torch.empty((m, n), dtype=torch.float32 if out_fp32 else x.dtype, device=x.device)
    mean = torch.empty(m, dtype=torch.float32, device=x.device)
    rstd = torch.empty(m, dtype=torch.float32, device=x.device)
    if m == 0:
        return y, mean, rstd
    cfg = fwd_config(n)
    launch(_layer_norm_fwd_kernel)[(m,)](
        x, x_bias, res, weight, bias, y, mean, rstd,
        x.stride(0), res.stride(0) if res is not None else 0, n, eps, dropout_p, seed,
        HAS_X_BIAS=x_bias is not None, HAS_RES=res is not None, HAS_W=weight is not None,
        HAS_B=bias is not None, HAS_DROPOUT=dropout_p > 0.0, **cfg,
    )
    return y, mean, rstd


def _bwd_fake(dy, x, weight, residual, x_bias, mean, rstd, dropout_p, seed):
    n = x.shape[-1]
    w_dtype = weight.dtype if weight is not None else x.dtype
    return (
        x.new_empty(x.shape),
        residual.new_empty(residual.shape) if residual is not None else x.new_empty(0),
        x.new_empty(n, dtype=w_dtype),
        x.new_empty(n, dtype=w_dtype),
        x_bias.new_empty(n) if x_bias is not None else x.new_empty(0),
    )


@register_op("layer_norm_bwd", _bwd_fake)
def layer_norm_bwd(
    dy: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor | None,
    residual: torch.Tensor | None,
    x_bias: torch.Tensor | None,
    mean: torch.Tensor,
    rstd: torch.Tensor,
    dropout_p: float,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns ``dx, dresidual, dweight, dbias, dx_bias`` (empty tensors stand for absent inputs)."""
    x = as_rows(x)
    dy = as_rows(dy)
    m, n = x.shape
    res = as_rows(residual) if residual is not None else None
    dx = torch.empty((m, n), dtype=x.dtype, device=x.device)
    dres = torch.empty((m, n), dtype=res.dtype, device=x.device) if res is not None else _empty(x)
    programs = max(1, min(m, partial_programs(x.device)))
    rows_per_program = triton.cdiv(m, programs) if m else 0
    f32 = dict(dtype=torch.float32, device=x.device)
    dw_part = torch.zeros((programs, n), **f32)
    db_part = torch.zeros((programs, n), **f32)
    dxb_part = torch.zeros((programs, n), **f32) if x_bias is not None else _empty(dw_part)
    if m > 0:
        launch(_layer_norm_bwd_kernel)[(programs,)](
            x, x_bias, res, weight, mean, rstd, dy, dx, dres, dw_part, db_part, dxb_part,
            x.stride(0), res.stride(0) if res is not None else 0, dy.stride(0), m, n, rows_per_program,
            dropout_p, seed,
            HAS_X_BIAS=x_bias is not None, HAS_RES=res is not None, HAS_W=weight is not None,
            HAS_DROPOUT=dropout_p > 0.0, **bwd_config(n),
        )
    w_dtype = weight.dtype if weight is not None else x.dtype
    dw = dw_part.sum(0).to(w_dtype)
    db = db_part.sum(0).to(w_dtype)
    dxb = dxb_part.sum(0).to(x_bias.dtype) if x_bias is not None else _empty(x)
    return dx, dres, dw, db, dxb


class _LayerNormFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, residual, x_bias, eps, dropout_p, seed, out_fp32):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        res2 = residual.reshape(-1, shape[-1]) if residual is not None else None
        y, mean, rstd = layer_norm_fwd(x2, weight, bias, res2, x_bias, eps, dropout_p, seed, out_fp32)
        ctx.save_for_backward(x2, weight, res2, x_bias, mean, rstd)
        ctx.dropout_p, ctx.seed, ctx.shape = dropout_p, seed, shape
        ctx.has = (weight is not None, bias is not None, residual is not None, x_bias is not None)
        return y.view(shape)

    @staticmethod
    def backward(ctx, dy):
        x2, weight, res2, x_bias, mean, rstd = ctx.saved_tensors
        dy2 = dy.reshape(-1, ctx.shape[-1])
        dx, dres, dw, db, dxb = layer_norm_bwd(dy2, x2, weight, res2, x_bias, mean, rstd, ctx.dropout_p, ctx.seed)
        has_w, has_b, has_res, has_xb = ctx.has
        return (
            dx.view(ctx.shape),
            dw if has_w else None,
            db if has_b else None,
            dres.view(ctx.shape) if has_res else None,
            dxb if has_xb else None,
            None, None, None, None,
        )


def layer_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
    residual: torch.Tensor | None = None,
    x_bias: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    seed: int | None = None,
    out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """``LayerNorm(dropout(x + x_bias) + residual)`` over the last dim of ``x`` (any leading shape).

    Statistics are fp32 and the output has ``x``'s dtype, or ``out_dtype`` (``x``'s dtype or float32: under
    autocast LayerNorm returns fp32, as torch's does, so the residual stream stays fp32). ``dropout_p``
    zeroes with that probability and scales survivors by ``1/(1-p)``; the mask is a function of ``seed``
    (drawn from torch's generator when None) and the element index, so the backward regenerates it.
    """
    if x.dim() < 1 or x.shape[-1] == 0:
        raise ValueError(f"x must have a non-empty last dimension, got shape {tuple(x.shape)}")
    n = x.shape[-1]
    check_float("x", x)
    check_same_device(x, weight=weight, bias=bias, residual=residual, x_bias=x_bias)
    for name, t in (("weight", weight), ("bias", bias), ("x_bias", x_bias)):
        if t is not None:
            check_float(name, t)
            if t.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {tuple(t.shape)}")
    if residual is not None:
        check_float("residual", residual)
        if residual.shape != x.shape:
            raise ValueError(f"residual shape {tuple(residual.shape)} != x shape {tuple(x.shape)}")
    if not eps >= 0.0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if out_dtype not in (None, x.dtype, torch.float32):
        raise ValueError(f"out_dtype must be x's dtype ({x.dtype}) or torch.float32, got {out_dtype}")
    dropout_p = check_dropout(dropout_p)
    seed = check_seed(seed if seed is not None else draw_seed()) if dropout_p > 0 else 0
    out_fp32 = out_dtype == torch.float32 and x.dtype != torch.float32
    return _LayerNormFn.apply(x, weight, bias, residual, x_bias, float(eps), dropout_p, seed, out_fp32)


# ------------------------------------------------------------------------------------------------------
# the torch reference
# ------------------------------------------------------------------------------------------------------


def layer_norm_ref(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
    residual: torch.Tensor | None = None,
    x_bias: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    seed: int | None = None,
    upcast: bool = True,
) -> torch.Tensor:
    """Torch reference of ``layer_norm``: fp32 math (``upcast``), output in ``x``'s dtype.

    With ``dropout_p > 0`` and a ``seed`` it applies the kernel's own mask (``dropout_mask``); with no seed it
    uses torch's dropout (same distribution, different mask).
    """
    dtype = x.dtype
    cast = (lambda t: t.float() if t is not None else None) if upcast else (lambda t: t)
    z = cast(x)
    if x_bias is not None:
        z = z + cast(x_bias)
    if dropout_p > 0:
        if seed is None:
            z = torch.nn.functional.dropout(z, dropout_p)
        else:
            keep = dropout_mask(x.shape, dropout_p, seed, device=x.device)
            z = torch.where(keep, z * (1.0 / (1.0 - dropout_p)), torch.zeros_like(z))
    if residual is not None:
        z = z + cast(residual)
    w, b = cast(weight), cast(bias)
    return torch.nn.functional.layer_norm(z, (x.shape[-1],), w, b, eps).to(dtype)
