"""DistilBERT parity with transformers in fp32 on CPU, random-weight configs.

Same bound as the BERT and RoBERTa parity tests: max abs error <= 1e-4 on non-padding positions (fp32 with a
different summation order in the fused/packed ops: the observed errors are ~1e-6; 1e-4 is the margin the
other families use). What is specific to the family is checked on purpose: the renamed layer weights
(``q_lin``..``output_layer_norm`` onto BERT's fused layer), no token types and no pooler, transformers' argument
order (``inputs_embeds`` before ``labels``, ``position_ids`` last), the first-token ``pre_classifier`` -> ReLU
head, the MLM ``vocab_projector`` tied to the word embeddings with its own bias, the dropouts each head reads
(``seq_classif_dropout``, ``qa_dropout``, ``dropout``), sinusoidal position tables, and the config's
DistilBERT key names in both directions.
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
from fastbert.weights import fastbert_to_hf

ATOL = 1e-4
HEADS = ["ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering",
         "ForMultipleChoice"]
TASKS = ["Model", *HEADS]
CHOICES = 3
# head dim 12 (not a power of two); every dropout 0 so train mode is deterministic
BASE = dict(vocab_size=100, dim=48, n_heads=4, hidden_dim=80, n_layers=2, max_position_embeddings=40, dropout=0.0,
            attention_dropout=0.0, qa_dropout=0.0, seq_classif_dropout=0.0, pad_token_id=0)


def _hf_config(task="Model", **overrides):
    cfg = dict(BASE, num_labels=2 if task == "ForQuestionAnswering" else 3)
    cfg.update(overrides)
    config = transformers.DistilBertConfig(**cfg)
    config._attn_implementation = "eager"
    return config


def _auto(task):
    return "AutoModel" + ("" if task == "Model" else task)


def _batch(cfg, mode, batch=6, seqlen=17, seed=0):
    """ids and a mask of ``mode``: padding holds the pad id except in "holes", whose masked positions keep
    ordinary ids; one real token is the pad id (its word row is the zero padding_idx row, without gradient)."""
    g = torch.Generator().manual_seed(seed)
    pad = cfg.pad_token_id
    ids = torch.randint(pad + 1, cfg.vocab_size, (batch, seqlen), generator=g)
    mask = padding_mask(batch, seqlen, mode, seed=seed)
    if mode != "holes":
        ids = ids.masked_fill(mask == 0, pad)
    real = mask[0].nonzero().flatten()
    ids[0, real[len(real) // 2]] = pad
    return ids, mask


def _inputs(task, ids, mask):
    """Multiple choice takes ``(batch, num_choices, seq_len)``: the 6 rows become 2 questions of 3 choices."""
    if task == "ForMultipleChoice":
        return ids.view(-1, CHOICES, ids.shape[1]), mask.view(-1, CHOICES, ids.shape[1])
    return ids, mask


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
    if task == "ForMultipleChoice":
        return {"labels": torch.randint(0, CHOICES, (batch // CHOICES,), generator=g)}
    if task == "ForQuestionAnswering":
        return {"start_positions": torch.randint(0, seqlen, (batch,), generator=g),
                "end_positions": torch.randint(0, seqlen, (batch,), generator=g)}
    return {}


def _pair(tmp_path, task, **overrides):
    """A random transformers model saved with save_pretrained, and fastbert's Auto class loading it strictly."""
    cfg = _hf_config(task, **overrides)
    torch.manual_seed(0)
    hf = getattr(transformers, "DistilBert" + task)(cfg).eval()
    hf.save_pretrained(tmp_path)
    fb = getattr(fastbert, _auto(task)).from_pretrained(tmp_path, strict=True)
    assert type(fb).__name__ == "DistilBert" + task
    return cfg, hf, fb


def _run_both(hf, fb, task, ids, mask, **kwargs):
    ids, mask = _inputs(task, ids, mask)
    with torch.no_grad():
        return hf(ids, attention_mask=mask, **kwargs), fb(ids, attention_mask=mask, **kwargs)


