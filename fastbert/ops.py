"""The op seam: the only place that decides which backend runs each op.

Every function here takes tensors in the padding-free ("packed") layout of ``fastbert.packing``: one row per
real token, ``cu_seqlens`` marking where each sequence starts. The backends:

- CUDA tensors: the Triton kernels in ``fastbert.kernels``;
- CPU fp32 inference: fastbert's C++ attention kernel or torch's SDPA, oneDNN's fused GEMMs (weight kept in
  oneDNN's layout or reordered per call) or ``F.linear``, and a oneDNN GEMM's GELU inside it or after it,
  each chosen per shape class by measurement on this machine (``fastbert.dispatch``; ``cpu_attention_declines``
  / ``linear_declines`` say why one cannot take a call);
- anything else (gradients, other dtypes, ``torch.compile``): the torch reference ops below, which are also
  what the tests compare against.

``force_backend("triton" | "torch")`` overrides the choice (the kernel tests run the model with the kernels
forced on under ``TRITON_INTERPRET=1``).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import weakref

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.weak import WeakTensorKeyDictionary

from fastbert import dispatch
from fastbert.packing import Packing, padded_layout

_BACKENDS = ("auto", "torch", "triton")
# The override is a plain module-level value (not a ContextVar): torch.compile traces a read of it as a guarded
# constant, while ContextVar.get() would break the graph at every op.
_backend = ["auto"]


@contextlib.contextmanager
def force_backend(name: str):
    """Run the enclosed code with every op on one backend: ``"torch"``, ``"triton"`` or ``"auto"``."""
    if name not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {name!r}")
    previous = _backend[0]
    _backend[0] = name
    try:
        yield
    finally:
        _backend[0] = previous


def _triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (``torch.is_autocast_enabled`` takes a device type only
    from torch 2.4 on; before that, without one, it answers for CUDA)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:
        return device_type == "cuda" and torch.is_autocast_enabled()


def _device_guard(t: torch.Tensor):
    """Triton launches on the current CUDA device: make it ``t``'s for the launch (a model on ``cuda:1``)."""
    if t.is_cuda and not torch.compiler.is_compiling() and t.device.index not in (None, torch.cuda.current_device()):
        return torch.cuda.device(t.device)
    return contextlib.nullcontext()


def use_triton(t: torch.Tensor) -> bool:
    """True when ``t`` should go to the Triton kernels (CUDA tensor, or forced)."""
    choice = _backend[0]
    if choice == "torch":
        return False
    if choice == "triton":
        if not _triton_available():
            raise RuntimeError("force_backend('triton') was requested but triton is not installed")
        return True
    return t.is_cuda and _triton_available()


# --------------------------------------------------------------------------------------------------------
# element-wise ops
# --------------------------------------------------------------------------------------------------------


def _dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    return F.dropout(x, p, training) if (training and p > 0) else x


