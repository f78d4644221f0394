"""The CPU dispatch (fastbert/dispatch.py): choices made by measurement, bounded, cached, switchable, explained."""

import json
import time
from pathlib import Path

import pytest
import torch

from fastbert import dispatch, ops
from fastbert.packing import packing_from_lengths

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


@pytest.fixture(autouse=True)
def _fresh(tmp_path, monkeypatch):
    """Each test starts with no decision in memory and an empty cache folder of its own."""
    monkeypatch.setenv("FASTBERT_CACHE_DIR", str(tmp_path))
    for name in ("FASTBERT_CALIBRATE", "FASTBERT_CPU_ATTENTION", "FASTBERT_CPU_LINEAR", "FASTBERT_ONEDNN",
                 "FASTBERT_CPU_ISA", "FASTBERT_CPU_GELU"):
        monkeypatch.delenv(name, raising=False)
    dispatch.reset()
    yield
    dispatch.reset()


def _fake_measure(monkeypatch, times: dict):
    """Replace the timing with given medians; returns the list of candidate sets it was asked to time."""
    asked = []

    def fake(candidates, budget_s=dispatch.BUDGET_S):
        asked.append(sorted(candidates))
        for fn in candidates.values():  # every candidate still runs: it must work on the call
            fn()
        dispatch._last_spread.clear()
        dispatch._last_failed.clear()
        return {name: times[name] for name in candidates}

    monkeypatch.setattr(dispatch, "measure", fake)
    return asked


def _attention_call():
    packing = packing_from_lengths([9, 20, 5])
    q, k, v = torch.randn(packing.total, 3, 2, 16).unbind(1)
    return q, k, v, packing


def _count_kernel_calls(monkeypatch):
    calls = []
    real = ops._cpu_attention
    monkeypatch.setattr(ops, "_cpu_attention", lambda *a: calls.append(1) or real(*a))
    return calls


needs_kernel = pytest.mark.skipif(ops._cpu_kernels() is None, reason="the C++ CPU kernels were not built")
needs_onednn = pytest.mark.skipif(not ops._onednn_usable(), reason="oneDNN fused linear is not usable here")


@needs_kernel
@pytest.mark.parametrize("kernel_time, uses_kernel", [(1.0, True), (3.0, False)])
def test_attention_takes_the_backend_measured_faster(monkeypatch, kernel_time, uses_kernel):
    asked = _fake_measure(monkeypatch, {"kernel": kernel_time, "sdpa": 2.0})
    q, k, v, packing = _attention_call()
    with torch.no_grad():
        ref = ops.attention_torch(q, k, v, packing, 0.25)
        ops.attention(q, k, v, packing, 0.25)  # the first call of the shape class measures (and runs both)
        calls = _count_kernel_calls(monkeypatch)
        for _ in range(3):
            out = ops.attention(q, k, v, packing, 0.25)
    assert asked == [["kernel", "sdpa"]]  # measured once for the shape class, then remembered
    assert (len(calls) == 3) == uses_kernel and (len(calls) == 0) != uses_kernel
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    (d,) = dispatch.decisions()
    assert d.choice == ("kernel" if uses_kernel else "sdpa") and "measured here" in d.reason


@needs_onednn
@pytest.mark.parametrize("fastest", ["torch", "onednn", "onednn-packed"])
def test_linear_takes_the_backend_measured_faster(monkeypatch, fastest):
    times = {"torch": 2.0, "onednn": 2.5, "onednn-packed": 3.0, fastest: 1.0}
    _fake_measure(monkeypatch, times)
    w = torch.randn(24, 16)  # frozen: all three candidates
    x, r = torch.randn(70, 16), torch.randn(70, 24)
    with torch.no_grad():
        assert ops._linear_backend(x, w, None, "none") == fastest
        assert ops._linear_backend(x, w, None, "add", r) == fastest
        torch.testing.assert_close(ops.linear(x, w), x @ w.T, rtol=1e-5, atol=1e-5)
        w.requires_grad_(True)  # trainable: the kept layout is not a candidate
        trainable = min(("torch", "onednn"), key=times.get)
        assert ops._linear_backend(x, w, None, "none") == trainable


