"""What fastbert's two tokenizers share, in pure Python: the output dict, input batching and argument checks,
transformers' cleanup of decoded text, and the test of whether a WordPiece tokenizer.json is BERT's pipeline.

fastbert.BertTokenizer (tokenizer.py, the C++ extension) and TokenizersTokenizer (hf_tokenizer.py, the
`tokenizers` library) both import from here; nothing here imports the compiled extension, so the
tokenizers-backed class works without it. The names are also importable from fastbert.tokenizer.
"""

from __future__ import annotations

import numpy as np

VERY_LARGE_INTEGER = int(1e30)  # transformers' "no model_max_length" marker
_RETURN_TENSORS = (None, "np", "pt")

# transformers' `clean_up_tokenization` replacements; the `tokenizers` WordPiece decoder also turns " do not"
# into " don't" (after " n't" and " 'm", before " 's").
_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))
_WORDPIECE_CLEANUP = _CLEANUP[:7] + ((" do not", " don't"),) + _CLEANUP[7:]


def _replace_all(text: str, pairs) -> str:
    for a, b in pairs:
        text = text.replace(a, b)
    return text


def _wordpiece_cleanup(text: str) -> str:
    """The `tokenizers` WordPiece decoder's per-token cleanup."""
    return _replace_all(text, _WORDPIECE_CLEANUP)


def clean_up_tokenization(text: str) -> str:
    """transformers' `clean_up_tokenization` (applied to the whole text when clean_up_tokenization_spaces)."""
    return _replace_all(text, _CLEANUP)


class BatchEncoding(dict):
    """The encoder's output: a dict (like transformers' BatchEncoding) whose keys also read as attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to(self, device):
        return BatchEncoding({k: v.to(device) if hasattr(v, "to") else v for k, v in self.items()})


# ---- inputs and arguments ------------------------------------------------------------------------------------
def _check_text(t, what):
    if t is None:
        raise ValueError(f"{what} is None: pass a str or a list of str")
    if not isinstance(t, str):
        raise TypeError(f"{what} must be a str, got {type(t).__name__}")
    return t


def _batch_inputs(text, text_pair):
    """(texts, pairs or None, batched) in transformers' conventions."""
    if text is None:
        raise ValueError("text is None: pass a str or a list of str")
    if isinstance(text, str):
        if text_pair is not None and not isinstance(text_pair, str):
            raise TypeError(f"text_pair must be a str when text is a str, got {type(text_pair).__name__}")
        # transformers treats an empty single text_pair as no pair
        return [text], ([text_pair] if text_pair else None), False
    if not isinstance(text, (list, tuple)):
        raise TypeError(f"text must be a str or a list/tuple of str, got {type(text).__name__}")
    texts = list(text)
    if text_pair is None and texts and all(isinstance(t, (list, tuple)) for t in texts):
        # a batch of (text, text_pair) pairs
        for i, t in enumerate(texts):
            if len(t) != 2:
                raise ValueError(f"text item {i} must be a (text, text_pair) pair, got {len(t)} items")
        return [t[0] for t in texts], [t[1] for t in texts], True
    # Each item is checked to be a str by the tokenizer (fastbert.BertTokenizer's C++ side: "text item {i}
    # must be a str"), in the same pass that reads it: a Python loop here would cost as much as encoding a
    # short text.
    if text_pair is None:
        return texts, None, True
    if isinstance(text_pair, str) or not isinstance(text_pair, (list, tuple)):
        raise TypeError("text_pair must be a list/tuple of str when text is a list")
    pairs = list(text_pair)
    if len(pairs) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(pairs)} text pairs")
    return texts, pairs, True


def _check_return_tensors(return_tensors):
    if return_tensors not in _RETURN_TENSORS:
        raise ValueError(f"return_tensors must be None, 'np' or 'pt', got {return_tensors!r}")


def _check_call_arguments(return_tensors, max_length, stride, pad_to_multiple_of):
    _check_return_tensors(return_tensors)
    if max_length is not None and (not isinstance(max_length, (int, np.integer)) or max_length < 0):
        raise ValueError(f"max_length must be a non-negative int, got {max_length!r}")
    if not isinstance(stride, (int, np.integer)) or stride < 0:
        raise ValueError(f"stride must be a non-negative int, got {stride!r}")
    if pad_to_multiple_of is not None and (
        not isinstance(pad_to_multiple_of, (int, np.integer)) or pad_to_multiple_of < 0
    ):
        raise ValueError(f"pad_to_multiple_of must be a non-negative int, got {pad_to_multiple_of!r}")


def _as_id_list(ids) -> list[int]:
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    if isinstance(ids, int):
        return [ids]
    return [int(i) for i in ids]


# ---- which WordPiece tokenizer.json is BERT's ---------------------------------------------------------------
def bert_pipeline_differences(data: dict) -> list[str]:
    """How a WordPiece tokenizer.json departs from what fastbert.BertTokenizer implements (empty: it doesn't)."""
    reasons = []
    normalizer = data.get("normalizer")
    if normalizer is not None and normalizer.get("type") != "BertNormalizer":
        reasons.append(f"normalizer {normalizer.get('type')}")
    elif normalizer is not None and normalizer.get("clean_text") is False:
        reasons.append("BertNormalizer without clean_text")
    pre = data.get("pre_tokenizer")
    if pre is None or pre.get("type") != "BertPreTokenizer":
        reasons.append(f"pre-tokenizer {pre and pre.get('type')}")
    decoder = data.get("decoder")
    if decoder is not None and (decoder.get("type") != "WordPiece" or decoder.get("cleanup") is False):
        reasons.append(f"decoder {decoder.get('type')}")
    post = data.get("post_processor")
    model = data.get("model") or {}
    vocab = model.get("vocab") or {}
    if post is None:
        reasons.append("no post-processor")
    elif post.get("type") == "BertProcessing":
        pass
    elif post.get("type") == "TemplateProcessing":
        single = [_piece(p) for p in post.get("single", [])]
        pair = [_piece(p) for p in post.get("pair", [])]
        special = [s for s, _ in single if s not in ("$A", "$B")]
        if len(single) != 3 or single[1] != ("$A", 0) or single[0][1] != 0 or single[2][1] != 0:
            reasons.append("a template other than [CLS] $A [SEP]")
        elif pair != [single[0], ("$A", 0), single[2], ("$B", 1), (single[2][0], 1)]:
            reasons.append("a pair template other than [CLS] $A [SEP] $B [SEP]")
        else:
            ids = post.get("special_tokens") or {}
            for tok in special:
                if (ids.get(tok) or {}).get("ids") != [vocab.get(tok)]:
                    reasons.append(f"template token {tok} with an id other than its vocab id")
    else:
        reasons.append(f"post-processor {post.get('type')}")
    for tok in data.get("added_tokens") or []:
        if not tok.get("special"):
            reasons.append(f"non-special added token {tok.get('content')!r}")
            break
        if tok.get("content") not in vocab:
            reasons.append(f"added token {tok.get('content')!r} outside the WordPiece vocab")
            break
    return reasons


def _piece(p) -> tuple[str, int]:
    if "SpecialToken" in p:
        return p["SpecialToken"]["id"], p["SpecialToken"].get("type_id", 0)
    return "$" + p["Sequence"]["id"], p["Sequence"].get("type_id", 0)
