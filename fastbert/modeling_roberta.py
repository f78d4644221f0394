"""RoBERTa, XLM-RoBERTa and CamemBERT: drop-in for transformers' ``Roberta*`` / ``XLMRoberta*`` /
``Camembert*`` classes, run by BERT's packed engine.

The three share BERT's encoder exactly (same embeddings, layers and fused ops; ``BertModel.forward_packed``).
What differs:

- position ids, when not given: transformers counts the non-pad tokens of each row from ``padding_idx + 1``
  (``cumsum(input_ids != pad) * (input_ids != pad) + pad``), so pad *tokens* sit at position ``pad`` and
  masked tokens that are not pad ids still count; with ``inputs_embeds`` they are simply
  ``pad + 1, pad + 2, ...``. ``RobertaModel.prepare_inputs`` computes them on the padded batch and then
  packs as BERT does; the position embedding's ``padding_idx`` row takes no gradient, as in transformers;
- the weights live under ``roberta.``; heads drop the pooler;
- the heads: sequence classification is dense + tanh + ``out_proj`` on the first token (not BERT's pooler),
  and the MLM head is ``lm_head`` (dense, exact GELU, ``layer_norm``, decoder tied to the word embeddings).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastbert import ops, weights
from fastbert.config import CamembertConfig, RobertaConfig, XLMRobertaConfig
from fastbert.modeling import (
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    BertPreTrainedModel,
    _Linear,
)
from fastbert.packing import QueryOnly, packed_positions


def roberta_position_ids(input_ids, inputs_embeds, pad: int, max_positions: int):
    """transformers' RoBERTa position ids for a padded batch: ``(batch, seqlen)`` from ``input_ids``,
    ``(1, seqlen)`` from ``inputs_embeds``; None when neither is a usable tensor (the caller's checks report it).
    """
    ref = input_ids if isinstance(input_ids, torch.Tensor) else inputs_embeds
    if not isinstance(ref, torch.Tensor) or ref.dim() < 2:
        return None
    seqlen = ref.shape[1]
    if seqlen + pad + 1 > max_positions:
        raise ValueError(
            f"sequence length {seqlen} is longer than the model allows: RoBERTa positions start at "
            f"pad_token_id + 1 = {pad + 1} and max_position_embeddings is {max_positions}, so at most "
            f"{max_positions - pad - 1} tokens; truncate the input"
        )
    if isinstance(input_ids, torch.Tensor):
        real = input_ids != pad
        return torch.cumsum(real, dim=1) * real + pad
    return torch.arange(pad + 1, seqlen + pad + 1, device=ref.device)[None, :]


# ------------------------------------------------------------------------------------------------ base class
class RobertaPreTrainedModel(BertPreTrainedModel):
    """Loading, saving and initialisation as BERT's; the encoder lives under ``roberta.``."""

    base_model_prefix_str = "roberta."
    names = weights.ROBERTA_NAMES
    config_class = RobertaConfig

    def _bert(self) -> RobertaModel:
        return self if isinstance(self, BertModel) else self.roberta


class RobertaModel(RobertaPreTrainedModel, BertModel):
    """``BertModel`` with RoBERTa's position ids; forward, outputs and the packed path are BERT's."""

    base_model_prefix_str = ""

    def __init__(self, config: RobertaConfig, add_pooling_layer: bool = True):
        BertModel.__init__(self, config, add_pooling_layer)
        positions = self.embeddings.position_embeddings
        positions.padding_idx = config.pad_token_id  # transformers' RoBERTa position table has one
        with torch.no_grad():
            positions.weight[config.pad_token_id].zero_()

    def prepare_inputs(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                       inputs_embeds=None, query_only: QueryOnly = QueryOnly.NONE):
        """BERT's validation and packing, with RoBERTa's position ids when none are given."""
        if position_ids is None:
            position_ids = roberta_position_ids(input_ids, inputs_embeds, self.config.pad_token_id,
                                                self.config.max_position_embeddings)
        return super().prepare_inputs(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                                      query_only)

    def packed_position_ids(self, packing, ids=None):
        """RoBERTa's rule on packed rows: ``pad + 1`` onwards, counting only tokens that are not the pad id
        (a pad id inside a text keeps position ``pad``, as transformers computes on the padded batch)."""
        pad = self.config.pad_token_id
        if ids is None:
            return packed_positions(packing) + (pad + 1)
        real = (ids != pad).to(torch.int64)
        total = torch.cumsum(real, 0)
        cu = packing.cu_seqlens.to(torch.int64)
        before = torch.cat([total.new_zeros(1), total])[cu[:-1]]  # non-pad tokens before each row
        row = torch.repeat_interleave(before, cu.diff(), output_size=total.shape[0])
        return (total - row) * real + pad

# ------------------------------------------------------------------------------------------------ heads
class RobertaLMHead(nn.Module):
    """dense -> exact GELU -> layer_norm -> decoder (the word embeddings unless untied) + bias."""

    def __init__(self, config: RobertaConfig):
        super().__init__()
        self.dense = _Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        if not config.tie_word_embeddings:
            self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def forward(self, x, word_embeddings: torch.Tensor):
        h = ops.dense_gelu(x, self.dense.weight, self.dense.bias, "none")  # transformers' gelu, whatever hidden_act
        h = ops.layer_norm(h, self.layer_norm.weight, self.layer_norm.bias, self.layer_norm.eps)
        decoder = self.decoder.weight if hasattr(self, "decoder") else word_embeddings
        return ops.linear(h, decoder, self.bias)


class RobertaClassificationHead(nn.Module):
    """On the first token: dropout -> dense -> ``activation`` (tanh; ELECTRA's head is this with GELU) ->
    dropout -> out_proj."""

    activation = staticmethod(torch.tanh)

    def __init__(self, config: RobertaConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)
        self.dropout_p = config.classifier_dropout if config.classifier_dropout is not None else \
            config.hidden_dropout_prob

    def forward(self, first_tokens: torch.Tensor) -> torch.Tensor:
        x = F.dropout(first_tokens, self.dropout_p, self.training)
        x = F.dropout(self.activation(self.dense(x)), self.dropout_p, self.training)
        return self.out_proj(x)


class RobertaForMaskedLM(RobertaPreTrainedModel, BertForMaskedLM):
    """BERT's masked-LM forward with RoBERTa's ``lm_head``."""

    def __init__(self, config: RobertaConfig):
        BertPreTrainedModel.__init__(self, config)
        self.roberta = RobertaModel(config, add_pooling_layer=False)
        self.lm_head = RobertaLMHead(config)
        self.init_weights()

    def mlm_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.lm_head(x, self.roberta.embeddings.word_embeddings.weight)


class RobertaForSequenceClassification(RobertaPreTrainedModel, BertForSequenceClassification):
    """BERT's sequence-classification forward with RoBERTa's head on the first token (no pooler)."""

    def __init__(self, config: RobertaConfig):
        BertPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.roberta = RobertaModel(config, add_pooling_layer=False)
        self.classifier = RobertaClassificationHead(config)
        self.init_weights()

    def classify(self, first_tokens: torch.Tensor) -> torch.Tensor:
        """Logits from the first-token hidden states (``forward`` and ``fastbert.CrossEncoder``)."""
        return self.classifier(first_tokens)


class RobertaForMultipleChoice(RobertaPreTrainedModel, BertForMultipleChoice):
    """BERT's multiple-choice head (forward inherited: the pooler on each choice's first token, dropout, one
    logit) over a RoBERTa encoder, which keeps its pooler here as in transformers."""

    def __init__(self, config: RobertaConfig):
        BertPreTrainedModel.__init__(self, config)
        self.roberta = RobertaModel(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.init_weights()


class RobertaForTokenClassification(RobertaPreTrainedModel, BertForTokenClassification):
    """BERT's token classifier (forward inherited) over a RoBERTa encoder."""

    def __init__(self, config: RobertaConfig):
        BertPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.roberta = RobertaModel(config, add_pooling_layer=False)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()


class RobertaForQuestionAnswering(RobertaPreTrainedModel, BertForQuestionAnswering):
    """BERT's span head (forward inherited) over a RoBERTa encoder."""

    def __init__(self, config: RobertaConfig):
        BertPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.roberta = RobertaModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()


# ------------------------------------------------------------------------------------------------ aliases
# XLM-RoBERTa and CamemBERT are RoBERTa with another vocabulary: the same classes, their own config defaults
class XLMRobertaModel(RobertaModel):
    config_class = XLMRobertaConfig


class XLMRobertaForMaskedLM(RobertaForMaskedLM):
    config_class = XLMRobertaConfig


class XLMRobertaForSequenceClassification(RobertaForSequenceClassification):
    config_class = XLMRobertaConfig


class XLMRobertaForMultipleChoice(RobertaForMultipleChoice):
    config_class = XLMRobertaConfig


class XLMRobertaForTokenClassification(RobertaForTokenClassification):
    config_class = XLMRobertaConfig


class XLMRobertaForQuestionAnswering(RobertaForQuestionAnswering):
    config_class = XLMRobertaConfig


class CamembertModel(RobertaModel):
    config_class = CamembertConfig


class CamembertForMaskedLM(RobertaForMaskedLM):
    config_class = CamembertConfig


class CamembertForSequenceClassification(RobertaForSequenceClassification):
    config_class = CamembertConfig


class CamembertForMultipleChoice(RobertaForMultipleChoice):
    config_class = CamembertConfig


class CamembertForTokenClassification(RobertaForTokenClassification):
    config_class = CamembertConfig


class CamembertForQuestionAnswering(RobertaForQuestionAnswering):
    config_class = CamembertConfig


MODEL_CLASSES = {
    cls.__name__: cls
    for cls in (
        RobertaModel, RobertaForMaskedLM, RobertaForSequenceClassification, RobertaForMultipleChoice,
        RobertaForTokenClassification, RobertaForQuestionAnswering,
        XLMRobertaModel, XLMRobertaForMaskedLM, XLMRobertaForSequenceClassification, XLMRobertaForMultipleChoice,
        XLMRobertaForTokenClassification, XLMRobertaForQuestionAnswering,
        CamembertModel, CamembertForMaskedLM, CamembertForSequenceClassification, CamembertForMultipleChoice,
        CamembertForTokenClassification, CamembertForQuestionAnswering,
    )
}