def layer_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    eps: float,
    residual: torch.Tensor | None = None,
    x_bias: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    training: bool = False,
) -> torch.Tensor:
    """``LayerNorm(dropout(x + x_bias) + residual)`` over the last dimension. Under autocast the result is
    fp32 whatever ``x`` is, as autocast runs torch's LayerNorm in fp32."""
    if use_triton(x):
        from fastbert.kernels.layer_norm import layer_norm as ln_kernel

        with _device_guard(x):
            return ln_kernel(
                x, weight, bias, eps, residual=residual, x_bias=x_bias, dropout_p=dropout_p if training else 0.0,
                out_dtype=torch.float32 if autocast_enabled(x.device.type) else None,
            )
    if x_bias is not None:
        x = x + x_bias
    x = _dropout(x, dropout_p, training)
    if residual is not None:
        x = x + residual
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def bias_gelu(x: torch.Tensor, bias: torch.Tensor | None, approximate: str = "none") -> torch.Tensor:
    """``gelu(x + bias)``: ``approximate="none"`` is BERT's exact erf GELU, ``"tanh"`` the tanh form."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    if use_triton(x):
        from fastbert.kernels.gelu import bias_gelu as gelu_kernel

        with _device_guard(x):
            return gelu_kernel(x, bias, approximate=approximate)
    if bias is not None:
        x = x + bias
    return F.gelu(x, approximate=approximate)


# --------------------------------------------------------------------------------------------------------
# dense layers with fused epilogues
# --------------------------------------------------------------------------------------------------------
# On CPU, inference GEMMs go to oneDNN (``torch.ops.mkldnn._linear_pointwise``), which fuses the bias, GELU or
# residual add into the GEMM and, on the machines measured here, runs fp32 GEMMs well over 2x faster than the
# default BLAS path of ``F.linear``. It has no autograd formula, so anything that needs gradients keeps
# ``F.linear``. A one-time self-check against ``F.linear`` guards the private op; FASTBERT_ONEDNN=0 opts out.
#
# Given a plain ``(out, in)`` weight, oneDNN reorders it into its blocked layout on every call. For a frozen
# weight (``requires_grad=False``: ``model.requires_grad_(False)``, as ``SentenceEncoder`` does) the reordered
# copy is kept instead (``_onednn_weight``), keyed weakly on the weight tensor, which makes the GEMMs 5-20%
# faster on the CPUs measured here, for a second copy of each weight matrix. Trainable weights are never
# cached: fused optimizers and writes through ``.data`` change a weight without bumping its version counter,
# so nothing cheap could tell that a cached copy went stale. A frozen weight is re-reordered when its version
# counter, storage, shape or dtype changes; writing into it through ``.data`` is not seen.

_onednn_state: dict[str, bool] = {}
_PACK_HINT = 512  # the row count oneDNN picks the blocked layout for; any row count works with it
_packed_weights = WeakTensorKeyDictionary()


def _onednn_usable() -> bool:
    ok = _onednn_state.get("ok")
    if ok is None:
        ok = packed_ok = False
        if os.environ.get("FASTBERT_ONEDNN", "1") != "0" and torch.backends.mkldnn.is_available():
            g = torch.Generator().manual_seed(0)
            x, w, b = (torch.randn(s, generator=g) for s in ((5, 24), (16, 24), (16,)))
            r = torch.randn(5, 16, generator=g)
            ref = F.linear(x, w, b)
            ok = _onednn_agrees(x, w, b, r, ref)
            if ok:
                try:
                    packed = torch.ops.mkldnn._reorder_linear_weight(w, _PACK_HINT)
                except (RuntimeError, AttributeError, TypeError):
                    packed = None
                packed_ok = packed is not None and _onednn_agrees(x, packed, b, r, ref)
        _onednn_state["ok"], _onednn_state["packed"] = ok, packed_ok
    return ok


def _onednn_agrees(x, w, b, r, ref) -> bool:
    """The three fused oneDNN ops with weight ``w`` (plain or packed) against ``F.linear``'s ``ref``."""
    try:
        with torch.no_grad():
            lin = torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
            gelu = torch.ops.mkldnn._linear_pointwise(x, w, b, "gelu", [], "none")
            add = torch.ops.mkldnn._linear_pointwise.binary(x, r, w, b, "add")
    except (RuntimeError, AttributeError, TypeError):
        return False
    return (
        torch.allclose(lin, ref, atol=1e-5, rtol=1e-5)
        and torch.allclose(gelu, F.gelu(ref), atol=1e-5, rtol=1e-5)
        and torch.allclose(add, ref + r, atol=1e-5, rtol=1e-5)
    )


def _onednn_weight(weight: torch.Tensor) -> torch.Tensor:
    """A frozen ``weight`` in oneDNN's blocked layout, reordered once and reused while it is unchanged; any
    other weight as it is."""
    if not _packable(weight):
        return weight
    key = (weight._version, weight.data_ptr(), weight.shape, weight.stride(), weight.dtype)
    entry = _packed_weights.get(weight)
    if entry is None or entry[0] != key:
        # the entry holds the weight's storage too, so its address cannot be reused by another storage
        # while the entry lives (which would make a different weight look unchanged)
        entry = (key, torch.ops.mkldnn._reorder_linear_weight(weight.detach(), _PACK_HINT),
                 weight.untyped_storage())
        _packed_weights[weight] = entry
    return entry[1]


