"""``fastbert bench``: fastbert and transformers side by side, parity and speed.

Providers: ``fastbert``, ``hf-sdpa`` and ``hf-eager`` (transformers' ``BertModel`` with that attention), with
``--compile`` ``hf-sdpa-compile`` (``torch.compile`` of the sdpa model), and with ``--cuda-graphs``
``fastbert-graphs`` (fastbert's inference through ``fastbert.cuda_graphs.CudaGraphRunner``: CUDA graphs per
batch and token-count bucket, a whole call timed: inputs copied in, replay, outputs copied out; on CPU the same
bucketed forward without capture). Every provider holds the same weights.
A *case* is a mode (``infer``: forward under ``torch.inference_mode``; ``train``: forward + backward of a
squared-hidden-state loss, dropout off so gradients are comparable; ``tokenize``: the tokenizer on the case's
texts), a batch size, a sequence length and a length distribution:

- ``full``: every row ``seqlen`` real tokens;
- ``uniform``: lengths uniform in ``[1, seqlen]``, padded to ``seqlen``;
- ``real``: real texts (``fastbert/bench/data/debian_faq.txt``) truncated to ``seqlen``, padded to the longest.

Each row reports the median time and its spread (inter-quartile range), real tokens per second, the speedup
of fastbert over the baseline (``hf-sdpa``; on CPU the median of per-round ratios, providers timed in
alternating rounds) and parity: the max abs error against transformers' eager model in fp32 (hidden states at
real tokens for ``infer``, parameter gradients for ``train``, token ids for ``tokenize``).

``fastbert bench`` alone is the quick demo on the bundled all-MiniLM-L6-v2 checkpoint; ``--preset engine-cpu``
is the engine's CPU benchmark (bert-base shape, random weights); ``--preset full`` sweeps more shapes.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from fastbert.bench import timing
from fastbert.packing import QueryOnly, unpack
from fastbert.resources import default_model

DATA_FILE = Path(__file__).resolve().parent / "data" / "debian_faq.txt"  # packaged with fastbert.bench

# named shapes, random weights (vocab_size is BERT's uncased vocab so real text tokenizes into it)
SHAPES = {
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
    "mini": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
    "bert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "bert-large": dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096
    ),
}
# random-weight shapes in another family (--family): transformers' config keys for a SHAPES entry
FAMILY_SHAPES = {
    "bert": lambda s: dict(s),
    "roberta": lambda s: dict(s, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5, vocab_size=30522),
    "xlm-roberta": lambda s: dict(s, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
                                  vocab_size=30522),
    "camembert": lambda s: dict(s, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
                                vocab_size=30522),
    "distilbert": lambda s: dict(dim=s["hidden_size"], n_layers=s["num_hidden_layers"],
                                 n_heads=s["num_attention_heads"], hidden_dim=s["intermediate_size"]),
    "electra": lambda s: dict(s, embedding_size=s["hidden_size"]),
    "albert": lambda s: dict(s, embedding_size=128, hidden_act="gelu_new", vocab_size=30522),
}
NO_DROPOUT = {
    "distilbert": dict(dropout=0.0, attention_dropout=0.0),
}
MODES = ("infer", "train", "tokenize")
DISTS = ("full", "uniform", "real")
HF_PROVIDERS = ("hf-sdpa", "hf-eager", "hf-sdpa-compile")
GRAPHS = "fastbert-graphs"  # fastbert through CudaGraphRunner (inference cases only)
BASELINE = "hf-sdpa"


@dataclass(frozen=True)
class Case:
    mode: str
    batch: int
    seqlen: int
    dist: str

    @property
    def name(self) -> str:
        return f"{self.mode} {self.batch}x{self.seqlen} {self.dist}"


@dataclass
class Options:
    model: str | None = None  # checkpoint dir or a name in SHAPES; None = the bundled MiniLM
    family: str = "bert"  # the model_type of a SHAPES model (a checkpoint dir's config.json says its own)
    cases: list[Case] = field(default_factory=list)
    providers: list[str] = field(default_factory=lambda: ["fastbert", "hf-sdpa", "hf-eager"])
    device: str = "cpu"
    dtype: str = "fp32"
    reps: int = 10
    warmup: int = 1
    budget_s: float = 8.0  # per case: stop adding rounds past this (after 3 rounds)
    seed: int = 0
    cuda_graphs: bool = False  # add the fastbert-graphs provider (CUDA graphs per shape bucket)
    out: str | None = "bench-results"
    plots: bool = True
    preset: str = "quick"


PRESETS = {
    # the newcomer's demo: about a minute on 2 CPU cores
    "quick": dict(
        cases=[
            Case("infer", 8, 128, "full"),
            Case("infer", 32, 128, "uniform"),
            Case("infer", 32, 128, "real"),
            Case("train", 8, 128, "real"),
            Case("tokenize", 32, 128, "real"),
        ],
        reps=6,
        budget_s=6.0,
    ),
    # the engine issue's CPU benchmark: bert-base shape, random weights, fastbert vs transformers sdpa
    "engine-cpu": dict(
        model="bert-base",
        providers=["fastbert", "hf-sdpa"],
        cases=[Case("infer", 8, 128, "full"), Case("infer", 32, 512, "real")],
        reps=15,
        budget_s=60.0,
        warmup=1,
    ),
    "full": dict(
        cases=[
            Case(m, b, s, d)
            for m in ("infer", "train")
            for b in (1, 8, 32)
            for s in (128, 512)
            for d in DISTS
            if not (m == "train" and b == 32 and s == 512)
        ]
        + [Case("tokenize", 32, 512, "real"), Case("tokenize", 256, 512, "real")],
        reps=10,
        budget_s=20.0,
    ),
}


# ------------------------------------------------------------------------------------------------ models
def _dtype(name: str) -> torch.dtype:
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def build_models(opts: Options):
    """``(models by provider, fp32 eager reference, transformers config)``, all with the same weights, dropout
    off. Any family fastbert runs: a checkpoint dir's config.json names it, a SHAPES model takes ``family``."""
    import transformers

    from fastbert.auto import read_model_type

    spec = opts.model or default_model()
    device = torch.device(opts.device)
    if spec in SHAPES:
        family = opts.family
        if family not in FAMILY_SHAPES:
            raise SystemExit(f"fastbert bench: --family {family!r} is not one of {sorted(FAMILY_SHAPES)}")
        no_dropout = NO_DROPOUT.get(family, dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
        cfg = transformers.AutoConfig.for_model(family, **FAMILY_SHAPES[family](SHAPES[spec]), **no_dropout)
        torch.manual_seed(opts.seed)
        ref = transformers.AutoModel.from_config(cfg, attn_implementation="eager")
    elif Path(spec).is_dir():
        family = read_model_type(spec)
        no_dropout = NO_DROPOUT.get(family, dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
        ref = transformers.AutoModel.from_pretrained(spec, attn_implementation="eager", **no_dropout)
    else:
        raise SystemExit(
            f"fastbert bench: --model {spec!r} is neither a checkpoint dir nor one of {list(SHAPES)}"
        )
    ref = ref.float().eval()
    state = ref.state_dict()
    dtype = _dtype(opts.dtype)
    models = {}
    for p in opts.providers:
        if p == "fastbert":
            import fastbert

            models[p] = fastbert.from_transformers(ref).to(device=device, dtype=dtype).eval()
        elif p in HF_PROVIDERS:
            impl = "eager" if p == "hf-eager" else "sdpa"
            # a copy of the config: _from_config would otherwise keep the reference's "eager"
            m = type(ref)._from_config(copy.deepcopy(ref.config), attn_implementation=impl)
            if m.config._attn_implementation != impl:
                raise RuntimeError(
                    f"transformers gave {m.config._attn_implementation!r} attention, not {impl!r}"
                )
            m.load_state_dict(state)
            m = m.to(device=device, dtype=dtype).eval()
            models[p] = torch.compile(m) if p.endswith("compile") else m
        elif p == GRAPHS:
            continue  # below: it runs the fastbert provider's model, or its own copy
        elif p == "hf-fast":
            raise SystemExit("fastbert bench: hf-fast is not a model provider; tokenize cases always compare "
                             "fastbert's tokenizer with it")
        else:
            raise SystemExit(
                f"fastbert bench: unknown provider {p!r} (known: fastbert, {GRAPHS}, {', '.join(HF_PROVIDERS)})"
            )
    if GRAPHS in opts.providers:
        import fastbert
        from fastbert.cuda_graphs import CudaGraphRunner

        model = models.get("fastbert") or fastbert.from_transformers(ref).to(device=device, dtype=dtype).eval()
        models[GRAPHS] = CudaGraphRunner(model, enabled=True)
    return models, ref.to(device), ref.config


# ------------------------------------------------------------------------------------------------ inputs
def load_texts() -> list[str]:
    return [t for t in DATA_FILE.read_text(encoding="utf-8").splitlines() if t.strip()]


def load_hf_tokenizer(spec: str | None):
    from transformers import BertTokenizerFast

    d = spec if spec and Path(spec).is_dir() and (Path(spec) / "vocab.txt").is_file() else default_model()
    return BertTokenizerFast.from_pretrained(d), d


def make_batch(case: Case, vocab_size: int, tokenizer, texts: list[str], seed: int):
    """``(input_ids, attention_mask, texts or None)`` for a case, on CPU."""
    g = torch.Generator().manual_seed(seed + 7919 * case.batch + case.seqlen)
    if case.dist == "real" or case.mode == "tokenize":
        pick = torch.randint(len(texts), (case.batch,), generator=g).tolist()
        chosen = [texts[i] for i in pick]
        enc = tokenizer(chosen, padding=True, truncation=True, max_length=case.seqlen, return_tensors="pt")
        return enc["input_ids"] % vocab_size, enc["attention_mask"], chosen
    ids = (
        torch.randint(1000, vocab_size, (case.batch, case.seqlen), generator=g)
        if vocab_size > 1000
        else torch.randint(vocab_size, (case.batch, case.seqlen), generator=g)
    )
    if case.dist == "full":
        mask = torch.ones_like(ids)
    elif case.dist == "uniform":
        lengths = torch.randint(1, case.seqlen + 1, (case.batch,), generator=g)
        mask = (torch.arange(case.seqlen)[None, :] < lengths[:, None]).long()
    else:
        raise ValueError(f"unknown distribution {case.dist!r}")
    return ids * mask, mask, None


# ------------------------------------------------------------------------------------------------ steps
def _hidden(model, ids, mask):
    out = model(input_ids=ids, attention_mask=mask)
    return out[0] if isinstance(out, tuple) else out.last_hidden_state


def _loss(h, mask):
    m = mask.to(torch.float32)[..., None]  # token counts in fp32: bf16 would round them above 256
    return (h.float().pow(2) * m).sum() / m.sum()


def infer_fn(model, ids, mask):
    def step():
        with torch.inference_mode():
            return _hidden(model, ids, mask)

    return step


def train_fn(model, ids, mask):
    def step():
        for p in model.parameters():
            p.grad = None
        loss = _loss(_hidden(model, ids, mask), mask)
        loss.backward()
        return loss

    return step


def prepared_forward(model, ids, mask):
    """fastbert's inference forward split in two: validation and packing, which read lengths back to the
    host, run now, once (``prepare_inputs``); the returned function does the rest (embeddings, every layer,
    the scatter back to the padded shape), which only launches kernels on fixed shapes."""
    pooler = getattr(model, "pooler", None) is not None
    with torch.inference_mode():
        packing, inputs = model.prepare_inputs(ids, mask, query_only=QueryOnly.FIRST if pooler else QueryOnly.NONE)

    def body():
        with torch.inference_mode():
            x = model.forward_packed(packing, *inputs)[-1]
            if pooler:  # the same work as the eager forward, pooler included
                model.pool(x, packing)
            return unpack(x, packing)

    return body


def cuda_graph_fn(model, ids, mask):
    """fastbert's inference forward on these inputs as a CUDA graph replay of ``prepared_forward``'s device
    work, for these fixed inputs only (a replay recomputes the same batch). For inputs whose shapes vary from
    call to call, ``fastbert.cuda_graphs.CudaGraphRunner`` (the ``fastbert-graphs`` provider) captures one
    graph per shape bucket and packs inside the graph."""
    body = prepared_forward(model, ids, mask)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):  # warm-up off the default stream: Triton compiles and caches here, not in capture
            body()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = body()
    torch.cuda.synchronize()

    def replay():
        graph.replay()
        return out

    return replay


def graphs_fn(runner, ids, mask, tokens: int):
    """One inference call through a ``CudaGraphRunner`` (``tokens``: the real token count, known on the host,
    which picks the bucket without reading the mask back)."""

    def step():
        return runner(ids, mask, num_tokens=tokens).last_hidden_state

    return step


def _with_tokens(runner, tokens: int):
    """A ``CudaGraphRunner`` called like a model, with the case's token count (the timed call's bucket)."""
    return lambda input_ids, attention_mask: runner(input_ids, attention_mask, num_tokens=tokens)


def _grads(model, fastbert_layout: bool) -> dict[str, torch.Tensor]:
    """Parameter gradients by transformers name (fastbert's names mapped back by its family's ``NameMap``:
    the fused qkv split into query/key/value, the family's renames undone)."""
    from fastbert.weights import fastbert_to_hf

    grads = {name.removeprefix("_orig_mod."): p.grad.detach().float().cpu()
             for name, p in model.named_parameters() if p.grad is not None}
    return fastbert_to_hf(grads, model.names) if fastbert_layout else grads


def parity(case: Case, provider: str, model, ref, ids, mask) -> float:
    """Max abs error of ``provider`` against the fp32 eager reference on this case."""
    if case.mode == "infer":
        with torch.inference_mode():
            got = _hidden(model, ids, mask).float()
            want = _hidden(ref, ids, mask).float()
        real = mask.bool()
        return float((got[real] - want[real]).abs().max())
    train_fn(model, ids, mask)()
    train_fn(ref, ids, mask)()
    got, want = _grads(model, provider == "fastbert"), _grads(ref, False)
    common = [k for k in want if k in got and not k.startswith("pooler.")]
    if provider == "fastbert" and len(common) < len(got) - 2:
        raise RuntimeError(f"gradient names do not match transformers': {sorted(set(got) - set(want))[:5]}")
    err = max(float((got[k] - want[k]).abs().max()) for k in common) if common else float("nan")
    for m in (model, ref):
        for p in m.parameters():
            p.grad = None
    return err


# ------------------------------------------------------------------------------------------------ running
def machine_info(device: str) -> dict:
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    else:  # what the CPU figures depend on: its instruction sets, the builds and caps in use
        from fastbert import dispatch, ops

        cpu = dispatch.cpu_info()
        info["cpu_flags"] = cpu["flags"]
        info["torch_capability"] = cpu["torch_capability"]
        info["caps"] = cpu["caps"]
        info["kernel_build"] = ops.cpu_isa() if ops._cpu_kernels() is not None else "not built"
    return info


def _cpu_name() -> str:
    from fastbert.dispatch import cpu_info

    return cpu_info()["model"]


def benchmark(opts: Options, progress=None) -> dict:
    """Run every case; returns ``{"meta": ..., "rows": [...]}`` (one row per case and provider)."""
    device = torch.device(opts.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("fastbert bench: --device cuda but no CUDA device is available")
    if device.type == "cpu" and opts.dtype != "fp32":
        raise SystemExit("fastbert bench: CPU runs are fp32 only")
    models, ref, cfg = build_models(opts)
    vocab = cfg.vocab_size
    tokenizer, tok_dir = load_hf_tokenizer(opts.model)
    texts = load_texts()
    rows = []
    meta = machine_info(opts.device)
    meta.update(
        model=opts.model or "all-MiniLM-L6-v2 (bundled)",
        family=cfg.model_type,
        dtype=opts.dtype,
        preset=opts.preset,
        providers=opts.providers,
        baseline=BASELINE,
        shape=_shape(cfg),
        timing=("CUDA events" if device.type == "cuda" else "wall clock, providers alternating per round"),
    )
    for case in opts.cases:
        ids, mask, chosen = make_batch(case, vocab, tokenizer, texts, opts.seed)
        tokens = int(mask.sum())
        if progress is not None:
            progress.start_case(case)
        if case.mode == "tokenize":
            fns, par = _tokenize_fns(tok_dir, tokenizer, chosen, case.seqlen)
            notes = {}
        else:
            ids, mask = ids.to(device), mask.to(device)
            fns, par, notes = {}, {}, {}
            for p, model in models.items():
                # inference runs on frozen weights (which fastbert's CPU path keeps in oneDNN's layout)
                (model.model if p == GRAPHS else model).requires_grad_(case.mode == "train")
            for p, model in models.items():
                if p == GRAPHS:
                    if case.mode != "infer":
                        continue
                    # a failed capture leaves CUDA state behind (the capture stream, the allocator's pool),
                    # so there is no silent fallback: the error stops the run
                    fns[p] = graphs_fn(model, ids, mask, tokens)
                    notes[p] = "CUDA graphs" if model.mode == "graphs" else "graph buckets, no capture (CPU)"
                    par[p] = parity(case, p, _with_tokens(model, tokens), ref, ids, mask)
                    continue
                make = infer_fn if case.mode == "infer" else train_fn
                fns[p] = make(model, ids, mask)
                par[p] = parity(case, p, model, ref, ids, mask)
        samples = timing.time_alternating(
            fns,
            reps=opts.reps,
            warmup=opts.warmup,
            device=device,
            budget_s=opts.budget_s,
            on_round=(lambda r, n: progress.advance(r, n)) if progress is not None else None,
        )
        base = BASELINE if BASELINE in samples else ("hf-fast" if "hf-fast" in samples else None)
        for p, s in samples.items():
            st = timing.Stats.of(s)
            row = dict(
                case=case.name,
                **asdict(case),
                provider=p,
                tokens=tokens,
                time=st.as_dict(),
                median_ms=st.median * 1e3,
                spread=st.spread,
                tokens_per_s=tokens / st.median,
                speedup=timing.median_ratio(samples[base], s) if base and p != base else None,
                parity=par.get(p),
                note=notes.get(p, ""),
            )
            rows.append(row)
        if progress is not None:
            progress.end_case(case, [r for r in rows if r["case"] == case.name])
    if GRAPHS in models:
        meta["cuda_graphs"] = models[GRAPHS].stats()
    return {"meta": meta, "rows": rows}


def _shape(hf_config) -> dict:
    """The SHAPES keys of a transformers config of any family, read through fastbert's config class (which
    maps DistilBERT's ``dim``/``hidden_dim``/... onto BERT's names)."""
    from fastbert.auto import config_class

    cfg = config_class(hf_config.model_type).from_dict(hf_config.to_dict())
    return {k: getattr(cfg, k) for k in SHAPES["tiny"]}


def _tokenize_fns(tok_dir, hf_tok, texts, max_length):
    fns = {
        "hf-fast": lambda: hf_tok(
            texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
    }
    par = {"hf-fast": 0.0}
    try:
        from fastbert.tokenizer import BertTokenizer

        fb = BertTokenizer.from_pretrained(tok_dir)
    except Exception:
        return fns, par
    call = lambda: fb(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    a, b = call()["input_ids"], fns["hf-fast"]()["input_ids"]
    par["fastbert"] = float((a - b).abs().max()) if a.shape == b.shape else float("inf")
    return {"fastbert": call, **fns}, par


# ------------------------------------------------------------------------------------------------ output
def _fmt(x, spec):
    return "-" if x is None else format(x, spec)


def markdown(result: dict) -> str:
    meta = result["meta"]
    lines = [
        f"# fastbert bench: {meta['model']} ({meta['preset']}, {meta['dtype']}, {meta['device']})",
        "",
        f"{meta['date']}; {meta.get('gpu') or meta['cpu']}, {meta['cpu_count']} CPUs, torch {meta['torch']} "
        f"({meta['torch_threads']} threads), transformers {meta.get('transformers', '?')}; timing: "
        f"{meta['timing']}; 1-minute load average at start {meta.get('loadavg_1m') or 0:.1f}. "
        f"Speedup = median over rounds of {meta['baseline']} time / provider time. "
        "Parity = max abs error vs transformers eager in fp32 (hidden states; gradients for train; ids for "
        "tokenize).",
    ]
    if "cpu_flags" in meta:
        lines += ["", f"CPU instruction sets: {' '.join(meta['cpu_flags'])}; torch CPU capability "
                      f"{meta['torch_capability']}; fastbert attention kernel build {meta['kernel_build']}"
                      + (f"; caps {meta['caps']}" if meta["caps"] else "") + "."]
    lines += [
        "",
        "| case | provider | median ms | IQR | tokens/s | speedup | parity | note |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['case']} | {r['provider']} | {r['median_ms']:.2f} | ±{r['spread'] * 50:.1f}% | "
            f"{r['tokens_per_s']:,.0f} | {_fmt(r['speedup'], '.2f')}{'x' if r['speedup'] else ''} | "
            f"{_fmt(r['parity'], '.1e')} | {r['note']} |"
        )
    return "\n".join(lines) + "\n"


def rich_table(result: dict):
    from rich.table import Table

    t = Table(title=f"fastbert bench: {result['meta']['model']}", show_lines=False)
    for col, just in (
        ("case", "left"),
        ("provider", "left"),
        ("median ms", "right"),
        ("IQR", "right"),
        ("tokens/s", "right"),
        ("speedup", "right"),
        ("parity", "right"),
        ("note", "left"),
    ):
        t.add_column(col, justify=just)
    last = None
    for r in result["rows"]:
        sp = r["speedup"]
        style = "bold green" if r["provider"] == "fastbert" else None
        t.add_row(
            r["case"] if r["case"] != last else "",
            r["provider"],
            f"{r['median_ms']:.2f}",
            f"±{r['spread'] * 50:.1f}%",
            f"{r['tokens_per_s']:,.0f}",
            f"{sp:.2f}x" if sp else "-",
            _fmt(r["parity"], ".1e"),
            r["note"],
            style=style,
        )
        last = r["case"]
    return t


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    cases = list(dict.fromkeys(r["case"] for r in rows))
    providers = list(dict.fromkeys(r["provider"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.5 * len(cases) + 2.5))
    width = 0.8 / max(1, len(providers))
    for k, p in enumerate(providers):
        ys, tps, sps = [], [], []
        for i, c in enumerate(cases):
            r = next((r for r in rows if r["case"] == c and r["provider"] == p), None)
            if r is not None:
                ys.append(i + k * width)
                tps.append(r["tokens_per_s"])
                sps.append(r["speedup"] or 1.0)  # the case's baseline is 1.0
        axes[0].barh(ys, tps, height=width, label=p)
        axes[1].barh(ys, sps, height=width, label=p)
    for ax, title in ((axes[0], "real tokens / s"), (axes[1], f"speedup vs {result['meta']['baseline']}")):
        ax.set_yticks([i + 0.4 - width / 2 for i in range(len(cases))], cases)
        ax.invert_yaxis()
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_xscale("log")
    axes[1].axvline(1.0, color="k", lw=0.8)
    axes[1].set_yticklabels([])
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(
        f"fastbert bench: {result['meta']['model']} ({result['meta']['device']}, {result['meta']['dtype']})"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(result: dict, out: Path, plots: bool = True) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "bench.json", out / "bench.md"]
    paths[0].write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(result), encoding="utf-8")
    if plots:
        paths.append(out / "bench.png")
        plot(result, paths[-1])
    return paths


# ------------------------------------------------------------------------------------------------ CLI
def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


def _strs(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def add_arguments(parser) -> None:
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="quick",
        help="a set of cases (default quick: the 1-2 minute demo on the bundled MiniLM)",
    )
    parser.add_argument(
        "--model", default=None, help=f"checkpoint dir or a shape with random weights: {', '.join(SHAPES)}"
    )
    parser.add_argument(
        "--family", default="bert", help=f"model_type of a random-weight shape: {', '.join(FAMILY_SHAPES)} "
        "(a checkpoint dir's config.json names its own)"
    )
    parser.add_argument("--modes", type=_strs, default=None, help=f"comma list of {', '.join(MODES)}")
    parser.add_argument("--batch-sizes", type=_ints, default=None, help="comma list, e.g. 1,8,32")
    parser.add_argument("--seq-lens", type=_ints, default=None, help="comma list, e.g. 128,512")
    parser.add_argument("--dists", type=_strs, default=None, help=f"comma list of {', '.join(DISTS)}")
    parser.add_argument(
        "--providers",
        type=_strs,
        default=None,
        help=f"comma list of fastbert, hf-sdpa, hf-eager, {GRAPHS} (default: the preset's)",
    )
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of transformers sdpa")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument(
        "--dtype", choices=["fp32", "fp16", "bf16"], default="fp32", help="CUDA only for fp16/bf16"
    )
    parser.add_argument("--reps", type=int, default=None, help="timed rounds per case")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds per case before stopping rounds early"
    )
    parser.add_argument(
        "--cuda-graphs",
        action="store_true",
        help=f"add the {GRAPHS} provider: fastbert's inference through CUDA graphs captured per batch and "
        "token-count bucket (fastbert.cuda_graphs; on CPU the same bucketed forward, without capture)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default="bench-results", help="output dir for bench.json/.md/.png ('' = none)"
    )
    parser.add_argument("--no-plots", action="store_true")


def options_from_args(args) -> Options:
    preset = dict(PRESETS[args.preset])
    opts = Options(preset=args.preset, **{k: v for k, v in preset.items() if k != "cases"})
    cases = list(preset["cases"])
    if args.modes or args.batch_sizes or args.seq_lens or args.dists:
        cases = [
            Case(m, b, s, d)
            for m in (args.modes or ["infer"])
            for b in (args.batch_sizes or [8, 32])
            for s in (args.seq_lens or [128])
            for d in (args.dists or ["full", "real"])
            if not (m == "tokenize" and d != "real")
        ]
        for m in args.modes or []:
            if m not in MODES:
                raise SystemExit(f"fastbert bench: unknown mode {m!r}")
    opts.cases = cases
    if args.model:
        opts.model = args.model
    opts.family = args.family
    if args.providers:
        opts.providers = list(args.providers)
    if args.compile and "hf-sdpa-compile" not in opts.providers:
        opts.providers.append("hf-sdpa-compile")
    opts.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    opts.dtype = args.dtype
    for name in ("reps", "warmup"):
        if getattr(args, name) is not None:
            setattr(opts, name, getattr(args, name))
    if args.budget is not None:
        opts.budget_s = args.budget
    opts.cuda_graphs = args.cuda_graphs
    if opts.cuda_graphs and GRAPHS not in opts.providers:
        opts.providers = [*opts.providers, GRAPHS]
    opts.seed = args.seed
    opts.out = args.out or None
    opts.plots = not args.no_plots
    return opts


def run(args) -> int:
    from rich.console import Console

    opts = options_from_args(args)
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(
        f"[bold]fastbert bench[/] {opts.preset}: {opts.model or 'all-MiniLM-L6-v2 (bundled)'} on "
        f"{opts.device} ({opts.dtype}), {len(opts.cases)} cases, providers {', '.join(opts.providers)}"
    )
    progress = CaseProgress(opts, console)
    with progress.p:
        result = benchmark(opts, progress)
    console.print(rich_table(result))
    fb = [r for r in result["rows"] if r["provider"] == "fastbert" and r["speedup"]]
    if fb:
        worst = max((r["parity"] for r in fb if r["parity"] is not None), default=float("nan"))
        console.print(
            f"fastbert vs {BASELINE}: speedup {min(r['speedup'] for r in fb):.2f}x to "
            f"{max(r['speedup'] for r in fb):.2f}x; max abs error vs transformers fp32 {worst:.1e}"
        )
    if opts.out:
        paths = write_outputs(result, Path(opts.out), opts.plots)
        console.print("wrote " + ", ".join(str(p) for p in paths))
    return 0


class CaseProgress:
    """A rich progress bar advancing one step per timing round; a case that stops early on its time budget
    jumps to its end."""

    def __init__(self, opts: Options, console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.p = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not sys.stdout.isatty(),
        )
        self.reps = opts.reps
        self.task = self.p.add_task("loading models", total=len(opts.cases) * opts.reps)
        self.base = 0

    def start_case(self, case: Case):
        self.p.update(self.task, description=case.name, completed=self.base)

    def advance(self, r: int, n: int):
        self.p.update(self.task, completed=self.base + r)

    def end_case(self, case: Case, rows):
        self.base += self.reps
        self.p.update(self.task, completed=self.base)
