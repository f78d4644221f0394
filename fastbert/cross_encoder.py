"""``CrossEncoder``: sentence-transformers' cross-encoder (reranker) on fastbert's padding-free BERT.

``CrossEncoder.from_pretrained(dir).predict(pairs)`` scores ``(query, document)`` pairs as
sentence-transformers' ``CrossEncoder.predict`` does: each pair is tokenized as one ``[CLS] a [SEP] b [SEP]``
sequence (token types 0 then 1, longest-first truncation to the maximum length), run through
``BertForSequenceClassification`` (pooler on ``[CLS]``, then the classifier), and the logits go through the
activation: the checkpoint's (``config_sentence_transformers.json``'s ``activation_fn``, or ``config.json``'s
``sentence_transformers.activation_fn``), else sigmoid for one label and identity for several. ``rank`` sorts
documents by score for one query.

The checkpoint is either a plain transformers ``BertForSequenceClassification`` directory or one that
sentence-transformers saved (``modules.json`` with one Transformer module, task
``sequence-classification``). Pairs are sorted by token count and each batch is packed end to end with no
padding, as ``SentenceEncoder`` does.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fastbert.config import read_json
from fastbert.encoder import (
    activation_from_name,
    as_text_list,
    check_batch_size,
    packed_batches,
    read_st_layout,
    resolve_max_length,
    resolve_prompt,
)
from fastbert.packing import packing_from_lengths
from fastbert.resources import load_tokenizer


class CrossEncoder:
    """A sequence-classification checkpoint of any family fastbert runs (BERT, RoBERTa, DistilBERT, ...)
    scoring text pairs: the drop-in for sentence-transformers' ``CrossEncoder.predict`` and ``rank``."""

    def __init__(self, model, tokenizer, max_length: int | None = None, activation_fn: Callable | None = None,
                 prompts: dict[str, str] | None = None, default_prompt_name: str | None = None):
        if not type(model).__name__.endswith("ForSequenceClassification") or not hasattr(model, "classify"):
            raise TypeError(f"model must be a fastbert *ForSequenceClassification model (BertFor..., RobertaFor..., "
                            f"...), got {type(model).__name__}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        limit = model.config.max_tokens
        self.max_length = min(max_length or limit, limit)
        self.activation_fn = activation_fn if activation_fn is not None else self.default_activation_fn()
        self.prompts = {k: ("" if v is None else v) for k, v in (prompts or {}).items()}
        if default_prompt_name is not None and default_prompt_name not in self.prompts:
            raise ValueError(
                f"default prompt name {default_prompt_name!r} not found in the prompts {list(self.prompts)}"
            )
        self.default_prompt_name = default_prompt_name

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device | None = None,
                        dtype: torch.dtype | None = None, *, max_length: int | None = None,
                        activation_fn: Callable | None = None) -> CrossEncoder:
        """Load a cross-encoder checkpoint dir (plain transformers or saved by sentence-transformers).
        ``max_length`` and ``activation_fn`` override the checkpoint's, as in sentence-transformers."""
        from fastbert.auto import model_class, read_model_type

        directory = Path(path)
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory} is not a checkpoint directory")
        layout = read_st_layout(directory, task="sequence-classification")
        if layout.model_type not in (None, "CrossEncoder"):
            raise NotImplementedError(f"{directory} is a {layout.model_type} checkpoint, not a CrossEncoder one")
        unknown = sorted(set(layout.extra) - {"activation_fn"})
        if unknown:
            raise NotImplementedError(f"{directory}: CrossEncoder settings {unknown} are not supported by fastbert")
        if layout.head or layout.pooling != ("mean",):
            raise NotImplementedError(f"{directory}: a cross-encoder with modules after its Transformer is not "
                                      "supported by fastbert")
        config = read_json(layout.transformer_dir / "config.json")
        archs = config.get("architectures") or []
        if not any(str(a).endswith("ForSequenceClassification") for a in archs):
            raise NotImplementedError(
                f"{layout.transformer_dir} is not a sequence-classification checkpoint (architectures {archs}): "
                "its classifier would be random"
            )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cls_ = model_class(read_model_type(layout.transformer_dir), "ForSequenceClassification")
            model = cls_.from_pretrained(layout.transformer_dir, dtype=dtype, device=device)
        for w in caught:
            if "classifier" in str(w.message):
                raise ValueError(f"{layout.transformer_dir} has no classifier weights: {w.message}")
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        model.requires_grad_(False)
        tokenizer = load_tokenizer(layout.transformer_dir)
        if max_length is None:
            max_length = resolve_max_length(layout, tokenizer.model_max_length,
                                            model.config.max_tokens)
        if activation_fn is None:
            name = layout.extra.get("activation_fn")
            if name is None:
                st = config.get("sentence_transformers") or {}
                name = st.get("activation_fn") or config.get("sbert_ce_default_activation_function")
            activation_fn = activation_from_name(name) if name is not None else None
        return cls(model, tokenizer, max_length, activation_fn, layout.prompts, layout.default_prompt_name)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def num_labels(self) -> int:
        return self.model.config.num_labels

    def default_activation_fn(self) -> Callable:
        """Sigmoid for one label, identity for several (sentence-transformers' default)."""
        return torch.nn.Sigmoid() if self.num_labels == 1 else torch.nn.Identity()

    def predict(
        self,
        inputs,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Callable | None = None,
        apply_softmax: bool | None = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
    ):
        """Scores of ``(text, text)`` pairs in their order: ``(n,)`` for one label, ``(n, labels)`` otherwise
        (float32 numpy; one tensor with ``convert_to_tensor``; a list of tensors with
        ``convert_to_numpy=False``); one pair gives one score. ``activation_fn`` replaces the model's;
        ``apply_softmax`` normalises several labels' scores."""
        batch_size = check_batch_size(batch_size)
        pairs, single = _as_pairs(inputs)
        if activation_fn is None:
            activation_fn = self.activation_fn
        if not callable(activation_fn):
            raise TypeError(f"activation_fn must be callable, got {type(activation_fn).__name__}")
        prompt = resolve_prompt(self.prompts, self.default_prompt_name, prompt, prompt_name)
        firsts = [(prompt or "") + a for a, _ in pairs]
        seconds = [b for _, b in pairs]
        labels = self.num_labels
        out = torch.empty(len(pairs), labels, dtype=torch.float32)
        bar = None
        if show_progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(pairs), desc="predict", unit="pair", file=sys.stderr)
        with torch.inference_mode():
            for idx, ids, types, lengths in packed_batches(self.tokenizer, firsts, batch_size, self.max_length,
                                                           self.model.config.vocab_size, pairs=seconds):
                out[torch.tensor(idx)] = self._logits(ids, types, lengths).float().cpu()
                if bar is not None:
                    bar.update(len(idx))
        if bar is not None:
            bar.close()
        with torch.inference_mode():
            scores = activation_fn(out)
        scores = torch.as_tensor(scores)
        if labels == 1 and scores.ndim > 1:
            scores = scores.squeeze(-1)
        if apply_softmax and scores.ndim > 1:
            scores = torch.softmax(scores, dim=1)
        if convert_to_tensor:
            result = scores.to(self.device)
        elif convert_to_numpy:
            result = scores.float().numpy()
        else:
            result = list(scores.to(self.device))
        return result[0] if single else result

    def rank(
        self,
        query: str,
        documents: list[str],
        top_k: int | None = None,
        return_documents: bool = False,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Callable | None = None,
    ) -> list[dict]:
        """``documents`` sorted by their score against ``query``, best first: dicts with ``corpus_id``,
        ``score`` (and ``text`` with ``return_documents``); the first ``top_k`` only, if given."""
        if self.num_labels != 1:
            raise ValueError("rank() needs a cross-encoder with one label; use predict() with pairs")
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        docs, _ = as_text_list(documents, "documents")
        if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool)):
            raise TypeError(f"top_k must be an int or None, got {top_k!r}")
        scores = self.predict([(query, d) for d in docs], prompt_name, prompt, batch_size, show_progress_bar,
                              activation_fn, convert_to_tensor=True).tolist() if docs else []
        results = [{"corpus_id": i, "score": s} | ({"text": docs[i]} if return_documents else {})
                   for i, s in enumerate(scores)]
        results.sort(key=lambda r: r["score"], reverse=True)
        return results[:top_k]

    def _logits(self, ids: torch.Tensor, types: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """Classifier logits of pairs whose tokens lie end to end: the packed forward (positions by the
        model's own rule), then the model's head on each sequence's first token."""
        packing = packing_from_lengths(lengths, self.device)
        encoder = self.model._bert()
        ids = ids.to(self.device)
        positions = encoder.packed_position_ids(packing, ids)
        x = encoder.forward_packed(packing, ids, positions, types.to(self.device))[-1]
        first = packing.cu_seqlens[:-1].to(torch.int64)
        return self.model.classify(x.index_select(0, first))


def _as_pairs(inputs) -> tuple[list[tuple[str, str]], bool]:
    """``(list of (a, b) pairs, single)``: one pair or a list of pairs, as sentence-transformers takes them."""
    if isinstance(inputs, np.ndarray):
        inputs = inputs.tolist()
    if isinstance(inputs, (list, tuple)) and len(inputs) == 2 and all(isinstance(x, str) for x in inputs):
        items, single = [inputs], True
    else:
        items, single = as_text_list(inputs, "inputs")
    pairs = []
    for i, p in enumerate(items):
        if not isinstance(p, (list, tuple)) or len(p) != 2 or not all(isinstance(x, str) for x in p):
            raise TypeError(f"inputs item {i} must be a (str, str) pair, got {p!r}")
        pairs.append((p[0], p[1]))
    return pairs, single
