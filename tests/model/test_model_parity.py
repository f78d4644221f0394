"""Parity with transformers in fp32 on CPU: the bundled MiniLM checkpoint and random configs, every head.

Tolerance: max abs error <= 1e-4 on non-padding positions and the pooler (the engine issue's bound). Both
sides run the same fp32 math in a different order (fused QKV GEMM, packed rows), so observed errors are
~1e-6; 1e-4 leaves room for BLAS blocking differences between machines, not for a wrong formula.
"""

from __future__ import annotations

import pytest
import torch
import transformers
from masks import MODES, padding_mask

import fastbert

ATOL = 1e-4


def _hf_config(**overrides) -> transformers.BertConfig:
    base = dict(
        vocab_size=101, hidden_size=60, num_hidden_layers=2, num_attention_heads=3,  # head dim 20
        intermediate_size=150, max_position_embeddings=64, type_vocab_size=3, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, num_labels=3,
    )
    base.update(overrides)
    cfg = transformers.BertConfig(**base)
    cfg._attn_implementation = "eager"
    return cfg


def _batch(batch=4, seqlen=13, vocab=101, types=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (batch, seqlen), generator=g)
    tt = torch.randint(0, types, (batch, seqlen), generator=g)
    mask = torch.ones(batch, seqlen, dtype=torch.long)
    mask[1, seqlen - 4:] = 0  # right padding
    mask[2, :3] = 0  # left padding: column 0 is padding, the pooler still reads it
    if batch > 3:
        mask[3, 2:5] = 0  # a mask with holes
    return ids, tt, mask


def _pad_free(x, mask):
    return x[mask.bool()]


HEADS = [
    "BertModel", "BertForPreTraining", "BertForMaskedLM", "BertForNextSentencePrediction",
    "BertForSequenceClassification", "BertForMultipleChoice", "BertForTokenClassification",
    "BertForQuestionAnswering",
]


def _labels(name, ids, mask, cfg):
    g = torch.Generator().manual_seed(1)
    batch, seqlen = ids.shape
    if name in ("BertForMaskedLM", "BertForPreTraining", "BertForTokenClassification"):
        n = cfg.vocab_size if name != "BertForTokenClassification" else cfg.num_labels
        labels = torch.randint(0, n, (batch, seqlen), generator=g).masked_fill(mask == 0, -100)
        labels[0, ::2] = -100
        out = {"labels": labels}
        if name == "BertForPreTraining":
            out["next_sentence_label"] = torch.randint(0, 2, (batch,), generator=g)
        return out
    if name == "BertForNextSentencePrediction":
        return {"labels": torch.randint(0, 2, (batch,), generator=g)}
    if name == "BertForSequenceClassification":
        return {"labels": torch.randint(0, cfg.num_labels, (batch,), generator=g)}
    if name == "BertForQuestionAnswering":
        return {"start_positions": torch.randint(0, seqlen, (batch,), generator=g),
                "end_positions": torch.randint(0, seqlen, (batch,), generator=g)}
    return {}


def _compare(name, a, b, mask):
    """Every output field of transformers' result ``a`` against fastbert's ``b``."""
    keys = [k for k in a.keys() if k not in ("past_key_values", "attentions")]
    assert keys, name
    for key in keys:
        ta, tb = a[key], b[key]
        if key == "hidden_states":
            assert len(ta) == len(tb)
            for x, y in zip(ta, tb):
                torch.testing.assert_close(_pad_free(y, mask), _pad_free(x, mask), atol=ATOL, rtol=0)
            continue
        if ta.dim() >= 2 and ta.shape[:2] == mask.shape:  # per-token outputs: compare real tokens
            ta, tb = _pad_free(ta, mask), _pad_free(tb, mask)
        torch.testing.assert_close(tb, ta, atol=ATOL, rtol=0, msg=lambda m, k=key: f"{name}.{k}: {m}")


