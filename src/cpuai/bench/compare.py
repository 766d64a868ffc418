"""Side-by-side comparison of packages and backends under the same settings, with ratios.

The first entry is the baseline. Per batch size the table gives each entry's median and p99
latency and its throughput, and the ratios against the baseline: ``latency_speedup`` =
baseline median / entry median, ``throughput_ratio`` = entry samples/s / baseline samples/s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cpuai.bench.config import RunConfig
from cpuai.bench.engines import backends_for
from cpuai.bench.measure import Budget
from cpuai.bench.perf import Progress, run_performance
from cpuai.errors import ConfigError
from cpuai.package import ModelPackage


def run_compare(
    packages: Sequence[ModelPackage],
    base: RunConfig,
    *,
    backends: Sequence[str] | None,
    batches: Sequence[int],
    budget: Budget,
    cores: int,
    api: str = "both",
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Measure each package on each backend (default: the one ``base`` names, else auto)."""
    entries: list[tuple[ModelPackage, str]] = []
    for p in packages:
        for b in backends or [base.backend]:
            if b != "auto":
                backends_for(p, [b])
            entries.append((p, b))
    if len(entries) < 2:
        raise ConfigError(
            "--compare needs at least two things to compare",
            fix="pass two or more packages, or one package with --backend onnxruntime,openvino",
        )
    results = []
    for i, (p, b) in enumerate(entries, 1):
        if progress:
            progress(f"entry {i}/{len(entries)}: {p.manifest.name} ({p.manifest.precision}) on {b}")
        res = run_performance(p, base.with_(backend=b), batches, budget, cores=cores, api=api).to_dict()
        res |= {
            "package": p.manifest.name,
            "package_path": str(p.path),
            "package_precision": p.manifest.precision,
        }
        results.append(res)
    return results


def compare_table(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of (entry, batch) with figures and ratios against the first entry at the same batch."""
    base_rows = {r["batch"]: r for r in results[0]["rows"]}
    rows = []
    for i, res in enumerate(results):
        for r in res["rows"]:
            b0 = base_rows.get(r["batch"], {})
            row = {
                "entry": i,
                "package": res["package"],
                "precision": res["engine"]["precision"],
                "backend": res["engine"]["backend"],
                "batch": r["batch"],
                "median_ms": r.get("median_ms"),
                "p99_ms": r.get("p99_ms"),
                "samples_per_s": r.get("samples_per_s"),
            }
            if r.get("median_ms") and b0.get("median_ms"):
                row["latency_speedup"] = b0["median_ms"] / r["median_ms"]
            if r.get("samples_per_s") and b0.get("samples_per_s"):
                row["throughput_ratio"] = r["samples_per_s"] / b0["samples_per_s"]
            rows.append(row)
    return rows
