"""ELECTRA parity with transformers in fp32 on CPU, random-weight configs.

Same bound as the BERT and RoBERTa parity tests: max abs error <= 1e-4 on non-padding positions (fp32 through
two layers; what differs is only the order of floating-point sums in the fused ops and the packed attention,
observed ~1e-6). What is specific to the family is checked on purpose: embeddings ``embedding_size`` wide and
projected (``embeddings_project``) when that differs from ``hidden_size``, and not when it is equal; every head
(discriminator with its BCE over attended tokens, generator with its tied ``generator_lm_head``, the GELU
classification head, multiple choice through the ``summary_*`` settings); ``inputs_embeds`` at
``embedding_size``; the ``electra.`` prefix both ways.
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
from fastbert.cuda_graphs import CudaGraphRunner

ATOL = 1e-4
HEADS = ["Model", "ForPreTraining", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification",
         "ForQuestionAnswering", "ForMultipleChoice"]
# narrow: embeddings 20 wide projected to 48 (head dim 12); equal: no projection (head dim 16)
SIZES = {
    "narrow": dict(embedding_size=20, hidden_size=48, num_attention_heads=4, intermediate_size=80),
    "equal": dict(embedding_size=32, hidden_size=32, num_attention_heads=2, intermediate_size=64),
}
CHOICES = 2


def _hf_config(sizes="narrow", **overrides):
    cfg = dict(
        vocab_size=100, num_hidden_layers=2, max_position_embeddings=40, type_vocab_size=2,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, summary_last_dropout=0.0, num_labels=3,
    )
    cfg.update(SIZES[sizes])
    cfg.update(overrides)
    config = transformers.ElectraConfig(**cfg)
    config._attn_implementation = "eager"
    return config


def _batch(cfg, mode, task="Model", batch=4, seqlen=13, seed=0):
    """ids, token types and a mask of ``mode``; multiple choice gets ``(batch, CHOICES, seqlen)``. Padding
    holds the pad id except in "holes", whose masked positions keep ordinary ids."""
    g = torch.Generator().manual_seed(seed)
    rows = batch * CHOICES if task == "ForMultipleChoice" else batch
    ids = torch.randint(1, cfg.vocab_size, (rows, seqlen), generator=g)
    mask = padding_mask(rows, seqlen, mode, seed=seed)
    if mode != "holes":
        ids = ids.masked_fill(mask == 0, cfg.pad_token_id)
    types = torch.randint(0, cfg.type_vocab_size, (rows, seqlen), generator=g)
    if task == "ForMultipleChoice":
        return ids.view(batch, CHOICES, seqlen), types.view(batch, CHOICES, seqlen), mask.view(batch, CHOICES, seqlen)
    return ids, types, mask


def _labels(task, cfg, ids, mask, on_padding=False):
    """Labels of ``task``; token-level ones are -100 (or, for the discriminator, anything) on padding unless
    ``on_padding``, where they are real labels that transformers' loss reads (not the discriminator's)."""
    g = torch.Generator().manual_seed(1)
    batch, seqlen = ids.shape[0], ids.shape[-1]
    if task in ("ForMaskedLM", "ForTokenClassification"):
        n = cfg.vocab_size if task == "ForMaskedLM" else cfg.num_labels
        labels = torch.randint(0, n, (batch, seqlen), generator=g)
        if not on_padding:
            labels = labels.masked_fill(mask == 0, -100)
            labels[0, ::2] = -100
        return {"labels": labels}
    if task == "ForPreTraining":
        return {"labels": torch.randint(0, 2, (batch, seqlen), generator=g)}
    if task == "ForSequenceClassification":
        return {"labels": torch.randint(0, cfg.num_labels, (batch,), generator=g)}
    if task == "ForMultipleChoice":
        return {"labels": torch.randint(0, CHOICES, (batch,), generator=g)}
    if task == "ForQuestionAnswering":
        return {"start_positions": torch.randint(0, seqlen, (batch,), generator=g),
                "end_positions": torch.randint(0, seqlen, (batch,), generator=g)}
    return {}


def _auto(task):
    return getattr(fastbert, "AutoModel" + ("" if task == "Model" else task))


def _pair(tmp_path, task, sizes="narrow", **overrides):
    """A random transformers model saved with save_pretrained, and fastbert's Auto class loading it strictly."""
    cfg = _hf_config(sizes, num_labels=2 if task == "ForQuestionAnswering" else 3, **overrides)
    torch.manual_seed(0)
    hf = getattr(transformers, "Electra" + task)(cfg).eval()
    hf.save_pretrained(tmp_path)
    fb = _auto(task).from_pretrained(tmp_path, strict=True)
    assert type(fb).__name__ == "Electra" + task
    return cfg, hf, fb


