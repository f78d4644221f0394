"""Sentence embeddings: ``SentenceEncoder`` and the ``fastbert encode`` command.

``SentenceEncoder.from_pretrained(dir).encode(texts)`` returns what sentence-transformers' ``encode`` returns
(a float32 ``(n, dim)`` numpy array, or ``(dim,)`` for one string), with the same arguments and meanings:
prompts, ``normalize_embeddings``, ``truncate_dim`` (Matryoshka), ``precision`` (float32, int8, uint8,
binary, ubinary), ``convert_to_numpy`` / ``convert_to_tensor``. An argument fastbert does not implement is an
error, never ignored.

The checkpoint is read as sentence-transformers reads it (``read_st_layout``): ``modules.json`` lists the
modules, in either layout (the v2 one, ``sentence_transformers.models.*`` types with ``pooling_mode_*_token``
flags and ``max_seq_length`` in ``sentence_bert_config.json``, or the current one, where the maximum length
lives in the tokenizer's ``model_max_length``); the Pooling module in every mode (cls, mean, max,
mean_sqrt_len_tokens, weightedmean, lasttoken, several concatenated, ``include_prompt``); Dense (with its
activation) and Normalize after it; prompts and the similarity function from
``config_sentence_transformers.json``. A module or a setting fastbert cannot run is a ``NotImplementedError``
that names it. A plain BERT checkpoint gets mean pooling, as sentence-transformers gives it.

Speed comes from the padding-free model and the batching: texts are tokenized a large chunk at a time and
sorted by token count; each batch of ``batch_size`` texts is packed end to end with no padding (the GEMMs
see every token of the batch at once, attention reads the packed rows in place), embeddings are pooled
straight from the packed rows, and the original order is restored at the end.
"""

from __future__ import annotations

import json
import numbers
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fastbert.config import read_json
from fastbert.packing import packing_from_lengths, rows_and_columns
from fastbert.resources import load_tokenizer

# sentence-transformers' pooling modes, in the order its v2 flags concatenate them
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_MODE_ALIASES = {"mean_sqrt_len": "mean_sqrt_len_tokens"}
_LEGACY_POOLING_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")
SIMILARITY_FNS = ("cosine", "dot", "euclidean", "manhattan")
# parameter-free torch activations a Dense module may name (sentence-transformers instantiates the class with
# no arguments; anything else would run code named by the checkpoint)
ACTIVATIONS = ("Identity", "Tanh", "ReLU", "GELU", "Sigmoid", "SiLU", "LeakyReLU", "ELU", "SELU", "CELU",
               "Softplus", "Softsign", "Mish", "Hardtanh", "ReLU6", "Hardswish", "Hardsigmoid", "LogSigmoid",
               "Tanhshrink")
_ACTIVATION_MODULES = ("torch.nn", "torch.nn.modules.activation", "torch.nn.modules.linear")
# the file names sentence-transformers tries, in its order, for the Transformer module's settings
TRANSFORMER_CONFIG_FILES = (
    "sentence_bert_config.json", "sentence_roberta_config.json", "sentence_distilbert_config.json",
    "sentence_camembert_config.json", "sentence_albert_config.json", "sentence_xlm-roberta_config.json",
    "sentence_xlnet_config.json",
)
# texts are tokenized and sorted by length this many batches at a time
SORT_CHUNK_BATCHES = 64


# ------------------------------------------------------------------------------------------------ layout
def _read_json(path: Path) -> dict:
    """A sentence-transformers settings file, or {} where the checkpoint has none."""
    return read_json(path) if path.is_file() else {}


@dataclass
class STLayout:
    """What a sentence-transformers checkpoint directory asks for, read without running any of its code.

    ``head`` lists the modules after Pooling in order, as ``(class name, directory, config)``.
    ``max_seq_length`` is ``sentence_bert_config.json``'s (v2 layout), ``tokenizer_max_length`` a
    ``model_max_length`` in the module's processor kwargs; with neither, the tokenizer's own
    ``model_max_length`` applies (``resolve_max_length``)."""

    transformer_dir: Path
    pooling: tuple[str, ...] = ("mean",)
    include_prompt: bool = True
    embedding_dimension: int | None = None
    head: list = field(default_factory=list)
    max_seq_length: int | None = None
    tokenizer_max_length: int | None = None
    do_lower_case: bool = False
    prompts: dict = field(default_factory=dict)
    default_prompt_name: str | None = None
    similarity_fn_name: str | None = None
    model_type: str | None = None
    extra: dict = field(default_factory=dict)  # other config_sentence_transformers.json settings


def _module_class(entry, where: Path) -> str:
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise ValueError(f"{where / 'modules.json'}: every entry needs a 'type' string, got {entry!r}")
    kind = entry["type"]
    if not kind.startswith("sentence_transformers."):
        raise NotImplementedError(
            f"module {kind!r} in {where / 'modules.json'} is custom code, which fastbert never runs"
        )
    return kind.rsplit(".", 1)[-1]


