"""BERT models, drop-in for transformers' ``Bert*`` classes, computed padding-free.

The real tokens of a batch are packed once (``build_packing``), every layer runs on the packed
``(tokens, hidden)`` tensor, and outputs are scattered back to the padded shape at the end. Position ids are the
original column positions, so left padding and masks with holes give transformers' numbers. Every numeric op
goes through ``fastbert.ops``, which picks the Triton kernels for CUDA tensors and torch otherwise.

Parameter names are transformers' names, except that each layer's query/key/value projections are one fused
``attention.self.qkv`` linear layer (see ``fastbert.weights``).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from fastbert import ops, weights
from fastbert.config import ACTIVATIONS, BertConfig
from fastbert.outputs import (
    BaseModelOutputWithPooling,
    BertForPreTrainingOutput,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    NextSentencePredictorOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from fastbert.packing import Packing, QueryOnly, build_packing, pack, packed_positions, unpack

_INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)
IGNORE_INDEX = -100


def _activation(config: BertConfig) -> str:
    kind = ACTIVATIONS[config.hidden_act]
    return kind if kind is not None else config.hidden_act


# ------------------------------------------------------------------------------------------------ modules
class BertEmbeddings(nn.Module):
    """Word + position (+ token type) embeddings, then LayerNorm, all ``config.embedding_dim`` wide (BERT's
    ``hidden_size``; ELECTRA and ALBERT factorise them narrower and project after). A family without token
    types (DistilBERT: ``config.token_types`` False) has no token-type table."""

    def __init__(self, config: BertConfig):
        super().__init__()
        dim = config.embedding_dim
        self.word_embeddings = nn.Embedding(config.vocab_size, dim, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, dim)
        if config.token_types:
            self.token_type_embeddings = nn.Embedding(config.type_vocab_size, dim)
        else:
            self.token_type_embeddings = None
        self.LayerNorm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.dropout_p = config.hidden_dropout_prob
        self.pad_token_id = config.pad_token_id

    def forward(self, ids, positions, token_types, embeds=None):
        """All inputs packed: ``ids``/``positions``/``token_types`` are ``(tokens,)``; ``token_types`` may be
        None (all zero); ``embeds`` replaces the word lookup."""
        if embeds is None:
            embeds = F.embedding(ids, self.word_embeddings.weight, padding_idx=self.pad_token_id)
        pos = self.position_embeddings  # RoBERTa's has a padding_idx (the pad tokens' position): no gradient there
        residual = F.embedding(positions, pos.weight, padding_idx=pos.padding_idx)
        if self.token_type_embeddings is None:
            type_row = None
        elif token_types is None:
            type_row = self.token_type_embeddings.weight[0]
        else:
            type_row = None
            residual = residual + F.embedding(token_types, self.token_type_embeddings.weight)
        ln = self.LayerNorm
        h = ops.layer_norm(embeds, ln.weight, ln.bias, ln.eps, residual=residual, x_bias=type_row)
        return F.dropout(h, self.dropout_p, self.training) if self.dropout_p > 0 and self.training else h


class _Linear(nn.Linear):
    """``nn.Linear`` whose forward nobody calls: the layers read ``weight``/``bias`` into fused ops."""


class BertSelfAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.qkv = _Linear(config.hidden_size, 3 * config.hidden_size)


class _DenseLayerNorm(nn.Module):
    """A dense layer followed by residual + LayerNorm (transformers' ``BertSelfOutput`` and ``BertOutput``)."""

    def __init__(self, in_features: int, config: BertConfig):
        super().__init__()
        self.dense = _Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = _DenseLayerNorm(config.hidden_size, config)


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = _Linear(config.hidden_size, config.intermediate_size)


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = _DenseLayerNorm(config.intermediate_size, config)
        self.heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.hidden_p = config.hidden_dropout_prob
        # dropout on the FFN output before its residual LayerNorm (BERT's hidden dropout; ALBERT's layer has none)
        self.ffn_p = config.hidden_dropout_prob
        self.attn_p = config.attention_probs_dropout_prob
        self.act = _activation(config)

    def forward(self, x: torch.Tensor, packing: Packing) -> torch.Tensor:
        total = x.shape[0]
        qkv_lin = self.attention.self.qkv
        qkv = ops.linear(x, qkv_lin.weight, qkv_lin.bias).view(total, 3, self.heads, self.head_dim)
        ctx = ops.qkv_attention(qkv, packing, dropout_p=self.attn_p, training=self.training)
        ctx = ctx.reshape(total, self.heads * self.head_dim)
        out = self.attention.output
        h = ops.dense_add_layer_norm(
            ctx, out.dense.weight, out.dense.bias, x, out.LayerNorm.weight, out.LayerNorm.bias,
            out.LayerNorm.eps, self.hidden_p, self.training,
        )
        inter = self.intermediate.dense
        i = ops.dense_gelu(h, inter.weight, inter.bias, self.act)
        out = self.output
        return ops.dense_add_layer_norm(
            i, out.dense.weight, out.dense.bias, h, out.LayerNorm.weight, out.LayerNorm.bias,
            out.LayerNorm.eps, self.ffn_p, self.training,
        )


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])


