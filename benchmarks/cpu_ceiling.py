"""The most any fp32 implementation could gain over a measured competitor on this machine: the work's
floating-point operations at the CPU's fused-multiply-add peak, against the competitor's measured time.

A BERT forward in fp32 cannot do less arithmetic than its GEMMs and attention on the real (unpadded) tokens, and
no core can do that arithmetic faster than its FMA peak. So for a competitor that took ``t`` seconds,

    ceiling = t / (FLOPs / peak)

bounds every fp32 engine's speedup over it, whatever it fuses, packs or skips (short of changing the numbers:
int8, bf16, pruning). A goal above the ceiling cannot be met on this machine in fp32; a goal below it leaves the
difference as the room there is. Inputs:

- the peak: ``cpu_peak/fma_peak.cpp`` compiled here (g++) for the vector width torch's capability allows (8 floats
  with AVX2, 16 with AVX-512) and run on torch's thread count; also the best rate of fastbert's GEMM on the
  bert-base FFN shapes, which is what a real GEMM reaches;
- ``--engine``: a ``fastbert bench`` result (``bench.json``; its "infer ... full" rows: a fixed batch of
  ``batch x seqlen`` real tokens of the bench's ``shape``) with its baseline's (transformers sdpa) and
  fastbert's times;
- ``--encode``: a ``bench_encode.py`` summary (its providers' median seconds) and the same texts it encoded,
  counted here with the bundled model's tokenizer at its maximum length (the padding-free work; the competitors
  also compute on padding, so their true work is larger and the bound is generous to fastbert).

Run it on the same machine and under the same caps as the results it reads, right after them:

    ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 FASTBERT_CPU_ISA=avx2 \\
        python benchmarks/cpu_ceiling.py --engine benchmarks/results/cpu-avx2/engine-cpu/bench.json \\
        --encode benchmarks/results/cpu-avx2/encode.txt --out benchmarks/results/cpu-avx2/ceiling.md
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def fma_peak(threads: int, width: int) -> float | None:
    """GFLOP/s of independent FMA chains of ``width``-float vectors on ``threads`` OpenMP threads (None without
    g++)."""
    cxx = shutil.which("g++")
    if cxx is None:
        return None
    arch = {8: "x86-64-v3", 16: "x86-64-v4"}[width]
    with tempfile.TemporaryDirectory() as d:
        exe = os.path.join(d, "fma_peak")
        subprocess.run([cxx, "-O3", "-funroll-loops", "-fopenmp", f"-march={arch}", "-Wno-psabi",
                        str(HERE / "cpu_peak" / "fma_peak.cpp"), "-o", exe], check=True)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        best = 0.0
        for _ in range(3):
            out = subprocess.run([exe], check=True, capture_output=True, text=True, env=env).stdout
            best = max(best, float(re.search(rf"^{width}-wide FMA: ([\d.]+) GFLOP/s", out, re.M).group(1)))
    return best


def gemm_rate() -> float:
    """Best GFLOP/s of the bert-base FFN GEMMs (1024 rows, frozen weights) through fastbert's GEMM,
    ``ops.linear``: oneDNN with the kept layout, per call or ``F.linear``, whichever its dispatch measures
    fastest here."""
    from fastbert import ops

    g = torch.Generator().manual_seed(0)
    best = 0.0
    with torch.inference_mode():
        for k, n in ((768, 3072), (3072, 768)):
            x, w = torch.randn(1024, k, generator=g), torch.randn(n, k, generator=g)
            ops.linear(x, w)  # the first call of the shape makes the dispatch's choice
            for _ in range(5):
                t0 = time.perf_counter()
                ops.linear(x, w)
                best = max(best, 2 * 1024 * k * n / (time.perf_counter() - t0) / 1e9)
    return best


def bert_flops(lengths: list[int], hidden: int, layers: int, intermediate: int, pooler: bool = True) -> float:
    """Multiply-adds (as 2 FLOPs) of a BERT encoder on sequences of ``lengths`` real tokens, no padding: the
    four GEMMs per token and layer, QK^T and PV per sequence and layer, and the pooler per sequence."""
    tokens = sum(lengths)
    per_token = 2 * (4 * hidden * hidden + 2 * hidden * intermediate)
    attention = sum(4 * n * n * hidden for n in lengths)
    return layers * (tokens * per_token + attention) + (2 * hidden * hidden * len(lengths) if pooler else 0)


def engine_rows(path: Path) -> list[dict]:
    data = json.loads(path.read_text())
    shape, baseline = data["meta"]["shape"], data["meta"]["baseline"]
    out = []
    for case in dict.fromkeys(r["case"] for r in data["rows"]):
        rows = {r["provider"]: r for r in data["rows"] if r["case"] == case}
        r = rows["fastbert"]
        if r["mode"] != "infer" or r["dist"] != "full":
            continue  # the other distributions' token lengths are not in the result file
        flops = bert_flops([r["seqlen"]] * r["batch"], shape["hidden_size"], shape["num_hidden_layers"],
                           shape["intermediate_size"])
        out.append({"case": f"{data['meta']['model']} {case}", "flops": flops, "competitor": baseline,
                    "competitor_s": rows[baseline]["time"]["median"], "fastbert_s": r["time"]["median"]})
    return out


def encode_rows(path: Path, texts: int) -> list[dict]:
    from fastbert import bench
    from fastbert.config import BertConfig
    from fastbert.encoder import SentenceEncoder

    times = {m.group(1): float(m.group(2))
             for m in re.finditer(r"^\s+(\S+)\s+median ([\d.]+) s", path.read_text(), re.M)}
    model_dir = bench.default_model()
    enc = SentenceEncoder.from_pretrained(model_dir, device="cpu")
    batch = enc.tokenizer(bench.load_texts()[:texts], truncation=True, max_length=enc.max_seq_length)
    lengths = [len(ids) for ids in batch["input_ids"]]
    cfg = BertConfig.from_pretrained(model_dir)
    flops = bert_flops(lengths, cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size, pooler=False)
    return [{"case": f"encode {texts} texts ({sum(lengths)} tokens)", "flops": flops, "competitor": name,
             "competitor_s": t, "fastbert_s": times["fastbert"]} for name, t in times.items() if name != "fastbert"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", type=Path, help="a fastbert bench.json")
    parser.add_argument("--encode", type=Path, help="a bench_encode.py summary")
    parser.add_argument("--texts", type=int, default=1000, help="texts the encode summary embedded")
    parser.add_argument("--out", default="", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    if not (args.engine or args.encode):
        parser.error("give --engine and/or --encode")

    from fastbert.dispatch import cpu_info

    info = cpu_info()
    threads = torch.get_num_threads()
    width = 16 if info["torch_capability"].startswith("AVX512") else 8
    peak = fma_peak(threads, width) if info["machine"] in ("x86_64", "AMD64") else None
    gemm = gemm_rate()
    roof = peak or gemm
    rows = (engine_rows(args.engine) if args.engine else []) + (encode_rows(args.encode, args.texts)
                                                                if args.encode else [])
    lines = [
        f"CPU: {info['model']} ({' '.join(info['flags'])}); torch {torch.__version__}, capability "
        f"{info['torch_capability']}{', caps ' + str(info['caps']) if info['caps'] else ''}; {threads} threads",
        "",
        f"FMA peak ({width}-wide, {threads} threads): "
        + (f"{peak:.0f} GFLOP/s" if peak else "not measured (no g++ or not x86-64)")
        + f"; best GEMM (ops.linear, bert-base FFN, 1024 rows): {gemm:.0f} GFLOP/s"
        + (f" ({gemm / peak:.0%} of the peak)" if peak else ""),
        "",
        "fp32 ceiling = competitor's time / (GEMM + attention FLOPs on the real tokens / "
        + ("FMA peak" if peak else "best GEMM rate") + "): no fp32 engine can beat the competitor by more. "
        "At the best GEMM rate: the same with the arithmetic at the rate of the best GEMM measured here, and "
        "nothing else costing any time.",
        "",
        "| case | competitor | competitor s | GFLOP | floor s | ceiling | ceiling at the best GEMM rate "
        "| fastbert s | fastbert vs competitor | share of the ceiling |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        floor = r["flops"] / roof / 1e9
        ceiling, got = r["competitor_s"] / floor, r["competitor_s"] / r["fastbert_s"]
        practical = r["competitor_s"] / (r["flops"] / gemm / 1e9)
        lines.append(f"| {r['case']} | {r['competitor']} | {r['competitor_s']:.3f} | {r['flops'] / 1e9:.1f} | "
                     f"{floor:.3f} | {ceiling:.2f}x | {practical:.2f}x | {r['fastbert_s']:.3f} | {got:.2f}x | "
                     f"{got / ceiling:.0%} |")
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
