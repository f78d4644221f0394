"""The padding-free layout, and nothing else: which rows of a padded ``(batch, seqlen)`` batch are computed,
where they sit once packed end to end, and how to go back.

Shapes, with ``total`` the number of packed rows:

- ``indices`` ``(total,)``: flat index ``b * seqlen + t`` of each packed row in the padded batch;
- ``cu_seqlens`` ``(batch + 1,)`` int32: sequence ``b`` owns packed rows ``cu_seqlens[b]:cu_seqlens[b + 1]``;
- ``seqused_k`` ``(batch,)`` int32 or None: the first ``seqused_k[b]`` rows of sequence ``b`` are real tokens
  (queries and keys), the rest are query-only padding positions;
- ``first_token`` ``(batch,)`` or None: the packed row of each sequence's column-0 token (the pooler's).

``pack`` takes ``(batch, seqlen, ...)`` to ``(total, ...)``; ``unpack`` goes back with zeros where nothing was
computed. A model packs once, runs every layer on the packed rows, and unpacks once at the end
(``BertModel.forward_packed``). Position ids come from the original columns (``packed_positions``), so left
padding and masks with holes give transformers' numbers.
"""

from __future__ import annotations

from enum import Enum

import torch
import torch.nn.functional as F


class QueryOnly(str, Enum):
    """Which padding positions are still computed, as queries that attend to the real tokens only."""

    NONE = "none"  # none: only real tokens
    FIRST = "first"  # column 0 where it is padding: the pooler reads it
    ALL = "all"  # every position: transformers' exact output at padding, where a loss reads it


class Packing:
    """Where the real tokens of a padded ``(batch, seqlen)`` batch live once packed (see the module's
    docstring for the fields' shapes). ``identity`` means no padding at all: packing is a reshape.

    Immutable: a backend that keeps per-batch scratch (a padded buffer, host copies of the offsets) keeps it
    itself, keyed by the packing (``fastbert.ops``)."""

    __slots__ = ("indices", "cu_seqlens", "max_seqlen", "seqused_k", "batch", "seqlen", "first_token", "identity",
                 "__weakref__")

    def __init__(self, indices, cu_seqlens, max_seqlen, seqused_k, batch, seqlen, first_token, identity):
        for name, value in (("indices", indices), ("cu_seqlens", cu_seqlens), ("max_seqlen", max_seqlen),
                            ("seqused_k", seqused_k), ("batch", batch), ("seqlen", seqlen),
                            ("first_token", first_token), ("identity", identity)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"a Packing is immutable (tried to set {name!r})")

    @property
    def total(self) -> int:
        return int(self.indices.numel())


def _as_query_only(value: QueryOnly | str) -> QueryOnly:
    try:
        return QueryOnly(value)
    except ValueError:
        raise ValueError(f"query_only must be one of {[q.value for q in QueryOnly]}, got {value!r}") from None


def _query_only_rows(mask: torch.Tensor, query_only: QueryOnly, used: torch.Tensor) -> torch.Tensor | None:
    """The padding positions of ``mask`` ``(batch, seqlen)`` bool computed as query-only rows, in rows where
    ``used`` ``(batch,)`` is true; None for ``QueryOnly.NONE``."""
    if query_only is QueryOnly.FIRST:
        extra = torch.zeros_like(mask)
        extra[:, 0] = used & ~mask[:, 0]
        return extra
    if query_only is QueryOnly.ALL:
        return used[:, None] & ~mask
    return None


def _row_order(mask: torch.Tensor, extra: torch.Tensor, arange: torch.Tensor) -> torch.Tensor:
    """Column order inside each row: real tokens, then query-only positions, then dropped ones."""
    seqlen = mask.shape[1]
    key = torch.where(mask, arange, torch.where(extra, seqlen + arange, 2 * seqlen + arange))
    return torch.argsort(key, dim=1)