class BertPooler(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, first_tokens: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(first_tokens))


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = _Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.act = _activation(config)

    def forward(self, x):
        h = ops.dense_gelu(x, self.dense.weight, self.dense.bias, self.act)
        return ops.layer_norm(h, self.LayerNorm.weight, self.LayerNorm.bias, self.LayerNorm.eps)


class BertLMPredictionHead(nn.Module):
    """The MLM head; its decoder weight is the word embedding matrix unless the config unties them."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        if not config.tie_word_embeddings:
            self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def forward(self, x, word_embeddings: torch.Tensor):
        decoder = self.decoder.weight if hasattr(self, "decoder") else word_embeddings
        return ops.linear(self.transform(x), decoder, self.bias)


class BertPreTrainingHeads(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)


class BertOnlyMLMHead(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)


class BertOnlyNSPHead(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.seq_relationship = nn.Linear(config.hidden_size, 2)


# ------------------------------------------------------------------------------------------------ base class
class BertPreTrainedModel(nn.Module):
    """Shared loading, saving and initialisation; ``base_model_prefix_str`` is where ``BertModel`` lives,
    ``names`` how the family names its weights in transformers' checkpoints (``weights.NameMap``: the prefix
    its head checkpoints keep the encoder under, ``"bert."``, RoBERTa's ``"roberta."``, and its renames)."""

    base_model_prefix_str = "bert."
    names = weights.BERT_NAMES
    config_class = BertConfig

    def __init__(self, config: BertConfig):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"config must be a fastbert.{self.config_class.__name__}, got {type(config).__name__}")
        self.config = config
        self.gradient_checkpointing = False

    # -- initialisation, as transformers does it
    def init_weights(self) -> None:
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if module.padding_idx is not None:
                    with torch.no_grad():
                        module.weight[module.padding_idx].zero_()
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, BertLMPredictionHead):
                nn.init.zeros_(module.bias)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def gradient_checkpointing_enable(self, **_: Any) -> None:
        self._bert().gradient_checkpointing = True

    def gradient_checkpointing_disable(self) -> None:
        self._bert().gradient_checkpointing = False

    def _bert(self) -> BertModel:
        return self if isinstance(self, BertModel) else self.bert

    def get_input_embeddings(self) -> nn.Embedding:
        return self._bert().embeddings.word_embeddings

    # -- checkpoints
    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        dtype: torch.dtype | str | None = None,
        device: str | torch.device | None = None,
        strict: bool = False,
        **config_overrides: Any,
    ):
        """Load a Hugging Face BERT checkpoint directory (config.json + model.safetensors, a sharded
        index, or pytorch_model.bin). ``dtype=None`` gives float32, ``"auto"`` the checkpoint's dtype."""
        directory = Path(path)
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory} is not a checkpoint directory")
        config = cls.config_class.from_pretrained(directory, **config_overrides)
        files = weights.find_weights(directory)
        raw = weights.read_state_dict(files)
        if dtype == "auto":
            floats = [v.dtype for v in raw.values() if v.is_floating_point()]
            dtype = floats[0] if floats else torch.float32
        model = cls(config)
        state = weights.hf_to_fastbert(raw, model.base_model_prefix_str, config.tie_word_embeddings, model.names)
        weights.check_and_load(model, state, strict=strict, source=str(directory))
        return model.to(device=device, dtype=dtype or torch.float32).eval()

    def save_pretrained(self, directory: str | os.PathLike, safe_serialization: bool = True) -> None:
        """Write config.json and model.safetensors (or pytorch_model.bin) that transformers loads."""
        directory = Path(directory)
        config = copy.deepcopy(self.config)
        config._extra["architectures"] = [type(self).__name__]
        config.save_pretrained(directory)
        state = weights.fastbert_to_hf(self.state_dict(), self.names)
        weights.save_state_dict(state, directory, safe=safe_serialization)

    # -- shared forward machinery
    def _run_bert(self, query_only: QueryOnly, output_hidden_states: bool, **inputs):
        """Every head's call into the packed forward: ``inputs`` are the padded forward arguments
        (``input_ids``, ``attention_mask``, ...); returns ``(packed last hidden state, Packing, padded hidden
        states or None)``."""
        return self._bert().forward_padded(query_only, output_hidden_states, **inputs)

    def _flags(self, output_attentions, output_hidden_states, return_dict, head_mask=None):
        if output_attentions:
            raise NotImplementedError(
                "output_attentions=True is not supported: fastbert's fused attention never materialises the "
                "attention probabilities"
            )
        if head_mask is not None:
            raise NotImplementedError("head_mask is not supported by fastbert (removed in transformers 5 too)")
        if output_hidden_states is None:
            output_hidden_states = bool(getattr(self.config, "output_hidden_states", False))
        if return_dict is None:
            return_dict = bool(getattr(self.config, "return_dict", True))
        return output_hidden_states, return_dict


