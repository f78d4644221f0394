"""fastbert.BertTokenizer: a drop-in for transformers' BERT tokenizer, backed by C++ `fastbert._tokenizer`.

The C++ side does the work (normalize, pre-tokenize, WordPiece, truncation, template, padding) on several
threads with the GIL released and writes numpy buffers or Python lists directly (the row lists, ints only,
are not tracked by the cyclic GC: a cycle built through one of them is never freed). This file maps
transformers' call signature onto it: argument resolution follows `PreTrainedTokenizerBase`
(`_get_padding_truncation_strategies`), output layout follows its fast tokenizers. A call checks its
arguments, reads `padding=` / `truncation=` as Padding / Truncation (enums of the C++ side), resolves the
lengths into an EncodeOptions, runs the C++ batch and wraps its outputs. The EncodeOptions are kept per
combination of arguments, so that a call with the same arguments as an earlier one skips all but the
return_tensors check: a call of a few short texts takes a few microseconds, and resolving the options from
scratch took a third of that. What the tokenizers-backed class (hf_tokenizer.py) shares with this one lives in
tokenizer_common.py, which does not need the extension.
"""

from __future__ import annotations

import gc
import json
import os
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from . import _tokenizer
from ._tokenizer import EncodeOptions, Padding, Truncation
from .config import read_json
from .tokenizer_common import (  # shared with hf_tokenizer.py; public here too
    VERY_LARGE_INTEGER,
    BatchEncoding,
    _as_id_list,
    _batch_inputs,
    _check_call_arguments,
    _check_return_tensors,
    _check_text,
    _wordpiece_cleanup,
    bert_pipeline_differences,
    clean_up_tokenization,
)

_SPECIAL_ATTRS = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
# transformers' spellings of `padding=` / `truncation=` (the strings are also its PaddingStrategy /
# TruncationStrategy values), and the strategies they mean
_PADDING = {
    False: Padding.DO_NOT_PAD,
    None: Padding.DO_NOT_PAD,
    "do_not_pad": Padding.DO_NOT_PAD,
    True: Padding.LONGEST,
    "longest": Padding.LONGEST,
    "max_length": Padding.MAX_LENGTH,
}
_TRUNCATION = {
    False: Truncation.DO_NOT_TRUNCATE,
    None: Truncation.DO_NOT_TRUNCATE,
    "do_not_truncate": Truncation.DO_NOT_TRUNCATE,
    True: Truncation.LONGEST_FIRST,
    "longest_first": Truncation.LONGEST_FIRST,
    "only_first": Truncation.ONLY_FIRST,
    "only_second": Truncation.ONLY_SECOND,
}
_IGNORED_KWARGS = {"verbose"}  # transformers' __call__ arguments that change no output (verbose: warnings only)
_WANT_IDS, _WANT_TYPES, _WANT_ATTENTION = _tokenizer.WANT_IDS, _tokenizer.WANT_TYPES, _tokenizer.WANT_ATTENTION
_WANT_SPECIAL, _WANT_OFFSETS = _tokenizer.WANT_SPECIAL, _tokenizer.WANT_OFFSETS
BERT_INPUT_NAMES = ["input_ids", "token_type_ids", "attention_mask"]
# transformers' model_input_names of the WordPiece tokenizer classes (tokenizer_config.json's tokenizer_class,
# without "Fast") whose default is not BERT's: DistilBERT takes no token_type_ids
_CLASS_INPUT_NAMES = {"DistilBertTokenizer": ["input_ids", "attention_mask"]}
_OPTIONS_CACHE_SIZE = 256  # resolved EncodeOptions kept per tokenizer (cleared when full)


def _strategy(value, table, name):
    """The strategy `value` spells in `table` (a bool, None, a string or one of transformers' enums)."""
    value = getattr(value, "value", value)  # transformers' PaddingStrategy / TruncationStrategy enums
    if isinstance(value, (bool, str)) or value is None:
        if value in table:
            return table[value]
    valid = sorted(k for k in table if isinstance(k, str))
    raise ValueError(f"{value!r} is not a valid {name} strategy, please select one of {valid} or True/False")