def read_st_layout(directory: str | Path, task: str = "feature-extraction") -> STLayout:
    """The layout of a sentence-transformers checkpoint dir (either layout); mean pooling and nothing else for
    a plain BERT dir. ``task``: the Transformer module's ``transformer_task`` this caller can run."""
    directory = Path(directory)
    st_config = _read_json(directory / "config_sentence_transformers.json")
    if not (directory / "modules.json").is_file():
        return STLayout(transformer_dir=directory)
    modules = read_json(directory / "modules.json")
    if not isinstance(modules, list) or not modules:
        raise ValueError(f"{directory / 'modules.json'} must be a non-empty list of modules")
    layout: STLayout | None = None
    pooled = False
    for position, entry in enumerate(modules):
        kind = _module_class(entry, directory)
        path = entry.get("path", "")
        if not isinstance(path, str) or Path(path).is_absolute() or ".." in Path(path).parts:
            raise ValueError(f"{directory / 'modules.json'}: module path {path!r} is not inside the checkpoint")
        sub = directory / path
        if kind == "Transformer" and position == 0:
            layout = STLayout(transformer_dir=sub)
            _read_transformer_config(sub, layout, task)
        elif layout is None:
            raise NotImplementedError(
                f"{directory}: the first module is {kind}, not a Transformer: fastbert runs a BERT Transformer "
                "module followed by Pooling, Dense, Normalize"
            )
        elif kind == "Pooling" and not pooled:
            _read_pooling_config(sub / "config.json", layout)
            pooled = True
        elif kind in ("Dense", "Normalize", "Dropout") and pooled:
            layout.head.append((kind, sub, _read_head_config(kind, sub / "config.json")))
        else:
            raise NotImplementedError(
                f"sentence-transformers module {kind} ({entry['type']}, position {position} in "
                f"{directory / 'modules.json'}) is not supported by fastbert: it runs Transformer, then Pooling, "
                "then Dense / Normalize / Dropout"
            )
    if task == "feature-extraction" and not pooled:
        raise NotImplementedError(f"{directory} has no Pooling module: fastbert returns pooled sentence embeddings")
    layout.prompts = dict(st_config.get("prompts") or {})
    layout.default_prompt_name = st_config.get("default_prompt_name")
    layout.similarity_fn_name = st_config.get("similarity_fn_name")
    layout.model_type = st_config.get("model_type")
    layout.extra = {k: v for k, v in st_config.items()
                    if k not in ("prompts", "default_prompt_name", "similarity_fn_name", "model_type", "__version__")}
    return layout


_TRANSFORMER_OUTPUT = {"feature-extraction": ("last_hidden_state", "token_embeddings"),
                       "sequence-classification": ("logits", "scores")}


