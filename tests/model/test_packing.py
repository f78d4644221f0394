"""The padding-free layout: which positions are packed, in what order, and how they map back."""

import pytest
import torch
from masks import all_masks

from fastbert.packing import build_packing, pack, packed_positions, packing_from_lengths, unpack


@pytest.mark.parametrize("query_only", ["none", "first", "all"])
def test_layout(query_only):
    for _, mask in all_masks():
        batch, seqlen = mask.shape
        p = build_packing(mask, query_only)
        lengths = mask.sum(1)
        extra = torch.zeros_like(mask, dtype=torch.bool)
        if query_only == "first":
            extra[:, 0] = mask[:, 0] == 0
        elif query_only == "all":
            extra = mask == 0
        counts = lengths + extra.sum(1)
        assert p.cu_seqlens.tolist() == [0] + torch.cumsum(counts, 0).tolist()
        assert p.max_seqlen == int(counts.max())
        assert p.identity == bool((mask == 1).all())
        if extra.any():
            assert p.seqused_k.tolist() == lengths.tolist()
        else:
            assert p.seqused_k is None
        for b in range(batch):
            rows = p.indices[p.cu_seqlens[b]:p.cu_seqlens[b + 1]] - b * seqlen
            real = torch.nonzero(mask[b]).flatten()
            qonly = torch.nonzero(extra[b]).flatten()
            assert rows.tolist() == real.tolist() + qonly.tolist()  # real tokens first, in order
        if query_only != "none":
            assert (p.indices[p.first_token] == torch.arange(batch) * seqlen).all()
        x = torch.randn(batch, seqlen, 3)
        back = unpack(pack(x, p), p)
        kept = (mask == 1) | extra
        assert torch.equal(back[kept], x[kept]) and (back[~kept] == 0).all()


def test_rejects_rows_without_tokens_and_unknown_modes():
    with pytest.raises(ValueError, match="no real token"):
        build_packing(torch.tensor([[1, 1], [0, 0]]))
    with pytest.raises(ValueError, match="query_only"):
        build_packing(torch.ones(1, 2), "some")


@pytest.mark.parametrize("lengths", [[5, 5, 3, 3, 3, 1], [4, 4], [7], [2, 6, 6, 1, 2]])
def test_packing_from_lengths_is_the_right_padded_layout(lengths):
    p = packing_from_lengths(lengths)
    width = max(lengths)
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    ref = build_packing(mask, "none")
    assert torch.equal(p.indices, ref.indices) and torch.equal(p.cu_seqlens, ref.cu_seqlens)
    assert (p.max_seqlen, p.batch, p.seqlen, p.identity) == (ref.max_seqlen, ref.batch, ref.seqlen, ref.identity)
    assert p.seqused_k is None and p.first_token is None
    assert packed_positions(p).tolist() == [t for n in lengths for t in range(n)]


def test_packing_from_lengths_rejects_empty_sequences():
    with pytest.raises(ValueError, match="at least one token"):
        packing_from_lengths([3, 0])
    with pytest.raises(ValueError, match="at least one token"):
        packing_from_lengths([])
