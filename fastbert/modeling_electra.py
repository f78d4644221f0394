"""ELECTRA: drop-in for transformers' ``Electra*`` classes, run by BERT's packed engine.

The encoder layers are BERT's exactly (``BertModel.run_layers``, the same fused ops). What differs:

- the embeddings are ``config.embedding_size`` wide (``ElectraConfig.embedding_dim``) and, when that is not
  ``hidden_size`` (the released small models: 128 against 256), a linear
  ``embeddings_project`` takes them to ``hidden_size`` after the embeddings' LayerNorm and dropout, before the
  first layer. ``ElectraModel.forward_packed`` applies it, so every path (``forward``, every head,
  ``SentenceEncoder``, ``CrossEncoder``, the CUDA-graph runner) gets it; ``hidden_states[0]`` is the projected
  embedding output, as transformers returns it. ``inputs_embeds`` are ``embedding_size`` wide;
- the weights live under ``electra.``; no pooler;
- the heads: the discriminator (``ElectraForPreTraining``: dense, ``hidden_act``, one logit per token, BCE over
  the attended tokens), the generator (``ElectraForMaskedLM``: dense to ``embedding_size``, exact GELU,
  LayerNorm, then ``generator_lm_head``, a biased linear layer whose weight is the word embedding matrix unless
  the config unties them), sequence classification on the first token (dense, exact GELU, ``out_proj``), and
  multiple choice through transformers' ``SequenceSummary`` driven by the config's ``summary_*`` keys.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fastbert import ops, weights
from fastbert.config import BertConfig, ConfigError
from fastbert.modeling import (
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    BertPreTrainedModel,
    _activation,
    _finish,
    _Linear,
)
from fastbert.modeling_roberta import RobertaClassificationHead
from fastbert.outputs import (
    Hidden,
    ModelOutput,
    Tensor,
)
from fastbert.packing import Packing, QueryOnly, pack, unpack

# ------------------------------------------------------------------------------------------------ config
# transformers' ElectraConfig keys that BertConfig does not have, with their defaults
_ELECTRA_DEFAULTS: dict[str, Any] = {
    "embedding_size": 128,
    "summary_type": "first",
    "summary_use_proj": True,
    "summary_activation": "gelu",
    "summary_last_dropout": 0.1,
    "use_cache": True,
    "bos_token_id": None,
    "eos_token_id": None,
}


class ElectraConfig(BertConfig):
    """ELECTRA hyper-parameters: BERT's keys with transformers' ELECTRA defaults (``hidden_size=256``,
    ``num_attention_heads=4``, ``intermediate_size=1024``: the small discriminator) plus ``embedding_size``
    (the width of the embedding tables) and the ``summary_*`` keys of the multiple-choice head."""

    model_type = "electra"
    model_types = ("electra",)

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("hidden_size", 256)
        kwargs.setdefault("num_attention_heads", 4)
        kwargs.setdefault("intermediate_size", 1024)
        for name, default in _ELECTRA_DEFAULTS.items():  # set before BertConfig.__init__ validates
            setattr(self, name, kwargs.pop(name, copy.deepcopy(default)))
        super().__init__(**kwargs)

    @property
    def embedding_dim(self) -> int:
        return self.embedding_size

    def validate(self) -> None:
        super().validate()
        size = self.embedding_size
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ConfigError(f"config.embedding_size must be a positive integer, got {size!r}")

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for name in _ELECTRA_DEFAULTS:
            out[name] = getattr(self, name)
        return out


# ------------------------------------------------------------------------------------------------ base class
class ElectraPreTrainedModel(BertPreTrainedModel):
    """Loading, saving and initialisation as BERT's; the encoder lives under ``electra.``."""

    base_model_prefix_str = "electra."
    names = weights.NameMap(
        prefix="electra.",
        roots=("embeddings.", "embeddings_project.", "encoder."),
        decoders=(("generator_lm_head.weight", None, None),),  # tied to the word embeddings unless untied
    )
    config_class = ElectraConfig

    def _bert(self) -> ElectraModel:
        return self if isinstance(self, BertModel) else self.electra

    def init_weights(self) -> None:
        super().init_weights()
        for module in self.modules():
            if isinstance(module, ElectraGeneratorLMHead):  # an nn.Linear in transformers
                if module.weight is not None:
                    nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
                nn.init.zeros_(module.bias)


