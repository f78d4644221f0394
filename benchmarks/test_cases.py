"""``fastbert bench``'s cases as pytest-benchmark tests: one test per (case, provider), grouped by case so
pytest-benchmark prints fastbert and transformers side by side. Model: ``FASTBERT_BENCH_MODEL`` (a checkpoint
dir or a shape name; default the bundled all-MiniLM-L6-v2).

    pytest benchmarks --benchmark-only --benchmark-group-by=group
"""

import os

import pytest
import torch

from fastbert import bench

pytest.importorskip("pytest_benchmark")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
PROVIDERS = ["fastbert", "hf-sdpa", "hf-eager"]
CASES = [
    bench.Case("infer", 8, 128, "full"),
    bench.Case("infer", 32, 128, "real"),
    bench.Case("infer", 32, 128, "uniform"),
    bench.Case("train", 8, 128, "real"),
]


@pytest.fixture(scope="session")
def setup():
    opts = bench.Options(model=os.environ.get("FASTBERT_BENCH_MODEL"), providers=PROVIDERS, device=DEVICE)
    models, ref, cfg = bench.build_models(opts)
    tok, tok_dir = bench.load_hf_tokenizer(opts.model)
    return models, ref, cfg, tok, tok_dir, bench.load_texts()


def _sync(fn):
    def call():
        out = fn()
        if DEVICE == "cuda":
            torch.cuda.synchronize()
        return out

    return call


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name.replace(" ", "-"))
def test_model(benchmark, setup, case, provider):
    models, ref, cfg, tok, _, texts = setup
    ids, mask, _ = bench.make_batch(case, cfg.vocab_size, tok, texts, 0)
    ids, mask = ids.to(DEVICE), mask.to(DEVICE)
    benchmark.group = case.name
    benchmark.extra_info.update(
        tokens=int(mask.sum()), parity=bench.parity(case, provider, models[provider], ref, ids, mask)
    )
    make = bench.infer_fn if case.mode == "infer" else bench.train_fn
    benchmark.pedantic(_sync(make(models[provider], ids, mask)), rounds=5, warmup_rounds=1)
    assert benchmark.extra_info["parity"] < 1e-3


@pytest.mark.parametrize("provider", ["fastbert", "hf-fast"])
def test_tokenizer(benchmark, setup, provider):
    _, _, _, tok, tok_dir, texts = setup
    fns, _ = bench._tokenize_fns(tok_dir, tok, texts[:256], 512)
    if provider not in fns:
        pytest.skip("fastbert.BertTokenizer is not built")
    benchmark.group = "tokenize 256 real texts"
    benchmark.pedantic(fns[provider], rounds=10, warmup_rounds=1)


def test_kernel_sweeps(benchmark, tmp_path):
    """The per-kernel sweeps (CUDA only), run once under the benchmark fixture so --benchmark-only keeps it."""
    if DEVICE != "cuda":
        pytest.skip("kernel sweeps need a CUDA device")
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("sweeps", Path(__file__).with_name("bench_kernel_sweeps.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    benchmark.group = "kernel sweeps (see kernel_sweeps.json)"
    assert benchmark.pedantic(mod.main, args=(["--out", str(tmp_path)],), rounds=1, iterations=1) == 0
