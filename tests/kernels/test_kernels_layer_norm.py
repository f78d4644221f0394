"""Fused bias + dropout + residual LayerNorm kernel against its torch reference (CPU: Triton interpreter)."""

import pytest
import torch

from fastbert.kernels.dropout import dropout_mask
from fastbert.kernels.layer_norm import layer_norm, layer_norm_ref

EPS = 1e-12  # BERT's


def _inputs(shape, dtype, residual=True, x_bias=True, affine=True, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    n = shape[-1]

    def mk(*s, scale=1.0):
        return (torch.randn(*s, generator=g) * scale).to(device=device, dtype=dtype).requires_grad_()

    return dict(
        x=mk(*shape),
        weight=mk(n, scale=0.5) if affine else None,
        bias=mk(n) if affine else None,
        residual=mk(*shape) if residual else None,
        x_bias=mk(n) if x_bias else None,
    )


def _run(fn, inp, dy, **kw):
    y = fn(inp["x"], inp["weight"], inp["bias"], EPS, residual=inp["residual"], x_bias=inp["x_bias"], **kw)
    leaves = [t for t in inp.values() if t is not None]
    return y, torch.autograd.grad(y, leaves, dy)


def _max_err(a, b):
    return (a.float() - b.float()).abs().max().item()


def _assert_fp32(y, grads, y_ref, grads_ref):
    # fp32 statistics in both; the kernel's row sums and the per-program partial sums of dw/db run in
    # another order than torch's, so a few ulp (relative to the O(sqrt(rows)) column sums for dw/db)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("shape", [(1, 7), (7, 33), (33, 768), (4, 1023), (3, 1500), (2, 3, 64)])
def test_fp32_shapes(shape):
    inp = _inputs(shape, torch.float32)
    dy = torch.randn(shape)
    y, grads = _run(layer_norm, inp, dy)
    _assert_fp32(y, grads, *_run(layer_norm_ref, inp, dy))
    # and plain torch: F.layer_norm(x + x_bias + residual)
    plain = torch.nn.functional.layer_norm(
        inp["x"] + inp["x_bias"] + inp["residual"], shape[-1:], inp["weight"], inp["bias"], EPS
    )
    torch.testing.assert_close(y, plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("residual,x_bias,affine", [(False, False, True), (True, False, True), (False, True, True),
                                                    (True, True, False)])
def test_fp32_flags(residual, x_bias, affine):
    inp = _inputs((9, 48), torch.float32, residual=residual, x_bias=x_bias, affine=affine)
    dy = torch.randn(9, 48)
    y, grads = _run(layer_norm, inp, dy)
    _assert_fp32(y, grads, *_run(layer_norm_ref, inp, dy))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(17, 768), (5, 100)])
def test_low_precision(dtype, shape):
    inp = _inputs(shape, dtype)
    dy = torch.randn(shape).to(dtype)
    y, grads = _run(layer_norm, inp, dy)
    inp32 = {k: (v.detach().float().requires_grad_() if v is not None else None) for k, v in inp.items()}
    y_ref, grads_ref = _run(layer_norm_ref, inp32, dy.float())
    y_pt, grads_pt = _run(layer_norm_ref, inp, dy, upcast=False)  # torch's own low-precision math
    # at most 2x torch's own error against fp32, plus one ulp of the output dtype for the final rounding
    ulp = 2.0 ** (-10 if dtype == torch.float16 else -7)
    assert _max_err(y, y_ref) <= 2 * _max_err(y_pt, y_ref) + ulp
    for a, b, c in zip(grads, grads_ref, grads_pt):
        assert _max_err(a, b) <= 2 * _max_err(c, b) + ulp * b.abs().max().item()


def test_noncontiguous_inputs():
    x = torch.randn(64, 12).t().requires_grad_()  # (12, 64), column stride 12
    res = torch.randn(12, 128)[:, ::2].requires_grad_()  # row stride 128, column stride 2
    w, b = torch.randn(64, requires_grad=True), torch.randn(64, requires_grad=True)
    dy = torch.randn(12, 64)
    inp = dict(x=x, weight=w, bias=b, residual=res, x_bias=None)
    _assert_fp32(*_run(layer_norm, inp, dy), *_run(layer_norm_ref, inp, dy))
    # a row-strided (unit column stride) view goes in without a copy
    big = torch.randn(12, 100)
    xv = big[:, :64].requires_grad_()
    inp = dict(x=xv, weight=w, bias=b, residual=None, x_bias=None)
    _assert_fp32(*_run(layer_norm, inp, dy), *_run(layer_norm_ref, inp, dy))


def test_dropout_matches_reference_and_is_reproducible():
    inp = _inputs((11, 40), torch.float32)
    dy = torch.randn(11, 40)
    y, grads = _run(layer_norm, inp, dy, dropout_p=0.2, seed=42)
    _assert_fp32(y, grads, *_run(layer_norm_ref, inp, dy, dropout_p=0.2, seed=42))
    again, _ = _run(layer_norm, inp, dy, dropout_p=0.2, seed=42)
    other, _ = _run(layer_norm, inp, dy, dropout_p=0.2, seed=43)
    assert torch.equal(y, again) and not torch.equal(y, other)
    torch.manual_seed(0)
    a, _ = _run(layer_norm, inp, dy, dropout_p=0.2)
    torch.manual_seed(0)
    b, _ = _run(layer_norm, inp, dy, dropout_p=0.2)
    assert torch.equal(a, b)


