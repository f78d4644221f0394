"""Bias + GELU: ``y = gelu(x + bias)``, exact erf form (BERT's ``gelu``) or the tanh approximation.

Math, with ``u = x + bias`` in fp32::

    exact:  y = u * Phi(u) = 0.5 * u * (1 + erf(u / sqrt(2)))
            dy/du = Phi(u) + u * phi(u),          phi(u) = exp(-u^2 / 2) / sqrt(2 pi)
    tanh:   t = tanh(sqrt(2/pi) * (u + 0.044715 u^3)),   y = 0.5 * u * (1 + t)
            dy/du = 0.5 * (1 + t) + 0.5 * u * (1 - t^2) * sqrt(2/pi) * (1 + 3 * 0.044715 u^2)

Backward: ``dx = dy * dy/du`` and ``dbias = sum_rows(dx)``, the column sums written as fp32 partials (one row
per program along M) and reduced by torch afterwards: deterministic, no atomics. The forward saves nothing
but its inputs; the backward recomputes ``u``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import as_rows, check_float, check_same_device, launch, partial_programs, register_op


@triton.jit
def _tanh(x):
    # tanh from exp (tl.math has no portable tanh), via e^{-2|x|} so nothing overflows
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x < 0, -t, t)


@triton.jit
def _gelu(u, TANH: tl.constexpr):
    if TANH:
        t = _tanh(0.7978845608028654 * (u + 0.044715 * u * u * u))
        y = 0.5 * u * (1.0 + t)
    else:
        y = 0.5 * u * (1.0 + tl.math.erf(u * 0.7071067811865476))
    return y


@triton.jit
def _gelu_grad(u, TANH: tl.constexpr):
    if TANH:
        t = _tanh(0.7978845608028654 * (u + 0.044715 * u * u * u))
        g = 0.5 * (1.0 + t) + 0.5 * u * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 0.134145 * u * u)
    else:
        cdf = 0.5 * (1.0 + tl.math.erf(u * 0.7071067811865476))
        g = cdf + u * 0.3989422804014327 * tl.exp(-0.5 * u * u)
    return g


@triton.jit
def _bias_gelu_fwd_kernel(
    X,  # (M, N) input, row stride stride_x, unit column stride
    BIAS,  # (N,) (HAS_BIAS)
    Y,  # (M, N) output, contiguous
    M, N, stride_x,
    HAS_BIAS: tl.constexpr, TANH: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = (rows[:, None] < M) & (cols[None, :] < N)
    u = tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        u += tl.load(BIAS + cols, mask=cols < N, other=0.0).to(tl.float32)[None, :]
    y = _gelu(u, TANH)
    tl.store(Y + rows[:, None] * N + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _bias_gelu_bwd_kernel(
    X, BIAS,  # as in the forward
    DY,  # (M, N) output gradient, row stride stride_dy
    DX,  # (M, N) input gradient, contiguous
    DB_PART,  # (programs along M, N) fp32 partial column sums of dx (HAS_BIAS)
    M, N, stride_x, stride_dy, rows_per_program,
    HAS_BIAS: tl.constexpr, TANH: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid_m = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    col_mask = cols < N
    if HAS_BIAS:
        bias = tl.load(BIAS + cols, mask=col_mask, other=0.0).to(tl.float32)
    db = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    row_start = pid_m.to(tl.int64) * rows_per_program
    for r in range(0, rows_per_program, BLOCK_M):
        rows = row_start + r + tl.arange(0, BLOCK_M)
        mask = (rows[:, None] < M) & col_mask[None, :]
        u = tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        if HAS_BIAS:
            u += bias[None, :]
        dy = tl.load(DY + rows[:, None] * stride_dy + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        dx = tl.where(mask, dy * _gelu_grad(u, TANH), 0.0)
        tl.store(DX + rows[:, None] * N + cols[None, :], dx.to(DX.dtype.element_ty), mask=mask)
        db += dx
    if HAS_BIAS:
        tl.store(DB_PART + pid_m * N + cols, tl.sum(db, axis=0), mask=col_mask)


# ------------------------------------------------------------------------------------------------------
# launchers
# ------------------------------------------------------------------------------------------------------


def config(n: int) -> dict:
    """Tile for ``n`` columns: up to 256 columns by enough rows for ~2048 elements per program."""
    block_n = min(triton.next_power_of_2(max(n, 1)), 256)
    return {"BLOCK_M": max(1, 2048 // block_n), "BLOCK_N": block_n, "num_warps": 4}


def _fwd_fake(x, bias, approximate):
    return x.new_empty(x.shape)


@register_op("bias_gelu_fwd", _fwd_fake)
def bias_gelu_fwd(x: torch.Tensor, bias: torch.Tensor | None, approximate: str) -> torch.Tensor:
    """``x``: ``(M, N)``; returns ``gelu(x + bias)`` ``(M, N)`` contiguous in x's dtype."""
    x = as_rows(x)
    m, n = x.shape
    y = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m and n:
        cfg = config(n)
        grid = (triton.cdiv(m, cfg["BLOCK_M"]), triton.cdiv(n, cfg["BLOCK_N"]))
        launch(_bias_gelu_fwd_kernel)[grid](
            x, bias, y, m, n, x.stride(0), HAS_BIAS=bias is not None, TANH=approximate == "tanh", **cfg
        )
    return y


