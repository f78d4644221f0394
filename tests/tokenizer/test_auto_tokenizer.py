"""fastbert.AutoTokenizer against transformers.AutoTokenizer (the oracle) on non-WordPiece checkpoints.

A byte-level BPE (RoBERTa-style) and a Unigram (SentencePiece-style) tokenizer are trained here with `tokenizers`
on real text: the multilingual GLib/GTK strings of tests/data/tokenizer/corpus.txt (see its SOURCE.md) and the
licence texts under /usr/share/common-licenses when the machine has them. transformers' RobertaTokenizerFast,
XLMRobertaTokenizerFast, AlbertTokenizerFast and CamembertTokenizerFast wrap them and save_pretrained writes the
checkpoints; fastbert.AutoTokenizer must then give exactly what transformers.AutoTokenizer gives.
"""

import concurrent.futures
import glob
import json
import os
import shutil

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from tokenizers import AddedToken, decoders, models, pre_tokenizers, trainers  # noqa: E402

import fastbert  # noqa: E402
from fastbert.auto_tokenizer import AutoTokenizer, choose  # noqa: E402
from fastbert.hf_tokenizer import TokenizersTokenizer  # noqa: E402
from fastbert.tokenizer import BertTokenizer  # noqa: E402

CORPUS = os.path.join(os.path.dirname(__file__), "..", "data", "tokenizer", "corpus.txt")
FAMILIES = ["roberta", "xlmr", "albert", "camembert"]
XLMR_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # XLM-R's ids 0..3 (+ mask)
EXTRA_LINES = [
    "",
    " ",
    "   leading and trailing spaces   ",
    "Hello <mask> world</s> x <s><s> <pad>",
    "[CLS] the [MASK] token [SEP] <unk>",
    "😀 emoji 👍🏽 and tabs\tand\nnewlines",
    "CamelCase don't we'll it's ``quoted'' ÉCOLE naïve",
    "x" * 300,
]


def corpus_text() -> tuple[list[str], list[str]]:
    with open(CORPUS, encoding="utf-8") as fh:
        lines = [line.rstrip("\n") for line in fh]
    licences = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as fh:
                licences += [line.strip() for line in fh if len(line.strip()) > 20]
    return lines, licences


@pytest.fixture(scope="session")
def lines():
    corpus, licences = corpus_text()
    return corpus[::15] + licences[::40] + EXTRA_LINES  # ~290 + ~120 real lines, + the odd ones


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """family -> checkpoint dir written by transformers' save_pretrained."""
    corpus, licences = corpus_text()
    root = tmp_path_factory.mktemp("tokenizers")
    bpe = tokenizers.Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus + licences, trainers.BpeTrainer(
        vocab_size=1500, special_tokens=XLMR_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    # Unigram needs every character in its vocab: train on the scripts that fit in ~1500 pieces (the others
    # come out as <unk>, which the comparison covers too)
    uni = tokenizers.Tokenizer(models.Unigram())
    uni.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace()])
    uni.decoder = decoders.Metaspace()
    small_script = [line for line in corpus if all(ord(c) < 0x800 for c in line)]
    uni.train_from_iterator(small_script + licences, trainers.UnigramTrainer(
        vocab_size=1500, special_tokens=XLMR_SPECIALS, unk_token="<unk>", show_progress=False))
    pieces = json.loads(uni.to_str())["model"]["vocab"]  # [[piece, score], ...]

    made = {
        "roberta": transformers.RobertaTokenizerFast(
            tokenizer_object=bpe, model_max_length=40,
            mask_token=AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)),
        "xlmr": transformers.XLMRobertaTokenizerFast(vocab=[tuple(p) for p in pieces]),
        "albert": transformers.AlbertTokenizerFast(vocab=[
            (tok, score) for tok, (_, score) in zip(["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"], pieces[:5])
        ] + [tuple(p) for p in pieces[5:]], model_max_length=48),
        "camembert": transformers.CamembertTokenizerFast(vocab=[tuple(p) for p in pieces], padding_side="left"),
    }
    dirs = {}
    for family, tok in made.items():
        dirs[family] = str(root / family)
        tok.save_pretrained(dirs[family])
    # vocab.json + merges.txt only (an old RoBERTa checkpoint): fastbert builds the tokenizer.json itself
    old = root / "roberta_vocab_merges"
    old.mkdir()
    bpe.model.save(str(old))
    shutil.copy(os.path.join(dirs["roberta"], "tokenizer_config.json"), old)
    dirs["roberta_vocab_merges"] = str(old)
    return dirs