def linear_declines(x: torch.Tensor, weight: torch.Tensor) -> list[str]:
    """Every reason the oneDNN GEMM cannot take this call (empty: it can), and why its kept layout cannot."""
    reasons = []
    if x.device.type != "cpu":
        reasons.append(f"tensors are on {x.device.type}, not the CPU")
    if not x.dtype == weight.dtype == torch.float32:
        reasons.append(f"dtype {x.dtype}/{weight.dtype}: the oneDNN path is fp32 only")
    if x.dim() != 2:
        reasons.append("input is not 2-D (packed rows)")
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        reasons.append("gradients are needed: the fused oneDNN op has no backward")
    if torch.compiler.is_compiling():
        reasons.append("torch.compile is tracing (inductor picks its own GEMMs)")
    if not _onednn_usable():
        reasons.append("oneDNN is off (FASTBERT_ONEDNN=0), missing, or failed its self-check against F.linear")
    if dispatch.forced("linear") == "torch":
        reasons.append("FASTBERT_CPU_LINEAR forces torch")
    if _backend[0] == "torch":
        reasons.append("force_backend('torch') is active: every op runs its torch reference")
    if not reasons and not _packable(weight):
        reasons.append("(kept layout only) the weight is trainable or an inference tensor: oneDNN reorders it per call")
    return reasons


def _cpu_fast_path(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and x.dim() == 2
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
        and not torch.compiler.is_compiling()  # under torch.compile, inductor chooses its own CPU GEMMs
        and _backend[0] != "torch"  # force_backend("torch"): the reference ops, F.linear included
        and _onednn_usable()
    )


def _packable(weight: torch.Tensor) -> bool:
    """Whether ``weight`` may be kept in oneDNN's blocked layout (frozen, with a version counter)."""
    if weight.requires_grad or not _onednn_state.get("packed"):
        return False
    try:
        _ = weight._version
    except RuntimeError:  # an inference tensor has no version counter: nothing tells when it changes
        return False
    return True


_CALIBRATION_ROWS = 256  # GEMMs are calibrated on at most this many of the call's rows


def _linear_backend(x: torch.Tensor, weight: torch.Tensor, bias, epilogue: str, residual=None,
                    approximate: str = "none") -> str:
    """Which GEMM runs this call: ``"torch"`` (``F.linear``), ``"onednn"`` (oneDNN, weight reordered by oneDNN
    on each call) or ``"onednn-packed"`` (oneDNN, weight kept reordered). Where oneDNN can take the call, the
    choice is measured per weight shape, epilogue and row-count class (``fastbert.dispatch``)."""
    if not _cpu_fast_path(x, weight):
        return "torch"
    packable = _packable(weight)
    mode = dispatch.forced("linear")
    if mode != "auto":
        return "onednn" if mode == "onednn-packed" and not packable else mode
    shape_class = (f"{weight.shape[0]}x{weight.shape[1]} {epilogue} {_row_class(x)} "
                   f"{'frozen' if packable else 'trainable'} {torch.get_num_threads()}t")

    def candidates():
        xs = x[:_CALIBRATION_ROWS]
        rs = residual[:_CALIBRATION_ROWS] if residual is not None else None
        names = ("torch", "onednn", "onednn-packed") if packable else ("torch", "onednn")
        return {n: functools.partial(_linear_run, n, xs, weight, bias, epilogue, rs, approximate) for n in names}

    return dispatch.choose("linear", shape_class, candidates, _torch_capability())


def _row_class(x: torch.Tensor) -> str:
    """The row-count class of a GEMM's calibration: a few short texts, or a packed batch."""
    return "rows<64" if x.shape[0] < 64 else "rows>=64"


