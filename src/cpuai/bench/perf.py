"""Performance mode for one configuration: cold start, then sync latency and async throughput per batch.

The engine is loaded once (that load is the cold start) and reused for every batch size; the
input batch for each size is made once, outside the timed region.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cpuai.bench.config import RunConfig, check_batch
from cpuai.bench.engines import engine_settings, open_engine
from cpuai.bench.feeds import make_feeds
from cpuai.bench.measure import (
    Budget,
    ColdStart,
    Throughput,
    measure_cold_start,
    measure_latency,
    measure_throughput,
)
from cpuai.bench.stats import LatencyStats
from cpuai.errors import ConfigError
from cpuai.package import ModelPackage

APIS = ("sync", "async", "both")
Progress = Callable[[str], None]


@dataclass
class BatchResult:
    """Latency (sync) and throughput (async) of one batch size."""

    batch: int
    latency: LatencyStats | None = None
    throughput: Throughput | None = None

    def row(self) -> dict[str, Any]:
        """A flat record: the fields a table, CSV or plot needs."""
        out: dict[str, Any] = {"batch": self.batch}
        if self.latency is not None:
            lat = self.latency
            out |= {
                "median_ms": lat.median_ms,
                "p90_ms": lat.p90_ms,
                "p99_ms": lat.p99_ms,
                "min_ms": lat.min_ms,
                "max_ms": lat.max_ms,
                "mean_ms": lat.mean_ms,
                "std_ms": lat.std_ms,
                "count": lat.count,
                "spread": lat.spread,
                "stable": lat.stable,
                "sync_samples_per_s": self.batch * 1e3 / lat.median_ms if lat.median_ms > 0 else None,
            }
        if self.throughput is not None:
            tp = self.throughput
            out |= {
                "in_flight": tp.in_flight,
                "samples_per_s": tp.samples_per_s,
                "requests_per_s": tp.requests_per_s,
                "loaded_median_ms": tp.median_ms,
                "loaded_p99_ms": tp.p99_ms,
            }
        return out


@dataclass
class PerfResult:
    """Everything one configuration measured, with the exact settings the engine ran."""

    config: RunConfig
    engine: dict[str, Any]
    cold_start: ColdStart
    batches: list[BatchResult] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "engine": self.engine,
            "cold_start": self.cold_start.to_dict(),
            "inputs": self.inputs,
            "latency": [{"batch": b.batch} | b.latency.to_dict() for b in self.batches if b.latency],
            "throughput": [b.throughput.to_dict() for b in self.batches if b.throughput],
            "rows": [b.row() for b in self.batches],
        }


def check_api(api: str) -> str:
    if api not in APIS:
        raise ConfigError(f"unknown --api {api!r}", fix="use sync (latency), async (throughput) or both")
    return api


def run_performance(
    package: ModelPackage,
    config: RunConfig,
    batches: Sequence[int],
    budget: Budget,
    *,
    cores: int,
    api: str = "both",
    progress: Progress | None = None,
) -> PerfResult:
    """Cold start, then for each batch: sync latency (``api`` sync/both) and throughput (async/both)."""
    check_api(api)
    for b in batches:
        check_batch(b)
    if not batches:
        raise ConfigError("no batch sizes given", fix="pass e.g. --batch 1,8,32")
    say = progress or (lambda _text: None)
    used: dict[str, RunConfig] = {}

    def load() -> Any:
        engine, used["config"] = open_engine(package, config.with_(batch=batches[0]), cores)
        return engine

    say(f"cold start: load {package.manifest.name} and run the first batch of {batches[0]}")
    cold, engine = measure_cold_start(load, lambda e: make_feeds(package, e, batches[0]).arrays)
    try:
        result = PerfResult(config=used["config"], engine=engine_settings(engine), cold_start=cold)
        for b in batches:
            feeds = make_feeds(package, engine, b)
            result.inputs[str(b)] = feeds.describe()
            row = BatchResult(batch=b)
            if api in ("sync", "both"):
                say(f"latency at batch {b} (sync, one request at a time)")
                row.latency = measure_latency(engine, feeds.arrays, budget)
            if api in ("async", "both"):
                say(f"throughput at batch {b} ({engine.streams} request(s) in flight)")
                row.throughput = measure_throughput(engine, feeds.arrays, budget, batch=b)
            result.batches.append(row)
        return result
    finally:
        engine.close()