def test_dropout_statistics():
    # x = 1 with no residual: dropout(x) is 0 or 1/(1-p); with x_bias = -mean those read back from dx
    p, n, rows = 0.3, 256, 16
    x = torch.ones(rows, n, requires_grad=True)
    y = layer_norm(x, None, None, 1e-5, dropout_p=p, seed=7)
    (dx,) = torch.autograd.grad(y, x, torch.randn(rows, n))
    keep = dropout_mask((rows, n), p, 7)
    assert torch.all(dx[~keep] == 0)  # dropped elements get no gradient
    frac = keep.float().mean().item()
    assert abs(frac - (1 - p)) < 4 * (p * (1 - p) / (rows * n)) ** 0.5
    # with no weight the kept entries normalise to the same positive value in each row
    assert torch.all(y[keep] > 0) and torch.all(y[~keep] < 0)


def test_backward_deterministic():
    inp = _inputs((37, 96), torch.float32)
    dy = torch.randn(37, 96)
    _, g1 = _run(layer_norm, inp, dy)
    _, g2 = _run(layer_norm, inp, dy)
    assert all(torch.equal(a, b) for a, b in zip(g1, g2))


def test_input_errors():
    x = torch.randn(4, 8)
    w = torch.randn(8)
    with pytest.raises(ValueError, match="weight must have shape"):
        layer_norm(x, torch.randn(7), w, EPS)
    with pytest.raises(ValueError, match="residual shape"):
        layer_norm(x, w, w, EPS, residual=torch.randn(4, 7))
    with pytest.raises(ValueError, match="dropout_p"):
        layer_norm(x, w, w, EPS, dropout_p=-0.1)
    with pytest.raises(ValueError, match="float16, bfloat16 or float32"):
        layer_norm(x.double(), w, w, EPS)


def test_torch_compile_fullgraph():
    inp = _inputs((5, 32), torch.float32)

    def f(x, w, b, r, xb):
        return layer_norm(x, w, b, EPS, residual=r, x_bias=xb, dropout_p=0.1, seed=1).square().sum()

    args = [inp[k] for k in ("x", "weight", "bias", "residual", "x_bias")]
    g = torch.autograd.grad(torch.compile(f, backend="aot_eager", fullgraph=True)(*args), args)
    g_eager = torch.autograd.grad(f(*args), args)
    for a, b in zip(g, g_eager):
        torch.testing.assert_close(a, b)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("shape", [(1, 768), (4097, 768), (1000, 1024), (77, 4096), (3, 1500)])
def test_gpu_against_reference(dtype, shape):
    inp = _inputs(shape, dtype, device="cuda")
    dy = torch.randn(shape, device="cuda").to(dtype)
    y, grads = _run(layer_norm, inp, dy)
    inp32 = {k: (v.detach().float().requires_grad_() if v is not None else None) for k, v in inp.items()}
    y_ref, grads_ref = _run(layer_norm_ref, inp32, dy.float())
    y_pt, grads_pt = _run(layer_norm_ref, inp, dy, upcast=False)
    tol = 1e-5 if dtype == torch.float32 else 0.0
    assert _max_err(y, y_ref) <= 2 * _max_err(y_pt, y_ref) + max(tol, 1e-3 * (dtype != torch.float32))
    for a, b, c in zip(grads, grads_ref, grads_pt):
        assert _max_err(a, b) <= 2 * _max_err(c, b) + 1e-3 * b.abs().max().item()


@pytest.mark.parametrize("act", [torch.float16, torch.bfloat16])
def test_autocast_layout_returns_fp32_like_torch(act):
    """Under autocast: x is a half-precision GEMM output, the LayerNorm parameters and the residual stream are
    fp32, and the result is fp32 (autocast runs torch's LayerNorm in fp32), through the op seam too."""
    from fastbert import ops

    g = torch.Generator().manual_seed(4)
    n = 96
    x = (torch.randn(9, n, generator=g)).to(act).requires_grad_()
    res = torch.randn(9, n, generator=g).requires_grad_()
    w = (torch.randn(n, generator=g) * 0.5).requires_grad_()
    b = torch.randn(n, generator=g).requires_grad_()
    xb = torch.randn(n, generator=g).requires_grad_()
    dy = torch.randn(9, n, generator=g)
    with ops.force_backend("triton"), torch.autocast("cpu", dtype=act):
        y = ops.layer_norm(x, w, b, EPS, residual=res, x_bias=xb)
    assert y.dtype == torch.float32
    dx, dres, dw, db, dxb = torch.autograd.grad(y, (x, res, w, b, xb), dy)
    assert (dx.dtype, dres.dtype, dw.dtype, db.dtype, dxb.dtype) == (act,) + (torch.float32,) * 4
    # the same math in fp32 from the same (rounded) x: only the half-precision store of dx differs
    xf = x.detach().float().requires_grad_()
    ref = torch.nn.functional.layer_norm(xf + xb + res, (n,), w, b, EPS)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    ref_grads = torch.autograd.grad(ref, (xf, res, w, b, xb), dy)
    torch.testing.assert_close(dx.float(), ref_grads[0], rtol=1e-2, atol=1e-2)  # one half-precision rounding
    for got, want in zip((dres, dw, db, dxb), ref_grads[1:]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-5)
    # without autocast the output keeps x's dtype
    with ops.force_backend("triton"):
        assert ops.layer_norm(x, w, b, EPS, residual=res, x_bias=xb).dtype == act


def test_out_dtype_must_be_x_dtype_or_fp32():
    x = torch.randn(3, 8)
    with pytest.raises(ValueError, match="out_dtype"):
        layer_norm(x, None, None, EPS, out_dtype=torch.float16)
