"""Accuracy mode: the package's task metric on a data set, computed exactly as ``cpuai evaluate`` does.

Both call ``cpuai.tasks.for_package(package).score(engine, dataset)``; this module only opens the
data set the way ``cpuai evaluate`` does (an image folder's readable images, or a CSV for tabular
models) and refuses packages whose task has no data-set metric.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cpuai.errors import ConfigError, DataError
from cpuai.package import ModelPackage
from cpuai.runtime.engine import Engine

#: Tasks with a metric on a data set, and the data each one reads.
METRIC_TASKS = {"image-classification": "an image folder DIR/<label>/<image>", "tabular": "a CSV file"}


def check_has_metric(package: ModelPackage) -> None:
    """Refuse accuracy mode for a package whose task has no data-set metric."""
    task = package.manifest.task
    if task not in METRIC_TASKS:
        raise ConfigError(
            f"package {package.manifest.name!r} has task {task!r}, which has no task metric for --data",
            fix="drop --data to measure performance only, or give the package a task with a metric "
            f"({', '.join(f'{k}: {v}' for k, v in METRIC_TASKS.items())})",
        )


def open_dataset(package: ModelPackage, data: str | Path) -> Any:
    """The data set ``score`` takes for this package's task."""
    check_has_metric(package)
    path = Path(data)
    if not path.exists():
        raise DataError(f"data {path} does not exist", fix="check the --data path")
    if package.manifest.task == "image-classification":
        from cpuai.data.imagefolder import ImageFolder
        from cpuai.evaluate import readable_samples

        folder = ImageFolder.open(path, classes=package.labels)
        good, _skipped = readable_samples(folder.samples)  # the same files cpuai evaluate scores
        if not good:
            raise DataError(
                f"none of the {len(folder.samples)} images in {folder.root} can be read",
                fix="check the files",
            )
        return [(str(p), y) for p, y in good]
    from cpuai.tasks import for_package
    from cpuai.tasks.tabular import csv_dataset

    return csv_dataset(path, for_package(package))  # type: ignore[arg-type]


def run_accuracy(
    package: ModelPackage, engine: Engine, data: str | Path, *, batch_size: int = 32
) -> dict[str, Any]:
    """The task's score on ``data``: primary metric name, values and sample count."""
    from cpuai.tasks import for_package

    dataset = open_dataset(package, data)
    score = for_package(package).score(engine, dataset, batch_size=batch_size)
    return {
        "data": str(data),
        "primary": score.primary,
        "value": score.value,
        "values": dict(score.values),
        "count": score.count,
        "batch_size": batch_size,
        "engine": {"backend": engine.backend, "precision": engine.precision, "threads": engine.threads},
    }
