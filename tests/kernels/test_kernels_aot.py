"""Ahead-of-time compile of every kernel for sm_75, sm_80 and sm_90 (no GPU needed), with its resource report.

The test compiles one representative (all flags on) config per kernel, dtype family and target, which keeps
it within the test budget on two cores; ``python -m fastbert.kernels.aot`` sweeps every config the launchers
can pick (all dtypes, head dims, hidden sizes, flag sets) and prints the full table.
"""

from fastbert.kernels import aot


def test_every_kernel_compiles_for_every_target():
    rows = aot.report(quick=True)
    failed = [r for r in rows if not r.ok]
    assert not failed, aot.format_table(failed)
    kernels = {r.kernel for r in rows}
    assert kernels == {
        "_layer_norm_fwd_kernel", "_layer_norm_bwd_kernel", "_bias_gelu_fwd_kernel", "_bias_gelu_bwd_kernel",
        "_keep_mask_kernel", "_attn_fwd_kernel", "_attn_bwd_delta_kernel", "_attn_bwd_dkdv_kernel",
        "_attn_bwd_dq_kernel",
    }
    assert {r.target for r in rows} == {"sm_75", "sm_80", "sm_90"}
    for r in rows:  # ptxas -v gave the numbers
        assert r.registers is not None and r.spills is not None and r.shared is not None, r
    table = aot.format_table(rows)
    assert "_attn_fwd_kernel" in table and "sm_90" in table


def test_job_list_covers_launcher_configs():
    # the full sweep enumerates every head-dim block and dtype the attention launcher can pick
    jobs = aot.jobs(quick=False, targets=(90,))
    fwd = [j for j in jobs if j.kernel == "_attn_fwd_kernel"]
    assert {j.constexprs["BLOCK_D"] for j in fwd} == {16, 32, 64, 128, 256}
    assert {j.pointers["Q"] for j in fwd} == {"*fp16", "*bf16", "*fp32"}


def test_job_list_has_the_autocast_layer_norm_signature():
    # under autocast LayerNorm reads a half-precision GEMM output and writes fp32 (its gradient comes in fp32)
    jobs = aot.jobs(quick=False, targets=(90,))
    fwd = {(j.pointers["X"], j.pointers["W"], j.pointers["Y"]) for j in jobs if j.kernel == "_layer_norm_fwd_kernel"}
    bwd = {(j.pointers["DY"], j.pointers["DX"]) for j in jobs if j.kernel == "_layer_norm_bwd_kernel"}
    for act in ("*fp16", "*bf16"):
        assert (act, "*fp32", "*fp32") in fwd and (act, act, act) in fwd
        assert ("*fp32", act) in bwd
