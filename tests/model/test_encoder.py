"""SentenceEncoder against sentence-transformers on real text, and the encode command."""

import json

import numpy as np
import pytest

from fastbert import bench, cli

st = pytest.importorskip("sentence_transformers")


@pytest.fixture(scope="module")
def model_dir():
    return bench.default_model()


@pytest.fixture(scope="module")
def encoder(model_dir):
    import fastbert

    return fastbert.SentenceEncoder.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def texts():
    return bench.load_texts()[::7][:96]


def test_layout_read_from_checkpoint(encoder):
    assert encoder.pooling == "mean" and encoder.normalize and encoder.max_seq_length == 256


@pytest.mark.parametrize("normalize", [False, True])
def test_matches_sentence_transformers(encoder, model_dir, texts, normalize):
    ref = st.SentenceTransformer(model_dir, device="cpu")
    want = ref.encode(texts, batch_size=16, normalize_embeddings=normalize)
    got = encoder.encode(texts, batch_size=16, normalize_embeddings=normalize)
    assert isinstance(got, np.ndarray) and got.dtype == want.dtype and got.shape == want.shape
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() >= 0.99999
    one = encoder.encode(texts[3])
    assert one.shape == (want.shape[1],)
    np.testing.assert_allclose(one, got[3], atol=1e-5)


def test_order_is_kept_across_batches(encoder, texts):
    a = encoder.encode(texts[:20], batch_size=3)
    b = encoder.encode(texts[:20][::-1], batch_size=7)[::-1]
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_chunked_sorting_keeps_order_and_values(encoder, texts, monkeypatch):
    from fastbert import encoder as encoder_module

    want = encoder.encode(texts[:50], batch_size=32)
    monkeypatch.setattr(encoder_module, "SORT_CHUNK_BATCHES", 2)  # chunks of 6 texts, sorted inside each
    np.testing.assert_allclose(encoder.encode(texts[:50], batch_size=3), want, atol=1e-5)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_batch_size_is_rejected(encoder, texts, bad):
    with pytest.raises(ValueError, match="batch_size"):
        encoder.encode(texts[:3], batch_size=bad)


def test_other_poolings_match_padded(encoder, texts):
    import torch

    from fastbert.encoder import pool_packed

    x = torch.randn(10, 4)
    cu = torch.tensor([0, 3, 4, 10])
    segs = [x[0:3], x[3:4], x[4:10]]
    torch.testing.assert_close(pool_packed(x, cu, "cls"), torch.stack([s[0] for s in segs]))
    torch.testing.assert_close(pool_packed(x, cu, "max"), torch.stack([s.max(0).values for s in segs]))
    torch.testing.assert_close(pool_packed(x, cu, "mean"), torch.stack([s.mean(0) for s in segs]))
    torch.testing.assert_close(
        pool_packed(x, cu, "mean_sqrt_len"), torch.stack([s.sum(0) / len(s) ** 0.5 for s in segs])
    )


def test_encode_command(tmp_path, encoder, texts):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts[:10]) + "\n", encoding="utf-8")
    assert cli.main(["encode", str(src), "-o", str(tmp_path / "out.npy"), "--no-progress", "--device", "cpu"]) == 0
    arr = np.load(tmp_path / "out.npy")
    assert arr.shape == (10, 384) and arr.dtype == np.float32
    np.testing.assert_allclose(arr, encoder.encode(texts[:10]), atol=1e-5)
    assert cli.main(["encode", str(src), "-o", str(tmp_path / "out.jsonl"), "--device", "cpu"]) == 0
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [x["text"] for x in lines] == texts[:10]
    np.testing.assert_allclose(np.array([x["embedding"] for x in lines]), arr, atol=1e-6)


def test_transformers_tokenizer_fallback(encoder, texts):
    from transformers import BertTokenizerFast

    from fastbert.encoder import SentenceEncoder

    hf = SentenceEncoder(
        encoder.model,
        BertTokenizerFast.from_pretrained(bench.default_model()),
        encoder.pooling,
        encoder.normalize,
        encoder.max_seq_length,
    )
    np.testing.assert_allclose(hf.encode(texts[:24], batch_size=8), encoder.encode(texts[:24]), atol=1e-5)
    assert hf.encode([]).shape == (0, 384)