def _torch_capability() -> str:
    cap = _onednn_state.get("capability")
    if cap is None:
        cap = _onednn_state["capability"] = torch.backends.cpu.get_cpu_capability()
    return cap


# the epilogue of a GEMM with its GELU where _gelu_epilogue says it runs
_GELU_EPILOGUES = {"fused": "gelu", "separate": "gelu-separate"}


def _linear_run(backend: str, x, weight, bias, epilogue: str, residual=None, approximate: str = "none"):
    """``x @ weight.T + bias`` followed by ``epilogue``: ``"none"``, ``"gelu"`` (``approximate`` form; inside
    oneDNN's GEMM), ``"gelu-separate"`` (the same GELU by torch, in place after the GEMM) or ``"add"``
    (``+ residual``), on one backend."""
    if backend == "torch":
        h = F.linear(x, weight, bias)
        if epilogue in _GELU_EPILOGUES.values():
            return F.gelu(h, approximate=approximate)
        return h + residual if epilogue == "add" else h
    w = _onednn_weight(weight) if backend == "onednn-packed" else weight
    if epilogue == "gelu":
        return torch.ops.mkldnn._linear_pointwise(x, w, bias, "gelu", [], approximate)
    if epilogue == "gelu-separate":
        return torch.ops.aten.gelu_(torch.ops.mkldnn._linear_pointwise(x, w, bias, "none", [], ""),
                                    approximate=approximate)
    if epilogue == "add":
        return torch.ops.mkldnn._linear_pointwise.binary(x, residual, w, bias, "add")
    return torch.ops.mkldnn._linear_pointwise(x, w, bias, "none", [], "")


def _gelu_epilogue(backend: str, x: torch.Tensor, weight: torch.Tensor, bias, approximate: str) -> str:
    """Where a oneDNN GEMM's GELU runs: ``"fused"`` (oneDNN's post-op, inside the GEMM) or ``"separate"`` (the
    GEMM alone, then torch's GELU in place on its output). oneDNN's post-op is its own erf polynomial, whose cost
    depends on the instruction set (dispatch.TABLE), so it is measured per weight shape and row-count class."""
    mode = dispatch.forced("gelu")
    if mode != "auto":
        return mode
    shape_class = (f"{weight.shape[0]}x{weight.shape[1]} {approximate} {_row_class(x)} {backend} "
                   f"{torch.get_num_threads()}t")

    def candidates():
        xs = x[:_CALIBRATION_ROWS]
        return {where: functools.partial(_linear_run, backend, xs, weight, bias, epilogue, None, approximate)
                for where, epilogue in _GELU_EPILOGUES.items()}

    return dispatch.choose("gelu", shape_class, candidates, _torch_capability())


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight.T + bias``."""
    return _linear_run(_linear_backend(x, weight, bias, "none"), x, weight, bias, "none")


def dense_gelu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, approximate) -> torch.Tensor:
    """``act(x @ weight.T + bias)``: BERT's intermediate layer. ``approximate`` is ``"none"``/``"tanh"`` for GELU,
    or the name of another activation (``"relu"``, ``"silu"``), which always runs in torch."""
    if approximate in ("none", "tanh"):
        if use_triton(x):
            return bias_gelu(F.linear(x, weight), bias, approximate)
        backend = _linear_backend(x, weight, bias, "gelu", approximate=approximate)
        epilogue = "gelu"
        if backend != "torch":  # oneDNN's GEMM: its GELU inside it or torch's after it, as measured
            epilogue = _GELU_EPILOGUES[_gelu_epilogue(backend, x, weight, bias, approximate)]
        return _linear_run(backend, x, weight, bias, epilogue, approximate=approximate)
    h = linear(x, weight, bias)
    if approximate == "relu":
        return F.relu(h)
    if approximate in ("silu", "swish"):
        return F.silu(h)
    raise ValueError(f"unsupported activation {approximate!r}")


def dense_add_layer_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    residual: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    eps: float,
    dropout_p: float = 0.0,
    training: bool = False,
) -> torch.Tensor:
    """``LayerNorm(dropout(x @ weight.T + bias) + residual)``: BERT's attention-output and output layers."""
    if use_triton(x):
        return layer_norm(F.linear(x, weight), ln_weight, ln_bias, eps, residual, bias, dropout_p, training)
    if not (training and dropout_p > 0) and residual.dtype == x.dtype:
        backend = _linear_backend(x, weight, bias, "add", residual)
        if backend != "torch":
            h = _linear_run(backend, x, weight, bias, "add", residual)
            return F.layer_norm(h, (h.shape[-1],), ln_weight, ln_bias, eps)
    h = F.linear(x, weight, bias)
    return layer_norm(h, ln_weight, ln_bias, eps, residual, None, dropout_p, training)


