"""TokenizersTokenizer: the tokenizer of a non-WordPiece checkpoint (RoBERTa's byte-level BPE, the SentencePiece
Unigram of XLM-R / CamemBERT / ALBERT), run by the `tokenizers` library from the checkpoint's tokenizer.json, with
fastbert.BertTokenizer's call API and the results of transformers' fast tokenizer of that checkpoint.

The pipeline (normalizer, pre-tokenizer, model, post-processor, decoder, added tokens) is tokenizer.json's, as
written. tokenizer_config.json (and special_tokens_map.json) give what transformers keeps outside it: the named
special tokens, model_max_length, padding/truncation sides, model_input_names (RoBERTa-style models take no
token_type_ids by default), clean_up_tokenization_spaces. A call resolves `padding=` / `truncation=` as
transformers does (`_get_padding_truncation_strategies`), sets them on the backend as transformers'
`set_truncation_and_padding` does, runs `encode_batch` and lays the encodings out as its `_convert_encoding` does.
"""

from __future__ import annotations

import json
import os
import threading
import warnings

import numpy as np

from .config import read_json
from .tokenizer_common import (
    VERY_LARGE_INTEGER,
    BatchEncoding,
    _as_id_list,
    _batch_inputs,
    _check_call_arguments,
    clean_up_tokenization,
)

# transformers' named special tokens, in its order (PreTrainedTokenizerBase.SPECIAL_TOKENS_ATTRIBUTES)
SPECIAL_TOKENS_ATTRIBUTES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
_ROBERTA_SPECIALS = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", sep_token="</s>", pad_token="<pad>",
                         cls_token="<s>", mask_token="<mask>")
# the defaults transformers' classes give the special tokens a tokenizer_config.json leaves out
_CLASS_SPECIALS = {
    "RobertaTokenizer": _ROBERTA_SPECIALS,
    "XLMRobertaTokenizer": _ROBERTA_SPECIALS,
    "CamembertTokenizer": _ROBERTA_SPECIALS,
    "AlbertTokenizer": dict(bos_token="[CLS]", eos_token="[SEP]", unk_token="<unk>", sep_token="[SEP]",
                            pad_token="<pad>", cls_token="[CLS]", mask_token="[MASK]"),
}
# transformers' tokenizer classes whose model_input_names include token_type_ids; every other class (and
# TokenizersBackend) has ["input_ids", "attention_mask"]
_CLASSES_WITH_TOKEN_TYPES = {
    "BertTokenizer": ["input_ids", "token_type_ids", "attention_mask"],
    "ElectraTokenizer": ["input_ids", "token_type_ids", "attention_mask"],
    "MarkupLMTokenizer": ["input_ids", "token_type_ids", "attention_mask"],
    "DebertaTokenizer": ["input_ids", "attention_mask", "token_type_ids"],
    "DebertaV2Tokenizer": ["input_ids", "attention_mask", "token_type_ids"],
    "LayoutLMv2Tokenizer": ["input_ids", "attention_mask", "token_type_ids"],
}
_DEFAULT_INPUT_NAMES = ["input_ids", "attention_mask"]
_CONFIG_KEYS = ("model_max_length", "padding_side", "truncation_side", "clean_up_tokenization_spaces",
                "model_input_names", "split_special_tokens")
# tokenizer_config.json keys transformers reads that change nothing here (the pipeline is tokenizer.json's)
_INERT_CONFIG_KEYS = {
    "tokenizer_class", "added_tokens_decoder", "add_prefix_space", "trim_offsets", "errors", "do_lower_case",
    "keep_accents", "remove_space", "backend", "name_or_path", "special_tokens_map_file", "tokenizer_file",
    "vocab_file", "merges_file", "legacy", "sp_model_kwargs", "extra_special_tokens", "additional_special_tokens",
    "max_length", "stride", "truncation_strategy", "pad_to_multiple_of", "pad_token_type_id", "processor_class",
    "auto_map", "chat_template", "_commit_hash", "files_loaded", "use_fast",
}
_PADDING = {False: None, None: None, "do_not_pad": None, True: "longest", "longest": "longest",
            "max_length": "max_length"}
_TRUNCATION = {False: None, None: None, "do_not_truncate": None, True: "longest_first",
               "longest_first": "longest_first", "only_first": "only_first", "only_second": "only_second"}
# transformers' __call__ arguments this class does not implement: asking for one raises
_UNSUPPORTED = ("text_target", "text_pair_target", "is_split_into_words", "tokenizer_kwargs")


