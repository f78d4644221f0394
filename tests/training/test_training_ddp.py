"""The training loop under torch.distributed: 2 CPU processes (gloo) with 4 examples each per step give the
same losses and final weights as one process with the combined batch of 8."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import transformers
from training_utils import langid_rows, one_thread, small_tokenizer, tiny_config  # noqa: F401

import fastbert
from fastbert import training as T

STEPS = 6
LABELS = ["de", "es", "fr", "it", "nl", "pt"]


def _setup(tok_dir, dropout=0.0):
    tok = transformers.BertTokenizerFast.from_pretrained(tok_dir)
    examples = [T.TextExample(r["text"], r["label"]) for r in langid_rows()[:96]]
    collate = T.ClassificationCollator(tok, {name: i for i, name in enumerate(LABELS)}, max_length=32)
    torch.manual_seed(0)
    config = tiny_config(len(tok), dropout=dropout, num_labels=len(LABELS))
    model = fastbert.from_transformers(transformers.BertForSequenceClassification(config))
    return model, examples, collate


def _config(batch_size):
    return T.TrainConfig(learning_rate=1e-3, max_steps=STEPS, batch_size=batch_size, grad_accum=2,
                         warmup_steps=2, progress=False, seed=0)


def _worker(rank, world, port, tok_dir, out_path):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model, examples, collate = _setup(tok_dir)
        history = T.train(model, examples, collate, _config(batch_size=4))
        if rank == 0:
            torch.save({"losses": [h["loss"] for h in history], "state": model.state_dict()}, out_path)
        dist.barrier()  # both ranks tear gloo down together
    finally:
        dist.destroy_process_group()
    _exit_without_teardown()


def _exit_without_teardown() -> None:
    """End a worker whose work is done and saved without running C++ static destructors. Twice in CI (never in
    about 15 runs outside it) a worker aborted with "terminate called without an active exception", the message
    of a joinable std::thread destroyed, as gloo's can be at interpreter exit. An abort during the work still
    fails the test, and the results are compared either way."""
    import os
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_match_one_process_with_the_combined_batch(tmp_path):
    out = tmp_path / "ddp.pt"
    small_tokenizer(tmp_path / "tok")
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "tok"), str(out)), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=True)

    model, examples, collate = _setup(str(tmp_path / "tok"))
    single = T.train(model, examples, collate, _config(batch_size=8))
    assert [h["loss"] for h in single] == pytest.approx(ddp["losses"], abs=1e-5)
    for name, p in model.state_dict().items():
        torch.testing.assert_close(ddp["state"][name], p, rtol=0, atol=1e-5, msg=name)


def _resume_worker(rank, world, port, tok_dir, out_dir, resume, out_path):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model, examples, collate = _setup(tok_dir, dropout=0.1)
        config = T.TrainConfig(learning_rate=1e-3, max_steps=STEPS, batch_size=4, grad_accum=1, warmup_steps=2,
                               progress=False, seed=0, output_dir=out_dir, save_steps=3, resume=resume)
        history = T.train(model, examples, collate, config)
        if rank == 0:
            torch.save({"losses": [h["loss"] for h in history], "state": model.state_dict()}, out_path)
        dist.barrier()  # both ranks tear gloo down together
    finally:
        dist.destroy_process_group()
    _exit_without_teardown()


def test_ddp_resume_with_dropout_repeats_the_run(tmp_path):
    """Each process's own RNG states are saved and restored: with dropout on and batches of different
    shapes per process, 6 steps straight == 3 steps, checkpoint, resume to 6."""
    small_tokenizer(tmp_path / "tok")
    tok = str(tmp_path / "tok")
    straight, resumed = tmp_path / "straight.pt", tmp_path / "resumed.pt"
    mp.spawn(_resume_worker, args=(2, _free_port(), tok, str(tmp_path / "a"), False, str(straight)), nprocs=2,
             join=True)
    checkpoint = str(tmp_path / "a" / "checkpoint-3")
    mp.spawn(_resume_worker, args=(2, _free_port(), tok, str(tmp_path / "b"), checkpoint, str(resumed)), nprocs=2,
             join=True)
    a, b = torch.load(straight, weights_only=True), torch.load(resumed, weights_only=True)
    assert len(a["losses"]) == STEPS and b["losses"] == pytest.approx(a["losses"], abs=1e-6)
    for name, p in a["state"].items():
        torch.testing.assert_close(b["state"][name], p, rtol=0, atol=1e-6, msg=name)