def _run(hf, fb, ids, **kwargs):
    with torch.no_grad():
        return hf(ids, **kwargs), fb(ids, **kwargs)


# ------------------------------------------------------------------------------------------------ parity
# every mask mode with the projection; without it (the same packed code after the embeddings) two modes
@pytest.mark.parametrize("sizes,mode", [("narrow", m) for m in MODES] + [("equal", "full"), ("equal", "holes")])
@pytest.mark.parametrize("task", HEADS)
def test_every_head_matches_transformers(tmp_path, sizes, task, mode):
    cfg, hf, fb = _pair(tmp_path, task, sizes)
    assert (fb._bert().embeddings_project is None) == (sizes == "equal")
    assert fb._bert().embeddings.word_embeddings.weight.shape == (cfg.vocab_size, cfg.embedding_size)
    ids, types, mask = _batch(cfg, mode, task)
    kwargs = dict(attention_mask=mask, token_type_ids=types, output_hidden_states=True,
                  **_labels(task, cfg, ids, mask))
    a, b = _run(hf, fb, ids, **kwargs)
    errors = max_errors(a, b, mask)
    assert max(errors.values()) <= ATOL, errors
    assert len(b.hidden_states) == cfg.num_hidden_layers + 1
    assert b.hidden_states[0].shape[-1] == cfg.hidden_size  # the projected embeddings, as transformers gives
    if task != "Model":
        assert "loss" in errors
    # the tuple form too
    with torch.no_grad():
        tup = fb(ids, return_dict=False, **kwargs)
    assert len(tup) == len(b) and all(x is y or torch.equal(x, y) for x, y in zip(tup, b.values())
                                      if isinstance(x, torch.Tensor))


@pytest.mark.parametrize("task", ["ForMaskedLM", "ForTokenClassification", "ForPreTraining"])
@pytest.mark.parametrize("mode", ["random", "holes"])
def test_labels_on_padding(tmp_path, task, mode):
    """Labels on padding: the MLM and token losses read the padding states (fastbert computes them then);
    the discriminator's loss leaves padding out, as transformers' does; with no mask it reads every token."""
    cfg, hf, fb = _pair(tmp_path, task)
    ids, types, mask = _batch(cfg, mode, seed=5)
    labels = _labels(task, cfg, ids, mask, on_padding=True)
    a, b = _run(hf, fb, ids, attention_mask=mask, token_type_ids=types, **labels)
    torch.testing.assert_close(b.loss, a.loss, atol=ATOL, rtol=0)
    a, b = _run(hf, fb, ids, token_type_ids=types, **labels)
    torch.testing.assert_close(b.loss, a.loss, atol=ATOL, rtol=0)
    assert max(max_errors(a, b, torch.ones_like(mask)).values()) <= ATOL


_SUMMARY_TYPES = [dict(summary_type="last"), dict(summary_type="mean"), dict(summary_type="cls_index")]
_SUMMARY_OTHERS = [
    dict(summary_activation="tanh"), dict(summary_activation=""), dict(summary_activation="gelu_new"),
    dict(summary_use_proj=False), dict(summary_first_dropout=0.3, summary_last_dropout=0.2),  # dropouts: eval
]


@pytest.mark.parametrize("summary,mode", [(s, m) for s in _SUMMARY_TYPES for m in ("random", "holes")]
                         + [(s, "random") for s in _SUMMARY_OTHERS])
