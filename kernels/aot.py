"""Ahead-of-time compile of every kernel for sm_75 / sm_80 / sm_90, with a resource report.

No GPU is needed: ``triton.compile(ASTSource(...), target=GPUTarget("cuda", cc, 32))`` runs the whole
pipeline to a cubin. Registers and spills are not in Triton's metadata without a driver (they come from
loading the binary), so they are read from ``ptxas -v`` run on the kernel's PTX with the ptxas that ships in
the Triton wheel; shared memory is Triton's own ``metadata.shared`` (dynamic shared memory at launch).

Configs come from the same functions the launchers use (``fwd_config``/``bwd_config``/``config``), over the
dtypes, flag sets and sizes a BERT model can launch, so a config that would not fit a target fails here.

Under ``TRITON_INTERPRET=1`` the ``@triton.jit`` objects are interpreter wrappers that cannot be compiled,
so ``report`` then runs itself in a subprocess with the interpreter off.

    python -m fastbert.kernels.aot [--quick] [--targets 75,80,90] [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

TARGETS = (75, 80, 90)
SHARED_LIMIT = {75: 64 * 1024, 80: 163 * 1024, 86: 99 * 1024, 89: 99 * 1024, 90: 227 * 1024}
_TT = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}


@dataclass
class Job:
    module: str  # kernel file under fastbert.kernels
    kernel: str  # @triton.jit function name
    config: str  # human-readable config
    pointers: dict  # arg name -> triton pointer type ("*fp16") or None (absent: constexpr None)
    floats: tuple  # scalar args passed as fp32 (other scalars are i32)
    constexprs: dict
    num_warps: int
    num_stages: int
    target: int = 90


@dataclass
class Row:
    kernel: str
    config: str
    target: str
    registers: int | None
    shared: int | None
    spills: int | None  # spill stores + spill loads, bytes
    ok: bool
    error: str = ""


def _dtypes():
    import torch

    return (torch.float16, torch.bfloat16, torch.float32)


# What the fastbert model launches, so that "every config it can launch" is a finite list:
# - hidden sizes of BERT models (tiny 128 ... large 1024) give LayerNorm blocks of 128..1024 columns;
# - pointer dtypes: a model cast to one dtype, or autocast (fp16/bf16 GEMM outputs, fp32 parameters; every
#   LayerNorm returns fp32 under autocast, as torch's does, so the residual stream and LN outputs are fp32);
# - LayerNorm flags (x_bias, residual, dropout): dense+residual+LN in eval (1,1,0) and train (1,1,1),
#   embeddings with default token types (1,1,0) or given ones (0,1,0), the MLM head transform (0,0,0).
_HIDDENS = (128, 256, 384, 512, 768, 1024)
_LN_FLAGS = ((True, True, False), (True, True, True), (False, True, False), (False, False, False))


def _signatures():
    """(activation, parameter, residual, LayerNorm output) pointer dtypes."""
    out = [(d, d, d, d) for d in ("fp16", "bf16", "fp32")]
    for a in ("fp16", "bf16"):
        out.append((a, "fp32", "fp32", "fp32"))
    return out


def _layer_norm_jobs(quick: bool) -> list[Job]:
    from . import layer_norm as ln

    jobs, seen = [], set()
    hiddens = (768,) if quick else _HIDDENS
    flag_sets = ((True, True, True),) if quick else _LN_FLAGS
    sigs = [("fp16", "fp16", "fp16", "fp16")] if quick else _signatures()
    for act, par, res_t, out_t in sigs:
        t, p = "*" + act, "*" + par
        for n in sorted({ln.fwd_config(h)["BLOCK_N"] for h in hiddens}):
            cfg = ln.fwd_config(n)
            warps = cfg.pop("num_warps")
            for has_xb, has_res, has_drop in flag_sets:
                ptr = dict(X=t, X_BIAS=p if has_xb else None, RES="*" + res_t if has_res else None, W=p,
                           MEAN="*fp32", RSTD="*fp32")
                key = (n, has_xb, has_res, has_drop, out_t, tuple(sorted((k, str(v)) for k, v in ptr.items())))
                if key in seen:
                    continue
                seen.add(key)
                name = (f"x={act} params={par}{f' res={res_t}' if has_res else ''} y={out_t} BLOCK_N={n}"
                        f" xbias={int(has_xb)} res={int(has_res)} dropout={int(has_drop)}")
                flags = dict(HAS_X_BIAS=has_xb, HAS_RES=has_res, HAS_W=True, HAS_DROPOUT=has_drop, **cfg)
                jobs.append(Job("layer_norm", "_layer_norm_fwd_kernel", name,
                                dict(ptr, B=p, Y="*" + out_t), ("eps", "dropout_p"), dict(flags, HAS_B=True),
                                warps, 1))
                jobs.append(Job("layer_norm", "_layer_norm_bwd_kernel", name,
                                dict(ptr, DY="*" + out_t, DX=t, DRES=("*" + res_t) if has_res else None,
                                     DW_PART="*fp32", DB_PART="*fp32", DXB_PART="*fp32" if has_xb else None),
                                ("dropout_p",), flags, warps, 1))
    return jobs


def _gelu_jobs(quick: bool) -> list[Job]:
    from . import gelu

    jobs, seen = [], set()
    sigs = [("fp16", "fp16")] if quick else sorted({(a, p) for a, p, _, _ in _signatures()})
    for act, par in sigs:
        t = "*" + act
        for n in (3072,) if quick else (64, 3072):
            cfg = gelu.config(n)
            warps = cfg.pop("num_warps")
            for has_bias in (True,) if quick else (True, False):
                for tanh in (False,) if quick else (False, True):
                    bias = "*" + par if has_bias else None
                    key = (n, has_bias, tanh, act, bias)
                    if key in seen:
                        continue
                    seen.add(key)
                    name = (f"x={act}{f' bias={par}' if has_bias else ' no bias'} BLOCK_M={cfg['BLOCK_M']}"
                            f" BLOCK_N={cfg['BLOCK_N']} tanh={int(tanh)}")
                    flags = dict(HAS_BIAS=has_bias, TANH=tanh, **cfg)
                    jobs.append(Job("gelu", "_bias_gelu_fwd_kernel", name, dict(X=t, BIAS=bias, Y=t), (), flags,
                                    warps, 1))
                    jobs.append(Job("gelu", "_bias_gelu_bwd_kernel", name,
                                    dict(X=t, BIAS=bias, DY=t, DX=t, DB_PART="*fp32" if has_bias else None), (),
                                    flags, warps, 1))
    return jobs


def _attention_jobs(quick: bool, target: int) -> list[Job]:
    from . import attention as attn

    cap = divmod(target, 10)
    jobs = []
    head_dims = (64,) if quick else (16, 32, 64, 128, 256)  # every padded head dim up to 256
    dropouts = (True,) if quick else (True, False)
    for dtype in _dtypes()[:1] if quick else _dtypes():
        t = "*" + _TT[str(dtype).split(".")[1]]
        ieee = dtype == _dtypes()[2]
        for hd in head_dims:
            for has_drop in dropouts:
                flags = dict(HAS_DROPOUT=has_drop, IEEE=ieee)
                used = "*i32"
                qkv = dict(Q=t, K=t, V=t)
                floats = ("qk_scale", "dropout_p")
                for kernel, cfg_fn in (("_attn_fwd_kernel", attn.fwd_config),
                                       ("_attn_bwd_dkdv_kernel", attn.bwd_config),
                                       ("_attn_bwd_dq_kernel", attn.bwd_config)):
                    if kernel != "_attn_fwd_kernel" and ieee and hd > 128 and cap < (8, 0):
                        continue  # rejected by attention(): no fp32 tile of head dim 256 fits sm_75's 64 KB
                    cfg = dict(cfg_fn(hd, dtype, cap, dropout=has_drop))
                    warps, stages = cfg.pop("num_warps"), cfg.pop("num_stages")
                    if kernel == "_attn_fwd_kernel":
                        ptr = dict(qkv, O=t, LSE="*fp32", CU_SEQLENS="*i32", SEQUSED_K=used)
                    elif kernel == "_attn_bwd_dkdv_kernel":
                        ptr = dict(qkv, DO=t, DK=t, DV=t, LSE="*fp32", DELTA="*fp32", CU_SEQLENS="*i32",
                                   SEQUSED_K=used)
                    else:
                        ptr = dict(qkv, DO=t, DQ=t, LSE="*fp32", DELTA="*fp32", CU_SEQLENS="*i32",
                                   SEQUSED_K=used)
                    name = (f"{t[1:]} M={cfg['BLOCK_M']} N={cfg['BLOCK_N']} D={cfg['BLOCK_D']} w={warps} s={stages}"
                            f" dropout={int(has_drop)}")
                    fl = ("sm_scale",) + floats if kernel != "_attn_fwd_kernel" else floats
                    jobs.append(Job("attention", kernel, name, ptr, fl, dict(flags, **cfg), warps, stages, target))
            delta = dict(attn.DELTA_CONFIG)
            warps = delta.pop("num_warps")
            jobs.append(Job("attention", "_attn_bwd_delta_kernel", f"{t[1:]} M={delta['BLOCK_M']}",
                            dict(O=t, DO=t, DELTA="*fp32"), (), dict(delta, BLOCK_D=attn.block_d(hd)), warps, 1,
                            target))
    # the delta kernel only depends on dtype and BLOCK_D: keep one per (dtype, BLOCK_D)
    seen, out = set(), []
    for j in jobs:
        key = (j.kernel, j.config, tuple(sorted(j.constexprs.items())))
        if key not in seen:
            seen.add(key)
            out.append(j)
    return out


def _mask_jobs() -> list[Job]:
    return [Job("dropout", "_keep_mask_kernel", "BLOCK=1024", dict(KEEP="*i8"), ("dropout_p",),
                dict(BLOCK=1024), 4, 1)]


def jobs(quick: bool = False, targets=TARGETS) -> list[Job]:
    """Every (kernel, config, target) to compile; ``quick`` keeps one representative config per kernel."""
    out = []
    for target in targets:
        for j in _layer_norm_jobs(quick) + _gelu_jobs(quick) + _mask_jobs():
            out.append(Job(**{**asdict(j), "target": target}))
        out.extend(_attention_jobs(quick, target))
    return out


def _ptxas(target: int) -> str:
    """The ptxas Triton itself uses for ``target`` (triton >= 3.9 ships a newer one for sm_90+)."""
    try:
        from triton.backends.nvidia.compiler import get_ptxas

        try:
            return get_ptxas(target).path
        except TypeError:  # older triton: get_ptxas() takes no arch
            return get_ptxas().path
    except (ImportError, AttributeError):
        import triton

        return os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")


_REGS = re.compile(r"Used (\d+) registers")
_SPILL = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")


def _ptxas_usage(ptx: str, arch: str, target: int) -> tuple[int | None, int | None]:
    """(registers, spill bytes) from ``ptxas -v`` on the kernel's PTX."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "k.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        proc = subprocess.run([_ptxas(target), "-v", f"--gpu-name={arch}", src, "-o", os.path.join(tmp, "k.cubin")],
                              capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    regs = _REGS.search(text)
    spill = _SPILL.search(text)
    return (int(regs.group(1)) if regs else None,
            int(spill.group(1)) + int(spill.group(2)) if spill else None)