def _query_only(uses_pooler: bool, attention_mask, *labels) -> QueryOnly:
    """Which padding positions must still be computed: all of them if a label points at one (transformers'
    loss reads them), else column 0 for the pooler, else none."""
    if attention_mask is not None:
        pad = attention_mask == 0
        for lab in labels:
            if lab is not None and lab.shape == attention_mask.shape and bool(((lab != IGNORE_INDEX) & pad).any()):
                return QueryOnly.ALL
    return QueryOnly.FIRST if uses_pooler else QueryOnly.NONE


def _finish(return_dict: bool, output):
    return output if return_dict else output.to_tuple()


# ------------------------------------------------------------------------------------------------ BertModel
class BertModel(BertPreTrainedModel):
    base_model_prefix_str = ""

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.init_weights()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        *,
        head_mask=None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ):
        output_hidden_states, return_dict = self._flags(output_attentions, output_hidden_states, return_dict,
                                                        head_mask)
        x, packing, hidden = self.forward_padded(
            QueryOnly.FIRST if self.pooler is not None else QueryOnly.NONE, output_hidden_states,
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds,
        )
        pooled = self.pool(x, packing) if self.pooler is not None else None
        return _finish(return_dict, BaseModelOutputWithPooling(unpack(x, packing), pooled, hidden))

    def pool(self, x: torch.Tensor, packing: Packing) -> torch.Tensor:
        """The pooler on each sequence's column-0 token of the packed hidden state ``x``."""
        return self.pooler(x.index_select(0, packing.first_token))

    # -- the padding-free encoder
    def forward_padded(self, query_only: QueryOnly, output_hidden_states: bool, input_ids=None,
                       attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None):
        """Padded inputs in, packed out: validation and packing (``prepare_inputs``), then ``forward_packed``.
        Returns the packed last hidden state, its ``Packing``, and the padded hidden states if asked."""
        packing, inputs = self.prepare_inputs(input_ids, attention_mask, token_type_ids, position_ids,
                                              inputs_embeds, query_only)
        layers = self.forward_packed(packing, *inputs, all_layers=output_hidden_states)
        hidden_states = tuple(unpack(h, packing) for h in layers) if output_hidden_states else None
        return layers[-1], packing, hidden_states

    def forward_packed(self, packing: Packing, ids=None, positions=None, token_types=None, embeds=None,
                       all_layers: bool = False) -> list[torch.Tensor]:
        """The one packed forward that every path runs (``forward``, every head, ``SentenceEncoder``, the
        CUDA-graph body): embeddings, then every layer, on packed rows. ``ids``, ``positions``,
        ``token_types`` are ``(total,)`` (``token_types`` None: all zero), or ``embeds`` ``(total, hidden)``
        replaces the word lookup. Returns ``[last]``, or ``[embeddings, layer 1, ...]`` with ``all_layers``."""
        return self.run_layers(self.embeddings(ids, positions, token_types, embeds), packing, all_layers)

    def packed_position_ids(self, packing: Packing, ids: torch.Tensor | None = None) -> torch.Tensor:
        """The position ids of packed rows when the caller gives none: each token's column. A family with
        another rule overrides this (RoBERTa counts from ``pad_token_id + 1``); every path that packs text
        itself (``SentenceEncoder``, ``CrossEncoder``, the CUDA-graph runner) asks the model here."""
        return packed_positions(packing)

    def blocks(self) -> list[nn.Module]:
        """The modules ``run_layers`` applies in order, each ``block(x, packing)``: BERT's layers; ALBERT
        repeats its shared layer groups."""
        return list(self.encoder.layer)
    def prepare_inputs(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                       inputs_embeds=None, query_only: QueryOnly = QueryOnly.NONE):
        """Validation and packing: the part of a forward that reads values back to the host. Returns the
        ``Packing`` and the packed ``(ids, positions, token types, embeds)`` for ``forward_packed``.

        What follows it (``forward_packed``, ``unpack``) only launches device work on fixed shapes, which is
        what a CUDA graph can capture (``fastbert.bench.cuda_graph_fn``)."""
        if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
            raise RuntimeError(
                "a fastbert forward cannot be captured in a CUDA graph whole: validation and packing read "
                "lengths back to the host. Call model.prepare_inputs(...) outside the capture and capture "
                "model.forward_packed(packing, *inputs), or use fastbert.cuda_graphs.CudaGraphRunner, which captures "
                "one graph per shape bucket"
            )
        batch, seqlen = _check_inputs(self.config, self.device, input_ids, attention_mask, token_type_ids,
                                      position_ids, inputs_embeds)
        device = self.device
        if attention_mask is None:
            attention_mask = torch.ones(batch, seqlen, dtype=torch.int64, device=device)
        packing = build_packing(attention_mask, query_only)
        if position_ids is None:
            positions = packed_positions(packing) if not packing.identity else \
                torch.arange(seqlen, device=device).repeat(batch)
        else:
            positions = pack(position_ids.expand(batch, seqlen), packing)
        types = pack(token_type_ids.expand(batch, seqlen), packing) if token_type_ids is not None else None
        ids = pack(input_ids, packing) if input_ids is not None else None
        embeds = pack(inputs_embeds, packing) if inputs_embeds is not None else None
        return packing, (ids, positions, types, embeds)

    def run_layers(self, x: torch.Tensor, packing: Packing, all_layers: bool = False) -> list[torch.Tensor]:
        """The encoder layers on packed ``x``: ``[last]``, or ``[embeddings, layer 1, ...]`` with
        ``all_layers``. Everything data-dependent (validation, packing) happens before this, so
        ``torch.compile(model.run_layers, fullgraph=True)`` traces it in one graph."""
        out = [x] if all_layers else []
        for layer in self.blocks():
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(layer, x, packing, use_reentrant=False)
            else:
                x = layer(x, packing)
            if all_layers:
                out.append(x)
        return out if all_layers else [x]


