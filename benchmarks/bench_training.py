"""Training step time and peak memory: fastbert against transformers (eager and sdpa attention), side by side.

One step = forward with labels + backward + AdamW step (+ zero_grad), on BertForPreTraining (MLM + NSP) or
BertForSequenceClassification, from the same random weights, on batches whose real lengths vary (uniform in
[max_len/4, max_len], the padding a real batch has). fastbert computes only the real tokens.

Time: providers alternate step by step (A, B, C, A, B, C, ...) after warm-up; medians and quartiles are
reported, and the median of per-round ratios against transformers-sdpa. CUDA steps are timed with
events. Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` over a step; on CPU each provider runs in a
fresh subprocess and reports the peak resident set size (VmHWM, reset first) over its steps minus the RSS before
its first step, i.e. the step's working memory (activations, gradients, optimizer state) beyond the weights.

    python benchmarks/bench_training.py --config base --batch 32 --seq 128 --device cuda --amp bf16
    python benchmarks/bench_training.py --config minilm --batch 16 --seq 128 --steps 8    # CPU
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

CONFIGS = {
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "minilm": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
    "tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512),
}
PROVIDERS = ("fastbert", "transformers-sdpa", "transformers-eager")


def make_model(provider: str, args):
    import transformers

    import fastbert

    config = transformers.BertConfig(vocab_size=30522, max_position_embeddings=512, num_labels=2,
                                     **CONFIGS[args.config])
    config._attn_implementation = "eager" if provider == "transformers-eager" else "sdpa"
    torch.manual_seed(0)
    hf = getattr(transformers, args.head)(config)
    model = fastbert.from_transformers(hf) if provider == "fastbert" else hf
    return model.to(args.device).train()


def make_batches(args, n: int):
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        lengths = torch.randint(args.seq // 4, args.seq + 1, (args.batch,), generator=g)
        mask = (torch.arange(args.seq)[None, :] < lengths[:, None]).long()
        ids = torch.randint(1000, 30000, (args.batch, args.seq), generator=g) * mask
        batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
        if args.head == "BertForPreTraining":
            labels = torch.where((torch.rand(ids.shape, generator=g) < 0.15) & mask.bool(), ids, -100)
            labels[:, 1] = ids[:, 1]
            batch["labels"] = labels
            batch["next_sentence_label"] = torch.randint(0, 2, (args.batch,), generator=g)
        else:
            batch["labels"] = torch.randint(0, 2, (args.batch,), generator=g)
        out.append({k: v.to(args.device) for k, v in batch.items()})
    return out


class Stepper:
    """One provider's model, optimizer and (fp16) grad scaler; ``step(batch)`` is one training step."""

    def __init__(self, provider, args):
        self.model = make_model(provider, args)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-5)
        self.amp = {"none": None, "fp16": torch.float16, "bf16": torch.bfloat16}[args.amp]
        self.scaler = torch.amp.GradScaler(args.device, enabled=args.amp == "fp16")
        self.device = torch.device(args.device).type

    def step(self, batch):
        with torch.autocast(self.device, dtype=self.amp or torch.float32, enabled=self.amp is not None):
            loss = self.model(**batch).loss
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)
        return loss


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_memory_child(args) -> None:
    """Subprocess body: peak RSS growth over ``args.mem_steps`` steps of one provider, printed as JSON. The peak
    (VmHWM) is reset just before the steps (``/proc/self/clear_refs``), so model construction does not count."""
    torch.set_num_threads(args.threads)
    stepper = Stepper(args.provider, args)
    batches = make_batches(args, args.mem_steps)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_mib("VmRSS")
    for batch in batches:
        stepper.step(batch)
    peak = _status_mib("VmHWM")
    print(json.dumps({"provider": args.provider, "rss_before_mib": before, "peak_rss_mib": peak,
                      "step_peak_mib": peak - before}))


