"""The one generator of padding masks for the packing, attention and parity tests (after flash-attention's
``generate_random_padding_mask``): every test that needs ragged batches draws them here instead of keeping
its own list of lengths."""

from __future__ import annotations

import torch

MODES = ("full", "random", "third", "left", "holes")


def padding_mask(batch: int, seqlen: int, mode: str, seed: int = 0) -> torch.Tensor:
    """A ``(batch, seqlen)`` int64 0/1 mask with at least one real token per row.

    - ``full``: no padding;
    - ``random``: right padding, each row's length uniform in ``[1, seqlen]``;
    - ``third``: right padding, lengths in ``[seqlen // 3, seqlen]`` (flash-attention's mode);
    - ``left``: left padding, random lengths;
    - ``holes``: random positions masked anywhere, column 0 included (real tokens need not be contiguous).
    """
    g = torch.Generator().manual_seed(seed)
    cols = torch.arange(seqlen)[None, :]
    if mode == "full":
        return torch.ones(batch, seqlen, dtype=torch.int64)
    if mode in ("random", "third", "left"):
        low = max(1, seqlen // 3) if mode == "third" else 1
        lengths = torch.randint(low, seqlen + 1, (batch, 1), generator=g)
        mask = cols < lengths
        return (mask.flip(1) if mode == "left" else mask).to(torch.int64)
    if mode == "holes":
        mask = torch.rand(batch, seqlen, generator=g) < 0.6
        keep = torch.randint(0, seqlen, (batch,), generator=g)
        mask[torch.arange(batch), keep] = True  # every row keeps a real token
        return mask.to(torch.int64)
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def all_masks(seed: int = 0):
    """One mask of each mode at a few odd shapes, the first of each row of the list in a different mode."""
    shapes = [(3, 9), (5, 40), (2, 150), (1, 7)]
    for i, (batch, seqlen) in enumerate(shapes):
        for j, mode in enumerate(MODES):
            yield mode, padding_mask(batch, seqlen, mode, seed=seed + 31 * i + j)
