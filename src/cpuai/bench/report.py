"""Benchmark reports: one JSON-ready record with the machine, the exact settings and every figure.

``Report`` is what ``cpuai bench`` and ``cpuai tune`` write with ``--json``; ``rows()`` flattens it
for ``--csv`` and tables; ``cpuai.bench.plots`` draws it for ``--plot``.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

import cpuai
from cpuai.bench.machine import machine_summary
from cpuai.errors import ConfigError
from cpuai.package import ModelPackage


def package_summary(package: ModelPackage) -> dict[str, Any]:
    """Name, version, task, format, precision, path and size of a package, for a report."""
    m = package.manifest
    return {
        "name": m.name,
        "version": m.version,
        "task": m.task,
        "format": m.format,
        "precision": m.precision,
        "path": str(package.path),
        "size_bytes": package.size_bytes(),
    }


@dataclass
class Report:
    """A benchmark report: ``kind`` is bench, sweep, scaling, compare or tune."""

    kind: str
    settings: dict[str, Any]
    packages: list[dict[str, Any]]
    results: list[dict[str, Any]] = field(default_factory=list)
    accuracy: dict[str, Any] | None = None
    skipped: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=machine_summary)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    command: list[str] = field(default_factory=lambda: ["cpuai", *sys.argv[1:]])

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "cpuai_version": cpuai.__version__,
            "created": self.created,
            "command": self.command,
            "machine": self.machine,
            "settings": self.settings,
            "packages": self.packages,
            "results": self.results,
            "accuracy": self.accuracy,
            "skipped": self.skipped,
            **self.extra,
        }

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per (configuration, batch): the settings the engine ran and its figures."""
        out: list[dict[str, Any]] = []
        for res in self.results:
            engine = res.get("engine", {})
            base = {
                "package": res.get("package", self.packages[0]["name"] if self.packages else None),
                "backend": engine.get("backend"),
                "precision": engine.get("precision"),
                "threads": engine.get("threads"),
                "streams": engine.get("streams"),
                "hint": res.get("config", {}).get("hint"),
                "cores": res.get("cores"),
                "cold_start_ms": res.get("cold_start", {}).get("total_ms"),
            }
            b = base
            base["label"] = f"{b['package']} {b['backend']} {b['precision']} {b['threads']}t×{b['streams']}s"
            if res.get("series"):
                base["series"] = res["series"]
            for row in res.get("rows", []):
                out.append(base | row)
        return out

    def write_json(self, path: str | Path) -> Path:
        target = _writable(path, ".json")
        target.write_bytes(
            orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY, default=str)
        )
        return target

    def write_csv(self, path: str | Path) -> Path:
        target = _writable(path, ".csv")
        rows = self.rows()
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        with target.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        return target


def _writable(path: str | Path, suffix: str) -> Path:
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{target} is a directory", fix=f"give a file name ending in {suffix}")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target
