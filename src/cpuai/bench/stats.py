"""Latency statistics from raw timings: median, p90, p99, min, max, and how stable the run was.

Percentiles are numpy's (linear interpolation). ``spread`` is the relative range of the medians of
the measurement rounds, (max - min) / median: a small spread means repeating the run gives the
same answer; a large one is reported rather than hidden.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Per-request latency in milliseconds over ``count`` timed requests (warm-up excluded)."""

    count: int
    median_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    mean_ms: float
    std_ms: float
    rounds: int
    spread: float  # relative range of the round medians
    stable: bool

    @classmethod
    def from_rounds(cls, rounds: Sequence[Sequence[float]], *, max_spread: float) -> LatencyStats:
        """Statistics over all timings (seconds) of ``rounds``; ``stable`` when spread <= max_spread."""
        samples = np.concatenate([np.asarray(r, dtype=np.float64) for r in rounds if len(r)]) * 1e3
        if samples.size == 0:
            raise ValueError("no timings to summarise")
        spread = round_spread(rounds)
        p50, p90, p99 = np.percentile(samples, [50, 90, 99])
        return cls(
            count=int(samples.size),
            median_ms=float(p50),
            p90_ms=float(p90),
            p99_ms=float(p99),
            min_ms=float(samples.min()),
            max_ms=float(samples.max()),
            mean_ms=float(samples.mean()),
            std_ms=float(samples.std()),
            rounds=sum(1 for r in rounds if len(r)),
            spread=spread,
            stable=spread <= max_spread,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def round_spread(rounds: Sequence[Sequence[float]]) -> float:
    """(max - min) / median of the per-round medians; 0 for fewer than two rounds."""
    medians = [float(np.median(r)) for r in rounds if len(r)]
    if len(medians) < 2:
        return 0.0
    mid = float(np.median(medians))
    return (max(medians) - min(medians)) / mid if mid > 0 else 0.0