def _check_inputs(config, device, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds):
    """Clear errors for every malformed input; returns ``(batch, seqlen)``.

    Shapes, dtypes and devices are checked first; the value ranges are then reduced on the device and read
    back with a single host sync (one ``tolist``), which matters on CUDA.
    """
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of input_ids or inputs_embeds")
    if input_ids is not None:
        _check_tensor("input_ids", input_ids, device, integer=True)
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, seq_len), got shape {tuple(input_ids.shape)}")
        shape = tuple(input_ids.shape)
    else:
        _check_tensor("inputs_embeds", inputs_embeds, device, integer=False)
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != config.embedding_dim:
            raise ValueError(
                f"inputs_embeds must be (batch, seq_len, {config.embedding_dim}), got {tuple(inputs_embeds.shape)}"
            )
        shape = tuple(inputs_embeds.shape[:2])
    batch, seqlen = shape
    if batch == 0 or seqlen == 0:
        raise ValueError(f"empty input of shape {shape}")
    if attention_mask is not None:
        _check_tensor("attention_mask", attention_mask, device, integer=None)
        if tuple(attention_mask.shape) != shape:
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but the input has shape {shape}"
            )
    for name, t in (("token_type_ids", token_type_ids), ("position_ids", position_ids)):
        if t is not None:
            _check_tensor(name, t, device, integer=True)
            _check_broadcast(name, t, shape)
    if position_ids is None and seqlen > config.max_position_embeddings:
        raise ValueError(
            f"sequence length {seqlen} is longer than the model's max_position_embeddings "
            f"({config.max_position_embeddings}); truncate the input"
        )
    # value ranges: name -> (min, max) of the tensor, allowed [0, limit)
    ranged = [
        ("input_ids", input_ids, config.vocab_size, "the vocabulary"),
        ("token_type_ids", token_type_ids, config.type_vocab_size, "config.type_vocab_size"),
        ("position_ids", position_ids, config.max_position_embeddings, "config.max_position_embeddings"),
    ]
    ranged = [r for r in ranged if r[1] is not None]
    stats = [torch.stack([t.min(), t.max()]).to(torch.int64) for _, t, _, _ in ranged]
    if attention_mask is not None:
        stats.append(((attention_mask != 0) & (attention_mask != 1)).any().to(torch.int64).reshape(1))
    values = torch.cat(stats).tolist() if stats else []
    for i, (name, _, limit, what) in enumerate(ranged):
        lo, hi = values[2 * i], values[2 * i + 1]
        if lo < 0 or hi >= limit:
            raise ValueError(f"{name} contain {lo if lo < 0 else hi}, outside {what} [0, {limit})")
    if attention_mask is not None and values[-1]:
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (real token)")
    return batch, seqlen


