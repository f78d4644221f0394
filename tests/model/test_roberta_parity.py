"""RoBERTa / XLM-RoBERTa / CamemBERT parity with transformers in fp32 on CPU, random-weight configs.

Same bound as the BERT parity tests: max abs error <= 1e-4 on non-padding positions. What is specific to the
family is checked on purpose: position ids counted over the non-pad *ids* from ``pad_token_id + 1`` (so pad ids
under the mask, non-pad ids in mask holes and a pad id among real tokens all matter), the first-token
classification head, the ``lm_head`` with its tied decoder, and the ``roberta.`` weight prefix.
"""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from masks import MODES, padding_mask
from parity import max_errors

import fastbert
from fastbert import ConfigError

ATOL = 1e-4
HEADS = ["Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering"]
# family -> (transformers prefix, config overrides): head dims 16 and 20 (not a power of two), pad ids 1 and 3
FAMILIES = {
    "roberta": ("Roberta", dict(hidden_size=64, num_attention_heads=4, intermediate_size=96, pad_token_id=1)),
    "xlm-roberta": ("XLMRoberta", dict(hidden_size=60, num_attention_heads=3, intermediate_size=150,
                                       pad_token_id=3, type_vocab_size=2)),
    "camembert": ("Camembert", dict(hidden_size=32, num_attention_heads=2, intermediate_size=64, pad_token_id=1)),
}


def _hf_config(family, **overrides):
    prefix, base = FAMILIES[family]
    cfg = dict(
        vocab_size=100, num_hidden_layers=2, max_position_embeddings=40, type_vocab_size=1, layer_norm_eps=1e-5,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=3,
    )
    cfg.update(base)
    cfg.update(overrides)
    config = getattr(transformers, prefix + "Config")(**cfg)
    config._attn_implementation = "eager"
    return config


