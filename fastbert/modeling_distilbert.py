"""DistilBERT: drop-in for transformers' ``DistilBert*`` classes, run by BERT's packed engine.

DistilBERT's layer is BERT's layer under other names (``q_lin``/``k_lin``/``v_lin``/``out_lin``,
``sa_layer_norm``, ``ffn.lin1``/``lin2``, ``output_layer_norm``), so the encoder is ``BertModel``'s
(``forward_packed``, ``run_layers``, the fused ops) and the names are mapped by :data:`DISTILBERT_NAMES`.
What differs:

- the config: ``dim``, ``n_layers``, ``n_heads``, ``hidden_dim``, ``activation``, ``dropout``,
  ``attention_dropout`` are read into BERT's attributes and written back under DistilBERT's names; every
  LayerNorm's eps is DistilBERT's fixed 1e-12 (:class:`DistilBertConfig`);
- the embeddings: word + position, no token-type table (``config.token_types`` False); position ids are the
  column, as BERT's; with ``sinusoidal_pos_embds`` the position table is initialised with transformers'
  sinusoids (in transformers 5 it is then an ordinary trainable, saved parameter, and so it is here);
- no pooler; the forwards take no ``token_type_ids``; argument order is transformers' (``inputs_embeds``
  before ``labels``, ``position_ids`` last);
- the heads: sequence classification and multiple choice are ``pre_classifier`` -> ReLU -> dropout
  (``seq_classif_dropout``) -> ``classifier`` on the first token (column 0, padding or not); question answering
  applies dropout (``qa_dropout``) before ``qa_outputs``; the MLM head is ``vocab_transform`` -> ``activation``
  -> ``vocab_layer_norm`` -> ``vocab_projector`` (its weight the word embeddings unless untied, its own bias).
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fastbert import ops, weights
from fastbert.config import BertConfig, ConfigError
from fastbert.modeling import (
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForSequenceClassification,
    BertModel,
    BertPreTrainedModel,
    _activation,
    _finish,
    _Linear,
    _query_only,
    span_logits_and_loss,
)
from fastbert.outputs import (
    BaseModelOutput,
    QuestionAnsweringModelOutput,
    TokenClassifierOutput,
)
from fastbert.packing import QueryOnly, pack, unpack

# ------------------------------------------------------------------------------------------------ config
# DistilBERT's config.json key -> the BertConfig attribute the shared layers read, with transformers' default
_RENAMED: dict[str, tuple[str, Any]] = {
    "dim": ("hidden_size", 768),
    "n_layers": ("num_hidden_layers", 6),
    "n_heads": ("num_attention_heads", 12),
    "hidden_dim": ("intermediate_size", 4 * 768),
    "activation": ("hidden_act", "gelu"),
    "dropout": ("hidden_dropout_prob", 0.1),
    "attention_dropout": ("attention_probs_dropout_prob", 0.1),
}
# DistilBERT's own keys, with transformers' defaults
_OWN: dict[str, Any] = {"sinusoidal_pos_embds": False, "qa_dropout": 0.1, "seq_classif_dropout": 0.2}
# transformers' DistilBertConfig.attribute_map: BERT names it takes for DistilBERT keys
_ALIASES = {"hidden_size": "dim", "num_hidden_layers": "n_layers", "num_attention_heads": "n_heads"}
# BertConfig keys transformers' DistilBERT never reads (its LayerNorms' eps is a constant 1e-12, its positions are
# absolute, it has no token types and no classifier_dropout): fixed here; given in a config they are kept verbatim
# for the round trip, and refused where they ask for something else than what DistilBERT runs
_FIXED: dict[str, Any] = {
    "layer_norm_eps": 1e-12, "position_embedding_type": "absolute", "type_vocab_size": 1, "classifier_dropout": None,
}
_IGNORED_KEYS = ("type_vocab_size", "classifier_dropout")  # nothing reads them: any value is kept, never refused
# BertConfig keys transformers 5's DistilBertConfig does not have: written back only if the config had them
_OPTIONAL = ("is_decoder", "add_cross_attention")
_BERT_NAME = re.compile(r"\b(" + "|".join(bert for bert, _ in _RENAMED.values()) + r")\b")
_DISTIL_NAME = {bert: distil for distil, (bert, _) in _RENAMED.items()}


class DistilBertConfig(BertConfig):
    """DistilBERT hyper-parameters: transformers' config.json keys and defaults (``dim=768``, ``n_layers=6``,
    ``n_heads=12``, ``hidden_dim=3072``, ``activation="gelu"``, ``dropout=0.1``, ``attention_dropout=0.1``,
    ``qa_dropout=0.1``, ``seq_classif_dropout=0.2``, ``sinusoidal_pos_embds=False``), read as BERT's attributes
    (``config.hidden_size`` is ``dim``, ``config.intermediate_size`` is ``hidden_dim``, ``config.layer_norm_eps``
    is DistilBERT's fixed 1e-12, ...) so BERT's layers run unchanged, and written back under DistilBERT's names.

    Like transformers, it takes ``hidden_size`` / ``num_hidden_layers`` / ``num_attention_heads`` for ``dim`` /
    ``n_layers`` / ``n_heads``. Other BERT keys have no effect on DistilBERT in transformers either: they are
    kept verbatim, but one that asks for something DistilBERT does not run (``layer_norm_eps=1e-5``,
    ``intermediate_size`` other than ``hidden_dim``, ...) is a :class:`ConfigError`, never silently ignored.
    """

    model_type = "distilbert"
    model_types = ("distilbert",)
    token_types = False

    def __init__(self, **kwargs: Any):
        kwargs = dict(kwargs)
        kwargs.setdefault("bos_token_id", None)
        kwargs.setdefault("eos_token_id", None)
        for bert, distil in _ALIASES.items():
            if bert in kwargs:
                value = kwargs.pop(bert)
                if distil in kwargs and kwargs[distil] != value:
                    raise ConfigError(f"config gives {distil}={kwargs[distil]!r} and {bert}={value!r}; DistilBERT's "
                                      f"{bert} is {distil}: give one")
                kwargs[distil] = value
        distil = {name: kwargs.pop(name, default) for name, (_, default) in _RENAMED.items()}
        for name, default in _OWN.items():
            setattr(self, name, kwargs.pop(name, default))
        runs = {bert: distil[name] for name, (bert, _) in _RENAMED.items()}
        runs.update(_FIXED)
        self._bert_keys: dict[str, Any] = {}  # BERT-named keys the config gave: checked, then written back
        for name in [*runs, *_OPTIONAL]:
            if name not in kwargs:
                continue
            value = self._bert_keys[name] = kwargs.pop(name)
            if name in _OPTIONAL:
                runs[name] = value  # BertConfig.validate refuses decoder configs
            elif name not in _IGNORED_KEYS and value != runs[name]:
                given_as = _DISTIL_NAME.get(name)
                raise ConfigError(
                    f"config.{name}={value!r} is not what DistilBERT runs: "
                    + (f"its {name} is config.{given_as} ({runs[name]!r})" if given_as else
                       f"transformers' DistilBERT always uses {name}={runs[name]!r}")
                )
        super().__init__(**kwargs, **runs)

    def validate(self) -> None:
        if not isinstance(self.sinusoidal_pos_embds, bool):
            raise ConfigError(f"config.sinusoidal_pos_embds must be true or false, got {self.sinusoidal_pos_embds!r}")
        for name in ("qa_dropout", "seq_classif_dropout"):
            p = getattr(self, name)
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
                raise ConfigError(f"config.{name} must be a probability in [0, 1), got {p!r}")
        try:
            super().validate()
        except ConfigError as e:  # name the keys as DistilBERT's config.json does
            raise ConfigError(_BERT_NAME.sub(lambda m: _DISTIL_NAME[m[1]], str(e))) from None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for name in [*(bert for bert, _ in _RENAMED.values()), *_FIXED, *_OPTIONAL]:
            out.pop(name, None)
        for name, (bert, _) in _RENAMED.items():
            out[name] = getattr(self, bert)
        for name in _OWN:
            out[name] = getattr(self, name)
        out.update(self._bert_keys)
        return out

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **overrides: Any) -> DistilBertConfig:
        """As ``BertConfig.from_pretrained``; overrides may use BERT's names (``hidden_size=...``) or DistilBERT's."""
        return super().from_pretrained(directory, **{_ALIASES.get(k, k): v for k, v in overrides.items()})


def sinusoidal_positions(n_pos: int, dim: int) -> torch.Tensor:
    """transformers' ``create_sinusoidal_embeddings``: ``sin`` in even columns, ``cos`` in odd ones, of
    ``pos / 10000 ** (2 * (j // 2) / dim)``, computed in float64 and returned as float32."""
    pos = torch.arange(n_pos, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    out = torch.empty(n_pos, dim, dtype=torch.float64)
    out[:, 0::2] = torch.sin(angle[:, 0::2])
    out[:, 1::2] = torch.cos(angle[:, 1::2])
    return out.float()


# ------------------------------------------------------------------------------------------------ weight names
# transformers' name -> fastbert's (BERT's). Saving applies them right to left, so the attention's
# ".attention.output.dense." / ".attention.output.LayerNorm." are restored before the FFN's ".output.dense." /
# ".output.LayerNorm." (a substring of them) is: the order of this list matters.
DISTILBERT_NAMES = weights.NameMap(
    prefix="distilbert.",
    renames=(
        ("transformer.layer.", "encoder.layer."),
        (".ffn.lin1.", ".intermediate.dense."),
        (".ffn.lin2.", ".output.dense."),
        (".output_layer_norm.", ".output.LayerNorm."),
        (".attention.q_lin.", ".attention.self.query."),
        (".attention.k_lin.", ".attention.self.key."),
        (".attention.v_lin.", ".attention.self.value."),
        (".attention.out_lin.", ".attention.output.dense."),
        (".sa_layer_norm.", ".attention.output.LayerNorm."),
    ),
    roots=("embeddings.", "encoder."),
    # the MLM projector's weight is the word embedding matrix when tied; its bias keeps its own name
    decoders=(("vocab_projector.weight", None, None),),
)


def _dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    return F.dropout(x, p, True) if training and p > 0 else x


# ------------------------------------------------------------------------------------------------ base class
class DistilBertPreTrainedModel(BertPreTrainedModel):
    """Loading, saving and initialisation as BERT's; the encoder lives under ``distilbert.``."""

    base_model_prefix_str = "distilbert."
    names = DISTILBERT_NAMES
    config_class = DistilBertConfig

    def _bert(self) -> DistilBertModel:
        return self if isinstance(self, BertModel) else self.distilbert

    def init_weights(self) -> None:
        super().init_weights()
        if self.config.sinusoidal_pos_embds:
            table = self._bert().embeddings.position_embeddings.weight
            with torch.no_grad():
                table.copy_(sinusoidal_positions(*table.shape))

    def _encode(self, query_only: QueryOnly, output_hidden_states: bool, input_ids, attention_mask, inputs_embeds,
                position_ids):
        """The packed forward of the padded inputs: ``(packed last hidden state, Packing, hidden states)``."""
        return self._run_bert(query_only, output_hidden_states, input_ids=input_ids, attention_mask=attention_mask,
                              position_ids=position_ids, inputs_embeds=inputs_embeds)


class DistilBertModel(DistilBertPreTrainedModel, BertModel):
    """``BertModel`` without token types or pooler; forward arguments and outputs are transformers'
    ``DistilBertModel``'s."""

    base_model_prefix_str = ""

    def __init__(self, config: DistilBertConfig, add_pooling_layer: bool = False):
        if add_pooling_layer:
            raise ConfigError("DistilBERT has no pooler (add_pooling_layer must be False)")
        BertModel.__init__(self, config, add_pooling_layer=False)

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, position_ids=None, *,
                head_mask=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        output_hidden_states, return_dict = self._flags(output_attentions, output_hidden_states, return_dict,
                                                        head_mask)
        x, packing, hidden = self._encode(QueryOnly.NONE, output_hidden_states, input_ids, attention_mask,
                                          inputs_embeds, position_ids)
        return _finish(return_dict, BaseModelOutput(unpack(x, packing), hidden))


# ------------------------------------------------------------------------------------------------ heads
class _TiedProjector(nn.Module):
    """The MLM ``vocab_projector`` when its weight is the word embedding matrix: only its bias is its own."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(vocab_size))


class DistilBertForMaskedLM(DistilBertPreTrainedModel, BertForMaskedLM):
    def __init__(self, config: DistilBertConfig):
        BertPreTrainedModel.__init__(self, config)
        self.act = _activation(config)
        self.distilbert = DistilBertModel(config)
        self.vocab_transform = _Linear(config.hidden_size, config.hidden_size)
        self.vocab_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        if config.tie_word_embeddings:
            self.vocab_projector = _TiedProjector(config.vocab_size)
        else:
            self.vocab_projector = nn.Linear(config.hidden_size, config.vocab_size)
        self.init_weights()

    def get_output_embeddings(self) -> nn.Module:
        return self.vocab_projector

    def mlm_logits(self, x: torch.Tensor) -> torch.Tensor:
        """vocab_transform -> activation -> vocab_layer_norm -> vocab_projector on (packed) hidden states."""
        t, ln, proj = self.vocab_transform, self.vocab_layer_norm, self.vocab_projector
        h = ops.dense_gelu(x, t.weight, t.bias, self.act)
        h = ops.layer_norm(h, ln.weight, ln.bias, ln.eps)
        weight = self.distilbert.embeddings.word_embeddings.weight if isinstance(proj, _TiedProjector) else \
            proj.weight
        return ops.linear(h, weight, proj.bias)

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None, position_ids=None, *,
                head_mask=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        """transformers' DistilBERT argument order; BERT's masked-LM forward (no token types)."""
        return BertForMaskedLM.forward(
            self, input_ids, attention_mask, None, position_ids, inputs_embeds, labels,
            head_mask=head_mask, output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            return_dict=return_dict,
        )


class _FirstTokenClassifier:
    """pre_classifier -> ReLU -> dropout (``seq_classif_dropout``) -> classifier, on each sequence's first token."""

    def classify(self, first_tokens: torch.Tensor) -> torch.Tensor:
        """Logits from the first-token hidden states ``(n, dim)`` (``forward`` and ``fastbert.CrossEncoder``)."""
        h = F.relu(self.pre_classifier(first_tokens))
        return self.classifier(_dropout(h, self.config.seq_classif_dropout, self.training))


class DistilBertForSequenceClassification(_FirstTokenClassifier, DistilBertPreTrainedModel,
                                          BertForSequenceClassification):
    def __init__(self, config: DistilBertConfig):
        BertPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.distilbert = DistilBertModel(config)
        self.pre_classifier = nn.Linear(config.hidden_size, config.hidden_size)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None, position_ids=None, *,
                head_mask=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        """transformers' DistilBERT argument order; BERT's sequence-classification forward (no token types)."""
        return BertForSequenceClassification.forward(
            self, input_ids, attention_mask, None, position_ids, inputs_embeds, labels,
            head_mask=head_mask, output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            return_dict=return_dict,
        )


class DistilBertForMultipleChoice(_FirstTokenClassifier, DistilBertPreTrainedModel, BertForMultipleChoice):
    def __init__(self, config: DistilBertConfig):
        BertPreTrainedModel.__init__(self, config)
        self.distilbert = DistilBertModel(config)
        self.pre_classifier = nn.Linear(config.hidden_size, config.hidden_size)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.init_weights()

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None, position_ids=None, *,
                head_mask=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        """Inputs ``(batch, num_choices, seq_len[, dim])``; transformers' DistilBERT argument order, BERT's
        multiple-choice forward (no token types). ``position_ids`` broadcast against the flattened
        ``(batch * num_choices, seq_len)`` rows as in transformers; a ``(batch, num_choices, seq_len)`` tensor is
        flattened first (transformers cannot take one)."""
        return BertForMultipleChoice.forward(
            self, input_ids, attention_mask, None, position_ids, inputs_embeds, labels,
            head_mask=head_mask, output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            return_dict=return_dict,
        )

    def choice_scores(self, x: torch.Tensor, packing) -> torch.Tensor:
        return self.classify(x.index_select(0, packing.first_token))


class DistilBertForTokenClassification(DistilBertPreTrainedModel):
    def __init__(self, config: DistilBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.distilbert = DistilBertModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None, position_ids=None, *,
                head_mask=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        output_hidden_states, return_dict = self._flags(output_attentions, output_hidden_states, return_dict,
                                                        head_mask)
        x, packing, hidden = self._encode(_query_only(False, attention_mask, labels), output_hidden_states,
                                          input_ids, attention_mask, inputs_embeds, position_ids)
        logits = self.classifier(_dropout(x, self.config.hidden_dropout_prob, self.training))  # config.dropout
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.num_labels), pack(labels, packing).view(-1))
        return _finish(return_dict, TokenClassifierOutput(loss, unpack(logits, packing), hidden))


class DistilBertForQuestionAnswering(DistilBertPreTrainedModel):
    def __init__(self, config: DistilBertConfig):
        if config.num_labels != 2:
            raise ConfigError(f"DistilBertForQuestionAnswering needs config.num_labels == 2 (start and end), got "
                              f"{config.num_labels}")
        super().__init__(config)
        self.distilbert = DistilBertModel(config)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, start_positions=None,
                end_positions=None, position_ids=None, *, head_mask=None, output_attentions=None,
                output_hidden_states=None, return_dict=None):
        output_hidden_states, return_dict = self._flags(output_attentions, output_hidden_states, return_dict,
                                                        head_mask)
        with_loss = start_positions is not None and end_positions is not None
        # transformers' loss is a softmax over every position, padding included: compute them all then
        x, packing, hidden = self._encode(QueryOnly.ALL if with_loss else QueryOnly.NONE, output_hidden_states,
                                          input_ids, attention_mask, inputs_embeds, position_ids)
        start_logits, end_logits, loss = span_logits_and_loss(
            self.qa_outputs(_dropout(x, self.config.qa_dropout, self.training)), packing, start_positions, end_positions
        )
        return _finish(return_dict, QuestionAnsweringModelOutput(loss, start_logits, end_logits, hidden))


MODEL_CLASSES = {
    cls.__name__: cls
    for cls in (
        DistilBertModel, DistilBertForMaskedLM, DistilBertForSequenceClassification, DistilBertForMultipleChoice,
        DistilBertForTokenClassification, DistilBertForQuestionAnswering,
    )
}

__all__ = ["DISTILBERT_NAMES", "MODEL_CLASSES", "DistilBertConfig", "DistilBertPreTrainedModel",
           "sinusoidal_positions", *MODEL_CLASSES]
