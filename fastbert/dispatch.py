"""Choosing between CPU paths by measuring them on the machine that runs them.

Where two backends can both take a call (fastbert's C++ attention or torch's SDPA; oneDNN's fused GEMM with
the weight kept in oneDNN's blocked layout, oneDNN reordering it on each call, or ``F.linear``), which one is
faster depends on the CPU (AVX-512 or AVX2 only), the thread count, the library versions and the shape. So the
first call of each *shape class* (for attention: heads x head_dim, the longest sequence's bucket, padded or
not; for a GEMM: the weight's shape, its epilogue, few or many rows; for a GEMM followed by GELU: whether
oneDNN applies the GELU inside the GEMM or torch applies it after, in place) runs every candidate a few times on that
call's own tensors, alternating them, and keeps the fastest by median time. The calibration is bounded
(``BUDGET_S`` per class) and its decisions are cached on disk per machine, library versions and settings, so
a later process reads them instead of measuring again.

Switches (environment):

- ``FASTBERT_CALIBRATE=0``: measure nothing; take the decision table measured per instruction set
  (``TABLE``; a test checks it against the committed benchmark results).
- ``FASTBERT_CPU_ATTENTION=auto|kernel|sdpa`` (``0`` = ``sdpa``), ``FASTBERT_CPU_LINEAR=auto|onednn-packed|onednn|
  torch`` (``FASTBERT_ONEDNN=0`` = ``torch``), ``FASTBERT_CPU_GELU=auto|fused|separate``: force one backend
  wherever it can take the call.
- ``FASTBERT_CPU_ISA=avx512|avx2|baseline``: which build of the C++ kernel runs (see ``fastbert.ops``).
- ``FASTBERT_CACHE_DIR``: where the decisions are kept (default ``~/.cache/fastbert``).

``decisions()`` lists every choice made in this process with its reason; ``fastbert doctor`` prints them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

log = logging.getLogger("fastbert")

BUDGET_S = 0.15  # calibration time per shape class, all candidates together (a round always completes)
MAX_ROUNDS = 9

# What to take without measuring (FASTBERT_CALIBRATE=0), per instruction set: measured on an AMD EPYC (Zen 5)
# with each build forced, and torch capped to AVX2 for the AVX2 rows (benchmarks/results/cpu-*/). The C++
# kernel beat SDPA on every benchmarked case with the AVX-512 and AVX2 builds; the baseline build was never
# measured to win, so it is not taken without a measurement. oneDNN's GELU epilogue is its own erf polynomial:
# with AVX-512 it costs about what torch's separate in-place GELU pass does, with AVX2 the GEMM + GELU runs
# 1.10-1.16x faster with the GELU apart (every row count from 32 to 4,096).
TABLE = {
    "attention": {"avx512": "kernel", "avx2": "kernel", "baseline": "sdpa"},
    "linear": {"AVX512": "onednn-packed", "AVX2": "onednn-packed", "DEFAULT": "torch"},
    "gelu": {"AVX512": "fused", "AVX2": "separate"},
}

SWITCHES = {  # op -> (environment variable, allowed values; "auto" measures)
    "attention": ("FASTBERT_CPU_ATTENTION", ("auto", "kernel", "sdpa")),
    "linear": ("FASTBERT_CPU_LINEAR", ("auto", "onednn-packed", "onednn", "torch")),
    "gelu": ("FASTBERT_CPU_GELU", ("auto", "fused", "separate")),
}


@dataclass
class Decision:
    op: str  # "attention", "linear" or "gelu"
    shape_class: str
    choice: str
    reason: str
    times: dict[str, float] = field(default_factory=dict)  # median seconds per candidate, when measured


_decisions: dict[tuple[str, str], Decision] = {}
_disk: dict = {}  # the cache file's decisions, loaded once


def reset() -> None:
    """Forget this process's decisions (the disk cache stays); tests and ``fastbert doctor`` use it."""
    _decisions.clear()
    _disk.clear()


def decisions() -> list[Decision]:
    return list(_decisions.values())


def calibration_enabled() -> bool:
    return os.environ.get("FASTBERT_CALIBRATE", "1") != "0"


def forced(op: str) -> str:
    """The backend the environment forces for ``op`` ("auto" when none)."""
    name, allowed = SWITCHES[op]
    value = os.environ.get(name, "auto")
    if op == "attention":
        value = {"1": "auto", "0": "sdpa"}.get(value, value)
    elif op == "linear" and os.environ.get("FASTBERT_ONEDNN", "1") == "0":
        value = "torch"
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: expected one of {allowed}")
    return value


# ---------------------------------------------------------------------------------------------- the machine


