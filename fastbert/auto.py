"""``AutoModel`` and friends: the fastbert class for a checkpoint, chosen by its config.json ``model_type``.

``fastbert.AutoModelForSequenceClassification.from_pretrained(dir)`` gives ``BertForSequenceClassification``
for a ``"bert"`` checkpoint and ``RobertaForSequenceClassification`` (or the XLM-RoBERTa / CamemBERT class)
for the RoBERTa family, as transformers' ``Auto*`` classes do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastbert import modeling, modeling_roberta
from fastbert.config import CONFIG_NAME, BertConfig, ConfigError, read_json

# config.json model_type -> the prefix of its classes' names
FAMILIES = {"bert": "Bert", "roberta": "Roberta", "xlm-roberta": "XLMRoberta", "camembert": "Camembert"}
_CLASSES = {**modeling.MODEL_CLASSES, **modeling_roberta.MODEL_CLASSES}


def model_class(model_type: str, task: str) -> type:
    """The fastbert class for ``model_type`` and a task suffix (``"Model"``, ``"ForMaskedLM"``, ...)."""
    if model_type not in FAMILIES:
        raise ConfigError(f"config.model_type {model_type!r} is not one fastbert runs; it runs {sorted(FAMILIES)}")
    name = FAMILIES[model_type] + task
    if name not in _CLASSES:
        raise ConfigError(f"fastbert has no {name} (a {model_type!r} model with {task!r})")
    return _CLASSES[name]


class _Auto:
    task = ""

    def __init__(self, *_: Any, **__: Any):
        raise TypeError(f"{type(self).__name__} is built with .from_pretrained(path) or .from_config(config)")

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any):
        """The matching class's ``from_pretrained(path, **kwargs)``."""
        directory = Path(path)
        config_path = directory / CONFIG_NAME
        if not config_path.is_file():
            raise ConfigError(f"no config file at {config_path}")
        data = read_json(config_path)
        if not isinstance(data, dict):
            raise ConfigError(f"{config_path} is not a JSON object")
        return model_class(data.get("model_type", "bert"), cls.task).from_pretrained(directory, **kwargs)

    @classmethod
    def from_config(cls, config: BertConfig):
        """A freshly initialised model of the matching class."""
        return model_class(config.model_type, cls.task)(config)


class AutoModel(_Auto):
    task = "Model"


class AutoModelForMaskedLM(_Auto):
    task = "ForMaskedLM"


class AutoModelForSequenceClassification(_Auto):
    task = "ForSequenceClassification"


class AutoModelForTokenClassification(_Auto):
    task = "ForTokenClassification"


class AutoModelForQuestionAnswering(_Auto):
    task = "ForQuestionAnswering"