# --------------------------------------------------------------------------------------------------------
# attention
# --------------------------------------------------------------------------------------------------------


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    packing: Packing,
    softmax_scale: float | None = None,
    dropout_p: float = 0.0,
    training: bool = False,
) -> torch.Tensor:
    """Bidirectional attention inside each packed sequence. ``q, k, v``: ``(total, heads, head_dim)``.

    Keys of sequence ``b`` are its first ``seqused_k[b]`` rows (all of them when ``seqused_k`` is None).
    Returns ``(total, heads, head_dim)``.
    """
    head_dim = q.shape[-1]
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(head_dim)
    p = dropout_p if training else 0.0
    backend = attention_backend(q, k, v, packing, scale, p, lambda: attention_torch(q, k, v, packing, scale))
    if backend == "kernel":
        return _cpu_attention(q, k, v, packing, scale)
    if backend == "triton":
        from fastbert.kernels.attention import attention as attn_kernel

        with _device_guard(q):
            return attn_kernel(
                q, k, v, packing.cu_seqlens, packing.max_seqlen, seqused_k=packing.seqused_k,
                softmax_scale=scale, dropout_p=p,
            )
    return attention_torch(q, k, v, packing, scale, p)


def qkv_attention(
    qkv: torch.Tensor, packing: Packing, softmax_scale: float | None = None, dropout_p: float = 0.0,
    training: bool = False,
) -> torch.Tensor:
    """Attention from one packed ``(total, 3, heads, head_dim)`` projection; returns ``(total, heads, head_dim)``.

    Same as ``attention(*qkv.unbind(1), ...)``; the torch path lays q, k and v out in one copy instead of three.
    """
    q, k, v = qkv.unbind(1)
    if use_triton(qkv) or packing.identity:
        return attention(q, k, v, packing, softmax_scale, dropout_p, training)
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(qkv.shape[-1])
    p = dropout_p if training else 0.0
    if attention_backend(q, k, v, packing, scale, p, lambda: _sdpa_padded(qkv, packing, scale, 0.0)) == "kernel":
        return _cpu_attention(q, k, v, packing, scale)
    return _sdpa_padded(qkv, packing, scale, p)


def attention_backend(q, k, v, packing: Packing, scale: float, dropout_p: float, torch_path) -> str:
    """Which backend runs an attention call: ``"kernel"`` (fastbert's C++ CPU kernel, where it can take the
    call and is forced or measured faster than ``torch_path``, the SDPA path of the call), ``"triton"`` (CUDA
    tensors, or forced) or ``"sdpa"`` (torch)."""
    if dropout_p == 0.0 and _cpu_attention_usable(q, k, v) and _cpu_attention_wins(
        q, k, v, packing, scale, torch_path
    ):
        return "kernel"
    return "triton" if use_triton(q) else "sdpa"


