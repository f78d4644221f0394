"""Per-kernel sweeps in the style of ``triton.testing.perf_report``: fastbert's Triton kernels against the
torch ops they replace, over sizes, with FLOPs and bytes counted so results read as TFLOP/s and GB/s and as a
share of the device's measured roof (``fastbert.bench.profile.device_roof``). CUDA only.

    python benchmarks/bench_kernel_sweeps.py [--out DIR]
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from pathlib import Path


def _sweeps(torch, F):
    """``(name, x_name, xs, make(x) -> (inputs), providers {name: fn(*inputs)}, flops(x), bytes(x))``."""
    hidden, heads, head_dim = 768, 12, 64
    el = 2  # fp16

    def ln_make(tokens):
        x = torch.randn(tokens, hidden, device="cuda", dtype=torch.float16)
        return (
            x,
            torch.randn_like(x),
            torch.ones(hidden, device="cuda", dtype=x.dtype),
            torch.zeros(hidden, device="cuda", dtype=x.dtype),
        )

    def ln_triton(x, r, w, b):
        from fastbert.kernels.layer_norm import layer_norm

        return layer_norm(x, w, b, 1e-12, residual=r)

    def gelu_make(tokens):
        return torch.randn(tokens, 4 * hidden, device="cuda", dtype=torch.float16), torch.randn(
            4 * hidden, device="cuda", dtype=torch.float16
        )

    def gelu_triton(x, b):
        from fastbert.kernels.gelu import bias_gelu

        return bias_gelu(x, b, approximate="none")

    def attn_make(seqlen, batch=16):
        q, k, v = (
            torch.randn(batch * seqlen, heads, head_dim, device="cuda", dtype=torch.float16) for _ in range(3)
        )
        cu = torch.arange(0, batch + 1, device="cuda", dtype=torch.int32) * seqlen
        return q, k, v, cu, seqlen

    def attn_triton(q, k, v, cu, s):
        from fastbert.kernels.attention import attention

        return attention(q, k, v, cu, s, softmax_scale=1 / math.sqrt(head_dim))

    def attn_torch(q, k, v, cu, s):
        b = q.shape[0] // s
        t = lambda x: x.view(b, s, heads, head_dim).transpose(1, 2)
        return F.scaled_dot_product_attention(t(q), t(k), t(v))

    tokens = [2**i for i in range(10, 16)]
    return [
        (
            "layer_norm(x + residual)",
            "tokens",
            tokens,
            ln_make,
            {"triton": ln_triton, "torch": lambda x, r, w, b: F.layer_norm(x + r, (hidden,), w, b, 1e-12)},
            lambda n: 8 * n * hidden,
            lambda n: el * (3 * n * hidden + 2 * hidden),
            "fastbert.kernels.layer_norm",
        ),
        (
            "gelu(x + bias)",
            "tokens",
            tokens,
            gelu_make,
            {"triton": gelu_triton, "torch": lambda x, b: F.gelu(x + b)},
            lambda n: 10 * n * 4 * hidden,
            lambda n: el * 2 * n * 4 * hidden,
            "fastbert.kernels.gelu",
        ),
        (
            "attention (16 seqs)",
            "seqlen",
            [128, 256, 512, 1024],
            attn_make,
            {"triton": attn_triton, "torch sdpa": attn_torch},
            lambda s: 4 * 16 * heads * s * s * head_dim,
            lambda s: el * 4 * 16 * s * heads * head_dim,
            "fastbert.kernels.attention",
        ),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-results/kernels")
    args = parser.parse_args(argv)
    import torch
    import torch.nn.functional as F

    if not torch.cuda.is_available():
        print(
            "bench_kernel_sweeps: no CUDA device; the Triton kernel sweeps run on a GPU only (nothing to do)."
        )
        return 0
    import triton.testing

    from fastbert.bench.profile import device_roof

    roof = device_roof(torch.device("cuda"), torch.float16)
    results = []
    for name, xname, xs, make, providers, flops, nbytes, module in _sweeps(torch, F):
        try:
            importlib.import_module(module)
        except ImportError:
            print(f"{name}: {module} not available, skipped")
            continue
        print(f"\n{name}  (roof {roof['tflops']:.0f} TFLOP/s, {roof['gbps']:.0f} GB/s)")
        print(f"{xname:>8} " + " ".join(f"{p:>28}" for p in providers))
        for x in xs:
            inputs = make(x)
            cells = []
            for p, fn in providers.items():
                call = lambda fn=fn, inputs=inputs: fn(*inputs)
                ms, lo, hi = triton.testing.do_bench(call, quantiles=[0.5, 0.2, 0.8])
                tf, gb = flops(x) / ms / 1e9, nbytes(x) / ms / 1e6
                pct = 100 * max(tf / roof["tflops"], gb / roof["gbps"])
                results.append(
                    dict(
                        sweep=name,
                        x=x,
                        provider=p,
                        ms=ms,
                        ms_p20=lo,
                        ms_p80=hi,
                        tflops=tf,
                        gbps=gb,
                        roof_pct=pct,
                    )
                )
                cells.append(f"{ms * 1e3:8.1f}us {tf:6.2f}TF {gb:6.0f}GB/s {pct:3.0f}%")
            print(f"{x:>8} " + " ".join(f"{c:>28}" for c in cells))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "kernel_sweeps.json").write_text(json.dumps({"roof": roof, "rows": results}, indent=2) + "\n")
    print(f"\nwrote {out / 'kernel_sweeps.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
