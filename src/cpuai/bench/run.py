"""The library entry points behind ``cpuai bench``: each runs one mode and returns a ``Report``.

performance   cold start, latency and throughput for one configuration at each batch
sweep         the grid threads × streams × batch (points over the core budget skipped)
scaling       latency and throughput against cores used, 1..N
compare       packages × backends side by side, ratios against the first
accuracy      the task metric on a data set (what ``cpuai evaluate`` reports)
"""

from __future__ import annotations

from collections.abc import Sequence

from cpuai.bench.accuracy import check_has_metric, run_accuracy
from cpuai.bench.compare import compare_table, run_compare
from cpuai.bench.config import RunConfig
from cpuai.bench.engines import engine_settings, open_engine
from cpuai.bench.measure import Budget
from cpuai.bench.perf import Progress, check_api, run_performance
from cpuai.bench.report import Report, package_summary
from cpuai.bench.sweep import run_scaling, run_sweep, scaling_table
from cpuai.package import ModelPackage


def _settings(config: RunConfig, batches: Sequence[int], budget: Budget, cores: int, api: str) -> dict:
    return {
        "requested": config.to_dict(),
        "batches": list(batches),
        "api": api,
        "cores": cores,
    } | budget.describe()


def performance(
    package: ModelPackage,
    config: RunConfig,
    batches: Sequence[int],
    budget: Budget,
    *,
    cores: int,
    api: str = "both",
    progress: Progress | None = None,
) -> Report:
    """Performance mode for one configuration."""
    check_api(api)
    res = run_performance(package, config, batches, budget, cores=cores, api=api, progress=progress).to_dict()
    res |= {"package": package.manifest.name, "cores": cores}
    return Report("bench", _settings(config, batches, budget, cores, api), [package_summary(package)], [res])


def sweep(
    package: ModelPackage,
    config: RunConfig,
    *,
    threads: Sequence[int],
    streams: Sequence[int],
    batches: Sequence[int],
    budget: Budget,
    cores: int,
    api: str = "both",
    progress: Progress | None = None,
) -> Report:
    """The threads × streams × batch grid."""
    check_api(api)
    results, skipped = run_sweep(
        package,
        config,
        threads=threads,
        streams=streams,
        batches=batches,
        budget=budget,
        cores=cores,
        api=api,
        progress=progress,
    )
    settings = _settings(config, batches, budget, cores, api) | {
        "threads": list(threads),
        "streams": list(streams),
    }
    return Report("sweep", settings, [package_summary(package)], results, skipped=skipped)


def scaling(
    package: ModelPackage,
    config: RunConfig,
    *,
    batch: int,
    budget: Budget,
    cores: int,
    progress: Progress | None = None,
) -> Report:
    """Latency and throughput against cores used."""
    results = run_scaling(package, config, batch=batch, budget=budget, cores=cores, progress=progress)
    report = Report(
        "scaling", _settings(config, [batch], budget, cores, "both"), [package_summary(package)], results
    )
    report.extra["scaling"] = scaling_table(results)
    return report


def compare(
    packages: Sequence[ModelPackage],
    config: RunConfig,
    *,
    backends: Sequence[str] | None,
    batches: Sequence[int],
    budget: Budget,
    cores: int,
    api: str = "both",
    progress: Progress | None = None,
) -> Report:
    """Packages × backends side by side."""
    check_api(api)
    results = run_compare(
        packages,
        config,
        backends=backends,
        batches=batches,
        budget=budget,
        cores=cores,
        api=api,
        progress=progress,
    )
    settings = _settings(config, batches, budget, cores, api) | {
        "backends": list(backends or [config.backend])
    }
    report = Report("compare", settings, [package_summary(p) for p in packages], results)
    report.extra["comparison"] = compare_table(results)
    return report


def accuracy(
    package: ModelPackage,
    config: RunConfig,
    data: str,
    *,
    batch: int,
    cores: int,
    progress: Progress | None = None,
) -> Report:
    """Accuracy mode: the task metric on ``data`` with the engine configured as asked."""
    check_has_metric(package)
    if progress:
        progress(f"load {package.manifest.name} on {config.backend}")
    engine, used = open_engine(package, config.with_(batch=batch), cores)
    try:
        if progress:
            progress(f"score {package.manifest.task} on {data}")
        acc = run_accuracy(package, engine, data, batch_size=batch)
        settings = {
            "requested": config.to_dict(),
            "used": used.to_dict(),
            "engine": engine_settings(engine),
            "data": str(data),
            "batch_size": batch,
            "cores": cores,
        }
    finally:
        engine.close()
    return Report("accuracy", settings, [package_summary(package)], [], accuracy=acc)
