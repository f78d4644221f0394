"""Checkpoint loading (legacy names, prefixes, shards, key/shape checks) and clear errors for bad input."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

import fastbert
from fastbert import BertConfig, ConfigError, WeightsError
from fastbert.weights import fastbert_to_hf, hf_to_fastbert


def _tiny_hf(name="BertModel", **kw):
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=48, max_position_embeddings=16, **kw)
    torch.manual_seed(0)
    return getattr(transformers, name)(cfg).eval()


@pytest.fixture
def tiny_dir(tmp_path):
    _tiny_hf().save_pretrained(tmp_path / "m")
    return tmp_path / "m"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return fastbert.from_transformers(_tiny_hf())


# ------------------------------------------------------------------------------------------------ config
def test_config_round_trip_keeps_unknown_keys(tmp_path):
    cfg = BertConfig(hidden_size=64, num_attention_heads=4, my_custom_key={"a": 1}, num_labels=5)
    cfg.save_pretrained(tmp_path)
    again = BertConfig.from_pretrained(tmp_path)
    assert again.my_custom_key == {"a": 1} and again.num_labels == 5 and again.hidden_size == 64
    assert again == cfg
    hf = transformers.BertConfig.from_pretrained(tmp_path)  # transformers reads what fastbert writes
    assert hf.hidden_size == 64 and hf.num_labels == 5


def test_config_reads_transformers_config(minilm_dir):
    cfg = BertConfig.from_pretrained(minilm_dir)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.layer_norm_eps) == (384, 6, 1e-12)
    assert cfg.architectures == ["BertModel"]


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(hidden_size=30, num_attention_heads=4), "not a multiple"),
        (dict(hidden_act="mish"), "hidden_act"),
        (dict(position_embedding_type="relative_key"), "position_embedding_type"),
        (dict(is_decoder=True), "encoders"),
        (dict(vocab_size=0), "vocab_size"),
        (dict(hidden_dropout_prob=1.5), "probability"),
        (dict(layer_norm_eps=-1), "layer_norm_eps"),
    ],
)
def test_config_rejects_invalid_values(bad, match):
    with pytest.raises(ConfigError, match=match):
        BertConfig(**bad)


def test_unreadable_or_corrupt_config(tmp_path):
    with pytest.raises(ConfigError, match="no config file"):
        BertConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        BertConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ConfigError, match="gpt2"):
        BertConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        BertConfig.from_pretrained(tmp_path)


# ------------------------------------------------------------------------------------------------ weights
def test_legacy_gamma_beta_names_and_no_prefix_into_head(tmp_path, tiny_dir):
    """A TF-era bare checkpoint (LayerNorm.gamma/beta, no 'bert.' prefix) loads into a head model; the head's
    own weights are reported as missing (and keep their initialisation), like transformers does."""
    state = load_file(str(tiny_dir / "model.safetensors"))
    legacy = {}
    for k, v in state.items():
        k = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        legacy[k] = v
    legacy["embeddings.position_ids"] = torch.arange(16)[None]  # old buffer, ignored
    out = tmp_path / "legacy"
    out.mkdir()
    shutil.copy(tiny_dir / "config.json", out / "config.json")
    save_file(legacy, str(out / "model.safetensors"))
    with pytest.warns(UserWarning, match="classifier"):
        fb = fastbert.BertForSequenceClassification.from_pretrained(out)
    ref = fastbert.BertModel.from_pretrained(tiny_dir)
    for k, v in ref.state_dict().items():
        assert torch.equal(fb.state_dict()["bert." + k], v), k
    with pytest.raises(WeightsError, match="classifier"):
        fastbert.BertForSequenceClassification.from_pretrained(out, strict=True)


def test_head_checkpoint_into_bare_model_reports_unused(tmp_path):
    _tiny_hf("BertForPreTraining").save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="cls.predictions"):
        fastbert.BertModel.from_pretrained(tmp_path)


def test_sharded_safetensors(tmp_path):
    hf = _tiny_hf("BertForMaskedLM")
    hf.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    fb = fastbert.BertForMaskedLM.from_pretrained(tmp_path, strict=True)
    ids = torch.randint(0, 50, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(fb(ids).logits, hf(ids).logits, atol=1e-4, rtol=0)


def test_remap_is_invertible(tiny_dir):
    state = load_file(str(tiny_dir / "model.safetensors"))
    ours = hf_to_fastbert(state, "", tied_decoder=True)
    assert "encoder.layer.0.attention.self.qkv.weight" in ours
    assert not any(".query." in k for k in ours)
    back = fastbert_to_hf(ours)
    assert set(back) == set(state)
    for k in state:
        assert torch.equal(back[k], state[k]), k


def test_missing_encoder_weight_is_named(tmp_path, tiny_dir):
    state = load_file(str(tiny_dir / "model.safetensors"))
    del state["encoder.layer.0.output.dense.weight"]
    save_file(state, str(tiny_dir / "model.safetensors"))
    with pytest.raises(WeightsError, match=r"encoder\.layer\.0\.output\.dense\.weight"):
        fastbert.BertModel.from_pretrained(tiny_dir)


def test_config_that_does_not_match_the_weights(tiny_dir):
    cfg = json.loads((tiny_dir / "config.json").read_text())
    cfg["intermediate_size"] = 64
    (tiny_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match="intermediate.dense.weight"):
        fastbert.BertModel.from_pretrained(tiny_dir)


def test_no_weights_and_corrupt_weights(tmp_path, tiny_dir):
    (tmp_path / "config.json").write_text((tiny_dir / "config.json").read_text())
    with pytest.raises(WeightsError, match="no weights"):
        fastbert.BertModel.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        fastbert.BertModel.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError):
        fastbert.BertModel.from_pretrained(tmp_path / "nope")


class _Evil:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path(__import__('os').environ['EVIL_MARK']).write_text('ran')",))


def test_pickled_code_in_a_bin_checkpoint_never_runs(tmp_path, tiny_dir, monkeypatch):
    mark = tmp_path / "mark"
    monkeypatch.setenv("EVIL_MARK", str(mark))
    d = tmp_path / "evil"
    d.mkdir()
    shutil.copy(tiny_dir / "config.json", d / "config.json")
    with open(d / "pytorch_model.bin", "wb") as f:
        pickle.dump({"embeddings.word_embeddings.weight": _Evil()}, f)
    with pytest.raises(WeightsError, match="weights_only"):
        fastbert.BertModel.from_pretrained(d)
    assert not mark.exists()


def test_nonfinite_weights_are_rejected(tiny_dir):
    state = load_file(str(tiny_dir / "model.safetensors"))
    state["pooler.dense.bias"][0] = float("nan")
    save_file(state, str(tiny_dir / "model.safetensors"))
    with pytest.raises(WeightsError, match="NaN"):
        fastbert.BertModel.from_pretrained(tiny_dir)


# ------------------------------------------------------------------------------------------------ inputs
def test_bad_inputs_raise_clear_errors(model):
    ids = torch.randint(0, 50, (2, 6))
    cases = [
        (dict(input_ids=torch.tensor([[1, 2, 50]])), ValueError, "outside the vocabulary"),
        (dict(input_ids=torch.tensor([[1, -3, 4]])), ValueError, "outside the vocabulary"),
        (dict(input_ids=ids.float()), TypeError, "integers"),
        (dict(input_ids=ids.tolist()), TypeError, "torch.Tensor"),
        (dict(input_ids=ids[0]), ValueError, r"\(batch, seq_len\)"),
        (dict(input_ids=ids, token_type_ids=torch.full((2, 6), 2)), ValueError, "type_vocab_size"),
        (dict(input_ids=torch.randint(0, 50, (1, 17))), ValueError, "max_position_embeddings"),
        (dict(input_ids=ids, position_ids=torch.full((2, 6), 16)), ValueError, "max_position_embeddings"),
        (dict(input_ids=ids, attention_mask=torch.ones(2, 5)), ValueError, "shape"),
        (dict(input_ids=ids, attention_mask=torch.full((2, 6), 2)), ValueError, "only 0"),
        (dict(input_ids=ids, attention_mask=torch.tensor([[1] * 6, [0] * 6])), ValueError, "no real token"),
        (dict(input_ids=torch.zeros(0, 4, dtype=torch.long)), ValueError, "empty"),
        (dict(), ValueError, "exactly one"),
        (dict(input_ids=ids, inputs_embeds=torch.randn(2, 6, 32)), ValueError, "exactly one"),
        (dict(inputs_embeds=torch.randn(2, 6, 31)), ValueError, "inputs_embeds"),
        (dict(input_ids=ids, output_attentions=True), NotImplementedError, "attention probabilities"),
    ]
    for kwargs, exc, match in cases:
        with pytest.raises(exc, match=match):
            model(**kwargs)


def test_all_valid_edge_inputs_give_finite_outputs(model):
    """Length-1 sequences, a batch of one, every token id at the vocabulary's edges."""
    ids = torch.tensor([[0], [49]])
    with torch.no_grad():
        out = model(ids)
        assert torch.isfinite(out.last_hidden_state).all() and torch.isfinite(out.pooler_output).all()
        ids = torch.tensor([[49] * 16])
        assert torch.isfinite(model(ids, attention_mask=torch.ones_like(ids)).last_hidden_state).all()
