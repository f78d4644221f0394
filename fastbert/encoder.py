"""Sentence embeddings: ``SentenceEncoder`` and the ``fastbert encode`` command.

``SentenceEncoder.from_pretrained(dir).encode(texts)`` returns what sentence-transformers' ``encode`` returns
(a float32 ``(n, dim)`` numpy array, or ``(dim,)`` for one string). A sentence-transformers checkpoint's
``modules.json`` decides the pooling (``1_Pooling/config.json``), whether a ``Normalize`` module follows and
the maximum length (``sentence_bert_config.json``); a plain BERT checkpoint gets mean pooling, as
sentence-transformers gives it.

Speed comes from the padding-free model and the batching: texts are tokenized a large chunk at a time and
sorted by token count; each batch of ``batch_size`` texts is packed end to end with no padding (the GEMMs
see every token of the batch at once, attention reads the packed rows in place), embeddings are pooled
straight from the packed rows, and the original order is restored at the end.
"""

from __future__ import annotations

import json
import numbers
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastbert.config import read_json
from fastbert.packing import packed_positions, packing_from_lengths
from fastbert.resources import load_tokenizer

POOLING_MODES = ("cls", "mean", "max", "mean_sqrt_len")
# texts are tokenized and sorted by length this many batches at a time
SORT_CHUNK_BATCHES = 64


def _read_json(path: Path) -> dict:
    """A sentence-transformers settings file, or {} where the checkpoint has none."""
    return read_json(path) if path.is_file() else {}


def read_st_layout(directory: Path) -> tuple[str, bool, int | None]:
    """``(pooling mode, normalize, max_seq_length)`` of a sentence-transformers checkpoint dir; mean pooling,
    no normalisation and no length limit for a plain BERT dir."""
    modules = _read_json(directory / "modules.json") if (directory / "modules.json").is_file() else []
    pooling, normalize = "mean", False
    for m in modules:
        kind = m.get("type", "")
        if kind.endswith("Pooling"):
            pooling = _pooling_mode(_read_json(directory / m.get("path", "") / "config.json"))
        elif kind.endswith("Normalize"):
            normalize = True
        elif not kind.endswith(("Transformer", "Pooling", "Normalize")):
            raise NotImplementedError(f"sentence-transformers module {kind!r} is not supported by fastbert")
    max_len = _read_json(directory / "sentence_bert_config.json").get("max_seq_length")
    return pooling, normalize, max_len


def _pooling_mode(cfg: dict) -> str:
    if isinstance(cfg.get("pooling_mode"), str):
        mode = cfg["pooling_mode"].replace("mean_sqrt_len_tokens", "mean_sqrt_len")
        if mode not in POOLING_MODES:
            raise NotImplementedError(f"pooling mode {mode!r} is not supported (supported: {POOLING_MODES})")
        return mode
    on = [
        m
        for m in POOLING_MODES
        if cfg.get(f"pooling_mode_{m}_token" if m == "cls" else f"pooling_mode_{m}_tokens")
    ]
    others = [
        k
        for k, v in cfg.items()
        if k.startswith("pooling_mode")
        and v
        and k
        not in (
            "pooling_mode_cls_token",
            "pooling_mode_mean_tokens",
            "pooling_mode_max_tokens",
            "pooling_mode_mean_sqrt_len_tokens",
        )
    ]
    if len(on) != 1 or others:
        raise NotImplementedError(
            f"pooling config {cfg} is not supported: fastbert pools with exactly one of {POOLING_MODES}"
        )
    return on[0]


