"""fastbert.training: the MLM+NSP collator, the training loop against transformers step by step, resume,
and the two CLI sub-commands. Tiny models, and a small vocabulary built from the real text in
tests/data/training."""

from __future__ import annotations

import copy
import json
import statistics

import pytest
import torch
import transformers
from training_utils import langid_rows, one_thread, small_tokenizer, tiny_config  # noqa: F401

import fastbert
from fastbert import training as T
from fastbert.weights import fastbert_to_hf


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return small_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def pairs(tok):
    texts = [r["text"] for r in langid_rows()[:480]]
    docs = [texts[i: i + 8] for i in range(0, len(texts), 8)]
    return T.build_pretraining_pairs(docs, tok, max_length=32, seed=0)


# ------------------------------------------------------------------------------------------------ data
def test_pairs_have_both_nsp_labels_and_fit(pairs):
    assert len(pairs) > 100
    assert all(len(p.a) >= 1 and len(p.b) >= 1 and len(p.a) + len(p.b) <= 29 for p in pairs)
    share = sum(p.is_random_next for p in pairs) / len(pairs)
    assert 0.3 < share < 0.7


def test_collator_layout(tok, pairs):
    batch = T.PretrainingCollator(tok, seed=0)(pairs[:8])
    ids, mask, types, labels = (batch[k] for k in ("input_ids", "attention_mask", "token_type_ids", "labels"))
    assert batch["next_sentence_label"].tolist() == [p.is_random_next for p in pairs[:8]]
    for r, p in enumerate(pairs[:8]):
        n = len(p.a) + len(p.b) + 3
        assert mask[r].sum() == n and ids[r, 0] == tok.cls_token_id
        assert ids[r, len(p.a) + 1] == tok.sep_token_id and ids[r, n - 1] == tok.sep_token_id
        assert (ids[r, n:] == tok.pad_token_id).all() and (labels[r, n:] == -100).all()
        assert types[r, : len(p.a) + 2].eq(0).all() and types[r, len(p.a) + 2: n].eq(1).all()
        original = torch.tensor([tok.cls_token_id, *p.a, tok.sep_token_id, *p.b, tok.sep_token_id])
        chosen = labels[r, :n] != -100
        assert torch.equal(labels[r, :n][chosen], original[chosen])  # labels are the original tokens
        assert torch.equal(ids[r, :n][~chosen], original[~chosen])  # nothing else changes


@pytest.mark.parametrize("wwm", [False, True])
def test_masking_rates(tok, wwm):
    """15% of real non-special tokens are chosen; of those 80% [MASK], 10% random, 10% unchanged."""
    ids = T.TokenIds.of(tok)
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(5, ids.vocab_size, (256, 64), generator=g)
    input_ids[:, 0], input_ids[:, 40] = ids.cls, ids.sep
    mask = torch.ones_like(input_ids)
    mask[:, 41:] = 0
    input_ids[:, 41:] = ids.pad
    collate = T.PretrainingCollator(ids, whole_word_masking=wwm, seed=1)
    out, labels = collate.mask_tokens(input_ids, mask)
    chosen = labels != -100
    eligible = mask.bool() & (input_ids != ids.cls) & (input_ids != ids.sep)
    assert not (chosen & ~eligible).any()
    rate = chosen.sum() / eligible.sum()
    assert abs(float(rate) - 0.15) < 0.01
    n = int(chosen.sum())
    to_mask = int((out[chosen] == ids.mask).sum()) / n
    unchanged = int((out[chosen] == input_ids[chosen]).sum()) / n
    assert abs(to_mask - 0.8) < 0.02 and abs(unchanged - 0.1) < 0.02  # (random ones are the rest, ~0.1)


def test_whole_word_masking_masks_whole_words(tok):
    ids = T.TokenIds.of(tok)
    texts = [r["text"] for r in langid_rows()[:64]]
    enc = tok(texts, padding=True, return_tensors="pt")
    collate = T.PretrainingCollator(tok, whole_word_masking=True, seed=3)
    _, labels = collate.mask_tokens(enc["input_ids"], enc["attention_mask"])
    cont = torch.isin(enc["input_ids"], ids.continuation)
    chosen = labels != -100
    # a continuation piece is chosen exactly when the piece before it is
    assert torch.equal(chosen[:, 1:][cont[:, 1:]], chosen[:, :-1][cont[:, 1:]])
    assert bool(chosen.any())


def test_read_text_classification_formats(tmp_path):
    (tmp_path / "a.csv").write_text('text,label\n"hello, world",x\nbye,y\n', encoding="utf-8")
    (tmp_path / "a.jsonl").write_text('{"text": "hello", "label": 1}\n', encoding="utf-8")
    rows = T.read_text_classification(tmp_path / "a.csv")
    assert [(r.text, r.label) for r in rows] == [("hello, world", "x"), ("bye", "y")]
    assert T.read_text_classification(tmp_path / "a.jsonl")[0].label == 1
    with pytest.raises(ValueError, match="no column 'sentence'"):
        T.read_text_classification(tmp_path / "a.csv", text_column="sentence")


