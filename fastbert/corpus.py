"""``fastbert encode INPUT -o OUT_DIR/``: a corpus-scale batch job that embeds a file too large to hold in
memory into a directory of ``.npy`` shards with a manifest, resumes where an interrupted run stopped, and runs
under ``torchrun`` on several processes or GPUs.

Input (``read_rows``; never the whole file in memory): ``.txt`` (or any other suffix, or ``--input-format
text``) is one text per line, every line a row, empty ones too, as the single-file command reads it;
``.jsonl`` / ``.ndjson`` one JSON object per line, the text in ``--column`` (default ``text``), blank lines
skipped; ``.csv`` a header row and the text in ``--column`` (the ``csv`` module, quoted newlines allowed);
``.parquet`` the ``--column`` read a record batch at a time (needs ``pyarrow``). A row that has no text there
is a ``CorpusError`` naming its line, never skipped.

Output::

    OUT_DIR/shard-00000.npy   rows 0 .. S-1 of the input, (S, dim) float32 (or --precision binary/ubinary:
    OUT_DIR/shard-00001.npy   rows S .. 2S-1                           (S, ceil(dim/8)) int8/uint8)
    ...                       the last one shorter; S = --shard-size (default 100,000)
    OUT_DIR/manifest.json     the shards in order with their row ranges, the model dir, the options, the
                              dimension and dtype, the total, and the input's fingerprint

Each shard file is byte for byte what ``np.save`` writes for its array, and when the shard size is a multiple
of the chunk (below), ``np.concatenate`` of the shards is byte for byte what ``fastbert encode INPUT -o out.npy``
writes (otherwise a shard boundary splits a chunk, the batches differ, and so may the last bits). int8/uint8
are refused: their ranges come from all the embeddings together, which a streaming job cannot see (write
float32 and quantize afterwards).

Memory is bounded by one *chunk*, not by the file or the shard: the rows are read ``batch_size x
SORT_CHUNK_BATCHES`` at a time (2,048 with the default batch size, the same chunk ``SentenceEncoder.encode``
tokenizes and sorts by length, so the batches, and so the embeddings, are those of a single ``encode`` call),
encoded, and appended to the shard's file (a ``.npy`` header, then the rows; the header's row count is fixed when
the shard ends). Measured with all-MiniLM-L6-v2 on 2 cores of an AMD EPYC, batch size 32, shard size 10,000, lines
of ``fastbert.bench`` texts repeated: peak RSS (``ru_maxrss``) 640 MiB for 10,000 lines and 701 MiB for 100,000
(flat from the second shard on: 695 MiB after 20,000 rows, 701 after 100,000), at 551 texts/s; on a 1,000,000-line
file (127 MB), uninterrupted, shards of 100,000: peak 763 MiB, 656 MiB after 180,000 lines and 700-780 MiB from
400,000 to the end, at 496 texts/s (``benchmarks/results/cpu-avx512/corpus_1m.md``). The rest is the model, torch
and one chunk's activations, plus oneDNN's per-shape caches: oneDNN and ideep each keep 1,024 compiled GEMMs by
default, one per packed row count, at megabytes each (2.9 GiB after 100,000 texts and still growing), so unless the
environment sets them the job caps both at ``ONEDNN_CACHE_ENTRIES``, which cost no speed here (30,000 texts in 53 s
capped, 54 s not). The caps are read at the process's first oneDNN GEMM, so they apply where the job runs first, as
in ``fastbert encode``.

Resume: a shard is written to ``.shard-NNNNN.npy.tmp`` and renamed into place when complete (``os.replace``),
so a shard file that exists is whole. The manifest is written first (``complete: false``) and rewritten after
each shard rank 0 finishes; a rerun with the same arguments keeps the shards already there (their shapes are
checked) and encodes the rest, giving the same bytes as a run that was never stopped. A rerun that names a
different input (size, mtime or the SHA-256 of its first MiB differ), model or option is refused with the
difference spelled out, as is a non-empty directory without a manifest; a complete run is not redone.

Distributed: under ``torchrun`` (``WORLD_SIZE > 1``) every process joins a gloo group (only small Python
objects and barriers travel, so gloo serves GPU runs too), reads the whole input (cheap next to encoding) and
encodes shard ``k`` where ``k % world_size == rank``, on ``cuda:LOCAL_RANK`` when the device is CUDA. After a
final gather rank 0 checks that every process counted the same rows and writes the manifest. Since a shard's
embeddings depend only on its own rows, any number of processes writes the same bytes.

Reproducible bytes need reproducible kernels: fastbert's CPU dispatch picks backends by timing them
(``fastbert.dispatch``), and two processes on a busy machine may time them differently, or a resumed run
differently from the first. So unless ``FASTBERT_CALIBRATE`` is set, the job runs with it set to ``0`` (the
per-instruction-set table: the same choice every time), restoring the environment when it returns; the
manifest's options record it, so a resume takes the same path. The per-process thread count does not change
the bytes on the CPU measured (1 process with 2 threads, 1 with 1, and 2 under ``torchrun`` with 1 thread
each wrote identical shards).
"""