def load_vocab_file(path: str | os.PathLike) -> list[str]:
    """One token per line, ids by line number (transformers' `load_vocab`)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"vocab file not found: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            tokens = [line.rstrip("\n") for line in fh.readlines()]
    except UnicodeDecodeError as e:
        raise ValueError(f"vocab file {path} is not UTF-8 text: {e}") from None
    if not tokens:
        raise ValueError(f"vocab file {path} is empty")
    return tokens


class BertTokenizer:
    """BERT WordPiece tokenizer with transformers' interface.

    Args:
        vocab_path: a vocab.txt (one token per line). Use `vocab=` to pass the token list directly.
        do_lower_case, strip_accents, tokenize_chinese_chars: the BertNormalizer options (strip_accents=None
            follows do_lower_case).
        model_max_length: the length `truncation=True` / `padding="max_length"` use when max_length is None.
        padding_side, truncation_side: "right" or "left".
        split_special_tokens: tokenize special tokens written in the text as ordinary text (a call's
            split_special_tokens= overrides it).
        num_threads: threads for batches (default: the CPUs this process may run on).
        tokenizer_class: transformers' class of the checkpoint (tokenizer_config.json's; "Fast" dropped), written
            back by save_pretrained; it gives model_input_names its default.
        model_input_names: the outputs a call returns unless told (token_type_ids, attention_mask only when
            listed); default: the class's (DistilBertTokenizer: no token_type_ids), else BERT's.
    """

    def __init__(
        self,
        vocab_path: str | os.PathLike | None = None,
        do_lower_case: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        unk_token: str = "[UNK]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        cls_token: str = "[CLS]",
        mask_token: str = "[MASK]",
        model_max_length: int | None = None,
        padding_side: str = "right",
        truncation_side: str = "right",
        max_input_chars_per_word: int = 100,
        wordpiece_prefix: str = "##",
        clean_up_tokenization_spaces: bool = False,
        additional_special_tokens: Iterable[str] = (),
        num_threads: int | None = None,
        vocab: Sequence[str] | None = None,
        split_special_tokens: bool = False,
        tokenizer_class: str | None = None,
        model_input_names: Sequence[str] | None = None,
    ):
        if vocab is None:
            if vocab_path is None:
                raise ValueError("BertTokenizer needs a vocab_path (vocab.txt) or vocab=[tokens]")
            vocab = load_vocab_file(vocab_path)
        vocab = list(vocab)
        if not vocab:
            raise ValueError("the vocab is empty")
        for i, t in enumerate(vocab):
            if not isinstance(t, str):
                raise TypeError(f"vocab entry {i} must be a str, got {type(t).__name__}")
        self.vocab = {t: i for i, t in enumerate(vocab)}  # duplicates: the last id wins, as in transformers
        self.ids_to_tokens = {i: t for t, i in self.vocab.items()}
        self._vocab_list = vocab
        self.do_lower_case = bool(do_lower_case)
        self.strip_accents = strip_accents
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self.unk_token, self.sep_token, self.pad_token = unk_token, sep_token, pad_token
        self.cls_token, self.mask_token = cls_token, mask_token
        self.additional_special_tokens = list(additional_special_tokens)
        self.model_max_length = VERY_LARGE_INTEGER if model_max_length is None else int(model_max_length)
        self.padding_side = self._side(padding_side, "padding_side")
        self.truncation_side = self._side(truncation_side, "truncation_side")
        self.max_input_chars_per_word = int(max_input_chars_per_word)
        self.wordpiece_prefix = wordpiece_prefix
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        self._options_cache: dict[tuple, EncodeOptions] = {}  # see __call__
        self.split_special_tokens = split_special_tokens
        if tokenizer_class is not None and not isinstance(tokenizer_class, str):
            raise TypeError(f"tokenizer_class must be a str, got {type(tokenizer_class).__name__}")
        self.tokenizer_class = (tokenizer_class or "BertTokenizer").removesuffix("Fast")
        if model_input_names is None:
            model_input_names = _CLASS_INPUT_NAMES.get(self.tokenizer_class, BERT_INPUT_NAMES)
        self.model_input_names = model_input_names
        self.num_threads = int(num_threads) if num_threads else _available_cpus()
        for attr in _SPECIAL_ATTRS:
            token = getattr(self, attr)
            if token not in self.vocab:
                raise ValueError(f"{attr} {token!r} is not in the vocab")
        specials = [getattr(self, a) for a in _SPECIAL_ATTRS] + self.additional_special_tokens
        self.all_special_tokens = list(dict.fromkeys(specials))
        for t in self.all_special_tokens:
            if t not in self.vocab:
                raise ValueError(f"special token {t!r} is not in the vocab")
        self.all_special_ids = [self.vocab[t] for t in self.all_special_tokens]
        lowercase = self.do_lower_case
        strip = lowercase if strip_accents is None else bool(strip_accents)
        self._core = _tokenizer.Tokenizer(
            vocab=vocab,
            unk_id=self.vocab[unk_token],
            cls_id=self.vocab[cls_token],
            sep_id=self.vocab[sep_token],
            pad_id=self.vocab[pad_token],
            specials=[(t, self.vocab[t]) for t in self.all_special_tokens],
            lowercase=lowercase,
            strip_accents=strip,
            handle_chinese_chars=self.tokenize_chinese_chars,
            max_input_chars_per_word=self.max_input_chars_per_word,
            prefix=wordpiece_prefix,
        )

    @property
    def model_input_names(self) -> list[str]:
        """The outputs a call returns by default (transformers' model_input_names). Assign a new list to change
        them: the defaults are read from it when it is set, not on every call."""
        return self._model_input_names

    @model_input_names.setter
    def model_input_names(self, names):
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise TypeError(f"model_input_names must be a list of str, got {names!r}")
        self._model_input_names = list(names)
        # the WANT_* bits of a call that asks for nothing: input_ids, and type ids / mask as listed
        self._default_want = (
            _WANT_IDS
            | (_WANT_TYPES if "token_type_ids" in self._model_input_names else 0)
            | (_WANT_ATTENTION if "attention_mask" in self._model_input_names else 0)
        )

    @property
    def split_special_tokens(self) -> bool:
        """Whether special tokens written in the text are tokenized as ordinary text (a call's
        split_special_tokens= overrides it)."""
        return self._split_special_tokens

    @split_special_tokens.setter
    def split_special_tokens(self, value):
        self._split_special_tokens = bool(value)
        self._options_cache = {}  # the options of the calls that did not say are resolved anew

    @staticmethod
    def _side(side, name):
        if side not in ("right", "left"):
            raise ValueError(f"{name} must be 'right' or 'left', got {side!r}")
        return side

    # ---- loading and saving ------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **overrides) -> BertTokenizer:
        """Load a directory (tokenizer.json and/or vocab.txt, + tokenizer_config.json) or a vocab file."""
        path = os.fspath(path)
        if os.path.isfile(path):
            return cls(path, **overrides)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"no tokenizer directory or vocab file at {path}")
        kwargs: dict = {}
        config_path = os.path.join(path, "tokenizer_config.json")
        if os.path.isfile(config_path):
            config = read_json(config_path)
            for key in (
                "do_lower_case",
                "strip_accents",
                "tokenize_chinese_chars",
                "model_max_length",
                "padding_side",
                "truncation_side",
                "clean_up_tokenization_spaces",
                "split_special_tokens",
                "tokenizer_class",
                "model_input_names",
                *_SPECIAL_ATTRS,
            ):
                value = config.get(key)
                if isinstance(value, dict):  # serialized AddedToken
                    value = value.get("content")
                if value is not None:
                    kwargs[key] = value
        json_path = os.path.join(path, "tokenizer.json")
        vocab_path = os.path.join(path, "vocab.txt")
        if os.path.isfile(json_path):
            kwargs.update(_from_tokenizer_json(read_json(json_path), json_path))
        elif os.path.isfile(vocab_path):
            kwargs["vocab"] = load_vocab_file(vocab_path)
        else:
            raise FileNotFoundError(f"{path} has neither tokenizer.json nor vocab.txt")
        kwargs.update(overrides)
        return cls(**kwargs)

    def save_pretrained(self, directory: str | os.PathLike) -> tuple[str, ...]:
        """Write vocab.txt, tokenizer_config.json and special_tokens_map.json (transformers reads them)."""
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        vocab_file = os.path.join(directory, "vocab.txt")
        with open(vocab_file, "w", encoding="utf-8") as fh:
            for i in range(len(self._vocab_list)):
                fh.write(self.ids_to_tokens.get(i, self._vocab_list[i]) + "\n")
        special = {a: getattr(self, a) for a in _SPECIAL_ATTRS}
        config = {
            "tokenizer_class": self.tokenizer_class,
            "model_input_names": self.model_input_names,
            "do_lower_case": self.do_lower_case,
            "strip_accents": self.strip_accents,
            "tokenize_chinese_chars": self.tokenize_chinese_chars,
            "model_max_length": self.model_max_length,
            "padding_side": self.padding_side,
            "truncation_side": self.truncation_side,
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
            "split_special_tokens": self.split_special_tokens,
            **special,
        }
        config_file = os.path.join(directory, "tokenizer_config.json")
        map_file = os.path.join(directory, "special_tokens_map.json")
        with open(config_file, "w", encoding="utf-8") as fh:
            json.dump(config, fh, indent=2, ensure_ascii=False)
        with open(map_file, "w", encoding="utf-8") as fh:
            json.dump(special, fh, indent=2, ensure_ascii=False)
        return vocab_file, config_file, map_file

    # ---- vocabulary --------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self._vocab_list)

    def __len__(self) -> int:
        return len(self._vocab_list)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    def __getattr__(self, name):
        # cls_token_id, sep_token_id, pad_token_id, unk_token_id, mask_token_id
        if name.endswith("_token_id") and name[: -len("_id")] in _SPECIAL_ATTRS:
            return self.vocab[getattr(self, name[: -len("_id")])]
        raise AttributeError(name)

    def convert_tokens_to_ids(self, tokens):
        unk = self.vocab[self.unk_token]
        if isinstance(tokens, str):
            return self.vocab.get(tokens, unk)
        return [self.vocab.get(t, unk) for t in tokens]

    def convert_ids_to_tokens(self, ids, skip_special_tokens: bool = False):
        if isinstance(ids, (int, np.integer)):
            return self.ids_to_tokens.get(int(ids))
        special = set(self.all_special_ids) if skip_special_tokens else ()
        ids = _as_id_list(ids)
        return [self.ids_to_tokens[i] for i in ids if i in self.ids_to_tokens and i not in special]

    # ---- encoding ----------------------------------------------------------------------------------------
    def tokenize(self, text: str, pair: str | None = None, split_special_tokens: bool | None = None) -> list[str]:
        """WordPiece tokens of `text` (no [CLS]/[SEP]; special tokens written in the text are kept whole unless
        split_special_tokens, which defaults to the tokenizer's)."""
        split = self.split_special_tokens if split_special_tokens is None else bool(split_special_tokens)
        tokens = self._core.tokenize(_check_text(text, "text"), split)
        if pair is not None:
            tokens += self._core.tokenize(_check_text(pair, "text_pair"), split)
        return tokens

    def encode(self, text, text_pair=None, add_special_tokens: bool = True, **kwargs) -> list[int]:
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
        num_threads: int | None = None,
        **kwargs,
    ) -> BatchEncoding:
        if kwargs:
            _reject_unsupported(kwargs)
        texts, pairs, batched = _batch_inputs(text, text_pair)
        options = self._call_options(
            padding,
            truncation,
            max_length,
            stride,
            pad_to_multiple_of,
            padding_side,
            add_special_tokens,
            return_overflowing_tokens,
            split_special_tokens,
            num_threads,
            return_tensors,
        )
        if (
            return_token_type_ids is None
            and return_attention_mask is None
            and not return_special_tokens_mask
            and not return_offsets_mapping
        ):
            want = self._default_want  # the usual call: no function call for it
        else:
            want = _wanted_outputs(
                return_token_type_ids,
                return_attention_mask,
                return_special_tokens_mask,
                return_offsets_mapping,
                self._default_want,
            )
        out = self._encode_batch(texts, pairs, options, as_numpy=return_tensors is not None, want=want)
        return _batch_encoding(
            out, return_tensors, return_length, unbatch=not batched and not return_overflowing_tokens
        )

    def _call_options(
        self,
        padding,
        truncation,
        max_length,
        stride,
        pad_to_multiple_of,
        padding_side,
        add_special_tokens,
        return_overflowing_tokens,
        split_special_tokens,
        num_threads,
        return_tensors,
    ) -> EncodeOptions:
        """The EncodeOptions of a call's arguments, checked; kept for the next call with the same arguments.

        They depend only on these arguments and on the tokenizer's settings (both in the key), and resolving
        them costs as much as encoding a few short texts. The argument types are part of the key, so that a
        value equal to a valid one (1 == True, 8.0 == 8) is still checked, and rejected, on its own; an
        unhashable argument is never valid and goes to the checks. return_tensors is checked on every call.
        """
        key = (
            padding,
            truncation,
            max_length,
            stride,
            pad_to_multiple_of,
            padding_side,
            add_special_tokens,
            return_overflowing_tokens,
            split_special_tokens,
            num_threads,
            type(padding),
            type(truncation),
            type(max_length),
            type(stride),
            type(pad_to_multiple_of),
            self.padding_side,
            self.truncation_side,
            self.model_max_length,
            self.num_threads,
        )  # (split_special_tokens: its setter clears the cache)
        try:
            options = self._options_cache.get(key)
        except TypeError:
            key = options = None
        if options is not None:
            _check_return_tensors(return_tensors)
            return options
        padding, truncation = _strategies(padding, truncation, max_length)
        _check_call_arguments(return_tensors, max_length, stride, pad_to_multiple_of)
        options = self._encode_options(
            padding,
            truncation,
            max_length=max_length,
            stride=stride,
            pad_to_multiple_of=pad_to_multiple_of,
            padding_side=padding_side,
            add_special_tokens=add_special_tokens,
            return_overflowing_tokens=return_overflowing_tokens,
            num_threads=num_threads,
            split_special_tokens=(
                self.split_special_tokens if split_special_tokens is None else bool(split_special_tokens)
            ),
        )
        # not kept when it warned (padding="max_length" with nothing to pad to), so that it warns every time
        warned = padding == Padding.MAX_LENGTH and options.padding == Padding.DO_NOT_PAD
        if key is not None and not warned:
            if len(self._options_cache) >= _OPTIONS_CACHE_SIZE:
                self._options_cache.clear()
            self._options_cache[key] = options
        return options

    def _encode_options(
        self,
        padding: Padding,
        truncation: Truncation,
        *,
        max_length,
        stride,
        pad_to_multiple_of,
        padding_side,
        add_special_tokens,
        return_overflowing_tokens,
        num_threads,
        split_special_tokens: bool = False,
    ) -> EncodeOptions:
        """The C++ options of one call, lengths resolved as transformers resolves them."""
        side = self._side(padding_side or self.padding_side, "padding_side")
        truncation, trunc_length = self._truncation(truncation, max_length, stride)
        padding, pad_length = self._padding(padding, max_length)
        multiple = int(pad_to_multiple_of or 0) if padding != Padding.DO_NOT_PAD else 0
        if truncation != Truncation.DO_NOT_TRUNCATE and multiple and trunc_length % multiple != 0:
            raise ValueError(
                f"Truncation and padding are both activated but truncation length ({trunc_length}) is not a "
                f"multiple of pad_to_multiple_of ({multiple})."
            )
        return EncodeOptions(
            add_special_tokens=bool(add_special_tokens),
            truncation=truncation,
            max_length=trunc_length,
            stride=int(stride),
            truncate_left=self.truncation_side == "left",
            return_overflowing=bool(return_overflowing_tokens),
            padding=padding,
            pad_length=pad_length,
            pad_to_multiple_of=multiple,
            pad_left=side == "left",
            num_threads=int(num_threads or self.num_threads),
            split_special_tokens=bool(split_special_tokens),
        )

    def _truncation(self, truncation: Truncation, max_length, stride) -> tuple[Truncation, int]:
        """The truncation strategy and length (-1: none): max_length, else model_max_length if there is one."""
        if truncation == Truncation.DO_NOT_TRUNCATE:
            return truncation, -1
        if max_length is None:
            if self.model_max_length >= VERY_LARGE_INTEGER:
                return Truncation.DO_NOT_TRUNCATE, -1  # nothing to truncate to
            max_length = self.model_max_length
        if max_length >= 2 and stride > max_length - 2:
            # transformers (through tokenizers' enable_truncation) rejects this up front, counting the two
            # special tokens of a single sequence even for pairs
            raise ValueError(
                f"stride ({stride}) is greater than or equal to the effective max length "
                f"({max_length - 2} = max_length {max_length} - 2 special tokens)"
            )
        return truncation, int(max_length)

    def _padding(self, padding: Padding, max_length) -> tuple[Padding, int]:
        """The padding strategy and, for MAX_LENGTH, the length: max_length, else model_max_length."""
        if padding != Padding.MAX_LENGTH:
            return padding, 0
        if max_length is None:
            if self.model_max_length >= VERY_LARGE_INTEGER:
                warnings.warn(
                    "padding='max_length' without max_length and no model_max_length: not padding",
                    stacklevel=5,  # the caller of __call__
                )
                return Padding.DO_NOT_PAD, 0
            max_length = self.model_max_length
        return padding, int(max_length)

    def _encode_batch(self, texts, pairs, options: EncodeOptions, as_numpy: bool, want: int) -> dict:
        """The C++ batch: a dict of numpy arrays or of lists of row lists."""
        # Building many small lists triggers the cyclic GC over and over; none of them can form a cycle.
        pause_gc = not as_numpy and gc.isenabled()
        if pause_gc:
            gc.disable()
        try:
            # encode(texts, pairs=, options=, as_numpy=, want=) without matching the keywords
            return self._core.encode_positional(texts, pairs, options, as_numpy, want)
        finally:
            if pause_gc:
                gc.enable()

    # ---- decoding ----------------------------------------------------------------------------------------
    def decode(
        self, token_ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None
    ) -> str:
        """Ids back to text, as the `tokenizers` WordPiece decoder does (## glued, per-token cleanup)."""
        if isinstance(token_ids, dict):
            token_ids = token_ids["input_ids"]
        ids = _as_id_list(token_ids)
        tokens = self.convert_ids_to_tokens(ids, skip_special_tokens=skip_special_tokens)
        prefix = self.wordpiece_prefix
        parts = []
        for i, tok in enumerate(tokens):
            if i:
                tok = tok.replace(prefix, "", 1) if tok.startswith(prefix) else " " + tok
            parts.append(_wordpiece_cleanup(tok))
        text = "".join(parts)
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        if clean_up_tokenization_spaces:
            text = clean_up_tokenization(text)
        return text

    def batch_decode(
        self, sequences, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None
    ) -> list[str]:
        if hasattr(sequences, "tolist"):
            sequences = sequences.tolist()
        return [self.decode(s, skip_special_tokens, clean_up_tokenization_spaces) for s in sequences]

    def __repr__(self):
        return (
            f"BertTokenizer(vocab_size={self.vocab_size}, do_lower_case={self.do_lower_case}, "
            f"strip_accents={self.strip_accents}, tokenize_chinese_chars={self.tokenize_chinese_chars}, "
            f"model_max_length={self.model_max_length})"
        )


# ---- helpers ---------------------------------------------------------------------------------------------
def _from_tokenizer_json(data, path) -> dict:
    """BertTokenizer kwargs from a `tokenizers` tokenizer.json with a WordPiece model."""
    model = data.get("model") if isinstance(data, dict) else None
    if (
        not isinstance(model, dict)
        or model.get("type") != "WordPiece"
        or not isinstance(model.get("vocab"), dict)
    ):
        raise ValueError(f"{path} does not describe a WordPiece model with a vocab")
    by_id = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise ValueError(f"{path}: vocab ids are not 0..{len(by_id) - 1}")
    reasons = bert_pipeline_differences(data)
    if reasons:
        raise ValueError(
            f"{path} is a WordPiece tokenizer.json whose pipeline is not BERT's, which fastbert.BertTokenizer "
            f"implements: {'; '.join(reasons)}. fastbert.AutoTokenizer.from_pretrained runs it as written "
            "(through the `tokenizers` library)"
        )
    kwargs = {"vocab": [t for t, _ in by_id]}
    if "unk_token" in model:
        kwargs["unk_token"] = model["unk_token"]
    if "max_input_chars_per_word" in model:
        kwargs["max_input_chars_per_word"] = model["max_input_chars_per_word"]
    if "continuing_subword_prefix" in model:
        kwargs["wordpiece_prefix"] = model["continuing_subword_prefix"]
    norm = data.get("normalizer") or {}
    if norm.get("type") == "BertNormalizer":
        kwargs["do_lower_case"] = norm.get("lowercase", True)
        kwargs["strip_accents"] = norm.get("strip_accents")
        kwargs["tokenize_chinese_chars"] = norm.get("handle_chinese_chars", True)
    extra = [tok["content"] for tok in data.get("added_tokens") or [] if tok.get("special")]
    kwargs["additional_special_tokens"] = extra
    return kwargs


def _available_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _reject_unsupported(kwargs):
    unknown = set(kwargs) - _IGNORED_KWARGS
    if unknown:
        raise TypeError(f"unsupported argument(s) for BertTokenizer: {sorted(unknown)}")


def _strategies(padding, truncation, max_length) -> tuple[Padding, Truncation]:
    """The strategies `padding=` and `truncation=` ask for, as transformers reads them."""
    pad = _strategy(padding, _PADDING, "padding")
    trunc = _strategy(truncation, _TRUNCATION, "truncation")
    if max_length is not None and padding is False and truncation is None:
        trunc = Truncation.LONGEST_FIRST  # transformers: max_length without truncation/padding means longest_first
    return pad, trunc


def _wanted_outputs(
    return_token_type_ids, return_attention_mask, return_special_tokens_mask, return_offsets_mapping, defaults
) -> int:
    """The WANT_* bits of the outputs asked for: input_ids always; type ids and mask when asked, or when not
    told, as `defaults` (BertTokenizer._default_want: the bits of its model_input_names) says."""
    want = _WANT_IDS
    if return_token_type_ids is None:
        want |= defaults & _WANT_TYPES
    elif return_token_type_ids:
        want |= _WANT_TYPES
    if return_attention_mask is None:
        want |= defaults & _WANT_ATTENTION
    elif return_attention_mask:
        want |= _WANT_ATTENTION
    if return_special_tokens_mask:
        want |= _WANT_SPECIAL
    if return_offsets_mapping:
        want |= _WANT_OFFSETS
    return want


def _batch_encoding(out: dict, return_tensors, return_length: bool, unbatch: bool) -> BatchEncoding:
    """The C++ outputs as transformers returns them: with `length`, as torch tensors, or one text's rows.

    `length` is each row's length as returned, padding included (transformers' fast tokenizers report
    len(encoding.ids), after padding), for lists and tensors alike."""
    if return_length:
        ids = out["input_ids"]
        if return_tensors is None:
            out["length"] = [len(r) for r in ids]
        else:
            out["length"] = np.full(ids.shape[0], ids.shape[1], dtype=np.int64)
    if return_tensors == "pt":
        import torch

        out = {k: torch.from_numpy(v) for k, v in out.items()}  # numpy arrays only (as_numpy)
    elif return_tensors is None and unbatch:
        out = {k: v[0] if isinstance(v, list) and v and isinstance(v[0], list) else v for k, v in out.items()}
    return BatchEncoding(out)