def _import_tokenizers():
    try:
        import tokenizers
    except ImportError:
        raise ImportError(
            "this checkpoint's tokenizer (not WordPiece) runs on the `tokenizers` library: pip install tokenizers"
        ) from None
    return tokenizers


def _strategy(value, table, name):
    value = getattr(value, "value", value)  # transformers' PaddingStrategy / TruncationStrategy enums
    if (isinstance(value, (bool, str)) or value is None) and value in table:
        return table[value]
    valid = sorted(k for k in table if isinstance(k, str))
    raise ValueError(f"{value!r} is not a valid {name} strategy, please select one of {valid} or True/False")


def _token_str(value):
    """A special token from a config: a str, or a serialized AddedToken (a dict with `content`)."""
    if isinstance(value, dict):
        value = value.get("content")
    if value is not None and not isinstance(value, str):
        raise ValueError(f"a special token must be a str, got {value!r}")
    return value


class TokenizersTokenizer:
    """A `tokenizers.Tokenizer` (a checkpoint's tokenizer.json) with transformers' fast-tokenizer interface.

    Args:
        tokenizer: a `tokenizers.Tokenizer`, or the path of a tokenizer.json.
        bos_token ... mask_token: transformers' named special tokens (None: the model has none).
        additional_special_tokens: more special tokens (transformers' `extra_special_tokens`).
        model_max_length: the length `truncation=True` / `padding="max_length"` use when max_length is None.
        padding_side, truncation_side: "right" or "left".
        model_input_names: the outputs returned by default (token_type_ids only when listed).
        tokenizer_class: transformers' class name (written back by save_pretrained).
    """

    def __init__(
        self,
        tokenizer,
        bos_token: str | None = None,
        eos_token: str | None = None,
        unk_token: str | None = None,
        sep_token: str | None = None,
        pad_token: str | None = None,
        cls_token: str | None = None,
        mask_token: str | None = None,
        additional_special_tokens=(),
        model_max_length: int | None = None,
        padding_side: str = "right",
        truncation_side: str = "right",
        model_input_names=None,
        clean_up_tokenization_spaces: bool = False,
        split_special_tokens: bool = False,
        tokenizer_class: str | None = None,
        init_config: dict | None = None,
    ):
        tokenizers = _import_tokenizers()
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = tokenizers.Tokenizer.from_file(os.fspath(tokenizer))
        if not isinstance(tokenizer, tokenizers.Tokenizer):
            raise TypeError(f"tokenizer must be a tokenizers.Tokenizer or a tokenizer.json path, got {tokenizer!r}")
        self._tokenizer = tokenizer
        self._lock = threading.Lock()  # a call sets truncation/padding on the shared backend, then encodes
        self._specials = dict(bos_token=bos_token, eos_token=eos_token, unk_token=unk_token, sep_token=sep_token,
                              pad_token=pad_token, cls_token=cls_token, mask_token=mask_token)
        for attr, token in self._specials.items():
            _token_str(token)
            if token is not None and tokenizer.token_to_id(token) is None:
                raise ValueError(f"{attr} {token!r} is not in the tokenizer's vocabulary")
        self.additional_special_tokens = [_token_str(t) for t in additional_special_tokens]
        self.model_max_length = VERY_LARGE_INTEGER if model_max_length is None else int(model_max_length)
        self.padding_side = self._side(padding_side, "padding_side")
        self.truncation_side = self._side(truncation_side, "truncation_side")
        self.model_input_names = list(model_input_names or _DEFAULT_INPUT_NAMES)
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.split_special_tokens = bool(split_special_tokens)
        self.tokenizer_class = tokenizer_class
        self._init_config = dict(init_config or {})
        # transformers skips its whitespace clean-up on BPE models (it would corrupt the text)
        self._cleanup_applies = type(tokenizer.model).__name__ != "BPE"

    @staticmethod
    def _side(side, name):
        if side not in ("right", "left"):
            raise ValueError(f"{name} must be 'right' or 'left', got {side!r}")
        return side

    # ---- loading and saving ------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **overrides) -> TokenizersTokenizer:
        """Load a checkpoint directory: tokenizer.json, + tokenizer_config.json / special_tokens_map.json."""
        path = os.fspath(path)
        json_path = os.path.join(path, "tokenizer.json") if os.path.isdir(path) else path
        if not os.path.isfile(json_path):
            raise FileNotFoundError(f"no tokenizer.json at {path}")
        directory = os.path.dirname(json_path)
        tokenizers = _import_tokenizers()
        backend = tokenizers.Tokenizer.from_file(json_path)
        kwargs = config_kwargs(directory)
        # padding / truncation baked into tokenizer.json only give defaults (as in transformers): a call sets its own
        baked_padding, baked_truncation = backend.padding, backend.truncation
        if baked_padding is not None:
            kwargs.setdefault("padding_side", baked_padding["direction"])
            if kwargs.get("pad_token") is None:
                kwargs["pad_token"] = baked_padding["pad_token"]
        if baked_truncation is not None:
            kwargs.setdefault("truncation_side", baked_truncation["direction"])
        kwargs.update(overrides)
        return cls(backend, **kwargs)

    def save_pretrained(self, directory: str | os.PathLike) -> tuple[str, ...]:
        """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json (transformers reads them)."""
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        json_file = os.path.join(directory, "tokenizer.json")
        with self._lock:
            saved = self._tokenizer.to_str()
        data = json.loads(saved)
        data["truncation"] = data["padding"] = None  # per-call settings, as transformers saves them
        with open(json_file, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False)
        special = self.special_tokens_map
        config = dict(self._init_config)
        config.update(
            tokenizer_class=self.tokenizer_class or "TokenizersBackend",
            model_max_length=self.model_max_length,
            padding_side=self.padding_side,
            truncation_side=self.truncation_side,
            clean_up_tokenization_spaces=self.clean_up_tokenization_spaces,
            model_input_names=self.model_input_names,
            **special,
        )
        if self.additional_special_tokens:
            config["extra_special_tokens"] = list(self.additional_special_tokens)
        config_file = os.path.join(directory, "tokenizer_config.json")
        map_file = os.path.join(directory, "special_tokens_map.json")
        with open(config_file, "w", encoding="utf-8") as fh:
            json.dump(config, fh, indent=2, ensure_ascii=False)
        with open(map_file, "w", encoding="utf-8") as fh:
            json.dump(special, fh, indent=2, ensure_ascii=False)
        return json_file, config_file, map_file

    # ---- special tokens and vocabulary -------------------------------------------------------------------
    @property
    def backend_tokenizer(self):
        return self._tokenizer

    def __getattr__(self, name):
        # bos_token, ..., mask_token and their *_id
        specials = self.__dict__.get("_specials")
        if specials is not None:
            if name in specials:
                return specials[name]
            if name.endswith("_token_id") and name[: -len("_id")] in specials:
                token = specials[name[: -len("_id")]]
                return None if token is None else self.convert_tokens_to_ids(token)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name, value):
        specials = self.__dict__.get("_specials")
        if specials is not None and name in specials:
            value = _token_str(value)
            if value is not None and self._tokenizer.token_to_id(value) is None:
                raise ValueError(f"{name} {value!r} is not in the tokenizer's vocabulary")
            specials[name] = value
            return
        super().__setattr__(name, value)

    @property
    def special_tokens_map(self) -> dict[str, str]:
        return {k: v for k, v in self._specials.items() if v is not None}

    @property
    def all_special_tokens(self) -> list[str]:
        return list(dict.fromkeys([*self.special_tokens_map.values(), *self.additional_special_tokens]))

    @property
    def all_special_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.all_special_tokens)

    @property
    def vocab_size(self) -> int:
        """The base vocabulary (without added tokens), as transformers counts it."""
        return self._tokenizer.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        return self._tokenizer.get_vocab(with_added_tokens=True)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return self._tokenizer.num_special_tokens_to_add(pair)

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, str):
            i = self._tokenizer.token_to_id(tokens)
            return self.unk_token_id if i is None else i
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def convert_ids_to_tokens(self, ids, skip_special_tokens: bool = False):
        if isinstance(ids, (int, np.integer)):
            return self._tokenizer.id_to_token(int(ids))
        skip = set(self.all_special_ids) if skip_special_tokens else ()
        return [self._tokenizer.id_to_token(i) for i in _as_id_list(ids) if i not in skip]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        decoder = self._tokenizer.decoder
        return decoder.decode(tokens) if decoder is not None else " ".join(tokens)

    # ---- encoding ----------------------------------------------------------------------------------------
    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False, **kwargs) -> list[str]:
        """The tokens of `text` (and `pair`), without the template's special tokens unless asked."""
        enc = self(text, pair, add_special_tokens=add_special_tokens, _encodings=True, **kwargs)
        return enc[0].tokens

    def encode(self, text, text_pair=None, add_special_tokens: bool = True, **kwargs):
        return self(text, text_pair, add_special_tokens=add_special_tokens, **kwargs)["input_ids"]

    def __call__(
        self,
        text=None,
        text_pair=None,
        add_special_tokens: bool = True,
        padding=False,
        truncation=None,
        max_length: int | None = None,
        stride: int = 0,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        split_special_tokens: bool | None = None,
        verbose: bool = True,
        _encodings: bool = False,
        **kwargs,
    ) -> BatchEncoding:
        for name in _UNSUPPORTED:
            if kwargs.get(name) in (None, False):
                kwargs.pop(name, None)
        if kwargs:
            raise TypeError(f"unsupported argument(s) for {type(self).__name__}: {sorted(kwargs)}")
        texts, pairs, batched = _batch_inputs(text, text_pair)
        _check_call_arguments(return_tensors, max_length, stride, pad_to_multiple_of)
        padding, truncation, max_length = self._strategies(padding, truncation, max_length, pad_to_multiple_of)
        side = self._side(padding_side or self.padding_side, "padding_side")
        inputs = texts if pairs is None else list(zip(texts, pairs))
        split = self.split_special_tokens if split_special_tokens is None else bool(split_special_tokens)
        backend = self._tokenizer
        with self._lock:
            if truncation is None:
                backend.no_truncation()
            else:
                backend.enable_truncation(max_length, stride=int(stride), strategy=truncation,
                                          direction=self.truncation_side)
            if padding is None:
                backend.no_padding()
            else:
                backend.enable_padding(
                    direction=side, pad_id=self.pad_token_id, pad_type_id=0, pad_token=self.pad_token,
                    length=max_length if padding == "max_length" else None,
                    pad_to_multiple_of=pad_to_multiple_of or None,
                )
            backend.encode_special_tokens = split
            try:
                encodings = backend.encode_batch(inputs, add_special_tokens=bool(add_special_tokens))
            except BaseException as e:
                if type(e).__name__ != "PanicException":  # pyo3's panic: a BaseException, not an Exception
                    raise
                raise ValueError(f"the tokenizers library could not encode this batch: {e}") from None
        if _encodings:
            return encodings
        want_types = ("token_type_ids" in self.model_input_names if return_token_type_ids is None
                      else bool(return_token_type_ids))
        want_mask = ("attention_mask" in self.model_input_names if return_attention_mask is None
                     else bool(return_attention_mask))
        return _layout(encodings, return_tensors, want_types, want_mask, return_overflowing_tokens,
                       return_special_tokens_mask, return_offsets_mapping, return_length,
                       unbatch=not batched and return_tensors is None and not return_overflowing_tokens)

    def _strategies(self, padding, truncation, max_length, pad_to_multiple_of):
        """(padding, truncation, max_length) as transformers' `_get_padding_truncation_strategies` resolves them."""
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"  # transformers: max_length alone means longest_first
        padding = _strategy(padding, _PADDING, "padding")
        truncation = _strategy(truncation, _TRUNCATION, "truncation")
        if max_length is None:
            known = self.model_max_length < VERY_LARGE_INTEGER
            if padding == "max_length":
                if known:
                    max_length = self.model_max_length
                else:
                    warnings.warn("padding='max_length' without max_length and no model_max_length: not padding",
                                  stacklevel=3)
                    padding = None
            if truncation is not None:
                if known:
                    max_length = self.model_max_length
                else:
                    truncation = None  # nothing to truncate to
        if padding is not None and self.pad_token is None:
            raise ValueError("asking to pad but the tokenizer has no pad_token")
        if truncation is not None and padding is not None and pad_to_multiple_of and max_length is not None \
                and max_length % pad_to_multiple_of != 0:
            raise ValueError(
                f"Truncation and padding are both activated but truncation length ({max_length}) is not a "
                f"multiple of pad_to_multiple_of ({pad_to_multiple_of})."
            )
        return padding, truncation, max_length

    # ---- decoding ----------------------------------------------------------------------------------------
    def decode(self, token_ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None):
        """Ids back to text by tokenizer.json's decoder; a batch (list of id lists) gives a list of texts."""
        if isinstance(token_ids, dict):
            token_ids = token_ids["input_ids"]
        if hasattr(token_ids, "tolist"):
            token_ids = token_ids.tolist()
        if isinstance(token_ids, (list, tuple)) and token_ids and isinstance(token_ids[0], (list, tuple)):
            return self.batch_decode(token_ids, skip_special_tokens, clean_up_tokenization_spaces)
        text = self._tokenizer.decode(_as_id_list(token_ids), skip_special_tokens=bool(skip_special_tokens))
        return self._cleanup(text, clean_up_tokenization_spaces)

    def batch_decode(self, sequences, skip_special_tokens: bool = False,
                     clean_up_tokenization_spaces: bool | None = None) -> list[str]:
        if hasattr(sequences, "tolist"):
            sequences = sequences.tolist()
        texts = self._tokenizer.decode_batch([_as_id_list(s) for s in sequences],
                                             skip_special_tokens=bool(skip_special_tokens))
        return [self._cleanup(t, clean_up_tokenization_spaces) for t in texts]

    def _cleanup(self, text: str, clean_up_tokenization_spaces) -> str:
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        if clean_up_tokenization_spaces and self._cleanup_applies:
            text = clean_up_tokenization(text)
        return text

    def __repr__(self):
        model = type(self._tokenizer.model).__name__
        return (f"TokenizersTokenizer({model}, tokenizer_class={self.tokenizer_class}, vocab_size={self.vocab_size}, "
                f"model_max_length={self.model_max_length}, special_tokens={self.special_tokens_map})")


