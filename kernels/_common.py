"""Small helpers shared by the kernel files: op registration, launch wrapping, seeds, program counts, 2-D views.

Registration: on a real GPU build every launcher is a ``torch.library.triton_op`` whose kernels are launched
through ``wrap_triton``, so ``torch.compile`` sees the Triton kernels themselves and traces without graph
breaks. Under ``TRITON_INTERPRET=1`` a ``@triton.jit`` function is an ``InterpretedFunction`` that
``wrap_triton`` cannot capture (tracing would hand it fake tensors), so there the launchers are registered as
opaque ``torch.library.custom_op``s with a fake (meta) function instead: still no graph breaks, just opaque.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def interpreting() -> bool:
    """True when Triton runs kernels under its CPU interpreter (decided once, before triton is imported)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def register_op(name: str, fake: Callable) -> Callable:
    """Decorator registering a launcher as the torch op ``fastbert::<name>`` (see the module docstring)."""

    def deco(fn):
        qualname = f"fastbert::{name}"
        if interpreting():
            op = torch.library.custom_op(qualname, fn, mutates_args=())
            op.register_fake(fake)
            return op
        return torch.library.triton_op(qualname, fn, mutates_args=())

    return deco


def launch(kernel):
    """``kernel`` wrapped for launching inside a registered op (``wrap_triton`` unless interpreting)."""
    if interpreting():
        return kernel
    return torch.library.wrap_triton(kernel)


def draw_seed() -> int:
    """A dropout seed from torch's default CPU generator, so ``torch.manual_seed`` makes runs reproducible."""
    return int(torch.randint(0, 2**31 - 1, (1,)).item())


def check_seed(seed: int) -> int:
    seed = int(seed)
    if not 0 <= seed < 2**31:
        raise ValueError(f"seed must be in [0, 2**31), got {seed}")
    return seed


def check_dropout(p: float) -> float:
    p = float(p)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {p}")
    return p


def partial_programs(device: torch.device) -> int:
    """How many programs write per-column fp32 partials in a backward pass (fixed per device: deterministic)."""
    if device.type == "cuda" and not interpreting():
        return 4 * torch.cuda.get_device_properties(device).multi_processor_count
    return 4


def check_float(name: str, t: torch.Tensor) -> None:
    if t.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be float16, bfloat16 or float32, got {t.dtype}")


def check_same_device(ref: torch.Tensor, **tensors: torch.Tensor | None) -> None:
    for name, t in tensors.items():
        if t is not None and t.device != ref.device:
            raise ValueError(f"{name} is on {t.device} but the input is on {ref.device}")


def as_rows(t: torch.Tensor) -> torch.Tensor:
    """2-D ``(rows, N)`` view with unit column stride (copying only when the layout needs it)."""
    t2 = t.reshape(-1, t.shape[-1])
    return t2 if t2.stride(-1) == 1 else t2.contiguous()