def _sdpa_padded(qkv: torch.Tensor, packing: Packing, scale: float, p: float) -> torch.Tensor:
    """Torch SDPA for a padded packing from one ``(total, 3, heads, head_dim)`` tensor: one copy into a
    ``(batch, max_seqlen)`` buffer, SDPA with a key mask, the real rows gathered back."""
    batch, width = packing.batch, packing.max_seqlen
    scratch = _scratch(packing)
    if scratch is None:
        dest, mask, row, col = padded_layout(packing)
    else:  # every layer of the batch reuses it
        if "layout" not in scratch:
            scratch["layout"] = padded_layout(packing)
        dest, mask, row, col = scratch["layout"]
    if scratch is None or (torch.is_grad_enabled() and qkv.requires_grad):
        buf = qkv.new_zeros(batch * width, *qkv.shape[1:]).index_copy(0, dest, qkv)
    else:
        # inference: one zeroed buffer per batch, reused by every layer (only real rows are overwritten, so
        # padding rows stay zero); a fresh buffer per layer costs more in page faults than the copy itself
        buf = scratch.get("qkv_buf")
        if buf is None or buf.shape[1:] != qkv.shape[1:] or buf.dtype != qkv.dtype:
            buf = scratch["qkv_buf"] = qkv.new_zeros(batch * width, *qkv.shape[1:])
        buf.index_copy_(0, dest, qkv)
    qp, kp, vp = buf.view(batch, width, *qkv.shape[1:]).transpose(1, 3).unbind(2)  # each (batch, heads, width, d)
    out = F.scaled_dot_product_attention(qp, kp, vp, attn_mask=mask, dropout_p=p, scale=scale)
    return out.transpose(1, 2)[row, col]


# Per-batch scratch of the backends (the padded layout and buffer of the SDPA path, host copies of the offsets
# for the C++ kernel), kept here for as long as the batch's Packing lives; the Packing itself is immutable.
_batch_scratch: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _scratch(packing: Packing) -> dict | None:
    """The scratch dict of ``packing``'s batch; None under torch.compile (which traces no weak dict)."""
    if torch.compiler.is_compiling():
        return None
    scratch = _batch_scratch.get(packing)
    if scratch is None:
        scratch = _batch_scratch[packing] = {}
    return scratch


# On CPU, fp32 inference attention can go to fastbert's own kernel (csrc/cpu/attention.cpp): it reads the
# packed rows in place, one (sequence, head) per task, so there is no padded copy, no mask and no scatter back.
# Whether it or torch's SDPA is faster is measured per machine and shape class (fastbert.dispatch);
# FASTBERT_CPU_ATTENTION=kernel|sdpa forces one. The torch path stays for gradients, dropout, other dtypes,
# torch.compile and force_backend("torch").


def _cpu_kernels():
    """The compiled kernel module, or None where it was not built."""
    if "mod" not in _cpu_kernel_state:
        try:
            from fastbert import _cpu_kernels as mod
        except ImportError:  # the extension was not built
            mod = None
        _cpu_kernel_state["mod"] = mod
    return _cpu_kernel_state["mod"]


_cpu_kernel_state: dict = {}


def cpu_isa() -> str:
    """The build of the CPU attention kernel in use: ``FASTBERT_CPU_ISA`` (avx512, avx2 or baseline) when set,
    else the best one this CPU runs."""
    forced = os.environ.get("FASTBERT_CPU_ISA", "")
    known = _cpu_kernel_state.get("isa")
    if known is not None and known[0] == forced:
        return known[1]
    if _cpu_kernels() is None:
        raise RuntimeError("the C++ extension fastbert._cpu_kernels was not built")
    builds = _cpu_kernels().builds()
    if forced:
        names = [name for name, _ in builds]
        if forced not in names:
            raise ValueError(f"FASTBERT_CPU_ISA={forced!r}: the CPU attention kernel has builds {names}")
        if not dict(builds)[forced]:
            raise ValueError(f"FASTBERT_CPU_ISA={forced!r}: this CPU lacks the instructions that build needs")
        isa = forced
    else:
        isa = next(name for name, runs in builds if runs)
    _cpu_kernel_state["isa"] = (forced, isa)
    return isa


_NO_SEQUSED = np.zeros(0, dtype=np.int64)


