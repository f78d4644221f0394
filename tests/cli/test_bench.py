"""fastbert bench on a tiny config: every mode and distribution, well-formed JSON / Markdown / PNG."""

import argparse
import json

import bench_scripts
import pytest

from fastbert import bench, cli


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    rc = cli.main(
        [
            "bench",
            "--model",
            "tiny",
            "--modes",
            "infer,train,tokenize",
            "--batch-sizes",
            "3",
            "--seq-lens",
            "16",
            "--dists",
            "full,uniform,real",
            "--reps",
            "2",
            "--warmup",
            "0",
            "--providers",
            "fastbert,hf-sdpa,hf-eager",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    return out


def test_outputs_are_well_formed(tiny_run):
    result = json.loads((tiny_run / "bench.json").read_text())
    rows = result["rows"]
    cases = {r["case"] for r in rows}
    assert len(cases) == 7  # 2 modes x 3 distributions + tokenize
    for r in rows:
        assert r["median_ms"] > 0 and r["tokens_per_s"] > 0 and r["time"]["n"] >= 2
        assert r["time"]["p25"] <= r["time"]["median"] <= r["time"]["p75"]
    fb = [r for r in rows if r["provider"] == "fastbert" and r["mode"] != "tokenize"]
    assert len(fb) == 6
    for r in fb:
        assert r["speedup"] > 0
        assert r["parity"] < 1e-4, r
    md = (tiny_run / "bench.md").read_text()
    assert md.startswith("# fastbert bench") and md.count("| fastbert |") >= 6
    assert (tiny_run / "bench.png").read_bytes()[:4] == b"\x89PNG"
    assert result["meta"]["torch"] and result["meta"]["cpu_count"]


def test_real_texts_are_padded_to_longest():
    tok, _ = bench.load_hf_tokenizer(None)
    ids, mask, texts = bench.make_batch(
        bench.Case("infer", 16, 512, "real"), 30522, tok, bench.load_texts(), 0
    )
    assert len(texts) == 16 and ids.shape == mask.shape
    lengths = mask.sum(1)
    assert int(lengths.max()) == ids.shape[1] and int(lengths.min()) < ids.shape[1]


def _args(*argv):
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    return bench.options_from_args(p.parse_args(list(argv)))


def test_presets():
    quick = _args()
    assert quick.model is None and "hf-sdpa" in quick.providers and quick.cases
    engine = _args("--preset", "engine-cpu")
    assert engine.model == "bert-base" and engine.providers == ["fastbert", "hf-sdpa"]
    assert [(c.batch, c.seqlen, c.dist) for c in engine.cases] == [(8, 128, "full"), (32, 512, "real")]
    assert "hf-sdpa-compile" in _args("--compile").providers


def test_data_file_is_real_text():
    texts = bench.load_texts()
    assert len(texts) >= 1000
    assert sum(len(t) for t in texts) < 300_000


def test_providers_use_their_attention():
    opts = bench.Options(model="tiny", providers=["fastbert", "hf-sdpa", "hf-eager"])
    models, ref, _ = bench.build_models(opts)
    assert models["hf-sdpa"].config._attn_implementation == "sdpa"
    assert models["hf-eager"].config._attn_implementation == "eager"
    assert ref.config._attn_implementation == "eager"
    assert type(models["fastbert"]).__module__ == "fastbert.modeling"


def test_prepared_forward_is_the_forward():
    """What --cuda-graphs captures: everything after validation and packing, on fixed inputs."""
    import torch

    import fastbert
    from fastbert.bench import prepared_forward

    torch.manual_seed(0)
    model = fastbert.BertModel(fastbert.BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2,
                                                   num_attention_heads=2, intermediate_size=48,
                                                   max_position_embeddings=16)).eval()
    ids = torch.randint(1, 40, (3, 10))
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[0, 7:] = 0
    mask[2, :3] = 0
    body = prepared_forward(model, ids, mask)
    with torch.inference_mode():
        want = model(ids, attention_mask=mask).last_hidden_state
    got = body()
    real = mask.bool()
    torch.testing.assert_close(got[real], want[real], rtol=1e-6, atol=1e-6)
    computed = real.clone()
    computed[:, 0] = True  # column 0 is computed for the pooler even where it is padding
    assert (got[~computed] == 0).all()
    torch.testing.assert_close(body(), got, rtol=0, atol=0)  # replayable: same inputs, same result


@pytest.mark.parametrize("family", list(bench.FAMILY_SHAPES))
def test_every_family_benches_with_parity(family):
    """``fastbert bench --model tiny --family F``: the fastbert provider is the family's own class, and the
    parity the bench reports (hidden states for infer, every gradient by transformers' name for train, via
    the family's NameMap) is small: fp32, the parity tests' 1e-4."""
    opts = bench.Options(model="tiny", family=family, providers=["fastbert", "hf-sdpa"])
    models, ref, cfg = bench.build_models(opts)
    assert cfg.model_type == family
    assert type(models["fastbert"]).__name__ == type(ref).__name__
    assert models["hf-sdpa"].config._attn_implementation == "sdpa"
    texts = bench.load_texts()
    tokenizer, _ = bench.load_hf_tokenizer(None)
    for mode, dist in (("infer", "real"), ("train", "uniform")):
        case = bench.Case(mode, 4, 24, dist)
        ids, mask, _ = bench.make_batch(case, cfg.vocab_size, tokenizer, texts, 0)
        models["fastbert"].requires_grad_(mode == "train")
        ref.requires_grad_(mode == "train")
        assert bench.parity(case, "fastbert", models["fastbert"], ref, ids, mask) <= 1e-4


def test_bench_families_script_writes_its_table(tmp_path):
    """``benchmarks/bench_families.py`` on the tiny shape: one row per family and case, speedup and parity."""
    module = bench_scripts.load("bench_families")
    out = tmp_path / "families.md"
    families = list(bench.FAMILY_SHAPES)
    assert module.main(["--shape", "tiny", "--families", ",".join(families), "--reps", "1", "--budget", "1",
                        "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and line.split("|")[1].strip()
            in families]
    assert len(rows) == 2 * len(families)
    assert all(float(r.split("|")[-2]) <= 1e-4 for r in rows)  # parity column
