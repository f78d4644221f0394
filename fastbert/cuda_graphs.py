"""CUDA graphs for inference with dynamic shapes: ``CudaGraphRunner(model)(input_ids, attention_mask)``.

A BERT forward launches about ten kernels per layer; at small batches the GPU waits on the host for each
launch. A CUDA graph replays the whole forward in one launch, but only on the shapes it was captured with,
and only if nothing in it reads values back to the host. So:

- Buckets. A call with ``batch`` rows and ``t`` packed rows (its real tokens, plus column 0 of rows that start
  with padding when the model has a pooler) runs the graph of ``(batch_bucket(batch), token_bucket(t))``:
  batch sizes round up to a power of two, token counts to the ladder 16, 32, 48, 64, 96, 128, 192, ... (two
  steps per octave, all multiples of 16), so past 32 rows at most a third of the packed rows are filler.
  Graphs are captured on a bucket's first call and replayed after that.
- Fixed-size packing with no host sync, inside the graph. Each bucket owns static input buffers of
  ``(rows, W)``, ``W = max_position_embeddings`` and ``rows`` the batch bucket plus the filler sequences'
  rows (below); a call copies its ids, mask (and token types) into the
  top-left corner, zeros elsewhere in the mask. The graph packs them with ``fastbert.packing.bucket_packing``:
  the real rows first, exactly as the eager forward packs them, then filler rows that make up the bucket's
  token count. The filler rows belong to dummy sequences appended after the batch (one key each, the rest
  query-only), so attention never mixes them with a real sequence and every other op is row-wise: they cost
  compute, never correctness. Then the one packed forward (``BertModel.forward_packed``), the pooler and the
  scatter back to ``(rows, W, hidden)`` run in the graph too; the call returns the ``[:batch, :seqlen]``
  slice, copied.
- The token count, which picks the bucket, is known on the host without a sync when the mask is on the host
  (the tokenizer's output: pass it as it is; the runner copies it in from pinned memory), when there is no
  mask, or when the caller passes ``num_tokens``. A mask already on the GPU with no ``num_tokens`` gets the
  bucket of ``batch * seqlen`` rows: correct, with more filler. No path reads the GPU back.
- One memory pool (``torch.cuda.graph_pool_handle()``) for every graph of a runner: graphs are captured one
  after another and replayed one at a time, so a capture reuses the memory earlier captures freed. A replay
  may then overwrite another graph's static outputs; each call therefore copies its outputs out before it
  returns (and must come from one stream, one thread at a time). Static inputs live outside the pool.
- Opt out with ``FASTBERT_CUDA_GRAPHS=0`` or ``CudaGraphRunner(model, enabled=False)``: every call is then the
  model's own eager forward (``runner.mode == "off"``). On a CPU model there is nothing to capture: the runner
  runs the same bucketed forward eagerly (``mode == "buckets"``), which is what the CPU tests check, on the
  backend ``cpu_backend`` names (default the torch reference ops: fastbert's C++ attention kernel takes no
  empty sequence, and unused batch slots and spare filler sequences are empty; ``"triton"`` runs the
  kernels, under ``TRITON_INTERPRET=1``).

Inputs on the host are validated as the eager forward validates them (a row with no real token, ids outside
the vocabulary); inputs already on the GPU are not (that would read them back). Build the runner after the
model has its final device and dtype; ``reset()`` drops every graph.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from fastbert.outputs import BaseModelOutputWithPooling
from fastbert.packing import QueryOnly, bucket_packing, pack, spare_rows, unpack

log = logging.getLogger(__name__)

MIN_TOKENS = 16
_INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def enabled_by_env() -> bool:
    """``FASTBERT_CUDA_GRAPHS=0`` turns the graphs off (the runner then calls the eager forward)."""
    return os.environ.get("FASTBERT_CUDA_GRAPHS", "1").strip() not in ("0", "false", "off", "no")


def batch_bucket(n: int) -> int:
    """The batch size a graph is captured for: ``n`` rounded up to a power of two."""
    if n < 1:
        raise ValueError(f"batch size must be >= 1, got {n}")
    return 1 << (n - 1).bit_length()


def token_bucket(n: int, minimum: int = MIN_TOKENS) -> int:
    """The packed row count a graph is captured for: the smallest of ``minimum`` (a power of two), then
    ``2^k`` and ``1.5 * 2^k`` from 32 on (16, 32, 48, 64, 96, 128, 192, ...), that holds ``n`` rows."""
    if n < 1:
        raise ValueError(f"token count must be >= 1, got {n}")
    if minimum < 1 or minimum & (minimum - 1):
        raise ValueError(f"minimum must be a power of two, got {minimum}")
    p = max(1 << (n - 1).bit_length(), minimum)
    return 3 * p // 4 if p >= 64 and 3 * p // 4 >= max(n, minimum) else p


@dataclass
class _Bucket:
    """One (batch bucket, token bucket, with token types) graph: its static inputs and outputs."""

    batch: int
    tokens: int
    ids: torch.Tensor  # (batch + spare, W) int64, zero outside what a call writes
    mask: torch.Tensor  # (batch, W) int64
    types: torch.Tensor | None  # (batch + spare, W) int64, or None: the model's default token type
    graph: object = None  # torch.cuda.CUDAGraph once captured
    hidden: torch.Tensor | None = None  # static outputs of the graph: (batch + spare, W, hidden)
    pooled: torch.Tensor | None = None  # (batch + spare, hidden)
    calls: int = 0


class CudaGraphRunner:
    """Inference through CUDA graphs captured per (batch bucket, token bucket); see the module docstring.

    ``runner(input_ids, attention_mask=None, token_type_ids=None, num_tokens=None)`` returns what
    ``BertModel.forward`` returns (``last_hidden_state``, ``pooler_output``), as new tensors.
    """

    def __init__(self, model, enabled: bool | None = None, min_tokens: int = MIN_TOKENS, cpu_backend: str = "torch"):
        from fastbert.modeling import BertModel

        if not isinstance(model, BertModel):
            raise TypeError(f"CudaGraphRunner takes a fastbert.BertModel, got {type(model).__name__}")
        token_bucket(1, min_tokens)  # checks min_tokens
        self.model = model
        self.enabled = enabled_by_env() if enabled is None else bool(enabled)
        self.min_tokens = min_tokens
        self.cpu_backend = cpu_backend
        self.width = model.config.max_tokens
        self.query_only = QueryOnly.FIRST if model.pooler is not None else QueryOnly.NONE
        self._buckets: dict[tuple, _Bucket] = {}
        self._pool = None
        self.captures = 0
        self.eager_calls = 0
        self._said = False

    @property
    def mode(self) -> str:
        """``"graphs"`` (CUDA), ``"buckets"`` (the bucketed forward without capture: a CPU model) or ``"off"``."""
        if not self.enabled:
            return "off"
        return "graphs" if self.model.device.type == "cuda" else "buckets"

    def stats(self) -> dict:
        return {"mode": self.mode, "captures": self.captures, "eager_calls": self.eager_calls,
                "buckets": {f"{b.batch}x{b.tokens}{'+types' if b.types is not None else ''}": b.calls
                            for b in self._buckets.values()}}

    def reset(self) -> None:
        """Drop every graph and buffer (after moving the model, or to free the memory)."""
        self._buckets.clear()
        self._pool = None

    def bucket_for(self, batch: int, tokens: int) -> tuple[int, int]:
        return batch_bucket(batch), token_bucket(tokens, self.min_tokens)

    # -------------------------------------------------------------------------------------------- calls
    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, *, num_tokens: int | None = None):
        if not self._said:
            log.info("fastbert CUDA graphs: mode %s", self.mode)
            self._said = True
        if not self.enabled:
            self.eager_calls += 1
            with torch.inference_mode():
                return self.model(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        with torch.inference_mode():
            batch, seqlen = self._check(input_ids, attention_mask, token_type_ids)
            tokens = self._packed_rows(attention_mask, batch, seqlen, num_tokens)
            key = (*self.bucket_for(batch, tokens), token_type_ids is not None)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = self._new_bucket(*key)
            self._fill(bucket, input_ids, attention_mask, token_type_ids, batch, seqlen)
            hidden, pooled = self._run(bucket)
            bucket.calls += 1
            return BaseModelOutputWithPooling(
                hidden[:batch, :seqlen].clone(), pooled[:batch].clone() if pooled is not None else None, None
            )

    def _check(self, ids, mask, types) -> tuple[int, int]:
        """Shapes, dtypes and devices; values too where the inputs are on the host (free there)."""
        cfg, device = self.model.config, self.model.device
        if not isinstance(ids, torch.Tensor) or ids.dtype not in _INT_DTYPES or ids.dim() != 2 or ids.numel() == 0:
            raise ValueError("input_ids must be a non-empty (batch, seq_len) integer tensor")
        batch, seqlen = ids.shape
        if seqlen > self.width:
            raise ValueError(f"sequence length {seqlen} is longer than the model's max_position_embeddings "
                             f"allow ({self.width} tokens); truncate the input")
        for name, t, shapes in (("attention_mask", mask, [(batch, seqlen)]),
                                ("token_type_ids", types, [(batch, seqlen), (1, seqlen)])):
            if t is None:
                continue
            if not isinstance(t, torch.Tensor) or tuple(t.shape) not in shapes:
                raise ValueError(f"{name} must have shape {shapes[0]}, got "
                                 f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
        for name, t in (("input_ids", ids), ("attention_mask", mask), ("token_type_ids", types)):
            if t is not None and t.device != device and t.device.type != "cpu":
                raise ValueError(f"{name} is on {t.device} but the model is on {device}")
        on_host = [(name, t) for name, t in (("input_ids", ids), ("token_type_ids", types)) if t is not None
                   and t.device.type == "cpu"]
        limits = {"input_ids": cfg.vocab_size, "token_type_ids": cfg.type_vocab_size}
        for name, t in on_host:
            lo, hi = int(t.min()), int(t.max())
            if lo < 0 or hi >= limits[name]:
                raise ValueError(f"{name} contain {lo if lo < 0 else hi}, outside [0, {limits[name]})")
        if mask is not None and mask.device.type == "cpu":
            if bool(((mask != 0) & (mask != 1)).any()):
                raise ValueError("attention_mask must hold only 0 (padding) and 1 (real token)")
            empty = torch.nonzero(mask.sum(1) == 0).flatten().tolist()
            if empty:
                raise ValueError(f"attention_mask rows {empty[:8]} have no real token; every sequence needs at "
                                 "least one")
        return batch, seqlen

    def _packed_rows(self, mask, batch: int, seqlen: int, num_tokens: int | None) -> int:
        """Packed rows of this call (real tokens + query-only column 0), or an upper bound, from the host."""
        if mask is None:
            return batch * seqlen
        if mask.device.type == "cpu":
            rows = int(mask.sum())
            if self.query_only is QueryOnly.FIRST:
                rows += int((mask[:, 0] == 0).sum())
            return rows
        if num_tokens is not None:  # real tokens; at most one query-only row more per sequence
            extra = batch if self.query_only is QueryOnly.FIRST else 0
            return max(1, min(int(num_tokens) + extra, batch * seqlen))
        return batch * seqlen

    def _new_bucket(self, batch: int, tokens: int, has_types: bool) -> _Bucket:
        device = self.model.device
        rows = batch + spare_rows(tokens, self.width)
        zeros = lambda r: torch.zeros(r, self.width, dtype=torch.int64, device=device)  # noqa: E731
        bucket = _Bucket(batch, tokens, zeros(rows), zeros(batch), zeros(rows) if has_types else None)
        if device.type == "cuda":
            self._capture(bucket)
        return bucket

    def _fill(self, bucket: _Bucket, ids, mask, types, batch: int, seqlen: int) -> None:
        bucket.mask.zero_()
        if mask is None:
            bucket.mask[:batch, :seqlen].fill_(1)
        else:
            bucket.mask[:batch, :seqlen].copy_(self._source(mask), non_blocking=True)
        bucket.ids[:batch, :seqlen].copy_(self._source(ids), non_blocking=True)
        if types is not None:
            bucket.types[:batch, :seqlen].copy_(self._source(types), non_blocking=True)

    def _source(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` as int64, in pinned memory when it goes from the host to the GPU (an asynchronous copy)."""
        t = t.to(torch.int64)
        if t.device.type == "cpu" and self.model.device.type == "cuda":
            return t.pin_memory()
        return t

    def _body(self, bucket: _Bucket):
        """Everything a graph holds: packing, the packed forward, pooler, scatter back."""
        packing = bucket_packing(bucket.mask, bucket.tokens, self.query_only)
        types = pack(bucket.types, packing) if bucket.types is not None else None
        ids = pack(bucket.ids, packing)
        x = self.model.forward_packed(packing, ids, self.model.packed_position_ids(packing, ids), types)[-1]
        pooled = self.model.pool(x, packing) if self.model.pooler is not None else None
        return unpack(x, packing), pooled

    def _run(self, bucket: _Bucket):
        if bucket.graph is None:
            from fastbert.ops import force_backend

            with force_backend(self.cpu_backend):
                return self._body(bucket)
        bucket.graph.replay()
        return bucket.hidden, bucket.pooled

    def _capture(self, bucket: _Bucket) -> None:
        """Warm up off the default stream (Triton compiles, cuBLAS picks its kernels), then capture into the
        shared pool. A failed capture raises: there is no silent fallback to the eager forward."""
        device = self.model.device
        with torch.cuda.device(device):
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            current = torch.cuda.current_stream()
            side = torch.cuda.Stream()
            side.wait_stream(current)
            with torch.cuda.stream(side):
                for _ in range(2):
                    self._body(bucket)
            current.wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                bucket.hidden, bucket.pooled = self._body(bucket)
            bucket.graph = graph
        self.captures += 1
        log.info("fastbert CUDA graphs: captured batch %d x %d packed rows", bucket.batch, bucket.tokens)