def test_linear_schedule():
    f = T.linear_schedule(warmup=4, total=10)
    assert [round(f(s), 4) for s in (0, 2, 4, 7, 10, 12)] == [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]


# ------------------------------------------------------------------------------------------------ the loop
def _pretrain_pair(tok, dropout):
    torch.manual_seed(0)
    hf = transformers.BertForPreTraining(tiny_config(len(tok), dropout))
    return hf, fastbert.from_transformers(hf)


def _run(model, pairs, tok, seed=0, steps=30, **kw):
    config = T.TrainConfig(learning_rate=2e-3, max_steps=steps, batch_size=4, grad_accum=2, warmup_steps=5,
                           max_grad_norm=1.0, progress=False, seed=seed, **kw)
    history = T.train(model, pairs, T.PretrainingCollator(tok, seed=seed), config)
    return [h["loss"] for h in history]


def test_thirty_steps_match_transformers(tok, pairs):
    """Dropout off, same weights, same batches (accumulation 2, clipping, warm-up then decay): every step's
    loss and the final parameters agree with transformers to 1e-4."""
    hf, fb = _pretrain_pair(tok, 0.0)
    hf_losses = _run(hf, pairs, tok)
    fb_losses = _run(fb, pairs, tok)
    assert len(fb_losses) == 30
    assert max(abs(a - b) for a, b in zip(fb_losses, hf_losses)) <= 1e-4
    assert fb_losses[-1] < fb_losses[0] - 0.5  # it did learn
    got = fastbert_to_hf(dict(fb.named_parameters()))
    for name, ref in hf.named_parameters():
        diff = float((got[name] - ref).detach().abs().max())
        assert diff <= 1e-4, f"{name}: final parameters differ by {diff:.2e}"


DROPOUT_BAND = 0.01  # per seed: |mean loss of steps 11-30, fastbert - transformers| (measured: ≤ 0.002)


def test_loss_curve_with_dropout_stays_in_band(tok, pairs):
    """Dropout masks come from the RNG in a different order, so runs differ step by step; with the same data
    order and MLM masks (one seed) the curves must agree within the band. (Without dropout they agree to 1e-6;
    dropout itself moves this mean by ~0.005 here, see the distribution test below for its semantics.)"""
    hf, fb = _pretrain_pair(tok, 0.1)
    for seed in (0, 1):
        means = [statistics.fmean(_run(copy.deepcopy(m), pairs, tok, seed=seed)[10:]) for m in (hf, fb)]
        gap = abs(means[1] - means[0])
        assert gap <= DROPOUT_BAND, f"seed {seed}: loss curves differ by {gap:.4f} on average"


def test_dropout_loss_distribution_matches_transformers(tok, pairs):
    """At fixed weights and batch, the train-mode loss is a random variable over dropout masks: its mean and
    spread must match transformers' (p = 0.3 to make the effect large)."""
    torch.manual_seed(0)
    config = tiny_config(len(tok), 0.3, initializer_range=0.2)
    hf = transformers.BertForPreTraining(config).train()
    fb = fastbert.from_transformers(hf).train()
    batch = T.PretrainingCollator(tok, seed=0)(pairs[:16])
    samples = {}
    with torch.no_grad():
        for name, model in (("hf", hf), ("fb", fb)):
            torch.manual_seed(1)
            samples[name] = torch.tensor([float(model(**batch).loss) for _ in range(40)])
        eval_losses = {float(hf.eval()(**batch).loss) for _ in range(3)} | {float(fb.eval()(**batch).loss)}
    a, b = samples["hf"], samples["fb"]
    stderr = float((a.var() / len(a) + b.var() / len(b)).sqrt())
    assert abs(float(a.mean() - b.mean())) <= 4 * stderr
    assert 0.6 < float(b.std() / a.std()) < 1.6
    assert float(b.std()) > 0.05 and max(eval_losses) - min(eval_losses) < 1e-4  # eval mode: no dropout


def test_resume_continues_exactly(tok, pairs, tmp_path):
    """10 steps straight == 5 steps, checkpoint, then resume to 10 (dropout on: RNG states are restored)."""
    _, fb = _pretrain_pair(tok, 0.1)
    straight = copy.deepcopy(fb)
    full = _run(straight, pairs, tok, steps=10, output_dir=str(tmp_path / "a"), save_steps=5)
    first = copy.deepcopy(fb)
    _run(first, pairs, tok, steps=10, output_dir=str(tmp_path / "b"), save_steps=5)
    resumed = copy.deepcopy(fb)  # fresh weights: resume must load them from checkpoint-5
    config = T.TrainConfig(learning_rate=2e-3, max_steps=10, batch_size=4, grad_accum=2, warmup_steps=5,
                           progress=False, resume=str(tmp_path / "b" / "checkpoint-5"),
                           output_dir=str(tmp_path / "c"))
    history = T.train(resumed, pairs, T.PretrainingCollator(tok, seed=0), config)
    assert [h["step"] for h in history] == list(range(1, 11))
    assert [h["loss"] for h in history] == pytest.approx(full, abs=1e-6)
    for (name, p), q in zip(straight.named_parameters(), resumed.parameters()):
        torch.testing.assert_close(q, p, rtol=0, atol=1e-6, msg=name)
    # the checkpoint is a transformers checkpoint
    hf = transformers.BertForPreTraining.from_pretrained(str(tmp_path / "c" / "checkpoint-10"))
    batch = T.PretrainingCollator(tok, seed=5)(pairs[:4])
    with torch.no_grad():
        ref, got = hf.eval()(**batch).loss, resumed.eval()(**batch).loss
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "a").glob("checkpoint-*")) == ["checkpoint-10", "checkpoint-5"]


