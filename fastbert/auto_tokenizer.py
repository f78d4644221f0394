"""fastbert.AutoTokenizer: the tokenizer of any BERT-family checkpoint directory.

WordPiece checkpoints (BERT, DistilBERT, ELECTRA) go to fastbert's C++ `BertTokenizer` when their tokenizer.json
is the pipeline it implements; everything else (RoBERTa's byte-level BPE, the SentencePiece Unigram of XLM-R,
CamemBERT and ALBERT, or a WordPiece tokenizer.json BertTokenizer does not implement) goes to
`TokenizersTokenizer`, which runs the checkpoint's tokenizer.json through the `tokenizers` library. The choice and
its reason are logged once per directory and kept on the class (`AutoTokenizer.explain(directory)`).
"""

from __future__ import annotations

import logging
import os

from .config import read_json
from .tokenizer_common import bert_pipeline_differences

logger = logging.getLogger(__name__)

# tokenizer_config.json's `tokenizer_class` (without "Fast") of the WordPiece classes BertTokenizer implements
_WORDPIECE_CLASSES = {"BertTokenizer", "DistilBertTokenizer", "ElectraTokenizer"}
# model types (config.json) whose vocab.txt is BERT WordPiece (transformers maps all three to BertTokenizer)
_WORDPIECE_MODEL_TYPES = {"bert", "distilbert", "electra"}
# vocab.json + merges.txt: the byte-level BPE classes this module can build a tokenizer.json for
_BYTE_LEVEL_BPE_CLASSES = {"RobertaTokenizer"}


class AutoTokenizer:
    """`AutoTokenizer.from_pretrained(directory, **overrides)`: fastbert.BertTokenizer for WordPiece checkpoints,
    `TokenizersTokenizer` (tokenizer.json through `tokenizers`) for the others."""

    _logged: set = set()

    def __init__(self):
        raise OSError("AutoTokenizer is not instantiated: use AutoTokenizer.from_pretrained(directory)")

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **overrides):
        path = os.fspath(path)
        kind, reason = choose(path)
        key = (os.path.abspath(path), kind)
        if key not in cls._logged:
            cls._logged.add(key)
            logger.info("fastbert.AutoTokenizer: %s for %s (%s)", kind, path, reason)
        if kind == "bert":
            # tokenizer_config.json's tokenizer_class and model_input_names give the defaults (DistilBERT's
            # tokenizer returns no token_type_ids unless asked)
            from .tokenizer import BertTokenizer

            if os.path.isdir(path) and "model_input_names" not in overrides and _generic_tokenizer_json(path):
                # transformers.AutoTokenizer loads a tokenizer.json that names no class and no model as its
                # generic TokenizersBackend, whose model_input_names have no token_type_ids
                overrides["model_input_names"] = ["input_ids", "attention_mask"]
            return BertTokenizer.from_pretrained(path, **overrides)
        from .hf_tokenizer import TokenizersTokenizer, config_kwargs

        if kind == "tokenizers":
            return TokenizersTokenizer.from_pretrained(path, **overrides)
        # kind == "byte_level_bpe": vocab.json + merges.txt, converted as transformers' RobertaTokenizer builds it
        kwargs = config_kwargs(path)
        kwargs.update(overrides)
        return TokenizersTokenizer(roberta_from_vocab_merges(path, kwargs), **kwargs)

    @staticmethod
    def explain(path: str | os.PathLike) -> str:
        """Which tokenizer `from_pretrained` picks for this directory, and why."""
        kind, reason = choose(os.fspath(path))
        return f"{kind}: {reason}"


