"""ALBERT: drop-in for transformers' ``Albert*`` classes, run by BERT's packed engine.

ALBERT is BERT with three changes, each of which lives here and nowhere else:

- factorised embeddings: the tables are ``embedding_size`` wide (BERT's ``BertEmbeddings`` at
  ``config.embedding_dim``), then ``encoder.embedding_hidden_mapping_in`` projects to ``hidden_size``.
  ``AlbertModel.forward_packed`` does the projection, so every path (heads, ``SentenceEncoder``, CUDA graphs)
  gets it;
- shared layers: ``encoder.albert_layer_groups[g].albert_layers[i]`` are fastbert ``BertLayer``s (transformers'
  ``attention.query``, ``ffn``, ``ffn_output``, ``full_layer_layer_norm`` map onto BERT's names through
  ``ALBERT_NAMES``), and ``blocks()`` repeats them as ``AlbertTransformer`` does: outer layer ``l`` runs group
  ``int(l / (num_hidden_layers / num_hidden_groups))``, whose ``inner_group_num`` layers run in turn.
  transformers (5.x) records a hidden state after every inner layer call, so ``output_hidden_states`` gives
  ``1 + num_hidden_layers * inner_group_num`` states, the first the projected embeddings; ``run_layers`` records
  after every block and matches it;
- the heads: the pooler is a bare ``pooler`` linear + tanh; the MLM head ``predictions`` narrows to
  ``embedding_size`` (dense, ``hidden_act``, LayerNorm) before the decoder tied to the word embeddings (an
  untied one adds its own bias, as transformers 5 computes it); the
  pre-training head's second task is sentence order (``sop_classifier``); the classifiers drop out with
  ``classifier_dropout_prob``.

transformers' ALBERT layer has no dropout after its FFN (BERT's has): its layers set ``BertLayer.ffn_p`` to 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fastbert import ops, weights
from fastbert.config import BertConfig, ConfigError
from fastbert.modeling import (
    BertEmbeddings,
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertLayer,
    BertModel,
    BertPreTrainedModel,
    _activation,
    _ClassifierDropout,
    _Linear,
)
from fastbert.outputs import Hidden, ModelOutput, Tensor
from fastbert.packing import Packing


# ------------------------------------------------------------------------------------------------ config
class AlbertConfig(BertConfig):
    """ALBERT hyper-parameters with transformers' ``AlbertConfig`` keys and defaults (ALBERT-xxlarge's sizes,
    ``hidden_act="gelu_new"``, no dropout, ``vocab_size=30000``, ``pad/bos/eos = 0/2/3``) plus ALBERT's own:
    ``embedding_size``, ``num_hidden_groups``, ``inner_group_num``, ``classifier_dropout_prob``."""

    model_type = "albert"
    model_types = ("albert",)
    # ALBERT's keys beyond BERT's, with transformers' defaults: attributes, written back by to_dict
    albert_defaults: dict[str, Any] = {
        "embedding_size": 128,
        "num_hidden_groups": 1,
        "inner_group_num": 1,
        "classifier_dropout_prob": 0.1,
        "bos_token_id": 2,
        "eos_token_id": 3,
    }
    # BERT's keys whose ALBERT default differs
    bert_overrides: dict[str, Any] = {
        "vocab_size": 30000,
        "hidden_size": 4096,
        "num_attention_heads": 64,
        "intermediate_size": 16384,
        "hidden_act": "gelu_new",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    }

    def __init__(self, **kwargs: Any):
        for name, default in self.albert_defaults.items():
            setattr(self, name, kwargs.pop(name, default))
        for name, default in self.bert_overrides.items():
            kwargs.setdefault(name, default)
        super().__init__(**kwargs)

    @property
    def embedding_dim(self) -> int:
        return self.embedding_size

    def validate(self) -> None:
        super().validate()
        for name in ("embedding_size", "num_hidden_groups", "inner_group_num"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"config.{name} must be a positive integer, got {value!r}")
        p = self.classifier_dropout_prob
        if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0):
            raise ConfigError(f"config.classifier_dropout_prob must be None or in [0, 1), got {p!r}")

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for name in self.albert_defaults:
            out[name] = getattr(self, name)
        return out


# ------------------------------------------------------------------------------------------------ weights
# transformers' names inside an ALBERT layer -> BertLayer's. Applied in this order when loading and in reverse
# when saving: the attention pairs come last so that, saving, ``attention.output.dense``/``LayerNorm`` are
# renamed before the bare ``output.dense``/``output.LayerNorm`` (the FFN's) could match inside them.
_LAYER_RENAMES = (
    (".ffn_output.", ".output.dense."),
    (".ffn.", ".intermediate.dense."),
    (".full_layer_layer_norm.", ".output.LayerNorm."),
    (".attention.query.", ".attention.self.query."),
    (".attention.key.", ".attention.self.key."),
    (".attention.value.", ".attention.self.value."),
    (".attention.dense.", ".attention.output.dense."),
    (".attention.LayerNorm.", ".attention.output.LayerNorm."),
)
# tied (every released checkpoint): the decoder is the word embedding matrix and its bias is predictions.bias
ALBERT_NAMES = weights.NameMap(
    prefix="albert.", renames=_LAYER_RENAMES,
    decoders=(("predictions.decoder.weight", "predictions.decoder.bias", "predictions.bias"),),
)
# untied: transformers' decoder keeps its own weight and bias (the one it adds); predictions.bias stays, unused
ALBERT_NAMES_UNTIED = weights.NameMap(
    prefix="albert.", renames=_LAYER_RENAMES, decoders=(("predictions.decoder.weight", None, None),),
)


# ------------------------------------------------------------------------------------------------ modules
class AlbertLayerGroup(nn.Module):
    """``inner_group_num`` BERT layers, run in turn each time the group is used."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.albert_layers = nn.ModuleList([BertLayer(config) for _ in range(config.inner_group_num)])
        for layer in self.albert_layers:
            layer.ffn_p = 0.0  # ALBERT drops out the attention output only, not the FFN's