# ---- helpers ---------------------------------------------------------------------------------------------
def config_kwargs(directory: str) -> dict:
    """TokenizersTokenizer kwargs from tokenizer_config.json and special_tokens_map.json (either may be absent)."""
    config = {}
    config_path = os.path.join(directory, "tokenizer_config.json")
    if os.path.isfile(config_path):
        config = read_json(config_path)
    special_map = {}
    map_path = os.path.join(directory, "special_tokens_map.json")
    if os.path.isfile(map_path):
        special_map = read_json(map_path)
    tokenizer_class = config.get("tokenizer_class")
    if isinstance(tokenizer_class, str):
        tokenizer_class = tokenizer_class.removesuffix("Fast")
    kwargs: dict = {"tokenizer_class": tokenizer_class}
    defaults = _CLASS_SPECIALS.get(tokenizer_class, {})
    for attr in SPECIAL_TOKENS_ATTRIBUTES:
        value = config.get(attr, special_map.get(attr, defaults.get(attr)))
        kwargs[attr] = _token_str(value)
    extra = config.get("extra_special_tokens") or config.get("additional_special_tokens") or \
        special_map.get("additional_special_tokens") or []
    if isinstance(extra, dict):  # named model-specific tokens
        extra = list(extra.values())
    kwargs["additional_special_tokens"] = [_token_str(t) for t in extra]
    for key in _CONFIG_KEYS:
        if config.get(key) is not None:
            kwargs[key] = config[key]
    if "model_input_names" not in kwargs:
        kwargs["model_input_names"] = _CLASSES_WITH_TOKEN_TYPES.get(tokenizer_class, _DEFAULT_INPUT_NAMES)
    kwargs["init_config"] = {k: v for k, v in config.items()
                             if k in _INERT_CONFIG_KEYS and k not in ("added_tokens_decoder", "tokenizer_class")}
    return kwargs


