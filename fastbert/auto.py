"""``AutoModel`` and friends: the fastbert class for a checkpoint, chosen by its config.json ``model_type``.

``fastbert.AutoModelForSequenceClassification.from_pretrained(dir)`` gives ``BertForSequenceClassification``
for a ``"bert"`` checkpoint and ``RobertaForSequenceClassification`` (or the XLM-RoBERTa / CamemBERT class)
for the RoBERTa family, as transformers' ``Auto*`` classes do. Each family lives in its own module, imported
the first time one of its models is asked for.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from fastbert.config import CONFIG_NAME, BertConfig, ConfigError, read_json

# config.json model_type -> (the prefix of its classes' names, the module that defines them)
FAMILIES = {
    "bert": ("Bert", "fastbert.modeling"),
    "roberta": ("Roberta", "fastbert.modeling_roberta"),
    "xlm-roberta": ("XLMRoberta", "fastbert.modeling_roberta"),
    "camembert": ("Camembert", "fastbert.modeling_roberta"),
    "distilbert": ("DistilBert", "fastbert.modeling_distilbert"),
    "electra": ("Electra", "fastbert.modeling_electra"),
    "albert": ("Albert", "fastbert.modeling_albert"),
}


def _family_module(model_type: str):
    if model_type not in FAMILIES:
        raise ConfigError(f"config.model_type {model_type!r} is not one fastbert runs; it runs {sorted(FAMILIES)}")
    return importlib.import_module(FAMILIES[model_type][1])


def all_model_classes() -> dict[str, type]:
    """Every fastbert model class by name, over all families (``BertModel``, ``RobertaForMaskedLM``, ...)."""
    classes: dict[str, type] = {}
    for module in dict.fromkeys(m for _, m in FAMILIES.values()):
        classes.update(importlib.import_module(module).MODEL_CLASSES)
    return classes


def model_class(model_type: str, task: str) -> type:
    """The fastbert class for ``model_type`` and a task suffix (``"Model"``, ``"ForMaskedLM"``, ...)."""
    module = _family_module(model_type)
    name = FAMILIES[model_type][0] + task
    if name not in module.MODEL_CLASSES:
        raise ConfigError(f"fastbert has no {name} (a {model_type!r} model with {task!r})")
    return module.MODEL_CLASSES[name]


def config_class(model_type: str) -> type[BertConfig]:
    """The fastbert config class for ``model_type`` (``BertConfig``, ``RobertaConfig``, ...)."""
    return model_class(model_type, "Model").config_class


def read_model_type(path: str | os.PathLike) -> str:
    """``model_type`` of the checkpoint directory ``path`` (``"bert"`` when config.json has none)."""
    config_path = Path(path) / CONFIG_NAME
    if not config_path.is_file():
        raise ConfigError(f"no config file at {config_path}")
    data = read_json(config_path)
    if not isinstance(data, dict):
        raise ConfigError(f"{config_path} is not a JSON object")
    model_type = data.get("model_type", "bert")
    if not isinstance(model_type, str):
        raise ConfigError(f"{config_path}: model_type must be a string, got {model_type!r}")
    return model_type


class _Auto:
    task = ""

    def __init__(self, *_: Any, **__: Any):
        raise TypeError(f"{type(self).__name__} is built with .from_pretrained(path) or .from_config(config)")

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any):
        """The matching class's ``from_pretrained(path, **kwargs)``."""
        return model_class(read_model_type(path), cls.task).from_pretrained(Path(path), **kwargs)

    @classmethod
    def from_config(cls, config: BertConfig):
        """A freshly initialised model of the matching class."""
        return model_class(config.model_type, cls.task)(config)


class AutoConfig:
    """``AutoConfig.from_pretrained(dir)``: the family's config class read from config.json."""

    def __init__(self, *_: Any, **__: Any):
        raise TypeError("AutoConfig is built with .from_pretrained(path)")

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **overrides: Any) -> BertConfig:
        return config_class(read_model_type(path)).from_pretrained(Path(path), **overrides)


class AutoModel(_Auto):
    task = "Model"


class AutoModelForPreTraining(_Auto):
    task = "ForPreTraining"


class AutoModelForMaskedLM(_Auto):
    task = "ForMaskedLM"


class AutoModelForSequenceClassification(_Auto):
    task = "ForSequenceClassification"


class AutoModelForMultipleChoice(_Auto):
    task = "ForMultipleChoice"


class AutoModelForTokenClassification(_Auto):
    task = "ForTokenClassification"


class AutoModelForQuestionAnswering(_Auto):
    task = "ForQuestionAnswering"
