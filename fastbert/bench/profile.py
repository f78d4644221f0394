"""``fastbert profile``: one model step under the torch profiler, op by op, against the device's roof.

For every op (aten op on CPU; aten op with its device time on CUDA): calls, total and mean time, share of the
step, FLOPs and bytes moved computed from the recorded input shapes (``op_cost``), achieved TFLOP/s and GB/s,
and the share of the device's roof. The roof is measured once per device (a large matmul for FLOP/s, a large
copy for bytes/s) and cached in ``$FASTBERT_CACHE_DIR`` (default ``~/.cache/fastbert``). Writes a Chrome
trace and a PNG chart of where the time goes.

FLOPs count a multiply-add as 2; attention counts ``QK^T`` and ``PV`` (``4 * B * H * L * S * D``), not the
softmax. Composite ops (``aten::linear``, ``aten::matmul``, ``aten::scaled_dot_product_attention``) get no
count of their own: their leaf ops carry it, and time is self time, so nothing is counted twice.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

# ------------------------------------------------------------------------------------------------ costs
# leaf attention ops whose q/k/v are (batch, heads, length, dim); on CUDA the flash and efficient SDPA ops are
# composites whose leaves take (batch, length, heads, dim) and launch the kernels
_ATTENTION_OPS = (
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_cudnn_attention",
)
_ATTENTION_OPS_BLHD = (
    "aten::_flash_attention_forward",
    "aten::_efficient_attention_forward",
)
# fastbert's own packed-attention ops: their cost depends on the sequence lengths, not on the shapes, so it
# comes from the caller (``attn_flops``: QK^T + PV FLOPs of one forward call); a backward call recomputes
# QK^T and does three more products (dV, dP, and dQ/dK count as two): 2.5x the forward
_FASTBERT_ATTENTION = {"fastbert::attention_fwd": 1.0, "fastbert::cpu_attention": 1.0,
                       "fastbert::attention_bwd": 2.5}
_ELEMENTWISE = {
    "aten::add": 1,
    "aten::add_": 1,
    "aten::mul": 1,
    "aten::mul_": 1,
    "aten::div": 1,
    "aten::sub": 1,
    "aten::gelu": 8,
    "aten::tanh": 4,
    "aten::relu": 1,
    "aten::silu": 4,
    "aten::pow": 1,
}
_MOVES = (
    "aten::copy_",
    "aten::index_select",
    "aten::index_copy",
    "aten::index_copy_",
    "aten::embedding",
    "aten::fill_",
    "aten::zero_",
    "aten::cat",
    "aten::index_add_",
    "aten::clone",
)


def _numel(shape) -> int:
    return math.prod(shape) if shape else 1


def op_cost(name: str, shapes: list, itemsize: int = 4, attn_flops: float = 0.0) -> tuple[float, float]:
    """``(flops, bytes)`` of one call of op ``name`` with input ``shapes`` (bytes: inputs read + output
    written, ``itemsize`` bytes per element). ``attn_flops`` is the FLOPs of one call of fastbert's packed
    attention forward (known to the caller from the batch's lengths). Unknown ops cost ``(0, 0)``."""
    s = [list(x) if isinstance(x, (list, tuple)) else [] for x in shapes]
    if name == "aten::mm" and len(s) >= 2 and len(s[0]) == 2:
        (m, k), n = s[0], s[1][1]
        return 2.0 * m * k * n, float(itemsize * (m * k + k * n + m * n))
    if name == "aten::addmm" and len(s) >= 3 and len(s[1]) == 2:
        (m, k), n = s[1], s[2][1]
        return 2.0 * m * k * n + m * n, float(itemsize * (m * k + k * n + m * n + _numel(s[0])))
    if name in ("aten::bmm", "aten::baddbmm") and len(s) >= 2:
        a, b = (s[0], s[1]) if name == "aten::bmm" else (s[1], s[2])
        bt, m, k = a
        n = b[2]
        return 2.0 * bt * m * k * n, float(itemsize * bt * (m * k + k * n + m * n))
    if name == "mkldnn::_linear_pointwise" and len(s) >= 2:
        # (x, weight, bias, ...) or, for the fused residual add, (x, other, weight, bias, attr)
        binary = len(s) >= 3 and len(s[2]) == 2
        x, w = s[0], s[2 if binary else 1]
        m, (n, k) = _numel(x[:-1]), w
        extra = m * n if binary else 0  # the residual read and added
        return 2.0 * m * k * n + extra, float(itemsize * (m * k + k * n + m * n + extra))
    if name in _ATTENTION_OPS + _ATTENTION_OPS_BLHD and len(s) >= 3 and len(s[0]) == 4:
        if name in _ATTENTION_OPS:
            (b, h, lq, d), lk = s[0], s[1][2]
        else:
            (b, lq, h, d), lk = s[0], s[1][1]
        dv = s[2][3]
        flops = 2.0 * b * h * lq * lk * d + 2.0 * b * h * lq * lk * dv
        return flops, float(itemsize * (_numel(s[0]) + _numel(s[1]) + _numel(s[2]) + b * h * lq * dv))
    if name in _FASTBERT_ATTENTION:
        qkv = sum(_numel(x) for x in s[:3] if len(x) == 3)
        factor = _FASTBERT_ATTENTION[name]
        return factor * attn_flops, float(itemsize * qkv * (4 / 3 if factor == 1.0 else 8 / 3))
    if name in ("fastbert::layer_norm_fwd", "fastbert::layer_norm_bwd") and s:
        n = _numel(s[0])
        extra = sum(_numel(x) for x in s[1:5] if len(x) == 2)  # residual / dy read as well
        fwd = name.endswith("fwd")
        return (8.0 if fwd else 12.0) * n, float(itemsize * ((2 if fwd else 3) * n + extra))
    if name in ("fastbert::bias_gelu_fwd", "fastbert::bias_gelu_bwd") and s:
        n = _numel(s[0])
        fwd = name.endswith("fwd")
        return (9.0 if fwd else 14.0) * n, float(itemsize * (2 if fwd else 3) * n)
    if name == "aten::native_layer_norm" and s:
        n = _numel(s[0])
        return 8.0 * n, float(itemsize * 2 * n)
    if name in ("aten::_softmax", "aten::softmax") and s:
        n = _numel(s[0])
        return 5.0 * n, float(itemsize * 2 * n)
    if name in _ELEMENTWISE and s:
        n = max(_numel(x) for x in s if x) if any(s) else 0
        reads = sum(_numel(x) for x in s if x)
        return float(_ELEMENTWISE[name] * n), float(itemsize * (reads + n))
    if name in _MOVES and s:
        n = _numel(s[0]) if name not in ("aten::index_select", "aten::embedding") else 0
        if name == "aten::index_select" and len(s) >= 3:
            n = _numel(s[2]) * _numel(s[0][1:])
        if name == "aten::embedding" and len(s) >= 2:
            n = _numel(s[1]) * s[0][-1]
        return 0.0, float(itemsize * 2 * n)
    return 0.0, 0.0


# ------------------------------------------------------------------------------------------------ roof
def _cache_dir() -> Path:
    return Path(os.environ.get("FASTBERT_CACHE_DIR", Path.home() / ".cache" / "fastbert"))


def device_key(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    from fastbert.bench import _cpu_name

    # the capability too: a run capped to AVX2 (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA) has a roof of its own
    return f"cpu:{_cpu_name()}:{torch.backends.cpu.get_cpu_capability()}:{torch.get_num_threads()}threads"


def measure_roof(device: torch.device, dtype: torch.dtype = torch.float32, size: int | None = None) -> dict:
    """Best-of-a-few TFLOP/s of an ``n x n`` matmul and GB/s of a large copy on ``device``."""
    from fastbert.bench import timing

    n = size or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    mm = min(timing.time_once(lambda: a @ b, device) for _ in range(5))
    numel = (1 << 28 if device.type == "cuda" else 1 << 25) // a.element_size()
    src = torch.empty(numel, device=device, dtype=dtype).fill_(1.0)
    dst = torch.empty_like(src)
    cp = min(timing.time_once(lambda: dst.copy_(src), device) for _ in range(5))
    return {
        "tflops": 2 * n**3 / mm / 1e12,
        "gbps": 2 * numel * src.element_size() / cp / 1e9,
        "matmul_n": n,
        "copy_bytes": numel * src.element_size(),
        "measured": time.strftime("%Y-%m-%d %H:%M"),
    }


def device_roof(device: torch.device, dtype: torch.dtype = torch.float32, refresh: bool = False) -> dict:
    """The cached roof of this device and dtype, measured on first use."""
    path = _cache_dir() / "roof.json"
    key = f"{device_key(device)}:{str(dtype).removeprefix('torch.')}"
    cache = {}
    if path.is_file():
        try:
            cache = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            cache = {}
    if refresh or key not in cache:
        cache[key] = measure_roof(device, dtype)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cache, indent=2) + "\n")
    return cache[key]