def compile_job(job: Job) -> Row:
    """Compile one job and measure it (runs with the interpreter off)."""
    import importlib

    import triton
    from triton.backends.compiler import GPUTarget

    mod = importlib.import_module(f"fastbert.kernels.{job.module}")
    fn = getattr(mod, job.kernel)
    sig, constexprs = {}, dict(job.constexprs)
    for name in fn.arg_names:
        if name in job.constexprs:
            sig[name] = "constexpr"
        elif name in job.pointers:
            if job.pointers[name] is None:
                sig[name] = "constexpr"
                constexprs[name] = None
            else:
                sig[name] = job.pointers[name]
        else:
            sig[name] = "fp32" if name in job.floats else "i32"
    ptr_idx = [(i,) for i, n in enumerate(fn.arg_names) if sig[n].startswith("*")]
    attrs = {k: [["tt.divisibility", 16]] for k in ptr_idx}
    target = f"sm_{job.target}"
    try:
        src = triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=constexprs, attrs=attrs)
        compiled = triton.compile(src, target=GPUTarget("cuda", job.target, 32),
                                  options={"num_warps": job.num_warps, "num_stages": job.num_stages})
        shared = int(compiled.metadata.shared)
        arch = f"sm_{job.target}a" if job.target >= 90 else f"sm_{job.target}"
        regs, spills = _ptxas_usage(compiled.asm["ptx"], arch, job.target)
        limit = SHARED_LIMIT.get(job.target)
        ok = limit is None or shared <= limit
        err = "" if ok else f"shared memory {shared} > {limit}"
        return Row(job.kernel, job.config, target, regs, shared, spills, ok, err)
    except Exception as exc:  # report, don't stop the sweep
        return Row(job.kernel, job.config, target, None, None, None, False, f"{type(exc).__name__}: {exc}"[:500])


