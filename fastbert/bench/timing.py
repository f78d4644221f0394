"""Timing helpers shared by ``fastbert bench``, ``fastbert profile`` and ``benchmarks/``.

CPU: providers are timed in alternating rounds (A B C, A B C, ...) so that a noisy neighbour slows every
provider alike, and speedups are the median of the per-round ratios. CUDA: CUDA events around each call
after a warm-up, with the device synchronised before each sample.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass
class Stats:
    """Quantiles of a list of samples (seconds)."""

    median: float
    p10: float
    p25: float
    p75: float
    p90: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        s = sorted(samples)
        if not s:
            raise ValueError("no samples")
        return cls(
            median=statistics.median(s),
            p10=quantile(s, 0.10),
            p25=quantile(s, 0.25),
            p75=quantile(s, 0.75),
            p90=quantile(s, 0.90),
            min=s[0],
            max=s[-1],
            n=len(s),
        )

    @property
    def spread(self) -> float:
        """Inter-quartile range relative to the median (0.05 = +-2.5 %)."""
        return (self.p75 - self.p25) / self.median if self.median > 0 else 0.0

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("median", "p10", "p25", "p75", "p90", "min", "max", "n")}


def quantile(sorted_samples: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of already sorted samples."""
    s = sorted_samples
    if len(s) == 1:
        return s[0]
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_once(fn: Callable[[], object], device: torch.device | str = "cpu") -> float:
    """Seconds one call of ``fn`` takes (CUDA events on a CUDA device, wall clock otherwise)."""
    if torch.device(device).type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_alternating(
    fns: dict[str, Callable[[], object]],
    *,
    reps: int = 10,
    warmup: int = 1,
    device: torch.device | str = "cpu",
    budget_s: float | None = None,
    min_reps: int = 3,
    on_round: Callable[[int, int], None] | None = None,
) -> dict[str, list[float]]:
    """Time every function in ``fns`` ``reps`` times, one round at a time (each round calls each function
    once, in turn). Stops early once ``budget_s`` seconds are spent and ``min_reps`` rounds are done.
    Returns ``{name: [seconds per round]}``: sample ``i`` of every provider comes from the same round."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    synchronize(device)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    t_start = time.perf_counter()
    for r in range(reps):
        for name, fn in fns.items():
            samples[name].append(time_once(fn, device))
        if on_round is not None:
            on_round(r + 1, reps)
        if budget_s is not None and r + 1 >= min_reps and time.perf_counter() - t_start > budget_s:
            break
    return samples


def median_ratio(baseline: Sequence[float], candidate: Sequence[float]) -> float:
    """Median over rounds of ``baseline[i] / candidate[i]``: the speedup of ``candidate``."""
    return statistics.median(b / c for b, c in zip(baseline, candidate) if c > 0)
