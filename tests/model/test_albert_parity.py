"""ALBERT parity with transformers in fp32 on CPU, random-weight configs.

Same bound as the BERT and RoBERTa parity tests: max abs error <= 1e-4 on non-padding positions (fp32 through
a few layers of width 32 and the fused kernels' reordered sums stays around 1e-6; 1e-4 leaves room for the
logits and losses, and any semantic slip — a skipped projection, a wrong group, a missing tanh — is >= 1e-2).
What is specific to the family is checked on purpose: embeddings narrower than the layers (``embedding_size``
16, hidden 32) with their projection, shared layer groups (the main config runs 3 outer layers over 2 groups of
2 inner layers: group 0 twice), hidden states recorded after every inner layer as transformers 5 records them,
the ``pooler`` + tanh, the narrow tied MLM head, sentence order prediction, ``classifier_dropout_prob``, and the
``albert.`` weight names with their renames onto BERT's layer.
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
from fastbert.packing import packing_from_lengths
from fastbert.weights import fastbert_to_hf, hf_to_fastbert

ATOL = 1e-4
HEADS = ["Model", "ForPreTraining", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification",
         "ForQuestionAnswering", "ForMultipleChoice"]
BASE = dict(
    vocab_size=100, embedding_size=16, hidden_size=32, num_attention_heads=2, intermediate_size=48,
    num_hidden_layers=3, num_hidden_groups=2, inner_group_num=2, max_position_embeddings=40,
    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
)


def _num_labels(task):
    return 2 if task in ("ForQuestionAnswering", "ForPreTraining") else 3  # span start/end; sentence order


def _hf_config(task="Model", **overrides):
    cfg = dict(BASE, num_labels=_num_labels(task))
    cfg.update(overrides)
    config = transformers.AlbertConfig(**cfg)
    config._attn_implementation = "eager"
    return config


def _model(task, cfg, seed=0):
    """A transformers ALBERT model with every parameter perturbed: transformers initialises biases to zero and
    LayerNorms to the identity, which would hide a bias or LayerNorm taken from the wrong place."""
    torch.manual_seed(seed)
    model = getattr(transformers, "Albert" + task)(cfg)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def _auto(task):
    return "AutoModel" + ("" if task == "Model" else task)


def _batch(cfg, mode, task="Model", batch=4, seqlen=13, seed=0):
    """ids (pad id 0 under the mask, except in "holes", whose masked positions keep ordinary ids), token types
    and a mask of ``mode``; ``(batch, 2 choices, seqlen)`` for multiple choice."""
    g = torch.Generator().manual_seed(seed)
    rows = batch * 2 if task == "ForMultipleChoice" else batch
    ids = torch.randint(1, cfg.vocab_size, (rows, seqlen), generator=g)
    mask = padding_mask(rows, seqlen, mode, seed=seed)
    if mode != "holes":
        ids = ids.masked_fill(mask == 0, cfg.pad_token_id)
    types = torch.randint(0, cfg.type_vocab_size, (rows, seqlen), generator=g)
    if task == "ForMultipleChoice":
        return ids.view(batch, 2, seqlen), types.view(batch, 2, seqlen), mask.view(batch, 2, seqlen)
    return ids, types, mask


def _labels(task, cfg, ids, mask, on_padding=False):
    g = torch.Generator().manual_seed(1)
    batch, seqlen = ids.shape[0], ids.shape[-1]
    if task == "ForSequenceClassification":
        return {"labels": torch.randint(0, cfg.num_labels, (batch,), generator=g)}
    if task == "ForMultipleChoice":
        return {"labels": torch.randint(0, 2, (batch,), generator=g)}
    if task == "ForQuestionAnswering":
        return {"start_positions": torch.randint(0, seqlen, (batch,), generator=g),
                "end_positions": torch.randint(0, seqlen + 4, (batch,), generator=g)}  # some out of range
    if task == "Model":
        return {}
    n = cfg.num_labels if task == "ForTokenClassification" else cfg.vocab_size
    tokens = torch.randint(0, n, (batch, seqlen), generator=g)
    if not on_padding:
        tokens = tokens.masked_fill(mask == 0, -100)
    tokens[0, ::2] = -100
    if task == "ForPreTraining":
        return {"labels": tokens, "sentence_order_label": torch.randint(0, 2, (batch,), generator=g)}
    return {"labels": tokens}


def _pair(tmp_path, task, **overrides):
    """A random transformers model saved with save_pretrained, and fastbert's Auto class loading it strictly."""
    cfg = _hf_config(task, **overrides)
    hf = _model(task, cfg).eval()
    hf.save_pretrained(tmp_path)
    fb = getattr(fastbert, _auto(task)).from_pretrained(tmp_path, strict=True)
    assert type(fb).__name__ == "Albert" + task
    return cfg, hf, fb