_LOADED = {}


def both(checkpoints, family):
    if family not in _LOADED:
        path = checkpoints[family]
        _LOADED[family] = (AutoTokenizer.from_pretrained(path), transformers.AutoTokenizer.from_pretrained(path))
    return _LOADED[family]


def assert_same(ours, ref):
    assert list(ours.keys()) == list(ref.keys())
    for key in ref:
        a, b = ours[key], ref[key]
        if isinstance(b, torch.Tensor):
            assert isinstance(a, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, key
            assert torch.equal(a, b), key
        elif isinstance(b, np.ndarray):
            assert isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, key
            assert np.array_equal(a, b), key
        else:
            assert a == b, key


def compare(checkpoints, family, *args, **kwargs):
    ours, ref = both(checkpoints, family)
    assert_same(ours(*args, **kwargs), ref(*args, **kwargs))


def pairs_of(lines):
    return lines[: len(lines) // 2], lines[len(lines) // 2 :][: len(lines) // 2]


# ---- the choice ----------------------------------------------------------------------------------------------
def test_bundled_bert_checkpoint_gets_the_cpp_tokenizer(minilm_dir):
    tok = fastbert.AutoTokenizer.from_pretrained(minilm_dir)
    assert type(tok) is BertTokenizer
    assert choose(minilm_dir)[0] == "bert"
    assert fastbert.AutoTokenizer is AutoTokenizer


def test_load_tokenizer_follows_the_family(checkpoints, minilm_dir):
    from fastbert.resources import load_tokenizer

    assert type(load_tokenizer(minilm_dir)) is BertTokenizer
    for family in FAMILIES:
        assert isinstance(load_tokenizer(checkpoints[family]), TokenizersTokenizer)


@pytest.mark.parametrize("family", FAMILIES)
def test_non_wordpiece_gets_tokenizers(checkpoints, family):
    tok = AutoTokenizer.from_pretrained(checkpoints[family])
    assert isinstance(tok, TokenizersTokenizer)
    assert "WordPiece" not in AutoTokenizer.explain(checkpoints[family])


def test_wordpiece_json_bert_does_not_implement_goes_to_tokenizers(tmp_path, minilm_dir, lines):
    data = json.load(open(os.path.join(minilm_dir, "tokenizer.json"), encoding="utf-8"))
    data["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]}
    with open(tmp_path / "tokenizer.json", "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    kind, reason = choose(str(tmp_path))
    assert kind == "tokenizers" and "normalizer Sequence" in reason
    ours = AutoTokenizer.from_pretrained(tmp_path)
    backend = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    backend.no_padding()  # MiniLM's tokenizer.json has padding and truncation baked in: a call sets its own
    backend.no_truncation()
    assert ours(lines[:50])["input_ids"] == [e.ids for e in backend.encode_batch(lines[:50])]


# ---- DistilBERT ---------------------------------------------------------------------------------------------
DISTILBERT_LAYOUTS = ["tokenizer_class", "tokenizer_class_fast", "model_type_only", "model_type_and_bert_class",
                      "vocab_txt_model_type_only", "vocab_txt_tokenizer_class", "no_class_no_model_type"]


@pytest.mark.parametrize("layout", DISTILBERT_LAYOUTS)
def test_distilbert(tmp_path, minilm_dir, lines, layout):
    """transformers' DistilBertTokenizer (a tokenizer_config naming it) returns no token_type_ids by default; a
    DistilBERT checkpoint that names no tokenizer class gets BertTokenizer (transformers' mapping), with them;
    a bare tokenizer.json (no class, no model type) gets transformers' generic backend, without them.
    fastbert.AutoTokenizer gives a plain BertTokenizer with the same defaults, and save_pretrained keeps them."""
    names = ("vocab.txt",) if layout.startswith("vocab_txt") else ("vocab.txt", "tokenizer.json")
    for name in names:
        shutil.copy(os.path.join(minilm_dir, name), tmp_path)
    config = json.load(open(os.path.join(minilm_dir, "tokenizer_config.json"), encoding="utf-8"))
    config.pop("tokenizer_class")
    if layout in ("tokenizer_class", "vocab_txt_tokenizer_class"):
        config["tokenizer_class"] = "DistilBertTokenizer"
    elif layout == "tokenizer_class_fast":
        config["tokenizer_class"] = "DistilBertTokenizerFast"
    elif layout == "model_type_and_bert_class":
        config["tokenizer_class"] = "BertTokenizer"
    if "model_type" in layout:
        with open(tmp_path / "config.json", "w") as fh:
            json.dump({"model_type": "distilbert", "vocab_size": 30522}, fh)
    with open(tmp_path / "tokenizer_config.json", "w") as fh:
        json.dump(config, fh)
    ours, ref = AutoTokenizer.from_pretrained(tmp_path), transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert type(ours) is BertTokenizer
    assert ours.model_input_names == ref.model_input_names
    a, b = pairs_of(lines)
    for kwargs in ({}, dict(return_token_type_ids=True), dict(padding=True, return_tensors="np")):
        assert_same(ours(a, b, **kwargs), ref(a, b, **kwargs))
    ours.save_pretrained(tmp_path / "saved")
    again, ref_again = (AutoTokenizer.from_pretrained(tmp_path / "saved"),
                        transformers.AutoTokenizer.from_pretrained(tmp_path / "saved"))
    assert type(again) is BertTokenizer
    assert again.model_input_names == ref_again.model_input_names == ref.model_input_names
    assert_same(again(a, b), ref(a, b))
    assert_same(ref_again(a, b), ref(a, b))


# ---- parity ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_texts_and_pairs(checkpoints, family, lines):
    a, b = pairs_of(lines)
    compare(checkpoints, family, lines)
    compare(checkpoints, family, a, b)
    compare(checkpoints, family, list(zip(a, b)))
    compare(checkpoints, family, a, b, return_token_type_ids=True, return_special_tokens_mask=True,
            return_offsets_mapping=True, return_length=True)
    compare(checkpoints, family, lines, add_special_tokens=False, return_attention_mask=False)
    for text, pair in [(lines[3], None), (lines[3], lines[4]), ("", None), ("", ""), (" ", "x"), (lines[3], "")]:
        compare(checkpoints, family, text, pair)
        compare(checkpoints, family, text, pair, return_tensors="pt")


@pytest.mark.parametrize("family", FAMILIES)
def test_special_tokens_in_text(checkpoints, family):
    texts = EXTRA_LINES[3:5] + ["<mask>", " <mask> ", "a<mask>b", "</s></s>", "<s>NOTUSED <unk>NOTUSED"]
    compare(checkpoints, family, texts)
    compare(checkpoints, family, texts, split_special_tokens=True)
    ours, ref = both(checkpoints, family)
    for text in texts:
        assert ours.tokenize(text) == ref.tokenize(text)
        assert ours.tokenize(text, text, add_special_tokens=True) == ref.tokenize(text, text, add_special_tokens=True)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("strategy", ["longest_first", "only_first", "only_second"])
@pytest.mark.parametrize("max_length", [9, 16])
def test_truncation(checkpoints, family, lines, strategy, max_length):
    ours, ref = both(checkpoints, family)
    a, b = pairs_of(lines[:80])
    for kwargs in (dict(), dict(return_overflowing_tokens=True, stride=2)):
        for call in ((a, b), ([t + " " + t for t in a], ["w"] * len(a))):
            try:
                want = ref(*call, truncation=strategy, max_length=max_length, **kwargs)
            except BaseException as e:  # infeasible (a sequence too short to cut, a stride too long): ours raises
                if isinstance(e, KeyboardInterrupt):  # too; the Rust panic becomes a ValueError
                    raise
                with pytest.raises(ValueError if not isinstance(e, Exception) else type(e)):
                    ours(*call, truncation=strategy, max_length=max_length, **kwargs)
                continue
            assert_same(ours(*call, truncation=strategy, max_length=max_length, **kwargs), want)
    if strategy != "only_second":
        compare(checkpoints, family, lines, truncation=strategy, max_length=max_length)
        compare(checkpoints, family, lines[::4], truncation=strategy, max_length=max_length, stride=3,
                return_overflowing_tokens=True)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.filterwarnings("ignore:padding='max_length' without max_length")
def test_truncation_defaults(checkpoints, family, lines):
    """max_length alone means longest_first; truncation=True alone cuts to model_max_length when there is one."""
    compare(checkpoints, family, lines, max_length=12)
    compare(checkpoints, family, lines, truncation=True)
    compare(checkpoints, family, lines, truncation=True, padding="max_length")
    ours, ref = both(checkpoints, family)
    assert ours.model_max_length == ref.model_max_length
    ours.truncation_side = ref.truncation_side = "left"
    try:
        compare(checkpoints, family, *pairs_of(lines), max_length=10)
    finally:
        ours.truncation_side = ref.truncation_side = "right"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("padding", [True, "max_length"])
@pytest.mark.parametrize("side", [None, "left"])
@pytest.mark.parametrize("tensors", [None, "np", "pt"])
@pytest.mark.filterwarnings("ignore:padding='max_length' without max_length")
def test_padding(checkpoints, family, lines, padding, side, tensors):
    kwargs = dict(padding=padding, padding_side=side, return_tensors=tensors, truncation=True, max_length=24)
    compare(checkpoints, family, lines[:60], **kwargs)
    compare(checkpoints, family, *pairs_of(lines[:60]), pad_to_multiple_of=8, return_token_type_ids=True,
            return_length=True, **kwargs)
    compare(checkpoints, family, lines[:60], padding=padding, pad_to_multiple_of=16, padding_side=side,
            return_tensors=tensors, truncation=True, max_length=96)
    if tensors is None:
        compare(checkpoints, family, lines[:60], padding="longest", padding_side="right")
        compare(checkpoints, family, lines[:60], padding=padding, pad_to_multiple_of=8)


@pytest.mark.parametrize("family", FAMILIES)
def test_unpadded_tensors_raise(checkpoints, family, lines):
    ours, _ = both(checkpoints, family)
    with pytest.raises(ValueError, match="padding"):
        ours(lines[:5], return_tensors="np")
    assert ours(lines[:1], return_tensors="pt")["input_ids"].shape[0] == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_decode(checkpoints, family, lines):
    ours, ref = both(checkpoints, family)
    ids = ref(*pairs_of(lines), padding=True)["input_ids"]
    for skip in (False, True):
        assert ours.batch_decode(ids, skip_special_tokens=skip) == ref.batch_decode(ids, skip_special_tokens=skip)
        assert ours.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip)
        for row in ids[:20]:
            assert ours.decode(row, skip_special_tokens=skip) == ref.decode(row, skip_special_tokens=skip)
            assert ours.decode(row, skip, clean_up_tokenization_spaces=True) == ref.decode(
                row, skip_special_tokens=skip, clean_up_tokenization_spaces=True)
        assert ours.decode(np.array(ids[0]), skip) == ref.decode(np.array(ids[0]), skip_special_tokens=skip)
        assert ours.decode(torch.tensor(ids[1]), skip) == ref.decode(torch.tensor(ids[1]), skip_special_tokens=skip)
    assert ours.decode(ids[0][1]) == ref.decode(ids[0][1])
    assert ours.batch_decode([]) == ref.batch_decode([]) == []


@pytest.mark.parametrize("family", FAMILIES)
def test_vocab_and_special_tokens(checkpoints, family, lines):
    ours, ref = both(checkpoints, family)
    assert ours.vocab_size == ref.vocab_size and len(ours) == len(ref)
    assert ours.get_vocab() == ref.get_vocab()
    assert ours.model_input_names == ref.model_input_names == ["input_ids", "attention_mask"]
    assert (ours.model_max_length, ours.padding_side, ours.truncation_side) == (
        ref.model_max_length, ref.padding_side, ref.truncation_side)
    assert ours.special_tokens_map == ref.special_tokens_map
    assert ours.all_special_tokens == ref.all_special_tokens
    assert ours.all_special_ids == ref.all_special_ids
    for attr in ("bos", "eos", "unk", "sep", "pad", "cls", "mask"):
        assert getattr(ours, f"{attr}_token") == getattr(ref, f"{attr}_token")
        assert getattr(ours, f"{attr}_token_id") == getattr(ref, f"{attr}_token_id")
    assert ours.num_special_tokens_to_add(True) == ref.num_special_tokens_to_add(True)
    tokens = ref.tokenize(lines[5]) + ["<never-seen>"]
    assert ours.convert_tokens_to_ids(tokens) == ref.convert_tokens_to_ids(tokens)
    assert ours.convert_tokens_to_ids(tokens[0]) == ref.convert_tokens_to_ids(tokens[0])
    ids = ref(lines[5])["input_ids"]
    for skip in (False, True):
        assert ours.convert_ids_to_tokens(ids, skip) == ref.convert_ids_to_tokens(ids, skip_special_tokens=skip)
    assert ours.convert_ids_to_tokens(ids[1]) == ref.convert_ids_to_tokens(ids[1])
    assert ours.convert_tokens_to_string(tokens[:-1]) == ref.convert_tokens_to_string(tokens[:-1])
    for text in lines[:40]:
        assert ours.tokenize(text) == ref.tokenize(text)
        assert ours.encode(text) == ref.encode(text)
        assert ours.encode(text, lines[1], max_length=8, truncation=True) == ref.encode(
            text, lines[1], max_length=8, truncation=True)
    assert torch.equal(ours.encode(lines[2], return_tensors="pt"), ref.encode(lines[2], return_tensors="pt"))


@pytest.mark.parametrize("family", FAMILIES)
def test_save_pretrained_roundtrip(checkpoints, family, lines, tmp_path):
    ours, ref = both(checkpoints, family)
    ours.save_pretrained(tmp_path)
    again, ref_again = AutoTokenizer.from_pretrained(tmp_path), transformers.AutoTokenizer.from_pretrained(tmp_path)
    a, b = pairs_of(lines)
    want = ref(a, b, padding=True, return_tensors="np")
    assert_same(again(a, b, padding=True, return_tensors="np"), want)
    assert_same(ref_again(a, b, padding=True, return_tensors="np"), want)
    assert again.special_tokens_map == ours.special_tokens_map
    assert again.model_input_names == ref_again.model_input_names == ref.model_input_names


def test_roberta_from_vocab_and_merges(checkpoints, lines):
    path = checkpoints["roberta_vocab_merges"]
    assert choose(path)[0] == "byte_level_bpe"
    ours, ref = AutoTokenizer.from_pretrained(path), transformers.AutoTokenizer.from_pretrained(path)
    a, b = pairs_of(lines)
    assert_same(ours(a, b, truncation=True, padding=True), ref(a, b, truncation=True, padding=True))
    assert_same(ours(EXTRA_LINES), ref(EXTRA_LINES))
    assert ours.decode(ours(a)["input_ids"][0]) == ref.decode(ref(a)["input_ids"][0])


def test_threads_share_one_tokenizer(checkpoints, lines):
    """A call sets truncation/padding on the shared backend: concurrent calls with different settings must not
    see each other's."""
    ours, _ = both(checkpoints, "xlmr")
    calls = [dict(padding=True), dict(truncation=True, max_length=6), dict(), dict(padding="max_length",
                                                                                   max_length=64)] * 3
    want = [ours(lines, **kw)["input_ids"] for kw in calls]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda kw: ours(lines, **kw)["input_ids"], calls))
    assert got == want


# ---- what it does not do --------------------------------------------------------------------------------
def test_unsupported_arguments_raise(checkpoints):
    ours, _ = both(checkpoints, "roberta")
    for kwargs in (dict(text_target="x"), dict(is_split_into_words=True), dict(tokenizer_kwargs={"a": 1}),
                   dict(return_something=True)):
        with pytest.raises(TypeError, match="unsupported"):
            ours("hello", **kwargs)
    assert ours("hello", is_split_into_words=False, text_target=None)["input_ids"] == ours("hello")["input_ids"]
    with pytest.raises(ValueError, match="return_tensors"):
        ours("hello", return_tensors="tf")
    with pytest.raises(ValueError, match="padding strategy"):
        ours("hello", padding="longer")
    with pytest.raises(ValueError, match="truncation strategy"):
        ours("hello", truncation="both")
    with pytest.raises(ValueError, match="pad_to_multiple_of"):
        ours(["hello"], padding=True, truncation=True, max_length=10, pad_to_multiple_of=8)
    with pytest.raises(ValueError, match="padding_side"):
        ours("hello", padding=True, padding_side="middle")
    with pytest.raises(TypeError, match="unsupported"):
        ours.tokenize("hello", return_tensors_as="np")
    with pytest.raises(TypeError):
        AutoTokenizer.from_pretrained(checkpoints["roberta"], not_an_option=1)
    with pytest.raises(ValueError, match="not in the tokenizer's vocabulary"):
        AutoTokenizer.from_pretrained(checkpoints["roberta"], pad_token="<not-there>")
    with pytest.raises(TypeError):
        ours(12)


def test_checkpoints_without_a_usable_tokenizer_raise(tmp_path, minilm_dir):
    sp = tmp_path / "sentencepiece_only"
    sp.mkdir()
    (sp / "sentencepiece.bpe.model").write_bytes(b"\x00")
    with pytest.raises(ValueError, match="tokenizer.json"):
        AutoTokenizer.from_pretrained(sp)
    mpnet = tmp_path / "mpnet_vocab_txt"
    mpnet.mkdir()
    shutil.copy(os.path.join(minilm_dir, "vocab.txt"), mpnet)
    (mpnet / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "MPNetTokenizer"}))
    with pytest.raises(ValueError, match="not BERT WordPiece"):
        AutoTokenizer.from_pretrained(mpnet)
    gpt2 = tmp_path / "gpt2_vocab_merges"
    gpt2.mkdir()
    (gpt2 / "vocab.json").write_text("{}")
    (gpt2 / "merges.txt").write_text("")
    (gpt2 / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2Tokenizer"}))
    with pytest.raises(ValueError, match="byte-level BPE"):
        AutoTokenizer.from_pretrained(gpt2)
    with pytest.raises(FileNotFoundError, match="no tokenizer"):
        AutoTokenizer.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError):
        AutoTokenizer.from_pretrained(tmp_path / "missing")