def test_multiple_choice_summary_settings(tmp_path, summary, mode):
    """Every summary transformers implements: "last" and "mean" read padding columns (right padding puts
    padding in the last column), which fastbert then computes."""
    cfg, hf, fb = _pair(tmp_path, "ForMultipleChoice", **summary)
    ids, types, mask = _batch(cfg, mode, "ForMultipleChoice", seed=2)
    labels = _labels("ForMultipleChoice", cfg, ids, mask)
    a, b = _run(hf, fb, ids, attention_mask=mask, token_type_ids=types, **labels)
    assert max(max_errors(a, b, mask).values()) <= ATOL


@pytest.mark.parametrize("bad,match", [
    (dict(summary_type="attn"), "summary_type"),
    (dict(summary_activation="mish"), "summary_activation"),
    (dict(summary_use_proj=True, summary_proj_to_labels=True), "summary_proj_to_labels"),
    (dict(summary_last_dropout=1.5), "summary_last_dropout"),
])
def test_unsupported_summary_settings_are_config_errors(bad, match):
    config = fastbert.ElectraConfig(**{**_hf_config().to_dict(), **bad})
    with pytest.raises(ConfigError, match=match):
        fastbert.ElectraForMultipleChoice(config)
    fastbert.ElectraForSequenceClassification(config)  # the other heads have no summary: they load as before


@pytest.mark.parametrize("sizes", ["narrow", "equal"])
@pytest.mark.parametrize("task", ["Model", "ForPreTraining", "ForMultipleChoice"])
def test_inputs_embeds_position_ids_and_token_types(tmp_path, sizes, task):
    """inputs_embeds are embedding_size wide and go through the projection; explicit position ids, token types
    given, broadcast (1, seqlen) or left out."""
    cfg, hf, fb = _pair(tmp_path, task, sizes)
    ids, types, mask = _batch(cfg, "left", task, seed=4)
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(*ids.shape, cfg.embedding_size, generator=g)
    positions = torch.randint(0, cfg.max_position_embeddings, ids.shape, generator=g)
    flat_types = types.reshape(-1, ids.shape[-1])
    cases = [dict(inputs_embeds=emb, token_type_ids=types), dict(input_ids=ids, position_ids=positions),
             dict(input_ids=ids)]
    if task != "ForMultipleChoice":
        cases += [dict(inputs_embeds=emb, position_ids=positions[:1]),
                  dict(input_ids=ids, token_type_ids=flat_types[:1])]
    for kwargs in cases:
        with torch.no_grad():
            a, b = hf(attention_mask=mask, **kwargs), fb(attention_mask=mask, **kwargs)
        errors = max_errors(a, b, mask)
        assert max(errors.values()) <= ATOL, (list(kwargs), errors)
    with pytest.raises(ValueError, match=rf"inputs_embeds must be \(batch, seq_len, {cfg.embedding_size}\)"):
        fb(inputs_embeds=torch.randn(*ids.shape, cfg.embedding_size + 1), attention_mask=mask)
    with pytest.raises(ValueError, match="exactly one"):
        fb(input_ids=ids, inputs_embeds=emb)


def test_classification_losses_and_no_optional_inputs(tmp_path):
    """Regression and multi-label losses as transformers chooses them; no mask and no token types."""
    ids, types, mask = _batch(_hf_config(), "random", seed=5)
    for overrides, labels in (
        (dict(num_labels=1), torch.randn(4)),
        (dict(num_labels=3), torch.tensor([[1.0, 0, 1], [0, 0, 1], [1, 1, 1], [0, 1, 0]])),
    ):
        torch.manual_seed(3)
        hf = transformers.ElectraForSequenceClassification(_hf_config(**overrides)).eval()
        fb = fastbert.from_transformers(hf)
        assert type(fb) is fastbert.ElectraForSequenceClassification
        for kwargs in (dict(attention_mask=mask), {}):
            a, b = _run(hf, fb, ids, labels=labels, **kwargs)
            torch.testing.assert_close(b.loss, a.loss, atol=ATOL, rtol=0)
            torch.testing.assert_close(b.logits, a.logits, atol=ATOL, rtol=0)