def cpu_info() -> dict:
    """The CPU's model name and the instruction-set flags that matter here, with torch's view of them."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name":
                    model = value.strip()
                elif key in ("flags", "Features"):
                    flags = set(value.split())
                    break
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_vnni", "amx_tile", "asimd",
              "sve")
    return {
        "model": model,
        "machine": platform.machine(),
        "flags": [f for f in wanted if f in flags],
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn": torch.backends.mkldnn.is_available(),
        "caps": {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
                                            "FASTBERT_CPU_ISA") if k in os.environ},
    }


def _machine_key() -> dict:
    from fastbert import __version__

    info = cpu_info()
    return {"cpu": info["model"], "flags": info["flags"], "caps": info["caps"], "torch": torch.__version__,
            "fastbert": __version__, "python": platform.python_version()}


def cache_path() -> str:
    root = os.environ.get("FASTBERT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "fastbert")
    digest = hashlib.sha256(json.dumps(_machine_key(), sort_keys=True).encode()).hexdigest()[:16]
    return os.path.join(root, f"dispatch-{digest}.json")


def _load_disk() -> dict:
    if "decisions" not in _disk:
        _disk["decisions"] = {}
        try:
            with open(cache_path(), encoding="utf-8") as f:
                data = json.load(f)
            if data.get("machine") == _machine_key() and isinstance(data.get("decisions"), dict):
                _disk["decisions"] = data["decisions"]
        except (OSError, ValueError, AttributeError):
            pass  # no cache yet, or an unreadable one: measure again
    return _disk["decisions"]


def _save_disk() -> None:
    path = cache_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"machine": _machine_key(), "decisions": _disk["decisions"]}, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError as e:  # a read-only home: decisions stay in memory for this process
        if not _disk.get("warned"):
            _disk["warned"] = True
            log.warning("fastbert: could not write the dispatch cache %s (%s); set FASTBERT_CACHE_DIR", path, e)


# ------------------------------------------------------------------------------------------- measuring


def measure(candidates: dict[str, Callable[[], object]], budget_s: float = BUDGET_S) -> dict[str, float]:
    """Median seconds per call of each candidate: one untimed warm-up each, then rounds that run every
    candidate once (in a rotating order) until ``MAX_ROUNDS`` rounds or ``budget_s`` seconds (warm-up
    included), whichever comes first; a round is never cut short, and there is always one. A candidate that
    raises is left out."""
    names = list(candidates)
    start = time.perf_counter()
    _last_failed.clear()
    for name in list(names):
        try:
            candidates[name]()
        except Exception as e:  # noqa: BLE001  (a backend that fails here simply does not win)
            log.warning("fastbert: calibration candidate %s failed: %s", name, e)
            names.remove(name)
            _last_failed.add(name)
    samples: dict[str, list[float]] = {name: [] for name in names}
    rounds = 0
    while names and rounds < MAX_ROUNDS and (rounds == 0 or time.perf_counter() - start < budget_s):
        order = names[rounds % len(names):] + names[: rounds % len(names)]
        for name in order:
            t0 = time.perf_counter()
            candidates[name]()
            samples[name].append(time.perf_counter() - t0)
        rounds += 1
    _last_spread.clear()
    _last_spread.update({name: max(s) / min(s) for name, s in samples.items() if min(s) > 0})
    return {name: statistics.median(s) for name, s in samples.items()}


_last_spread: dict[str, float] = {}  # slowest / fastest round of each candidate in the last measurement
_last_failed: set[str] = set()  # candidates that raised in the last measurement
NOISY = 3.0  # a candidate whose slowest round took this many times its fastest was disturbed (another process)


def choose(op: str, shape_class: str, make_candidates: Callable[[], dict[str, Callable[[], object]]],
           table_key: str) -> str:
    """The backend for ``op`` on calls of ``shape_class``: remembered, else read from the disk cache, else
    measured now among the candidates (every backend that can take a call of this class, as
    ``make_candidates()`` builds them: called only here, off the path of remembered decisions), else
    (calibration off) the table's entry for ``table_key`` when it is a candidate, else the first candidate (the
    torch path). The shape class must determine the candidate set."""
    key = (op, shape_class)
    known = _decisions.get(key)
    if known is not None:
        return known.choice
    candidates = make_candidates()
    names = list(candidates)
    disk_key = f"{op}|{shape_class}"
    if len(names) == 1:
        decision = Decision(op, shape_class, names[0], "the only backend that can take this call")
    elif (cached := _load_disk().get(disk_key)) and cached.get("choice") in candidates:
        decision = Decision(op, shape_class, cached["choice"], f"measured earlier on this machine ({cache_path()})",
                            cached.get("times", {}))
    elif calibration_enabled():
        times = measure(candidates)
        if not times:
            raise RuntimeError(f"every backend failed for {op} on {shape_class}")
        choice = min(times, key=times.get)
        others = ", ".join(f"{n} {times[n] / times[choice]:.2f}x slower" for n in times if n != choice)
        reason = f"measured here: fastest ({others or 'alone'})"
        noisy = [n for n, spread in _last_spread.items() if spread > NOISY]
        if noisy:  # the machine was busy: use it for this process, measure again in the next one
            reason += f"; not cached, rounds of {', '.join(noisy)} varied over {NOISY:g}x (a busy machine)"
        elif _last_failed:  # a backend failed on this one call: not a verdict on the whole shape class
            reason += f"; not cached, {', '.join(sorted(_last_failed))} failed on this call"
        else:
            _load_disk()[disk_key] = {"choice": choice, "times": times}
            _save_disk()
        decision = Decision(op, shape_class, choice, reason, times)
    else:
        choice = TABLE.get(op, {}).get(table_key)
        if choice in candidates:
            reason = f"calibration off: the table measured for {table_key} says {choice}"
        else:
            choice = names[0]
            reason = f"calibration off and no table entry for {table_key} among {names}: the torch path"
        decision = Decision(op, shape_class, choice, reason)
    _decisions[key] = decision
    log.info("fastbert: %s [%s] -> %s (%s)", op, shape_class, decision.choice, decision.reason)
    return decision.choice


def length_bucket(n: int) -> str:
    """Shape class of a longest-sequence length: <=32, <=64, <=128, <=256, <=512, >512."""
    for b in (32, 64, 128, 256, 512):
        if n <= b:
            return f"<={b}"
    return ">512"