def choose(path: str) -> tuple[str, str]:
    """("bert" | "tokenizers" | "byte_level_bpe", reason) for a checkpoint directory; a directory
    fastbert cannot tokenize raises with what it needs."""
    if os.path.isfile(path):
        if os.path.basename(path) == "tokenizer.json":
            return "tokenizers", "a tokenizer.json file"
        return "bert", "a vocab file"  # BertTokenizer.from_pretrained reads a vocab.txt path
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no tokenizer directory at {path}")
    config = _read(os.path.join(path, "tokenizer_config.json"))
    tokenizer_class = config.get("tokenizer_class")
    tokenizer_class = tokenizer_class.removesuffix("Fast") if isinstance(tokenizer_class, str) else None
    model_type = _read(os.path.join(path, "config.json")).get("model_type")
    json_path = os.path.join(path, "tokenizer.json")
    if os.path.isfile(json_path):
        data = read_json(json_path)
        model = (data.get("model") or {}) if isinstance(data, dict) else {}
        model_kind = model.get("type") or ("WordPiece" if "continuing_subword_prefix" in model
                                           and "merges" not in model else None)
        if model_kind != "WordPiece":
            return "tokenizers", f"tokenizer.json has a {model_kind or 'non-WordPiece'} model"
        if tokenizer_class is not None and tokenizer_class not in _WORDPIECE_CLASSES:
            return "tokenizers", f"WordPiece, but tokenizer_class {tokenizer_class} is not BERT's"
        reasons = bert_pipeline_differences(data)
        if reasons:
            return "tokenizers", "WordPiece, but not BertTokenizer's pipeline: " + "; ".join(reasons)
        return "bert", "WordPiece tokenizer.json with BERT's pipeline"
    if os.path.isfile(os.path.join(path, "vocab.txt")):
        if tokenizer_class in _WORDPIECE_CLASSES or (tokenizer_class is None and model_type in (
                None, *_WORDPIECE_MODEL_TYPES)):
            return "bert", "vocab.txt of a BERT WordPiece tokenizer"
        raise ValueError(
            f"{path} has a vocab.txt but no tokenizer.json, and its tokenizer ({tokenizer_class or model_type}) is "
            "not BERT WordPiece: fastbert needs the checkpoint's tokenizer.json (transformers writes one: "
            "transformers.AutoTokenizer.from_pretrained(path).save_pretrained(path))"
        )
    if os.path.isfile(os.path.join(path, "vocab.json")) and os.path.isfile(os.path.join(path, "merges.txt")):
        if tokenizer_class in _BYTE_LEVEL_BPE_CLASSES or (tokenizer_class is None and model_type == "roberta"):
            return "byte_level_bpe", "vocab.json + merges.txt of a RoBERTa byte-level BPE (no tokenizer.json)"
        raise ValueError(
            f"{path} has vocab.json + merges.txt but no tokenizer.json, and its tokenizer "
            f"({tokenizer_class or model_type or 'unknown class'}) is not RoBERTa's byte-level BPE: fastbert needs "
            "the checkpoint's tokenizer.json (transformers.AutoTokenizer.from_pretrained(path).save_pretrained(path) "
            "writes one)"
        )
    models = sorted(f for f in os.listdir(path) if f.endswith(".model"))
    if models:
        raise ValueError(
            f"{path} has a SentencePiece model ({', '.join(models)}) but no tokenizer.json: fastbert runs "
            "SentencePiece checkpoints from their tokenizer.json. Convert once with transformers (needs the "
            "sentencepiece package): transformers.AutoTokenizer.from_pretrained(path).save_pretrained(path)"
        )
    raise FileNotFoundError(
        f"{path} has no tokenizer: fastbert needs a tokenizer.json (any family) or a BERT vocab.txt"
    )


def _generic_tokenizer_json(path: str) -> bool:
    """Whether transformers.AutoTokenizer reads this directory as a bare tokenizer.json: no tokenizer_class and
    no model_input_names in tokenizer_config.json, no model_type in config.json."""
    config = _read(os.path.join(path, "tokenizer_config.json"))
    return (
        os.path.isfile(os.path.join(path, "tokenizer.json"))
        and config.get("tokenizer_class") is None
        and config.get("model_input_names") is None
        and _read(os.path.join(path, "config.json")).get("model_type") is None
    )


def _read(path: str) -> dict:
    if not os.path.isfile(path):
        return {}
    data = read_json(path)
    return data if isinstance(data, dict) else {}


def roberta_from_vocab_merges(path: str, kwargs: dict):
    """The `tokenizers.Tokenizer` transformers' RobertaTokenizer builds from vocab.json + merges.txt."""
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE

    config = _read(os.path.join(path, "tokenizer_config.json"))
    add_prefix_space = bool(config.get("add_prefix_space", False))
    trim_offsets = bool(config.get("trim_offsets", True))
    vocab, merges = BPE.read_file(os.path.join(path, "vocab.json"), os.path.join(path, "merges.txt"))
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, dropout=None, continuing_subword_prefix="",
                        end_of_word_suffix="", fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    tok.decoder = decoders.ByteLevel()
    for attr in ("bos_token", "eos_token", "sep_token", "cls_token", "unk_token", "pad_token", "mask_token"):
        if kwargs.get(attr) is None:
            continue
        raw = config.get(attr)
        props = {k: raw[k] for k in ("lstrip", "rstrip", "single_word", "normalized") if k in raw} \
            if isinstance(raw, dict) else {"normalized": False}
        tok.add_special_tokens([AddedToken(kwargs[attr], special=True, **props)])
    sep, cls = kwargs.get("sep_token"), kwargs.get("cls_token")
    if sep is None or cls is None:
        raise ValueError(f"{path}: a RoBERTa tokenizer needs sep_token and cls_token")
    tok.post_processor = processors.RobertaProcessing((sep, tok.token_to_id(sep)), (cls, tok.token_to_id(cls)),
                                                      trim_offsets=trim_offsets, add_prefix_space=add_prefix_space)
    return tok