class AlbertTransformer(nn.Module):
    """Parameters only (``AlbertModel.forward_packed`` and ``blocks`` run them): the embedding projection and
    the ``num_hidden_groups`` shared groups."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.embedding_hidden_mapping_in = _Linear(config.embedding_size, config.hidden_size)
        self.albert_layer_groups = nn.ModuleList([AlbertLayerGroup(config) for _ in range(config.num_hidden_groups)])


class AlbertPooler(nn.Linear):
    """transformers' ``pooler`` linear layer and its ``pooler_activation`` (tanh) in one module, so the weights
    keep transformers' names (``pooler.weight``) and ``BertModel.pool`` applies both."""

    def forward(self, first_tokens: torch.Tensor) -> torch.Tensor:
        return torch.tanh(super().forward(first_tokens))


class AlbertMLMHead(nn.Module):
    """dense (hidden -> embedding_size) -> ``hidden_act`` -> LayerNorm -> decoder (the word embeddings + ``bias``
    when tied; its own weight and bias when untied, as transformers 5 computes)."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.dense = _Linear(config.hidden_size, config.embedding_size)
        if not config.tie_word_embeddings:
            self.decoder = nn.Linear(config.embedding_size, config.vocab_size)
        self.act = _activation(config)

    def forward(self, x: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        h = ops.dense_gelu(x, self.dense.weight, self.dense.bias, self.act)
        h = ops.layer_norm(h, self.LayerNorm.weight, self.LayerNorm.bias, self.LayerNorm.eps)
        if hasattr(self, "decoder"):
            return ops.linear(h, self.decoder.weight, self.decoder.bias)
        return ops.linear(h, word_embeddings, self.bias)


def _classifier_p(config: AlbertConfig, head: str) -> float:
    """``classifier_dropout_prob``, which transformers' ``head`` needs set (``nn.Dropout(None)`` fails there)."""
    if config.classifier_dropout_prob is None:
        raise ConfigError(f"{head} needs config.classifier_dropout_prob (None), as in transformers")
    return config.classifier_dropout_prob


class AlbertSOPHead(nn.Module):
    """Sentence order prediction on the pooled output: dropout -> classifier (``num_labels`` outputs)."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.dropout_p = _classifier_p(config, "AlbertForPreTraining")
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.dropout(pooled, self.dropout_p, self.training))


@dataclass
class AlbertForPreTrainingOutput(ModelOutput):
    loss: Tensor = None
    prediction_logits: Tensor = None
    sop_logits: Tensor = None
    hidden_states: Hidden = None
    attentions: Hidden = None


# ------------------------------------------------------------------------------------------------ base class
class AlbertPreTrainedModel(BertPreTrainedModel):
    """Loading, saving and initialisation as BERT's; the encoder lives under ``albert.``."""

    base_model_prefix_str = "albert."
    config_class = AlbertConfig

    @property
    def names(self) -> weights.NameMap:
        return ALBERT_NAMES if self.config.tie_word_embeddings else ALBERT_NAMES_UNTIED

    def _bert(self) -> AlbertModel:
        return self if isinstance(self, BertModel) else self.albert