# ------------------------------------------------------------------------------------------------ gradients
def _hf_grad(hf_grads, name):
    if ".qkv." in name:
        prefix, kind = name.rsplit(".qkv.", 1)
        return torch.cat([hf_grads[f"{prefix}.{w}.{kind}"] for w in ("query", "key", "value")])
    return hf_grads[name]


@pytest.mark.parametrize("task", HEADS)
@pytest.mark.parametrize("sizes", ["narrow", "equal"])
def test_gradients_of_every_parameter(sizes, task):
    """Every parameter's gradient, in training mode (dropout 0), with labels, padding of two kinds in one
    batch; the bare model with a weighted sum of its output. The generator's word embeddings get the
    gradient of both their uses (the tied lm head)."""
    cfg = _hf_config(sizes, num_labels=2 if task == "ForQuestionAnswering" else 3)
    torch.manual_seed(6)
    hf = getattr(transformers, "Electra" + task)(cfg).train()
    fb = fastbert.from_transformers(hf)
    assert fb.training
    ids, types, mask = _batch(cfg, "left", task, seed=6)
    flat = mask.view(-1, mask.shape[-1])
    flat[1] = padding_mask(1, mask.shape[-1], "holes", seed=9)[0]
    labels = _labels(task, cfg, ids, mask)
    weight = torch.randn(*ids.shape, cfg.hidden_size, generator=torch.Generator().manual_seed(2))
    for model in (hf, fb):
        out = model(ids, attention_mask=mask, token_type_ids=types, **labels)
        loss = out.loss if task != "Model" else (out.last_hidden_state * weight * mask[..., None]).mean()
        loss.backward()
    hf_grads = {k: p.grad for k, p in hf.named_parameters()}
    names = [name for name, _ in fb.named_parameters()]
    for name, p in fb.named_parameters():
        expected = _hf_grad(hf_grads, name)
        assert p.grad is not None and expected is not None, name
        torch.testing.assert_close(p.grad, expected, atol=ATOL, rtol=0, msg=lambda m, n=name: f"{n}: {m}")
    assert ("electra.embeddings_project.weight" in names) == (sizes == "narrow" and task != "Model")
    assert len(names) == len([n for n in hf_grads if ".key." not in n and ".value." not in n])


# ------------------------------------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("task,tied,sizes", [
    ("ForMaskedLM", True, "narrow"), ("ForMaskedLM", False, "narrow"), ("ForMaskedLM", True, "equal"),
    ("ForPreTraining", True, "narrow"), ("ForMultipleChoice", True, "narrow"), ("Model", True, "narrow"),
    ("ForSequenceClassification", True, "equal"),
])
def test_save_pretrained_round_trip_through_transformers(tmp_path, task, tied, sizes):
    """fastbert's save_pretrained -> transformers loads it (no missing or unexpected weight) -> same outputs;
    fastbert reloads it strictly to the same tensors."""
    cfg = _hf_config(sizes, tie_word_embeddings=tied)
    torch.manual_seed(7)
    fb = fastbert.from_transformers(getattr(transformers, "Electra" + task)(cfg).eval())
    fb.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "electra" and saved["architectures"] == ["Electra" + task]
    assert saved["embedding_size"] == cfg.embedding_size
    auto = getattr(transformers, "AutoModel" + ("" if task == "Model" else task))
    hf, info = auto.from_pretrained(tmp_path, output_loading_info=True)
    hf.eval()
    assert type(hf).__name__ == "Electra" + task
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    if task == "ForMaskedLM":
        shared = hf.generator_lm_head.weight is hf.electra.embeddings.word_embeddings.weight
        assert shared == tied
    ids, types, mask = _batch(cfg, "holes", task, seed=8)
    a, b = _run(hf, fb, ids, attention_mask=mask, token_type_ids=types)
    assert max(max_errors(a, b, mask).values()) <= ATOL
    again = getattr(fastbert, "Electra" + task).from_pretrained(tmp_path, strict=True)
    assert list(fb.state_dict()) == list(again.state_dict())
    for k, v in fb.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