def time_providers(args) -> dict:
    cuda = args.device.startswith("cuda")
    steppers = {p: Stepper(p, args) for p in args.providers}
    batches = make_batches(args, 4)
    for _ in range(args.warmup):
        for s in steppers.values():
            for b in batches[:2]:
                s.step(b)
    times = {p: [] for p in args.providers}
    peaks = {}
    for i in range(args.steps):
        batch = batches[i % len(batches)]
        for p, s in steppers.items():
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                s.step(batch)
                end.record()
                torch.cuda.synchronize()
                times[p].append(start.elapsed_time(end) / 1e3)
                peaks[p] = max(peaks.get(p, 0), (torch.cuda.max_memory_allocated() - base) / 2**20)
            else:
                t0 = time.perf_counter()
                s.step(batch)
                times[p].append(time.perf_counter() - t0)
    return {"times": times, "peaks": peaks}


def summarize(times: dict, ref: str) -> dict:
    out = {}
    for p, ts in times.items():
        q = statistics.quantiles(ts, n=4) if len(ts) >= 2 else [ts[0]] * 3
        out[p] = {"median_s": statistics.median(ts), "p25_s": q[0], "p75_s": q[2], "steps": len(ts)}
        if ref in times and p != ref:
            out[p][f"median_speedup_vs_{ref}"] = statistics.median(r / t for r, t in zip(times[ref], ts))
    return out


def machine() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
            "cpu_count": __import__("os").cpu_count(), "torch_threads": torch.get_num_threads()}
    try:
        import transformers

        info["transformers"] = transformers.__version__
        with open("/proc/cpuinfo") as f:
            model = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        info["cpu"] = model[0] if model else platform.processor()
        info["loadavg_at_start"] = list(__import__("os").getloadavg())
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="minilm")
    ap.add_argument("--head", choices=("BertForPreTraining", "BertForSequenceClassification"),
                    default="BertForPreTraining")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--amp", choices=("none", "fp16", "bf16"), default="none", help="CUDA only")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per provider")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--mem-steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--providers", nargs="+", default=list(PROVIDERS), choices=PROVIDERS)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--provider", help=argparse.SUPPRESS)  # the CPU memory subprocess
    args = ap.parse_args(argv)
    if args.amp != "none" and not args.device.startswith("cuda"):
        ap.error("--amp needs --device cuda (CPU training is fp32)")
    torch.set_num_threads(args.threads)
    if args.provider:
        cpu_memory_child(args)
        return 0

    settings = {k: v for k, v in vars(args).items() if k not in ("provider", "out")}
    result = {"args": settings, "machine": machine()}
    timed = time_providers(args)
    result["time"] = summarize(timed["times"], "transformers-sdpa")
    if args.device.startswith("cuda"):
        result["peak_memory_mib"] = timed["peaks"]
    else:
        mem = {}
        for p in args.providers:
            cmd = [sys.executable, __file__, "--provider", p, *[a for a in (argv or sys.argv[1:])]]
            done = subprocess.run(cmd, check=True, capture_output=True, text=True)
            mem[p] = json.loads(done.stdout.strip().splitlines()[-1])
        result["peak_memory_mib"] = {p: m["step_peak_mib"] for p, m in mem.items()}
        result["memory_detail"] = mem
    ref = result["peak_memory_mib"].get("transformers-sdpa")
    for p, t in result["time"].items():
        ratio = result["peak_memory_mib"][p] / ref if ref else float("nan")
        print(f"{p:20s} step {t['median_s'] * 1e3:9.1f} ms "
              f"(p25 {t['p25_s'] * 1e3:.1f}, p75 {t['p75_s'] * 1e3:.1f})"
              f"  speed-up vs sdpa {t.get('median_speedup_vs_transformers-sdpa', 1.0):5.2f}x"
              f"  peak {result['peak_memory_mib'][p]:8.1f} MiB ({ratio:.2f}x sdpa)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
