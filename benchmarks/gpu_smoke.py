"""The smoke test and the parallel Triton warm-up of ``benchmarks/gpu_run.py``.

    python benchmarks/gpu_smoke.py smoke --plan PLAN.json --json OUT.json
    python benchmarks/gpu_smoke.py warm --plan PLAN.json --json OUT.json

``smoke``: each check runs on its own (an exception fails that check, not the others):

- every Triton kernel at one realistic shape per dtype, forward and backward, against its ``*_ref``: the
  LayerNorm with residual and bias (and dropout, in fp32), bias + GELU, varlen attention (and dropout, in
  fp32), the dropout mask; fp32 within a few ulp, fp16 and bf16 by the 2x rule;
- the whole model in fp16 and bf16 against transformers in fp32, on real text padded on the right and on the
  left (the pooler then reads a query-only row): last hidden state at real tokens and pooler output, by the 2x
  rule against transformers' own eager model run in the same dtype;
- CUDA graphs (``fastbert.cuda_graphs``) over calls whose shapes vary (host and device inputs, token types, no
  mask, a bucket used again after others were captured into the shared pool): the 2x rule, plus one graph per
  bucket.

FlashAttention's 2x rule: the low-precision result's max error against an fp32 reference is at most twice the
error of the reference implementation run in the same low precision against fp32, plus one unit in the last
place of that dtype at the largest reference value (the output format's own resolution: a reference that
happens to round well must not make the bound finer than the format can express).

``warm``: every check above and one forward of every case of the later steps (the inference table with its CUDA
graph buckets, the training step), run once each by a pool of processes, one task per case. Triton compiles
each kernel variant the first time a process launches it and keeps it in its on-disk cache, so the later steps
find everything compiled; the pool does that compiling in parallel on every core. Running the workloads, not
compiling ``fastbert kernels``' config list ahead of time: a launch's cache key holds, besides the config, how
each integer argument specialises (divisible by 16, equal to 1: token counts, longest sequence), which only the
real shapes decide; an ahead-of-time compile under another key would not be found.

The plan (device, shapes, dtypes, models) comes from ``gpu_run.py``. In its rehearsal the device is the CPU,
shapes are tiny and the kernels run under ``TRITON_INTERPRET=1``, which the caller sets before Python starts.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


def _dtype(name: str):
    import torch

    return getattr(torch, DTYPES[name])


# ------------------------------------------------------------------------------------------------ the rules
def max_err(a, b) -> float:
    return float((a.detach().float() - b.detach().float()).abs().max()) if a.numel() else 0.0


def ulp(value: float, dtype: str) -> float:
    """The spacing of ``dtype`` numbers at ``value``'s magnitude (fp16: 10 mantissa bits, bf16: 7)."""
    bits = {"fp16": 10, "bf16": 7, "fp32": 23}[dtype]
    return 2.0 ** (math.floor(math.log2(value)) - bits) if value > 0 else 0.0


def two_x(got, ref32, low, dtype: str) -> dict:
    """FlashAttention's 2x rule for ``got`` (``dtype``) against ``ref32``, ``low`` the reference implementation
    in the same ``dtype``; plus one ``dtype`` ulp at the largest reference value, the resolution of the output
    format (a reference that happens to round well must not make the bound smaller than that)."""
    err, base = max_err(got, ref32), max_err(low, ref32)
    bound = 2 * base + ulp(float(ref32.detach().float().abs().max()) if ref32.numel() else 0.0, dtype)
    return {"err": err, "ref_err": base, "bound": bound, "ok": math.isfinite(err) and err <= bound}


def close(got, want, rtol: float, atol: float) -> dict:
    err = max_err(got, want)
    bound = atol + rtol * (float(want.detach().float().abs().max()) if want.numel() else 0.0)
    return {"err": err, "bound": bound, "ok": math.isfinite(err) and err <= bound}