def _compare(hf, fb, mask, **kwargs):
    with torch.no_grad():
        a, b = hf(attention_mask=mask, **kwargs), fb(attention_mask=mask, **kwargs)
    return max_errors(a, b, mask)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("task", HEADS)
def test_every_head_matches_transformers(tmp_path, task, mode):
    cfg, hf, fb = _pair(tmp_path, task)
    ids, types, mask = _batch(cfg, mode, task)
    errors = _compare(hf, fb, mask, input_ids=ids, token_type_ids=types, output_hidden_states=True,
                      **_labels(task, cfg, ids, mask))
    assert max(errors.values()) <= ATOL, errors
    assert "hidden_states" in errors and (task == "Model" or "loss" in errors), errors


@pytest.mark.parametrize("groups,inner,layers", [(1, 1, 3), (1, 2, 3), (2, 1, 4), (2, 2, 4), (2, 1, 3), (4, 1, 2)])
def test_layer_sharing_variants(tmp_path, groups, inner, layers):
    """Every grouping transformers allows, (4, 1, 2) included: more groups than layers, groups 1 and 3 unused.
    One hidden state per inner layer call after the projected embeddings; parameters are not duplicated."""
    cfg, hf, fb = _pair(tmp_path, "Model", num_hidden_groups=groups, inner_group_num=inner, num_hidden_layers=layers)
    ids, types, mask = _batch(cfg, "holes", seed=groups * 10 + inner)
    errors = _compare(hf, fb, mask, input_ids=ids, token_type_ids=types, output_hidden_states=True)
    assert max(errors.values()) <= ATOL, errors
    with torch.no_grad():
        hidden = fb(ids, attention_mask=mask, output_hidden_states=True).hidden_states
    assert len(hidden) == 1 + layers * inner
    assert fb.num_parameters() == sum(p.numel() for p in hf.parameters())
    expected = [hf.encoder.albert_layer_groups[int(i / (layers / groups))] for i in range(layers)]
    blocks = fb.blocks()
    assert len(blocks) == layers * inner
    group_of = {id(layer): g for g, grp in enumerate(fb.encoder.albert_layer_groups) for layer in grp.albert_layers}
    hf_groups = [list(hf.encoder.albert_layer_groups).index(grp) for grp in expected for _ in range(inner)]
    assert [group_of[id(b)] for b in blocks] == hf_groups


