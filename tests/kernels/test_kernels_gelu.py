"""Bias + GELU kernel (erf and tanh forms) against its torch reference (CPU: Triton interpreter)."""

import pytest
import torch

from fastbert.kernels.gelu import bias_gelu, bias_gelu_ref


def _run(fn, x, bias, dy, approximate, **kw):
    y = fn(x, bias, approximate, **kw)
    leaves = [t for t in (x, bias) if t is not None]
    return y, torch.autograd.grad(y, leaves, dy)


def _max_err(a, b):
    return (a.float() - b.float()).abs().max().item()


def _assert_fp32(y, grads, y_ref, grads_ref):
    # fp32: erf/exp come from the interpreter's numpy, not torch's (1 ulp of |y| ~ 8 is 1e-6 absolute, and
    # the relative error near GELU's zero crossing is unbounded); dbias partials are summed in another order
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=2e-6)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(1, 1), (7, 33), (37, 3072), (300, 17), (2, 3, 256)])
def test_fp32(shape, approximate):
    x = (torch.randn(shape) * 3).requires_grad_()  # wide range: both tails of the GELU
    bias = torch.randn(shape[-1], requires_grad=True)
    dy = torch.randn(shape)
    y, grads = _run(bias_gelu, x, bias, dy, approximate)
    _assert_fp32(y, grads, *_run(bias_gelu_ref, x, bias, dy, approximate))
    plain = torch.nn.functional.gelu(x + bias, approximate=approximate)
    torch.testing.assert_close(y, plain, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_no_bias(approximate):
    x = torch.randn(9, 40, requires_grad=True)
    dy = torch.randn(9, 40)
    _assert_fp32(*_run(bias_gelu, x, None, dy, approximate), *_run(bias_gelu_ref, x, None, dy, approximate))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_low_precision(dtype, approximate):
    x = (torch.randn(33, 300) * 3).to(dtype).requires_grad_()
    bias = torch.randn(300).to(dtype).requires_grad_()
    dy = torch.randn(33, 300).to(dtype)
    y, grads = _run(bias_gelu, x, bias, dy, approximate)
    x32, b32 = x.detach().float().requires_grad_(), bias.detach().float().requires_grad_()
    y_ref, grads_ref = _run(bias_gelu_ref, x32, b32, dy.float(), approximate)
    y_pt, grads_pt = _run(bias_gelu_ref, x, bias, dy, approximate, upcast=False)
    # 2x torch's own low-precision error, plus one ulp of the result for the final rounding of dbias (an fp32
    # column sum rounded once; torch's happened to round closer on some columns)
    ulp = torch.finfo(dtype).eps
    assert _max_err(y, y_ref) <= 2 * _max_err(y_pt, y_ref)
    for a, b, c in zip(grads, grads_ref, grads_pt):
        assert _max_err(a, b) <= 2 * _max_err(c, b) + ulp * b.abs().max().item()


def test_noncontiguous():
    x = torch.randn(48, 10).t().requires_grad_()
    bias = torch.randn(48, requires_grad=True)
    dy = torch.randn(10, 48)
    _assert_fp32(*_run(bias_gelu, x, bias, dy, "none"), *_run(bias_gelu_ref, x, bias, dy, "none"))
    xv = torch.randn(10, 100)[:, 3:51].requires_grad_()
    _assert_fp32(*_run(bias_gelu, xv, bias, dy, "none"), *_run(bias_gelu_ref, xv, bias, dy, "none"))


def test_backward_deterministic():
    x = torch.randn(300, 64, requires_grad=True)
    bias = torch.randn(64, requires_grad=True)
    dy = torch.randn(300, 64)
    _, g1 = _run(bias_gelu, x, bias, dy, "none")
    _, g2 = _run(bias_gelu, x, bias, dy, "none")
    assert all(torch.equal(a, b) for a, b in zip(g1, g2))


def test_input_errors():
    x = torch.randn(4, 8)
    with pytest.raises(ValueError, match="approximate"):
        bias_gelu(x, None, "sigmoid")
    with pytest.raises(ValueError, match="bias must have shape"):
        bias_gelu(x, torch.randn(7))
    with pytest.raises(ValueError, match="float16, bfloat16 or float32"):
        bias_gelu(x.double(), None)


def test_torch_compile_fullgraph():
    x = torch.randn(6, 32, requires_grad=True)
    bias = torch.randn(32, requires_grad=True)

    def f(x, b):
        return bias_gelu(x, b).square().sum()

    g = torch.autograd.grad(torch.compile(f, backend="aot_eager", fullgraph=True)(x, bias), (x, bias))
    g_eager = torch.autograd.grad(f(x, bias), (x, bias))
    for a, b in zip(g, g_eager):
        torch.testing.assert_close(a, b)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(4096, 3072), (1, 3072), (1000, 37)])
def test_gpu_against_reference(dtype, approximate, shape):
    x = (torch.randn(shape, device="cuda") * 3).to(dtype).requires_grad_()
    bias = torch.randn(shape[-1], device="cuda").to(dtype).requires_grad_()
    dy = torch.randn(shape, device="cuda").to(dtype)
    y, grads = _run(bias_gelu, x, bias, dy, approximate)
    x32, b32 = x.detach().float().requires_grad_(), bias.detach().float().requires_grad_()
    y_ref, grads_ref = _run(bias_gelu_ref, x32, b32, dy.float(), approximate)
    if dtype == torch.float32:
        torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
        for a, b in zip(grads, grads_ref):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
        return
    y_pt, grads_pt = _run(bias_gelu_ref, x, bias, dy, approximate, upcast=False)
    assert _max_err(y, y_ref) <= 2 * _max_err(y_pt, y_ref)
    for a, b, c in zip(grads, grads_ref, grads_pt):
        assert _max_err(a, b) <= 2 * _max_err(c, b) + 1e-3 * b.abs().max().item()