class ElectraModel(ElectraPreTrainedModel, BertModel):
    """``BertModel`` without a pooler, with embeddings ``embedding_size`` wide projected to ``hidden_size``."""

    base_model_prefix_str = ""

    def __init__(self, config: ElectraConfig, add_pooling_layer: bool = False):
        if add_pooling_layer:
            raise ValueError("ELECTRA has no pooler (add_pooling_layer must be False)")
        BertModel.__init__(self, config, add_pooling_layer=False)
        if config.embedding_size != config.hidden_size:
            self.embeddings_project = nn.Linear(config.embedding_size, config.hidden_size)
            nn.init.normal_(self.embeddings_project.weight, mean=0.0, std=config.initializer_range)
            nn.init.zeros_(self.embeddings_project.bias)
        else:
            self.embeddings_project = None

    def forward_packed(self, packing: Packing, ids=None, positions=None, token_types=None, embeds=None,
                       all_layers: bool = False) -> list[torch.Tensor]:
        """BERT's packed forward with the projection between the embeddings and the first layer; ``embeds``
        are ``(total, embedding_size)``."""
        x = self.embeddings(ids, positions, token_types, embeds)
        if self.embeddings_project is not None:
            x = ops.linear(x, self.embeddings_project.weight, self.embeddings_project.bias)
        return self.run_layers(x, packing, all_layers)



# ------------------------------------------------------------------------------------------------ heads
@dataclass
class ElectraForPreTrainingOutput(ModelOutput):
    loss: Tensor = None
    logits: Tensor = None
    hidden_states: Hidden = None
    attentions: Hidden = None


class ElectraDiscriminatorPredictions(nn.Module):
    """dense -> ``hidden_act`` -> ``dense_prediction``: one logit per token."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.dense = _Linear(config.hidden_size, config.hidden_size)
        self.dense_prediction = nn.Linear(config.hidden_size, 1)
        self.act = _activation(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = ops.dense_gelu(x, self.dense.weight, self.dense.bias, self.act)
        return ops.linear(h, self.dense_prediction.weight, self.dense_prediction.bias).squeeze(-1)


class ElectraGeneratorPredictions(nn.Module):
    """dense to ``embedding_size`` -> exact GELU (whatever ``hidden_act``) -> LayerNorm."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.dense = _Linear(config.hidden_size, config.embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = ops.dense_gelu(x, self.dense.weight, self.dense.bias, "none")
        return ops.layer_norm(h, self.LayerNorm.weight, self.LayerNorm.bias, self.LayerNorm.eps)


class ElectraGeneratorLMHead(nn.Module):
    """transformers' ``generator_lm_head`` linear layer: ``x @ weight.T + bias``, its ``weight`` the word
    embedding matrix (kept nowhere here) unless the config unties them."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        shape = (config.vocab_size, config.embedding_size)
        self.weight = None if config.tie_word_embeddings else nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, x: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        return ops.linear(x, self.weight if self.weight is not None else word_embeddings, self.bias)


class ElectraClassificationHead(RobertaClassificationHead):
    """RoBERTa's head with the exact GELU: on the first token, dropout -> dense -> GELU -> dropout -> out_proj."""

    activation = staticmethod(F.gelu)


def _tanh_gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


# transformers' get_activation names the summary may use -> the function
_SUMMARY_ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": _tanh_gelu,
    "gelu_pytorch_tanh": _tanh_gelu,
    "gelu_fast": _tanh_gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "linear": lambda x: x,
}
_SUMMARY_TYPES = ("first", "last", "mean", "cls_index")