def report(quick: bool = False, targets=TARGETS, jobs_n: int | None = None) -> list[Row]:
    """Compile everything and return one ``Row`` per (kernel, config, target)."""
    from ._common import interpreting

    if interpreting():
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        cmd = [sys.executable, "-m", "fastbert.kernels.aot", "--json", "--targets", ",".join(map(str, targets))]
        if quick:
            cmd.append("--quick")
        if jobs_n:
            cmd += ["--jobs", str(jobs_n)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"AOT subprocess failed:\n{proc.stderr[-4000:]}")
        return [Row(**r) for r in json.loads(proc.stdout.strip().splitlines()[-1])]
    todo = jobs(quick, targets)
    n = jobs_n or os.cpu_count() or 1
    if n <= 1:
        return [compile_job(j) for j in todo]
    with ProcessPoolExecutor(max_workers=n) as pool:
        return list(pool.map(compile_job, todo))


def format_table(rows: list[Row]) -> str:
    head = ("kernel", "config", "target", "regs", "smem", "spills", "status")
    body = [(r.kernel, r.config, r.target, str(r.registers), str(r.shared), str(r.spills),
             "ok" if r.ok else f"FAIL {r.error}") for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line[:-1], widths)) + "  " + line[-1] for line in [head, *body]]
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--quick", action="store_true", help="one representative config per kernel")
    ap.add_argument("--targets", default=",".join(map(str, TARGETS)), help="compute capabilities, e.g. 75,80,90")
    ap.add_argument("--jobs", type=int, default=None, help="parallel compiles (default: CPU count)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # silence triton 3.9's notice; keeps its default
    targets = tuple(int(t) for t in args.targets.split(","))
    rows = report(args.quick, targets, args.jobs)
    if args.json:
        print(json.dumps([asdict(r) for r in rows]))
    else:
        print(format_table(rows))
        bad = [r for r in rows if not r.ok]
        print(f"\n{len(rows)} compiled, {len(bad)} failed")
    return 0 if all(r.ok for r in rows) else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="fastbert kernels", description=__doc__.splitlines()[0])
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
