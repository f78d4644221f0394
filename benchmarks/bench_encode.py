"""``fastbert encode`` vs sentence-transformers' ``encode`` on the same 1,000 real texts, side by side.

Both run on the bundled all-MiniLM-L6-v2 in fp32 with the same batch size; the two are timed in alternating
rounds and the figure is the median of per-round ratios. The embeddings of every text are checked to agree
(the smallest cosine over all texts is printed).

    python benchmarks/bench_encode.py [--rounds 3] [--batch-size 32] [--texts 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--texts", type=int, default=1000)
    args = parser.parse_args(argv)

    import torch
    from sentence_transformers import SentenceTransformer

    from fastbert import bench
    from fastbert.encoder import SentenceEncoder

    model_dir = bench.default_model()
    texts = bench.load_texts()[: args.texts]
    st = SentenceTransformer(model_dir, device="cpu")
    fb = SentenceEncoder.from_pretrained(model_dir, device="cpu")
    st.encode(texts[:64], batch_size=args.batch_size)  # warm-up
    fb.encode(texts[:64], batch_size=args.batch_size)
    ts, tf = [], []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        a = st.encode(texts, batch_size=args.batch_size)
        ts.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b = fb.encode(texts, batch_size=args.batch_size)
        tf.append(time.perf_counter() - t0)
        print(
            f"round {r + 1}: sentence-transformers {ts[-1]:.2f} s, fastbert {tf[-1]:.2f} s, "
            f"ratio {ts[-1] / tf[-1]:.2f}x",
            flush=True,
        )
    cos = float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())
    ratio = statistics.median(s / f for s, f in zip(ts, tf))
    print(
        f"{len(texts)} texts, batch {args.batch_size}, {torch.get_num_threads()} threads, "
        f"{args.rounds} rounds: "
        f"median per-round ratio {ratio:.2f}x, best-of ratio {min(ts) / min(tf):.2f}x "
        f"(best sentence-transformers {min(ts):.2f} s, best fastbert {min(tf):.2f} s; "
        f"min cosine over all {len(texts)} texts {cos:.7f}; "
        f"tokenizer {type(fb.tokenizer).__module__}.{type(fb.tokenizer).__name__})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
