"""fastbert profile: FLOP counts against hand counts, the roof cache, and the command's outputs."""

import json

import torch
import torch.nn.functional as F

from fastbert import cli
from fastbert.bench.profile import device_roof, op_cost, profile_fn
from fastbert.packing import packing_from_lengths

CPU = torch.device("cpu")


def _by_flops(rows):
    return {r.name: r for r in rows if r.flops > 0}


def test_matmul_flops_match_hand_count():
    m, k, n = 64, 48, 80
    a, b = torch.randn(m, k), torch.randn(k, n)
    assert op_cost("aten::mm", [[m, k], [k, n]]) == (2 * m * k * n, 4 * (m * k + k * n + m * n))
    rows, step = profile_fn(lambda: torch.mm(a, b), CPU)
    counted = _by_flops(rows)
    assert sum(r.flops for r in counted.values()) == 2 * m * k * n
    assert step > 0


def test_linear_flops_counted_once():
    x, w, bias = torch.randn(3, 5, 16), torch.randn(24, 16), torch.randn(24)
    rows, _ = profile_fn(lambda: F.linear(x, w, bias), CPU)
    total = sum(r.flops for r in rows)
    # a multiply-add per weight per token (+ the bias add where the kernel reports it)
    assert 2 * 15 * 16 * 24 <= total <= 2 * 15 * 16 * 24 + 15 * 24


def test_onednn_fused_linear_flops_match_hand_count(monkeypatch):
    from fastbert import ops

    monkeypatch.setenv("FASTBERT_CPU_LINEAR", "onednn")  # the oneDNN rows are the subject, whatever is faster
    if not ops._onednn_usable():
        import pytest

        pytest.skip("oneDNN fused linear is not usable here")
    m, k, n = 9, 40, 48
    x, w, bias, res = torch.randn(m, k), torch.randn(n, k), torch.randn(n), torch.randn(m, n)
    ln = torch.ones(n), torch.zeros(n)
    with torch.no_grad():
        plain, _ = profile_fn(lambda: ops.linear(x, w, bias), CPU)
        fused, _ = profile_fn(lambda: ops.dense_add_layer_norm(x, w, bias, res, *ln, 1e-5), CPU)
    gemm = [r for r in plain if r.name == "mkldnn::_linear_pointwise"]
    assert len(gemm) == 1 and gemm[0].flops == 2 * m * k * n
    gemm = [r for r in fused if r.name == "mkldnn::_linear_pointwise"]
    assert len(gemm) == 1 and gemm[0].flops == 2 * m * k * n + m * n  # + the residual add


def test_attention_flops_match_hand_count():
    b, h, lq, lk, d = 2, 3, 17, 17, 8
    q, k, v = (torch.randn(b, h, n, d) for n in (lq, lk, lk))
    hand = 4 * b * h * lq * lk * d  # QK^T and PV, a multiply-add as 2
    rows, _ = profile_fn(lambda: F.scaled_dot_product_attention(q, k, v), CPU)
    assert sum(r.flops for r in rows) == hand
    name = "aten::_scaled_dot_product_flash_attention_for_cpu"
    assert op_cost(name, [[b, h, lq, d], [b, h, lk, d], [b, h, lk, d]])[0] == hand


def test_roof_is_measured_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTBERT_CACHE_DIR", str(tmp_path))
    import fastbert.bench.profile as prof

    calls = []
    real = prof.measure_roof
    monkeypatch.setattr(prof, "measure_roof", lambda d, t: calls.append(1) or real(d, t, size=256))
    r1 = device_roof(CPU)
    r2 = device_roof(CPU)
    assert calls == [1] and r1 == r2 and r1["tflops"] > 0 and r1["gbps"] > 0
    assert (tmp_path / "roof.json").is_file()


def test_profile_command_writes_outputs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FASTBERT_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "prof"
    rc = cli.main(
        [
            "profile",
            "--model",
            "tiny",
            "--batch-size",
            "2",
            "--seq-len",
            "16",
            "--mode",
            "train",
            "--no-roof",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    result = json.loads((out / "profile.json").read_text())
    assert result["ops"] and result["meta"]["step_ms"] > 0
    assert abs(sum(o["share"] for o in result["ops"]) - 1.0) < 1e-6
    assert any(o["gflop"] > 0 for o in result["ops"])
    trace = json.loads((out / "trace.json").read_text())
    assert "traceEvents" in trace
    assert (out / "profile.png").read_bytes()[:4] == b"\x89PNG"
    assert "share" in capsys.readouterr().out


def test_cuda_sdpa_leaf_ops_use_their_batch_length_heads_layout():
    b, h, lq, lk, d = 2, 12, 128, 128, 64
    hand = 4 * b * h * lq * lk * d
    shapes = [[b, lq, h, d], [b, lk, h, d], [b, lk, h, d]]
    assert op_cost("aten::_flash_attention_forward", shapes)[0] == hand
    assert op_cost("aten::_efficient_attention_forward", shapes)[0] == hand
    # the composite SDPA ops above them carry no count (their leaves do): nothing counted twice
    assert op_cost("aten::_scaled_dot_product_flash_attention", [[b, h, lq, d]] * 3)[0] == 0


def test_gpu_kernel_rows_are_not_counted_twice():
    """On CUDA the profiler lists a kernel both as its own row and inside its launching op's device time."""
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    from fastbert.bench.profile import aggregate

    def ev(key, device_type, device_us, shapes=(), annotation=False):
        return SimpleNamespace(key=key, device_type=device_type, self_device_time_total=device_us,
                               self_cpu_time_total=5.0, count=1, input_shapes=list(shapes),
                               is_user_annotation=annotation)

    events = [
        ev("aten::mm", DeviceType.CPU, 100.0, [[64, 48], [48, 80]]),
        ev("sm90_xmma_gemm_f32f32", DeviceType.CUDA, 100.0),
        ev("fastbert::layer_norm_fwd", DeviceType.CPU, 20.0, [[64, 80], [80], [80], [], []]),
        ev("_layer_norm_fwd_kernel", DeviceType.CUDA, 20.0),
        ev("my-annotation", DeviceType.CPU, 120.0, annotation=True),
    ]
    rows, step = aggregate(events, cuda=True)
    assert [r.name for r in rows] == ["aten::mm", "fastbert::layer_norm_fwd"]
    assert step == 120e-6
    assert rows[0].flops == 2 * 64 * 48 * 80 and rows[1].flops == 8 * 64 * 80
    cpu_rows, cpu_step = aggregate(events, cuda=False)  # on CPU every op's own CPU time counts
    assert cpu_step == 5 * 5e-6


def test_fastbert_attention_flops_come_from_the_lengths(monkeypatch):
    from fastbert import ops

    monkeypatch.setenv("FASTBERT_CPU_ATTENTION", "kernel")  # the kernel's row is the subject
    lengths = [7, 3, 12]
    packing = packing_from_lengths(lengths)
    q = torch.randn(packing.total, 2, 16)
    hand = 4.0 * 2 * 16 * sum(n * n for n in lengths)
    with torch.no_grad():
        rows, _ = profile_fn(lambda: ops.attention(q, q, q, packing), CPU, attn_flops=hand)
    if ops._cpu_kernels() is None:
        import pytest

        pytest.skip("the C++ CPU kernels were not built")
    attn = [r for r in rows if r.name == "fastbert::cpu_attention"]
    assert len(attn) == 1 and attn[0].flops == hand