from __future__ import annotations

import collections
import contextlib
import csv
import hashlib
import itertools
import json
import os
import re
import resource
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np

SHARD_SIZE = 100_000
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "fastbert-embeddings/1"
HEAD_BYTES = 1 << 20  # the input's fingerprint hashes its first MiB
SUFFIX_FORMATS = {".txt": "text", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
INPUT_FORMATS = ("auto", "text", "jsonl", "csv", "parquet")
STREAM_PRECISIONS = {"float32": np.float32, "binary": np.int8, "ubinary": np.uint8}
PARQUET_BATCH = 8192
SHARD_FILE = re.compile(r"shard-(\d{5,})\.npy")
# ranks finish at different times and the final gather waits for the slowest
DIST_TIMEOUT = timedelta(hours=12)
# oneDNN's primitive cache and ideep's (torch's oneDNN wrapper) LRU cache each keep 1,024 compiled GEMMs by
# default, one per row count; packed batches bring thousands of row counts and an entry costs megabytes
ONEDNN_CACHE_ENTRIES = 64


class CorpusError(ValueError):
    """Bad input, options or output directory: ``fastbert encode`` prints it and exits with status 2."""


# ------------------------------------------------------------------------------------------------ input
def input_format(path: str, fmt: str = "auto") -> str:
    """``fmt``, or the format ``path``'s suffix names (text for stdin and any other suffix)."""
    if fmt not in INPUT_FORMATS:
        raise CorpusError(f"input format must be one of {INPUT_FORMATS}, got {fmt!r}")
    if fmt != "auto":
        return fmt
    return "text" if path == "-" else SUFFIX_FORMATS.get(Path(path).suffix.lower(), "text")


def check_column(fmt: str, column: str | None) -> str | None:
    """The column to read: ``text`` by default for jsonl/csv/parquet; text input has none."""
    if fmt == "text":
        if column is not None:
            raise CorpusError(f"--column {column!r} applies to jsonl, csv and parquet input, not to text lines")
        return None
    return "text" if column is None else column


def read_rows(path: str, fmt: str, column: str | None) -> Iterator[tuple[int, object]]:
    """``(line or row number, raw row)`` for each row of the input, streamed; ``decode_row`` turns a raw row
    into its text (for JSONL that is where the line is parsed, so rows another process owns cost a line read)."""
    if fmt == "text":
        yield from _text_rows(path)
    elif fmt == "jsonl":
        yield from _jsonl_rows(path)
    elif fmt == "csv":
        yield from _csv_rows(path, column)
    elif fmt == "parquet":
        yield from _parquet_rows(path, column)
    else:
        raise CorpusError(f"unknown input format {fmt!r}")


def decode_row(fmt: str, column: str | None, where: int, raw) -> str:
    """The text of one raw row from ``read_rows``; a row without one is a ``CorpusError`` naming it."""
    if fmt == "text":
        return raw
    if fmt == "jsonl":
        try:
            record = json.loads(raw)
        except ValueError as e:
            raise CorpusError(f"line {where}: not JSON ({e})") from None
        if not isinstance(record, dict):
            raise CorpusError(f"line {where}: expected a JSON object with a {column!r} field, "
                              f"got {type(record).__name__}")
        if column not in record:
            raise CorpusError(f"line {where}: no {column!r} field (fields: {sorted(record)[:10]}); "
                              "choose one with --column")
        raw = record[column]
    if not isinstance(raw, str):
        unit = "row" if fmt == "parquet" else "line"
        raise CorpusError(f"{unit} {where}: {column!r} is {type(raw).__name__}, not a string")
    return raw


def _open_text(path: str, newline: str | None = None):
    if path == "-":  # stdin as it is (a test may have replaced it), left open
        return contextlib.nullcontext(sys.stdin)
    return open(path, encoding="utf-8", newline=newline)  # noqa: SIM115


def _text_rows(path: str):
    with _open_text(path) as f:
        for number, line in enumerate(f, 1):
            yield number, line.rstrip("\r\n")


def _jsonl_rows(path: str):
    with _open_text(path) as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                yield number, line


def _csv_rows(path: str, column: str):
    with _open_text(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if header is None:
                return
            if column not in header:
                raise CorpusError(f"{path}: no column {column!r} in the CSV header {header[:20]}; "
                                  "choose one with --column")
            index = header.index(column)
            for row in reader:
                if not row:
                    continue
                if index >= len(row):
                    raise CorpusError(f"{path} line {reader.line_num}: {len(row)} fields, no {column!r}")
                yield reader.line_num, row[index]
        except csv.Error as e:
            raise CorpusError(f"{path} line {reader.line_num}: {e}") from None


def _parquet_rows(path: str, column: str):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CorpusError("reading .parquet input needs the pyarrow package (pip install pyarrow)") from None
    source = pq.ParquetFile(path)
    if column not in source.schema_arrow.names:
        raise CorpusError(f"{path}: no column {column!r} (columns: {source.schema_arrow.names[:20]}); "
                          "choose one with --column")
    number = 0
    for batch in source.iter_batches(batch_size=PARQUET_BATCH, columns=[column]):
        for value in batch.column(0).to_pylist():
            number += 1
            yield number, value


def count_rows(path: str, fmt: str) -> int | None:
    """How many rows the input has, for the progress bar (a fast byte scan; None for CSV, whose quoted
    fields may hold newlines)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if fmt == "csv":
        return None
    count, last = 0, b"\n"
    with open(path, "rb") as f:
        if fmt == "text":
            while block := f.read(1 << 22):
                count += block.count(b"\n")
                last = block[-1:]
            return count + (last != b"\n")
        return sum(1 for line in f if line.strip())


def fingerprint(path: str) -> dict:
    """What identifies the input for a resume: its size, mtime and the SHA-256 of its first MiB."""
    st = os.stat(path)
    with open(path, "rb") as f:
        head = hashlib.sha256(f.read(HEAD_BYTES)).hexdigest()
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "head_sha256": head}


def shards(rows: Iterator, shard_size: int) -> Iterator[tuple[int, Iterator]]:
    """``(k, rows of shard k)``: consecutive runs of ``shard_size`` rows. What the caller leaves of a shard's
    rows is read past before the next shard starts."""
    rows = iter(rows)
    end = object()
    for k in itertools.count():
        first = next(rows, end)
        if first is end:
            return
        part = itertools.chain((first,), itertools.islice(rows, shard_size - 1))
        yield k, part
        collections.deque(part, maxlen=0)


# ------------------------------------------------------------------------------------------------ output
def shard_name(k: int) -> str:
    return f"shard-{k:05d}.npy"


def npy_header(rows: int, width: int, dtype) -> bytes:
    """The ``.npy`` header ``np.save`` writes for a C-ordered ``(rows, width)`` array of ``dtype``. numpy leaves
    room for the row count to grow, so its length does not depend on ``rows``."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": (rows, width)})
    return buf.getvalue()


