"""Checkpoint I/O: Hugging Face BERT state dicts to fastbert's and back.

fastbert keeps transformers' parameter names except in one place: each layer's query, key and value
projections are one fused ``attention.self.qkv`` projection. Loading is a pure function
(:func:`hf_to_fastbert`) made of a few named renames, then the fusion; :func:`fastbert_to_hf` is its inverse.
Pickled ``.bin`` files are only ever read with ``torch.load(weights_only=True)``: no code from a checkpoint runs.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
TORCH_WEIGHTS = "pytorch_model.bin"
TORCH_INDEX = "pytorch_model.bin.index.json"

BASE_PREFIX = "bert."  # where a BERT head model keeps its encoder; RoBERTa's family uses "roberta."
_QKV = ("query", "key", "value")
_QKV_RE = re.compile(r"^(?P<p>.*attention\.self\.)(?P<which>query|key|value)\.(?P<kind>weight|bias)$")
# buffers transformers saved in old checkpoints; they carry no weights
_IGNORED = re.compile(r"(^|\.)embeddings\.(position_ids|token_type_ids)$")
# MLM decoders: (decoder weight, decoder bias, the head's own bias) for BERT's and RoBERTa's heads
_DECODERS = (
    ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias", "cls.predictions.bias"),
    ("lm_head.decoder.weight", "lm_head.decoder.bias", "lm_head.bias"),
)


@dataclass(frozen=True)
class NameMap:
    """How one model family names its weights in transformers' checkpoints, relative to fastbert's names.

    - ``prefix``: where the family's head models keep the encoder (``"bert."``, ``"roberta."``, ...).
    - ``renames``: ``(transformers substring, fastbert substring)`` pairs, applied in order to every key when
      loading and in reverse (right to left, last pair first) when saving; a family whose layers carry other
      names (DistilBERT's ``q_lin``, ALBERT's ``ffn_output``) maps them onto BERT's layer here, so the encoder
      is the same code for every family.
    - ``roots``: the first name component of the bare encoder's keys, in fastbert's names (a bare checkpoint
      has no ``prefix``; head models need one added).
    - ``decoders``: ``(decoder weight, decoder bias, head bias)`` of the MLM heads: the weight is dropped when
      tied to the word embeddings, the decoder bias becomes the head's own bias (None: it is the decoder's).
    """

    prefix: str = BASE_PREFIX
    renames: tuple[tuple[str, str], ...] = ()
    roots: tuple[str, ...] = ("embeddings.", "encoder.", "pooler.")
    decoders: tuple[tuple[str, str | None, str | None], ...] = _DECODERS

    def to_fastbert(self, key: str) -> str:
        for theirs, ours in self.renames:
            key = key.replace(theirs, ours)
        return key

    def to_hf(self, key: str) -> str:
        for theirs, ours in reversed(self.renames):
            key = key.replace(ours, theirs)
        return key


BERT_NAMES = NameMap()
ROBERTA_NAMES = NameMap(prefix="roberta.")


class WeightsError(ValueError):
    """A checkpoint that cannot be read, or whose tensors do not fit the model."""


# ------------------------------------------------------------------------------------------------ reading
def find_weights(directory: Path) -> list[Path]:
    """The weight files of a checkpoint directory, safetensors first."""
    for index_name in (SAFE_INDEX, TORCH_INDEX):
        index = directory / index_name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
                shards = sorted(set(weight_map.values()))
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                raise WeightsError(f"cannot read the shard index {index}: {e}") from e
            paths = [directory / s for s in shards]
            missing = [p.name for p in paths if not p.is_file()]
            if missing:
                raise WeightsError(f"{index} names shards that are not there: {missing}")
            return paths
    for name in (SAFE_WEIGHTS, TORCH_WEIGHTS):
        if (directory / name).is_file():
            return [directory / name]
    raise WeightsError(
        f"no weights in {directory}: expected {SAFE_WEIGHTS}, {TORCH_WEIGHTS} or a sharded index "
        f"({SAFE_INDEX} / {TORCH_INDEX})"
    )


def read_state_dict(paths: Iterable[Path]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for path in paths:
        state.update(_read_one(Path(path)))
    return state


def _read_one(path: Path) -> dict[str, torch.Tensor]:
    if path.name.endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise WeightsError(f"{path} is not a readable safetensors file: {e}") from e
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # an unpickling error means the file is corrupt or holds more than tensors
        raise WeightsError(
            f"{path} could not be loaded as plain tensors (weights_only=True; fastbert never runs pickled "
            f"code from a checkpoint): {e}"
        ) from e
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors")
    return dict(data)


# ------------------------------------------------------------------------------------------------ mapping
def hf_to_fastbert(state: Mapping[str, torch.Tensor], base_prefix: str, tied_decoder: bool,
                   names: NameMap = BERT_NAMES) -> dict:
    """A transformers BERT-family state dict (any head, any era) -> fastbert names.

    ``names`` is the family's naming (:class:`NameMap`); ``base_prefix`` is ``names.prefix`` for head models
    and ``""`` for a bare ``BertModel`` / ``RobertaModel`` / ...
    """
    out: dict[str, torch.Tensor] = {}
    # 1. legacy LayerNorm names from TF-era checkpoints, buffers that hold no weights, the family's renames
    for key, value in state.items():
        if key.endswith(".gamma"):
            key = key[: -len(".gamma")] + ".weight"
        elif key.endswith(".beta"):
            key = key[: -len(".beta")] + ".bias"
        if _IGNORED.search(key):
            continue
        out[names.to_fastbert(key)] = value
    # 2. the base-model prefix: task checkpoints have "bert.", bare ones do not
    prefix = names.prefix
    has_prefix = any(k.startswith(prefix) for k in out)
    if base_prefix and not has_prefix:
        out = {(base_prefix + k if k.startswith(names.roots) else k): v for k, v in out.items()}
    elif not base_prefix and has_prefix:
        out = {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in out.items()}
    # 3. the MLM decoder: its weight is the word embedding when tied; its bias is the head's own bias
    for dec_w, dec_b, bias in names.decoders:
        if tied_decoder:
            out.pop(dec_w, None)
        if dec_b is not None and bias is not None and dec_b in out:
            value = out.pop(dec_b)
            out.setdefault(bias, value)
    # 4. fuse query/key/value into one projection per layer
    groups: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key in list(out):
        m = _QKV_RE.match(key)
        if m:
            groups.setdefault((m["p"], m["kind"]), {})[m["which"]] = out[key]
    for (prefix, kind), parts in groups.items():
        if set(parts) == set(_QKV):
            shapes = {tuple(parts[w].shape) for w in _QKV}
            if len(shapes) != 1:
                raise WeightsError(f"{prefix}query/key/value.{kind} have different shapes {sorted(shapes)}")
            for w in _QKV:
                del out[f"{prefix}{w}.{kind}"]
            out[f"{prefix}qkv.{kind}"] = torch.cat([parts[w] for w in _QKV], dim=0)
    return out


def fastbert_to_hf(state: Mapping[str, torch.Tensor], names: NameMap = BERT_NAMES) -> dict[str, torch.Tensor]:
    """fastbert names -> transformers names (the inverse of :func:`hf_to_fastbert`'s fusion and renames)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if ".attention.self.qkv." in key:
            prefix, kind = key.rsplit(".qkv.", 1)
            for name, part in zip(_QKV, value.chunk(3, dim=0)):
                out[names.to_hf(f"{prefix}.{name}.{kind}")] = part.contiguous()
        else:
            out[names.to_hf(key)] = value.contiguous()
    return out


def check_and_load(model: torch.nn.Module, state: dict[str, torch.Tensor], strict: bool, source: str) -> None:
    """Copy ``state`` (fastbert names) into ``model`` after checking every key and shape.

    Missing base-model weights are an error; missing head weights (e.g. a classifier on top of a bare
    checkpoint) keep their fresh initialisation with a warning, as in transformers; unexpected keys are
    reported and ignored. ``strict=True`` turns both warnings into errors.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = sorted(k for k in state if k not in expected)
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if mismatched:
        raise WeightsError(
            f"the weights in {source} do not match the config (wrong sizes): " + "; ".join(mismatched[:10])
            + (f" (+{len(mismatched) - 10} more)" if len(mismatched) > 10 else "")
        )
    base = getattr(model, "base_model_prefix_str", "")
    body_missing = [k for k in missing if k.startswith(base) and not k[len(base):].startswith("pooler.")]
    if body_missing:
        raise WeightsError(f"{source} lacks weights of the encoder: {_names(body_missing)}")
    if strict and (missing or unexpected):
        raise WeightsError(f"{source}: missing keys {_names(missing)}; unexpected keys {_names(unexpected)}")
    if missing:
        warnings.warn(
            f"{source} has no weights for {_names(missing)}; they keep their random initialisation "
            "(train them before use)", stacklevel=3,
        )
    if unexpected:
        warnings.warn(f"{source} has weights the model does not use, ignored: {_names(unexpected)}", stacklevel=3)
    with torch.no_grad():
        for key, target in expected.items():
            if key in state:
                value = state[key]
                if not value.is_floating_point() and target.is_floating_point():
                    raise WeightsError(f"{source}: {key} holds {value.dtype} values, expected floating point")
                target.copy_(value.to(target.dtype))
    for key in state:
        if key in expected and not torch.isfinite(expected[key]).all():
            raise WeightsError(f"{source}: {key} contains NaN or infinite values")


def _names(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return f"[{shown}{f', ... (+{len(keys) - limit} more)' if len(keys) > limit else ''}]"


def save_state_dict(state: Mapping[str, torch.Tensor], directory: os.PathLike, safe: bool = True) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    if safe:
        from safetensors.torch import save_file

        path = directory / SAFE_WEIGHTS
        save_file(tensors, str(path), metadata={"format": "pt"})
    else:
        path = directory / TORCH_WEIGHTS
        torch.save(tensors, str(path))
    return path