def build_packing(attention_mask: torch.Tensor, query_only: QueryOnly | str = QueryOnly.FIRST) -> Packing:
    """Packing for a ``(batch, seqlen)`` 0/1 mask. Raises if a row has no real token. ``query_only``
    (``QueryOnly`` or its value) says which padding positions are still computed."""
    query_only = _as_query_only(query_only)
    batch, seqlen = attention_mask.shape
    device = attention_mask.device
    mask = attention_mask.bool()
    lengths = mask.sum(dim=1)
    extra = _query_only_rows(mask, query_only, lengths > 0)
    counts = lengths + extra.sum(dim=1) if extra is not None else lengths
    # everything the host needs, read back with one sync: shortest row, longest packed row, query-only count
    min_len, max_seqlen, n_extra = torch.stack(
        [lengths.min(), counts.max(), counts.sum() - lengths.sum()]
    ).tolist()
    if min_len == 0:
        rows = torch.nonzero(lengths == 0).flatten().tolist()
        raise ValueError(f"attention_mask rows {rows[:8]} have no real token; every sequence needs at least one")
    arange = torch.arange(seqlen, device=device)
    identity = n_extra == 0 and min_len == seqlen
    if n_extra == 0:
        # real tokens in their original order, row by row
        if identity:
            indices = torch.arange(batch * seqlen, device=device)
        else:
            indices = torch.nonzero(mask.flatten()).flatten()
        seqused_k = None
    else:
        # order inside each row: real tokens, then query-only positions, then dropped ones (not selected)
        order = _row_order(mask, extra, arange)
        sel = arange[None, :] < counts[:, None]
        rows = torch.arange(batch, device=device)[:, None]
        indices = (rows * seqlen + order)[sel]
        seqused_k = lengths.to(torch.int32)
    cu_seqlens = F.pad(torch.cumsum(counts, 0, dtype=torch.int32), (1, 0))
    if query_only is QueryOnly.NONE:
        first_token = None
    elif identity:
        first_token = torch.arange(batch, device=device) * seqlen
    else:
        pos = torch.full((batch * seqlen,), -1, dtype=torch.int64, device=device)
        pos[indices] = torch.arange(indices.numel(), device=device)
        first_token = pos[torch.arange(batch, device=device) * seqlen]
    return Packing(indices, cu_seqlens, max_seqlen, seqused_k, batch, seqlen, first_token, identity)


def packing_from_lengths(lengths: list[int], device: torch.device | str = "cpu") -> Packing:
    """Packing of sequences already laid end to end with no padding (sequence ``b`` owns the next
    ``lengths[b]`` rows), as ``build_packing`` would give for a right-padded mask of these lengths; built on
    the host from the lengths, with no device sync (``fastbert.SentenceEncoder`` batches this way)."""
    if not lengths or min(lengths) < 1:
        raise ValueError(f"every sequence needs at least one token, got lengths {list(lengths)[:8]}")
    batch, width = len(lengths), max(lengths)
    cu = F.pad(torch.cumsum(torch.tensor(lengths, dtype=torch.int64), 0), (1, 0))
    row, col = rows_and_columns(cu, int(cu[-1]))
    identity = min(lengths) == width
    indices = row * width + col
    return Packing(
        indices.to(device), cu.to(device=device, dtype=torch.int32), width, None, batch, width, None, identity
    )