@pytest.mark.parametrize("name", HEADS)
@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_every_head_matches_transformers(tmp_path, name, fmt):
    cfg = _hf_config(num_labels=2 if name == "BertForQuestionAnswering" else 3)
    torch.manual_seed(0)
    hf = getattr(transformers, name)(cfg).eval()
    if fmt == "safetensors":
        hf.save_pretrained(tmp_path)
    else:  # transformers 5 no longer writes .bin; older checkpoints are full pickled state dicts like this
        hf.config.save_pretrained(tmp_path)
        torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    expected_file = "model.safetensors" if fmt == "safetensors" else "pytorch_model.bin"
    assert (tmp_path / expected_file).is_file()
    fb = getattr(fastbert, name).from_pretrained(tmp_path, strict=True)
    ids, tt, mask = _batch()
    kwargs = dict(attention_mask=mask, token_type_ids=tt, output_hidden_states=True)
    if name == "BertForMultipleChoice":
        ids, tt, mask = ids.view(2, 2, -1), tt.view(2, 2, -1), mask.view(2, 2, -1)
        kwargs = dict(attention_mask=mask, token_type_ids=tt)
    kwargs.update(_labels(name, ids, mask, cfg) if name != "BertForMultipleChoice" else
                  {"labels": torch.tensor([0, 1])})
    with torch.no_grad():
        a = hf(ids, **kwargs)
        b = fb(ids, **kwargs)
    if name == "BertForMultipleChoice":
        mask = mask.view(4, -1)
    _compare(name, a, b, mask)
    if "loss" in a.keys():
        assert b.loss is not None and torch.isfinite(b.loss)


@pytest.mark.parametrize("mode", ["mixed", *MODES])
def test_minilm_checkpoint_matches_transformers(minilm_dir, mode):
    hf = transformers.BertModel.from_pretrained(minilm_dir, attn_implementation="sdpa").eval()
    fb = fastbert.BertModel.from_pretrained(minilm_dir)
    ids, tt, mask = _batch(batch=5, seqlen=40, vocab=30522, types=2)
    if mode != "mixed":  # the shared generator's masks (tests/masks.py); "mixed": right, left, holes in one batch
        mask = padding_mask(5, 40, mode, seed=1)
    ids[:, 0] = 101
    position_ids = torch.arange(40).flip(0)[None, :].expand(5, 40)  # explicit positions are honoured
    for extra in ({}, {"position_ids": position_ids}):
        with torch.no_grad():
            a = hf(ids, attention_mask=mask, token_type_ids=tt, output_hidden_states=True, **extra)
            b = fb(ids, attention_mask=mask, token_type_ids=tt, output_hidden_states=True, **extra)
        _compare("minilm", a, b, mask)


