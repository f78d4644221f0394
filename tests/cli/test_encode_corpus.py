"""``fastbert encode INPUT -o OUT_DIR/``: sharded output with a manifest, the input readers, resume after an
interruption, refusals, and 2 processes under torchrun writing the bytes 1 process writes."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastbert import bench, cli, corpus
from fastbert.encoder import quantize_embeddings

N_TEXTS = 300
SHARD = 128  # = batch size 2 x SORT_CHUNK_BATCHES: the shards' chunks are those of a single encode call
ARGS = ["--shard-size", str(SHARD), "--batch-size", "2", "--device", "cpu", "--no-progress"]


@pytest.fixture(autouse=True)
def _table_dispatch(monkeypatch):
    """Every encode in these tests takes the dispatch table, as the corpus job does by itself."""
    monkeypatch.setenv("FASTBERT_CALIBRATE", "0")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    real = bench.load_texts()
    rows = list(itertools.islice(itertools.cycle(real), N_TEXTS))
    rows[5] = ""  # an empty line is a row too
    return rows


@pytest.fixture(scope="module")
def text_file(tmp_path_factory, texts) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "in.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, text_file) -> Path:
    """One uninterrupted single-process run."""
    out = tmp_path_factory.mktemp("reference") / "emb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FASTBERT_CALIBRATE", "0")
        assert cli.main(["encode", str(text_file), "-o", f"{out}/", *ARGS]) == 0
    return out


def _same_output(a: Path, b: Path) -> None:
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir())
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_shards_and_manifest_match_the_single_file_output(reference, text_file, tmp_path):
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["complete"] and manifest["total"] == N_TEXTS and manifest["dimension"] == 384
    assert [(s["file"], s["start"], s["stop"]) for s in manifest["shards"]] == [
        ("shard-00000.npy", 0, 128), ("shard-00001.npy", 128, 256), ("shard-00002.npy", 256, 300)]
    assert manifest["options"]["shard_size"] == SHARD and manifest["input"]["format"] == "text"
    assert sorted(p.name for p in reference.iterdir()) == ["manifest.json"] + [s["file"] for s in manifest["shards"]]
    parts = []
    for shard in manifest["shards"]:
        arr = np.load(reference / shard["file"])
        assert arr.dtype == np.float32 and arr.shape == (shard["stop"] - shard["start"], 384)
        saved = tmp_path / "saved.npy"
        np.save(saved, arr)
        assert saved.read_bytes() == (reference / shard["file"]).read_bytes()  # what np.save writes
        parts.append(arr)
    single = tmp_path / "single.npy"
    assert cli.main(["encode", str(text_file), "-o", str(single), "--batch-size", "2", "--device", "cpu",
                     "--no-progress"]) == 0
    assert np.concatenate(parts).tobytes() == np.load(single).tobytes()


def test_interrupted_run_resumes_to_identical_output(reference, text_file, tmp_path):
    out = tmp_path / "emb"

    def stop(k):
        if k == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        corpus.encode_corpus(str(text_file), out, shard_size=SHARD, batch_size=2, device="cpu", progress=False,
                             on_shard=stop)
    assert sorted(p.name for p in out.glob("shard-*")) == ["shard-00000.npy", "shard-00001.npy"]
    partial = json.loads((out / "manifest.json").read_text())
    assert not partial["complete"] and partial["done"] == [0, 1]
    # a run killed inside shard 2 leaves its temporary file behind: the resumed run replaces it
    (out / ".shard-00002.npy.tmp").write_bytes(b"torn")
    encoded = []
    corpus.encode_corpus(str(text_file), out, shard_size=SHARD, batch_size=2, device="cpu", progress=False,
                         on_shard=encoded.append)
    assert encoded == [2]  # the finished shards were kept, not encoded again
    _same_output(out, reference)
    assert cli.main(["encode", str(text_file), "-o", f"{out}/", *ARGS]) == 0  # complete: nothing to do
    _same_output(out, reference)


def test_resume_refuses_another_input_or_options(reference, text_file, tmp_path, capsys):
    out = tmp_path / "emb"
    out.mkdir()
    for name in ("manifest.json", "shard-00000.npy"):
        (out / name).write_bytes((reference / name).read_bytes())
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.update(complete=False, done=[0])
    del manifest["shards"], manifest["total"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert cli.main(["encode", str(text_file), "-o", f"{out}/", *ARGS, "--normalize"]) == 2
    assert "options normalize: False then, True now" in capsys.readouterr().err
    other = tmp_path / "in.txt"
    other.write_text(text_file.read_text() + "one more line\n")
    assert cli.main(["encode", str(other), "-o", f"{out}/", *ARGS]) == 2
    err = capsys.readouterr().err
    assert "input path" in err and "input size" in err
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("x")
    assert cli.main(["encode", str(text_file), "-o", f"{stray}/", *ARGS]) == 2
    assert "has no manifest.json" in capsys.readouterr().err


def test_jsonl_and_csv_inputs_give_the_text_file_output(reference, texts, tmp_path):
    jsonl = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": i, "body": t}) for i, t in enumerate(texts)]
    jsonl.write_text("\n".join(lines[:10]) + "\n\n" + "\n".join(lines[10:]) + "\n")  # a blank line is skipped
    out = tmp_path / "from-jsonl"
    assert cli.main(["encode", str(jsonl), "-o", f"{out}/", "--column", "body", *ARGS]) == 0
    for name in ("shard-00000.npy", "shard-00001.npy", "shard-00002.npy"):
        assert (out / name).read_bytes() == (reference / name).read_bytes()
    assert json.loads((out / "manifest.json").read_text())["input"]["column"] == "body"
    # CSV: quoted commas and newlines; the rows are read by the csv module
    rows = ['a, "quoted" text', "two\nlines", "plain"]
    csv_file = tmp_path / "in.csv"
    csv_file.write_text('id,text\n1,"a, ""quoted"" text"\n2,"two\nlines"\n3,plain\n', newline="")
    assert [corpus.decode_row("csv", "text", w, raw) for w, raw in corpus.read_rows(str(csv_file), "csv", "text")] \
        == rows


def test_parquet_input_gives_the_text_file_output(reference, texts, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": list(range(len(texts))), "body": texts}), src, row_group_size=100)
    out = tmp_path / "from-parquet"
    assert cli.main(["encode", str(src), "-o", f"{out}/", "--column", "body", *ARGS]) == 0
    for name in ("shard-00000.npy", "shard-00001.npy", "shard-00002.npy"):
        assert (out / name).read_bytes() == (reference / name).read_bytes()
    assert corpus.count_rows(str(src), "parquet") == N_TEXTS
    pq.write_table(pa.table({"text": ["a", None]}), src)
    with pytest.raises(corpus.CorpusError, match="row 2: 'text' is NoneType"):
        list(corpus.decode_row("parquet", "text", w, raw) for w, raw in corpus.read_rows(str(src), "parquet", "text"))


def test_binary_precision_packs_the_float_signs(reference, text_file, tmp_path):
    out = tmp_path / "bin"
    assert cli.main(["encode", str(text_file), "-o", f"{out}/", *ARGS, "--precision", "ubinary"]) == 0
    packed = np.concatenate([np.load(out / f"shard-0000{k}.npy") for k in range(3)])
    floats = np.concatenate([np.load(reference / f"shard-0000{k}.npy") for k in range(3)])
    assert packed.dtype == np.uint8 and packed.shape == (N_TEXTS, 48)
    assert np.array_equal(packed, quantize_embeddings(floats, "ubinary"))


@pytest.mark.parametrize(
    ("name", "content", "extra", "message"),
    [
        ("in.jsonl", '{"text": "a"}\n{"body": "b"}\n', [], "line 2: no 'text' field"),
        ("in.jsonl", '{"text": "a"}\n{"text": 3}\n', [], "line 2: 'text' is int, not a string"),
        ("in.jsonl", "not json\n", [], "line 1: not JSON"),
        ("in.csv", "id,body\n1,x\n", [], "no column 'text' in the CSV header"),
        ("in.txt", "a\n", ["--column", "body"], "--column 'body' applies to jsonl, csv and parquet"),
        ("in.txt", "a\n", ["--precision", "int8"], "precision 'int8' cannot be streamed"),
        ("in.txt", "a\n", ["--shard-size", "0"], "--shard-size must be a positive integer"),
        ("in.parquet", "", ["--input-format", "parquet"], "needs the pyarrow package"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, capsys, monkeypatch, name, content, extra, message):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as where it is not installed
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    src = tmp_path / name
    src.write_text(content)
    argv = ["encode", str(src), "-o", f"{tmp_path / 'out'}/", "--device", "cpu", "--no-progress", *extra]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_stdin_and_file_outputs_with_shard_size_are_refused(text_file, tmp_path, capsys):
    assert cli.main(["encode", "-", "-o", f"{tmp_path / 'out'}/"]) == 2
    assert "give a file, not -" in capsys.readouterr().err
    assert cli.main(["encode", str(text_file), "-o", str(tmp_path / "x.npy"), "--shard-size", "10"]) == 2
    assert "the output is a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["encode", str(text_file), "-o", f"{tmp_path}/", "--shard-sise", "10"])


def test_shards_read_lazily():
    """A shard's rows are pulled from the reader as they are used: an endless input is fine."""
    got = [(k, list(itertools.islice(rows, 2))) for k, rows in itertools.islice(corpus.shards(itertools.count(), 5), 3)]
    assert got == [(0, [0, 1]), (1, [5, 6]), (2, [10, 11])]
    assert [(k, len(list(rows))) for k, rows in corpus.shards(iter(range(12)), 5)] == [(0, 5), (1, 5), (2, 2)]


def test_torchrun_two_processes_write_what_one_process_writes(reference, text_file, tmp_path):
    out = tmp_path / "emb"
    env = {**os.environ, "FASTBERT_CALIBRATE": "0", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "fastbert", "encode", str(text_file), "-o", f"{out}/", *ARGS]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "with 2 processes" in proc.stderr
    _same_output(out, reference)