# ------------------------------------------------------------------------------------------------ profiling
@dataclass
class OpRow:
    name: str
    calls: int
    total_s: float
    flops: float
    bytes: float

    def as_dict(self, step_s: float, roof: dict) -> dict:
        tflops = self.flops / self.total_s / 1e12 if self.total_s > 0 else 0.0
        gbps = self.bytes / self.total_s / 1e9 if self.total_s > 0 else 0.0
        roof_pct = max(tflops / roof["tflops"], gbps / roof["gbps"]) * 100 if roof else None
        return {
            "op": self.name,
            "calls": self.calls,
            "total_ms": self.total_s * 1e3,
            "mean_us": self.total_s / max(1, self.calls) * 1e6,
            "share": self.total_s / step_s if step_s else 0,
            "gflop": self.flops / 1e9,
            "mbytes": self.bytes / 1e6,
            "tflops": tflops,
            "gbps": gbps,
            "roof_pct": roof_pct,
        }


def profile_fn(fn, device: torch.device, warmup: int = 1, trace: Path | None = None, attn_flops: float = 0.0):
    """Run ``fn`` under the torch profiler (after ``warmup`` unprofiled calls); returns ``(op rows, step
    seconds)``. Rows aggregate an op over calls and shapes; time is self time (device time on CUDA).
    ``attn_flops``: FLOPs of one forward call of fastbert's packed attention in ``fn`` (see ``op_cost``)."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(warmup):
        fn()
    from fastbert.bench.timing import synchronize

    synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as prof:
        fn()
        synchronize(device)
    if trace is not None:
        prof.export_chrome_trace(str(trace))
    return aggregate(prof.key_averages(group_by_input_shape=True), device.type == "cuda", attn_flops)


def aggregate(events, cuda: bool, attn_flops: float = 0.0):
    """Op rows and the step time from the profiler's averaged events.

    On CUDA the profiler lists each GPU kernel twice: as a row of its own, and inside the device time of the
    CPU op that launched it. Only the CPU ops are kept (with their self device time), so nothing is counted
    twice and every row carries the shapes its cost is computed from; user annotations are dropped too."""
    from torch.autograd import DeviceType

    rows: dict[str, OpRow] = {}
    for ev in events:
        if cuda and (ev.device_type != DeviceType.CPU or getattr(ev, "is_user_annotation", False)):
            continue
        t = (ev.self_device_time_total if cuda else ev.self_cpu_time_total) / 1e6
        if t <= 0 and ev.count == 0:
            continue
        itemsize = (
            2
            if "Half" in str(getattr(ev, "input_dtypes", ""))
            or "BFloat16" in str(getattr(ev, "input_dtypes", ""))
            else 4
        )
        flops, nbytes = op_cost(ev.key, ev.input_shapes or [], itemsize, attn_flops)
        r = rows.setdefault(ev.key, OpRow(ev.key, 0, 0.0, 0.0, 0.0))
        r.calls += ev.count
        r.total_s += t
        r.flops += flops * ev.count
        r.bytes += nbytes * ev.count
    out = [r for r in rows.values() if r.total_s > 0 or r.flops > 0]
    step = sum(r.total_s for r in out)
    out.sort(key=lambda r: -r.total_s)
    return out, step


def profile_model(
    model_spec: str | None,
    provider: str,
    mode: str,
    batch: int,
    seqlen: int,
    dist: str,
    device: torch.device,
    out: Path | None,
    roof: bool = True,
    top: int = 25,
    refresh_roof: bool = False,
    family: str = "bert",
) -> dict:
    from fastbert import bench

    opts = bench.Options(model=model_spec, family=family, providers=[provider], device=str(device))
    models, _, cfg = bench.build_models(opts)
    tokenizer, _ = bench.load_hf_tokenizer(model_spec)
    case = bench.Case(mode, batch, seqlen, dist)
    ids, mask, _ = bench.make_batch(case, cfg.vocab_size, tokenizer, bench.load_texts(), 0)
    ids, mask = ids.to(device), mask.to(device)
    fn = (bench.infer_fn if mode == "infer" else bench.train_fn)(models[provider], ids, mask)
    trace = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        trace = out / "trace.json"
    # QK^T + PV FLOPs of one attention call over this batch: every sequence attends within its real tokens
    lengths = mask.sum(dim=1).double()
    attn_flops = 4.0 * cfg.hidden_size * float((lengths * lengths).sum())
    rows, step = profile_fn(fn, device, trace=trace, attn_flops=attn_flops)
    r = device_roof(device, refresh=refresh_roof) if roof else {}
    result = {
        "meta": {
            "model": model_spec or "all-MiniLM-L6-v2 (bundled)",
            "provider": provider,
            "case": case.name,
            "device": str(device),
            "tokens": int(mask.sum()),
            "step_ms": step * 1e3,
            "roof": r,
        },
        "ops": [x.as_dict(step, r) for x in rows],
    }
    if out is not None:
        (out / "profile.json").write_text(json.dumps(result, indent=2) + "\n")
        chart(result, out / "profile.png", top)
    return result


def chart(result: dict, path: Path, top: int = 20) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = result["ops"][:top]
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(ops) + 1.5))
    ax.barh(
        [o["op"].replace("aten::", "") for o in ops],
        [o["share"] * 100 for o in ops],
        color=["tab:orange" if o["gflop"] > 0 else "tab:blue" for o in ops],
    )
    for i, o in enumerate(ops):
        if o["roof_pct"] is not None:
            ax.text(o["share"] * 100, i, f"  {o['roof_pct']:.0f}% roof", va="center", fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("% of step time (orange: FLOP-counted ops)")
    m = result["meta"]
    ax.set_title(f"{m['provider']} {m['case']} on {m['device']}: {m['step_ms']:.1f} ms")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def rich_table(result: dict, top: int = 25):
    from rich.table import Table

    m = result["meta"]
    roof = m.get("roof") or {}
    title = f"{m['provider']} {m['case']} on {m['device']}: step {m['step_ms']:.1f} ms"
    if roof:
        title += f" (roof {roof['tflops']:.2f} TFLOP/s, {roof['gbps']:.0f} GB/s)"
    t = Table(title=title)
    for col in ("op", "calls", "total ms", "mean us", "share", "GFLOP", "MB", "TFLOP/s", "GB/s", "% roof"):
        t.add_column(col, justify="left" if col == "op" else "right")
    for o in result["ops"][:top]:
        t.add_row(
            o["op"],
            str(o["calls"]),
            f"{o['total_ms']:.2f}",
            f"{o['mean_us']:.1f}",
            f"{o['share']:.1%}",
            f"{o['gflop']:.3f}",
            f"{o['mbytes']:.1f}",
            f"{o['tflops']:.3f}",
            f"{o['gbps']:.1f}",
            "-" if o["roof_pct"] is None else f"{o['roof_pct']:.0f}%",
        )
    return t


# ------------------------------------------------------------------------------------------------ CLI
def add_arguments(parser) -> None:
    parser.add_argument(
        "--model", default=None, help="checkpoint dir or shape (tiny, mini, bert-base, bert-large)"
    )
    parser.add_argument("--family", default="bert", help="model_type of a random-weight shape (bert, roberta, "
                        "distilbert, electra, albert, ...); a checkpoint dir's config.json names its own")
    parser.add_argument("--provider", default="fastbert", help="fastbert, hf-sdpa or hf-eager")
    parser.add_argument("--mode", choices=["infer", "train"], default="infer")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--dist", choices=["full", "uniform", "real"], default="real")
    parser.add_argument("--device", default=None)
    parser.add_argument("--top", type=int, default=25, help="rows to print")
    parser.add_argument("--no-roof", action="store_true", help="skip the roof measurement")
    parser.add_argument("--refresh-roof", action="store_true", help="measure the roof again (not the cache)")
    parser.add_argument(
        "--out", default="profile-results", help="dir for trace.json, profile.json, profile.png"
    )


def run(args) -> int:
    from rich.console import Console

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out = Path(args.out) if args.out else None
    result = profile_model(
        args.model,
        args.provider,
        args.mode,
        args.batch_size,
        args.seq_len,
        args.dist,
        device,
        out,
        roof=not args.no_roof,
        top=args.top,
        refresh_roof=args.refresh_roof,
        family=args.family,
    )
    console = Console(width=None if os.isatty(1) else 150)
    console.print(rich_table(result, args.top))
    if out is not None:
        console.print(
            f"wrote {out / 'trace.json'} (chrome://tracing), {out / 'profile.json'}, {out / 'profile.png'}"
        )
    return 0