def _batch(cfg, mode, batch=5, seqlen=17, seed=0):
    """ids, token types and a mask of ``mode``. Padding holds the pad id except in "holes", whose masked
    positions keep ordinary ids (transformers still counts them in the position ids); one real token is the
    pad id (it gets the pad position, and stays attended)."""
    g = torch.Generator().manual_seed(seed)
    pad = cfg.pad_token_id
    ids = torch.randint(pad + 1, cfg.vocab_size, (batch, seqlen), generator=g)
    mask = padding_mask(batch, seqlen, mode, seed=seed)
    if mode != "holes":
        ids = ids.masked_fill(mask == 0, pad)
    real = mask[0].nonzero().flatten()
    ids[0, real[len(real) // 2]] = pad
    types = torch.randint(0, cfg.type_vocab_size, (batch, seqlen), generator=g)
    return ids, types, mask


def _labels(task, cfg, ids, mask):
    g = torch.Generator().manual_seed(1)
    batch, seqlen = ids.shape
    if task in ("ForMaskedLM", "ForTokenClassification"):
        n = cfg.vocab_size if task == "ForMaskedLM" else cfg.num_labels
        labels = torch.randint(0, n, (batch, seqlen), generator=g).masked_fill(mask == 0, -100)
        labels[0, ::2] = -100
        return {"labels": labels}
    if task == "ForSequenceClassification":
        return {"labels": torch.randint(0, cfg.num_labels, (batch,), generator=g)}
    if task == "ForQuestionAnswering":
        return {"start_positions": torch.randint(0, seqlen, (batch,), generator=g),
                "end_positions": torch.randint(0, seqlen, (batch,), generator=g)}
    return {}


def _pair(tmp_path, family, task, **overrides):
    """A random transformers model saved with save_pretrained, and fastbert's Auto class loading it strictly."""
    cfg = _hf_config(family, num_labels=2 if task == "ForQuestionAnswering" else 3, **overrides)
    torch.manual_seed(0)
    hf = getattr(transformers, FAMILIES[family][0] + task)(cfg).eval()
    hf.save_pretrained(tmp_path)
    fb = getattr(fastbert, "AutoModel" + ("" if task == "Model" else task)).from_pretrained(tmp_path, strict=True)
    assert type(fb).__name__ == FAMILIES[family][0] + task
    return cfg, hf, fb


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("task", HEADS)
@pytest.mark.parametrize("family", ["roberta", "xlm-roberta"])
def test_every_head_matches_transformers(tmp_path, family, task, mode):
    cfg, hf, fb = _pair(tmp_path, family, task)
    ids, types, mask = _batch(cfg, mode)
    kwargs = dict(attention_mask=mask, token_type_ids=types, output_hidden_states=True, **_labels(task, cfg, ids,
                                                                                                   mask))
    with torch.no_grad():
        a, b = hf(ids, **kwargs), fb(ids, **kwargs)
    errors = max_errors(a, b, mask)
    assert max(errors.values()) <= ATOL, errors
    if task != "Model":
        assert "loss" in errors


def test_camembert_and_no_optional_inputs(tmp_path):
    """CamemBERT loads through the same classes; no mask and no token types default as in transformers."""
    cfg, hf, fb = _pair(tmp_path, "camembert", "ForMaskedLM")
    ids, _, _ = _batch(cfg, "full", seed=3)
    with torch.no_grad():
        a, b = hf(ids), fb(ids)
    assert max(max_errors(a, b, torch.ones_like(ids)).values()) <= ATOL


@pytest.mark.parametrize("mode", ["left", "holes"])
def test_inputs_embeds_and_explicit_positions(tmp_path, mode):
    """inputs_embeds: positions are pad + 1, pad + 2, ... by column; given position_ids are used as they are."""
    cfg, hf, fb = _pair(tmp_path, "xlm-roberta", "Model")
    ids, types, mask = _batch(cfg, mode, seed=4)
    emb = torch.randn(*ids.shape, cfg.hidden_size, generator=torch.Generator().manual_seed(0))
    positions = torch.randint(0, cfg.max_position_embeddings, ids.shape, generator=torch.Generator().manual_seed(1))
    for kwargs in (dict(inputs_embeds=emb), dict(input_ids=ids, position_ids=positions),
                   dict(inputs_embeds=emb, position_ids=positions[:1])):
        with torch.no_grad():
            a, b = hf(attention_mask=mask, **kwargs), fb(attention_mask=mask, **kwargs)
        errors = max_errors(a, b, mask)
        assert max(errors.values()) <= ATOL, (list(kwargs), errors)


def test_labels_on_padding_and_classification_losses(tmp_path):
    """Labels on padding make transformers read padding states (computed then); regression and multi-label
    losses are chosen as transformers chooses them."""
    cfg, hf, fb = _pair(tmp_path / "mlm", "roberta", "ForMaskedLM")
    ids, types, mask = _batch(cfg, "random", seed=5)
    labels = torch.randint(0, cfg.vocab_size, ids.shape)  # padding included
    with torch.no_grad():
        a, b = hf(ids, attention_mask=mask, labels=labels), fb(ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(b.loss, a.loss, atol=ATOL, rtol=0)
    for overrides, labels in (
        (dict(num_labels=1), torch.randn(5)),
        (dict(num_labels=3), torch.tensor([[1.0, 0, 1], [0, 0, 1], [1, 1, 1], [0, 0, 0], [0, 1, 0]])),
    ):
        torch.manual_seed(3)
        hf = transformers.RobertaForSequenceClassification(_hf_config("roberta", **overrides)).eval()
        fb = fastbert.from_transformers(hf)
        assert type(fb) is fastbert.RobertaForSequenceClassification
        with torch.no_grad():
            a, b = hf(ids, attention_mask=mask, labels=labels), fb(ids, attention_mask=mask, labels=labels)
        torch.testing.assert_close(b.loss, a.loss, atol=ATOL, rtol=0)
        torch.testing.assert_close(b.logits, a.logits, atol=ATOL, rtol=0)


def test_gradients_match_transformers():
    """Every parameter's gradient through the classification head, left padding (column 0 is a pad token at
    the pad position, whose position row takes no gradient) and holes in one batch."""
    cfg = _hf_config("xlm-roberta")
    torch.manual_seed(6)
    hf = transformers.XLMRobertaForSequenceClassification(cfg).train()
    fb = fastbert.from_transformers(hf)
    ids, types, mask = _batch(cfg, "left", seed=6)
    mask[3] = padding_mask(1, ids.shape[1], "holes", seed=9)[0]
    labels = torch.tensor([0, 2, 1, 1, 0])
    hf(ids, attention_mask=mask, token_type_ids=types, labels=labels).loss.backward()
    fb(ids, attention_mask=mask, token_type_ids=types, labels=labels).loss.backward()
    hf_grads = {k: p.grad for k, p in hf.named_parameters()}
    checked = 0
    for name, p in fb.named_parameters():
        if ".qkv." in name:
            prefix, kind = name.rsplit(".qkv.", 1)
            expected = torch.cat([hf_grads[f"{prefix}.{w}.{kind}"] for w in ("query", "key", "value")])
        else:
            expected = hf_grads[name]
        torch.testing.assert_close(p.grad, expected, atol=ATOL, rtol=0, msg=lambda m, n=name: f"{n}: {m}")
        checked += 1
    assert checked == len(list(fb.parameters()))
    pad_row = fb.roberta.embeddings.position_embeddings.weight.grad[cfg.pad_token_id]
    assert torch.all(pad_row == 0)


@pytest.mark.parametrize("task,tied", [("ForMaskedLM", True), ("ForMaskedLM", False),
                                       ("ForSequenceClassification", True), ("Model", True)])
def test_save_pretrained_round_trip_through_transformers(tmp_path, task, tied):
    cfg = _hf_config("roberta", tie_word_embeddings=tied)
    torch.manual_seed(7)
    fb = fastbert.from_transformers(getattr(transformers, "Roberta" + task)(cfg).eval())
    fb.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "roberta" and saved["architectures"] == ["Roberta" + task]
    auto = getattr(transformers, "AutoModel" + ("" if task == "Model" else task))
    hf = auto.from_pretrained(tmp_path).eval()
    assert type(hf).__name__ == "Roberta" + task
    ids, types, mask = _batch(cfg, "holes", seed=8)
    with torch.no_grad():
        a, b = hf(ids, attention_mask=mask), fb(ids, attention_mask=mask)
    assert max(max_errors(a, b, mask).values()) <= ATOL
    again = fastbert.RobertaModel if task == "Model" else getattr(fastbert, "Roberta" + task)
    again = again.from_pretrained(tmp_path, strict=True)
    for (k1, v1), (k2, v2) in zip(fb.state_dict().items(), again.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)


def test_bare_checkpoint_into_head_and_auto_picks_bert(tmp_path, minilm_dir):
    """A bare RobertaModel checkpoint loads into a head (head weights reported missing); a BERT checkpoint
    still gets the BERT class from AutoModel."""
    cfg, _, _ = _pair(tmp_path, "roberta", "Model")
    with pytest.warns(UserWarning) as record:
        head = fastbert.RobertaForSequenceClassification.from_pretrained(tmp_path)
    messages = " ".join(str(w.message) for w in record)
    assert "classifier.dense.weight" in messages and "roberta.pooler.dense.weight" in messages
    assert head.roberta.pooler is None
    assert type(fastbert.AutoModel.from_pretrained(minilm_dir)) is fastbert.BertModel
    assert type(fastbert.AutoModelForMaskedLM.from_config(fastbert.XLMRobertaConfig(
        vocab_size=50, hidden_size=32, num_attention_heads=2, intermediate_size=64, num_hidden_layers=1,
    ))) is fastbert.XLMRobertaForMaskedLM


def test_config_round_trip(tmp_path):
    _hf_config("xlm-roberta").save_pretrained(tmp_path)
    cfg = fastbert.XLMRobertaConfig.from_pretrained(tmp_path)
    assert cfg.model_type == "xlm-roberta" and cfg.pad_token_id == 3 and cfg.layer_norm_eps == 1e-5
    cfg.save_pretrained(tmp_path / "again")
    hf = transformers.AutoConfig.from_pretrained(tmp_path / "again")
    assert type(hf) is transformers.XLMRobertaConfig and hf.pad_token_id == 3
    defaults = fastbert.RobertaConfig()
    assert (defaults.pad_token_id, defaults.bos_token_id, defaults.eos_token_id) == (1, 0, 2)


@pytest.mark.parametrize("bad,match", [
    (dict(position_embedding_type="relative_key"), "position_embedding_type"),
    (dict(is_decoder=True), "is_decoder"),
    (dict(add_cross_attention=True), "add_cross_attention"),
    (dict(model_type="deberta-v2"), "deberta-v2"),
    (dict(max_position_embeddings=2), "max_position_embeddings"),
])
def test_unsupported_configs_are_clear_errors(tmp_path, bad, match):
    cfg, _, _ = _pair(tmp_path, "roberta", "Model")
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**data, **bad}))
    with pytest.raises(ConfigError, match=match):
        fastbert.AutoModel.from_pretrained(tmp_path)