def rows_and_columns(cu: torch.Tensor, total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For int64 offsets ``cu`` ``(batch + 1,)`` of ``total`` packed rows: each row's sequence and its column
    within the sequence."""
    lengths = cu[1:] - cu[:-1]
    row = torch.repeat_interleave(torch.arange(lengths.numel(), device=cu.device), lengths, output_size=total)
    return row, torch.arange(total, device=cu.device) - cu[:-1].index_select(0, row)


def padded_layout(packing: Packing):
    """The rows of a ``(batch, max_seqlen)`` layout that holds each sequence's packed rows from column 0:
    ``dest`` ``(total,)``, the row of each packed token in that layout flattened; ``mask`` ``(batch, 1, 1,
    max_seqlen)`` bool, the keys each query may attend to; ``row``, ``col`` ``(total,)``, each packed token's
    sequence and column (to gather the rows back)."""
    width, device = packing.max_seqlen, packing.cu_seqlens.device
    cu = packing.cu_seqlens.to(torch.int64)
    lengths = cu[1:] - cu[:-1]
    row, col = rows_and_columns(cu, packing.total)
    dest = row * width + col
    used = packing.seqused_k.to(torch.int64) if packing.seqused_k is not None else lengths
    mask = (torch.arange(width, device=device)[None, :] < used[:, None])[:, None, None, :]
    return dest, mask, row, col


def packed_positions(packing: Packing) -> torch.Tensor:
    """Position id (column in the padded layout) of each packed token."""
    return packing.indices % packing.seqlen


def pack(x: torch.Tensor, packing: Packing) -> torch.Tensor:
    """``(batch, seqlen, ...)`` -> ``(total, ...)``."""
    flat = x.reshape(packing.batch * packing.seqlen, *x.shape[2:])
    return flat if packing.identity else flat.index_select(0, packing.indices)


def unpack(x: torch.Tensor, packing: Packing) -> torch.Tensor:
    """``(total, ...)`` -> ``(batch, seqlen, ...)`` with zeros where nothing was computed (differentiable)."""
    if not packing.identity:
        x = x.new_zeros(packing.batch * packing.seqlen, *x.shape[1:]).index_copy(0, packing.indices, x)
    return x.view(packing.batch, packing.seqlen, *x.shape[1:])


def spare_rows(total: int, seqlen: int) -> int:
    """How many filler sequences ``bucket_packing`` appends: enough rows of ``seqlen`` to hold ``total``."""
    return -(-total // seqlen)


def bucket_packing(attention_mask: torch.Tensor, total: int, query_only: QueryOnly | str = QueryOnly.FIRST) -> Packing:
    """Packing of a ``(batch, seqlen)`` 0/1 mask into exactly ``total`` packed rows, with fixed shapes and no
    host sync: what a CUDA graph captures (``fastbert.cuda_graphs``).

    The batch's rows are packed as ``build_packing`` packs them (the same rows in the same order); a row with
    no real token is an unused batch slot and gets no packed row. The other ``total - t`` packed rows are
    filler: they belong to ``spare = spare_rows(total, seqlen)`` dummy sequences appended after the batch,
    each at most ``seqlen`` rows, whose first row is their one key and whose other rows are query-only. So
    ``Packing.batch`` is ``batch + spare`` and ``indices`` point into a ``(batch + spare, seqlen)`` layout
    whose last ``spare`` rows hold the filler: ``pack`` wants inputs padded with ``spare`` rows of zeros (pad
    token, token type 0; positions are the columns), and ``unpack`` returns those rows too. Filler rows never
    reach a real row: attention stays inside each sequence and every other op works row by row.

    ``seqused_k`` is always set (filler sequences have one key), ``max_seqlen`` is ``min(total, seqlen)``.
    ``t`` (real plus query-only rows) must be at most ``total``; that is not checked (it would sync), and no
    row with no real token is an error here (that too would sync): the caller checks what it can on the host.
    """
    query_only = _as_query_only(query_only)
    batch, seqlen = attention_mask.shape
    device = attention_mask.device
    spare = spare_rows(total, seqlen)
    mask = attention_mask.bool()
    lengths = mask.sum(dim=1)
    used = lengths > 0
    arange = torch.arange(seqlen, device=device)
    extra = _query_only_rows(mask, query_only, used)
    if extra is None:
        extra = torch.zeros_like(mask)
    counts = lengths + extra.sum(dim=1)
    # filler: rows [t, total) in spare sequences of at most seqlen rows each
    starts = counts.sum() + torch.arange(spare, device=device) * seqlen
    fill = (total - starts).clamp(0, seqlen)
    all_counts = torch.cat([counts, fill])  # (batch + spare,)
    cu = F.pad(torch.cumsum(all_counts, 0), (1, 0))
    # inside a row, as build_packing: real tokens, then query-only positions, then dropped ones
    order = torch.cat([_row_order(mask, extra, arange), arange.expand(spare, seqlen)])
    rows = batch + spare
    selected = arange[None, :] < all_counts[:, None]
    # packed row, or the discarded slot `total` (also for rows past `total` if the caller undercounted: a
    # wrong answer, never an out-of-bounds write on the device)
    dest = torch.where(selected, cu[:-1, None] + arange, total).clamp(max=total)
    src = torch.arange(rows, device=device)[:, None] * seqlen + order
    indices = torch.empty(total + 1, dtype=torch.int64, device=device)
    indices = indices.scatter_(0, dest.flatten(), src.flatten())[:total]
    seqused_k = torch.cat([lengths, (fill > 0).to(lengths.dtype)]).to(torch.int32)
    if query_only is QueryOnly.NONE:
        first_token = None
    else:  # column 0 is a row's first real token, or its first query-only one; a filler's first row
        col0_real = torch.cat([mask[:, 0], torch.ones(spare, dtype=torch.bool, device=device)])
        lengths_all = torch.cat([lengths, torch.zeros(spare, dtype=lengths.dtype, device=device)])
        first_token = (cu[:-1] + torch.where(col0_real, 0, lengths_all)).clamp(max=total - 1)
    return Packing(indices, cu.to(torch.int32), min(total, seqlen), seqused_k, rows, seqlen, first_token, False)
