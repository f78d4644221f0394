"""fastbert.CrossEncoder against sentence-transformers' CrossEncoder on real text pairs."""

import json
import shutil

import numpy as np
import pytest
import torch

from fastbert import bench

st = pytest.importorskip("sentence_transformers")
transformers = pytest.importorskip("transformers")

import fastbert  # noqa: E402


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A one-logit BertForSequenceClassification on the bundled encoder (a classifier with spread-out
    scores), saved by transformers (plain) and re-saved by sentence-transformers."""
    src = bench.default_model()
    root = tmp_path_factory.mktemp("ce")
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification.from_pretrained(src, num_labels=1)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 0.5)
    plain = root / "plain"
    model.save_pretrained(plain)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(f"{src}/{name}", plain)
    saved = root / "saved"
    st.CrossEncoder(str(plain), device="cpu").save(str(saved))
    return plain, saved


@pytest.fixture(scope="module")
def pairs():
    texts = bench.load_texts()
    short_long = [(texts[i][:40], " ".join(texts[i : i + 12])) for i in range(0, 72, 12)]  # some > 512 tokens
    return [(texts[i], texts[i + 600]) for i in range(0, 600, 20)] + short_long


@pytest.mark.parametrize("which", ["plain", "saved"])
def test_predict_matches_sentence_transformers(checkpoints, pairs, which):
    directory = checkpoints[0] if which == "plain" else checkpoints[1]
    ref = st.CrossEncoder(str(directory), device="cpu")
    ce = fastbert.CrossEncoder.from_pretrained(directory)
    assert ce.max_length == ref.max_seq_length
    want = ref.predict(pairs, batch_size=16)
    got = ce.predict(pairs, batch_size=16)
    assert got.shape == want.shape == (len(pairs),) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    logits = ce.predict(pairs, batch_size=16, activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(torch.sigmoid(torch.from_numpy(logits)).numpy(), got, atol=1e-6)
    assert np.ptp(logits) > 1  # the logits are spread out, so the comparison means something
    one = ce.predict(pairs[3])
    assert np.ndim(one) == 0 and abs(float(one) - float(ref.predict(pairs[3]))) < 1e-5


def test_rank_matches_sentence_transformers(checkpoints):
    texts = bench.load_texts()
    ref = st.CrossEncoder(str(checkpoints[1]), device="cpu")
    ce = fastbert.CrossEncoder.from_pretrained(checkpoints[1])
    want = ref.rank(texts[0], texts[1:41], top_k=7, return_documents=True)
    got = ce.rank(texts[0], texts[1:41], top_k=7, return_documents=True)
    assert [r["corpus_id"] for r in got] == [r["corpus_id"] for r in want]
    assert [r["text"] for r in got] == [r["text"] for r in want]
    np.testing.assert_allclose([r["score"] for r in got], [r["score"] for r in want], atol=1e-5)
    assert len(ce.rank(texts[0], texts[1:5])) == 4 and "text" not in ce.rank(texts[0], texts[1:3])[0]


def test_outputs_and_bad_input(checkpoints, pairs):
    ce = fastbert.CrossEncoder.from_pretrained(checkpoints[0])
    t = ce.predict(pairs[:4], convert_to_tensor=True)
    assert isinstance(t, torch.Tensor) and t.shape == (4,)
    assert len(ce.predict(pairs[:4], convert_to_numpy=False)) == 4
    with pytest.raises(TypeError, match="pair"):
        ce.predict(["just one text", "and another", "and a third"])
    with pytest.raises(TypeError):
        ce.predict(pairs[:2], whatever=1)
    with pytest.raises(ValueError, match="batch_size"):
        ce.predict(pairs[:2], batch_size=0)


def test_unsupported_checkpoints_are_named(checkpoints, tmp_path):
    bad = tmp_path / "act"
    shutil.copytree(checkpoints[1], bad)
    cfg = json.loads((bad / "config_sentence_transformers.json").read_text())
    (bad / "config_sentence_transformers.json").write_text(json.dumps(cfg | {"activation_fn": "my_pkg.Act"}))
    with pytest.raises(NotImplementedError, match="my_pkg.Act"):
        fastbert.CrossEncoder.from_pretrained(bad)
    with pytest.raises(NotImplementedError, match="sequence-classification"):
        fastbert.CrossEncoder.from_pretrained(bench.default_model())  # a SentenceTransformer, not a reranker
    with pytest.raises(NotImplementedError, match="sequence-classification"):
        fastbert.SentenceEncoder.from_pretrained(checkpoints[1])


def test_several_labels_softmax_and_prompts_match_sentence_transformers(tmp_path, pairs):
    """A three-label classifier saved by sentence-transformers with prompts: raw scores (identity is the
    default for several labels), apply_softmax, an activation_fn override, and a prompt by name and by text."""
    src = bench.default_model()
    torch.manual_seed(1)
    model = transformers.BertForSequenceClassification.from_pretrained(src, num_labels=3)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 0.5)
    plain = tmp_path / "plain"
    model.save_pretrained(plain)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(f"{src}/{name}", plain)
    saved = tmp_path / "saved"
    prompts = {"query": "query: ", "search": "Represent this for search: "}
    st.CrossEncoder(str(plain), device="cpu", prompts=prompts, default_prompt_name="query").save(str(saved))
    ref = st.CrossEncoder(str(saved), device="cpu")
    ce = fastbert.CrossEncoder.from_pretrained(saved)
    assert ce.prompts == ref.prompts and ce.default_prompt_name == ref.default_prompt_name == "query"
    sample = pairs[:24]
    for kwargs in ({}, {"apply_softmax": True}, {"activation_fn": torch.nn.Tanh()}, {"prompt_name": "search"},
                   {"prompt": "Judge: "}, {"prompt_name": "search", "apply_softmax": True}):
        want = ref.predict(sample, batch_size=8, **kwargs)
        got = ce.predict(sample, batch_size=8, **kwargs)
        assert got.shape == want.shape == (len(sample), 3), kwargs
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0, err_msg=str(kwargs))
    assert np.ptp(ce.predict(sample)) > 1  # spread-out logits: the comparison means something
    with pytest.raises(ValueError, match="one label"):
        ce.rank("a query", ["a document", "another"])
