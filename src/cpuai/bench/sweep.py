"""Sweeps: a grid over threads × streams × batch, and core scaling (1..N cores).

Grid points whose threads × streams exceed the core budget are not run; they are listed in the
report's ``skipped`` with the reason, so a sweep never oversubscribes and never hides a gap.
Scaling measures two curves per core count c: latency with one stream of c threads, and
throughput with c streams of one thread (the seeds' core-count curve).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product
from typing import Any

from cpuai.bench.config import RunConfig, check_batch, check_positive
from cpuai.bench.measure import Budget
from cpuai.bench.perf import Progress, run_performance
from cpuai.package import ModelPackage


def grid(
    base: RunConfig, threads: Sequence[int], streams: Sequence[int], cores: int
) -> tuple[list[RunConfig], list[dict[str, Any]]]:
    """The runnable (threads, streams) configurations and the skipped ones with their reason."""
    runnable: list[RunConfig] = []
    skipped: list[dict[str, Any]] = []
    for t, s in product(threads, streams):
        check_positive("threads", t)
        check_positive("streams", s)
        if t * s > cores:
            skipped.append(
                {
                    "threads": t,
                    "streams": s,
                    "reason": f"{t} × {s} = {t * s} threads exceed the {cores}-core budget",
                }
            )
        else:
            runnable.append(base.with_(threads=t, streams=s))
    return runnable, skipped


def run_sweep(
    package: ModelPackage,
    base: RunConfig,
    *,
    threads: Sequence[int],
    streams: Sequence[int],
    batches: Sequence[int],
    budget: Budget,
    cores: int,
    api: str = "both",
    progress: Progress | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Measure every runnable grid point at every batch; returns (results, skipped)."""
    for b in batches:
        check_batch(b)
    configs, skipped = grid(base, threads, streams, cores)
    results = []
    for i, cfg in enumerate(configs, 1):
        if progress:
            progress(f"grid point {i}/{len(configs)}: {cfg.threads} thread(s) × {cfg.streams} stream(s)")
        res = run_performance(package, cfg, batches, budget, cores=cores, api=api).to_dict()
        res["package"] = package.manifest.name
        res["cores"] = cfg.threads * cfg.streams if cfg.threads and cfg.streams else None
        results.append(res)
    return results, skipped


def run_scaling(
    package: ModelPackage,
    base: RunConfig,
    *,
    batch: int,
    budget: Budget,
    cores: int,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """For c = 1..cores: sync latency with 1 stream × c threads, throughput with c streams × 1 thread."""
    check_batch(batch)
    results = []
    for c in range(1, cores + 1):
        for series, cfg, api in (
            ("latency", base.with_(threads=c, streams=1, hint="latency"), "sync"),
            ("throughput", base.with_(threads=1, streams=c, hint="throughput"), "async"),
        ):
            if progress:
                progress(f"{c} core(s): {series} ({cfg.streams} stream(s) × {cfg.threads} thread(s))")
            res = run_performance(package, cfg, [batch], budget, cores=cores, api=api).to_dict()
            res |= {"package": package.manifest.name, "cores": c, "series": series}
            results.append(res)
    return results


def scaling_table(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per core count: latency median/p99 and throughput, with speed-up over one core."""
    by_cores: dict[int, dict[str, Any]] = {}
    for res in results:
        row = res["rows"][0]
        entry = by_cores.setdefault(res["cores"], {"cores": res["cores"]})
        if res["series"] == "latency":
            entry |= {"median_ms": row.get("median_ms"), "p99_ms": row.get("p99_ms")}
        else:
            entry |= {"samples_per_s": row.get("samples_per_s")}
    rows = [by_cores[c] for c in sorted(by_cores)]
    if rows:
        one = rows[0]
        for r in rows:
            if one.get("median_ms") and r.get("median_ms"):
                r["latency_speedup"] = one["median_ms"] / r["median_ms"]
            if one.get("samples_per_s") and r.get("samples_per_s"):
                r["throughput_speedup"] = r["samples_per_s"] / one["samples_per_s"]
    return rows
