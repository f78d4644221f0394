"""``fastbert doctor``: what this machine is, which CPU paths fastbert takes on it, and why.

Prints the CPU (model, instruction-set flags, torch's view of them, any caps set in the environment), the builds
of the C++ attention kernel and the one in use, the switches, the calibration cache; then runs a few inference
batches of a model (the bundled MiniLM, ``--model DIR``, or a random-weight bert-base shape with
``--shape bert-base``) so that every shape class those batches meet is decided, and prints each decision with
its reason and the measured times.
"""

from __future__ import annotations

import argparse
import os

import torch

from fastbert import dispatch, ops

SWITCHES = ("FASTBERT_CALIBRATE", "FASTBERT_CPU_ATTENTION", "FASTBERT_CPU_LINEAR", "FASTBERT_CPU_GELU",
            "FASTBERT_ONEDNN", "FASTBERT_CPU_ISA", "FASTBERT_CACHE_DIR", "OMP_NUM_THREADS")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="checkpoint directory (default: the bundled MiniLM)")
    p.add_argument("--shape", choices=["bert-base"], default=None,
                   help="a random-weight model of this shape instead of a checkpoint")
    p.add_argument("--fresh", action="store_true", help="ignore the cached decisions: measure again now")


def _model(args):
    from fastbert import BertConfig, BertModel

    if args.shape == "bert-base":
        torch.manual_seed(0)
        return BertModel(BertConfig(vocab_size=30522), add_pooling_layer=True), "random bert-base shape"
    path = args.model
    if path is None:
        from fastbert.resources import default_model

        path = default_model()
    return BertModel.from_pretrained(path), path


def _batches(vocab: int):
    """Inference batches of the shape classes a user meets: short real-length texts packed ragged, a full
    8 x 128 batch, one long sequence."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(8, 60, (32,), generator=g)
    short = torch.randint(1000, vocab, (32, int(lengths.max())), generator=g)
    mask = (torch.arange(short.shape[1])[None, :] < lengths[:, None]).long()
    yield "32 texts of 8-60 tokens", short, mask
    full = torch.randint(1000, vocab, (8, 128), generator=g)
    yield "8 x 128, no padding", full, torch.ones_like(full)
    one = torch.randint(1000, vocab, (1, 384), generator=g)
    yield "1 x 384", one, torch.ones_like(one)


def run(args) -> int:
    info = dispatch.cpu_info()
    print(f"CPU          {info['model']} ({info['machine']}, {torch.get_num_threads()} threads)")
    print(f"ISA flags    {' '.join(info['flags']) or '(none of interest)'}")
    print(f"torch        {torch.__version__}, CPU capability {info['torch_capability']}, oneDNN "
          f"{'available' if info['onednn'] else 'missing'}")
    if info["caps"]:
        print(f"caps         {info['caps']}")
    kernels = ops._cpu_kernels()
    if kernels is None:
        print("C++ kernel   not built: CPU attention always takes torch's SDPA")
    else:
        builds = ", ".join(f"{name} ({'runs here' if runs else 'not on this CPU'})" for name, runs in kernels.builds())
        forced = os.environ.get("FASTBERT_CPU_ISA")
        why = "forced by FASTBERT_CPU_ISA" if forced else "the best build this CPU runs"
        print(f"C++ kernel   builds: {builds}; in use: {ops.cpu_isa()} ({why})")
    onednn = ops._onednn_usable()
    print(f"oneDNN GEMM  {'passes' if onednn else 'fails or is off for'} its self-check against F.linear; "
          f"kept weight layout {'usable' if ops._onednn_state.get('packed') else 'not usable'}")
    set_switches = {k: os.environ[k] for k in SWITCHES if k in os.environ}
    print(f"switches     {set_switches or 'none set'}")
    print(f"calibration  {'on' if dispatch.calibration_enabled() else 'off (table per ISA)'}; cache "
          f"{dispatch.cache_path()}")
    if args.fresh:
        path = dispatch.cache_path()
        if os.path.exists(path):
            os.remove(path)
    dispatch.reset()

    model, where = _model(args)
    model.requires_grad_(False).eval()
    print(f"\nmodel        {where}")
    vocab = model.config.vocab_size
    with torch.inference_mode():
        for label, ids, mask in _batches(vocab):
            ids = ids[:, : model.config.max_tokens]
            mask = mask[:, : ids.shape[1]]
            model(ids, attention_mask=mask)
            print(f"  ran {label}")

    print("\ndecisions (op [shape class] -> backend: reason; median ms per candidate)")
    for d in dispatch.decisions():
        times = ", ".join(f"{n} {t * 1e3:.3f}" for n, t in sorted(d.times.items(), key=lambda kv: kv[1]))
        print(f"  {d.op} [{d.shape_class}] -> {d.choice}: {d.reason}" + (f"; {times}" if times else ""))

    q = torch.randn(4, 2, 8, requires_grad=True)
    print("\nwhen a backend declines a call (examples)")
    print(f"  C++ attention, training call: {'; '.join(ops.cpu_attention_declines(q, q, q, 0.1))}")
    print(f"  C++ attention, fp64 call: {'; '.join(ops.cpu_attention_declines(*(q.detach().double(),) * 3))}")
    w = torch.randn(8, 8, requires_grad=True)
    with torch.no_grad():
        print(f"  oneDNN GEMM, trainable weight under no_grad: "
              f"{'; '.join(ops.linear_declines(torch.randn(4, 8), w)) or 'takes it'}")
    return 0
