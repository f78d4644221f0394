"""torch.compile: the encoder layers trace in one graph (no graph breaks), on the torch path and with the
Triton kernels forced on (CPU: interpreter). Graph breaks of the whole model are confined to input validation
and packing, which read values back to the host by design."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo as dynamo

import fastbert
from fastbert import ops
from fastbert.packing import build_packing, pack


def _model_and_batch():
    cfg = fastbert.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=37, max_position_embeddings=64)
    torch.manual_seed(0)
    model = fastbert.BertModel(cfg).eval()
    ids = torch.randint(0, 100, (3, 10))
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[1, 7:] = 0
    mask[2, :2] = 0  # left padding: query-only column 0
    return model, ids, mask


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_layers_compile_fullgraph_and_match_eager(backend):
    model, ids, mask = _model_and_batch()
    packing = build_packing(mask, "first")
    x = model.embeddings(pack(ids, packing), packing.indices % ids.shape[1], None)
    dynamo.reset()
    with ops.force_backend(backend), torch.no_grad():
        eager = model.run_layers(x, packing)[0]
        compiled = torch.compile(model.run_layers, backend="aot_eager", fullgraph=True)(x, packing)[0]
    # same ops in the same order: only fp32 rounding of a re-traced graph can differ
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)


def test_whole_model_graph_breaks_only_in_validation_and_packing():
    model, ids, mask = _model_and_batch()
    dynamo.reset()
    explanation = dynamo.explain(model)(ids, attention_mask=mask)
    assert explanation.graph_break_count > 0  # the data-dependent packing is meant to run eagerly
    for reason in explanation.break_reasons:
        frames = [frame.name for frame in reason.user_stack]
        assert any(name in ("build_packing", "_check_inputs") for name in frames), (reason.reason, frames)
