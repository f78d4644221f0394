"""fastbert: a custom-kernel BERT encoder engine, drop-in for Hugging Face BERT checkpoints."""

from fastbert.config import BertConfig, ConfigError
from fastbert.modeling import (
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForNextSentencePrediction,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    BertPreTrainedModel,
    from_transformers,
)
from fastbert.ops import force_backend
from fastbert.weights import WeightsError

__version__ = "0.1.0"

__all__ = [
    "BertConfig",
    "BertForMaskedLM",
    "BertForMultipleChoice",
    "BertForNextSentencePrediction",
    "BertForPreTraining",
    "BertForQuestionAnswering",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertModel",
    "BertPreTrainedModel",
    "ConfigError",
    "WeightsError",
    "force_backend",
    "from_transformers",
]


def __getattr__(name):
    # the tokenizer and the sentence and cross encoders load lazily (the tokenizer needs the compiled extension)
    if name == "BertTokenizer":
        from fastbert.tokenizer import BertTokenizer

        return BertTokenizer
    if name == "SentenceEncoder":
        from fastbert.encoder import SentenceEncoder

        return SentenceEncoder
    if name == "CrossEncoder":
        from fastbert.cross_encoder import CrossEncoder

        return CrossEncoder
    raise AttributeError(f"module 'fastbert' has no attribute {name!r}")
