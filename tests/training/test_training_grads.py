"""Autograd through fastbert against transformers: every parameter's gradient, for every head with its labels.

Tiny random configs in fp32 on CPU; inputs have right padding, left padding and a row with a hole, so the
padding-free path is exercised. Gradients are compared per parameter (transformers' names; fastbert's fused
qkv split by ``fastbert_to_hf``) as a relative error ``|g - g_ref| / |g_ref|`` (norms), which must be ≤ 1e-4.
"""

from __future__ import annotations

import pytest
import torch
import transformers
from training_utils import one_thread  # noqa: F401

import fastbert
from fastbert.weights import fastbert_to_hf

TOL = 1e-4
B, T = 4, 11


def hf_config(**kw):
    base = dict(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=48, max_position_embeddings=64, hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0,
                num_labels=3)
    base.update(kw)
    return transformers.BertConfig(**base)


def make_inputs(seed=0, batch=B, seqlen=T, vocab=97):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (batch, seqlen), generator=g)
    mask = torch.ones(batch, seqlen, dtype=torch.long)
    mask[1, 7:] = 0  # right padding
    if batch > 2:
        mask[2, :3] = 0  # left padding
    if batch > 3:
        mask[3, 5] = 0  # a hole
    types = torch.zeros_like(ids)
    types[:, seqlen // 2:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def make_labels(head: str, inputs, config, seed=1):
    g = torch.Generator().manual_seed(seed)
    b, t = inputs["input_ids"].shape
    mask = inputs["attention_mask"]
    if head in ("BertForPreTraining", "BertForMaskedLM"):
        labels = torch.randint(0, config.vocab_size, (b, t), generator=g)
        labels[(torch.rand(b, t, generator=g) > 0.3) | (mask == 0)] = -100
        labels[0, 1] = 7
        out = {"labels": labels}
        if head == "BertForPreTraining":
            out["next_sentence_label"] = torch.randint(0, 2, (b,), generator=g)
        return out
    if head == "BertForNextSentencePrediction":
        return {"labels": torch.randint(0, 2, (b,), generator=g)}
    if head == "BertForSequenceClassification":
        problem = config.problem_type
        if problem == "regression":
            return {"labels": torch.randn(b, generator=g)}
        if problem == "multi_label_classification":
            return {"labels": (torch.rand(b, config.num_labels, generator=g) > 0.5).float()}
        return {"labels": torch.randint(0, config.num_labels, (b,), generator=g)}
    if head == "BertForTokenClassification":
        labels = torch.randint(0, config.num_labels, (b, t), generator=g)
        labels[mask == 0] = -100
        return {"labels": labels}
    if head == "BertForQuestionAnswering":
        return {"start_positions": torch.randint(0, t, (b,), generator=g),
                "end_positions": torch.randint(0, t, (b,), generator=g)}
    if head == "BertForMultipleChoice":
        return {"labels": torch.randint(0, inputs["input_ids"].shape[1], (b,), generator=g)}
    raise AssertionError(head)


def grads_by_hf_name(fb_model) -> dict[str, torch.Tensor]:
    grads = {n: p.grad for n, p in fb_model.named_parameters() if p.grad is not None}
    return fastbert_to_hf(grads)


def assert_grads_match(hf_model, fb_model, tol=TOL):
    """Relative error per parameter. A gradient that is zero in exact arithmetic (the key bias: softmax
    ignores a per-query constant) is rounding noise in both; those are only checked to stay noise-sized."""
    fb = grads_by_hf_name(fb_model)
    named = [(n, p.grad) for n, p in hf_model.named_parameters() if p.grad is not None]
    scale = max(float(g.norm()) for _, g in named)
    checked = 0
    for name, p in hf_model.named_parameters():
        ref, got = p.grad, fb.get(name)
        if ref is None or float(ref.norm()) <= 1e-6 * scale:
            assert got is None or float(got.norm()) <= 1e-5 * scale, f"{name}: transformers has no gradient"
            continue
        assert got is not None, f"{name}: fastbert has no gradient"
        err = float((got - ref).norm() / ref.norm())
        assert err <= tol, f"{name}: relative gradient error {err:.2e} > {tol}"
        checked += 1
    assert checked > len(named) // 2


def run_pair(head: str, config, inputs, labels, attn="eager"):
    torch.manual_seed(0)
    config._attn_implementation = attn
    hf = getattr(transformers, head)(config).train()
    fb = fastbert.from_transformers(hf).train()
    hf_loss = hf(**inputs, **labels).loss
    fb_loss = fb(**inputs, **labels).loss
    hf_loss.backward()
    fb_loss.backward()
    assert abs(fb_loss.item() - hf_loss.item()) <= 1e-5 * max(1.0, abs(hf_loss.item()))
    return hf, fb


HEADS = [
    ("BertForPreTraining", {}),
    ("BertForMaskedLM", {}),
    ("BertForNextSentencePrediction", {}),
    ("BertForSequenceClassification", {}),
    ("BertForSequenceClassification", {"problem_type": "regression", "num_labels": 1}),
    ("BertForSequenceClassification", {"problem_type": "multi_label_classification"}),
    ("BertForTokenClassification", {}),
    ("BertForQuestionAnswering", {"num_labels": 2}),
]


@pytest.mark.parametrize("head,extra", HEADS, ids=["-".join([h, *map(str, e.values())]) for h, e in HEADS])
def test_head_gradients_match_transformers(head, extra):
    config = hf_config(**extra)
    inputs = make_inputs()
    hf, fb = run_pair(head, config, inputs, make_labels(head, inputs, config))
    assert_grads_match(hf, fb)


def test_multiple_choice_gradients_match_transformers():
    config = hf_config()
    flat = make_inputs(batch=6)
    inputs = {k: v.view(2, 3, T) for k, v in flat.items()}
    labels = {"labels": torch.tensor([2, 0])}
    hf, fb = run_pair("BertForMultipleChoice", config, inputs, labels)
    assert_grads_match(hf, fb)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_bare_model_gradients_and_sdpa(attn):
    """BertModel has no loss: use a fixed projection of both outputs (padding positions excluded)."""
    config = hf_config(hidden_act="gelu_new")
    inputs = make_inputs(seed=3)
    torch.manual_seed(0)
    config._attn_implementation = attn
    hf = transformers.BertModel(config).train()
    fb = fastbert.from_transformers(hf).train()
    w = torch.randn(config.hidden_size, generator=torch.Generator().manual_seed(5))
    keep = inputs["attention_mask"].unsqueeze(-1).float()
    for m in (hf, fb):
        out = m(**inputs)
        (((out.last_hidden_state * keep) @ w).sum() + (out.pooler_output @ w).sum()).backward()
    assert_grads_match(hf, fb)


def test_gradient_checkpointing_gives_the_same_gradients():
    """Checkpointing recomputes each layer in backward; with dropout on, the recomputation must replay the
    same masks (torch's non-reentrant checkpoint restores the RNG state), so gradients are identical."""
    config = hf_config(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    inputs = make_inputs()
    labels = make_labels("BertForSequenceClassification", inputs, config)
    hf = transformers.BertForSequenceClassification(config)
    grads = []
    for checkpointing in (False, True):
        fb = fastbert.from_transformers(hf).train()
        if checkpointing:
            fb.gradient_checkpointing_enable()
        torch.manual_seed(123)
        fb(**inputs, **labels).loss.backward()
        grads.append({n: p.grad.clone() for n, p in fb.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-6, atol=1e-7, msg=name)


def test_dropout_is_active_in_train_mode_only():
    config = hf_config(hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2)
    fb = fastbert.from_transformers(transformers.BertModel(config))
    inputs = make_inputs()
    fb.eval()
    a, b = fb(**inputs).last_hidden_state, fb(**inputs).last_hidden_state
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    fb.train()
    c, d = fb(**inputs).last_hidden_state, fb(**inputs).last_hidden_state
    real = inputs["attention_mask"].bool()
    assert float((c - d).detach()[real].abs().max()) > 1e-3
    # the scale is right: train-mode outputs are centred on the eval-mode ones
    torch.manual_seed(0)
    mean_train = torch.stack([fb(**inputs).pooler_output for _ in range(64)]).mean(0)
    assert float((mean_train - fb.eval()(**inputs).pooler_output).abs().mean()) < 0.05


@pytest.mark.gpu
@pytest.mark.parametrize("head,extra", HEADS[:4] + HEADS[6:], ids=[h for h, _ in HEADS[:4] + HEADS[6:]])
def test_head_gradients_on_cuda_triton(head, extra):
    """The same comparison on CUDA, where fastbert runs its Triton kernels (fp32)."""
    config = hf_config(**extra)
    inputs = {k: v.cuda() for k, v in make_inputs().items()}
    labels = {k: v.cuda() for k, v in make_labels(head, make_inputs(), config).items()}
    torch.manual_seed(0)
    config._attn_implementation = "eager"
    hf = getattr(transformers, head)(config).cuda().train()
    fb = fastbert.from_transformers(hf).train()
    hf(**inputs, **labels).loss.backward()
    fb(**inputs, **labels).loss.backward()
    assert_grads_match(hf, fb, tol=1e-3)  # TF32-free fp32 kernels, but different reduction orders