@needs_onednn
@pytest.mark.parametrize("fastest", ["fused", "separate"])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_runs_where_it_was_measured_faster(monkeypatch, fastest, approximate):
    """oneDNN's GELU post-op or torch's in-place GELU after the GEMM: the measured faster one runs, once
    measured per shape class, and both give F.gelu(F.linear(...))."""
    monkeypatch.setenv("FASTBERT_CPU_LINEAR", "onednn-packed")  # only the epilogue is measured
    asked = _fake_measure(monkeypatch, {"fused": 2.0, "separate": 2.0, fastest: 1.0})
    w, b = torch.randn(48, 16), torch.randn(48)
    x = torch.randn(70, 16)
    fused_calls = []
    real_run = ops._linear_run
    monkeypatch.setattr(ops, "_linear_run", lambda *a, **k: fused_calls.append(a[4] == "gelu") or real_run(*a, **k))
    with torch.no_grad():
        ops.dense_gelu(x, w, b, approximate)  # measures
        fused_calls.clear()
        out = ops.dense_gelu(x, w, b, approximate)
    assert asked == [["fused", "separate"]]
    assert fused_calls == [fastest == "fused"]
    torch.testing.assert_close(out, torch.nn.functional.gelu(x @ w.T + b, approximate=approximate),
                               rtol=1e-5, atol=1e-5)
    (d,) = dispatch.decisions()
    assert d.op == "gelu" and d.choice == fastest and "measured here" in d.reason


@needs_onednn
@pytest.mark.parametrize("mode", ["fused", "separate"])
def test_the_gelu_switch_forces_where_it_runs(monkeypatch, mode):
    monkeypatch.setenv("FASTBERT_CPU_GELU", mode)
    monkeypatch.setattr(dispatch, "measure", lambda *a, **k: pytest.fail("measured a forced choice"))
    monkeypatch.setenv("FASTBERT_CPU_LINEAR", "onednn")
    w, b, x = torch.randn(24, 8), torch.randn(24), torch.randn(5, 8)
    with torch.no_grad():
        assert ops._gelu_epilogue("onednn", x, w, b, "none") == mode
        out = ops.dense_gelu(x, w, b, "none")
    torch.testing.assert_close(out, torch.nn.functional.gelu(x @ w.T + b), rtol=1e-5, atol=1e-5)


@needs_onednn
def test_a_real_calibration_picks_its_own_fastest_and_is_bounded():
    w, b = torch.randn(256, 128), torch.randn(256)
    x = torch.randn(300, 128)
    t0 = time.perf_counter()
    with torch.no_grad():
        ops.dense_gelu(x, w, b, "none")
    elapsed = time.perf_counter() - t0
    by_op = {d.op: d for d in dispatch.decisions()}
    d = by_op["linear"]
    assert set(d.times) == {"torch", "onednn", "onednn-packed"}
    assert d.choice == min(d.times, key=d.times.get)  # never a candidate it measured slower
    if d.choice != "torch":  # a oneDNN GEMM: where its GELU runs was measured too
        g = by_op["gelu"]
        assert set(g.times) == {"fused", "separate"} and g.choice == min(g.times, key=g.times.get)
    # two budgets plus one round of each; generous for a loaded CI machine
    assert elapsed < 2 * dispatch.BUDGET_S + 1.0


def test_measure_stops_at_its_budget():
    def slow():
        time.sleep(0.03)

    t0 = time.perf_counter()
    times = dispatch.measure({"a": slow, "b": slow, "c": slow}, budget_s=0.1)
    elapsed = time.perf_counter() - t0
    assert set(times) == {"a", "b", "c"} and all(t >= 0.03 for t in times.values())
    # warm-ups (0.09 s) and rounds (0.09 s each) until the 0.1 s budget is spent: at most one round past it
    assert elapsed < 0.1 + 2 * 0.09 + 0.1


def test_a_failing_candidate_is_left_out_and_the_choice_not_cached():
    def broken():
        raise RuntimeError("no")

    def ok():  # long enough that its rounds never vary 3x (which would be reported as a busy machine instead)
        time.sleep(0.005)

    assert set(dispatch.measure({"ok": ok, "broken": broken})) == {"ok"}
    assert dispatch.choose("linear", "test class", lambda: {"broken": broken, "ok": ok}, "AVX2") == "ok"
    assert "broken failed" in dispatch.decisions()[0].reason
    assert not Path(dispatch.cache_path()).exists()


