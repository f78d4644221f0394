"""The dropout keep mask the kernels draw, materialised (for the torch references and the tests).

Every kernel decides "keep" for element ``i`` of its flattened index space as ``tl.rand(seed, i) >= p``
(Philox, 10 rounds): LayerNorm uses ``row * N + col``; attention uses ``(head * total + query_row) *
max_seqlen + key`` with the key index local to its sequence. ``dropout_mask`` evaluates the same function for
a whole index space, so a reference can apply exactly the mask a kernel used.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _keep_mask_kernel(KEEP, numel, dropout_p, seed, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    keep = tl.rand(seed, offs) >= dropout_p
    tl.store(KEEP + offs, keep.to(tl.int8), mask=offs < numel)


def dropout_mask(shape, dropout_p: float, seed: int, device="cpu") -> torch.Tensor:
    """Bool keep mask of ``shape`` for flat indices ``0 .. prod(shape) - 1`` under ``seed``."""
    numel = 1
    for s in shape:
        numel *= int(s)
    keep = torch.empty(numel, dtype=torch.int8, device=device)
    if numel:
        _keep_mask_kernel[(triton.cdiv(numel, 1024),)](keep, numel, float(dropout_p), int(seed), BLOCK=1024)
    return keep.view(tuple(shape)).bool()