def _cpu_attention_usable(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """Whether the C++ kernel can take this call (``cpu_attention_declines`` says why not)."""
    return (
        _backend[0] == "auto"  # force_backend("torch") means the torch reference ops
        and q.device.type == "cpu"
        and q.dtype == k.dtype == v.dtype == torch.float32
        and q.stride(-1) == k.stride(-1) == v.stride(-1) == 1
        and not (torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad))
        and not torch.compiler.is_compiling()
        and _cpu_kernels() is not None
    )


def cpu_attention_declines(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0) -> list[str]:
    """Every reason the C++ attention kernel cannot take this call (empty: it can)."""
    reasons = []
    if _backend[0] != "auto":
        reasons.append(f"force_backend({_backend[0]!r}) is active")
    if q.device.type != "cpu":
        reasons.append(f"tensors are on {q.device.type}, not the CPU")
    if not q.dtype == k.dtype == v.dtype == torch.float32:
        reasons.append(f"dtype {q.dtype}: the kernel is fp32 only")
    if not q.stride(-1) == k.stride(-1) == v.stride(-1) == 1:
        reasons.append("head_dim is not contiguous")
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        reasons.append("gradients are needed: the kernel has no backward")
    if dropout_p > 0:
        reasons.append("attention dropout is on")
    if torch.compiler.is_compiling():
        reasons.append("torch.compile is tracing")
    if _cpu_kernels() is None:
        reasons.append("the C++ extension fastbert._cpu_kernels was not built")
    if dispatch.forced("attention") == "sdpa":
        reasons.append("FASTBERT_CPU_ATTENTION forces sdpa")
    return reasons


def _cpu_attention_wins(q, k, v, packing: Packing, scale: float, torch_path) -> bool:
    """For a call the kernel can take: whether it runs it, forced or measured faster than ``torch_path`` on
    this call's shape class."""
    mode = dispatch.forced("attention")
    if mode != "auto":
        return mode == "kernel"
    isa = cpu_isa()
    shape_class = (f"{q.shape[1]}x{q.shape[2]} keys{dispatch.length_bucket(packing.max_seqlen)} "
                   f"{'full' if packing.identity else 'ragged'} {torch.get_num_threads()}t {isa}")
    candidates = lambda: {"sdpa": torch_path, "kernel": lambda: _cpu_attention(q, k, v, packing, scale)}
    return dispatch.choose("attention", shape_class, candidates, isa) == "kernel"


def _cpu_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, packing: Packing, scale: float):
    scratch = _scratch(packing)
    host = scratch.get("cu_host")
    if host is None:
        used = packing.seqused_k
        host = scratch["cu_host"] = (
            packing.cu_seqlens.numpy().astype(np.int64),
            used.numpy().astype(np.int64) if used is not None else _NO_SEQUSED,
        )
    out = torch.empty(q.shape, dtype=q.dtype)
    args = (q.detach().numpy(), k.detach().numpy(), v.detach().numpy(), out.numpy(), host[0], host[1], scale,
            torch.get_num_threads(), cpu_isa())
    if torch.autograd._profiler_enabled():  # a named row in `fastbert profile` and in traces
        with torch.profiler.record_function("fastbert::cpu_attention"):
            _cpu_kernels().attention_varlen(*args)
    else:
        _cpu_kernels().attention_varlen(*args)
    return out


def attention_torch(q, k, v, packing: Packing, scale: float, dropout_p: float = 0.0) -> torch.Tensor:
    """Torch path: SDPA on ``(batch, heads, max_seqlen, head_dim)``: a view of the packed rows when there is
    no padding, else the padded layout with a key mask (``_sdpa_padded``)."""
    if not packing.identity:
        return _sdpa_padded(torch.stack((q, k, v), 1), packing, scale, dropout_p)
    batch, width = packing.batch, packing.max_seqlen
    total, heads, head_dim = q.shape
    qp, kp, vp = (t.view(batch, width, heads, head_dim).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(qp, kp, vp, dropout_p=dropout_p, scale=scale)
    return out.transpose(1, 2).reshape(total, heads, head_dim)