def test_tokenizers_backend_works_without_the_extension(checkpoints, lines):
    """TokenizersTokenizer and the AutoTokenizer choice import no compiled tokenizer extension (their shared
    helpers live in fastbert.tokenizer_common): a checkpoint of another family loads and encodes without it."""
    import subprocess
    import sys

    code = (
        "import sys, json\n"
        "sys.modules['fastbert._tokenizer'] = None  # importing it now raises ImportError\n"
        "from fastbert.auto_tokenizer import AutoTokenizer\n"
        "tok = AutoTokenizer.from_pretrained(sys.argv[1])\n"
        "assert 'fastbert.tokenizer' not in sys.modules\n"
        "print(json.dumps(tok(json.loads(sys.argv[2]))['input_ids']))\n"
    )
    ours, _ = both(checkpoints, "roberta")
    run = subprocess.run([sys.executable, "-c", code, checkpoints["roberta"], json.dumps(lines[:20])],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == ours(lines[:20])["input_ids"]
    import fastbert.tokenizer as ft
    import fastbert.tokenizer_common as common

    for name in ("BatchEncoding", "clean_up_tokenization", "VERY_LARGE_INTEGER", "_batch_inputs", "_as_id_list",
                 "_check_call_arguments", "bert_pipeline_differences"):
        assert getattr(ft, name) is getattr(common, name)