# ------------------------------------------------------------------------------------------------ forward parity
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("task", TASKS)
def test_every_head_matches_transformers(tmp_path, task, mode):
    cfg, hf, fb = _pair(tmp_path, task)
    ids, mask = _batch(cfg, mode)
    a, b = _run_both(hf, fb, task, ids, mask, output_hidden_states=True, **_labels(task, cfg, ids, mask))
    errors = max_errors(a, b, mask)
    assert max(errors.values()) <= ATOL, errors
    assert len(b.hidden_states) == cfg.n_layers + 1
    if task != "Model":
        assert "loss" in errors


def test_relu_untied_sinusoidal_checkpoint(tmp_path):
    """activation="relu" (FFN and MLM head), an untied projector, another pad id, head dim 20, and a checkpoint
    made with ``sinusoidal_pos_embds=True``; a fresh fastbert model builds transformers' sinusoid table."""
    overrides = dict(activation="relu", sinusoidal_pos_embds=True, tie_word_embeddings=False, pad_token_id=3, dim=60,
                     n_heads=3, hidden_dim=100)
    cfg, hf, fb = _pair(tmp_path, "ForMaskedLM", **overrides)
    assert not cfg.tie_word_embeddings and hasattr(fb.vocab_projector, "weight")
    for mode in ("left", "holes"):
        ids, mask = _batch(cfg, mode, seed=2)
        a, b = _run_both(hf, fb, "ForMaskedLM", ids, mask, output_hidden_states=True)
        errors = max_errors(a, b, mask)
        assert max(errors.values()) <= ATOL, (mode, errors)
    fresh = fastbert.DistilBertModel(fastbert.DistilBertConfig(**cfg.to_dict()))
    table = fresh.embeddings.position_embeddings.weight
    # both are sin/cos computed in float64 and rounded to float32 (|values| <= 1, one float32 ulp <= 6e-8)
    torch.testing.assert_close(table, hf.distilbert.embeddings.position_embeddings.weight.detach(), atol=1e-6, rtol=0)
    assert table.requires_grad  # a trainable, saved parameter in transformers 5, as here
    plain = fastbert.DistilBertModel(fastbert.DistilBertConfig(**{**cfg.to_dict(), "sinusoidal_pos_embds": False}))
    assert not torch.allclose(plain.embeddings.position_embeddings.weight, table, atol=0.1)


@pytest.mark.parametrize("mode", ["left", "holes"])
def test_inputs_embeds_and_position_ids(tmp_path, mode):
    """inputs_embeds (3-D, and 4-D for multiple choice) and given position_ids, (batch, seq) or (1, seq)."""
    cfg, hf, fb = _pair(tmp_path / "model", "Model")
    ids, mask = _batch(cfg, mode, seed=4)
    emb = torch.randn(*ids.shape, cfg.dim, generator=torch.Generator().manual_seed(0))
    positions = torch.randint(0, cfg.max_position_embeddings, ids.shape, generator=torch.Generator().manual_seed(1))
    for kwargs in (dict(inputs_embeds=emb), dict(input_ids=ids, position_ids=positions),
                   dict(inputs_embeds=emb, position_ids=positions[:1])):
        with torch.no_grad():
            a, b = hf(attention_mask=mask, **kwargs), fb(attention_mask=mask, **kwargs)
        errors = max_errors(a, b, mask)
        assert max(errors.values()) <= ATOL, (list(kwargs), errors)
    cfg, hf, fb = _pair(tmp_path / "mc", "ForMultipleChoice")
    _, mc_mask = _inputs("ForMultipleChoice", ids, mask)
    labels = torch.tensor([2, 0])
    for kwargs in (dict(inputs_embeds=emb.view(2, CHOICES, *emb.shape[1:])),
                   dict(input_ids=ids.view(2, CHOICES, -1), position_ids=positions[:1])):
        with torch.no_grad():
            a, b = hf(attention_mask=mc_mask, labels=labels, **kwargs), fb(attention_mask=mc_mask, labels=labels,
                                                                             **kwargs)
        assert max(max_errors(a, b, mask).values()) <= ATOL, list(kwargs)