def _layout(encodings, return_tensors, want_types, want_mask, overflowing, special_mask, offsets, length,
            unbatch) -> BatchEncoding:
    """transformers' `_convert_encoding` over a batch: overflowing windows become rows of their own."""
    rows, sample = [], []
    for i, e in enumerate(encodings):
        group = [e, *e.overflowing] if overflowing else [e]
        rows.extend(group)
        sample.extend([i] * len(group))
    out = {"input_ids": [e.ids for e in rows]}
    if want_types:
        out["token_type_ids"] = [e.type_ids for e in rows]
    if want_mask:
        out["attention_mask"] = [e.attention_mask for e in rows]
    if special_mask:
        out["special_tokens_mask"] = [e.special_tokens_mask for e in rows]
    if offsets:
        out["offset_mapping"] = [e.offsets for e in rows]
    if length:
        out["length"] = [len(e.ids) for e in rows]
    if overflowing:
        out["overflow_to_sample_mapping"] = sample
    if return_tensors is not None:
        widths = {len(r) for r in out["input_ids"]}
        if len(widths) > 1:
            raise ValueError(
                f"cannot make {return_tensors!r} tensors of rows of different lengths {sorted(widths)}: pass "
                "padding=True (or 'max_length') with return_tensors"
            )
        arrays = {}
        for k, v in out.items():
            a = np.asarray(v, dtype=np.int64)
            if k == "offset_mapping" and a.size == 0:
                a = a.reshape(len(v), 0, 2)
            elif a.ndim == 1 and k not in ("length", "overflow_to_sample_mapping"):
                a = a.reshape(len(v), 0)  # rows of no tokens
            arrays[k] = a
        if return_tensors == "pt":
            import torch

            arrays = {k: torch.from_numpy(a) for k, a in arrays.items()}
        out = arrays
    elif unbatch:
        out = {k: v[0] if isinstance(v, list) and v and isinstance(v[0], list) else v for k, v in out.items()}
    return BatchEncoding(out)