def compare(dtype: str, got, ref32, low, rtol=1e-5, atol=1e-5) -> dict:
    """fp32: ``close``; fp16/bf16: the 2x rule."""
    return close(got, ref32, rtol, atol) if dtype == "fp32" else two_x(got, ref32, low, dtype)


# ------------------------------------------------------------------------------------------------ kernels
def _leaf(t, device, dtype):
    return t.to(device=device, dtype=dtype).requires_grad_()


def _grads(out, inputs, dout):
    import torch

    return torch.autograd.grad(out, inputs, dout)


def check_layer_norm(plan: dict, dtype: str, dropout: float = 0.0) -> dict:
    import torch

    from fastbert.kernels.layer_norm import layer_norm, layer_norm_ref

    dev, dt = plan["device"], _dtype(dtype)
    m, n = plan["smoke"]["layer_norm"]
    g = torch.Generator().manual_seed(0)
    x, res = (_leaf(torch.randn(m, n, generator=g), dev, dt) for _ in range(2))
    w = _leaf(1 + 0.5 * torch.randn(n, generator=g), dev, dt)
    b, xb = (_leaf(torch.randn(n, generator=g), dev, dt) for _ in range(2))
    dy = torch.randn(m, n, generator=g).to(dev, dt)
    kw = dict(dropout_p=dropout, seed=3) if dropout else {}

    def run(fn, inputs, grad_out, **extra):
        y = fn(inputs[0], inputs[2], inputs[3], 1e-12, residual=inputs[1], x_bias=inputs[4], **kw, **extra)
        return (y, *_grads(y, inputs, grad_out))

    inputs = (x, res, w, b, xb)
    got = run(layer_norm, inputs, dy)
    ref = run(layer_norm_ref, tuple(t.detach().float().requires_grad_() for t in inputs), dy.float())
    low = run(layer_norm_ref, inputs, dy, upcast=False)
    names = ("y", "dx", "dresidual", "dw", "db", "dx_bias")
    return {k: compare(dtype, a, r, lo, rtol=1e-4 if k != "y" else 1e-5) for k, a, r, lo in zip(names, got, ref, low)}


def check_gelu(plan: dict, dtype: str) -> dict:
    import torch

    from fastbert.kernels.gelu import bias_gelu, bias_gelu_ref

    dev, dt = plan["device"], _dtype(dtype)
    m, n = plan["smoke"]["gelu"]
    g = torch.Generator().manual_seed(1)
    x = _leaf(3 * torch.randn(m, n, generator=g), dev, dt)
    bias = _leaf(torch.randn(n, generator=g), dev, dt)
    dy = torch.randn(m, n, generator=g).to(dev, dt)

    def run(fn, x, bias, dy, **extra):
        y = fn(x, bias, "none", **extra)
        return (y, *_grads(y, (x, bias), dy))

    got = run(bias_gelu, x, bias, dy)
    ref = run(bias_gelu_ref, x.detach().float().requires_grad_(), bias.detach().float().requires_grad_(), dy.float())
    low = run(bias_gelu_ref, x, bias, dy, upcast=False)
    return {k: compare(dtype, a, r, lo, rtol=1e-4, atol=1e-4 if k != "y" else 1e-6)
            for k, a, r, lo in zip(("y", "dx", "dbias"), got, ref, low)}


