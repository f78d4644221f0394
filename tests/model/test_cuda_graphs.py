"""CUDA graphs for inference with dynamic shapes (``fastbert.cuda_graphs``).

On CPU: the bucket ladders, the fixed-size packing (the same rows as ``build_packing``, filler sequences after
them, nothing read back to the host: it runs on the meta device, where any read fails), and the bucketed forward
the graphs capture, against the eager forward over calls whose shapes vary. Capture itself needs a GPU.
"""

from __future__ import annotations

import pytest
import torch
from masks import all_masks, padding_mask

from fastbert import BertConfig, BertModel
from fastbert.cuda_graphs import CudaGraphRunner, batch_bucket, token_bucket
from fastbert.packing import QueryOnly, bucket_packing, build_packing, spare_rows


def _model(pooler=True, **overrides):
    cfg = dict(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
               max_position_embeddings=48, type_vocab_size=2)
    cfg.update(overrides)
    torch.manual_seed(0)
    return BertModel(BertConfig(**cfg), add_pooling_layer=pooler).eval().requires_grad_(False)


# ------------------------------------------------------------------------------------------------ buckets
def test_batch_bucket_is_the_next_power_of_two():
    assert [batch_bucket(n) for n in (1, 2, 3, 4, 5, 8, 9, 31, 32, 33)] == [1, 2, 4, 4, 8, 8, 16, 32, 32, 64]
    with pytest.raises(ValueError):
        batch_bucket(0)


def test_token_bucket_ladder():
    ns = (1, 16, 17, 32, 33, 48, 49, 64, 65, 96, 97, 128, 129, 4096, 4097)
    assert [token_bucket(n) for n in ns] == [16, 16, 32, 32, 48, 48, 64, 64, 96, 96, 128, 128, 192, 4096, 6144]
    ladder = sorted({token_bucket(n) for n in range(1, 20000)})
    for n in range(1, 20000):
        b = token_bucket(n)
        assert b >= n and b % 16 == 0
        assert b <= max(32, 1.5 * n)  # at most a third of the rows are filler (past the smallest buckets)
        assert not [v for v in ladder if n <= v < b]  # the smallest bucket that holds n
    assert token_bucket(3, minimum=64) == 64
    with pytest.raises(ValueError):
        token_bucket(0)
    with pytest.raises(ValueError):
        token_bucket(5, minimum=24)


# ------------------------------------------------------------------------------------------------ packing
@pytest.mark.parametrize("query_only", list(QueryOnly))
def test_bucket_packing_packs_the_real_rows_as_build_packing_then_filler(query_only):
    for mode, mask in all_masks():
        ref = build_packing(mask, query_only)
        t, (batch, seqlen) = ref.total, mask.shape
        for total in (t, t + 1, t + 37, t + 3 * seqlen + 5):
            p = bucket_packing(mask, total, query_only)
            spare = spare_rows(total, seqlen)
            assert (p.batch, p.seqlen, p.total, p.max_seqlen) == (batch + spare, seqlen, total, min(total, seqlen))
            assert torch.equal(p.indices[:t], ref.indices), (mode, total)
            assert torch.equal(p.cu_seqlens[: batch + 1], ref.cu_seqlens)
            assert int(p.cu_seqlens[-1]) == total
            lengths = (p.cu_seqlens[1:] - p.cu_seqlens[:-1]).long()
            assert int(lengths.max()) <= p.max_seqlen
            # filler rows: in the spare rows of the (batch + spare, seqlen) layout, each spare sequence's own
            assert bool((p.indices[t:] >= batch * seqlen).all())
            assert bool((p.indices // seqlen)[t:].eq(torch.repeat_interleave(
                torch.arange(batch, batch + spare), lengths[batch:])).all())
            # every packed row comes from a different position
            assert p.indices.unique().numel() == total
            used = mask.sum(1).to(torch.int32)
            assert torch.equal(p.seqused_k[:batch], used)
            assert torch.equal(p.seqused_k[batch:], (lengths[batch:] > 0).to(torch.int32))
            if ref.seqused_k is not None:
                assert torch.equal(p.seqused_k[:batch], ref.seqused_k)
            if query_only is QueryOnly.NONE:
                assert p.first_token is None
            else:
                assert torch.equal(p.first_token[:batch], ref.first_token)


def test_bucket_packing_skips_unused_batch_slots():
    mask = padding_mask(3, 20, "left", seed=4)
    slots = torch.cat([mask, torch.zeros(5, 20, dtype=mask.dtype)])  # a batch of 3 in a bucket of 8
    ref = build_packing(mask, QueryOnly.FIRST)
    p = bucket_packing(slots, 64, QueryOnly.FIRST)
    assert torch.equal(p.indices[: ref.total], ref.indices)
    assert torch.equal(p.cu_seqlens[3:9], torch.full((6,), ref.total, dtype=torch.int32))  # empty slots
    assert torch.equal(p.first_token[:3], ref.first_token)


def test_bucket_packing_reads_nothing_back():
    """On the meta device every read of a value fails: ``build_packing`` does read (it syncs on CUDA),
    ``bucket_packing`` and the whole bucketed forward do not."""
    mask = padding_mask(3, 20, "holes").to("meta")
    with pytest.raises(NotImplementedError):
        build_packing(mask)
    p = bucket_packing(mask, 64)
    assert p.indices.shape == (64,) and p.cu_seqlens.shape == (3 + spare_rows(64, 20) + 1,)
    runner = CudaGraphRunner(_model().to("meta"))
    out = runner(torch.ones(3, 20, dtype=torch.long, device="meta"), mask, torch.zeros(3, 20, dtype=torch.long,
                                                                                         device="meta"))
    assert out.last_hidden_state.shape == (3, 20, 32) and out.pooler_output.shape == (3, 32)
    assert runner.stats()["buckets"] == {"4x64+types": 1}  # a mask on the device: the bucket of 3 x 20 rows


