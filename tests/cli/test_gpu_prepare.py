"""The carry-sized copy of the bundled checkpoint for GPU sessions, and FASTBERT_MODEL_DIR."""

import subprocess
import sys
from pathlib import Path

import bench_scripts
import pytest
import torch
from safetensors.torch import load_file

from fastbert import bench


def test_prepare_writes_an_fp16_copy_under_the_carry_limit(tmp_path, monkeypatch, minilm_dir):
    mod = bench_scripts.load("gpu_prepare")
    dest = mod.prepare(tmp_path / "minilm")
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    assert size < 60 * 2**20  # a device call carries 64 MiB in all
    got, want = load_file(dest / "model.safetensors"), load_file(Path(minilm_dir) / "model.safetensors")
    assert got.keys() == want.keys()
    for k in want:
        assert got[k].dtype == (torch.float16 if want[k].is_floating_point() else want[k].dtype)
        torch.testing.assert_close(got[k].float(), want[k].float(), rtol=1e-3, atol=1e-4)  # fp16 rounding
    for name in ("config.json", "vocab.txt", "modules.json", "1_Pooling/config.json"):
        assert (dest / name).is_file(), name
    monkeypatch.setenv("FASTBERT_MODEL_DIR", str(dest))
    assert bench.default_model() == str(dest)
    monkeypatch.setenv("FASTBERT_MODEL_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        bench.default_model()


def test_the_copy_is_put_in_the_local_ignore_list(tmp_path):
    mod = bench_scripts.load("gpu_prepare")
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    assert mod.ignore_locally(repo / ".gpu" / "minilm", root=repo) == "/.gpu/"
    assert mod.ignore_locally(repo / ".gpu" / "other", root=repo) == "/.gpu/"  # once only
    exclude = (repo / ".git" / "info" / "exclude").read_text().splitlines()
    assert exclude.count("/.gpu/") == 1
    assert mod.ignore_locally(tmp_path / "elsewhere", root=repo) is None


def test_python_dash_m_fastbert_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "fastbert", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "bench" in out.stdout
