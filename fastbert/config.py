"""``BertConfig``: the Hugging Face ``config.json`` of a BERT model, read and written faithfully.

Keys fastbert does not use are kept and written back unchanged, so a config survives a round trip.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

CONFIG_NAME = "config.json"

# name -> default, as in transformers' BertConfig / PretrainedConfig
_DEFAULTS: dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "classifier_dropout": None,
    "is_decoder": False,
    "add_cross_attention": False,
    "tie_word_embeddings": True,
    "problem_type": None,
}

# hidden_act -> the GELU form used by the kernels ("none" = exact erf); other activations run in torch
ACTIVATIONS = {
    "gelu": "none",
    "gelu_new": "tanh",
    "gelu_pytorch_tanh": "tanh",
    "gelu_fast": "tanh",
    "relu": None,
    "silu": None,
    "swish": None,
}

_PROBLEM_TYPES = (None, "regression", "single_label_classification", "multi_label_classification")


class ConfigError(ValueError):
    """A config.json that cannot describe a BERT model fastbert runs."""


def read_json(path: str | os.PathLike):
    """A JSON file's contents; a malformed file is a ValueError that names it."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"malformed JSON in {path}: {e}") from None


class BertConfig:
    """BERT hyper-parameters, attribute access like ``transformers.BertConfig``.

    ``BertConfig(hidden_size=384, ...)``; ``BertConfig.from_pretrained(dir)``; ``config.save_pretrained(dir)``.
    """

    model_type = "bert"
    # the config.json model_type values this class reads (a subclass's family); the first is its default
    model_types: tuple[str, ...] = ("bert",)
    # whether the family's embeddings have a token-type table (DistilBERT's have none)
    token_types = True

    def __init__(self, **kwargs: Any):
        model_type = kwargs.pop("model_type", type(self).model_type)
        if model_type not in self.model_types:
            raise ConfigError(
                f"config.model_type is {model_type!r}; {type(self).__name__} loads {' / '.join(self.model_types)} "
                "models (fastbert.AutoModel picks the class from config.json)"
            )
        self.model_type = model_type
        num_labels = kwargs.pop("num_labels", None)
        id2label = kwargs.pop("id2label", None)
        label2id = kwargs.pop("label2id", None)
        for name, default in _DEFAULTS.items():
            setattr(self, name, kwargs.pop(name, copy.deepcopy(default)))
        # everything else is kept verbatim and written back
        self._extra: dict[str, Any] = kwargs
        if id2label is not None:
            self.id2label = {int(k): v for k, v in dict(id2label).items()}
        else:
            n = 2 if num_labels is None else int(num_labels)
            self.id2label = {i: f"LABEL_{i}" for i in range(n)}
        if num_labels is not None and int(num_labels) != len(self.id2label):
            self.id2label = {i: f"LABEL_{i}" for i in range(int(num_labels))}
        self.label2id = (
            {str(k): int(v) for k, v in dict(label2id).items()}
            if label2id is not None and len(label2id) == len(self.id2label)
            else {v: k for k, v in self.id2label.items()}
        )
        self.validate()

    # attribute access to kept keys (e.g. config.architectures), like transformers
    def __getattr__(self, name: str) -> Any:
        extra = self.__dict__.get("_extra")
        if extra is not None and name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, n: int) -> None:
        self.id2label = {i: f"LABEL_{i}" for i in range(int(n))}
        self.label2id = {v: k for k, v in self.id2label.items()}

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def max_tokens(self) -> int:
        """The longest sequence the position table allows: ``max_position_embeddings`` for BERT; fewer for
        RoBERTa, whose positions start after the pad id."""
        return self.max_position_embeddings

    @property
    def embedding_dim(self) -> int:
        """The width of the embedding tables: ``hidden_size`` for BERT; ELECTRA and ALBERT's
        ``embedding_size``, projected to ``hidden_size`` after the embeddings' LayerNorm."""
        return self.hidden_size

    def validate(self) -> None:
        for name in (
            "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "max_position_embeddings", "type_vocab_size",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"config.{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"config.hidden_size ({self.hidden_size}) is not a multiple of "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            p = getattr(self, name)
            if not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
                raise ConfigError(f"config.{name} must be a probability in [0, 1), got {p!r}")
        if self.classifier_dropout is not None and not 0.0 <= float(self.classifier_dropout) < 1.0:
            raise ConfigError(f"config.classifier_dropout must be in [0, 1), got {self.classifier_dropout!r}")
        if not isinstance(self.layer_norm_eps, (int, float)) or self.layer_norm_eps <= 0:
            raise ConfigError(f"config.layer_norm_eps must be a positive number, got {self.layer_norm_eps!r}")
        if not isinstance(self.hidden_act, str) or self.hidden_act not in ACTIVATIONS:
            raise ConfigError(
                f"config.hidden_act {self.hidden_act!r} is not supported; fastbert supports {sorted(ACTIVATIONS)}"
            )
        if self.position_embedding_type != "absolute":
            raise ConfigError(
                f"position_embedding_type={self.position_embedding_type!r} is not supported (only 'absolute')"
            )
        if self.is_decoder or self.add_cross_attention:
            raise ConfigError("fastbert runs BERT encoders; is_decoder / add_cross_attention configs are not supported")
        if self.problem_type not in _PROBLEM_TYPES:
            raise ConfigError(f"config.problem_type must be one of {_PROBLEM_TYPES}, got {self.problem_type!r}")
        if self.pad_token_id is not None and not 0 <= int(self.pad_token_id) < self.vocab_size:
            raise ConfigError(f"config.pad_token_id {self.pad_token_id} is outside the vocabulary")

    # ---------------------------------------------------------------------------------------------- I/O
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self._extra)
        for name in _DEFAULTS:
            out[name] = getattr(self, name)
        out["id2label"] = {str(k): v for k, v in self.id2label.items()}
        out["label2id"] = dict(self.label2id)
        out["model_type"] = self.model_type
        return out

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BertConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        model_type = data.get("model_type", cls.model_type)
        if model_type not in cls.model_types:
            raise ConfigError(
                f"config.model_type is {model_type!r}; {cls.__name__} loads {' / '.join(cls.model_types)} models"
            )
        try:
            return cls(**data)
        except (TypeError, ValueError) as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"invalid {cls.__name__} config: {e}") from e

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> BertConfig:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"no config file at {path}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read config file {path}: {e}") from e
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path} is not valid JSON: {e}") from e
        return cls.from_dict(data)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **overrides: Any) -> BertConfig:
        directory = Path(directory)
        path = directory / CONFIG_NAME if directory.is_dir() else directory
        config = cls.from_json_file(path)
        if overrides:
            data = config.to_dict()
            data.update(overrides)
            config = cls.from_dict(data)
        return config

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_NAME).write_text(self.to_json_string(), encoding="utf-8")

    @classmethod
    def from_transformers(cls, hf_config: Any) -> BertConfig:
        return cls.from_dict(hf_config.to_dict())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BertConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"


