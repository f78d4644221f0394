"""Training: data for MLM+NSP pretraining and for text classification, and one small training loop.

The pieces, in the order a run uses them::

    tok = load_tokenizer(model_dir)      # fastbert.resources: fastbert.BertTokenizer, else transformers'
    docs = read_documents(["a.txt", "b.txt"])             # a sentence per line, blank line between docs
    pairs = build_pretraining_pairs(docs, tok, max_length=128)
    collate = PretrainingCollator(tok, whole_word_masking=True)     # masks 15% (80/10/10) per batch
    history = train(model, pairs, collate, TrainConfig(output_dir="out", max_steps=1000))

``train`` only needs a model whose forward takes the batch's keys and returns ``.loss``, so the same loop
drives transformers' models (the parity tests and the benchmark rely on that). Under ``torch.distributed`` it
wraps the model in DDP and gives each process its share of every batch; nothing else changes.

Tokenizers are used through a small interface: ``cls/sep/pad/mask_token_id``, a vocabulary (``get_vocab()`` or
``vocab``), and ``tok(texts, text_pair=..., padding=, truncation=, max_length=, return_tensors="pt")``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import random
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from fastbert.modeling import IGNORE_INDEX

TRAINER_STATE = "trainer_state.pt"
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


# ------------------------------------------------------------------------------------------------ tokenizer
@dataclass(frozen=True)
class TokenIds:
    """What the collators need to know about a tokenizer."""

    cls: int
    sep: int
    pad: int
    mask: int
    vocab_size: int
    continuation: torch.Tensor  # ids of word pieces that continue a word ("##..."), sorted

    @classmethod
    def of(cls, tokenizer) -> TokenIds:
        vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else dict(tokenizer.vocab)
        cont = sorted(i for t, i in vocab.items() if t.startswith("##"))
        ids = {}
        for name in ("cls", "sep", "pad", "mask"):
            value = getattr(tokenizer, f"{name}_token_id", None)
            if value is None:
                raise ValueError(f"the tokenizer has no {name}_token_id")
            ids[name] = int(value)
        return cls(**ids, vocab_size=max(len(vocab), max(vocab.values()) + 1),
                   continuation=torch.tensor(cont, dtype=torch.long))


def encode_lines(tokenizer, lines: Sequence[str]) -> list[list[int]]:
    """Word-piece ids of each line, without special tokens."""
    try:
        return [list(ids) for ids in tokenizer(list(lines), add_special_tokens=False)["input_ids"]]
    except TypeError:  # a tokenizer without add_special_tokens: go through tokenize()
        return [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line)) for line in lines]


# ----------------------------------------------------------------------------------------- pretraining data
def read_documents(paths: Iterable[str | os.PathLike]) -> list[list[str]]:
    """Text files with one sentence per line and a blank line between documents (BERT's format). A file with
    no blank line is one document."""
    docs: list[list[str]] = []
    for path in paths:
        current: list[str] = []
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line:
                current.append(line)
            elif current:
                docs.append(current)
                current = []
        if current:
            docs.append(current)
    return docs


@dataclass
class PretrainingPair:
    a: list[int]
    b: list[int]
    is_random_next: int  # transformers' next_sentence_label: 0 = B follows A, 1 = B is random


def build_pretraining_pairs(
    documents: Sequence[Sequence[str]],
    tokenizer,
    max_length: int = 128,
    short_seq_prob: float = 0.1,
    seed: int = 0,
) -> list[PretrainingPair]:
    """Sentence-pair examples for NSP, as in BERT's ``create_pretraining_data``: consecutive sentences of a
    document are gathered up to a target length and split at a random sentence boundary into A and B; half the
    time B is replaced by text from another document (``is_random_next=1``)."""
    if max_length < 8:
        raise ValueError(f"max_length must be at least 8, got {max_length}")
    rng = random.Random(seed)
    docs = [[s for s in encode_lines(tokenizer, doc) if s] for doc in documents]
    docs = [d for d in docs if d]
    if not docs:
        raise ValueError("no text to pretrain on: every document is empty")
    budget = max_length - 3  # [CLS] A [SEP] B [SEP]
    pairs: list[PretrainingPair] = []
    for d, doc in enumerate(docs):
        target = rng.randint(2, budget) if rng.random() < short_seq_prob else budget
        chunk: list[list[int]] = []
        length = 0
        i = 0
        while i < len(doc):
            chunk.append(doc[i])
            length += len(doc[i])
            if i == len(doc) - 1 or length >= target:
                a_end = 1 if len(chunk) < 2 else rng.randint(1, len(chunk) - 1)
                a = [t for s in chunk[:a_end] for t in s]
                if len(chunk) == 1 or rng.random() < 0.5:
                    others = [k for k in range(len(docs)) if k != d]
                    other = docs[rng.choice(others)] if others else doc
                    start = rng.randrange(len(other))
                    b = [t for s in other[start:] for t in s][: max(1, target - len(a))]
                    is_random = 1
                    i -= len(chunk) - a_end  # the unused sentences start the next chunk
                else:
                    b = [t for s in chunk[a_end:] for t in s]
                    is_random = 0
                a, b = _truncate_pair(a, b, budget, rng)
                pairs.append(PretrainingPair(a, b, is_random))
                chunk, length = [], 0
                target = rng.randint(2, budget) if rng.random() < short_seq_prob else budget
            i += 1
    return pairs


def _truncate_pair(a: list[int], b: list[int], budget: int, rng: random.Random):
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        longer = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()
    if not a:
        a, b = b[:1], b[1:]
    if not b:
        b = a[-1:]
        a = a[:-1] or a
    return a, b


class PretrainingCollator:
    """Pairs -> a ``BertForPreTraining`` batch: ``[CLS] A [SEP] B [SEP]``, padded to the longest pair, with
    ``labels`` (MLM, -100 where not predicted) and ``next_sentence_label``.

    Of the real, non-special tokens, ``mlm_probability`` are chosen (whole words when ``whole_word_masking``:
    a word is its first piece and the ``##`` pieces after it); of those 80% become [MASK], 10% a random token
    and 10% stay. Masks are drawn anew for every batch from ``generator`` (saved and restored by ``train``).
    """

    def __init__(self, tokenizer, mlm_probability: float = 0.15, whole_word_masking: bool = False,
                 seed: int = 0):
        self.ids = tokenizer if isinstance(tokenizer, TokenIds) else TokenIds.of(tokenizer)
        if not 0 < mlm_probability < 1:
            raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability}")
        self.mlm_probability = mlm_probability
        self.whole_word_masking = whole_word_masking
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, pairs: Sequence[PretrainingPair]) -> dict[str, torch.Tensor]:
        ids = self.ids
        width = max(len(p.a) + len(p.b) + 3 for p in pairs)
        input_ids = torch.full((len(pairs), width), ids.pad, dtype=torch.long)
        types = torch.zeros_like(input_ids)
        attention = torch.zeros_like(input_ids)
        for r, p in enumerate(pairs):
            row = [ids.cls, *p.a, ids.sep, *p.b, ids.sep]
            input_ids[r, : len(row)] = torch.tensor(row)
            types[r, len(p.a) + 2: len(row)] = 1
            attention[r, : len(row)] = 1
        masked, labels = self.mask_tokens(input_ids, attention)
        nsp = torch.tensor([p.is_random_next for p in pairs], dtype=torch.long)
        return {"input_ids": masked, "attention_mask": attention, "token_type_ids": types, "labels": labels,
                "next_sentence_label": nsp}

    def mask_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """Returns ``(masked input_ids, labels)``."""
        ids, g = self.ids, self.generator
        special = (input_ids == ids.cls) | (input_ids == ids.sep) | (input_ids == ids.pad)
        eligible = attention_mask.bool() & ~special
        if self.whole_word_masking:
            # a word id per token: it changes at every token that does not continue the previous word
            starts = ~torch.isin(input_ids, ids.continuation) | ~eligible
            word = torch.cumsum(starts.flatten().long(), 0) - 1
            chosen_word = torch.rand(int(word[-1]) + 1, generator=g) < self.mlm_probability
            chosen = chosen_word[word].view_as(input_ids) & eligible
        else:
            chosen = (torch.rand(input_ids.shape, generator=g) < self.mlm_probability) & eligible
        if not bool(chosen.any()) and bool(eligible.any()):  # a batch with nothing to predict has no MLM loss
            flat = torch.nonzero(eligible.flatten()).flatten()
            pick = flat[torch.randint(len(flat), (1,), generator=g)]
            chosen.view(-1)[pick] = True
        labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
        roll = torch.rand(input_ids.shape, generator=g)
        out = input_ids.clone()
        out[chosen & (roll < 0.8)] = ids.mask
        to_random = chosen & (roll >= 0.8) & (roll < 0.9)
        out[to_random] = torch.randint(ids.vocab_size, input_ids.shape, generator=g)[to_random]
        return out, labels


# -------------------------------------------------------------------------------------- classification data
@dataclass
class TextExample:
    text: str
    label: Any
    text_pair: str | None = None


def read_text_classification(path: str | os.PathLike, text_column: str = "text", label_column: str = "label",
                             pair_column: str | None = None) -> list[TextExample]:
    """Rows of a ``.csv``/``.tsv`` (with a header) or ``.jsonl`` file holding a text and a label."""
    path = Path(path)
    if path.suffix in (".jsonl", ".json"):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    elif path.suffix in (".csv", ".tsv"):
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ","))
    else:
        raise ValueError(f"{path}: expected a .csv, .tsv or .jsonl file")
    out = []
    for n, row in enumerate(rows, 1):
        missing = [c for c in (text_column, label_column, pair_column) if c is not None and c not in row]
        if missing:
            raise ValueError(f"{path} row {n} has no column {missing[0]!r} (it has {sorted(row)})")
        out.append(TextExample(str(row[text_column]), row[label_column],
                               str(row[pair_column]) if pair_column else None))
    if not out:
        raise ValueError(f"{path} holds no rows")
    return out


class ClassificationCollator:
    """Examples -> a ``BertForSequenceClassification`` batch; ``label2id`` maps labels to class ids (None for
    regression: labels become floats)."""

    def __init__(self, tokenizer, label2id: dict | None, max_length: int = 128):
        self.tokenizer = tokenizer
        self.label2id = label2id
        self.max_length = max_length

    def __call__(self, examples: Sequence[TextExample]) -> dict[str, torch.Tensor]:
        texts = [e.text for e in examples]
        pairs = [e.text_pair for e in examples] if examples[0].text_pair is not None else None
        enc = self.tokenizer(texts, text_pair=pairs, padding=True, truncation=True,
                             max_length=self.max_length, return_tensors="pt")
        batch = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        if self.label2id is None:
            batch["labels"] = torch.tensor([float(e.label) for e in examples])
        else:
            batch["labels"] = torch.tensor([self.label2id[str(e.label)] for e in examples], dtype=torch.long)
        return batch


@torch.no_grad()
def evaluate_classification(model: nn.Module, examples: Sequence[TextExample],
                            collate: ClassificationCollator, batch_size: int = 64) -> dict[str, float]:
    """Mean loss and accuracy of a sequence classifier over ``examples``."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss_sum, correct, n = 0.0, 0, 0
    for start in range(0, len(examples), batch_size):
        batch = {k: v.to(device) for k, v in collate(examples[start: start + batch_size]).items()}
        out = model(**batch)
        size = batch["labels"].shape[0]
        loss_sum += float(out.loss) * size
        if out.logits.shape[-1] > 1:
            correct += int((out.logits.argmax(-1) == batch["labels"]).sum())
        n += size
    model.train(was_training)
    return {"loss": loss_sum / n, "accuracy": correct / n, "examples": n}


# ------------------------------------------------------------------------------------------------ the loop
@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train`. ``batch_size`` is per process and per micro-step; one optimizer step
    sees ``batch_size * grad_accum * world_size`` examples."""

    output_dir: str | None = None
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    warmup_steps: int | None = None  # when None: warmup_ratio of the total
    warmup_ratio: float = 0.0
    max_steps: int | None = None  # when None: epochs over the data
    epochs: float = 1.0
    batch_size: int = 32
    grad_accum: int = 1
    max_grad_norm: float | None = 1.0
    precision: str = "fp32"  # "fp16" (with a grad scaler) or "bf16": CUDA only
    gradient_checkpointing: bool = False
    shuffle: bool = True
    seed: int = 0
    log_steps: int = 10
    save_steps: int | None = None  # and always at the end when output_dir is set
    save_total_limit: int | None = 2
    resume: bool | str = False  # True: the latest checkpoint in output_dir; or a checkpoint directory
    progress: bool = True


PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def linear_schedule(warmup: int, total: int) -> Callable[[int], float]:
    """Learning-rate factor: 0 -> 1 over ``warmup`` steps, then 1 -> 0 at ``total`` (transformers' linear)."""

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only: biases, LayerNorm weights and the MLM bias are not decayed."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def init_distributed() -> bool:
    """Join the process group torchrun describes (WORLD_SIZE > 1): nccl on CUDA, gloo otherwise."""
    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return dist.is_initialized()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def _world() -> tuple[int, int]:
    return (dist.get_world_size(), dist.get_rank()) if dist.is_initialized() else (1, 0)


def train(model: nn.Module, dataset: Sequence, collate_fn: Callable, config: TrainConfig,
          eval_fn: Callable[[nn.Module], dict] | None = None) -> list[dict[str, float]]:
    """Train ``model`` in place on ``dataset`` (batches made by ``collate_fn``); returns the per-step history
    ``[{"step", "loss", "lr", "grad_norm"}, ...]`` (loss averaged over micro-batches and processes).

    AdamW with linear warm-up and decay, gradient clipping, accumulation, optional AMP and gradient
    checkpointing. With ``output_dir``, checkpoints ``checkpoint-<step>/`` hold ``save_pretrained`` weights
    and ``trainer_state.pt`` (optimizer, scheduler, scaler, data position, RNG states); ``resume`` continues
    from one exactly where it stopped. ``eval_fn(model)`` runs at the end; its metrics go to ``metrics.json``.
    Seeds torch's global RNG with ``config.seed`` (dropout), as transformers' Trainer does.
    """
    world, rank = _world()
    device = next(model.parameters()).device
    amp_dtype = PRECISIONS[config.precision]
    if amp_dtype is not None and device.type != "cuda":
        raise ValueError(f"precision={config.precision!r} needs a CUDA model; on {device.type} train in fp32")
    if config.grad_accum < 1 or config.batch_size < 1:
        raise ValueError("batch_size and grad_accum must be at least 1")
    torch.manual_seed(config.seed)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    inner = model
    if world > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    # the data: every process walks the same seeded permutation and takes every world-th example of it
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=config.shuffle,
                                 seed=config.seed)
    batches_per_epoch = math.ceil(len(sampler) / config.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / config.grad_accum)
    total = config.max_steps if config.max_steps is not None else math.ceil(config.epochs * steps_per_epoch)
    warmup = config.warmup_steps if config.warmup_steps is not None else int(config.warmup_ratio * total)

    optimizer = torch.optim.AdamW(param_groups(inner, config.weight_decay), lr=config.learning_rate,
                                  betas=config.adam_betas, eps=config.adam_eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(warmup, total))
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")

    step, epoch, batch_in_epoch = 0, 0, 0
    history: list[dict[str, float]] = []
    out_dir = Path(config.output_dir) if config.output_dir else None
    if out_dir is not None and rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    if config.resume:
        ckpt = _find_checkpoint(out_dir, config.resume)
        state = _load_checkpoint(ckpt, inner, optimizer, scheduler, scaler, collate_fn)
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        history.extend(state["history"])

    bar = _progress(total, step, enabled=config.progress and rank == 0)
    log_file = (out_dir / "train_log.jsonl").open("a", encoding="utf-8") if out_dir and rank == 0 else None
    start_time = time.perf_counter()
    try:
        while step < total:
            sampler.set_epoch(epoch)
            order = list(torch.utils.data.BatchSampler(sampler, config.batch_size, drop_last=False))
            # its own generator: a DataLoader otherwise draws its base seed from the global RNG (which dropout
            # uses), and a resumed run would then draw it at another point
            loader = DataLoader(dataset, batch_sampler=order[batch_in_epoch:], collate_fn=collate_fn,
                                generator=torch.Generator())
            micro, loss_sum = 0, torch.zeros((), device=device)
            group = min(config.grad_accum, len(order) - batch_in_epoch)
            for batch in loader:
                batch_in_epoch += 1
                micro += 1
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                sync = micro == group
                with (contextlib.nullcontext() if sync or world == 1 else model.no_sync()):
                    with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                        enabled=amp_dtype is not None):
                        loss = model(**batch).loss / group
                    scaler.scale(loss).backward()
                loss_sum += loss.detach()
                if not sync:
                    continue
                grad_norm = _optimizer_step(inner, optimizer, scheduler, scaler, config.max_grad_norm)
                step += 1
                if world > 1:
                    dist.all_reduce(loss_sum)
                    loss_sum /= world
                record = {"step": step, "loss": float(loss_sum), "lr": scheduler.get_last_lr()[0],
                          "grad_norm": grad_norm, "epoch": epoch + batch_in_epoch / len(order)}
                history.append(record)
                bar.update(1)
                if step % config.log_steps == 0 or step == total:
                    bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
                    if log_file is not None:
                        elapsed = time.perf_counter() - start_time
                        log_file.write(json.dumps({**record, "elapsed_s": elapsed}) + "\n")
                        log_file.flush()
                if out_dir and config.save_steps and step % config.save_steps == 0 and step < total:
                    save_checkpoint(out_dir, inner, optimizer, scheduler, scaler, collate_fn, step, epoch,
                                    batch_in_epoch, history, config.save_total_limit)
                micro, loss_sum = 0, torch.zeros((), device=device)
                group = min(config.grad_accum, len(order) - batch_in_epoch)
                if step >= total:
                    break
            if batch_in_epoch >= len(order):
                epoch, batch_in_epoch = epoch + 1, 0
    finally:
        bar.close()
        if log_file is not None:
            log_file.close()
    if out_dir:
        save_checkpoint(out_dir, inner, optimizer, scheduler, scaler, collate_fn, step, epoch, batch_in_epoch,
                        history, config.save_total_limit)
    metrics = {"train_loss": history[-1]["loss"] if history else float("nan"), "steps": step,
               "train_runtime_s": time.perf_counter() - start_time}
    if eval_fn is not None:
        metrics.update({f"eval_{k}": v for k, v in eval_fn(inner).items()})
    if out_dir and rank == 0:
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return history


def _optimizer_step(model, optimizer, scheduler, scaler, max_grad_norm) -> float:
    scaler.unscale_(optimizer)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if max_grad_norm is not None:
        norm = float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
    else:
        norms = [p.grad.norm() for p in params if p.grad is not None]
        norm = float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0
    scale = scaler.get_scale() if scaler.is_enabled() else None
    scaler.step(optimizer)
    scaler.update()
    if scale is None or scaler.get_scale() >= scale:  # an fp16 step skipped for inf/nan keeps the lr
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return norm


def _progress(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc="train", unit="step",
                dynamic_ncols=True)


# ------------------------------------------------------------------------------------------------ checkpoints
def save_checkpoint(out_dir: Path, model, optimizer, scheduler, scaler, collate_fn, step, epoch,
                    batch_in_epoch, history, keep: int | None) -> Path | None:
    """``out_dir/checkpoint-<step>/``: HF-loadable weights + ``trainer_state.pt``. Rank 0 writes; all wait."""
    world, rank = _world()
    path = out_dir / f"checkpoint-{step}"
    # every process's own RNG states (they part ways as soon as dropout draws numbers in proportion to each
    # process's batch shape); on CUDA only the process's own device
    generator = getattr(collate_fn, "generator", None)  # the MLM collator's masking draws part ways too
    mine = {"cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
            "collate": generator.get_state() if generator is not None else None}
    if world > 1:
        rngs = [None] * world
        dist.all_gather_object(rngs, mine)
    else:
        rngs = [mine]
    if rank == 0:
        model.save_pretrained(path)
        torch.save({
            "step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch, "history": history,
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng_ranks": rngs,
        }, path / TRAINER_STATE)
        if keep:
            for old in sorted(_checkpoints(out_dir))[:-keep]:
                shutil.rmtree(old[1])
    if dist.is_initialized():
        dist.barrier()
    return path


def _checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    if out_dir is None or not out_dir.is_dir():
        return []
    found = []
    for p in out_dir.iterdir():
        m = CHECKPOINT_RE.match(p.name)
        if m and (p / TRAINER_STATE).is_file():
            found.append((int(m[1]), p))
    return sorted(found)


def _find_checkpoint(out_dir: Path | None, resume: bool | str) -> Path:
    if isinstance(resume, str):
        path = Path(resume)
        if not (path / TRAINER_STATE).is_file():
            raise FileNotFoundError(f"{path} is not a training checkpoint (no {TRAINER_STATE})")
        return path
    found = _checkpoints(out_dir)
    if not found:
        raise FileNotFoundError(f"resume=True but {out_dir} holds no checkpoint-<step>/ directory")
    return found[-1][1]


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    found = _checkpoints(Path(out_dir))
    return found[-1][1] if found else None


def _load_checkpoint(path: Path, model, optimizer, scheduler, scaler, collate_fn) -> dict:
    from fastbert import weights

    raw = weights.read_state_dict(weights.find_weights(path))
    if hasattr(model, "base_model_prefix_str"):  # a fastbert model
        state = weights.hf_to_fastbert(raw, model.base_model_prefix_str, model.config.tie_word_embeddings)
        weights.check_and_load(model, state, strict=True, source=str(path))
    else:  # a transformers model: its own names; tied weights are absent from the file
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.load_state_dict(raw, strict=False)
        if hasattr(model, "tie_weights"):
            model.tie_weights()
    state = torch.load(path / TRAINER_STATE, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if state["scaler"]:  # a checkpoint written without fp16 has an empty scaler state
        scaler.load_state_dict(state["scaler"])
    world, rank = _world()
    # checkpoints written before per-process states held process 0's under these keys
    if "rng_ranks" in state:
        rngs = state["rng_ranks"]
    else:
        all_cuda = state.get("rng_cuda")
        dev = torch.cuda.current_device() if all_cuda and torch.cuda.is_available() else None
        rngs = [{"cpu": state["rng_torch"], "cuda": all_cuda[dev] if dev is not None and dev < len(all_cuda) else None,
                 "collate": state.get("rng_collate")}]
    if len(rngs) != world:
        warnings.warn(
            f"{path} was written by {len(rngs)} process(es) and is resumed by {world}: every process takes "
            "the RNG states of process 0, so dropout will not repeat the original run exactly",
            stacklevel=2,
        )
    own = rngs[rank] if len(rngs) == world else rngs[0]
    torch.set_rng_state(own["cpu"])
    if own["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(own["cuda"])
    generator = getattr(collate_fn, "generator", None)
    if generator is not None and own.get("collate") is not None:
        generator.set_state(own["collate"])
    return state