def pool_packed(x: torch.Tensor, cu_seqlens: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool packed rows ``x`` ``(total, hidden)`` per sequence (``cu_seqlens`` ``(batch + 1,)``)."""
    cu = cu_seqlens.to(torch.int64)
    lengths = cu[1:] - cu[:-1]
    if mode == "cls":
        return x.index_select(0, cu[:-1])
    if mode == "max":
        return torch.segment_reduce(x, "max", lengths=lengths, axis=0)
    row = torch.repeat_interleave(
        torch.arange(lengths.numel(), device=x.device), lengths, output_size=x.shape[0]
    )
    sums = x.new_zeros(lengths.numel(), x.shape[1]).index_add_(0, row, x)
    denom = lengths.to(x.dtype)[:, None]
    return sums / (denom if mode == "mean" else denom.sqrt())


class SentenceEncoder:
    """A BERT checkpoint + pooling (+ normalisation): the drop-in for ``SentenceTransformer.encode``."""

    def __init__(
        self,
        model,
        tokenizer,
        pooling: str = "mean",
        normalize: bool = False,
        max_seq_length: int | None = None,
    ):
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.normalize = normalize
        limit = model.config.max_position_embeddings
        self.max_seq_length = min(max_seq_length or limit, limit)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> SentenceEncoder:
        from fastbert.modeling import BertModel

        directory = Path(path)
        pooling, normalize, max_len = read_st_layout(directory)
        # an encoder's own model is never trained: frozen weights let the CPU path keep them in oneDNN's layout
        model = BertModel.from_pretrained(directory, dtype=dtype, device=device).requires_grad_(False)
        return cls(model, load_tokenizer(directory), pooling, normalize, max_len)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def get_sentence_embedding_dimension(self) -> int:
        return self.model.config.hidden_size

    def encode(
        self,
        sentences: str | list[str],
        batch_size: int = 32,
        show_progress_bar: bool = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        normalize_embeddings: bool = False,
        **_: Any,
    ):
        """Embeddings of ``sentences`` in their order: ``(n, dim)`` float32 numpy (``(dim,)`` for one string),
        a tensor with ``convert_to_tensor=True``, a list of tensors with ``convert_to_numpy=False``."""
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        dim = self.get_sentence_embedding_dimension()
        out = torch.empty(len(texts), dim, dtype=torch.float32)
        bar = None
        if show_progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc="encode", unit="text", file=sys.stderr)
        with torch.inference_mode():
            for idx, ids, lengths in self._batches(texts, batch_size):
                out[torch.tensor(idx)] = self._embed(ids, lengths).float().cpu()
                if bar is not None:
                    bar.update(len(idx))
        if bar is not None:
            bar.close()
        if self.normalize or normalize_embeddings:
            out = torch.nn.functional.normalize(out, p=2, dim=1)
        if convert_to_tensor:
            return out[0] if single else out
        if convert_to_numpy:
            arr = out.numpy()
            return arr[0] if single else arr
        return out[0] if single else list(out)

    def _batches(self, texts: list[str], batch_size: int):
        """Yield ``(text indices, flat token ids, lengths)`` for each ``batch_size`` texts.

        Texts are tokenized a chunk of ``batch_size * SORT_CHUNK_BATCHES`` at a time (memory stays bounded on
        large inputs) and sorted by token count inside the chunk, longest first, as sentence-transformers
        sorts by length. A batch is packed end to end with no padding (``packing_from_lengths``)."""
        if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        chunk = batch_size * SORT_CHUNK_BATCHES
        for base in range(0, len(texts), chunk):
            enc = self.tokenizer(
                texts[base : base + chunk], truncation=True, max_length=self.max_seq_length, padding=True,
                return_tensors="np", return_token_type_ids=False,
            )
            ids, mask = np.asarray(enc["input_ids"]), np.asarray(enc["attention_mask"]).astype(bool)
            vocab = self.model.config.vocab_size
            if ids.size and (int(ids.max()) >= vocab or int(ids.min()) < 0):
                raise ValueError(
                    f"the tokenizer produced token ids outside the model's vocabulary (0..{vocab - 1}): "
                    "the tokenizer and the model checkpoint do not belong together"
                )
            lengths = mask.sum(axis=1)
            order = np.argsort(-lengths, kind="stable")
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                # rows in order, each cut to its length: row-major boolean indexing lays them end to end
                flat = torch.from_numpy(ids[idx][mask[idx]].astype(np.int64))
                yield (idx + base).tolist(), flat, lengths[idx].tolist()

    def _embed(self, ids: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """Pooled embeddings of texts whose token ids lie end to end in ``ids``: the packed last hidden state
        (no scatter to a padded shape, no pooler); all-zero token types, positions from 0 in each text."""

        packing = packing_from_lengths(lengths, self.device)
        x = self.model.forward_packed(packing, ids.to(self.device), packed_positions(packing))[-1]
        return pool_packed(x, packing.cu_seqlens, self.pooling)


# ------------------------------------------------------------------------------------------------ CLI
def add_arguments(parser) -> None:
    parser.add_argument("input", help="text file with one text per line, or - for stdin")
    parser.add_argument("-o", "--output", required=True, help="OUT.npy (float32 array) or OUT.jsonl")
    parser.add_argument(
        "--model", default=None, help="checkpoint dir (default: the bundled all-MiniLM-L6-v2)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    out = Path(args.output)
    if out.suffix not in (".npy", ".jsonl"):
        print(f"fastbert encode: output must end in .npy or .jsonl, got {out}", file=sys.stderr)
        return 2
    stream = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8")  # noqa: SIM115
    with stream:
        texts = [line.rstrip("\r\n") for line in stream]
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    from fastbert.resources import default_model

    encoder = SentenceEncoder.from_pretrained(args.model or default_model(), device=device)
    emb = encoder.encode(
        texts,
        batch_size=args.batch_size,
        show_progress_bar=not args.no_progress,
        normalize_embeddings=args.normalize,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, emb)
    else:
        with out.open("w", encoding="utf-8") as f:
            for text, row in zip(texts, emb):
                f.write(json.dumps({"text": text, "embedding": [round(float(v), 7) for v in row]}) + "\n")
    print(
        f"wrote {len(texts)} embeddings of dim {emb.shape[1] if emb.ndim == 2 else 0} to {out}",
        file=sys.stderr,
    )
    return 0