def _read_transformer_config(sub: Path, layout: STLayout, task: str) -> None:
    cfg: dict = {}
    name = "sentence_bert_config.json"
    for name in TRANSFORMER_CONFIG_FILES:
        if (sub / name).is_file():
            cfg = read_json(sub / name)
            break
    where = sub / name
    known = {"max_seq_length", "do_lower_case", "transformer_task", "modality_config", "module_output_name",
             "unpad_inputs", "processing_kwargs", "query_length", "document_length", "query_expansion",
             "model_args", "model_kwargs", "tokenizer_args", "processor_kwargs", "config_args", "config_kwargs"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise NotImplementedError(f"{where}: settings {unknown} are not supported by fastbert")
    saved_task = cfg.get("transformer_task", "feature-extraction")
    if saved_task != task:
        raise NotImplementedError(f"{where}: transformer_task {saved_task!r} (fastbert runs {task!r} here)")
    method_output, module_output = _TRANSFORMER_OUTPUT[task]
    modality = cfg.get("modality_config")
    if modality is not None and modality != {"text": {"method": "forward", "method_output_name": method_output}}:
        raise NotImplementedError(f"{where}: modality_config {modality} is not supported (fastbert runs text "
                                  f"through forward -> {method_output})")
    if cfg.get("module_output_name", module_output) != module_output:
        raise NotImplementedError(f"{where}: module_output_name {cfg['module_output_name']!r} is not supported")
    for key in ("processing_kwargs", "query_length", "document_length", "query_expansion"):
        if cfg.get(key):
            raise NotImplementedError(f"{where}: {key}={cfg[key]!r} is not supported by fastbert")
    for key in ("model_args", "model_kwargs", "config_args", "config_kwargs", "tokenizer_args", "processor_kwargs"):
        kwargs = cfg.get(key) or {}
        tokenizer_side = key in ("tokenizer_args", "processor_kwargs")
        other = sorted(set(kwargs) - {"trust_remote_code"} - ({"model_max_length"} if tokenizer_side else set()))
        if other:
            raise NotImplementedError(f"{where}: {key} {other} are not supported by fastbert")
        if tokenizer_side and "model_max_length" in kwargs:
            layout.tokenizer_max_length = _positive_int(kwargs["model_max_length"], f"{where}: model_max_length")
    if cfg.get("max_seq_length") is not None:
        layout.max_seq_length = _positive_int(cfg["max_seq_length"], f"{where}: max_seq_length")
    layout.do_lower_case = bool(cfg.get("do_lower_case", False))


def _positive_int(value, what: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def _read_pooling_config(path: Path, layout: STLayout) -> None:
    cfg = dict(_read_json(path))
    dim = cfg.pop("embedding_dimension", cfg.pop("word_embedding_dimension", None))
    flags = {k: cfg.pop(k) for k in list(cfg) if k in _LEGACY_POOLING_FLAGS}
    include_prompt = cfg.pop("include_prompt", True)
    mode = cfg.pop("pooling_mode", None)
    if cfg:
        raise NotImplementedError(f"{path}: pooling settings {sorted(cfg)} are not supported by fastbert")
    if mode is None:
        # the v2 layout: one flag per mode, concatenated in sentence-transformers' fixed order; none set: mean
        modes = tuple(m for k, m in _LEGACY_POOLING_FLAGS.items() if flags.get(k)) or ("mean",)
    else:
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    layout.pooling = _check_modes(modes, str(path))
    layout.include_prompt = bool(include_prompt)
    layout.embedding_dimension = dim


def _check_modes(modes, where: str) -> tuple[str, ...]:
    modes = tuple(_MODE_ALIASES.get(m, m) for m in modes)
    bad = [m for m in modes if m not in POOLING_MODES]
    if not modes or bad:
        raise NotImplementedError(f"{where}: pooling mode(s) {bad or modes} not supported (supported: {POOLING_MODES})")
    return modes


def _read_head_config(kind: str, path: Path) -> dict:
    cfg = dict(_read_json(path))
    for key in ("module_input_name", "module_output_name"):
        if cfg.get(key, "sentence_embedding") not in (None, "sentence_embedding"):
            raise NotImplementedError(f"{path}: a {kind} module on {cfg[key]!r} is not supported (fastbert runs "
                                      "Dense / Normalize on the pooled sentence embedding)")
        cfg.pop(key, None)
    known = {"Dense": {"in_features", "out_features", "bias", "activation_function", "use_residual"},
             "Normalize": set(), "Dropout": {"dropout"}}[kind]
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise NotImplementedError(f"{path}: {kind} settings {unknown} are not supported by fastbert")
    return cfg


def resolve_max_length(layout: STLayout, tokenizer_max_length: int, max_tokens: int) -> int:
    """The maximum token count as sentence-transformers finds it: a ``model_max_length`` in the module's
    processor kwargs, else ``sentence_bert_config.json``'s ``max_seq_length`` (v2 layout), else the
    tokenizer's ``model_max_length`` (``tokenizer_config.json``); bounded by the position embeddings."""
    if layout.tokenizer_max_length is not None:
        length = layout.tokenizer_max_length
    elif layout.max_seq_length is not None:
        length = layout.max_seq_length
    else:
        length = tokenizer_max_length
    return min(int(length), max_tokens)


# ------------------------------------------------------------------------------------------------ modules
def activation_from_name(path: str | None) -> nn.Module:
    """The torch activation a checkpoint names (``torch.nn.modules.activation.Tanh``), made with no arguments
    as sentence-transformers makes it; any other name is an error (it would run the checkpoint's code)."""
    module, _, name = (path or "").rpartition(".")
    if module not in _ACTIVATION_MODULES or name not in ACTIVATIONS:
        raise NotImplementedError(
            f"activation {path!r} is not supported by fastbert (supported: torch.nn {', '.join(ACTIVATIONS)})"
        )
    return getattr(nn, name)()


class Dense(nn.Module):
    """sentence-transformers' Dense: ``activation(linear(x))`` (+ ``x``, or a projection of it, with
    ``use_residual``)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 activation_function: str | None = "torch.nn.modules.activation.Tanh", use_residual: bool = False):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.activation = activation_from_name(activation_function)
        self.use_residual = bool(use_residual)
        self.residual = (nn.Linear(in_features, out_features, bias=False)
                         if use_residual and in_features != out_features else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.activation(self.linear(x))
        if self.use_residual:
            out = out + (x if self.residual is None else self.residual(x))
        return out

    @classmethod
    def load(cls, directory: Path, cfg: dict) -> Dense:
        from fastbert import weights

        missing = [k for k in ("in_features", "out_features") if k not in cfg]
        if missing:
            raise ValueError(f"{directory / 'config.json'} lacks {missing}")
        # a missing activation_function means sentence-transformers' default, Tanh
        dense = cls(cfg["in_features"], cfg["out_features"], cfg.get("bias", True),
                    cfg.get("activation_function", "torch.nn.modules.activation.Tanh"), cfg.get("use_residual", False))
        state = weights.read_state_dict(weights.find_weights(directory))
        expected = dense.state_dict()
        wrong = sorted(set(state) ^ set(expected))
        if wrong:
            raise weights.WeightsError(f"{directory}: Dense weights do not match its config: keys {wrong}")
        for key, value in state.items():
            if value.shape != expected[key].shape:
                raise weights.WeightsError(
                    f"{directory}: {key} is {tuple(value.shape)}, the config says {tuple(expected[key].shape)}"
                )
        dense.load_state_dict({k: v.float() for k, v in state.items()})
        return dense


class Normalize(nn.Module):
    """L2 normalisation of each embedding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, p=2, dim=-1)


def build_head(layout: STLayout) -> list[nn.Module]:
    """The modules after Pooling, in the checkpoint's order (Dropout is nothing at inference)."""
    head: list[nn.Module] = []
    for kind, directory, cfg in layout.head:
        if kind == "Dense":
            head.append(Dense.load(directory, cfg))
        elif kind == "Normalize":
            head.append(Normalize())
    return head


def pool_packed(x: torch.Tensor, cu_seqlens: torch.Tensor, mode: str, skip: int = 0) -> torch.Tensor:
    """Pool packed rows ``x`` ``(total, hidden)`` per sequence (``cu_seqlens`` ``(batch + 1,)``) as
    sentence-transformers' Pooling does in ``mode``. ``skip``: the first ``skip`` tokens of each sequence (a
    prompt, with ``include_prompt=False``) are left out; a sequence with nothing left pools to zeros (cls: its
    first token; max: -inf), as sentence-transformers' masks give."""
    mode = _MODE_ALIASES.get(mode, mode)
    if mode not in POOLING_MODES:
        raise ValueError(f"pooling mode must be one of {POOLING_MODES}, got {mode!r}")
    cu = cu_seqlens.to(torch.int64)
    lengths = cu[1:] - cu[:-1]
    n, dim = lengths.numel(), x.shape[1]
    if mode == "cls":
        return x.index_select(0, cu[:-1] + (lengths > skip).to(torch.int64) * skip if skip else cu[:-1])
    if mode == "lasttoken":
        last = x.index_select(0, cu[1:] - 1)
        return last * (lengths > skip).to(x.dtype)[:, None] if skip else last
    if mode == "max" and not skip:
        return torch.segment_reduce(x, "max", lengths=lengths, axis=0)
    row, col = rows_and_columns(cu, x.shape[0])
    if skip:
        keep = col >= skip
        x, row, col = x[keep], row[keep], col[keep]
    if mode == "max":
        out = x.new_full((n, dim), float("-inf"))
        return out.scatter_reduce(0, row[:, None].expand(-1, dim), x, "amax")
    acc = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    if mode == "weightedmean":
        # weights are the original positions + 1 (a left-out prompt keeps the others' weights)
        w = (col + 1).to(acc)
        sums = x.new_zeros(n, dim, dtype=acc).index_add_(0, row, x.to(acc) * w[:, None])
        total = w.new_zeros(n).index_add_(0, row, w)
        return (sums / total.clamp(min=1e-9)[:, None]).to(x.dtype)
    sums = x.new_zeros(n, dim, dtype=acc).index_add_(0, row, x.to(acc))
    denom = (lengths - skip).clamp(min=0).to(acc).clamp(min=1e-9)[:, None]
    return (sums / (denom if mode == "mean" else denom.sqrt())).to(x.dtype)


# ------------------------------------------------------------------------------------------------ batching
def check_batch_size(batch_size) -> int:
    if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


def packed_batches(tokenizer, texts: list[str], batch_size: int, max_length: int, vocab_size: int,
                   pairs: list[str] | None = None):
    """Yield ``(text indices, flat token ids, flat token types or None, lengths)`` for each ``batch_size``
    texts (or ``(text, pair)`` pairs: then token types come too).

    Texts are tokenized a chunk of ``batch_size * SORT_CHUNK_BATCHES`` at a time (memory stays bounded on
    large inputs) and sorted by token count inside the chunk, longest first, as sentence-transformers sorts by
    length. A batch is packed end to end with no padding (``packing_from_lengths``)."""
    check_batch_size(batch_size)
    chunk = batch_size * SORT_CHUNK_BATCHES
    for base in range(0, len(texts), chunk):
        enc = tokenizer(
            texts[base : base + chunk], pairs[base : base + chunk] if pairs is not None else None,
            truncation=True, max_length=max_length, padding=True, return_tensors="np",
            return_token_type_ids=pairs is not None,
        )
        ids, mask = np.asarray(enc["input_ids"]), np.asarray(enc["attention_mask"]).astype(bool)
        types = np.asarray(enc["token_type_ids"]) if pairs is not None else None
        if ids.size and (int(ids.max()) >= vocab_size or int(ids.min()) < 0):
            raise ValueError(
                f"the tokenizer produced token ids outside the model's vocabulary (0..{vocab_size - 1}): "
                "the tokenizer and the model checkpoint do not belong together"
            )
        lengths = mask.sum(axis=1)
        order = np.argsort(-lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            # rows in order, each cut to its length: row-major boolean indexing lays them end to end
            sel = mask[idx]
            flat = torch.from_numpy(ids[idx][sel].astype(np.int64))
            flat_types = torch.from_numpy(types[idx][sel].astype(np.int64)) if types is not None else None
            yield (idx + base).tolist(), flat, flat_types, lengths[idx].tolist()


def as_text_list(inputs, what: str = "sentences") -> tuple[list, bool]:
    """``(list of inputs, single)`` from a str, a list/tuple, a numpy array or another iterable."""
    if isinstance(inputs, str):
        return [inputs], True
    if inputs is None:
        raise TypeError(f"{what} is None: pass a str or a list of str")
    if isinstance(inputs, np.ndarray):
        return inputs.tolist(), False
    try:
        return list(inputs), False
    except TypeError:
        raise TypeError(f"{what} must be a str or a list of str, got {type(inputs).__name__}") from None


def resolve_prompt(prompts: dict, default_prompt_name: str | None, prompt: str | None,
                   prompt_name: str | None) -> str | None:
    """sentence-transformers' rule: ``prompt`` wins, else ``prompts[prompt_name]``, else the default
    prompt."""
    if prompt is not None:
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        return prompt
    if prompt_name is not None:
        if prompt_name not in prompts:
            raise ValueError(f"prompt name {prompt_name!r} not found in the configured prompts {list(prompts)}")
        return prompts[prompt_name]
    if default_prompt_name is not None:
        return prompts.get(default_prompt_name)
    return None


def quantize_embeddings(emb: np.ndarray, precision: str) -> np.ndarray:
    """sentence-transformers' ``precision=`` on float32 embeddings ``(n, dim)``: int8/uint8 buckets each
    dimension's range over these embeddings into 256 steps; binary/ubinary pack the signs 8 to a byte."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "float32":
        return emb.astype(np.float32, copy=False)
    if precision.endswith("int8"):
        if emb.shape[0] < 2:
            raise ValueError(f"{precision} ranges cannot be computed from a single embedding: encode several "
                             "texts together")
        lo, hi = emb.min(axis=0), emb.max(axis=0)
        step = (hi - lo) / 255
        step = np.where(step == 0, 1, step)
        q = np.clip(np.floor((emb - lo) / step), 0, 255)
        return q.astype(np.uint8) if precision == "uint8" else (q - 128).astype(np.int8)
    bits = np.packbits(emb > 0, axis=-1)
    return bits if precision == "ubinary" else (bits.astype(np.int16) - 128).astype(np.int8)


def _as_batch_tensor(a) -> torch.Tensor:
    if isinstance(a, list):
        a = torch.stack([torch.as_tensor(x) for x in a]) if a else torch.empty(0, 0)
    t = torch.as_tensor(a)
    if not t.is_floating_point() or t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t[None] if t.dim() == 1 else t


def similarity(a, b, fn: str = "cosine") -> torch.Tensor:
    """``(n, m)`` similarities between the rows of ``a`` and of ``b`` (numpy, tensors, lists; a 1-d input is
    one row): cosine, dot, or the negative euclidean / manhattan distance."""
    a, b = _as_batch_tensor(a), _as_batch_tensor(b)
    if fn == "cosine":
        return F.normalize(a, p=2, dim=1) @ F.normalize(b, p=2, dim=1).T
    if fn == "dot":
        return a @ b.T
    if fn == "euclidean":
        return -torch.cdist(a, b, p=2.0)
    if fn == "manhattan":
        return -torch.cdist(a, b, p=1.0)
    raise ValueError(f"similarity_fn_name must be one of {SIMILARITY_FNS}, got {fn!r}")


def similarity_pairwise(a, b, fn: str = "cosine") -> torch.Tensor:
    """``(n,)`` similarities of row ``i`` of ``a`` with row ``i`` of ``b`` (same meanings as ``similarity``)."""
    a, b = _as_batch_tensor(a), _as_batch_tensor(b)
    if a.shape != b.shape:
        raise ValueError(f"similarity_pairwise needs inputs of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if fn == "cosine":
        return (F.normalize(a, p=2, dim=1) * F.normalize(b, p=2, dim=1)).sum(dim=1)
    if fn == "dot":
        return (a * b).sum(dim=1)
    if fn == "euclidean":
        return -torch.linalg.vector_norm(a - b, ord=2, dim=1)
    if fn == "manhattan":
        return -(a - b).abs().sum(dim=1)
    raise ValueError(f"similarity_fn_name must be one of {SIMILARITY_FNS}, got {fn!r}")


# ------------------------------------------------------------------------------------------------ encoder
class SentenceEncoder:
    """A BERT checkpoint + pooling (+ Dense, Normalize): the drop-in for ``SentenceTransformer``'s ``encode``,
    ``encode_query``, ``encode_document`` and ``similarity``."""

    def __init__(
        self,
        model,
        tokenizer,
        pooling: str | tuple[str, ...] = "mean",
        normalize: bool = False,
        max_seq_length: int | None = None,
        *,
        include_prompt: bool = True,
        head: list[nn.Module] | tuple[nn.Module, ...] = (),
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        truncate_dim: int | None = None,
        similarity_fn_name: str | None = None,
        do_lower_case: bool = False,
    ):
        modes = _check_modes((pooling,) if isinstance(pooling, str) else tuple(pooling), "SentenceEncoder")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.pooling = modes[0] if len(modes) == 1 else modes
        self.pooling_modes = modes
        self.include_prompt = bool(include_prompt)
        modules = list(head) + ([Normalize()] if normalize else [])
        self.head = nn.Sequential(*modules).to(device=model.device, dtype=model.dtype).eval().requires_grad_(False)
        limit = model.config.max_tokens
        self.max_seq_length = min(max_seq_length or limit, limit)
        self.prompts = {k: ("" if v is None else v) for k, v in (prompts or {}).items()}
        if default_prompt_name is not None and default_prompt_name not in self.prompts:
            raise ValueError(
                f"default prompt name {default_prompt_name!r} not found in the prompts {list(self.prompts)}"
            )
        self.default_prompt_name = default_prompt_name
        self.truncate_dim = None if truncate_dim is None else _positive_int(truncate_dim, "truncate_dim")
        if similarity_fn_name is not None and similarity_fn_name not in SIMILARITY_FNS:
            raise ValueError(f"similarity_fn_name must be one of {SIMILARITY_FNS}, got {similarity_fn_name!r}")
        self._similarity_fn_name = similarity_fn_name
        # sentence-transformers lowercases before the tokenizer's own normaliser when asked to
        self.lowercase = bool(do_lower_case) and not getattr(tokenizer, "do_lower_case", False)
        self._prompt_lengths: dict[str, int] = {}

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        *,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        truncate_dim: int | None = None,
        similarity_fn_name: str | None = None,
    ) -> SentenceEncoder:
        """Load a sentence-transformers checkpoint (either layout) or a plain BERT one. ``prompts`` and
        ``default_prompt_name`` override the saved ones, as sentence-transformers' constructor does."""
        from fastbert.auto import model_class, read_model_type

        directory = Path(path)
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory} is not a checkpoint directory")
        layout = read_st_layout(directory)
        if layout.model_type not in (None, "SentenceTransformer"):
            raise NotImplementedError(
                f"{directory} is a {layout.model_type} checkpoint, not a SentenceTransformer one"
                + (" (use fastbert.CrossEncoder)" if layout.model_type == "CrossEncoder" else "")
            )
        # an encoder's own model is never trained: frozen weights let the CPU path keep them in oneDNN's layout
        family = model_class(read_model_type(layout.transformer_dir), "Model")
        model = family.from_pretrained(layout.transformer_dir, dtype=dtype, device=device).requires_grad_(False)
        hidden = model.config.hidden_size
        if layout.embedding_dimension is not None and layout.embedding_dimension != hidden:
            raise ValueError(f"{directory}: the Pooling module expects dimension {layout.embedding_dimension}, "
                             f"the model's hidden size is {hidden}")
        tokenizer = load_tokenizer(layout.transformer_dir)
        max_len = resolve_max_length(layout, tokenizer.model_max_length, model.config.max_tokens)
        merged = dict(layout.prompts)
        merged.update(prompts or {})
        head = build_head(layout)
        width = hidden * len(layout.pooling)
        for module in head:
            if isinstance(module, Dense):
                if module.linear.in_features != width:
                    raise ValueError(f"{directory}: a Dense module takes {module.linear.in_features} features, the "
                                     f"modules before it give {width}")
                width = module.linear.out_features
        return cls(
            model, tokenizer, layout.pooling, False, max_len, include_prompt=layout.include_prompt, head=head,
            prompts=merged, default_prompt_name=default_prompt_name or layout.default_prompt_name,
            truncate_dim=truncate_dim, similarity_fn_name=similarity_fn_name or layout.similarity_fn_name,
            do_lower_case=layout.do_lower_case,
        )

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def normalize(self) -> bool:
        """Whether the checkpoint's modules end with Normalize."""
        return len(self.head) > 0 and isinstance(self.head[-1], Normalize)

    @property
    def similarity_fn_name(self) -> str:
        return self._similarity_fn_name or "cosine"

    def get_sentence_embedding_dimension(self) -> int:
        dim = self.model.config.hidden_size * len(self.pooling_modes)
        for module in self.head:
            if isinstance(module, Dense):
                dim = module.linear.out_features
        return dim if self.truncate_dim is None else min(dim, self.truncate_dim)

    get_embedding_dimension = get_sentence_embedding_dimension

    def similarity(self, embeddings1, embeddings2) -> torch.Tensor:
        """``(n, m)`` similarities with the checkpoint's similarity function (cosine by default)."""
        return similarity(embeddings1, embeddings2, self.similarity_fn_name)

    def similarity_pairwise(self, embeddings1, embeddings2) -> torch.Tensor:
        """``(n,)`` similarities of matching rows, with the checkpoint's similarity function."""
        return similarity_pairwise(embeddings1, embeddings2, self.similarity_fn_name)

    def encode_query(self, sentences, prompt_name: str | None = None, prompt: str | None = None, **kwargs):
        """``encode`` with the ``"query"`` prompt when the checkpoint has one and none is given."""
        if prompt_name is None and prompt is None and "query" in self.prompts:
            prompt_name = "query"
        return self.encode(sentences, prompt_name, prompt, **kwargs)

    def encode_document(self, sentences, prompt_name: str | None = None, prompt: str | None = None, **kwargs):
        """``encode`` with the first of the ``"document"``, ``"passage"``, ``"corpus"`` prompts the checkpoint
        has, when none is given."""
        if prompt_name is None and prompt is None:
            prompt_name = next((p for p in ("document", "passage", "corpus") if p in self.prompts), None)
        return self.encode(sentences, prompt_name, prompt, **kwargs)

    def encode(
        self,
        sentences: str | list[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: str | None = "sentence_embedding",
        precision: str = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | torch.device | None = None,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
    ):
        """Embeddings of ``sentences`` in their order, with sentence-transformers' arguments and meanings.

        Returns ``(n, dim)`` float32 numpy (``(dim,)`` for one string), or the ``precision``'s integer array;
        one tensor with ``convert_to_tensor=True`` (on the model's device for float32), a list of tensors
        with ``convert_to_numpy=False``. The checkpoint's modules run first (Pooling, Dense, Normalize), then
        ``truncate_dim`` (or the encoder's), then ``normalize_embeddings``, then the quantization."""
        if output_value != "sentence_embedding":
            raise NotImplementedError(f"output_value={output_value!r}: fastbert returns sentence embeddings only")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if device is not None and not _same_device(torch.device(device), self.device):
            raise NotImplementedError(f"device={device!r}: the encoder is on {self.device}; load it on the device "
                                      "you want with from_pretrained(..., device=)")
        batch_size = check_batch_size(batch_size)
        truncate_dim = self.truncate_dim if truncate_dim is None else _positive_int(truncate_dim, "truncate_dim")
        prompt = resolve_prompt(self.prompts, self.default_prompt_name, prompt, prompt_name)
        texts, single = as_text_list(sentences)
        skip = self._prompt_length(prompt) if prompt and not self.include_prompt else 0
        if prompt:
            texts = [prompt + t if isinstance(t, str) else t for t in texts]
        out = self._encode_texts(texts, batch_size, bool(show_progress_bar), skip)
        if truncate_dim is not None:
            out = out[:, :truncate_dim]
        if normalize_embeddings:
            out = F.normalize(out, p=2, dim=1)
        quantized = precision != "float32" and len(texts) > 0
        if quantized:
            arr = quantize_embeddings(out.numpy(), precision)
        if convert_to_tensor:
            result = torch.from_numpy(arr) if quantized else out.to(self.device)
        elif convert_to_numpy:
            result = arr if quantized else out.numpy()
        else:
            result = list(torch.from_numpy(arr)) if quantized else list(out.to(self.device))
        return result[0] if single else result

    def _prompt_length(self, prompt: str) -> int:
        """Tokens a prompt takes at the start of each text ([CLS] included, its trailing [SEP] not), as
        sentence-transformers counts them for ``include_prompt=False``."""
        if prompt not in self._prompt_lengths:
            text = prompt.lower() if self.lowercase else prompt
            ids = list(self.tokenizer(text, truncation=True, max_length=self.max_seq_length)["input_ids"])
            special = set(getattr(self.tokenizer, "all_special_ids", ()))
            self._prompt_lengths[prompt] = len(ids) - (1 if ids and ids[-1] in special else 0)
        return self._prompt_lengths[prompt]

    def _encode_texts(self, texts: list[str], batch_size: int, progress: bool, skip: int = 0) -> torch.Tensor:
        """``(n, dim)`` float32 CPU embeddings after the checkpoint's modules, in the texts' order."""
        if self.lowercase:
            texts = [t.lower() if isinstance(t, str) else t for t in texts]
        dim = self.model.config.hidden_size * len(self.pooling_modes)
        for module in self.head:
            if isinstance(module, Dense):
                dim = module.linear.out_features
        out = torch.empty(len(texts), dim, dtype=torch.float32)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc="encode", unit="text", file=sys.stderr)
        with torch.inference_mode():
            for idx, ids, _, lengths in self._batches(texts, batch_size):
                out[torch.tensor(idx)] = self._embed(ids, lengths, skip).float().cpu()
                if bar is not None:
                    bar.update(len(idx))
        if bar is not None:
            bar.close()
        return out

    def _batches(self, texts: list[str], batch_size: int):
        return packed_batches(self.tokenizer, texts, batch_size, self.max_seq_length, self.model.config.vocab_size)

    def _embed(self, ids: torch.Tensor, lengths: list[int], skip: int = 0) -> torch.Tensor:
        """Embeddings of texts whose token ids lie end to end in ``ids``: the packed last hidden state (no
        scatter to a padded shape, no pooler) pooled per text, then the head modules; all-zero token types,
        positions from 0 in each text."""
        packing = packing_from_lengths(lengths, self.device)
        x = ids = ids.to(self.device)
        x = self.model.forward_packed(packing, ids, self.model.packed_position_ids(packing, ids))[-1]
        pooled = [pool_packed(x, packing.cu_seqlens, m, skip) for m in self.pooling_modes]
        return self.head(pooled[0] if len(pooled) == 1 else torch.cat(pooled, dim=1))


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


# ------------------------------------------------------------------------------------------------ CLI
def add_arguments(parser) -> None:
    parser.add_argument("input", help="text file with one text per line (- for stdin), or .jsonl / .csv / "
                        ".parquet with the text in --column")
    parser.add_argument("-o", "--output", required=True,
                        help="OUT.npy (float32 array), OUT.jsonl, or a directory OUT_DIR/ for .npy shards with a "
                             "manifest (resumable; runs under torchrun; see fastbert.corpus)")
    parser.add_argument(
        "--model", default=None, help="checkpoint dir (default: the bundled all-MiniLM-L6-v2)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    parser.add_argument("--prompt-name", default=None, help="a prompt of the checkpoint (e.g. query)")
    parser.add_argument("--prompt", default=None, help="a prompt string put before each text")
    parser.add_argument("--truncate-dim", type=int, default=None, help="keep the first N dimensions")
    parser.add_argument("--precision", default="float32", choices=PRECISIONS,
                        help="float32, or quantized as sentence-transformers' precision= (int8/uint8 need one "
                             "output file: their ranges come from all the embeddings)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--input-format", default="auto", choices=("auto", "text", "jsonl", "csv", "parquet"),
                        help="how to read the input (default: by its suffix; text for anything else)")
    parser.add_argument("--column", default=None, help="the text's field in jsonl/csv/parquet input (default: text)")
    parser.add_argument("--shard-size", type=int, default=None,
                        help="rows per .npy shard in an output directory (default 100000; implies one)")


def _is_directory_output(output: str, shard_size) -> bool:
    return shard_size is not None or output.endswith(("/", os.sep)) or Path(output).is_dir()


def run(args) -> int:
    from fastbert import corpus

    try:
        if _is_directory_output(args.output, args.shard_size):
            return _run_corpus(args)
        return _run_single_file(args)
    except corpus.CorpusError as e:
        print(f"fastbert encode: {e}", file=sys.stderr)
        return 2


def _run_corpus(args) -> int:
    from fastbert import corpus

    if Path(args.output).suffix in (".npy", ".jsonl") and not Path(args.output).is_dir():
        raise corpus.CorpusError(f"with --shard-size the output is a directory, got {args.output}")
    corpus.encode_corpus(
        args.input, args.output, model=args.model, fmt=args.input_format, column=args.column,
        shard_size=corpus.SHARD_SIZE if args.shard_size is None else args.shard_size, batch_size=args.batch_size,
        normalize=args.normalize, prompt=args.prompt, prompt_name=args.prompt_name, truncate_dim=args.truncate_dim,
        precision=args.precision, device=args.device, progress=not args.no_progress,
    )
    return 0


def _run_single_file(args) -> int:
    from fastbert import corpus

    out = Path(args.output)
    if out.suffix not in (".npy", ".jsonl"):
        print(f"fastbert encode: output must end in .npy or .jsonl, or be a directory (OUT_DIR/ or --shard-size) "
              f"for sharded output; got {out}", file=sys.stderr)
        return 2
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise corpus.CorpusError("under torchrun, write sharded output: -o OUT_DIR/")
    fmt = corpus.input_format(args.input, args.input_format)
    column = corpus.check_column(fmt, args.column)
    if args.input != "-" and not Path(args.input).is_file():
        raise corpus.CorpusError(f"input {args.input} is not a file")
    texts = [corpus.decode_row(fmt, column, where, raw) for where, raw in corpus.read_rows(args.input, fmt, column)]
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    from fastbert.resources import default_model

    encoder = SentenceEncoder.from_pretrained(args.model or default_model(), device=device)
    emb = encoder.encode(
        texts,
        prompt_name=args.prompt_name,
        prompt=args.prompt,
        batch_size=args.batch_size,
        show_progress_bar=not args.no_progress,
        normalize_embeddings=args.normalize,
        truncate_dim=args.truncate_dim,
        precision=args.precision,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, emb)
    else:
        as_number = float if emb.dtype == np.float32 else int
        with out.open("w", encoding="utf-8") as f:
            for text, row in zip(texts, emb):
                values = [round(as_number(v), 7) for v in row]
                f.write(json.dumps({"text": text, "embedding": values}) + "\n")
    print(
        f"wrote {len(texts)} embeddings of dim {emb.shape[1] if emb.ndim == 2 else 0} to {out}",
        file=sys.stderr,
    )
    return 0
