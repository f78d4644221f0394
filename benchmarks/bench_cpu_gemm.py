"""The CPU inference GEMMs of a BERT layer on each backend, side by side: ``F.linear`` (torch's BLAS path),
oneDNN's fused op with the weight reordered per call, and with the weight kept in oneDNN's blocked layout.

Each case is one of the layer's four GEMMs with its epilogue (QKV: bias; attention output and FFN output:
bias + residual add, then LayerNorm; FFN input: bias + GELU), for the MiniLM and bert-base widths, at 32 rows
(a few short texts) and 512 rows (a packed batch). Every backend is forced through ``FASTBERT_CPU_LINEAR``
and called through the same ``fastbert.ops`` function the model calls; providers alternate within each round
and the figure is the median of per-round ratios (F.linear's time / the backend's). The oneDNN columns keep
the GELU inside the GEMM (``FASTBERT_CPU_GELU=fused``); on the GELU rows one more provider runs the kept-layout
GEMM alone and then torch's GELU in place (``separate``), and the last column is fused time / separate time.

    python benchmarks/bench_cpu_gemm.py [--rounds 9] [--out benchmarks/results/cpu-avx512/cpu_gemm.md]

To time an AVX2-only machine's side on an AVX-512 one, cap torch's libraries:
    ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/bench_cpu_gemm.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

from fastbert import ops
from fastbert.dispatch import cpu_info

BACKENDS = ("torch", "onednn", "onednn-packed")
SEPARATE = "onednn-packed, GELU separate"


def cases():
    for name, hidden in (("MiniLM", 384), ("bert-base", 768)):
        for rows in (32, 512):
            yield f"{name} QKV", rows, 3 * hidden, hidden, "none"
            yield f"{name} attention out + add + LN", rows, hidden, hidden, "add"
            yield f"{name} FFN in + GELU", rows, 4 * hidden, hidden, "gelu"
            yield f"{name} FFN out + add + LN", rows, hidden, 4 * hidden, "add"


def _call(epilogue, x, w, b, r, ln):
    if epilogue == "none":
        return ops.linear(x, w, b)
    if epilogue == "gelu":
        return ops.dense_gelu(x, w, b, "none")
    return ops.dense_add_layer_norm(x, w, b, r, *ln, 1e-12)


def run_case(rows, out_features, in_features, epilogue, rounds):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(out_features, in_features, generator=g) / in_features**0.5  # frozen, as in inference
    b = torch.randn(out_features, generator=g)
    x = torch.randn(rows, in_features, generator=g)
    r = torch.randn(rows, out_features, generator=g)
    ln = (torch.ones(out_features), torch.zeros(out_features))
    reps = max(2, int(3e8 / (2 * rows * out_features * in_features)))
    providers = BACKENDS + ((SEPARATE,) if epilogue == "gelu" else ())
    times = {name: [] for name in providers}
    outs = {}
    with torch.inference_mode():
        for round_ in range(rounds):
            k = round_ % len(providers)
            for name in providers[k:] + providers[:k]:
                os.environ["FASTBERT_CPU_LINEAR"] = "onednn-packed" if name == SEPARATE else name
                os.environ["FASTBERT_CPU_GELU"] = "separate" if name == SEPARATE else "fused"
                outs[name] = _call(epilogue, x, w, b, r, ln)  # warm (the kept layout is made here)
                t0 = time.perf_counter()
                for _ in range(reps):
                    _call(epilogue, x, w, b, r, ln)
                times[name].append((time.perf_counter() - t0) / reps)
    err = max(float((outs[n] - outs["torch"]).abs().max()) for n in providers)
    return times, err


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--out", default="", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    if not ops._onednn_usable():
        print("oneDNN's fused linear is not usable here: nothing to compare", file=sys.stderr)
        return 1
    info = cpu_info()
    lines = [
        f"CPU: {info['model']} ({' '.join(info['flags'])}); torch {torch.__version__}, CPU capability "
        f"{info['torch_capability']}{', caps ' + str(info['caps']) if info['caps'] else ''}; "
        f"{torch.get_num_threads()} threads",
        "",
        f"fp32 inference GEMMs, {args.rounds} alternating rounds; speedup = median per-round ratio of F.linear's "
        "time to the backend's",
        "",
        "| case | rows | F.linear us | oneDNN per-call us | oneDNN kept us | oneDNN per call vs F.linear "
        "| oneDNN kept vs F.linear | max abs diff | kept, GELU separate us | GELU separate vs fused |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    for label, rows, out_f, in_f, epilogue in cases():
        times, err = run_case(rows, out_f, in_f, epilogue, args.rounds)
        med = {n: statistics.median(t) for n, t in times.items()}
        ratio = {n: statistics.median(a / c for a, c in zip(times["torch"], times[n])) for n in BACKENDS[1:]}
        separate = "- | -"
        if SEPARATE in times:
            apart = statistics.median(a / c for a, c in zip(times["onednn-packed"], times[SEPARATE]))
            separate = f"{med[SEPARATE] * 1e6:.0f} | {apart:.2f}x"
        lines.append(
            f"| {label} ({out_f}x{in_f}) | {rows} | {med['torch'] * 1e6:.0f} | {med['onednn'] * 1e6:.0f} | "
            f"{med['onednn-packed'] * 1e6:.0f} | {ratio['onednn']:.2f}x | {ratio['onednn-packed']:.2f}x | {err:.1e} | "
            f"{separate} |"
        )
        print(lines[-1], flush=True)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