def test_labels_on_padding_and_classification_losses(tmp_path):
    """Labels on padding make transformers read padding states (computed then); span positions past the end
    are clamped and ignored; regression, multi-label and an explicit problem_type pick transformers' loss."""
    ids, mask = _batch(_hf_config(), "random", seed=5)
    g = torch.Generator().manual_seed(5)
    cases = [
        ("ForMaskedLM", {}, {"labels": torch.randint(0, 100, ids.shape, generator=g)}),
        ("ForTokenClassification", {}, {"labels": torch.randint(0, 3, ids.shape, generator=g)}),
        ("ForQuestionAnswering", {}, {"start_positions": torch.tensor([0, 16, 40, 3, 2, 17]),
                                      "end_positions": torch.tensor([[16], [2], [1], [99], [0], [5]])}),
        ("ForSequenceClassification", dict(num_labels=1), {"labels": torch.randn(6, generator=g)}),
        ("ForSequenceClassification", {}, {"labels": torch.randint(0, 2, (6, 3), generator=g).float()}),
        ("ForSequenceClassification", dict(num_labels=2, problem_type="regression"),
         {"labels": torch.randn(6, 2, generator=g)}),
        ("ForSequenceClassification", dict(problem_type="single_label_classification"),
         {"labels": torch.tensor([0, 2, 1, 1, 0, 2])}),
    ]
    for i, (task, overrides, labels) in enumerate(cases):
        _, hf, fb = _pair(tmp_path / str(i), task, **overrides)
        a, b = _run_both(hf, fb, task, ids, mask, **labels)
        errors = max_errors(a, b, mask)
        assert "loss" in errors and max(errors.values()) <= ATOL, (task, overrides, errors)


# ------------------------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("task", TASKS)
def test_gradients_match_transformers(task):
    """Every parameter's gradient, every head with its labels (the bare model with a weighted sum of its
    output), on a batch with left padding, a row with holes and a pad id among real tokens."""
    cfg = _hf_config(task)
    torch.manual_seed(6)
    hf = getattr(transformers, "DistilBert" + task)(cfg).train()
    fb = fastbert.from_transformers(hf)
    assert type(fb).__name__ == "DistilBert" + task and fb.training
    ids, mask = _batch(cfg, "left", seed=6)
    mask[3] = padding_mask(1, ids.shape[1], "holes", seed=9)[0]
    labels = _labels(task, cfg, ids, mask)
    x, m = _inputs(task, ids, mask)
    weight = torch.randn(*ids.shape, cfg.dim, generator=torch.Generator().manual_seed(7)) * mask[..., None]
    for model in (hf, fb):
        out = model(x, attention_mask=m, **labels)
        loss = (out.last_hidden_state * weight).sum() if task == "Model" else out.loss
        loss.backward()
    hf_grads = {k: p.grad for k, p in hf.named_parameters()}
    fb_grads = fastbert_to_hf({k: p.grad for k, p in fb.named_parameters()}, fb.names)
    assert sorted(fb_grads) == sorted(hf_grads)  # every parameter of both, under transformers' names
    for name, expected in hf_grads.items():
        if not (task == "ForMultipleChoice" and name == "classifier.bias"):  # softmax over choices: exactly 0
            assert expected.abs().max() > 0, name  # every parameter takes part
        torch.testing.assert_close(fb_grads[name], expected, atol=ATOL, rtol=0, msg=lambda m, n=name: f"{n}: {m}")
    if task != "ForMaskedLM":  # (the tied projector gives every row a gradient)
        assert torch.all(fb.get_input_embeddings().weight.grad[cfg.pad_token_id] == 0)  # padding_idx, no gradient


