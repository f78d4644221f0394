"""``fastbert encode`` vs sentence-transformers' ``encode`` on the same 1,000 real texts, side by side, and
against the CPU backends a sentence-transformers user would reach for instead (ONNX Runtime, OpenVINO).

Providers (``--providers``, default all that are installed):

- ``st``: sentence-transformers' ``encode`` (torch backend) on the bundled all-MiniLM-L6-v2;
- ``fastbert``: ``fastbert.SentenceEncoder.encode`` on the same checkpoint;
- ``st-onnx`` / ``st-openvino``: what sentence-transformers' ``backend="onnx"`` / ``"openvino"`` does, built here
  without optimum (whose pin would replace this environment's transformers): the checkpoint's transformer
  exported once to ONNX (``torch.onnx.export``), run by ONNX Runtime (all graph optimisations) or by OpenVINO
  (``openvino.convert_model`` of that file, CPU plugin), on sentence-transformers' own batches (its tokenizer,
  its length sort, padding to the longest of each batch, its maximum length), then its mean pooling.
  Needs ``pip install onnxruntime openvino onnx``.

Every provider embeds the same texts in fp32 with the same batch size; providers alternate in every round (in a
rotating order) and each figure is the median of per-round ratios against fastbert. The embeddings of every text
are checked against sentence-transformers' (the smallest cosine over all texts is printed per provider).

    python benchmarks/bench_encode.py [--rounds 5] [--batch-size 32] [--texts 1000] [--providers st,fastbert]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np


def _onnx_file(st, model_dir: str) -> str:
    """The checkpoint's transformer as ONNX (inputs ids / mask / token types, output the last hidden state),
    exported once into the temp folder."""
    import torch
    from transformers import AutoModel

    path = os.path.join(tempfile.gettempdir(), f"fastbert-bench-{abs(hash(model_dir)) % 10**8}.onnx")
    if os.path.exists(path):
        return path
    hf = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    batch = st.tokenizer(["an example text", "two"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "seq"} for n in names} | {"last_hidden_state": {0: "batch", 1: "seq"}}

    class Wrapped(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state

    with torch.no_grad():
        torch.onnx.export(Wrapped(hf), tuple(batch[n] for n in names), path, input_names=names,
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False)
    return path


class _STBatches:
    """sentence-transformers' encode loop around another runtime: its length sort, its tokenizer and maximum
    length, padding to each batch's longest text, mean pooling over the mask."""

    def __init__(self, st, run):
        self.st, self.run = st, run

    def encode(self, texts, batch_size):
        order = np.argsort([-len(t) for t in texts], kind="stable")  # sentence-transformers sorts by length
        dim = getattr(self.st, "get_embedding_dimension", None) or self.st.get_sentence_embedding_dimension
        out = np.empty((len(texts), dim()), dtype=np.float32)
        for s in range(0, len(texts), batch_size):
            idx = order[s : s + batch_size]
            enc = self.st.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                    max_length=self.st.max_seq_length, return_tensors="np")
            feed = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
            hidden = self.run(feed)
            mask = feed["attention_mask"][..., None].astype(np.float32)
            out[idx] = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        return out


def _ort(st, model_dir):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(_onnx_file(st, model_dir), opts, providers=["CPUExecutionProvider"])
    return _STBatches(st, lambda feed: sess.run(None, feed)[0])


def _openvino(st, model_dir):
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(ov.convert_model(_onnx_file(st, model_dir)), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})  # fp32, as every other provider
    return _STBatches(st, lambda feed: compiled(feed)[0])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--providers", default="st,fastbert,st-onnx,st-openvino")
    parser.add_argument("--out", default="", help="also write the summary to this file")
    args = parser.parse_args(argv)

    import torch
    from sentence_transformers import SentenceTransformer

    from fastbert import bench
    from fastbert.dispatch import cpu_info
    from fastbert.encoder import SentenceEncoder

    model_dir = bench.default_model()
    texts = bench.load_texts()[: args.texts]
    st = SentenceTransformer(model_dir, device="cpu")
    makers = {
        "st": lambda: st,
        "fastbert": lambda: SentenceEncoder.from_pretrained(model_dir, device="cpu"),
        "st-onnx": lambda: _ort(st, model_dir),
        "st-openvino": lambda: _openvino(st, model_dir),
    }
    providers = {}
    for name in args.providers.split(","):
        try:
            providers[name] = makers[name]()
        except ImportError as e:
            print(f"{name}: not installed ({e}); left out", flush=True)
    if "fastbert" not in providers:
        raise SystemExit("the fastbert provider is needed: figures are ratios against it")
    for p in providers.values():  # warm-up (the first fastbert call also settles the CPU dispatch)
        p.encode(texts[:64], batch_size=args.batch_size)
    times = {n: [] for n in providers}
    emb = {}
    names = list(providers)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            emb[name] = np.asarray(providers[name].encode(texts, batch_size=args.batch_size))
            times[name].append(time.perf_counter() - t0)
        print(f"round {r + 1}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in names), flush=True)

    ref = emb.get("st", emb["fastbert"])
    info = cpu_info()
    lines = [f"CPU: {info['model']} ({' '.join(info['flags'])}); torch {torch.__version__} capability "
             f"{info['torch_capability']}{', caps ' + str(info['caps']) if info['caps'] else ''}; "
             f"{torch.get_num_threads()} threads",
             f"{len(texts)} texts, batch {args.batch_size}, {args.rounds} rounds; ratio = median over rounds of "
             "(provider time / fastbert time)"]
    for name in names:
        e = emb[name]
        cos = float(((e * ref).sum(1) / np.linalg.norm(e, axis=1) / np.linalg.norm(ref, axis=1)).min())
        ratio = statistics.median(t / f for t, f in zip(times[name], times["fastbert"]))
        lines.append(f"  {name:12s} median {statistics.median(times[name]):.2f} s, fastbert is {ratio:.2f}x "
                     f"faster; min cosine vs sentence-transformers {cos:.7f}")
    print("\n".join(lines))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