def test_packed_entry_point_and_classify(tmp_path):
    """The entry point SentenceEncoder, CrossEncoder and the CUDA graphs call (forward_packed on packed rows with
    the model's own positions) includes the embedding projection; classify (the CrossEncoder's head) is the
    pooler, tanh, classifier."""
    cfg, hf, fb = _pair(tmp_path, "ForSequenceClassification")
    ids, types, mask = _batch(cfg, "random", seed=2)
    lengths = mask.sum(1).tolist()
    packing = packing_from_lengths(lengths, torch.device("cpu"))
    flat, flat_types = ids[mask.bool()], types[mask.bool()]
    encoder = fb._bert()
    with torch.no_grad():
        x = encoder.forward_packed(packing, flat, encoder.packed_position_ids(packing, flat), flat_types)[-1]
        logits = fb.classify(x.index_select(0, packing.cu_seqlens[:-1].to(torch.int64)))
        a = hf(ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
    torch.testing.assert_close(x, a.hidden_states[-1][mask.bool()], atol=ATOL, rtol=0)
    torch.testing.assert_close(logits, a.logits, atol=ATOL, rtol=0)


@pytest.mark.parametrize("task", ["ForPreTraining", "ForMaskedLM", "ForTokenClassification"])
def test_labels_on_padding(tmp_path, task):
    """Labels on padding make transformers read padding states: fastbert computes them then."""
    cfg, hf, fb = _pair(tmp_path, task)
    ids, types, mask = _batch(cfg, "left", task, seed=5)
    labels = _labels(task, cfg, ids, mask, on_padding=True)
    with torch.no_grad():
        a, b = hf(ids, attention_mask=mask, **labels), fb(ids, attention_mask=mask, **labels)
    torch.testing.assert_close(b.loss, a.loss, atol=ATOL, rtol=0)


@pytest.mark.parametrize("num_labels,labels", [
    (1, torch.randn(4)),
    (3, torch.tensor([[1.0, 0, 1], [0, 0, 1], [1, 1, 1], [0, 0, 0]])),
])
def test_regression_and_multi_label_losses(num_labels, labels):
    hf = _model("ForSequenceClassification", _hf_config(num_labels=num_labels), seed=3).eval()
    fb = fastbert.from_transformers(hf)
    assert type(fb) is fastbert.AlbertForSequenceClassification
    ids, types, mask = _batch(fb.config, "third", seed=3)
    with torch.no_grad():
        a, b = hf(ids, attention_mask=mask, labels=labels), fb(ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(b.loss, a.loss, atol=ATOL, rtol=0)
    torch.testing.assert_close(b.logits, a.logits, atol=ATOL, rtol=0)


@pytest.mark.parametrize("mode", ["left", "holes"])
def test_inputs_embeds_and_explicit_positions(tmp_path, mode):
    """inputs_embeds are embedding_size wide (16, not the hidden 32); position ids given are used as they are;
    multiple choice takes (batch, choices, seq, embedding_size)."""
    cfg, hf, fb = _pair(tmp_path / "model", "Model")
    ids, types, mask = _batch(cfg, mode, seed=4)
    emb = torch.randn(*ids.shape, cfg.embedding_size, generator=torch.Generator().manual_seed(0))
    positions = torch.randint(0, cfg.max_position_embeddings, ids.shape, generator=torch.Generator().manual_seed(1))
    for kwargs in (dict(inputs_embeds=emb), dict(input_ids=ids, position_ids=positions),
                   dict(inputs_embeds=emb, position_ids=positions[:1], token_type_ids=types)):
        errors = _compare(hf, fb, mask, output_hidden_states=True, **kwargs)
        assert max(errors.values()) <= ATOL, (list(kwargs), errors)
    with pytest.raises(ValueError, match=rf"\(batch, seq_len, {cfg.embedding_size}\)"):
        fb(inputs_embeds=torch.randn(*ids.shape, cfg.hidden_size))
    with pytest.raises(ValueError, match="exactly one"):
        fb(ids, inputs_embeds=emb)
    cfg, hf, fb = _pair(tmp_path / "mc", "ForMultipleChoice")
    ids, types, mask = _batch(cfg, mode, "ForMultipleChoice", seed=4)
    emb = torch.randn(*ids.shape, cfg.embedding_size, generator=torch.Generator().manual_seed(2))
    errors = _compare(hf, fb, mask, inputs_embeds=emb, labels=torch.tensor([0, 1, 1, 0]))
    assert max(errors.values()) <= ATOL, errors


def _hf_grad(hf_grads, names, fb_name):
    """transformers' gradient for a fastbert parameter: renamed, and the fused qkv's three parts."""
    if ".qkv." in fb_name:
        prefix, kind = fb_name.rsplit(".qkv.", 1)
        return torch.cat([hf_grads[names.to_hf(f"{prefix}.{w}.{kind}")] for w in ("query", "key", "value")])
    return hf_grads[names.to_hf(fb_name)]


@pytest.mark.parametrize("task,tied", [(t, True) for t in HEADS[1:]] + [("ForMaskedLM", False)])
def test_gradients_of_every_parameter(task, tied):
    """Every parameter's gradient for every head with labels, holes and left padding in one batch. The main
    config uses group 0 for two outer layers: its weights accumulate both uses, as in transformers. Untied, the
    decoder has its own bias and transformers leaves predictions.bias unused (no gradient in either)."""
    cfg = _hf_config(task, classifier_dropout_prob=0.0, tie_word_embeddings=tied)
    hf = _model(task, cfg, seed=6).train()
    fb = fastbert.from_transformers(hf)
    blocks = fb._bert().blocks()
    assert len({id(b) for b in blocks}) < len(blocks)  # the test does exercise a shared layer
    ids, types, mask = _batch(cfg, "left", task, seed=6)
    mask.view(-1, mask.shape[-1])[1] = padding_mask(1, mask.shape[-1], "holes", seed=9)[0]
    labels = _labels(task, cfg, ids, mask)
    hf(ids, attention_mask=mask, token_type_ids=types, **labels).loss.backward()
    fb(ids, attention_mask=mask, token_type_ids=types, **labels).loss.backward()
    hf_grads = {k: p.grad for k, p in hf.named_parameters()}
    checked = 0
    for name, p in fb.named_parameters():
        expected = _hf_grad(hf_grads, fb.names, name)
        if expected is None or p.grad is None:
            assert expected is None and p.grad is None and not tied and name == "predictions.bias", name
        else:
            torch.testing.assert_close(p.grad, expected, atol=ATOL, rtol=0, msg=lambda m, n=name: f"{n}: {m}")
        checked += 1
    assert checked == len(list(fb.parameters())) == len(hf_grads) - 4 * cfg.num_hidden_groups * cfg.inner_group_num


def test_gradient_checkpointing_gives_the_same_gradients():
    cfg = _hf_config("ForTokenClassification", classifier_dropout_prob=0.0)
    hf = _model("ForTokenClassification", cfg, seed=8).train()
    ids, types, mask = _batch(cfg, "random", seed=8)
    labels = _labels("ForTokenClassification", cfg, ids, mask)
    grads = []
    for checkpointing in (False, True):
        fb = fastbert.from_transformers(hf)
        if checkpointing:
            fb.gradient_checkpointing_enable()
        fb(ids, attention_mask=mask, **labels).loss.backward()
        grads.append([p.grad for p in fb.parameters()])
    for g0, g1 in zip(*grads):
        torch.testing.assert_close(g1, g0, atol=1e-6, rtol=0)  # same ops recomputed: rounding only


@pytest.mark.parametrize("task,tied", [("ForMaskedLM", True), ("ForMaskedLM", False), ("ForPreTraining", True),
                                       ("ForSequenceClassification", True), ("ForMultipleChoice", True),
                                       ("Model", True)])
def test_save_pretrained_round_trip_through_transformers(tmp_path, task, tied):
    cfg = _hf_config(task, tie_word_embeddings=tied)
    fb = fastbert.from_transformers(_model(task, cfg, seed=7).eval())
    fb.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "albert" and saved["architectures"] == ["Albert" + task]
    hf = getattr(transformers, _auto(task)).from_pretrained(tmp_path).eval()
    assert type(hf).__name__ == "Albert" + task
    ids, types, mask = _batch(cfg, "holes", task, seed=8)
    errors = _compare(hf, fb, mask, input_ids=ids, token_type_ids=types, output_hidden_states=True)
    assert max(errors.values()) <= ATOL, errors
    again = getattr(fastbert, "Albert" + task).from_pretrained(tmp_path, strict=True)
    for (k1, v1), (k2, v2) in zip(fb.state_dict().items(), again.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)


@pytest.mark.parametrize("task", HEADS)
def test_weight_names_map_both_ways(task):
    """Every transformers key maps onto a fastbert parameter and back unchanged (the renames' order matters:
    ``output.dense`` sits inside ``attention.output.dense``), and a bare checkpoint's keys load into heads."""
    hf = _model(task, _hf_config(task))
    fb = fastbert.from_transformers(hf)
    names = fb.names
    hf_keys = set(hf.state_dict())
    for key in hf_keys:
        assert names.to_hf(names.to_fastbert(key)) == key
    tied = {"predictions.decoder.weight", "predictions.decoder.bias"}
    assert set(fastbert_to_hf(fb.state_dict(), names)) == hf_keys - tied
    state = hf_to_fastbert(hf.state_dict(), fb.base_model_prefix_str, True, names)
    assert set(state) == set(fb.state_dict())
    assert all(".albert_layers." in k for k in state if ".qkv." in k or "intermediate.dense" in k)


def test_config_keys_defaults_and_round_trip(tmp_path):
    """transformers' defaults, and every ALBERT key written and read back unchanged, by both libraries."""
    hf_defaults = transformers.AlbertConfig().to_dict()
    ours = fastbert.AlbertConfig().to_dict()
    bookkeeping = {"transformers_version", "architectures", "output_hidden_states", "return_dict", "dtype",
                   "chunk_size_feed_forward", "is_encoder_decoder", "_name_or_path", "output_attentions"}
    for key, value in hf_defaults.items():
        if key not in bookkeeping:
            assert key in ours and json.loads(json.dumps(ours[key])) == json.loads(json.dumps(value)), key
    custom = dict(vocab_size=77, embedding_size=24, hidden_size=48, num_hidden_layers=5, num_hidden_groups=3,
                  num_attention_heads=4, intermediate_size=80, inner_group_num=2, hidden_act="gelu",
                  hidden_dropout_prob=0.05, attention_probs_dropout_prob=0.02, max_position_embeddings=64,
                  type_vocab_size=3, initializer_range=0.01, layer_norm_eps=1e-6, classifier_dropout_prob=0.2,
                  pad_token_id=5, bos_token_id=6, eos_token_id=7, tie_word_embeddings=False, num_labels=4)
    transformers.AlbertConfig(**custom).save_pretrained(tmp_path)
    cfg = fastbert.AutoConfig.from_pretrained(tmp_path)
    assert type(cfg) is fastbert.AlbertConfig and cfg.embedding_dim == 24
    cfg.save_pretrained(tmp_path / "again")
    assert fastbert.AlbertConfig.from_pretrained(tmp_path / "again") == cfg
    back = transformers.AutoConfig.from_pretrained(tmp_path / "again")
    assert type(back) is transformers.AlbertConfig
    for key, value in custom.items():
        assert getattr(cfg, key) == value and getattr(back, key) == value, key


def test_auto_classes_and_exports(tmp_path):
    """A bare checkpoint loads into a head (its head weights reported missing), from_config builds the family's
    class, and the classes and config are exported by name."""
    _pair(tmp_path, "Model")
    with pytest.warns(UserWarning, match="sop_classifier.classifier.weight"):
        head = fastbert.AutoModelForPreTraining.from_pretrained(tmp_path)
    assert type(head) is fastbert.AlbertForPreTraining
    model = fastbert.AutoModelForMaskedLM.from_config(fastbert.AlbertConfig(**BASE))
    assert type(model) is fastbert.AlbertForMaskedLM and model.albert.pooler is None
    assert model.albert.embeddings.word_embeddings.weight.shape == (BASE["vocab_size"], BASE["embedding_size"])
    with pytest.raises(TypeError, match="AlbertConfig"):
        fastbert.AlbertModel(fastbert.BertConfig())


def test_hidden_dropout_where_transformers_has_it(tmp_path):
    """transformers' ALBERT layer drops out the attention output but not the FFN output. With the attention
    output's dropout switched off in both (hidden_dropout_prob stays 0.1 in the config), training-mode outputs
    are deterministic and equal: a dropout on fastbert's FFN output would make them differ. Eval mode is exact."""
    cfg, hf, fb = _pair(tmp_path, "ForMaskedLM", hidden_dropout_prob=0.1)
    ids, types, mask = _batch(cfg, "random", seed=11)
    assert max(_compare(hf, fb, mask, input_ids=ids).values()) <= ATOL
    hf.train()
    fb.train()
    for module in hf.modules():
        if type(module).__name__ == "AlbertAttention":
            module.output_dropout.p = 0.0
    hf.albert.embeddings.dropout.p = 0.0
    fb.albert.embeddings.dropout_p = 0.0
    for group in fb.albert.encoder.albert_layer_groups:
        for layer in group.albert_layers:
            assert layer.ffn_p == 0.0 and layer.hidden_p == 0.1
            layer.hidden_p = 0.0
    with torch.no_grad():
        a, b = hf(ids, attention_mask=mask), fb(ids, attention_mask=mask)
    real = mask.bool()
    assert (a.logits[real] - b.logits[real]).abs().max().item() <= ATOL


@pytest.mark.parametrize("bad,match", [
    (dict(position_embedding_type="relative_key"), "position_embedding_type"),
    (dict(position_embedding_type="relative_key_query"), "position_embedding_type"),
    (dict(num_hidden_groups=0), "num_hidden_groups"),
    (dict(inner_group_num=1.5), "inner_group_num"),
    (dict(embedding_size=-4), "embedding_size"),
    (dict(classifier_dropout_prob=1.5), "classifier_dropout_prob"),
    (dict(hidden_act="mish"), "hidden_act"),
    (dict(model_type="bert"), "'bert'"),
])
def test_unsupported_configs_are_clear_errors(tmp_path, bad, match):
    _pair(tmp_path, "Model")
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**data, **bad}))
    with pytest.raises(ConfigError, match=match):
        fastbert.AlbertModel.from_pretrained(tmp_path)