class ElectraSequenceSummary(nn.Module):
    """transformers' ``SequenceSummary`` as ELECTRA's multiple-choice head builds it from the config: one
    vector per sequence (``summary_type``: the first column, the last column, or the mean over every column,
    padding included; ``cls_index`` with no index given is the last column), then dropout
    (``summary_first_dropout``), the ``summary`` projection (``summary_use_proj``; to ``num_labels`` with
    ``summary_proj_to_labels``), ``summary_activation``, dropout (``summary_last_dropout``)."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        kind = getattr(config, "summary_type", "last")
        if kind not in _SUMMARY_TYPES:
            raise ConfigError(f"config.summary_type {kind!r} is not supported; fastbert supports {_SUMMARY_TYPES} "
                              "(transformers implements no other either)")
        self.summary_type = "last" if kind == "cls_index" else kind  # ELECTRA's head never passes cls_index
        width = config.hidden_size
        if getattr(config, "summary_use_proj", False):
            if getattr(config, "summary_proj_to_labels", False) and config.num_labels > 0:
                width = config.num_labels
            self.summary = nn.Linear(config.hidden_size, width)
        else:
            self.summary = None
        if width != config.hidden_size:
            raise ConfigError(f"config.summary_proj_to_labels projects the summary to num_labels={width}, but "
                              f"ELECTRA's multiple-choice classifier reads hidden_size={config.hidden_size}")
        name = getattr(config, "summary_activation", None)
        if name and name not in _SUMMARY_ACTIVATIONS:
            raise ConfigError(f"config.summary_activation {name!r} is not supported; fastbert supports "
                              f"{sorted(_SUMMARY_ACTIVATIONS)} (or None: no activation)")
        self.activation = _SUMMARY_ACTIVATIONS[name] if name else None
        self.first_p = self._probability(config, "summary_first_dropout")
        self.last_p = self._probability(config, "summary_last_dropout")

    @staticmethod
    def _probability(config, name: str) -> float:
        p = getattr(config, name, None) or 0.0
        if not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise ConfigError(f"config.{name} must be a probability in [0, 1), got {p!r}")
        return float(p)

    @property
    def query_only(self) -> QueryOnly:
        """The padding positions the summary reads: column 0, or every column for "last" and "mean"."""
        return QueryOnly.FIRST if self.summary_type == "first" else QueryOnly.ALL

    def forward(self, x: torch.Tensor, packing: Packing) -> torch.Tensor:
        """``x`` packed ``(total, hidden)`` (computed with ``self.query_only``) -> ``(batch, hidden)``."""
        if self.summary_type == "first":
            out = x.index_select(0, packing.first_token)
        elif self.summary_type == "last":
            out = unpack(x, packing)[:, -1]
        else:
            out = unpack(x, packing).mean(dim=1)
        out = F.dropout(out, self.first_p, self.training) if self.first_p > 0 else out
        if self.summary is not None:
            out = self.summary(out)
        if self.activation is not None:
            out = self.activation(out)
        return F.dropout(out, self.last_p, self.training) if self.last_p > 0 else out


class ElectraForPreTraining(ElectraPreTrainedModel):
    """The discriminator: one replaced-token logit per token."""

    def __init__(self, config: ElectraConfig):
        super().__init__(config)
        self.electra = ElectraModel(config)
        self.discriminator_predictions = ElectraDiscriminatorPredictions(config)
        self.init_weights()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, *, head_mask=None, output_attentions=None,
                output_hidden_states=None, return_dict=None):
        output_hidden_states, return_dict = self._flags(output_attentions, output_hidden_states, return_dict,
                                                        head_mask)
        # the loss reads only attended tokens (every token when there is no mask): padding is never needed
        x, packing, hidden = self._run_bert(
            QueryOnly.NONE, output_hidden_states, input_ids=input_ids, attention_mask=attention_mask,
            token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=inputs_embeds,
        )
        logits = self.discriminator_predictions(x)
        loss = None
        if labels is not None:
            loss = F.binary_cross_entropy_with_logits(logits, pack(labels, packing).to(logits.dtype))
        return _finish(return_dict, ElectraForPreTrainingOutput(loss, unpack(logits, packing), hidden))


class ElectraForMaskedLM(ElectraPreTrainedModel, BertForMaskedLM):
    """The generator: BERT's masked-LM forward, logits through ``embedding_size`` and the (tied)
    ``generator_lm_head``."""

    def __init__(self, config: ElectraConfig):
        BertPreTrainedModel.__init__(self, config)
        self.electra = ElectraModel(config)
        self.generator_predictions = ElectraGeneratorPredictions(config)
        self.generator_lm_head = ElectraGeneratorLMHead(config)
        self.init_weights()

    def mlm_logits(self, x: torch.Tensor) -> torch.Tensor:
        h = self.generator_predictions(x)
        return self.generator_lm_head(h, self.electra.embeddings.word_embeddings.weight)


class ElectraForSequenceClassification(ElectraPreTrainedModel, BertForSequenceClassification):
    """BERT's sequence-classification forward with ELECTRA's head on the first token (no pooler)."""

    def __init__(self, config: ElectraConfig):
        BertPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.electra = ElectraModel(config)
        self.classifier = ElectraClassificationHead(config)
        self.init_weights()

    def classify(self, first_tokens: torch.Tensor) -> torch.Tensor:
        """Logits from the first-token hidden states (``forward`` and ``fastbert.CrossEncoder``)."""
        return self.classifier(first_tokens)


class ElectraForMultipleChoice(ElectraPreTrainedModel, BertForMultipleChoice):
    """BERT's multiple-choice forward; each choice's summary (``ElectraSequenceSummary``), then one logit."""

    def __init__(self, config: ElectraConfig):
        BertPreTrainedModel.__init__(self, config)
        self.electra = ElectraModel(config)
        self.sequence_summary = ElectraSequenceSummary(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.init_weights()

    @property
    def choice_query_only(self) -> QueryOnly:
        return self.sequence_summary.query_only

    def choice_scores(self, x: torch.Tensor, packing: Packing) -> torch.Tensor:
        return self.classifier(self.sequence_summary(x, packing))


class ElectraForTokenClassification(ElectraPreTrainedModel, BertForTokenClassification):
    """BERT's token classifier (forward inherited: dropout, classifier, loss over every label) over ELECTRA."""

    def __init__(self, config: ElectraConfig):
        BertPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.electra = ElectraModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()


class ElectraForQuestionAnswering(ElectraPreTrainedModel, BertForQuestionAnswering):
    """BERT's span head (forward inherited) over ELECTRA."""

    def __init__(self, config: ElectraConfig):
        BertPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.electra = ElectraModel(config)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()


MODEL_CLASSES = {
    cls.__name__: cls
    for cls in (
        ElectraModel, ElectraForPreTraining, ElectraForMaskedLM, ElectraForSequenceClassification,
        ElectraForMultipleChoice, ElectraForTokenClassification, ElectraForQuestionAnswering,
    )
}