@needs_kernel
def test_calibration_off_takes_the_table(monkeypatch):
    monkeypatch.setenv("FASTBERT_CALIBRATE", "0")

    def never(*a, **k):
        raise AssertionError("measured with calibration off")

    monkeypatch.setattr(dispatch, "measure", never)
    q, k, v, packing = _attention_call()
    with torch.no_grad():
        ops.attention(q, k, v, packing)
        ops.linear(torch.randn(5, 8), torch.randn(4, 8))
    by_op = {d.op: d for d in dispatch.decisions()}
    assert by_op["attention"].choice == dispatch.TABLE["attention"][ops.cpu_isa()]
    assert "calibration off" in by_op["attention"].reason
    if "linear" in by_op:
        want = dispatch.TABLE["linear"].get(torch.backends.cpu.get_cpu_capability(), "torch")
        assert by_op["linear"].choice == want
    if ops._onednn_usable():
        monkeypatch.setenv("FASTBERT_CPU_LINEAR", "onednn")
        with torch.no_grad():
            ops.dense_gelu(torch.randn(5, 8), torch.randn(4, 8), None, "none")
        gelu = {d.op: d for d in dispatch.decisions()}["gelu"]
        want = dispatch.TABLE["gelu"].get(torch.backends.cpu.get_cpu_capability(), "fused")
        assert gelu.choice == want
    assert not Path(dispatch.cache_path()).exists()


@needs_kernel
def test_decisions_are_cached_on_disk_per_machine(monkeypatch):
    _fake_measure(monkeypatch, {"kernel": 1.0, "sdpa": 2.0})
    q, k, v, packing = _attention_call()
    with torch.no_grad():
        ops.attention(q, k, v, packing)
    path = Path(dispatch.cache_path())
    data = json.loads(path.read_text())
    assert data["machine"]["torch"] == torch.__version__ and len(data["decisions"]) == 1

    dispatch.reset()  # a new process, in effect: the decision comes from disk, nothing is measured
    asked = _fake_measure(monkeypatch, {"kernel": 1.0, "sdpa": 2.0})
    with torch.no_grad():
        ops.attention(q, k, v, packing)
    assert asked == [] and "measured earlier" in dispatch.decisions()[0].reason

    # another machine key (here: a capped torch) has a cache of its own
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    assert dispatch.cache_path() != str(path)

    # a damaged cache is ignored and measured again
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    path.write_text("{not json")
    dispatch.reset()
    with torch.no_grad():
        ops.attention(q, k, v, packing)
    assert asked == [["kernel", "sdpa"]]


def test_a_noisy_measurement_is_not_cached(monkeypatch):
    def fake(candidates, budget_s=dispatch.BUDGET_S):
        dispatch._last_failed.clear()
        dispatch._last_spread.clear()
        dispatch._last_spread.update({"a": 5.0, "b": 1.1})
        return {"a": 1.0, "b": 2.0}

    monkeypatch.setattr(dispatch, "measure", fake)
    assert dispatch.choose("linear", "test class", lambda: {"b": lambda: 0, "a": lambda: 0}, "AVX2") == "a"
    assert "not cached" in dispatch.decisions()[0].reason
    assert not Path(dispatch.cache_path()).exists()


@needs_kernel
@pytest.mark.parametrize("mode, expect_kernel", [("kernel", True), ("sdpa", False), ("0", False)])
def test_switches_force_attention_backends(monkeypatch, mode, expect_kernel):
    monkeypatch.setenv("FASTBERT_CPU_ATTENTION", mode)
    monkeypatch.setattr(dispatch, "measure", lambda *a, **k: pytest.fail("measured a forced choice"))
    q, k, v, packing = _attention_call()
    calls = _count_kernel_calls(monkeypatch)
    with torch.no_grad():
        ops.attention(q, k, v, packing)
    assert bool(calls) == expect_kernel


@needs_onednn
@pytest.mark.parametrize("env, value, want", [("FASTBERT_CPU_LINEAR", "torch", "torch"),
                                              ("FASTBERT_CPU_LINEAR", "onednn", "onednn"),
                                              ("FASTBERT_CPU_LINEAR", "onednn-packed", "onednn-packed"),
                                              ("FASTBERT_ONEDNN", "0", "torch")])
def test_switches_force_linear_backends(monkeypatch, env, value, want):
    monkeypatch.setenv(env, value)
    with torch.no_grad():
        assert ops._linear_backend(torch.randn(3, 8), torch.randn(4, 8), None, "none") == want


def test_a_bad_switch_value_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("FASTBERT_CPU_ATTENTION", "fast")
    with pytest.raises(ValueError, match="FASTBERT_CPU_ATTENTION='fast'"):
        dispatch.forced("attention")
    monkeypatch.setenv("FASTBERT_CPU_LINEAR", "mkl")
    with pytest.raises(ValueError, match="FASTBERT_CPU_LINEAR='mkl'"):
        dispatch.forced("linear")
    monkeypatch.setenv("FASTBERT_CPU_GELU", "yes")
    with pytest.raises(ValueError, match="FASTBERT_CPU_GELU='yes'"):
        dispatch.forced("gelu")


