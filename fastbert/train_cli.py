"""``fastbert pretrain`` and ``fastbert finetune``: training from the command line.

    fastbert pretrain --model DIR --train a.txt b.txt --output-dir out [--max-steps N] [--whole-word-masking]
    fastbert finetune --model DIR --train train.jsonl [--eval dev.jsonl] --output-dir out [--epochs 3]

Both start from any Hugging Face BERT checkpoint directory (heads the checkpoint lacks start from random
weights), write ``checkpoint-<step>/`` directories that transformers loads, the tokenizer files,
``train_log.jsonl`` and ``metrics.json``. Run them under ``torchrun --nproc-per-node N`` for DDP.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _add_common(p: argparse.ArgumentParser, lr: float, batch: int) -> None:
    p.add_argument("--model", required=True, help="Hugging Face BERT checkpoint directory to start from")
    p.add_argument("--tokenizer", default=None, help="tokenizer directory (default: --model)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=batch, help="per process and micro-step")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--max-grad-norm", type=float, default=1.0)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=None, help="overrides --epochs")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32", help="AMP needs CUDA")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-steps", type=int, default=10)
    p.add_argument("--save-steps", type=int, default=None)
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoint in --output-dir")
    p.add_argument("--no-progress", action="store_true")


def add_pretrain_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train", nargs="+", required=True,
                   help="text files: one sentence per line, a blank line between documents")
    p.add_argument("--mlm-probability", type=float, default=0.15)
    p.add_argument("--whole-word-masking", action="store_true")
    p.add_argument("--short-seq-prob", type=float, default=0.1)
    p.add_argument("--from-scratch", action="store_true", help="random weights with --model's config")
    _add_common(p, lr=1e-4, batch=32)


def add_finetune_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train", required=True, help=".csv/.tsv (with a header) or .jsonl of text and label")
    p.add_argument("--eval", default=None, help="held-out file in the same format")
    p.add_argument("--eval-fraction", type=float, default=0.1,
                   help="without --eval, hold out this fraction of --train (seeded)")
    p.add_argument("--text-column", default="text")
    p.add_argument("--pair-column", default=None, help="a second text column for sentence-pair tasks")
    p.add_argument("--label-column", default="label")
    p.add_argument("--regression", action="store_true", help="labels are numbers (one output, MSE loss)")
    _add_common(p, lr=5e-5, batch=32)


def _train_config(args, training):
    return training.TrainConfig(
        output_dir=args.output_dir, learning_rate=args.lr, weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio, max_steps=args.max_steps, epochs=args.epochs,
        batch_size=args.batch_size, grad_accum=args.grad_accum, max_grad_norm=args.max_grad_norm,
        precision=args.precision,
        gradient_checkpointing=args.gradient_checkpointing, seed=args.seed, log_steps=args.log_steps,
        save_steps=args.save_steps, resume=args.resume, progress=not args.no_progress,
    )


def _device(args):
    import torch

    if args.device:
        return torch.device(args.device)
    if torch.cuda.is_available():
        import os

        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _copy_tokenizer(tokenizer, source: Path, out_dir: Path) -> None:
    """Put the tokenizer beside the weights so every checkpoint is self-contained."""
    if hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(str(out_dir))
        return
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, out_dir / name)


def _finish(out_dir: Path, tokenizer, tok_dir: Path, extra: dict) -> dict:
    """Tokenizer files into every checkpoint; run settings into metrics.json; returns the metrics."""
    from fastbert import training

    for _, ckpt in training._checkpoints(out_dir):
        _copy_tokenizer(tokenizer, tok_dir, ckpt)
    metrics_path = out_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    metrics.update(extra)
    metrics["checkpoint"] = str(training.latest_checkpoint(out_dir))
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics


def run_pretrain(args) -> int:
    import torch

    from fastbert import training
    from fastbert.config import BertConfig
    from fastbert.modeling import BertForPreTraining
    from fastbert.resources import load_tokenizer

    distributed = training.init_distributed()
    device = _device(args)
    tok_dir = Path(args.tokenizer or args.model)
    tokenizer = load_tokenizer(tok_dir)
    if args.from_scratch:
        torch.manual_seed(args.seed)
        model = BertForPreTraining(BertConfig.from_pretrained(args.model)).to(device)
    else:
        model = BertForPreTraining.from_pretrained(args.model, device=device)
    documents = training.read_documents(args.train)
    pairs = training.build_pretraining_pairs(documents, tokenizer, max_length=args.max_length,
                                             short_seq_prob=args.short_seq_prob, seed=args.seed)
    rank = torch.distributed.get_rank() if distributed else 0
    collate = training.PretrainingCollator(tokenizer, mlm_probability=args.mlm_probability,
                                           whole_word_masking=args.whole_word_masking, seed=args.seed + rank)
    if rank == 0:
        print(f"pretrain: {len(documents)} documents, {len(pairs)} sentence pairs, "
              f"{model.num_parameters() / 1e6:.1f}M parameters on {device}", file=sys.stderr)
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    training.train(model, pairs, collate, _train_config(args, training))
    if rank == 0:
        metrics = _finish(out_dir, tokenizer, tok_dir, {"task": "pretrain", "pairs": len(pairs)})
        print(json.dumps(metrics))
    return 0


def _split(examples, fraction: float, seed: int):
    import random

    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, int(round(fraction * len(examples))))
    held = set(order[:n_eval])
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in sorted(held)]


def run_finetune(args) -> int:
    import torch

    from fastbert import training
    from fastbert.modeling import BertForSequenceClassification
    from fastbert.resources import load_tokenizer

    distributed = training.init_distributed()
    device = _device(args)
    tok_dir = Path(args.tokenizer or args.model)
    tokenizer = load_tokenizer(tok_dir)
    read = dict(text_column=args.text_column, label_column=args.label_column, pair_column=args.pair_column)
    train_set = training.read_text_classification(args.train, **read)
    if args.eval:
        eval_set = training.read_text_classification(args.eval, **read)
    else:
        train_set, eval_set = _split(train_set, args.eval_fraction, args.seed)
    if args.regression:
        label2id, overrides = None, {"num_labels": 1, "problem_type": "regression"}
    else:
        labels = sorted({str(e.label) for e in train_set})
        unknown = sorted({str(e.label) for e in eval_set} - set(labels))
        if unknown:
            raise SystemExit(f"fastbert finetune: held-out labels never seen in training: {unknown[:10]}")
        label2id = {name: i for i, name in enumerate(labels)}
        overrides = {"id2label": dict(enumerate(labels)), "label2id": label2id,
                     "problem_type": "single_label_classification"}
    torch.manual_seed(args.seed)  # the fresh classifier's initialisation
    model = BertForSequenceClassification.from_pretrained(args.model, device=device, **overrides)
    collate = training.ClassificationCollator(tokenizer, label2id, max_length=args.max_length)
    rank = torch.distributed.get_rank() if distributed else 0
    if rank == 0:
        print(f"finetune: {len(train_set)} training and {len(eval_set)} held-out examples, "
              f"{model.config.num_labels} labels, on {device}", file=sys.stderr)
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def evaluate(m):
        return training.evaluate_classification(m, eval_set, collate, batch_size=max(64, args.batch_size))

    training.train(model, train_set, collate, _train_config(args, training), eval_fn=evaluate)
    if rank == 0:
        metrics = _finish(out_dir, tokenizer, tok_dir, {"task": "finetune", "train_examples": len(train_set),
                                                        "labels": model.config.num_labels})
        print(json.dumps(metrics))
    return 0