def _check_tensor(name, t, device, integer):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if integer is True and t.dtype not in _INT_DTYPES:
        raise TypeError(f"{name} must hold integers, got dtype {t.dtype}")
    if integer is False and not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device} but the model is on {device}")


def _check_broadcast(name, t, shape):
    if t.dim() != 2 or t.shape[1] != shape[1] or t.shape[0] not in (1, shape[0]):
        raise ValueError(f"{name} has shape {tuple(t.shape)}; expected {shape} or (1, {shape[1]})")


# ------------------------------------------------------------------------------------------------ heads
class BertForPreTraining(BertPreTrainedModel):
    output_class = BertForPreTrainingOutput

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config)
        self.cls = BertPreTrainingHeads(config)
        self.init_weights()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, next_sentence_label=None, *, head_mask=None,
                output_attentions=None, output_hidden_states=None, return_dict=None):
        output_hidden_states, return_dict = self._flags(output_attentions, output_hidden_states, return_dict,
                                                        head_mask)
        return self._pretraining(labels, next_sentence_label, output_hidden_states, return_dict,
                                 input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                                 position_ids=position_ids, inputs_embeds=inputs_embeds)

    def _pretraining(self, labels, pair_label, output_hidden_states, return_dict, **inputs):
        """The family's pre-training forward: masked-LM logits of every token (``mlm_logits``) and two-way
        sentence-pair logits of the pooled first token (``pair_logits``: BERT's next sentence, ALBERT's sentence
        order); the loss is the sum of both cross-entropies when both labels are given."""
        x, packing, hidden = self._run_bert(
            _query_only(True, inputs["attention_mask"], labels), output_hidden_states, **inputs
        )
        logits = self.mlm_logits(x)
        pair = self.pair_logits(self._bert().pool(x, packing))
        loss = None
        if labels is not None and pair_label is not None:
            mlm_loss = F.cross_entropy(logits, pack(labels, packing))
            loss = mlm_loss + F.cross_entropy(pair.view(-1, 2), pair_label.view(-1))
        return _finish(return_dict, self.output_class(loss, unpack(logits, packing), pair, hidden))

    def mlm_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.cls.predictions(x, self.bert.embeddings.word_embeddings.weight)

    def pair_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.cls.seq_relationship(pooled)


class BertForMaskedLM(BertPreTrainedModel):
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.init_weights()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, *, head_mask=None, output_attentions=None,
                output_hidden_states=None, return_dict=None):
        output_hidden_states, return_dict = self._flags(output_attentions, output_hidden_states, return_dict,
                                                        head_mask)
        x, packing, hidden = self._run_bert(
            _query_only(False, attention_mask, labels), output_hidden_states, input_ids=input_ids,
            attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids,
            inputs_embeds=inputs_embeds,
        )
        logits = self.mlm_logits(x)
        loss = F.cross_entropy(logits, pack(labels, packing)) if labels is not None else None
        return _finish(return_dict, MaskedLMOutput(loss, unpack(logits, packing), hidden))

    def mlm_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits of packed hidden states: the family's MLM head (``forward`` is shared)."""
        return self.cls.predictions(x, self._bert().embeddings.word_embeddings.weight)