def check_attention(plan: dict, dtype: str, dropout: float = 0.0) -> dict:
    import torch

    from fastbert.kernels.attention import attention, attention_ref

    dev, dt = plan["device"], _dtype(dtype)
    spec = plan["smoke"]["attention"]
    lens, heads, hd = spec["lens"], spec["heads"], spec["head_dim"]
    cu = torch.tensor([0] + torch.tensor(lens).cumsum(0).tolist(), dtype=torch.int32, device=dev)
    total = int(sum(lens))
    g = torch.Generator().manual_seed(2)
    qkv = _leaf(torch.randn(total, 3, heads, hd, generator=g), dev, dt)
    do = torch.randn(total, heads, hd, generator=g).to(dev, dt)
    kw = dict(dropout_p=dropout, seed=7) if dropout else {}

    def run(fn, qkv, do, **extra):
        q, k, v = qkv.unbind(1)  # strided views of one packed projection, as the model passes them
        out = fn(q, k, v, cu, max(lens), **kw, **extra)
        return (out, *_grads(out, (qkv,), do))

    got = run(attention, qkv, do)
    ref = run(attention_ref, qkv.detach().float().requires_grad_(), do.float())
    low = run(attention_ref, qkv, do, upcast=False)
    return {k: compare(dtype, a, r, lo, rtol=1e-4, atol=1e-5) for k, a, r, lo in zip(("out", "dqkv"), got, ref, low)}


def check_dropout_mask(plan: dict) -> dict:
    from fastbert.kernels.dropout import dropout_mask

    n, p = plan["smoke"]["mask_numel"], 0.1
    a = dropout_mask((n,), p, 5, device=plan["device"])
    b = dropout_mask((n,), p, 5, device=plan["device"])
    c = dropout_mask((n,), p, 6, device=plan["device"])
    keep = float(a.float().mean())
    sigma = math.sqrt(p * (1 - p) / n)
    return {"keep_fraction": {"value": keep, "expected": 1 - p, "ok": abs(keep - (1 - p)) < 6 * sigma},
            "same_seed_same_mask": {"ok": bool((a == b).all())},
            "other_seed_other_mask": {"ok": bool((a != c).any())}}


# ------------------------------------------------------------------------------------------------ models
_CACHE: dict = {}


def _texts_and_tokenizer():
    """The bench's real texts and the default checkpoint's tokenizer (None where no checkpoint is at hand:
    ``encode`` then draws random ids)."""
    if "texts" not in _CACHE:
        from fastbert.bench import load_hf_tokenizer, load_texts

        _CACHE["texts"] = load_texts()
        try:
            _CACHE["tokenizer"] = load_hf_tokenizer(None)[0]
        except FileNotFoundError as e:
            print(f"no tokenizer ({e}): random ids instead of real text", flush=True)
            _CACHE["tokenizer"] = None
    return _CACHE["texts"], _CACHE["tokenizer"]


def model_spec(name: str) -> str:
    """A smoke model: ``"minilm"`` (the checkpoint ``FASTBERT_MODEL_DIR`` or the bundled package points at, real
    weights) or a shape of ``fastbert bench`` (random weights)."""
    if name == "minilm":
        from fastbert.resources import default_model

        return default_model()
    return name


def hf_reference(name: str, device: str, overrides: dict | None = None):
    """transformers' eager ``BertModel`` in fp32, dropout off, on ``device`` (random weights: ``overrides``
    of the config, e.g. a shorter ``max_position_embeddings`` for the rehearsal)."""
    overrides = overrides or {}
    import torch
    import transformers

    from fastbert.bench import SHAPES

    key = ("hf", name, device, tuple(sorted(overrides.items())))
    if key not in _CACHE:
        kw = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **overrides)
        spec = model_spec(name)
        if spec in SHAPES:
            torch.manual_seed(0)
            cfg = transformers.BertConfig(**SHAPES[spec], **kw)
            ref = transformers.BertModel._from_config(cfg, attn_implementation="eager")
        else:
            ref = transformers.BertModel.from_pretrained(spec, attn_implementation="eager", **kw)
        _CACHE[key] = ref.float().eval().to(device)
    return _CACHE[key]


