"""The BERT family on CPU: each family's base shape (random weights, fp32) through fastbert and transformers'
sdpa model side by side, the engine benchmark's two cases (8 x 128 fully real tokens; 32 real texts of mixed
length, up to 512 tokens, padded to the longest), providers alternating round by round, the median of
per-round ratios. One markdown table for all families, with the machine named.

    python benchmarks/bench_families.py --out benchmarks/results/cpu-avx512/families.md
    python benchmarks/bench_families.py --families roberta,albert --reps 5

Base shapes: hidden 768, 12 heads, FFN 3072; 12 layers (DistilBERT 12 too, so every family does the same
encoder work and the ratios compare; ALBERT's one shared layer group runs 12 times, embeddings 128 wide;
ELECTRA's embeddings 768 wide, as electra-base).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fastbert import bench

CASES = [bench.Case("infer", 8, 128, "full"), bench.Case("infer", 32, 512, "real")]
FAMILIES = ["bert", "roberta", "xlm-roberta", "distilbert", "electra", "albert"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma list of model types")
    parser.add_argument("--shape", default="bert-base", choices=sorted(bench.SHAPES), help="random-weight shape")
    parser.add_argument("--reps", type=int, default=12, help="timed rounds per case")
    parser.add_argument("--budget", type=float, default=40.0, help="seconds per case before stopping rounds")
    parser.add_argument("--out", default=None, help="markdown file to write (also printed)")
    args = parser.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    unknown = sorted(set(families) - set(bench.FAMILY_SHAPES))
    if unknown:
        parser.error(f"unknown families {unknown}; known: {sorted(bench.FAMILY_SHAPES)}")
    lines, meta = [], None
    for family in families:
        opts = bench.Options(model=args.shape, family=family, providers=["fastbert", "hf-sdpa"], cases=CASES,
                             reps=args.reps, budget_s=args.budget, warmup=1, device="cpu", out=None, plots=False)
        result = bench.benchmark(opts)
        meta = meta or result["meta"]
        by_case: dict[str, dict] = {}
        for row in result["rows"]:
            by_case.setdefault(row["case"], {})[row["provider"]] = row
        for case, rows in by_case.items():
            fb, hf = rows["fastbert"], rows["hf-sdpa"]
            lines.append(f"| {family} | {case} | {fb['median_ms']:.1f} | {hf['median_ms']:.1f} | "
                         f"**{fb['speedup']:.2f}x** | {fb['parity']:.1e} |")
            print(lines[-1], flush=True)
    head = [
        f"# The BERT family on CPU: fastbert vs transformers sdpa, {args.shape} shapes, fp32",
        "",
        f"{meta['date']}; {meta['cpu']}, {meta['cpu_count']} CPUs, torch {meta['torch']} "
        f"({meta['torch_threads']} threads), transformers {meta.get('transformers')}; CPU flags "
        f"{' '.join(meta['cpu_flags'])}; torch capability {meta['torch_capability']}; caps {meta['caps'] or 'none'}; "
        f"fastbert attention build {meta['kernel_build']}; 1-minute load average at start {meta['loadavg_1m']:.1f}.",
        "Speedup = median over alternating rounds of transformers sdpa time / fastbert time. Parity = max abs "
        "error of fastbert's hidden states vs transformers eager fp32 at real tokens.",
        "",
        "| family | case | fastbert ms | transformers sdpa ms | speedup | parity |",
        "|---|---|---:|---:|---:|---:|",
    ]
    text = "\n".join(head + lines) + "\n"
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