def test_checkpoints_of_the_earlier_format_still_resume(tok, pairs, tmp_path):
    """Checkpoints written before per-process RNG states (rng_torch / rng_cuda / rng_collate) resume exactly."""
    _, fb = _pretrain_pair(tok, 0.1)
    straight = _run(copy.deepcopy(fb), pairs, tok, steps=4, output_dir=str(tmp_path / "a"), save_steps=2)
    ckpt = tmp_path / "a" / "checkpoint-2" / T.TRAINER_STATE
    state = torch.load(ckpt, weights_only=True)
    own = state.pop("rng_ranks")[0]
    state.update(rng_torch=own["cpu"], rng_cuda=None, rng_collate=own["collate"])
    torch.save(state, ckpt)
    resumed = _run(copy.deepcopy(fb), pairs, tok, steps=4, output_dir=str(tmp_path / "b"),
                   resume=str(ckpt.parent))
    assert resumed == pytest.approx(straight, abs=1e-6)


def test_checkpoint_without_a_scaler_state_loads_into_an_fp16_run(tok, pairs, tmp_path):
    """An fp32/bf16 run saves an empty scaler state; resuming it with fp16 (scaler on) starts a fresh scaler."""
    _, fb = _pretrain_pair(tok, 0.0)
    _run(fb, pairs, tok, steps=2, output_dir=str(tmp_path), save_steps=2)
    state = torch.load(tmp_path / "checkpoint-2" / T.TRAINER_STATE, weights_only=True)
    assert state["scaler"] == {} and len(state["rng_ranks"]) == 1
    optimizer = torch.optim.AdamW(T.param_groups(fb, 0.01))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    T._load_checkpoint(tmp_path / "checkpoint-2", fb, optimizer, scheduler, scaler, None)
    assert scaler.is_enabled() and scaler.get_scale() == torch.amp.GradScaler("cpu").get_scale()


def test_amp_needs_cuda(tok, pairs):
    _, fb = _pretrain_pair(tok, 0.0)
    with pytest.raises(ValueError, match="needs a CUDA model"):
        _run(fb, pairs, tok, steps=1, precision="bf16")


# ------------------------------------------------------------------------------------------------ CLI
@pytest.fixture(scope="module")
def tiny_checkpoint(tok, tmp_path_factory):
    """A bare tiny BertModel checkpoint with the small tokenizer, as a user would start from."""
    path = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    transformers.BertModel(tiny_config(len(tok), 0.1, max_position_embeddings=128)).save_pretrained(path)
    tok.save_pretrained(str(path))
    return path


def test_cli_finetune(tiny_checkpoint, tmp_path, capsys):
    from fastbert.cli import main

    rows = langid_rows()[:200]
    with (tmp_path / "train.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    out = tmp_path / "out"
    rc = main(["finetune", "--model", str(tiny_checkpoint), "--train", str(tmp_path / "train.jsonl"),
               "--output-dir", str(out), "--max-steps", "4", "--batch-size", "8", "--lr", "1e-3",
               "--no-progress"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 4 and 0.0 <= metrics["eval_accuracy"] <= 1.0 and metrics["eval_examples"] == 20
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(metrics["checkpoint"])
    assert hf.config.id2label == {i: lang for i, lang in enumerate(["de", "es", "fr", "it", "nl", "pt"])}
    hf_tok = transformers.AutoTokenizer.from_pretrained(metrics["checkpoint"])  # the tokenizer came along
    assert hf_tok.vocab_size == T.TokenIds.of(hf_tok).vocab_size


def test_cli_pretrain(tiny_checkpoint, tmp_path):
    from fastbert.cli import main

    rows = [r["text"] for r in langid_rows()[:120]]
    text = "\n\n".join("\n".join(rows[i: i + 6]) for i in range(0, len(rows), 6))
    (tmp_path / "corpus.txt").write_text(text + "\n", encoding="utf-8")
    out = tmp_path / "out"
    rc = main(["pretrain", "--model", str(tiny_checkpoint), "--train", str(tmp_path / "corpus.txt"),
               "--output-dir", str(out), "--max-steps", "3", "--batch-size", "4", "--max-length", "32",
               "--whole-word-masking", "--no-progress", "--log-steps", "1"])
    assert rc == 0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and all(r["loss"] > 0 for r in log)
    hf = transformers.BertForPreTraining.from_pretrained(str(out / "checkpoint-3"))
    assert hf.config.architectures == ["BertForPreTraining"]