class BertForNextSentencePrediction(BertPreTrainedModel):
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config)
        self.cls = BertOnlyNSPHead(config)
        self.init_weights()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, *, head_mask=None, output_attentions=None,
                output_hidden_states=None, return_dict=None):
        output_hidden_states, return_dict = self._flags(output_attentions, output_hidden_states, return_dict,
                                                        head_mask)
        x, packing, hidden = self._run_bert(
            QueryOnly.FIRST, output_hidden_states, input_ids=input_ids, attention_mask=attention_mask,
            token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=inputs_embeds,
        )
        logits = self.cls.seq_relationship(self.bert.pool(x, packing))
        loss = F.cross_entropy(logits.view(-1, 2), labels.view(-1)) if labels is not None else None
        return _finish(return_dict, NextSentencePredictorOutput(loss, logits, hidden))


def _classification_loss(config: BertConfig, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """transformers' choice of loss from ``problem_type`` (inferred from the labels when unset)."""
    n = config.num_labels
    problem = config.problem_type
    if problem is None:
        if n == 1:
            problem = "regression"
        elif labels.dtype in (torch.long, torch.int):
            problem = "single_label_classification"
        else:
            problem = "multi_label_classification"
    if problem == "regression":
        return F.mse_loss(logits.squeeze(), labels.squeeze()) if n == 1 else F.mse_loss(logits, labels)
    if problem == "single_label_classification":
        return F.cross_entropy(logits.view(-1, n), labels.view(-1))
    return F.binary_cross_entropy_with_logits(logits, labels)


class _ClassifierDropout:
    def _classifier_p(self) -> float:
        c = self.config
        return c.classifier_dropout if c.classifier_dropout is not None else c.hidden_dropout_prob

    def _drop(self, x):
        p = self._classifier_p()
        return F.dropout(x, p, self.training) if self.training and p > 0 else x


class BertForSequenceClassification(_ClassifierDropout, BertPreTrainedModel):
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, *, head_mask=None, output_attentions=None,
                output_hidden_states=None, return_dict=None):
        output_hidden_states, return_dict = self._flags(output_attentions, output_hidden_states, return_dict,
                                                        head_mask)
        x, packing, hidden = self._run_bert(
            QueryOnly.FIRST, output_hidden_states, input_ids=input_ids, attention_mask=attention_mask,
            token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=inputs_embeds,
        )
        logits = self.classify(x.index_select(0, packing.first_token))
        loss = _classification_loss(self.config, logits, labels) if labels is not None else None
        return _finish(return_dict, SequenceClassifierOutput(loss, logits, hidden))

    def classify(self, first_tokens: torch.Tensor) -> torch.Tensor:
        """Logits from each sequence's first-token hidden state ``(n, hidden)``: the head after the encoder,
        shared by ``forward`` and ``fastbert.CrossEncoder`` (which packs pairs itself)."""
        return self.classifier(self._drop(self.bert.pooler(first_tokens)))


class BertForMultipleChoice(_ClassifierDropout, BertPreTrainedModel):
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.init_weights()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, *, head_mask=None, output_attentions=None,
                output_hidden_states=None, return_dict=None):
        output_hidden_states, return_dict = self._flags(output_attentions, output_hidden_states, return_dict,
                                                        head_mask)
        ref = input_ids if input_ids is not None else inputs_embeds
        if ref is None:
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if not isinstance(ref, torch.Tensor) or ref.dim() != (3 if input_ids is not None else 4):
            raise ValueError("multiple-choice inputs must be (batch, num_choices, seq_len[, embedding width])")
        choices = ref.shape[1]

        def flat(t):
            return t.reshape(-1, t.shape[-1]) if t is not None else None

        embeds = inputs_embeds.reshape(-1, *inputs_embeds.shape[-2:]) if inputs_embeds is not None else None
        x, packing, hidden = self._run_bert(
            self.choice_query_only, output_hidden_states, input_ids=flat(input_ids),
            attention_mask=flat(attention_mask), token_type_ids=flat(token_type_ids),
            position_ids=flat(position_ids), inputs_embeds=embeds,
        )
        logits = self.choice_scores(x, packing).view(-1, choices)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return _finish(return_dict, MultipleChoiceModelOutput(loss, logits, hidden))

    # which padding positions the family's summary of a choice reads (BERT's pooler: column 0)
    choice_query_only = QueryOnly.FIRST

    def choice_scores(self, x: torch.Tensor, packing: Packing) -> torch.Tensor:
        """One score per flattened choice from the packed hidden states (``forward`` is shared)."""
        return self.classifier(self._drop(self._bert().pool(x, packing)))