def test_wrong_family_and_too_long_inputs_are_clear_errors(tmp_path):
    cfg, _, fb = _pair(tmp_path, "roberta", "Model")
    with pytest.raises(ConfigError, match="'roberta'"):
        fastbert.BertModel.from_pretrained(tmp_path)
    with pytest.raises(TypeError, match="RobertaConfig"):
        fastbert.RobertaModel(fastbert.BertConfig())
    too_long = torch.full((1, cfg.max_position_embeddings - cfg.pad_token_id), 5)
    with pytest.raises(ValueError, match="at most 38 tokens"):
        fb(too_long)
    fb(too_long[:, :-1])  # the longest input that fits


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta"])
def test_multiple_choice_matches_transformers(tmp_path, family):
    """(batch, choices, seq) inputs flattened through the pooler (RoBERTa keeps it for this head), one logit per
    choice, cross-entropy over choices; left padding and holes among the choices; gradients of every weight."""
    cfg, hf, fb = _pair(tmp_path, family, "ForMultipleChoice")
    ids, types, mask = _batch(cfg, "left", batch=6, seed=8)
    mask[4] = padding_mask(1, ids.shape[1], "holes", seed=2)[0]
    ids, types, mask = (t.view(2, 3, -1) for t in (ids, types, mask))
    labels = torch.tensor([2, 0])
    hf.train()  # dropout is 0 in these configs: train mode checks that gradients flow as in transformers
    fb.train()
    a = hf(ids, attention_mask=mask, token_type_ids=types, labels=labels, output_hidden_states=True)
    b = fb(ids, attention_mask=mask, token_type_ids=types, labels=labels, output_hidden_states=True)
    torch.testing.assert_close(b.logits, a.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(b.loss, a.loss, atol=ATOL, rtol=0)
    flat = mask.view(6, -1).bool()
    for x, y in zip(a.hidden_states, b.hidden_states):
        assert (x[flat] - y[flat]).abs().max().item() <= ATOL
    a.loss.backward()
    b.loss.backward()
    hf_grads = {k: p.grad for k, p in hf.named_parameters()}
    for name, p in fb.named_parameters():
        if ".qkv." in name:
            prefix, kind = name.rsplit(".qkv.", 1)
            expected = torch.cat([hf_grads[f"{prefix}.{w}.{kind}"] for w in ("query", "key", "value")])
        else:
            expected = hf_grads[name]
        torch.testing.assert_close(p.grad, expected, atol=ATOL, rtol=0, msg=lambda m, n=name: f"{n}: {m}")