def test_dropout_placement_matches_transformers():
    """Which head each dropout reaches (``dropout``: embeddings, layers and the token classifier;
    ``attention_dropout``; ``qa_dropout``: the span head only; ``seq_classif_dropout``: sequence classification
    and multiple choice only): in train mode an output changes iff it changes in transformers."""
    ids, mask = _batch(_hf_config(), "random", seed=10)
    seen = {}
    for key in ("dropout", "attention_dropout", "qa_dropout", "seq_classif_dropout"):
        for task in HEADS:
            torch.manual_seed(11)
            hf = getattr(transformers, "DistilBert" + task)(_hf_config(task, **{key: 0.5}))
            fb = fastbert.from_transformers(hf)
            x, m = _inputs(task, ids, mask)
            changed = []
            for model in (hf, fb):
                with torch.no_grad():
                    train = model.train()(x, attention_mask=m)[0]
                    evaluated = model.eval()(x, attention_mask=m)[0]
                if train.shape[:2] == mask.shape:
                    train, evaluated = train[mask.bool()], evaluated[mask.bool()]
                changed.append((train - evaluated).abs().max().item() > 1e-3)
            seen[key, task] = changed[0]
            assert changed[0] == changed[1], (key, task, changed)
    assert seen["qa_dropout", "ForQuestionAnswering"] and not seen["qa_dropout", "ForSequenceClassification"]
    assert seen["seq_classif_dropout", "ForMultipleChoice"] and not seen["seq_classif_dropout", "ForMaskedLM"]


# ------------------------------------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("task,tied", [("ForMaskedLM", True), ("ForMaskedLM", False), ("Model", True),
                                       ("ForSequenceClassification", True), ("ForMultipleChoice", True),
                                       ("ForTokenClassification", True), ("ForQuestionAnswering", True)])
def test_save_pretrained_round_trip_through_transformers(tmp_path, task, tied):
    cfg = _hf_config(task, tie_word_embeddings=tied)
    torch.manual_seed(7)
    fb = fastbert.from_transformers(getattr(transformers, "DistilBert" + task)(cfg).eval())
    fb.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "distilbert" and saved["architectures"] == ["DistilBert" + task]
    assert saved["dim"] == 48 and "hidden_size" not in saved and "type_vocab_size" not in saved
    hf, info = getattr(transformers, _auto(task)).from_pretrained(tmp_path, output_loading_info=True)
    assert type(hf).__name__ == "DistilBert" + task
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    if task == "ForMaskedLM":
        tied_now = hf.vocab_projector.weight is hf.distilbert.embeddings.word_embeddings.weight
        assert tied_now == tied
    ids, mask = _batch(cfg, "holes", seed=8)
    a, b = _run_both(hf.eval(), fb, task, ids, mask, output_hidden_states=True)
    assert max(max_errors(a, b, mask).values()) <= ATOL
    again = getattr(fastbert, "DistilBert" + task).from_pretrained(tmp_path, strict=True)
    assert list(fb.state_dict()) == list(again.state_dict())
    for (k1, v1), v2 in zip(fb.state_dict().items(), again.state_dict().values()):
        assert torch.equal(v1, v2), k1


