"""SentenceEncoder and CrossEncoder on every family fastbert runs, against sentence-transformers (the installed
version) on checkpoints it saves itself: random-weight models of each family (so the family's position rule,
embeddings and head are what is compared), the bundled WordPiece tokenizer, real texts.

Bounds: the embeddings' min cosine over the texts >= 0.99999 (the sentence-transformers issue's bound) and
max abs error <= 1e-4 on embeddings and cross-encoder scores (fp32, as the parity tests); the models are
random, so their outputs are spread out and a wrong position or a missing projection moves them well past it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fastbert import bench

st = pytest.importorskip("sentence_transformers")
transformers = pytest.importorskip("transformers")
from sentence_transformers.sentence_transformer import modules as models  # noqa: E402

import fastbert  # noqa: E402

SMALL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
# model_type -> transformers config keys (type_vocab_size 2: the WordPiece tokenizer gives pairs types 0 and 1)
FAMILIES = {
    "bert": dict(SMALL),
    "roberta": dict(SMALL, max_position_embeddings=130, type_vocab_size=2, layer_norm_eps=1e-5),
    "xlm-roberta": dict(SMALL, max_position_embeddings=132, type_vocab_size=2, pad_token_id=3),
    "distilbert": dict(dim=64, n_layers=2, n_heads=4, hidden_dim=128),
    "electra": dict(SMALL, embedding_size=32),
    "albert": dict(SMALL, embedding_size=32, num_hidden_groups=1, inner_group_num=1),
}
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _save(directory: Path, family: str, task: str) -> Path:
    cfg = transformers.AutoConfig.for_model(family, vocab_size=30522, **FAMILIES[family],
                                            # a wide init spreads the one-logit head's scores out
                                            **({"num_labels": 1, "initializer_range": 0.3} if task == "seq" else {}))
    torch.manual_seed(0)
    auto = transformers.AutoModelForSequenceClassification if task == "seq" else transformers.AutoModel
    auto.from_config(cfg).save_pretrained(directory)
    for name in TOKENIZER_FILES:
        shutil.copy(Path(bench.default_model()) / name, directory)
    return directory


@pytest.fixture(scope="module")
def texts():
    return bench.load_texts()[:600][::5]  # 120 real texts, a few over 128 tokens


@pytest.mark.parametrize("family", list(FAMILIES))
def test_sentence_encoder_matches_sentence_transformers(tmp_path, texts, family):
    """Mean pooling over a random model of the family, max length 128 (long texts truncated), with a prompt."""
    plain = _save(tmp_path / "plain", family, "model")
    hidden = transformers.AutoConfig.from_pretrained(plain).hidden_size
    ref = st.SentenceTransformer(modules=[models.Transformer(str(plain), max_seq_length=128),
                                          models.Pooling(hidden, "mean")], device="cpu",
                                 prompts={"query": "query: "})
    ref.save(str(tmp_path / "st"))
    ours = fastbert.SentenceEncoder.from_pretrained(tmp_path / "st")
    assert type(ours.model).__name__ == transformers.AutoConfig.from_pretrained(plain).architectures[0]
    assert ours.max_seq_length == 128
    for kwargs in ({}, {"prompt_name": "query"}):
        a = ref.encode(texts, batch_size=16, **kwargs)
        b = ours.encode(texts, batch_size=16, **kwargs)
        assert np.abs(a - b).max() <= 1e-4
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert cos.min() >= 0.99999


@pytest.mark.parametrize("family", list(FAMILIES))
def test_cross_encoder_matches_sentence_transformers(tmp_path, texts, family):
    """A one-logit classifier of the family scoring real pairs (token types from the pair), and rank()."""
    plain = _save(tmp_path / "plain", family, "seq")
    ref = st.CrossEncoder(str(plain), device="cpu", max_length=128)
    ours = fastbert.CrossEncoder.from_pretrained(plain, max_length=128)
    assert type(ours.model).__name__.endswith("ForSequenceClassification")
    pairs = [(texts[i], texts[-1 - i]) for i in range(40)]
    a = ref.predict(pairs, batch_size=8)
    b = ours.predict(pairs, batch_size=8)
    assert a.std() > 1e-3  # spread-out scores: the comparison means something
    assert np.abs(a - b).max() <= 1e-4
    ranked_a = ref.rank(texts[0], texts[1:30])
    ranked_b = ours.rank(texts[0], texts[1:30])
    assert [r["corpus_id"] for r in ranked_a[:5]] == [r["corpus_id"] for r in ranked_b[:5]]


@pytest.fixture(scope="module")
def own_tokenizers(tmp_path_factory):
    """A byte-level BPE (RoBERTa's kind) and a Unigram (XLM-R's kind) tokenizer trained here on the real
    multilingual corpus of tests/data/tokenizer, wrapped and saved by transformers: family -> directory."""
    import json

    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers import models as tok_models

    corpus = (Path(__file__).resolve().parents[1] / "data" / "tokenizer" / "corpus.txt").read_text("utf-8")
    lines = [line for line in corpus.splitlines() if line.strip()]
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = Tokenizer(tok_models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=1200, special_tokens=specials, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    uni = Tokenizer(tok_models.Unigram())
    uni.pre_tokenizer = pre_tokenizers.Metaspace()
    uni.decoder = decoders.Metaspace()
    uni.train_from_iterator([t for t in lines if all(ord(c) < 0x800 for c in t)], trainers.UnigramTrainer(
        vocab_size=1200, special_tokens=specials, unk_token="<unk>", show_progress=False))
    pieces = [tuple(p) for p in json.loads(uni.to_str())["model"]["vocab"]]
    root = tmp_path_factory.mktemp("own-tok")
    made = {"roberta": transformers.RobertaTokenizerFast(tokenizer_object=bpe, model_max_length=128),
            "xlm-roberta": transformers.XLMRobertaTokenizerFast(vocab=pieces, model_max_length=128)}
    for family, tok in made.items():
        tok.save_pretrained(root / family)
    return {family: root / family for family in made}, lines


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta"])
def test_bpe_and_unigram_families_end_to_end(tmp_path, own_tokenizers, family):
    """The family's own kind of tokenizer (byte-level BPE for RoBERTa, Unigram for XLM-R) through
    fastbert.AutoTokenizer, its model, pooling and a cross-encoder, against sentence-transformers on the
    corpus's real multilingual lines (pad id 1, positions from 2, no token types)."""
    dirs, lines = own_tokenizers
    sample = lines[::40][:100]
    tok = transformers.AutoTokenizer.from_pretrained(dirs[family])
    size = dict(SMALL, vocab_size=len(tok), max_position_embeddings=130, type_vocab_size=1,
                pad_token_id=tok.pad_token_id)
    for task in ("model", "seq"):
        cfg = transformers.AutoConfig.for_model(family, **size, **({"num_labels": 1, "initializer_range": 0.3}
                                                                    if task == "seq" else {}))
        torch.manual_seed(1)
        auto = transformers.AutoModelForSequenceClassification if task == "seq" else transformers.AutoModel
        directory = tmp_path / task
        auto.from_config(cfg).save_pretrained(directory)
        tok.save_pretrained(directory)
        if task == "model":
            ref = st.SentenceTransformer(modules=[models.Transformer(str(directory)),
                                                  models.Pooling(SMALL["hidden_size"], "mean")], device="cpu")
            ref.save(str(tmp_path / "st"))
            ours = fastbert.SentenceEncoder.from_pretrained(tmp_path / "st")
            assert type(ours.tokenizer).__name__ == "TokenizersTokenizer"
            assert ours.max_seq_length == ref.max_seq_length == 128
            a, b = ref.encode(sample, batch_size=16), ours.encode(sample, batch_size=16)
        else:
            ref = st.CrossEncoder(str(directory), device="cpu")
            ours = fastbert.CrossEncoder.from_pretrained(directory)
            pairs = [(sample[i], sample[-1 - i]) for i in range(30)]
            a, b = ref.predict(pairs, batch_size=8), ours.predict(pairs, batch_size=8)
            assert a.std() > 1e-3
        assert np.abs(a - b).max() <= 1e-4, task
