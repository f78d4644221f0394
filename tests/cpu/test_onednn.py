"""The CPU inference GEMMs through oneDNN: fused epilogues against F.linear, and the reordered-weight cache."""

import gc

import pytest
import torch
import torch.nn.functional as F

from fastbert import ops

pytestmark = pytest.mark.skipif(not ops._onednn_usable(), reason="oneDNN fused linear is not usable here")


@pytest.fixture(autouse=True)
def _onednn_forced(monkeypatch):
    """These tests check the oneDNN path itself, so it is forced rather than left to the measured dispatch."""
    monkeypatch.setenv("FASTBERT_CPU_LINEAR", "onednn-packed")


def _weights(out_features=48, in_features=40, seed=0, frozen=True):
    g = torch.Generator().manual_seed(seed)
    w = torch.nn.Parameter(torch.randn(out_features, in_features, generator=g) / in_features**0.5)
    b = torch.nn.Parameter(torch.randn(out_features, generator=g))
    return w.requires_grad_(not frozen), b.requires_grad_(not frozen)


@pytest.mark.parametrize("rows", [1, 7, 300])
def test_fused_ops_match_f_linear(rows):
    w, b = _weights()
    x = torch.randn(rows, 40)
    r = torch.randn(rows, 48)
    lnw, lnb = torch.randn(48), torch.randn(48)
    with torch.no_grad():
        ref = F.linear(x, w, b)
        torch.testing.assert_close(ops.linear(x, w, b), ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ops.dense_gelu(x, w, b, "none"), F.gelu(ref), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ops.dense_gelu(x, w, b, "tanh"), F.gelu(ref, approximate="tanh"),
                                   rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(
            ops.dense_add_layer_norm(x, w, b, r, lnw, lnb, 1e-12),
            F.layer_norm(ref + r, (48,), lnw, lnb, 1e-12), rtol=1e-5, atol=1e-5,
        )
    assert ops._onednn_state["packed"] == (w in ops._packed_weights)  # frozen: kept in oneDNN's layout


@pytest.mark.skipif(not ops._onednn_state.get("packed"), reason="this torch cannot reorder linear weights")
def test_reordered_frozen_weight_follows_changes_and_dies_with_the_weight():
    w, b = _weights()
    x = torch.randn(9, 40)
    with torch.no_grad():
        first = ops.linear(x, w, b)
        packed = ops._packed_weights[w][1]
        ops.linear(x, w, b)
        assert ops._packed_weights[w][1] is packed  # reused
        w.mul_(-2.0)  # in place: the version counter moves
        torch.testing.assert_close(ops.linear(x, w, b), F.linear(x, w, b), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ops.linear(x, w, b) - b, -2.0 * (first - b), rtol=1e-5, atol=1e-5)
        assert ops._packed_weights[w][1] is not packed
        w.data = torch.randn(48, 40)  # new storage, same Parameter
        torch.testing.assert_close(ops.linear(x, w, b), F.linear(x, w, b), rtol=1e-5, atol=1e-5)
        w.data = torch.randn(40, 48).t()  # same shape, other strides
        torch.testing.assert_close(ops.linear(x, w, b), F.linear(x, w, b), rtol=1e-5, atol=1e-5)
    before = len(ops._packed_weights)
    del w
    gc.collect()
    assert len(ops._packed_weights) == before - 1


@pytest.mark.parametrize("update", ["fused_adamw", "data_write", "foreach_sgd"])
def test_trainable_weights_are_never_cached(update):
    """Fused optimizers and writes through .data change a weight without moving its version counter: a
    cached reordered copy would go stale, so trainable weights are reordered by oneDNN on every call."""
    w, b = _weights(frozen=False)
    x = torch.randn(6, 40)
    with torch.no_grad():
        ops.linear(x, w, b)
    assert w not in ops._packed_weights
    if update == "data_write":
        w.data.mul_(-1.0)
    else:
        opt = (torch.optim.AdamW([w, b], lr=0.5, fused=True) if update == "fused_adamw"
               else torch.optim.SGD([w, b], lr=0.5, foreach=True))
        F.linear(x, w, b).pow(2).sum().backward()
        opt.step()
    with torch.no_grad():
        torch.testing.assert_close(ops.linear(x, w, b), F.linear(x, w, b), rtol=1e-5, atol=1e-5)


def test_inference_tensor_weights_are_used_as_they_are():
    with torch.inference_mode():
        w, b = (t.detach().clone() for t in _weights(seed=3))
        x = torch.randn(5, 40)
        torch.testing.assert_close(ops.linear(x, w, b), F.linear(x, w, b), rtol=1e-5, atol=1e-5)
    assert w not in ops._packed_weights


def test_gradients_never_take_the_onednn_path():
    w, b = _weights(frozen=False)
    x = torch.randn(4, 40, requires_grad=True)
    ops.dense_gelu(x, w, b, "none").sum().backward()
    assert w.grad is not None and x.grad is not None
    assert w not in ops._packed_weights