def test_legacy_checkpoint_and_bare_checkpoints(tmp_path):
    """A pre-transformers-5 style checkpoint (pytorch_model.bin with the tied ``vocab_projector.weight`` and the
    ``embeddings.position_ids`` buffer) loads strictly; a bare model loads into a head (head weights reported
    missing) and a head checkpoint into the bare model (head weights reported unused)."""
    cfg, hf, _ = _pair(tmp_path / "mlm", "ForMaskedLM")
    state = {k: v.clone() for k, v in hf.state_dict().items()}
    state["vocab_projector.weight"] = hf.distilbert.embeddings.word_embeddings.weight.detach().clone()
    state["distilbert.embeddings.position_ids"] = torch.arange(cfg.max_position_embeddings)[None]
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    torch.save(state, legacy / "pytorch_model.bin")
    data = json.loads((tmp_path / "mlm" / "config.json").read_text())
    data["tie_weights_"] = True  # as in the hub's distilbert-base-uncased
    (legacy / "config.json").write_text(json.dumps(data))
    fb = fastbert.AutoModelForMaskedLM.from_pretrained(legacy, strict=True)
    ids, mask = _batch(cfg, "random", seed=12)
    a, b = _run_both(hf, fb, "ForMaskedLM", ids, mask)
    assert max(max_errors(a, b, mask).values()) <= ATOL
    assert fb.config.tie_weights_ is True

    with pytest.warns(UserWarning, match="vocab_transform.weight"):
        bare = fastbert.AutoModel.from_pretrained(tmp_path / "mlm")
    assert type(bare) is fastbert.DistilBertModel
    _pair(tmp_path / "bare", "Model")
    with pytest.warns(UserWarning) as record:
        head = fastbert.DistilBertForSequenceClassification.from_pretrained(tmp_path / "bare")
    messages = " ".join(str(w.message) for w in record)
    assert "pre_classifier.weight" in messages and "classifier.bias" in messages and "distilbert." not in messages
    assert head.distilbert.pooler is None and head.distilbert.embeddings.token_type_embeddings is None
    assert type(fastbert.AutoConfig.from_pretrained(tmp_path / "bare")) is fastbert.DistilBertConfig
    assert type(fastbert.AutoModelForMultipleChoice.from_config(fastbert.DistilBertConfig(
        vocab_size=50, dim=32, n_heads=2, hidden_dim=64, n_layers=1,
    ))) is fastbert.DistilBertForMultipleChoice


# ------------------------------------------------------------------------------------------------ config
def test_config_reads_and_writes_distilbert_keys(tmp_path):
    hf_cfg = _hf_config(activation="relu", sinusoidal_pos_embds=True, qa_dropout=0.3, seq_classif_dropout=0.4,
                        dropout=0.05, attention_dropout=0.15, pad_token_id=2, initializer_range=0.01,
                        num_labels=2, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1},
                        tie_word_embeddings=False, tie_weights_=True)
    hf_cfg.save_pretrained(tmp_path)
    original = json.loads((tmp_path / "config.json").read_text())
    cfg = fastbert.AutoConfig.from_pretrained(tmp_path)
    assert type(cfg) is fastbert.DistilBertConfig and cfg.token_types is False
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (48, 2, 4, 80)
    assert (cfg.hidden_act, cfg.hidden_dropout_prob, cfg.attention_probs_dropout_prob) == ("relu", 0.05, 0.15)
    assert (cfg.layer_norm_eps, cfg.qa_dropout, cfg.seq_classif_dropout, cfg.sinusoidal_pos_embds) == \
        (1e-12, 0.3, 0.4, True)
    assert cfg.id2label == {0: "neg", 1: "pos"} and cfg.tie_word_embeddings is False and cfg.tie_weights_ is True
    cfg.save_pretrained(tmp_path / "again")
    saved = json.loads((tmp_path / "again" / "config.json").read_text())
    assert {k: saved.get(k, "<missing>") for k in original} == original  # every key kept, every value equal
    assert not {"hidden_size", "intermediate_size", "hidden_act", "layer_norm_eps", "is_decoder"} & set(saved)
    back = transformers.AutoConfig.from_pretrained(tmp_path / "again")
    assert type(back) is transformers.DistilBertConfig
    assert back.to_diff_dict() == hf_cfg.to_diff_dict()
    # transformers' defaults; its attribute_map names; overrides by either name
    hf_default = transformers.DistilBertConfig().to_diff_dict()
    ours = fastbert.DistilBertConfig().to_dict()
    assert {k: ours.get(k, "<missing>") for k in hf_default if k != "transformers_version"} == \
        {k: v for k, v in hf_default.items() if k != "transformers_version"}
    aliased = fastbert.DistilBertConfig(hidden_size=64, num_attention_heads=4, num_hidden_layers=3)
    assert (aliased.hidden_size, aliased.to_dict()["dim"], aliased.to_dict()["n_layers"]) == (64, 64, 3)
    assert transformers.DistilBertConfig(hidden_size=64).dim == 64  # the same aliases in transformers
    assert fastbert.DistilBertConfig.from_pretrained(tmp_path, hidden_size=96, n_heads=6).hidden_size == 96
    converted = fastbert.DistilBertConfig.from_transformers(hf_cfg).to_dict()
    assert {k: converted.get(k, "<missing>") for k in original} == original