@pytest.mark.parametrize("tied", [True, False])
def test_transformers_checkpoints_load_strictly(tmp_path, tied):
    """transformers' save (the tied lm head weight left out) and a pickled state dict that keeps it (older
    saves) both load strictly; untied, the lm head keeps its own weight."""
    cfg, hf, fb = _pair(tmp_path / "saved", "ForMaskedLM", tie_word_embeddings=tied)
    lm = fb.generator_lm_head
    if tied:
        assert lm.weight is None
    else:
        assert torch.equal(lm.weight, hf.generator_lm_head.weight)
        assert not torch.equal(lm.weight, fb.electra.embeddings.word_embeddings.weight)
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text((tmp_path / "saved" / "config.json").read_text())
    state = hf.state_dict()
    assert "generator_lm_head.weight" in state
    torch.save(state, old / "pytorch_model.bin")
    again = fastbert.ElectraForMaskedLM.from_pretrained(old, strict=True)
    ids, types, mask = _batch(cfg, "third", seed=3)
    a, b = _run(hf, again, ids, attention_mask=mask)
    assert max(max_errors(a, b, mask).values()) <= ATOL


def test_bare_checkpoint_into_head_and_head_into_bare(tmp_path):
    """A bare ElectraModel checkpoint (no prefix, embeddings_project included) loads into a head, whose own
    weights are reported missing; a head checkpoint loads into the bare model, its head reported unused."""
    _pair(tmp_path / "bare", "Model")
    with pytest.warns(UserWarning, match="discriminator_predictions.dense.weight"):
        head = fastbert.ElectraForPreTraining.from_pretrained(tmp_path / "bare")
    bare = fastbert.ElectraModel.from_pretrained(tmp_path / "bare", strict=True)
    torch.testing.assert_close(head.electra.embeddings_project.weight, bare.embeddings_project.weight,
                               atol=0, rtol=0)
    _pair(tmp_path / "head", "ForPreTraining")
    with pytest.warns(UserWarning, match="discriminator_predictions"):
        fastbert.ElectraModel.from_pretrained(tmp_path / "head")


# ------------------------------------------------------------------------------------------------ other paths
def test_bucketed_runner_gets_the_projection(tmp_path):
    """The CUDA-graph runner's packed body (run eagerly on CPU) is ELECTRA's forward_packed, projection included."""
    cfg, hf, fb = _pair(tmp_path, "Model")
    runner = CudaGraphRunner(fb, enabled=True)
    for mode in ("random", "holes"):
        ids, types, mask = _batch(cfg, mode, seed=11)
        a, b = _run(hf, runner, ids, attention_mask=mask, token_type_ids=types)
        assert b.pooler_output is None
        err = (a.last_hidden_state - b.last_hidden_state)[mask.bool()].abs().max().item()
        assert err <= ATOL


def test_sentence_encoder_gets_the_projection(minilm_dir):
    """SentenceEncoder's packed path over an ELECTRA model: mean pooling of transformers' output."""
    from transformers import BertTokenizerFast

    from fastbert.encoder import SentenceEncoder

    cfg = _hf_config("narrow", vocab_size=30522, max_position_embeddings=64)
    torch.manual_seed(12)
    hf = transformers.ElectraModel(cfg).eval()
    encoder = SentenceEncoder(fastbert.from_transformers(hf), BertTokenizerFast.from_pretrained(str(minilm_dir)))
    texts = ["a short one", "ELECTRA projects its embeddings before the first layer.", "x"]
    got = torch.as_tensor(encoder.encode(texts))
    batch = encoder.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        h = hf(**batch).last_hidden_state
    m = batch["attention_mask"][..., None].float()
    want = (h * m).sum(1) / m.sum(1)
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_cross_encoder_gets_the_projection_and_the_head(minilm_dir):
    """CrossEncoder's packed pairs over ELECTRA: its positions, the projection, then the GELU head's classify."""
    from transformers import BertTokenizerFast

    from fastbert.cross_encoder import CrossEncoder

    cfg = _hf_config("narrow", vocab_size=30522, max_position_embeddings=64)
    torch.manual_seed(13)
    hf = transformers.ElectraForSequenceClassification(cfg).eval()
    tokenizer = BertTokenizerFast.from_pretrained(str(minilm_dir))
    pairs = [("a query", "a longer document about ELECTRA"), ("x", "y")]
    got = torch.as_tensor(CrossEncoder(fastbert.from_transformers(hf), tokenizer).predict(pairs))
    batch = tokenizer([p[0] for p in pairs], [p[1] for p in pairs], padding=True, return_tensors="pt")
    with torch.no_grad():
        want = hf(**batch).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