class BertForTokenClassification(_ClassifierDropout, BertPreTrainedModel):
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, *, head_mask=None, output_attentions=None,
                output_hidden_states=None, return_dict=None):
        output_hidden_states, return_dict = self._flags(output_attentions, output_hidden_states, return_dict,
                                                        head_mask)
        x, packing, hidden = self._run_bert(
            _query_only(False, attention_mask, labels), output_hidden_states, input_ids=input_ids,
            attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids,
            inputs_embeds=inputs_embeds,
        )
        logits = self.classifier(self._drop(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.num_labels), pack(labels, packing).view(-1))
        return _finish(return_dict, TokenClassifierOutput(loss, unpack(logits, packing), hidden))


class BertForQuestionAnswering(BertPreTrainedModel):
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, start_positions=None, end_positions=None, *, head_mask=None,
                output_attentions=None, output_hidden_states=None, return_dict=None):
        output_hidden_states, return_dict = self._flags(output_attentions, output_hidden_states, return_dict,
                                                        head_mask)
        with_loss = start_positions is not None and end_positions is not None
        # transformers' QA loss is a softmax over every position, padding included: compute them all then
        query_only = QueryOnly.ALL if with_loss else QueryOnly.NONE
        x, packing, hidden = self._run_bert(
            query_only, output_hidden_states, input_ids=input_ids, attention_mask=attention_mask,
            token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=inputs_embeds,
        )
        start_logits, end_logits, loss = span_logits_and_loss(self.qa_outputs(x), packing, start_positions,
                                                              end_positions)
        return _finish(return_dict, QuestionAnsweringModelOutput(loss, start_logits, end_logits, hidden))


def span_logits_and_loss(logits: torch.Tensor, packing: Packing, start_positions, end_positions):
    """A QA head's packed ``(total, 2)`` logits -> padded start and end logits ``(batch, seqlen)`` and
    transformers' span loss (None without both positions): positions clamped to ``seqlen``, which is ignored,
    and the mean of the start and end cross-entropies over every column, padding included."""
    start_logits, end_logits = (t.squeeze(-1).contiguous() for t in unpack(logits, packing).split(1, dim=-1))
    if start_positions is None or end_positions is None:
        return start_logits, end_logits, None
    if start_positions.dim() > 1:
        start_positions = start_positions.squeeze(-1)
    if end_positions.dim() > 1:
        end_positions = end_positions.squeeze(-1)
    ignored = start_logits.size(1)
    start_positions = start_positions.clamp(0, ignored)
    end_positions = end_positions.clamp(0, ignored)
    loss = (F.cross_entropy(start_logits, start_positions, ignore_index=ignored)
            + F.cross_entropy(end_logits, end_positions, ignore_index=ignored)) / 2
    return start_logits, end_logits, loss


# ------------------------------------------------------------------------------------------------ conversion
MODEL_CLASSES = {
    cls.__name__: cls
    for cls in (
        BertModel, BertForPreTraining, BertForMaskedLM, BertForNextSentencePrediction,
        BertForSequenceClassification, BertForMultipleChoice, BertForTokenClassification, BertForQuestionAnswering,
    )
}


def from_transformers(hf_model: nn.Module) -> BertPreTrainedModel:
    """A live transformers ``Bert*`` / ``Roberta*`` / ``XLMRoberta*`` model -> the matching fastbert model with
    the same weights, dtype, device."""
    from fastbert.auto import all_model_classes

    classes = all_model_classes()
    name = type(hf_model).__name__
    if name not in classes:
        raise TypeError(f"cannot convert {name}; fastbert has {sorted(classes)}")
    cls = classes[name]
    config = cls.config_class.from_transformers(hf_model.config)
    if issubclass(cls, BertModel):
        model = cls(config, add_pooling_layer=getattr(hf_model, "pooler", None) is not None)
    else:
        model = cls(config)
    state = weights.hf_to_fastbert(hf_model.state_dict(), model.base_model_prefix_str, config.tie_word_embeddings,
                                   model.names)
    weights.check_and_load(model, state, strict=True, source=f"transformers {name}")
    param = next(hf_model.parameters())
    model.to(device=param.device, dtype=param.dtype)
    return model.train(hf_model.training)