@pytest.mark.parametrize("bad,match", [
    (dict(activation="quick_gelu"), "config.activation 'quick_gelu' is not supported"),
    (dict(n_heads=5), r"config\.dim \(48\) is not a multiple of n_heads \(5\)"),
    (dict(dropout=1.0), "config.dropout must be"),
    (dict(qa_dropout=1.5), "qa_dropout"),
    (dict(sinusoidal_pos_embds="yes"), "sinusoidal_pos_embds"),
    (dict(layer_norm_eps=1e-5), "layer_norm_eps=1e-12"),
    (dict(position_embedding_type="relative_key"), "position_embedding_type"),
    (dict(intermediate_size=99), r"its intermediate_size is config\.hidden_dim \(80\)"),
    (dict(hidden_size=64), "give one"),
    (dict(is_decoder=True), "is_decoder"),
    (dict(model_type="bert"), "'bert'"),
])
def test_unsupported_configs_are_clear_errors(tmp_path, bad, match):
    _pair(tmp_path, "Model")
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**data, **bad}))
    with pytest.raises(ConfigError, match=match):
        fastbert.DistilBertModel.from_pretrained(tmp_path)


def test_consistent_bert_keys_are_kept(tmp_path):
    """BERT keys transformers' DistilBERT ignores are kept verbatim when they agree with what runs."""
    _pair(tmp_path, "Model")
    data = json.loads((tmp_path / "config.json").read_text())
    extra = dict(layer_norm_eps=1e-12, type_vocab_size=2, intermediate_size=80, classifier_dropout=0.3)
    (tmp_path / "config.json").write_text(json.dumps({**data, **extra}))
    cfg = fastbert.DistilBertConfig.from_pretrained(tmp_path)
    assert {k: cfg.to_dict()[k] for k in extra} == extra


def test_unsupported_inputs_are_clear_errors(tmp_path):
    cfg, hf, fb = _pair(tmp_path, "ForSequenceClassification")
    ids, mask = _batch(cfg, "full")
    with pytest.raises(TypeError, match="token_type_ids"):
        fb(ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))
    with pytest.raises(NotImplementedError, match="output_attentions"):
        fb(ids, output_attentions=True)
    with pytest.raises(NotImplementedError, match="head_mask"):
        fb(ids, head_mask=torch.ones(2, 4))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        fb(torch.ones(1, cfg.max_position_embeddings + 1, dtype=torch.long))
    fb(torch.ones(1, cfg.max_position_embeddings, dtype=torch.long))  # the longest input that fits
    with pytest.raises(ValueError, match="exactly one"):
        fb(ids, inputs_embeds=torch.zeros(*ids.shape, cfg.dim))
    config = fastbert.DistilBertConfig(vocab_size=50, dim=32, n_heads=2, hidden_dim=64, n_layers=1)
    with pytest.raises(ConfigError, match="no pooler"):
        fastbert.DistilBertModel(config, add_pooling_layer=True)
    with pytest.raises(ConfigError, match="num_labels == 2"):
        fastbert.DistilBertForQuestionAnswering(fastbert.DistilBertConfig(**{**config.to_dict(), "num_labels": 3}))
    with pytest.raises(TypeError, match="DistilBertConfig"):
        fastbert.DistilBertModel(fastbert.BertConfig())
    with pytest.raises(ValueError, match="num_choices"):
        fastbert.DistilBertForMultipleChoice(config)(ids)
    with pytest.raises(ConfigError, match="'distilbert'"):
        fastbert.BertModel.from_pretrained(tmp_path)