def write_shard(path: Path, chunks: Iterator[np.ndarray], width: int, dtype) -> int:
    """Write ``chunks`` (arrays of ``(n, width)``) one after another into the ``.npy`` file ``path``; returns the
    row count. The file appears only when complete: it is written as ``.NAME.tmp`` and renamed."""
    tmp = path.with_name(f".{path.name}.tmp")
    placeholder = npy_header(0, width, dtype)
    rows = 0
    with open(tmp, "wb") as f:
        f.write(placeholder)
        for chunk in chunks:
            if chunk.shape[1:] != (width,):
                raise RuntimeError(f"a chunk of shape {chunk.shape} in a shard of width {width}")
            f.write(np.ascontiguousarray(chunk, dtype=dtype).tobytes())
            rows += len(chunk)
        header = npy_header(rows, width, dtype)
        if len(header) != len(placeholder):
            raise RuntimeError(f"the .npy header grew from {len(placeholder)} to {len(header)} bytes")
        f.seek(0)
        f.write(header)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return rows


def shard_shape(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a ``.npy`` file (mapped, not read; numpy checks the file is long enough)."""
    arr = np.load(path, mmap_mode="r")
    return arr.shape, arr.dtype


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_manifest(out_dir: Path) -> dict | None:
    path = out_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise CorpusError(f"{path} is not readable JSON ({e}); remove {out_dir} to start over") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise CorpusError(f"{path} is not a fastbert embeddings manifest; choose another output directory")
    return data


def check_resume(manifest: dict, expected: dict, out_dir: Path) -> None:
    """Refuse to add to a directory made from another input, model or options, naming what differs."""
    diffs = []
    for key in ("input", "model", "options"):
        old, new = manifest.get(key) or {}, expected[key]
        if not isinstance(new, dict):
            if old != new:
                diffs.append(f"{key}: {old!r} then, {new!r} now")
            continue
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                diffs.append(f"{key} {name}: {old.get(name)!r} then, {new.get(name)!r} now")
    if diffs:
        raise CorpusError(f"{out_dir} holds embeddings of another run ({'; '.join(diffs)}): rerun with the same "
                          "input and options to resume, or choose another output directory")


# ------------------------------------------------------------------------------------------------ the job
def _join_group() -> tuple[int, int, bool]:
    """``(world size, rank, whether this call created the group)``: torchrun's group when ``WORLD_SIZE > 1``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank(), False
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 1, 0, False
    dist.init_process_group("gloo", timeout=DIST_TIMEOUT)
    return dist.get_world_size(), dist.get_rank(), True


def _gather(obj, world: int) -> list:
    if world == 1:
        return [obj]
    import torch.distributed as dist

    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def encode_corpus(
    input: str,
    out_dir: str | Path,
    *,
    model: str | None = None,
    fmt: str = "auto",
    column: str | None = None,
    shard_size: int = SHARD_SIZE,
    batch_size: int = 32,
    normalize: bool = False,
    prompt: str | None = None,
    prompt_name: str | None = None,
    truncate_dim: int | None = None,
    precision: str = "float32",
    device: str | None = None,
    progress: bool = True,
    on_shard: Callable[[int], None] | None = None,
) -> dict:
    """Embed every row of ``input`` into ``out_dir`` (shards + ``manifest.json``, see the module docstring);
    returns the manifest. Resumes a run with the same arguments; under torchrun each process takes its share of
    the shards. ``on_shard(k)`` is called after shard ``k`` is written by this process (tests stop a run there).
    """
    from fastbert.encoder import SORT_CHUNK_BATCHES, check_batch_size

    started = time.perf_counter()
    fmt = input_format(input, fmt)
    column = check_column(fmt, column)
    if input == "-":
        raise CorpusError("sharded output reads its input again to resume or under torchrun: give a file, not -")
    if not Path(input).is_file():
        raise CorpusError(f"input {input} is not a file")
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise CorpusError(f"--shard-size must be a positive integer, got {shard_size!r}")
    try:
        batch_size = check_batch_size(batch_size)
    except ValueError as e:
        raise CorpusError(str(e)) from None
    if precision not in STREAM_PRECISIONS:
        raise CorpusError(f"precision {precision!r} cannot be streamed (int8/uint8 ranges come from all the "
                          f"embeddings together): use one of {tuple(STREAM_PRECISIONS)}, or a single .npy output")
    if truncate_dim is not None and (isinstance(truncate_dim, bool) or not isinstance(truncate_dim, int)
                                     or truncate_dim < 1):
        raise CorpusError(f"--truncate-dim must be a positive integer, got {truncate_dim!r}")
    first = next(read_rows(input, fmt, column), None)  # a missing column or package shows before the model loads
    if first is not None:
        decode_row(fmt, column, *first)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise CorpusError(f"{out_dir} exists and is not a directory")
    if model is None:
        from fastbert.resources import default_model

        model = default_model()
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    calibrate = os.environ.get("FASTBERT_CALIBRATE", "0") != "0"
    expected = {
        "input": {**fingerprint(input), "format": fmt, "column": column},
        "model": str(Path(model).resolve()),
        "options": {"shard_size": shard_size, "batch_size": batch_size, "normalize": bool(normalize),
                    "prompt": prompt, "prompt_name": prompt_name, "truncate_dim": truncate_dim,
                    "precision": precision, "device": torch.device(device).type, "calibrate": calibrate},
    }
    previous = read_manifest(out_dir) if out_dir.is_dir() else None
    if previous is not None:
        check_resume(previous, expected, out_dir)
        if previous.get("complete"):
            print(f"fastbert encode: {out_dir} is already complete ({previous.get('total')} embeddings)",
                  file=sys.stderr)
            return previous
    elif out_dir.is_dir() and any(out_dir.iterdir()):
        raise CorpusError(f"{out_dir} is not empty and has no {MANIFEST}: choose a new or empty directory")

    # the job's settings, for its duration (the cache caps are read at the process's first oneDNN GEMM)
    settings = {"FASTBERT_CALIBRATE": "1" if calibrate else "0",
                "ONEDNN_PRIMITIVE_CACHE_CAPACITY": os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY",
                                                                  str(ONEDNN_CACHE_ENTRIES)),
                "LRU_CACHE_CAPACITY": os.environ.get("LRU_CACHE_CAPACITY", str(ONEDNN_CACHE_ENTRIES))}
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    world, rank, created = _join_group()
    try:
        if world > 1 and torch.device(device).type == "cuda" and torch.device(device).index is None:
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        return _run(input, out_dir, fmt, column, expected, world, rank, device, batch_size,
                    batch_size * SORT_CHUNK_BATCHES, progress, on_shard, started,
                    dict(normalize_embeddings=bool(normalize), prompt=prompt, prompt_name=prompt_name,
                         truncate_dim=truncate_dim, precision=precision))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if created:
            import torch.distributed as dist

            dist.destroy_process_group()


