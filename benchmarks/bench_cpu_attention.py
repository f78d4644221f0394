"""fastbert's CPU attention kernel against torch's SDPA on the same packed batches, side by side.

For each case (a batch of sequences of given lengths, 12 heads of 32 = MiniLM / bert-base-like heads unless
stated), three providers compute the same fp32 attention:

- ``fastbert``: the C++ kernel (csrc/cpu/attention.cpp) through ``fastbert.ops.attention`` on the packed rows,
  forced (``FASTBERT_CPU_ATTENTION=kernel``) so that the kernel itself is timed, not the dispatch's choice;
  ``--isa`` picks its build (``FASTBERT_CPU_ISA``);
- ``sdpa-padded``: what a padded model does: rows copied into a zeroed ``(batch, heads, max_len, dim)``
  layout, SDPA with a key mask, real rows gathered back (fastbert's own torch path);
- ``sdpa-exact``: SDPA on views of each sequence length group, no padding anywhere (a lower bound for
  torch: only possible when lengths repeat, as in sorted batches).

Providers alternate within every round; the figure is the median of per-round time ratios.
GFLOP/s counts 4 * heads * dim * sum(len^2) (QK^T and PV, a multiply-add as two).

    python benchmarks/bench_cpu_attention.py [--rounds 15] [--isa avx2] [--out benchmarks/results/cpu_attention.md]

To time the AVX2 side on an AVX-512 machine, cap torch and its libraries too:
    ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 \
        python benchmarks/bench_cpu_attention.py --isa avx2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from fastbert import ops
from fastbert.packing import packing_from_lengths


def cases(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    real = (torch.randint(8, 60, (32,), generator=g)).tolist()  # short real texts
    return [
        ("32 x 12 tokens", [12] * 32, 12, 32),
        ("32 x 28 tokens", [28] * 32, 12, 32),
        ("32 texts, 8-60 tokens", sorted(real, reverse=True), 12, 32),
        ("8 x 128 (bert-base heads)", [128] * 8, 12, 64),
        ("4 texts, 100-512 (bert-base heads)", [512, 300, 180, 100], 12, 64),
        ("1 x 256", [256], 12, 32),
    ]


def _sdpa_exact(qkv, lengths, scale):
    outs, start = [], 0
    i = 0
    while i < len(lengths):
        j = i
        while j < len(lengths) and lengths[j] == lengths[i]:
            j += 1
        n, length = j - i, lengths[i]
        q, k, v = qkv[start : start + n * length].view(n, length, *qkv.shape[1:]).permute(2, 0, 3, 1, 4)
        outs.append(F.scaled_dot_product_attention(q, k, v, scale=scale).transpose(1, 2).reshape(n * length,
                                                                                                   *qkv.shape[2:]))
        start += n * length
        i = j
    return torch.cat(outs)


def run_case(lengths, heads, dim, rounds):
    packing = packing_from_lengths(lengths)
    qkv = torch.randn(packing.total, 3, heads, dim)
    q, k, v = qkv.unbind(1)
    scale = dim**-0.5

    def fastbert():
        return ops.attention(q, k, v, packing, scale)

    def sdpa_padded():
        with ops.force_backend("torch"):
            return ops.qkv_attention(qkv, packing, scale)

    def sdpa_exact():
        return _sdpa_exact(qkv, lengths, scale)

    providers = {"fastbert": fastbert, "sdpa-padded": sdpa_padded, "sdpa-exact": sdpa_exact}
    with torch.inference_mode():
        ref = sdpa_exact()
        err = {name: float((fn() - ref).abs().max()) for name, fn in providers.items()}
        reps = max(3, int(2e7 / (sum(n * n for n in lengths) * heads * dim)))
        times = {name: [] for name in providers}
        for _ in range(rounds):
            for name, fn in providers.items():
                fn()
                t0 = time.perf_counter()
                for _ in range(reps):
                    fn()
                times[name].append((time.perf_counter() - t0) / reps)
    flops = 4.0 * heads * dim * sum(n * n for n in lengths)
    return times, err, flops


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out", default="", help="also write the table to this Markdown file")
    parser.add_argument("--isa", default=None, help="build of the kernel: avx512, avx2 or baseline (default: best)")
    args = parser.parse_args(argv)
    os.environ["FASTBERT_CPU_ATTENTION"] = "kernel"
    if args.isa:
        os.environ["FASTBERT_CPU_ISA"] = args.isa
    from fastbert.dispatch import cpu_info

    info = cpu_info()
    lines = [
        f"CPU: {info['model']} ({' '.join(info['flags'])}); kernel build {ops.cpu_isa()}, torch CPU capability "
        f"{info['torch_capability']}{', caps ' + str(info['caps']) if info['caps'] else ''}",
        "",
        f"CPU attention, fp32, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"{args.rounds} alternating rounds; speedup = median per-round ratio of the provider's time to fastbert's",
        "",
        "| case | heads x dim | fastbert us | GFLOP/s | vs sdpa-padded | vs sdpa-exact | max abs err vs sdpa-exact |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, lengths, heads, dim in cases():
        times, err, flops = run_case(lengths, heads, dim, args.rounds)
        fb = times["fastbert"]
        ratio = {n: statistics.median(t / f for t, f in zip(times[n], fb)) for n in ("sdpa-padded", "sdpa-exact")}
        med = statistics.median(fb)
        lines.append(
            f"| {label} | {heads} x {dim} | {med * 1e6:.0f} | {flops / med / 1e9:.0f} | "
            f"{ratio['sdpa-padded']:.2f}x | {ratio['sdpa-exact']:.2f}x | {err['fastbert']:.1e} |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
