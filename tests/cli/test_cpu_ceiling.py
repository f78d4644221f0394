"""``benchmarks/cpu_ceiling.py``: the FLOP count behind the fp32 ceiling, and the ceiling it reports."""

import json
import shutil

import bench_scripts
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode


def _script():
    return bench_scripts.load("cpu_ceiling")


def test_the_flop_count_is_what_transformers_computes():
    """bert_flops against torch's own count of every matmul of transformers' BERT (eager attention, so that QK^T
    and PV are counted as the matmuls they are) on a batch with no padding."""
    import transformers

    cfg = transformers.BertConfig(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=96,
                                  vocab_size=100, attn_implementation="eager")
    model = transformers.BertModel(cfg).eval()
    ids = torch.randint(0, 100, (3, 11))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(input_ids=ids)
    assert _script().bert_flops([11] * 3, 64, 3, 96) == counter.get_total_flops()


def test_the_ceiling_is_the_competitors_time_over_the_floor(tmp_path, monkeypatch, capsys):
    mod = _script()
    monkeypatch.setattr(mod, "fma_peak", lambda threads, width: 100.0)
    monkeypatch.setattr(mod, "gemm_rate", lambda: 90.0)
    shape = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}
    row = {"case": "infer 8x128 full", "mode": "infer", "batch": 8, "seqlen": 128, "dist": "full"}
    bench = {"meta": {"shape": shape, "baseline": "hf-sdpa", "model": "bert-base"},
             "rows": [dict(row, provider="fastbert", time={"median": 2.0}),
                      dict(row, provider="hf-sdpa", time={"median": 3.0}),
                      dict(row, case="infer 32x512 real", dist="real", provider="fastbert", time={"median": 1.0}),
                      dict(row, case="infer 32x512 real", dist="real", provider="hf-sdpa", time={"median": 2.0})]}
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    out = tmp_path / "ceiling.md"
    assert mod.main(["--engine", str(tmp_path / "bench.json"), "--out", str(out)]) == 0
    flops = mod.bert_flops([128] * 8, 768, 12, 3072)
    floor = flops / 100.0 / 1e9
    (line,) = [ln for ln in out.read_text().splitlines() if ln.startswith("| bert-base")]  # the "real" row is left out
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == "hf-sdpa" and cells[4] == f"{floor:.3f}" and cells[5] == f"{3.0 / floor:.2f}x"
    assert cells[6] == f"{3.0 / (flops / 90.0 / 1e9):.2f}x"  # at the best GEMM rate instead of the FMA peak
    assert cells[8] == "1.50x"


@pytest.mark.skipif(shutil.which("g++") is None, reason="no g++ to build the FMA loop")
def test_the_fma_peak_is_measured():
    peak = _script().fma_peak(1, 8)
    assert peak is not None and peak > 1.0