def _run(input, out_dir: Path, fmt, column, expected, world, rank, device, batch_size, chunk, progress,
         on_shard, started, encode_kwargs) -> dict:
    from fastbert.encoder import SentenceEncoder, resolve_prompt

    options = expected["options"]
    shard_size, precision = options["shard_size"], options["precision"]
    encoder = SentenceEncoder.from_pretrained(expected["model"], device=device)
    try:
        resolve_prompt(encoder.prompts, encoder.default_prompt_name, encode_kwargs["prompt"],
                       encode_kwargs["prompt_name"])
    except ValueError as e:
        raise CorpusError(str(e)) from None
    dim = encoder.get_sentence_embedding_dimension()
    if options["truncate_dim"] is not None:
        dim = min(dim, options["truncate_dim"])
    dtype = np.dtype(STREAM_PRECISIONS[precision])
    width = dim if precision == "float32" else (dim + 7) // 8
    manifest = {"format": MANIFEST_FORMAT, **expected, "dimension": dim, "dtype": dtype.name, "width": width,
                "complete": False}

    done = {int(m.group(1)) for p in (out_dir.iterdir() if out_dir.is_dir() else ())
            if (m := SHARD_FILE.fullmatch(p.name))}
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_json(out_dir / MANIFEST, {**manifest, "done": sorted(done)})
    _barrier(world)

    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        total = count_rows(input, fmt)
        mine = None
        if total is not None:
            mine = sum(min(shard_size, total - k * shard_size) for k in range(rank, -(-total // shard_size), world)
                       if k not in done)
        bar = tqdm(total=mine, unit="text", unit_scale=True, desc=f"encode (rank 0 of {world})" if world > 1
                   else "encode", file=sys.stderr, smoothing=0.05)

    def embed(texts: list[str]) -> np.ndarray:
        out = encoder.encode(texts, batch_size=batch_size, show_progress_bar=False, **encode_kwargs)
        if bar is not None:
            bar.update(len(texts))
        return out

    def encoded(rows) -> Iterator[np.ndarray]:
        while part := list(itertools.islice(rows, chunk)):
            yield embed([decode_row(fmt, column, where, raw) for where, raw in part])

    total, encoded_here = 0, 0
    for k, rows in shards(read_rows(input, fmt, column), shard_size):
        path = out_dir / shard_name(k)
        if k % world != rank:
            total += sum(1 for _ in rows)
            continue
        if k in done:
            n = sum(1 for _ in rows)
            shape, found = shard_shape(path)
            if shape != (n, width) or found != dtype:
                raise CorpusError(f"{path} holds {shape} {found}, the input and options give ({n}, {width}) "
                                  f"{dtype}: remove {out_dir} to start over")
        else:
            n = write_shard(path, encoded(rows), width, dtype)
            encoded_here += n
            done.add(k)
            if rank == 0:
                _write_json(out_dir / MANIFEST, {**manifest, "done": sorted(done)})
            if on_shard is not None:
                on_shard(k)
        total += n
    if bar is not None:
        bar.close()

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reports = _gather({"total": total, "encoded": encoded_here, "peak_rss_mib": peak_mib}, world)
    if rank == 0:
        totals = {r["total"] for r in reports}
        if len(totals) != 1:
            raise RuntimeError(f"the processes counted different row totals {sorted(totals)}: did the input change?")
        count = -(-total // shard_size)
        listed = []
        for k in range(count):
            path = out_dir / shard_name(k)
            if not path.is_file():
                raise RuntimeError(f"{path} is missing after every process finished")
            listed.append({"file": path.name, "start": k * shard_size, "stop": min(total, (k + 1) * shard_size)})
        for stale in out_dir.glob(".shard-*.npy.tmp"):
            stale.unlink()
        manifest.update(complete=True, total=total, shards=listed)
        _write_json(out_dir / MANIFEST, manifest)
        seconds = time.perf_counter() - started
        fresh = sum(r["encoded"] for r in reports)
        print(f"wrote {total} embeddings of dim {dim} in {count} shards to {out_dir} ({fresh} encoded now, "
              f"{fresh / max(seconds, 1e-9):.0f} texts/s over {seconds:.1f} s with {world} process"
              f"{'es' if world > 1 else ''}; peak RSS {max(r['peak_rss_mib'] for r in reports):.0f} MiB per "
              "process)", file=sys.stderr)
    _barrier(world)
    return manifest if rank == 0 else read_manifest(out_dir)