class RobertaConfig(BertConfig):
    """RoBERTa / XLM-RoBERTa / CamemBERT hyper-parameters: BERT's, with transformers' RoBERTa defaults
    (``pad_token_id=1``, ``bos_token_id=0``, ``eos_token_id=2``, ``vocab_size=50265``).

    The architecture is BERT's; what differs is the position ids (``padding_idx + 1`` onwards, counted over the
    non-pad tokens, see ``fastbert.modeling_roberta``) and the heads. Released checkpoints also set
    ``type_vocab_size=1``, ``layer_norm_eps=1e-5`` and ``max_position_embeddings=514`` in their config.json.
    """

    model_type = "roberta"
    model_types = ("roberta", "xlm-roberta", "camembert")

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("vocab_size", 50265)
        kwargs.setdefault("pad_token_id", 1)
        kwargs.setdefault("bos_token_id", 0)
        kwargs.setdefault("eos_token_id", 2)
        super().__init__(**kwargs)

    @property
    def max_tokens(self) -> int:
        return self.max_position_embeddings - int(self.pad_token_id) - 1

    def validate(self) -> None:
        super().validate()
        if self.pad_token_id is None:
            raise ConfigError("a RoBERTa config needs pad_token_id: its position ids are counted from it")
        if self.max_position_embeddings <= int(self.pad_token_id) + 1:
            raise ConfigError(
                f"config.max_position_embeddings ({self.max_position_embeddings}) leaves no position after "
                f"pad_token_id + 1 = {int(self.pad_token_id) + 1}, where RoBERTa's positions start"
            )


class XLMRobertaConfig(RobertaConfig):
    model_type = "xlm-roberta"
    model_types = ("xlm-roberta", "roberta", "camembert")


class CamembertConfig(RobertaConfig):
    model_type = "camembert"
    model_types = ("camembert", "roberta", "xlm-roberta")