def _bwd_fake(dy, x, bias, approximate):
    n = x.shape[-1]
    return x.new_empty(x.shape), (bias.new_empty(n) if bias is not None else x.new_empty(0))


@register_op("bias_gelu_bwd", _bwd_fake)
def bias_gelu_bwd(
    dy: torch.Tensor, x: torch.Tensor, bias: torch.Tensor | None, approximate: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ``dx (M, N)`` and ``dbias (N,)`` (empty when there is no bias)."""
    x = as_rows(x)
    dy = as_rows(dy)
    m, n = x.shape
    dx = torch.empty((m, n), dtype=x.dtype, device=x.device)
    cfg = config(n)
    row_blocks = triton.cdiv(m, cfg["BLOCK_M"])
    programs = max(1, min(row_blocks, partial_programs(x.device))) if bias is not None else max(row_blocks, 1)
    rows_per_program = triton.cdiv(row_blocks, programs) * cfg["BLOCK_M"]
    db_part = torch.zeros((programs, n), dtype=torch.float32, device=x.device) if bias is not None else None
    if m and n:
        grid = (programs, triton.cdiv(n, cfg["BLOCK_N"]))
        launch(_bias_gelu_bwd_kernel)[grid](
            x, bias, dy, dx, db_part, m, n, x.stride(0), dy.stride(0), rows_per_program,
            HAS_BIAS=bias is not None, TANH=approximate == "tanh", **cfg,
        )
    db = db_part.sum(0).to(bias.dtype) if bias is not None else x.new_empty(0)
    return dx, db


class _BiasGeluFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bias, approximate):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        ctx.save_for_backward(x2, bias)
        ctx.approximate, ctx.shape = approximate, shape
        return bias_gelu_fwd(x2, bias, approximate).view(shape)

    @staticmethod
    def backward(ctx, dy):
        x2, bias = ctx.saved_tensors
        dx, db = bias_gelu_bwd(dy.reshape(-1, ctx.shape[-1]), x2, bias, ctx.approximate)
        return dx.view(ctx.shape), (db if bias is not None else None), None


def bias_gelu(x: torch.Tensor, bias: torch.Tensor | None, approximate: str = "none") -> torch.Tensor:
    """``gelu(x + bias)`` over any leading shape; ``approximate`` is ``"none"`` (erf) or ``"tanh"``."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    if x.dim() < 1:
        raise ValueError("x must have at least one dimension")
    check_float("x", x)
    check_same_device(x, bias=bias)
    if bias is not None:
        check_float("bias", bias)
        if bias.shape != (x.shape[-1],):
            raise ValueError(f"bias must have shape ({x.shape[-1]},), got {tuple(bias.shape)}")
    return _BiasGeluFn.apply(x, bias, approximate)


def bias_gelu_ref(
    x: torch.Tensor, bias: torch.Tensor | None, approximate: str = "none", upcast: bool = True
) -> torch.Tensor:
    """Torch reference: fp32 math when ``upcast``, output in ``x``'s dtype."""
    u = x.float() if upcast else x
    if bias is not None:
        u = u + (bias.float() if upcast else bias)
    return torch.nn.functional.gelu(u, approximate=approximate).to(x.dtype)