def test_backends_say_why_they_decline():
    q = torch.randn(4, 2, 8, requires_grad=True)
    reasons = ops.cpu_attention_declines(q, q, q, dropout_p=0.1)
    assert any("gradients" in r for r in reasons) and any("dropout" in r for r in reasons)
    assert any("fp32" in r for r in ops.cpu_attention_declines(*(q.detach().double(),) * 3))
    with ops.force_backend("torch"):
        assert any("force_backend" in r for r in ops.cpu_attention_declines(*(q.detach(),) * 3))
    w = torch.randn(8, 8, requires_grad=True)
    assert any("gradients" in r for r in ops.linear_declines(torch.randn(4, 8), w))
    with torch.no_grad():
        assert any("kept layout" in r for r in ops.linear_declines(torch.randn(4, 8), w))


def _column(md: Path, header: str) -> list[float]:
    """The "1.23x" figures of one column of a committed benchmark table (rows without one, "-", left out)."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in md.read_text().splitlines()
            if line.startswith("|")]
    col = rows[0].index(header)
    return [float(r[col].rstrip("x")) for r in rows[2:] if r[col] != "-"]


@pytest.mark.parametrize("isa", ["avx512", "avx2"])
def test_the_table_follows_the_committed_measurements(isa):
    """TABLE (used with calibration off) says "kernel" for a build only where the committed benchmark of that
    build measured the kernel at least as fast as SDPA on every case; the kept oneDNN layout likewise against
    F.linear, and the GELU apart from the GEMM likewise against oneDNN's fused GELU."""
    md = RESULTS / f"cpu-{isa}" / "cpu_attention.md"
    attention = _column(md, "vs sdpa-padded") + _column(md, "vs sdpa-exact")
    assert attention, "no measurements"
    assert (dispatch.TABLE["attention"][isa] == "kernel") == (min(attention) >= 1.0)
    gemm = _column(RESULTS / f"cpu-{isa}" / "cpu_gemm.md", "oneDNN kept vs F.linear")
    assert gemm, "no measurements"
    assert (dispatch.TABLE["linear"][isa.upper()] == "onednn-packed") == (min(gemm) >= 1.0)
    apart = _column(RESULTS / f"cpu-{isa}" / "cpu_gemm.md", "GELU separate vs fused")
    assert apart, "no GELU measurements"
    assert (dispatch.TABLE["gelu"][isa.upper()] == "separate") == (min(apart) >= 1.0)


# which backend runs, for device (CPU here) x dtype x gradients x torch.compile x switches; "auto" rows use a
# fake measurement in which the fast path wins
BACKEND_TABLE = [
    # dtype, grad, compiling, switches, force_backend, attention, linear
    (torch.float32, False, False, {}, "auto", "kernel", "onednn-packed"),
    (torch.float64, False, False, {}, "auto", "sdpa", "torch"),
    (torch.float32, True, False, {}, "auto", "sdpa", "torch"),
    (torch.float32, False, True, {}, "auto", "sdpa", "torch"),
    (torch.float32, False, False, {"FASTBERT_CPU_ATTENTION": "sdpa", "FASTBERT_CPU_LINEAR": "torch"}, "auto",
     "sdpa", "torch"),
    (torch.float32, False, False, {"FASTBERT_CPU_ATTENTION": "kernel", "FASTBERT_CPU_LINEAR": "onednn"}, "auto",
     "kernel", "onednn"),
    (torch.float32, False, False, {"FASTBERT_ONEDNN": "0"}, "auto", "kernel", "torch"),
    (torch.float32, False, False, {}, "torch", "sdpa", "torch"),
    (torch.float32, False, False, {}, "triton", "triton", "onednn-packed"),
]


@needs_kernel
@needs_onednn
@pytest.mark.parametrize("dtype, grad, compiling, switches, force, attention, linear", BACKEND_TABLE)
def test_which_backend_runs(monkeypatch, dtype, grad, compiling, switches, force, attention, linear):
    _fake_measure(monkeypatch, {"kernel": 1.0, "sdpa": 2.0, "torch": 3.0, "onednn": 2.0, "onednn-packed": 1.0})
    for name, value in switches.items():
        monkeypatch.setenv(name, value)
    if compiling:
        monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    q, k, v, packing = _attention_call()
    q, k, v = (t.to(dtype).requires_grad_(grad) for t in (q, k, v))
    w = torch.randn(8, 16, dtype=dtype)  # frozen
    x = torch.randn(70, 16, dtype=dtype, requires_grad=grad)
    with ops.force_backend(force):
        got_attention = ops.attention_backend(q, k, v, packing, 0.25, 0.0, lambda: None)
        got_linear = ops._linear_backend(x, w, None, "none")
    assert (got_attention, got_linear) == (attention, linear)
