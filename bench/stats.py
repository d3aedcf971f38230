"""Pure arithmetic of the benchmark: percentiles, open-loop schedules, summaries, ratios."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9)


def percentile(samples: Sequence[float], p: float) -> float:
    """The nearest-rank percentile of ``samples`` (``p`` in 0..100); NaN when empty.

    Nearest rank: the smallest sample such that at least p % of the samples are at or below it.
    """
    if not samples:
        return math.nan
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"percentile must be between 0 and 100, not {p}")
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def summary(samples: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/p99.9, mean and max of samples (already in the unit wanted)."""
    if not samples:
        return {"count": 0.0}
    ordered = sorted(samples)
    out = {"count": float(len(ordered))}
    for p in PERCENTILES:
        rank = max(1, math.ceil(p / 100.0 * len(ordered)))
        out[f"p{p:g}"] = ordered[rank - 1]
    out["mean"] = sum(ordered) / len(ordered)
    out["max"] = ordered[-1]
    return out


def schedule(rate: float, duration_s: float, start: float = 0.0) -> Iterator[float]:
    """Send times of an open-loop load at a fixed rate: start + i / rate, for i from 0, while
    inside the duration.  Computed from i (not by adding intervals) so it never drifts."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    count = math.floor(rate * duration_s + 1e-9)
    for i in range(count):
        yield start + i / rate


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0 or math.isnan(reference):
        return None
    if math.isnan(value):
        return None
    return value / reference


def per_core(rps: float, cpu_share: float | None) -> float | None:
    """Requests per CPU-second of the gateway: its throughput per core, even when other work
    on a shared machine took part of its core (None when it barely ran)."""
    if cpu_share is None or cpu_share <= 0.05:
        return None
    return rps / cpu_share


def growth(samples: Sequence[float], warmup_share: float = 0.2) -> tuple[float, float, float]:
    """RSS flatness over a soak: (value at the end of warm-up, peak after it, relative growth).

    Warm-up is the first ``warmup_share`` of the samples; growth = peak_after / at_warmup - 1.
    """
    if not samples:
        return math.nan, math.nan, math.nan
    cut = min(len(samples) - 1, max(0, math.floor(len(samples) * warmup_share)))
    base = samples[cut]
    peak = max(samples[cut:])
    return base, peak, (peak / base - 1.0) if base else math.nan
