"""Model outputs: dataclasses with transformers' field names, indexable like tuples (``out[0]``) and by name."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class ModelOutput:
    """Like ``transformers.utils.ModelOutput``: fields that are ``None`` are left out of indexing and iteration."""

    def keys(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def values(self) -> list:
        return [getattr(self, k) for k in self.keys()]

    def items(self) -> list[tuple]:
        return [(k, getattr(self, k)) for k in self.keys()]

    def to_tuple(self) -> tuple:
        return tuple(self.values())

    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in self.keys():
                raise KeyError(key)
            return getattr(self, key)
        return self.to_tuple()[key]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, key) -> bool:
        return key in self.keys()


Tensor = torch.Tensor | None
Hidden = tuple[torch.Tensor, ...] | None


@dataclass
class BaseModelOutput(ModelOutput):
    """An encoder without a pooler (``DistilBertModel``)."""

    last_hidden_state: Tensor = None
    hidden_states: Hidden = None
    attentions: Hidden = None


@dataclass
class BaseModelOutputWithPooling(ModelOutput):
    last_hidden_state: Tensor = None
    pooler_output: Tensor = None
    hidden_states: Hidden = None
    attentions: Hidden = None


@dataclass
class BertForPreTrainingOutput(ModelOutput):
    loss: Tensor = None
    prediction_logits: Tensor = None
    seq_relationship_logits: Tensor = None
    hidden_states: Hidden = None
    attentions: Hidden = None


@dataclass
class MaskedLMOutput(ModelOutput):
    loss: Tensor = None
    logits: Tensor = None
    hidden_states: Hidden = None
    attentions: Hidden = None


@dataclass
class NextSentencePredictorOutput(ModelOutput):
    loss: Tensor = None
    logits: Tensor = None
    hidden_states: Hidden = None
    attentions: Hidden = None


@dataclass
class SequenceClassifierOutput(ModelOutput):
    loss: Tensor = None
    logits: Tensor = None
    hidden_states: Hidden = None
    attentions: Hidden = None


@dataclass
class MultipleChoiceModelOutput(ModelOutput):
    loss: Tensor = None
    logits: Tensor = None
    hidden_states: Hidden = None
    attentions: Hidden = None


@dataclass
class TokenClassifierOutput(ModelOutput):
    loss: Tensor = None
    logits: Tensor = None
    hidden_states: Hidden = None
    attentions: Hidden = None


@dataclass
class QuestionAnsweringModelOutput(ModelOutput):
    loss: Tensor = None
    start_logits: Tensor = None
    end_logits: Tensor = None
    hidden_states: Hidden = None
    attentions: Hidden = None