# ------------------------------------------------------------------------------------------------ configs
def test_config_keys_defaults_and_round_trip(tmp_path):
    """Every transformers ElectraConfig key: the same defaults, and non-default values survive fastbert's
    to_dict / save_pretrained into transformers and back."""
    keys = sorted(transformers.ElectraConfig.__annotations__)
    ours, theirs = fastbert.ElectraConfig().to_dict(), transformers.ElectraConfig().to_dict()
    assert {k: ours[k] for k in keys} == {k: theirs[k] for k in keys}
    values = dict(
        vocab_size=77, embedding_size=24, hidden_size=40, num_hidden_layers=3, num_attention_heads=5,
        intermediate_size=50, hidden_act="gelu_new", hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.3,
        max_position_embeddings=33, type_vocab_size=3, initializer_range=0.05, layer_norm_eps=1e-6,
        summary_type="mean", summary_use_proj=False, summary_activation="tanh", summary_last_dropout=0.25,
        pad_token_id=2, use_cache=False, classifier_dropout=0.15, is_decoder=False, add_cross_attention=False,
        bos_token_id=4, eos_token_id=5, tie_word_embeddings=False,
    )
    assert sorted(values) == keys
    for k in keys:
        assert values[k] != theirs[k] or k in ("is_decoder", "add_cross_attention"), k
    config = fastbert.ElectraConfig(**values, summary_first_dropout=0.05)
    assert config.embedding_dim == 24 and config.to_dict()["summary_first_dropout"] == 0.05
    config.embedding_size = 28  # attributes, not a frozen copy
    values["embedding_size"] = 28
    config.save_pretrained(tmp_path)
    hf = transformers.AutoConfig.from_pretrained(tmp_path)
    assert type(hf) is transformers.ElectraConfig
    assert {k: getattr(hf, k) for k in keys} == values
    hf.save_pretrained(tmp_path / "back")
    again = fastbert.AutoConfig.from_pretrained(tmp_path / "back")
    assert type(again) is fastbert.ElectraConfig
    assert {k: getattr(again, k) for k in keys} == values
    assert again.summary_first_dropout == 0.05


@pytest.mark.parametrize("bad,match", [
    (dict(position_embedding_type="relative_key"), "position_embedding_type"),
    (dict(position_embedding_type="relative_key_query"), "position_embedding_type"),
    (dict(is_decoder=True), "is_decoder"),
    (dict(embedding_size=0), "embedding_size"),
    (dict(model_type="bert"), "'bert'"),
])
def test_unsupported_configs_are_clear_errors(tmp_path, bad, match):
    _pair(tmp_path, "Model")
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**data, **bad}))
    with pytest.raises(ConfigError, match=match):
        fastbert.ElectraModel.from_pretrained(tmp_path)
    if "model_type" not in bad:
        with pytest.raises(ConfigError, match=match):
            fastbert.AutoModelForMaskedLM.from_pretrained(tmp_path)


def test_wrong_family_and_causal_lm_are_clear_errors(tmp_path):
    _pair(tmp_path, "Model")
    with pytest.raises(ConfigError, match="'electra'"):
        fastbert.BertModel.from_pretrained(tmp_path)
    with pytest.raises(TypeError, match="ElectraConfig"):
        fastbert.ElectraModel(fastbert.BertConfig())
    with pytest.raises(TypeError, match="cannot convert ElectraForCausalLM"):
        fastbert.from_transformers(transformers.ElectraForCausalLM(_hf_config()))
    with pytest.raises(ValueError, match="no pooler"):
        fastbert.ElectraModel(fastbert.ElectraConfig(), add_pooling_layer=True)