class AlbertModel(AlbertPreTrainedModel, BertModel):
    """``BertModel`` with ALBERT's narrow embeddings, their projection, shared layer groups and bare pooler;
    ``forward``, outputs and packing are BERT's."""

    base_model_prefix_str = ""

    def __init__(self, config: AlbertConfig, add_pooling_layer: bool = True):
        BertPreTrainedModel.__init__(self, config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = AlbertTransformer(config)
        self.pooler = AlbertPooler(config.hidden_size, config.hidden_size) if add_pooling_layer else None
        self.init_weights()

    def blocks(self) -> list[nn.Module]:
        """Transformers' ``AlbertTransformer`` order: outer layer ``l`` runs every layer of group
        ``int(l / (num_hidden_layers / num_hidden_groups))``."""
        c = self.config
        groups = self.encoder.albert_layer_groups
        return [
            layer
            for outer in range(c.num_hidden_layers)
            for layer in groups[int(outer / (c.num_hidden_layers / c.num_hidden_groups))].albert_layers
        ]

    def forward_packed(self, packing: Packing, ids=None, positions=None, token_types=None, embeds=None,
                       all_layers: bool = False) -> list[torch.Tensor]:
        """BERT's packed forward with the projection ``embedding_size -> hidden_size`` between the embeddings
        and the layers; ``embeds`` are ``(total, embedding_size)``. With ``all_layers`` the first state is the
        projected embeddings, as transformers records it."""
        x = self.embeddings(ids, positions, token_types, embeds)
        mapping = self.encoder.embedding_hidden_mapping_in
        return self.run_layers(ops.linear(x, mapping.weight, mapping.bias), packing, all_layers)


# ------------------------------------------------------------------------------------------------ heads
class AlbertForPreTraining(AlbertPreTrainedModel, BertForPreTraining):
    """BERT's pre-training forward with ALBERT's heads: sentence order (``sentence_order_label``, ``sop_logits``)
    where BERT has next sentence."""

    output_class = AlbertForPreTrainingOutput

    def __init__(self, config: AlbertConfig):
        BertPreTrainedModel.__init__(self, config)
        self.albert = AlbertModel(config)
        self.predictions = AlbertMLMHead(config)
        self.sop_classifier = AlbertSOPHead(config)
        self.init_weights()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, sentence_order_label=None, *, head_mask=None,
                output_attentions=None, output_hidden_states=None, return_dict=None):
        output_hidden_states, return_dict = self._flags(output_attentions, output_hidden_states, return_dict,
                                                        head_mask)
        return self._pretraining(labels, sentence_order_label, output_hidden_states, return_dict,
                                 input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                                 position_ids=position_ids, inputs_embeds=inputs_embeds)

    def mlm_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictions(x, self.albert.embeddings.word_embeddings.weight)

    def pair_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.sop_classifier(pooled)


class AlbertForMaskedLM(AlbertPreTrainedModel, BertForMaskedLM):
    """BERT's masked-LM forward with ALBERT's ``predictions`` head (through ``embedding_size``)."""

    def __init__(self, config: AlbertConfig):
        BertPreTrainedModel.__init__(self, config)
        self.albert = AlbertModel(config, add_pooling_layer=False)
        self.predictions = AlbertMLMHead(config)
        self.init_weights()

    def mlm_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictions(x, self.albert.embeddings.word_embeddings.weight)


class _AlbertClassifierDropout(_ClassifierDropout):
    """BERT's classifier dropout reading ALBERT's ``classifier_dropout_prob`` (``hidden_dropout_prob`` when
    None, transformers' rule for the token classifier; the pooled heads refuse None at construction)."""

    def _classifier_p(self) -> float:
        c = self.config
        return c.classifier_dropout_prob if c.classifier_dropout_prob is not None else c.hidden_dropout_prob


class AlbertForSequenceClassification(_AlbertClassifierDropout, AlbertPreTrainedModel, BertForSequenceClassification):
    """BERT's sequence classifier (forward inherited): pooled output -> dropout -> classifier."""

    def __init__(self, config: AlbertConfig):
        BertPreTrainedModel.__init__(self, config)
        _classifier_p(config, "AlbertForSequenceClassification")
        self.num_labels = config.num_labels
        self.albert = AlbertModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()

    def classify(self, first_tokens: torch.Tensor) -> torch.Tensor:
        """Logits from the first-token hidden states (``forward`` and ``fastbert.CrossEncoder``): pooler (dense +
        tanh), dropout, classifier."""
        return self.classifier(self._drop(self.albert.pooler(first_tokens)))


class AlbertForMultipleChoice(_AlbertClassifierDropout, AlbertPreTrainedModel, BertForMultipleChoice):
    """BERT's multiple-choice head (forward inherited): pooled output of each choice -> dropout -> one score."""

    def __init__(self, config: AlbertConfig):
        BertPreTrainedModel.__init__(self, config)
        _classifier_p(config, "AlbertForMultipleChoice")
        self.albert = AlbertModel(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.init_weights()


class AlbertForTokenClassification(_AlbertClassifierDropout, AlbertPreTrainedModel, BertForTokenClassification):
    """BERT's token classifier (forward inherited) over an ALBERT encoder."""

    def __init__(self, config: AlbertConfig):
        BertPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.albert = AlbertModel(config, add_pooling_layer=False)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()


class AlbertForQuestionAnswering(AlbertPreTrainedModel, BertForQuestionAnswering):
    """BERT's span head (forward inherited) over an ALBERT encoder."""

    def __init__(self, config: AlbertConfig):
        BertPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.albert = AlbertModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()


MODEL_CLASSES = {
    cls.__name__: cls
    for cls in (
        AlbertModel, AlbertForPreTraining, AlbertForMaskedLM, AlbertForSequenceClassification,
        AlbertForMultipleChoice, AlbertForTokenClassification, AlbertForQuestionAnswering,
    )
}