def encode(texts, n: int, seqlen: int, side: str = "right", offset: int = 0):
    """``n`` real texts tokenized, truncated to ``seqlen`` and padded on ``side``: ``(ids, mask)``."""
    tok = _texts_and_tokenizer()[1]
    if tok is None:
        import torch

        g = torch.Generator().manual_seed(offset)
        lengths = torch.randint(max(1, seqlen // 4), seqlen + 1, (n, 1), generator=g)
        mask = (torch.arange(seqlen)[None, :] < lengths).long()
        mask = mask.flip(1) if side == "left" else mask
        return torch.randint(1000, 30000, (n, seqlen), generator=g) * mask, mask
    tok.padding_side = side
    pick = [texts[(offset + 37 * i) % len(texts)] for i in range(n)]
    enc = tok(pick, padding=True, truncation=True, max_length=seqlen, return_tensors="pt")
    tok.padding_side = "right"
    return enc["input_ids"], enc["attention_mask"]


def _outputs(model, ids, mask, types=None):
    import torch

    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=types)
    return out.last_hidden_state.float(), out.pooler_output.float()


def check_model(plan: dict, name: str, dtype: str) -> dict:
    """The whole model in ``dtype`` against transformers in fp32, right- and left-padded real text."""
    import torch

    import fastbert

    dev, dt = plan["device"], _dtype(dtype)
    ref = hf_reference(name, dev, plan["smoke"].get("config"))
    low = copy.deepcopy(ref).to(dt)
    fb = fastbert.from_transformers(ref).to(dt).eval()
    texts = _texts_and_tokenizer()[0]
    batch, seqlen = plan["smoke"]["batch"], plan["smoke"]["seqlen"]
    result = {}
    for side in ("right", "left"):
        ids, mask = (t.to(dev) for t in encode(texts, batch, seqlen, side))
        real = mask.bool()
        r_h, r_p = _outputs(ref, ids, mask)
        l_h, l_p = _outputs(low, ids, mask)
        with fastbert.force_backend("triton"):  # on CUDA what "auto" picks; on CPU the interpreter
            f_h, f_p = _outputs(fb, ids, mask)
        result[f"{side}-padded hidden"] = two_x(f_h[real], r_h[real], l_h[real], dtype)
        result[f"{side}-padded pooler"] = two_x(f_p, r_p, l_p, dtype)
    del low, fb
    if dev == "cuda":
        torch.cuda.empty_cache()
    return result


def graph_calls(plan: dict):
    """The calls of the CUDA-graph check: ``(label, ids, mask, token types, where the inputs live,
    num_tokens)``; shapes vary, one bucket comes back after others were captured."""
    import torch

    texts = _texts_and_tokenizer()[0]
    s = plan["smoke"]
    b, n = s["batch"], s["seqlen"]
    first = encode(texts, b, n)
    full_b = s["graph_full_batch"]
    g = torch.Generator().manual_seed(3)
    full_ids = torch.randint(1000, 30000, (full_b, n), generator=g)
    types = torch.randint(0, 2, (full_b, n), generator=g)
    left = encode(texts, 3, n // 2, "left", offset=5)
    long = encode(texts, 5, s["long_seqlen"], offset=11)
    return [
        (f"{b} texts right-padded, host inputs", *first, None, "host", None),
        (f"{b} texts in reverse order, same bucket", first[0].flip(0), first[1].flip(0), None, "host", None),
        ("3 texts left-padded, device inputs + num_tokens", *left, None, "device", int(left[1].sum())),
        ("1 x 7, no mask, device", full_ids[:1, :7], None, None, "device", None),
        (f"{full_b} x {n} full with token types, device", full_ids, torch.ones_like(full_ids), types, "device",
         None),
        (f"5 texts up to {s['long_seqlen']}, host", *long, None, "host", None),
        (f"{b} texts right-padded again, after the others", *first, None, "host", None),
    ]


def check_graphs(plan: dict, name: str, dtype: str) -> dict:
    """``CudaGraphRunner`` on calls of varying shapes: 2x rule against transformers fp32 (at real tokens, and
    the pooler), agreement with the eager forward, and one capture per bucket (on CUDA)."""
    import torch

    import fastbert
    from fastbert.cuda_graphs import CudaGraphRunner

    dev, dt = plan["device"], _dtype(dtype)
    ref = hf_reference(name, dev, plan["smoke"].get("config"))
    low = copy.deepcopy(ref).to(dt)
    fb = fastbert.from_transformers(ref).to(dt).eval().requires_grad_(False)
    backend = plan["smoke"].get("graph_backend", "triton")  # CPU only: which ops the bucketed forward runs
    runner = CudaGraphRunner(fb, enabled=True, cpu_backend=backend)
    result = {}
    for label, ids, mask, types, where, num_tokens in graph_calls(plan):
        on_dev = [t.to(dev) if t is not None else None for t in (ids, mask, types)]
        given = on_dev if where == "device" else [ids, mask, types]
        out = runner(given[0], given[1], given[2], num_tokens=num_tokens)
        g_h, g_p = out.last_hidden_state.float(), out.pooler_output.float()
        r_h, r_p = _outputs(ref, *on_dev)
        l_h, l_p = _outputs(low, *on_dev)
        with fastbert.force_backend(backend):
            e_h, _ = _outputs(fb, *on_dev)
        real = on_dev[1].bool() if on_dev[1] is not None else torch.ones(ids.shape, dtype=torch.bool, device=dev)
        rule = two_x(g_h[real], r_h[real], l_h[real], dtype)
        pool = two_x(g_p, r_p, l_p, dtype)
        agree = {"err": max_err(g_h, e_h), "bound": rule["bound"]}
        agree["ok"] = g_h.shape == e_h.shape and agree["err"] <= agree["bound"]
        result[label] = {"ok": rule["ok"] and pool["ok"] and agree["ok"], "hidden": rule, "pooler": pool,
                         "vs eager": agree}
    stats = runner.stats()
    reused = max(stats["buckets"].values()) >= 3  # the first bucket: calls 1, 2 and 7
    captures_ok = stats["captures"] == len(stats["buckets"]) if dev == "cuda" else stats["captures"] == 0
    result["buckets"] = {"ok": reused and captures_ok, **stats}
    del low, fb, runner
    if dev == "cuda":
        torch.cuda.empty_cache()
    return result


# ------------------------------------------------------------------------------------------------ the list
def smoke_checks(plan: dict) -> list[tuple[str, str, dict]]:
    """``(name, function name, keyword arguments)`` of every smoke check, in the order they run."""
    s = plan["smoke"]
    out = []
    for dt in s["kernel_dtypes"]:
        out += [(f"layer_norm {dt}", "check_layer_norm", {"dtype": dt}),
                (f"bias_gelu {dt}", "check_gelu", {"dtype": dt}),
                (f"attention {dt}", "check_attention", {"dtype": dt})]
    if "fp32" in s["kernel_dtypes"]:
        out += [("layer_norm fp32 dropout", "check_layer_norm", {"dtype": "fp32", "dropout": 0.1}),
                ("attention fp32 dropout", "check_attention", {"dtype": "fp32", "dropout": 0.1})]
    out.append(("dropout mask", "check_dropout_mask", {}))
    for m in s["models"]:
        for dt in s["model_dtypes"]:
            out.append((f"model {m} {dt}", "check_model", {"name": m, "dtype": dt}))
    for dt in s["graph_dtypes"]:
        out.append((f"cuda graphs {s['models'][0]} {dt}", "check_graphs", {"name": s["models"][0], "dtype": dt}))
    return out


def _all_ok(result) -> bool:
    if isinstance(result, dict):
        if "ok" in result and not isinstance(result["ok"], dict) and not result["ok"]:
            return False
        return all(_all_ok(v) for v in result.values() if isinstance(v, dict))
    return True


def run_check(plan: dict, name: str, fn: str, kwargs: dict) -> dict:
    t0 = time.perf_counter()
    try:
        result = globals()[fn](plan, **kwargs)
        return {"name": name, "ok": _all_ok(result), "seconds": time.perf_counter() - t0, "result": result}
    except Exception as e:  # one failing check must not hide the others
        return {"name": name, "ok": False, "seconds": time.perf_counter() - t0,
                "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}


def _worst(result) -> str:
    """The check's tightest margin, as ``err / bound`` of its worst entry."""
    worst = None
    stack = [result]
    while stack:
        r = stack.pop()
        if isinstance(r, dict):
            if "err" in r and "bound" in r and r["bound"]:
                ratio = r["err"] / r["bound"]
                worst = ratio if worst is None or ratio > worst else worst
            stack.extend(v for v in r.values() if isinstance(v, dict))
    return "-" if worst is None else f"{worst:.2f}"


def _cuda_broken(device: str) -> bool:
    """Whether the CUDA context is gone (an illegal access or a device-side assert is sticky: every later CUDA
    call of this process fails too)."""
    import torch

    if device != "cuda":
        return False
    try:
        torch.cuda.synchronize()
        return float(torch.ones(1, device="cuda").sum()) != 1.0
    except Exception:
        return True


def smoke(plan: dict, out: Path | None, plan_path: Path | None = None, start: int = 0) -> int:
    import torch

    if plan["device"] == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 references are exact fp32
    rows = []
    if start == 0:
        print(f"{'check':44} {'ok':4} {'err/bound':>9} {'s':>6}")
    checks = smoke_checks(plan)
    for i in range(start, len(checks)):
        name, fn, kwargs = checks[i]
        r = run_check(plan, name, fn, kwargs)
        rows.append(r)
        print(f"{name:44} {'ok' if r['ok'] else 'FAIL':4} {_worst(r.get('result')):>9} {r['seconds']:6.1f}", flush=True)
        if not r["ok"]:
            print(r.get("error") or json.dumps(r["result"], indent=1, default=str)[-3000:], flush=True)
            if "traceback" in r:
                print(r["traceback"], flush=True)
            if i + 1 < len(checks) and plan_path and _cuda_broken(plan["device"]):
                # this process can no longer use the GPU: the checks after this one in a fresh process
                print(f"the CUDA context is broken after {name!r}: the rest in a new process", flush=True)
                rest = (out or Path(plan_path)).with_suffix(f".from{i + 1}.json")
                subprocess.run([sys.executable, __file__, "smoke", "--plan", str(plan_path), "--json", str(rest),
                                "--start", str(i + 1)])
                rows += (json.loads(rest.read_text())["checks"] if rest.exists() else
                         [{"name": n, "ok": False, "seconds": 0.0, "error": "not run: the resumed process failed"}
                          for n, _, _ in checks[i + 1:]])
                break
    passed = sum(r["ok"] for r in rows)
    print(f"\nsmoke: {passed}/{len(rows)} checks passed")
    if out:
        out.write_text(json.dumps({"checks": rows, "passed": passed, "total": len(rows)}, indent=1, default=str))
    return 0 if passed == len(rows) else 1


# ------------------------------------------------------------------------------------------------ warm-up
def warm_bench_case(plan: dict, dtype: str, batch: int, seqlen: int, dist: str) -> dict:
    """One inference case of the table: the eager forward, and the CUDA-graph call (captures its bucket)."""
    import torch

    import fastbert
    from fastbert.bench import SHAPES, Case, load_hf_tokenizer, load_texts, make_batch
    from fastbert.cuda_graphs import CudaGraphRunner

    bench = plan["bench"]
    dev, dt = plan["device"], _dtype(dtype)
    key = ("bench-model", dtype)
    if key not in _CACHE:
        cfg = fastbert.BertConfig(**SHAPES[bench["model"]], hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        with torch.device(dev):
            model = fastbert.BertModel(cfg)
        _CACHE[key] = model.to(dt).eval().requires_grad_(False)
    model = _CACHE[key]
    tokenizer = load_hf_tokenizer(None)[0]
    ids, mask, _ = make_batch(Case("infer", batch, seqlen, dist), model.config.vocab_size, tokenizer, load_texts(),
                              bench.get("seed", 0))
    tokens = int(mask.sum())
    ids, mask = ids.to(dev), mask.to(dev)
    with torch.inference_mode():
        model(ids, attention_mask=mask)
    if bench.get("cuda_graphs"):
        CudaGraphRunner(model, enabled=True)(ids, mask, num_tokens=tokens)
    return {}


def warm_train(plan: dict) -> dict:
    """The training step's fastbert provider, one step on each of its batches."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_training", ROOT / "benchmarks" / "bench_training.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    t = plan["train"]
    args = argparse.Namespace(config=t["config"], head=t.get("head", "BertForPreTraining"), batch=t["batch"],
                              seq=t["seq"], device=plan["device"], amp=t["amp"])
    stepper = mod.Stepper("fastbert", args)
    for batch in mod.make_batches(args, 4):
        stepper.step(batch)
    return {}


def warm_tasks(plan: dict) -> list[tuple[str, str, dict]]:
    """Every warm-up task, heaviest first."""
    bench = plan["bench"]
    tasks = [(f"bench {dt} {b}x{s} {d}", "warm_bench_case", {"dtype": dt, "batch": b, "seqlen": s, "dist": d})
             for dt in bench["dtypes"] for b in sorted(bench["batch_sizes"], reverse=True)
             for s in sorted(bench["seq_lens"], reverse=True) for d in bench["dists"]]
    tasks.insert(min(2, len(tasks)), ("train", "warm_train", {}))
    only = plan.get("warm_checks")  # None: every smoke check
    checks = [c for c in smoke_checks(plan) if only is None or c[0] in only]
    heavy = [c for c in checks if c[1] in ("check_model", "check_graphs")]
    return heavy + tasks + [c for c in checks if c not in heavy]


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _warm_one(plan: dict, name: str, fn: str, kwargs: dict) -> dict:
    r = run_check(plan, name, fn, kwargs)
    r.pop("result", None)  # a warm-up only compiles; its checks count in the smoke step
    r["ok"] = "error" not in r
    return r


def warm(plan: dict, out: Path | None, jobs: int) -> int:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    tasks = warm_tasks(plan)
    jobs = max(1, min(jobs, len(tasks)))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    print(f"warm-up: {len(tasks)} tasks on {jobs} processes", flush=True)
    t0 = time.perf_counter()
    rows = []
    ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init, initargs=(threads,)) as pool:
        futures = {pool.submit(_warm_one, plan, *task): task[0] for task in tasks}
        for fut in as_completed(futures):
            try:
                r = fut.result()
            except Exception as e:  # a worker that died takes its task with it
                r = {"name": futures[fut], "ok": False, "error": f"{type(e).__name__}: {e}"}
            rows.append(r)
            print(f"  {'ok  ' if r['ok'] else 'FAIL'} {r['name']:40} {r.get('seconds', 0):6.1f} s"
                  + (f"  {r['error']}" if not r["ok"] else ""), flush=True)
    failed = [r for r in rows if not r["ok"]]
    wall = time.perf_counter() - t0
    print(f"\nwarm-up: {len(rows) - len(failed)}/{len(rows)} tasks ok in {wall:.1f} s")
    if out:
        out.write_text(json.dumps({"tasks": rows, "jobs": jobs, "seconds": wall}, indent=1, default=str))
    return 0 if not failed else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("smoke", "warm"))
    ap.add_argument("--plan", type=Path, required=True, help="the plan gpu_run.py writes")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--jobs", type=int, default=None, help="warm: processes (default: the plan's)")
    ap.add_argument("--start", type=int, default=0, help="smoke: begin at this check (a resumed run)")
    args = ap.parse_args(argv)
    plan = json.loads(args.plan.read_text())
    if args.command == "smoke":
        return smoke(plan, args.json, args.plan, args.start)
    return warm(plan, args.json, args.jobs or plan["jobs"])


if __name__ == "__main__":
    sys.exit(main())