@pytest.mark.parametrize("task", ["ForSequenceClassification", "ForMultipleChoice", "ForPreTraining"])
def test_classifier_dropout_in_training(task):
    """The pooled heads drop out the pooled output with classifier_dropout_prob (0.5 here) and nothing else
    draws random numbers (the other dropouts are 0), so under one seed fastbert draws transformers' mask: equal
    logits show the dropout's place and probability."""
    cfg = _hf_config(task, classifier_dropout_prob=0.5)
    hf = _model(task, cfg).train()
    fb = fastbert.from_transformers(hf)
    ids, types, mask = _batch(cfg, "random", task)
    torch.manual_seed(5)
    a = hf(ids, attention_mask=mask)
    torch.manual_seed(5)
    b = fb(ids, attention_mask=mask)
    key = "sop_logits" if task == "ForPreTraining" else "logits"
    torch.testing.assert_close(b[key], a[key], atol=ATOL, rtol=0)
    with torch.no_grad():
        assert (fb(ids, attention_mask=mask)[key] - b[key]).abs().max() > 1e-3  # the dropout is on


@pytest.mark.parametrize("task", ["ForSequenceClassification", "ForMultipleChoice", "ForPreTraining"])
def test_pooled_heads_need_classifier_dropout_prob(task):
    """transformers cannot build these heads with classifier_dropout_prob None (nn.Dropout(None)); the token
    classifier falls back to hidden_dropout_prob there, and takes classifier_dropout_prob when set."""
    config = fastbert.AlbertConfig(**dict(BASE, hidden_dropout_prob=0.2), classifier_dropout_prob=None)
    with pytest.raises(ConfigError, match="classifier_dropout_prob"):
        getattr(fastbert, "Albert" + task)(config)
    assert fastbert.AlbertForTokenClassification(config)._classifier_p() == 0.2
    config = fastbert.AlbertConfig(**dict(BASE, hidden_dropout_prob=0.2), classifier_dropout_prob=0.3)
    assert fastbert.AlbertForTokenClassification(config)._classifier_p() == 0.3
