"""SentenceEncoder against sentence-transformers (the installed version) on checkpoints it saves itself, in its
current layout and in the v2 layout: every pooling mode, Dense with its activation, Normalize, prompts,
truncate_dim, every precision; and a clear error for every module or setting fastbert cannot run."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fastbert import bench

st = pytest.importorskip("sentence_transformers")
from sentence_transformers import models  # noqa: E402

import fastbert  # noqa: E402
from fastbert.encoder import SentenceEncoder  # noqa: E402

MIN_COS = 0.99999


@pytest.fixture(scope="module")
def texts():
    return bench.load_texts()[:1000][::12]  # 84 real texts, 1 to ~100 tokens


def min_cos(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


def save_st(directory, mode="mean", dense=None, normalize=False, include_prompt=True, prompts=None,
            default_prompt_name=None, max_seq_length=None):
    """A sentence-transformers model on the bundled BERT, saved by sentence-transformers (current layout)."""
    modules = [models.Transformer(bench.default_model(), max_seq_length=max_seq_length),
               models.Pooling(384, pooling_mode=mode, include_prompt=include_prompt)]
    width = 384 * (1 if isinstance(mode, str) else len(mode))
    if dense is not None:
        torch.manual_seed(0)
        modules.append(models.Dense(width, 96, activation_function=dense))
    if normalize:
        modules.append(models.Normalize())
    model = st.SentenceTransformer(modules=modules, device="cpu", prompts=prompts,
                                   default_prompt_name=default_prompt_name)
    model.save(str(directory))
    return Path(directory)


def to_v2_layout(src: Path, dst: Path, max_seq_length=None) -> Path:
    """Rewrite a current-layout save as sentence-transformers 2.x wrote it: ``sentence_transformers.models.*``
    types, ``pooling_mode_*`` flags, ``max_seq_length`` in ``sentence_bert_config.json``, Dense weights in
    ``pytorch_model.bin``, no prompts file."""
    shutil.copytree(src, dst)
    version = {"__version__": {"sentence_transformers": "2.2.2"}}
    (dst / "config_sentence_transformers.json").write_text(json.dumps(version))
    cfg = {"do_lower_case": False} | ({"max_seq_length": max_seq_length} if max_seq_length else {})
    (dst / "sentence_bert_config.json").write_text(json.dumps(cfg))
    modules = json.loads((dst / "modules.json").read_text())
    for m in modules:
        kind = m["type"].rsplit(".", 1)[-1]
        m["type"] = f"sentence_transformers.models.{kind}"
        sub = dst / m["path"]
        if kind == "Pooling":
            pc = json.loads((sub / "config.json").read_text())
            modes = pc["pooling_mode"] if isinstance(pc["pooling_mode"], list) else [pc["pooling_mode"]]
            legacy = {"cls": "pooling_mode_cls_token", "max": "pooling_mode_max_tokens",
                      "mean": "pooling_mode_mean_tokens", "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens",
                      "weightedmean": "pooling_mode_weightedmean_tokens", "lasttoken": "pooling_mode_lasttoken"}
            (sub / "config.json").write_text(json.dumps(
                {"word_embedding_dimension": pc["embedding_dimension"]} | {v: k in modes for k, v in legacy.items()}
            ))
        elif kind == "Dense":
            dc = json.loads((sub / "config.json").read_text())
            for k in ("module_input_name", "module_output_name"):
                dc.pop(k, None)
            (sub / "config.json").write_text(json.dumps(dc))
            from safetensors.torch import load_file

            torch.save(load_file(sub / "model.safetensors"), sub / "pytorch_model.bin")
            (sub / "model.safetensors").unlink()
        elif kind == "Normalize":
            shutil.rmtree(sub)
            sub.mkdir()
    (dst / "modules.json").write_text(json.dumps(modules))
    return dst


ALL_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")


def assert_blocks_match(got, want, blocks):
    """Min cosine per ``384``-wide block: each pooling mode of a concatenation on its own."""
    assert got.shape == want.shape and got.dtype == np.float32
    width = got.shape[1] // blocks
    for b in range(blocks):
        assert min_cos(got[:, b * width : (b + 1) * width], want[:, b * width : (b + 1) * width]) >= MIN_COS


def test_every_pooling_mode_both_layouts(tmp_path, texts):
    """All six modes concatenated in one Pooling module (sentence-transformers' v2 flag order), each block
    compared on its own; the v2 layout sets the six ``pooling_mode_*`` flags."""
    current = save_st(tmp_path / "current", ALL_MODES)
    v2 = to_v2_layout(current, tmp_path / "v2")
    for directory in (current, v2):
        ref = st.SentenceTransformer(str(directory), device="cpu")
        enc = SentenceEncoder.from_pretrained(directory)
        assert enc.pooling_modes == ALL_MODES
        assert_blocks_match(enc.encode(texts, batch_size=64), ref.encode(texts, batch_size=64), len(ALL_MODES))


@pytest.mark.parametrize("mode", ["lasttoken", ("mean", "cls")], ids=["lasttoken", "mean+cls"])
def test_single_and_reordered_modes(tmp_path, texts, mode):
    directory = save_st(tmp_path / "m", mode)
    ref = st.SentenceTransformer(str(directory), device="cpu")
    enc = SentenceEncoder.from_pretrained(directory)
    assert enc.pooling == mode
    texts = texts[:40]
    assert_blocks_match(enc.encode(texts, batch_size=8), ref.encode(texts, batch_size=8), len(enc.pooling_modes))


@pytest.mark.parametrize("activation, layouts", [(torch.nn.Tanh(), 2), (torch.nn.GELU(), 1)], ids=["Tanh", "GELU"])
def test_dense_and_normalize(tmp_path, texts, activation, layouts):
    current = save_st(tmp_path / "current", "mean", dense=activation, normalize=True)
    dirs = [current] + ([to_v2_layout(current, tmp_path / "v2", max_seq_length=64)] if layouts == 2 else [])
    for directory in dirs:
        ref = st.SentenceTransformer(str(directory), device="cpu")
        enc = SentenceEncoder.from_pretrained(directory)
        assert enc.max_seq_length == ref.max_seq_length
        assert enc.get_sentence_embedding_dimension() == ref.get_embedding_dimension() == 96
        want, got = ref.encode(texts, batch_size=64), enc.encode(texts, batch_size=64)
        assert got.shape == (len(texts), 96)
        assert min_cos(got, want) >= MIN_COS
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)


def test_max_length_where_sentence_transformers_finds_it(tmp_path):
    """A re-saved copy of the bundled model keeps 256 in tokenizer_config.json, not sentence_bert_config.json."""
    src = bench.default_model()
    resaved = tmp_path / "resaved"
    ref = st.SentenceTransformer(src, device="cpu")
    ref.save(str(resaved))
    assert "max_seq_length" not in json.loads((resaved / "sentence_bert_config.json").read_text())
    enc = SentenceEncoder.from_pretrained(resaved)
    assert enc.max_seq_length == st.SentenceTransformer(str(resaved), device="cpu").max_seq_length == 256
    long_texts = [" ".join(bench.load_texts()[i : i + 20]) for i in range(0, 200, 20)]  # ~400+ tokens each
    assert min(len(enc.tokenizer(t)["input_ids"]) for t in long_texts) > 256
    assert min_cos(enc.encode(long_texts), ref.encode(long_texts)) >= MIN_COS
    # no limit anywhere: the position embeddings bound it
    cfg = json.loads((resaved / "tokenizer_config.json").read_text())
    cfg.pop("model_max_length")
    (resaved / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert SentenceEncoder.from_pretrained(resaved).max_seq_length == 512
    assert st.SentenceTransformer(str(resaved), device="cpu").max_seq_length == 512


@pytest.fixture(scope="module")
def prompted(tmp_path_factory):
    directory = save_st(tmp_path_factory.mktemp("prompted") / "m", "weightedmean", dense=torch.nn.Tanh(),
                        include_prompt=False,
                        prompts={"query": "query: ", "passage": "passage: ", "classification": "classify this: "},
                        default_prompt_name="classification")
    return st.SentenceTransformer(str(directory), device="cpu"), SentenceEncoder.from_pretrained(directory)


@pytest.mark.parametrize("call", [{}, {"prompt_name": "query"}, {"prompt": "search_document: "},
                                  {"prompt_name": "passage", "truncate_dim": 32, "normalize_embeddings": True}],
                         ids=["default-prompt", "prompt-name", "prompt", "truncate-normalize"])
def test_prompts_excluded_from_pooling(prompted, texts, call):
    ref, enc = prompted
    assert enc.include_prompt is False and enc.default_prompt_name == "classification"
    want, got = ref.encode(texts, batch_size=64, **call), enc.encode(texts, batch_size=64, **call)
    assert got.shape == want.shape
    assert min_cos(got, want) >= MIN_COS


def test_encode_query_and_document(prompted, texts):
    ref, enc = prompted
    for name in ("encode_query", "encode_document"):
        want, got = getattr(ref, name)(texts[:40]), getattr(enc, name)(texts[:40])
        assert min_cos(got, want) >= MIN_COS
    # sentence-transformers saves an empty "document" prompt, which encode_document takes over "passage" and
    # over the default prompt
    assert enc.prompts["document"] == ""
    np.testing.assert_allclose(enc.encode_document(texts[:5]), enc.encode(texts[:5], prompt=""), atol=1e-6)


@pytest.fixture(scope="module")
def bundled():
    src = bench.default_model()
    return st.SentenceTransformer(src, device="cpu"), SentenceEncoder.from_pretrained(src)


def test_precisions_and_truncation(bundled, texts):
    from sentence_transformers.util.quantization import quantize_embeddings

    ref, enc = bundled
    texts = texts[::2]
    for truncate_dim, precision in [(None, "int8"), (None, "binary"), (64, "float32"), (64, "uint8"), (64, "ubinary")]:
        norm = truncate_dim is not None
        floats = enc.encode(texts, batch_size=64, truncate_dim=truncate_dim, normalize_embeddings=norm)
        kw = dict(batch_size=64, precision=precision, truncate_dim=truncate_dim, normalize_embeddings=norm)
        want, got = ref.encode(texts, **kw), enc.encode(texts, **kw)
        assert got.dtype == want.dtype and got.shape == want.shape
        # the same quantization of the same floats: exactly sentence-transformers' function
        np.testing.assert_array_equal(got, quantize_embeddings(floats, precision=precision))
        if precision == "float32":
            assert min_cos(got, want) >= MIN_COS
        elif precision.endswith("int8"):
            # floats agree to ~1e-7: a value may fall on the other side of a bucket edge, never further
            diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
            assert diff.max() <= 1 and (diff == 0).mean() >= 0.999
        else:
            flips = np.unpackbits(got.view(np.uint8), axis=1) != np.unpackbits(want.view(np.uint8), axis=1)
            assert np.all(np.abs(floats[:, : flips.shape[1]][flips]) < 1e-5)  # only signs of values ~0 differ


def test_output_forms(bundled, texts):
    ref, enc = bundled
    t = enc.encode(texts[:5], convert_to_tensor=True)
    assert isinstance(t, torch.Tensor) and t.shape == (5, 384)
    rows = enc.encode(texts[:5], convert_to_numpy=False)
    assert isinstance(rows, list) and len(rows) == 5 and rows[0].shape == (384,)
    q = enc.encode(texts[:5], precision="ubinary", convert_to_tensor=True)
    assert q.dtype == torch.uint8 and q.shape == (5, 48)
    assert enc.encode(texts[0], precision="binary").shape == (48,)
    with pytest.raises(ValueError, match="single embedding"):
        enc.encode(texts[0], precision="int8")
    e = enc.encode(texts[:6])
    for fn in ("cosine", "dot", "euclidean", "manhattan"):
        ref.similarity_fn_name = fn
        enc._similarity_fn_name = fn
        torch.testing.assert_close(enc.similarity(e[:2], e), ref.similarity(e[:2], e))
        torch.testing.assert_close(enc.similarity_pairwise(e[:3], e[3:]), ref.similarity_pairwise(e[:3], e[3:]))
    assert enc.similarity(e[0], e).shape == (1, 6)
    with pytest.raises(ValueError, match="one shape"):
        enc.similarity_pairwise(e[:2], e[:3])


def test_unknown_or_unsupported_arguments_raise(bundled, texts):
    _, enc = bundled
    with pytest.raises(TypeError):
        enc.encode(texts[:2], pool=None)
    with pytest.raises(TypeError):
        enc.encode(texts[:2], whatever=1)
    with pytest.raises(ValueError, match="precision"):
        enc.encode(texts[:2], precision="float16")
    with pytest.raises(NotImplementedError, match="output_value"):
        enc.encode(texts[:2], output_value="token_embeddings")
    with pytest.raises(ValueError, match="prompt name"):
        enc.encode(texts[:2], prompt_name="nope")
    with pytest.raises(ValueError, match="truncate_dim"):
        enc.encode(texts[:2], truncate_dim=0)
    with pytest.raises(NotImplementedError, match="device"):
        enc.encode(texts[:2], device="meta")


def _edit(path: Path, fn):
    data = json.loads(path.read_text())
    path.write_text(json.dumps(fn(data)))


def _add_module(kind):
    def fn(modules):
        return modules + [{"idx": len(modules), "name": str(len(modules)), "path": "",
                           "type": f"sentence_transformers.sentence_transformer.modules.{kind}"}]
    return fn


@pytest.mark.parametrize("edit, match", [
    (lambda d: _edit(d / "modules.json", _add_module("LayerNorm")), "LayerNorm"),
    (lambda d: _edit(d / "modules.json", _add_module("WeightedLayerPooling")), "WeightedLayerPooling"),
    (lambda d: _edit(d / "modules.json", lambda m: m[:1]), "no Pooling"),
    (lambda d: _edit(d / "modules.json", lambda m: m + [dict(m[1], type="my_package.MyPooling")]), "custom code"),
    (lambda d: _edit(d / "2_Dense" / "config.json", lambda c: c | {"activation_function": "my_pkg.Swish"}),
     "my_pkg.Swish"),
    (lambda d: _edit(d / "2_Dense" / "config.json", lambda c: c | {"module_input_name": "token_embeddings"}),
     "token_embeddings"),
    (lambda d: _edit(d / "1_Pooling" / "config.json", lambda c: c | {"pooling_mode": "attention"}), "attention"),
    (lambda d: _edit(d / "sentence_bert_config.json",
                     lambda c: c | {"processing_kwargs": {"text": {"max_length": 32}}}), "processing_kwargs"),
    (lambda d: _edit(d / "sentence_bert_config.json", lambda c: c | {"model_kwargs": {"torch_dtype": "float16"}}),
     "torch_dtype"),
    (lambda d: _edit(d / "config_sentence_transformers.json", lambda c: c | {"model_type": "SparseEncoder"}),
     "SparseEncoder"),
], ids=["LayerNorm", "WeightedLayerPooling", "no-pooling", "custom-module", "custom-activation",
        "dense-on-tokens", "pooling-mode", "processing_kwargs", "model_kwargs", "model-type"])
def test_unsupported_modules_are_named(tmp_path_factory, edit, match):
    base = tmp_path_factory.getbasetemp() / "unsupported-base"
    if not base.exists():
        save_st(base, "mean", dense=torch.nn.Tanh(), normalize=True)
    directory = tmp_path_factory.mktemp("unsupported") / "m"
    shutil.copytree(base, directory)
    edit(directory)
    with pytest.raises(NotImplementedError, match=match):
        fastbert.SentenceEncoder.from_pretrained(directory)
