"""fastbert: a custom-kernel BERT encoder engine, drop-in for Hugging Face BERT checkpoints."""

from fastbert.auto import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForPreTraining,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)
from fastbert.config import BertConfig, CamembertConfig, ConfigError, RobertaConfig, XLMRobertaConfig
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
from fastbert.modeling_roberta import (
    CamembertForMaskedLM,
    CamembertForQuestionAnswering,
    CamembertForSequenceClassification,
    CamembertForTokenClassification,
    CamembertModel,
    RobertaForMaskedLM,
    RobertaForQuestionAnswering,
    RobertaForSequenceClassification,
    RobertaForTokenClassification,
    RobertaModel,
    RobertaPreTrainedModel,
    XLMRobertaForMaskedLM,
    XLMRobertaForQuestionAnswering,
    XLMRobertaForSequenceClassification,
    XLMRobertaForTokenClassification,
    XLMRobertaModel,
)
from fastbert.ops import force_backend
from fastbert.weights import WeightsError

__version__ = "0.1.0"

__all__ = [
    "AutoConfig",
    "AutoModelForMultipleChoice",
    "AutoModelForPreTraining",
    "AutoModel",
    "AutoModelForMaskedLM",
    "AutoModelForQuestionAnswering",
    "AutoModelForSequenceClassification",
    "AutoModelForTokenClassification",
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
    "CamembertConfig",
    "CamembertForMaskedLM",
    "CamembertForQuestionAnswering",
    "CamembertForSequenceClassification",
    "CamembertForTokenClassification",
    "CamembertModel",
    "ConfigError",
    "RobertaConfig",
    "RobertaForMaskedLM",
    "RobertaForQuestionAnswering",
    "RobertaForSequenceClassification",
    "RobertaForTokenClassification",
    "RobertaModel",
    "RobertaPreTrainedModel",
    "WeightsError",
    "XLMRobertaConfig",
    "XLMRobertaForMaskedLM",
    "XLMRobertaForQuestionAnswering",
    "XLMRobertaForSequenceClassification",
    "XLMRobertaForTokenClassification",
    "XLMRobertaModel",
    "force_backend",
    "from_transformers",
]


def __getattr__(name):
    # the tokenizer and the sentence and cross encoders load lazily (the tokenizer needs the compiled extension)
    if name == "BertTokenizer":
        from fastbert.tokenizer import BertTokenizer

        return BertTokenizer
    if name == "AutoTokenizer":
        from fastbert.auto_tokenizer import AutoTokenizer

        return AutoTokenizer
    if name == "SentenceEncoder":
        from fastbert.encoder import SentenceEncoder

        return SentenceEncoder
    if name == "CrossEncoder":
        from fastbert.cross_encoder import CrossEncoder

        return CrossEncoder
    # the other families' models and configs (DistilBERT, ELECTRA, ALBERT) load with their module
    from fastbert.auto import all_model_classes

    for cls in all_model_classes().values():
        if cls.__name__ == name:
            return cls
        if cls.config_class.__name__ == name:
            return cls.config_class
    raise AttributeError(f"module 'fastbert' has no attribute {name!r}")
