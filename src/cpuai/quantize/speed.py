"""Small, repeatable speed measurements the tuner needs: batch-1 latency and batch-N throughput.

The best of repeated runs after a warm-up: on a shared machine a neighbour's burst only ever makes a
run slower, so the fastest run is the steadiest estimate of what the model costs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from cpuai.runtime.engine import Engine


@dataclass(frozen=True)
class Speed:
    """Batch-1 latency (best-of-N ms) and, when measured, batch-``batch`` throughput (items/s)."""

    latency_ms: float
    throughput: float | None = None
    batch: int = 32


def tile(feeds: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """One item's feeds repeated to a batch of ``batch``."""
    return {k: np.repeat(v[:1], batch, axis=0) for k, v in feeds.items()}


def latency_ms(engine: Engine, feeds: dict[str, np.ndarray], *, runs: int = 30, warmup: int = 5) -> float:
    """Fastest wall time of one batch-1 ``infer`` over ``runs``, in milliseconds."""
    one = tile(feeds, 1)
    for _ in range(warmup):
        engine.infer(one)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        engine.infer(one)
        times.append(time.perf_counter() - t)
    return float(np.min(times) * 1000.0)


def throughput(
    engine: Engine, feeds: dict[str, np.ndarray], *, batch: int = 32, runs: int = 8, warmup: int = 2
) -> float:
    """Items per second at ``batch`` items per ``infer`` (fastest of ``runs``)."""
    many = tile(feeds, batch)
    for _ in range(warmup):
        engine.infer(many)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        engine.infer(many)
        times.append(time.perf_counter() - t)
    return float(batch / np.min(times))


def measure(
    engine: Engine,
    feeds: dict[str, np.ndarray],
    *,
    with_throughput: bool = False,
    batch: int = 32,
    runs: int = 30,
) -> Speed:
    """Latency, and throughput when asked for."""
    lat = latency_ms(engine, feeds, runs=runs)
    tput = throughput(engine, feeds, batch=batch, runs=max(3, runs // 4)) if with_throughput else None
    return Speed(latency_ms=lat, throughput=tput, batch=batch)