# ------------------------------------------------------------------------------------------------ runner
def _calls():
    """Calls of varying shapes: every mask mode, token types, no mask, and the first shape again."""
    g = torch.Generator().manual_seed(5)
    out = []
    for i, (batch, seqlen, mode) in enumerate([(3, 9, "random"), (5, 40, "left"), (2, 17, "holes"), (1, 7, "full"),
                                               (6, 30, "third"), (3, 9, "random")]):
        mask = padding_mask(batch, seqlen, mode, seed=i % 5)
        ids = torch.randint(1, 60, (batch, seqlen), generator=g)
        types = torch.randint(0, 2, (batch, seqlen), generator=g) if i in (1, 4) else None
        out.append((ids, None if mode == "full" else mask, types))
    return out


def _eager(model, ids, mask, types):
    with torch.inference_mode():
        return model(ids, attention_mask=mask, token_type_ids=types)


@pytest.mark.parametrize("pooler", [True, False])
def test_bucketed_forward_matches_eager_as_shapes_vary(pooler):
    model = _model(pooler)
    runner = CudaGraphRunner(model, enabled=True)
    assert runner.mode == "buckets"
    for ids, mask, types in _calls():
        got, want = runner(ids, mask, types), _eager(model, ids, mask, types)
        # the same math on the same rows; only the torch reference ops vs the CPU fast paths differ
        torch.testing.assert_close(got.last_hidden_state, want.last_hidden_state, rtol=1e-5, atol=1e-5)
        if pooler:
            torch.testing.assert_close(got.pooler_output, want.pooler_output, rtol=1e-5, atol=1e-5)
        else:
            assert got.pooler_output is None
    stats = runner.stats()
    assert stats["captures"] == 0 and stats["eager_calls"] == 0
    assert sum(stats["buckets"].values()) == len(_calls())
    assert max(stats["buckets"].values()) == 2  # the first shape came back to its bucket
    assert any(k.endswith("+types") for k in stats["buckets"])


def test_bucketed_forward_on_the_triton_kernels():
    """The kernels the graphs capture (interpreter here) on the bucketed layout: empty slots and filler."""
    model = _model()
    runner = CudaGraphRunner(model, enabled=True, cpu_backend="triton")
    for ids, mask, types in _calls()[:2]:
        got, want = runner(ids, mask, types), _eager(model, ids, mask, types)
        torch.testing.assert_close(got.last_hidden_state, want.last_hidden_state, rtol=1e-5, atol=2e-5)
        torch.testing.assert_close(got.pooler_output, want.pooler_output, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("how", ["env", "argument"])
def test_opt_out_runs_the_eager_forward(how, monkeypatch):
    model = _model()
    if how == "env":
        monkeypatch.setenv("FASTBERT_CUDA_GRAPHS", "0")
        runner = CudaGraphRunner(model)
    else:
        runner = CudaGraphRunner(model, enabled=False)
    assert runner.mode == "off"
    ids, mask, types = _calls()[1]
    got, want = runner(ids, mask, types), _eager(model, ids, mask, types)
    assert torch.equal(got.last_hidden_state, want.last_hidden_state)
    assert runner.stats()["eager_calls"] == 1 and not runner.stats()["buckets"]


def test_host_inputs_are_validated():
    runner = CudaGraphRunner(_model())
    ids = torch.randint(1, 60, (2, 5))
    with pytest.raises(ValueError, match="no real token"):
        runner(ids, torch.tensor([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="outside"):
        runner(ids + 100, torch.ones_like(ids))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        runner(torch.ones(1, 49, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        runner(ids, torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(TypeError):
        CudaGraphRunner(torch.nn.Linear(2, 2))


# ------------------------------------------------------------------------------------------------ on a GPU
def _cuda_model(dtype=torch.float16):
    return _model(max_position_embeddings=128).to("cuda", dtype)


@pytest.mark.gpu
def test_graphs_capture_once_per_bucket_and_match_eager():
    model = _cuda_model()
    runner = CudaGraphRunner(model, enabled=True)
    assert runner.mode == "graphs"
    calls = _calls() + [_calls()[0]]
    for i, (ids, mask, types) in enumerate(calls):
        on_dev = [t.cuda() if t is not None else None for t in (ids, mask, types)]
        given = on_dev if i % 2 else [ids, mask, types]  # device and host inputs in turn
        n = int(mask.sum()) if (i % 2 and mask is not None) else None
        got = runner(*given, num_tokens=n)
        want = _eager(model, *on_dev)
        torch.testing.assert_close(got.last_hidden_state, want.last_hidden_state, rtol=1e-2, atol=1e-2)
        torch.testing.assert_close(got.pooler_output, want.pooler_output, rtol=1e-2, atol=1e-2)
    stats = runner.stats()
    assert stats["captures"] == len(stats["buckets"]) >= 4
    assert max(stats["buckets"].values()) >= 2  # replayed, not captured again


@pytest.mark.gpu
def test_graph_replay_reads_nothing_back():
    model = _cuda_model()
    runner = CudaGraphRunner(model, enabled=True)
    ids, mask, _ = _calls()[1]
    tokens = int(mask.sum())
    ids, mask = ids.cuda(), mask.cuda()
    runner(ids, mask, num_tokens=tokens)  # captures
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
    try:
        out = runner(ids, mask, num_tokens=tokens)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.testing.assert_close(out.last_hidden_state, _eager(model, ids, mask, None).last_hidden_state,
                               rtol=1e-2, atol=1e-2)