def test_no_mask_and_no_token_types(minilm_dir):
    hf = transformers.BertModel.from_pretrained(minilm_dir).eval()
    fb = fastbert.BertModel.from_pretrained(minilm_dir)
    ids = torch.randint(1000, 30000, (3, 17), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, b = hf(ids), fb(ids)
    torch.testing.assert_close(b.last_hidden_state, a.last_hidden_state, atol=ATOL, rtol=0)
    torch.testing.assert_close(b.pooler_output, a.pooler_output, atol=ATOL, rtol=0)


def test_inputs_embeds(minilm_dir):
    hf = transformers.BertModel.from_pretrained(minilm_dir).eval()
    fb = fastbert.BertModel.from_pretrained(minilm_dir)
    ids, tt, mask = _batch(batch=4, seqlen=11, vocab=30522, types=2)
    emb = torch.randn(4, 11, 384, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = hf(inputs_embeds=emb, attention_mask=mask)
        b = fb(inputs_embeds=emb, attention_mask=mask)
    _compare("inputs_embeds", a, b, mask)


@pytest.mark.parametrize("name", HEADS)
def test_from_transformers(name):
    cfg = _hf_config(hidden_act="gelu_new", tie_word_embeddings=(name != "BertForMaskedLM"),
                     num_labels=2 if name == "BertForQuestionAnswering" else 3)
    torch.manual_seed(1)
    hf = getattr(transformers, name)(cfg).eval()
    fb = fastbert.from_transformers(hf)
    assert type(fb).__name__ == name and not fb.training
    ids, tt, mask = _batch(seed=5)
    if name == "BertForMultipleChoice":
        ids, tt, mask = ids.view(2, 2, -1), tt.view(2, 2, -1), mask.view(2, 2, -1)
    with torch.no_grad():
        a = hf(ids, attention_mask=mask, token_type_ids=tt)
        b = fb(ids, attention_mask=mask, token_type_ids=tt)
    _compare(name, a, b, mask.view(-1, mask.shape[-1]))


@pytest.mark.parametrize("name", ["BertForPreTraining", "BertForSequenceClassification", "BertForMaskedLM"])
def test_save_pretrained_round_trip_through_transformers(tmp_path, name):
    cfg = _hf_config()
    torch.manual_seed(2)
    fb = fastbert.from_transformers(getattr(transformers, name)(cfg).eval())
    fb.save_pretrained(tmp_path)
    hf = getattr(transformers, name).from_pretrained(tmp_path).eval()
    ids, tt, mask = _batch(seed=7)
    with torch.no_grad():
        a = hf(ids, attention_mask=mask, token_type_ids=tt)
        b = fb(ids, attention_mask=mask, token_type_ids=tt)
    _compare(name, a, b, mask)
    # and back into fastbert, strictly: the key set survives the round trip
    again = getattr(fastbert, name).from_pretrained(tmp_path, strict=True)
    for (k1, v1), (k2, v2) in zip(fb.state_dict().items(), again.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)


def test_sequence_classification_losses():
    """Regression, single-label and multi-label losses are chosen as transformers chooses them."""
    ids, tt, mask = _batch()
    cases = [
        (dict(num_labels=1), torch.randn(4)),
        (dict(num_labels=3), torch.tensor([0, 2, 1, 1])),
        (dict(num_labels=3), torch.tensor([[1.0, 0, 1], [0, 0, 1], [1, 1, 1], [0, 0, 0]])),
        (dict(num_labels=3, problem_type="regression"), torch.randn(4, 3)),
    ]
    for overrides, labels in cases:
        torch.manual_seed(3)
        hf = transformers.BertForSequenceClassification(_hf_config(**overrides)).eval()
        fb = fastbert.from_transformers(hf)
        with torch.no_grad():
            a = hf(ids, attention_mask=mask, labels=labels)
            b = fb(ids, attention_mask=mask, labels=labels)
        torch.testing.assert_close(b.loss, a.loss, atol=ATOL, rtol=0)
        torch.testing.assert_close(b.logits, a.logits, atol=ATOL, rtol=0)


def test_labels_on_padding_use_exact_padding_states():
    """A label on a padding position makes transformers' loss read that position: fastbert then computes
    padding positions too, and the loss still matches."""
    torch.manual_seed(4)
    cfg = _hf_config()
    ids, tt, mask = _batch()
    for name in ("BertForMaskedLM", "BertForTokenClassification"):
        hf = getattr(transformers, name)(cfg).eval()
        fb = fastbert.from_transformers(hf)
        n = cfg.num_labels if name == "BertForTokenClassification" else cfg.vocab_size
        labels = torch.randint(0, n, ids.shape)  # labels everywhere, padding included
        with torch.no_grad():
            a, b = hf(ids, attention_mask=mask, labels=labels), fb(ids, attention_mask=mask, labels=labels)
        torch.testing.assert_close(b.loss, a.loss, atol=ATOL, rtol=0)
        torch.testing.assert_close(b.logits, a.logits, atol=ATOL, rtol=0)  # every position, padding too


def test_output_indexing_and_tuples(minilm_dir):
    fb = fastbert.BertModel.from_pretrained(minilm_dir)
    ids = torch.randint(1000, 2000, (2, 5))
    with torch.no_grad():
        out = fb(ids)
        tup = fb(ids, return_dict=False)
    assert isinstance(tup, tuple) and len(tup) == 2
    assert out[0] is out.last_hidden_state and out["pooler_output"] is out.pooler_output
    assert list(out.keys()) == ["last_hidden_state", "pooler_output"]
    torch.testing.assert_close(tup[1], out.pooler_output)
    assert fb.config.hidden_size == 384


def test_dtype_and_device_arguments(minilm_dir):
    fb = fastbert.BertModel.from_pretrained(minilm_dir, dtype=torch.float64, device="cpu")
    assert fb.dtype == torch.float64 and fb.device.type == "cpu"
    ref = fastbert.BertModel.from_pretrained(minilm_dir)
    ids = torch.randint(1000, 2000, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(fb(ids).last_hidden_state.float(), ref(ids).last_hidden_state, atol=ATOL, rtol=0)
    auto = fastbert.BertModel.from_pretrained(minilm_dir, dtype="auto")
    assert auto.dtype == torch.float32  # the checkpoint is fp32


def test_padding_free_skips_padding_work(minilm_dir):
    """Padding does not change the real tokens' result at all (they never see padded rows)."""
    fb = fastbert.BertModel.from_pretrained(minilm_dir)
    ids = torch.randint(1000, 2000, (1, 10))
    padded = torch.cat([ids, torch.zeros(1, 30, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 10), torch.zeros(1, 30)], dim=1).long()
    with torch.no_grad():
        a = fb(ids).last_hidden_state
        b = fb(padded, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(b[:, :10], a, atol=1e-5, rtol=0)
    assert torch.all(b[:, 10:] == 0)
