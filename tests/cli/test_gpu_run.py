"""``benchmarks/gpu_run.py``: the one command a GPU session runs, rehearsed here on CPU so that it is known to
run before a GPU is spent on it; and its time limits, deadline and plan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import bench_scripts

ROOT = Path(__file__).resolve().parents[2]
STEPS = ["env", "build", "compile", "smoke", "table-fp32", "train", "tests", "sweeps"]


def _load(name="gpu_run"):
    return bench_scripts.load(name)


def test_rehearsal_runs_every_step_and_returns_at_most_8_files(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_run.py"), "--rehearse", "--out", str(out)],
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and {p.name for p in files} == {"summary.json", "summary.md", "gpu-run.tgz"}
    summary = json.loads((out / "summary.json").read_text())
    assert [s["name"] for s in summary["steps"]] == STEPS
    assert all(s["status"] == "passed" for s in summary["steps"]), summary["steps"]
    results = summary["results"]
    assert results["smoke"]["passed"] == results["smoke"]["total"] >= 10
    assert results["compile"]["ok"] == results["compile"]["tasks"] > 0
    providers = {r["provider"] for r in results["table-fp32"]["rows"]}
    assert {"fastbert", "fastbert-graphs", "hf-sdpa"} <= providers
    assert results["tests"]["collected"] > 0 and results["tests"]["failed"] == 0
    assert any("test_cuda_graphs.py" in f for f in results["tests"]["files"])
    with tarfile.open(out / "gpu-run.tgz") as tar:
        names = tar.getnames()
    assert all(f"gpu-run/logs/{s}.log" in names for s in STEPS)
    assert "gpu-run/table-fp32/bench.json" in names and "gpu-run/plan.json" in names
    # the short table comes last
    assert proc.stdout.rstrip().splitlines()[-1].startswith(tuple(f"{n} s; wrote" for n in range(1000)))
    assert "| sweeps | passed |" in proc.stdout


def test_a_hung_step_is_stopped_at_its_limit_with_its_children(tmp_path):
    mod = _load()
    pid_file = tmp_path / "child.pid"
    hang = ("import subprocess, sys, time; "
            f"c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"open({str(pid_file)!r}, 'w').write(str(c.pid)); time.sleep(60)")
    step = mod.Step("hang", "sleeps", [sys.executable, "-c", hang], limit=3)
    t0 = time.monotonic()
    mod.run_step(step, 3, dict(os.environ), tmp_path, tmp_path / "hang.log")
    assert step.status == "timeout" and time.monotonic() - t0 < 15
    child = int(pid_file.read_text())
    for _ in range(50):  # the grandchild went with the group
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the step's child survived")
    failing = mod.Step("fail", "exits 3", [sys.executable, "-c", "raise SystemExit(3)"], limit=10)
    mod.run_step(failing, 10, dict(os.environ), tmp_path, tmp_path / "fail.log")
    assert (failing.status, failing.rc) == ("failed", 3)


def test_the_deadline_skips_what_no_longer_fits(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_run.py"), "--rehearse", "--out", str(out),
                           "--deadline", "25", "--steps", "env,smoke,sweeps"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    steps = {s["name"]: s for s in json.loads((out / "summary.json").read_text())["steps"]}
    assert steps["env"]["status"] == "passed"
    assert steps["smoke"]["status"] == "skipped" and "deadline" in steps["smoke"]["summary"]
    assert steps["sweeps"]["status"] in ("passed", "skipped")


def test_gpu_plan_is_the_issue_table(tmp_path):
    mod = _load()
    plan = mod.make_plan(False, "/some/minilm", 16)
    b = plan["bench"]
    assert (b["model"], b["dtypes"], b["batch_sizes"], b["seq_lens"], b["dists"]) == (
        "bert-base", ["fp16", "bf16"], [1, 32], [128, 512], ["full", "real"])
    assert plan["smoke"]["models"] == ["minilm", "bert-base"] and plan["smoke"]["model_dtypes"] == ["fp16", "bf16"]
    steps = mod.make_steps(plan, tmp_path, pip_install=False)
    assert [s.name for s in steps] == ["env", "build", "compile", "smoke", "table-fp16", "table-bf16", "train",
                                       "tests", "sweeps"]
    table = next(s for s in steps if s.name == "table-fp16")
    assert "--cuda-graphs" in table.cmd and table.cmd[table.cmd.index("--device") + 1] == "cuda"
    # without a checkpoint there is no real text and no MiniLM
    bare = mod.make_plan(False, None, 16)
    assert bare["bench"]["dists"] == ["full"] and bare["smoke"]["models"] == ["bert-base"]
    # every step's limit fits a device call; the expected run fits the 8 minutes
    assert all(s.limit <= 300 for s in steps) and sum(s.min_s for s in steps) < 480


def test_smoke_goes_on_in_a_new_process_when_the_gpu_context_breaks(tmp_path, monkeypatch):
    """A sticky CUDA error (an illegal access) fails every later call of a process: the smoke test then runs the
    checks after the failing one in a fresh process (simulated here: the first check raises, the probe says
    broken)."""
    smoke = _load("gpu_smoke")
    plan = _load().make_plan(True, None, 2)
    plan["smoke"].update(kernel_dtypes=["fp32"], models=[], model_dtypes=[], graph_dtypes=[])
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(plan))

    def broken(plan, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(smoke, "check_layer_norm", broken)
    monkeypatch.setattr(smoke, "_cuda_broken", lambda device: True)
    rc = smoke.smoke(plan, tmp_path / "smoke.json", plan_path)
    rows = json.loads((tmp_path / "smoke.json").read_text())["checks"]
    assert rc == 1 and [r["name"] for r in rows] == [c[0] for c in smoke.smoke_checks(plan)]
    assert not rows[0]["ok"] and "illegal" in rows[0]["error"]
    assert all(r["ok"] for r in rows[1:])  # the fresh process ran the real checks


def test_the_bench_without_its_console_front_end(tmp_path):
    rc = _load().bench_worker(["--model", "tiny", "--device", "cpu", "--batch-sizes", "2", "--seq-lens", "8",
                               "--dists", "full", "--reps", "2", "--warmup", "0", "--cuda-graphs", "--out",
                               str(tmp_path), "--no-plots"])
    rows = json.loads((tmp_path / "bench.json").read_text())["rows"]
    assert rc == 0 and {r["provider"] for r in rows} == {"fastbert", "hf-sdpa", "hf-eager", "fastbert-graphs"}


def test_gpu_tests_are_found_without_importing_the_rest():
    files = _load().gpu_test_files()
    names = {Path(f).name for f in files}
    assert {"test_kernels_attention.py", "test_cuda_graphs.py"} <= names
    assert "test_tokenizer.py" not in names  # needs the C++ build, which the GPU run does not do
