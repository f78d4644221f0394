"""Kernel benchmarks on CUDA: fused attention TFLOP/s, LayerNorm and bias+GELU GB/s against a measured copy.

    python benchmarks/bench_kernels.py [--save-path DIR] [--dtype fp16|bf16]

Attention (forward, and forward+backward) at seq 128 and 512, head dim 64, against torch SDPA on the padded
batch; FLOPs are counted explicitly (4 * tokens * seqlen * heads * head_dim forward, 2.5x that backward).
LayerNorm (with residual and bias, BERT's post-LN) and bias+GELU in GB/s against a measured device-to-device
copy of the same bytes (the practical roof). Times are ``triton.testing.do_bench`` quantiles (median, p20, p80).
Without CUDA it exits with a message.
"""

from __future__ import annotations

import argparse
import sys

import torch

QUANTILES = [0.5, 0.2, 0.8]


def _require_cuda() -> None:
    if not torch.cuda.is_available():
        sys.exit("bench_kernels.py needs a CUDA device (none found); nothing to measure on CPU.")


def _copy_gbps(nbytes: int) -> float:
    import triton

    src = torch.empty(nbytes // 2, dtype=torch.float16, device="cuda")
    dst = torch.empty_like(src)
    ms = triton.testing.do_bench(lambda: dst.copy_(src))
    return 2 * nbytes / ms * 1e-6  # read + write


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save-path", default=None, help="directory for the perf_report CSVs and plots")
    ap.add_argument("--dtype", default="fp16", choices=["fp16", "bf16"])
    args = ap.parse_args(argv)
    _require_cuda()

    import triton
    import triton.testing as tt

    from fastbert.kernels.attention import attention
    from fastbert.kernels.gelu import bias_gelu
    from fastbert.kernels.layer_norm import layer_norm

    dtype = torch.float16 if args.dtype == "fp16" else torch.bfloat16
    dev = "cuda"
    heads, head_dim, tokens_per_batch = 12, 64, 16384

    @tt.perf_report([
        tt.Benchmark(
            x_names=["seqlen"], x_vals=[128, 512], line_arg="provider",
            line_vals=["fastbert-fwd", "sdpa-fwd", "fastbert-fwdbwd", "sdpa-fwdbwd"],
            line_names=["fastbert fwd", "torch sdpa fwd", "fastbert fwd+bwd", "torch sdpa fwd+bwd"],
            ylabel="TFLOP/s", plot_name=f"attention-hd{head_dim}-{args.dtype}", args={},
        )
    ])
    def bench_attention(seqlen, provider):
        batch = tokens_per_batch // seqlen
        total = batch * seqlen
        qkv = torch.randn(total, 3, heads, head_dim, device=dev, dtype=dtype, requires_grad=True)
        cu = torch.arange(0, total + 1, seqlen, device=dev, dtype=torch.int32)
        do = torch.randn(total, heads, head_dim, device=dev, dtype=dtype)
        if provider.startswith("fastbert"):
            def fwd():
                q, k, v = qkv.unbind(1)
                return attention(q, k, v, cu, seqlen)
        else:
            def fwd():
                q, k, v = (t.view(batch, seqlen, heads, head_dim).transpose(1, 2) for t in qkv.unbind(1))
                o = torch.nn.functional.scaled_dot_product_attention(q, k, v)
                return o.transpose(1, 2).reshape(total, heads, head_dim)
        flops = 4.0 * total * seqlen * heads * head_dim
        if provider.endswith("fwdbwd"):
            flops *= 3.5
            fn = lambda: torch.autograd.grad(fwd(), qkv, do)  # noqa: E731
        else:
            fn = fwd
        ms, lo, hi = triton.testing.do_bench(fn, quantiles=QUANTILES)
        return tuple(flops / t * 1e-9 for t in (ms, hi, lo))

    @tt.perf_report([
        tt.Benchmark(
            x_names=["hidden"], x_vals=[768, 1024, 4096], line_arg="provider",
            line_vals=["fastbert", "torch", "copy"], line_names=["fastbert fused", "torch (add + F.layer_norm)",
                                                                 "copy roof"],
            ylabel="GB/s", plot_name=f"layer-norm-{args.dtype}", args={"rows": 16384},
        )
    ])
    def bench_layer_norm(hidden, rows, provider):
        x = torch.randn(rows, hidden, device=dev, dtype=dtype)
        r = torch.randn_like(x)
        w, b, xb = (torch.randn(hidden, device=dev, dtype=dtype) for _ in range(3))
        nbytes = 3 * x.numel() * x.element_size()  # read x, residual; write y
        if provider == "copy":
            return (_copy_gbps(nbytes),) * 3
        if provider == "fastbert":
            fn = lambda: layer_norm(x, w, b, 1e-12, residual=r, x_bias=xb)  # noqa: E731
        else:
            fn = lambda: torch.nn.functional.layer_norm(x + xb + r, (hidden,), w, b, 1e-12)  # noqa: E731
        ms, lo, hi = triton.testing.do_bench(fn, quantiles=QUANTILES)
        return tuple(nbytes / t * 1e-6 for t in (ms, hi, lo))

    @tt.perf_report([
        tt.Benchmark(
            x_names=["cols"], x_vals=[3072, 4096], line_arg="provider",
            line_vals=["fastbert", "torch", "copy"], line_names=["fastbert bias+gelu", "torch gelu(x + b)",
                                                                 "copy roof"],
            ylabel="GB/s", plot_name=f"bias-gelu-{args.dtype}", args={"rows": 16384},
        )
    ])
    def bench_gelu(cols, rows, provider):
        x = torch.randn(rows, cols, device=dev, dtype=dtype)
        b = torch.randn(cols, device=dev, dtype=dtype)
        nbytes = 2 * x.numel() * x.element_size()
        if provider == "copy":
            return (_copy_gbps(nbytes),) * 3
        if provider == "fastbert":
            fn = lambda: bias_gelu(x, b)  # noqa: E731
        else:
            fn = lambda: torch.nn.functional.gelu(x + b)  # noqa: E731
        ms, lo, hi = triton.testing.do_bench(fn, quantiles=QUANTILES)
        return tuple(nbytes / t * 1e-6 for t in (ms, hi, lo))

    with torch.no_grad():
        bench_layer_norm.run(print_data=True, save_path=args.save_path)
        bench_gelu.run(print_data=True, save_path=args.save_path)
    bench_attention.run(print_data=True, save_path=args.save_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
