"""Evaluate a model package on a data set through ``cpuai.runtime``, so FP32 and INT8 packages alike.

Image classification: top-1/top-5 accuracy, per-class precision and recall, the confusion matrix
(rows actual, columns predicted; printed and drawn as PNG) and the hardest mistakes (the most
confident wrong answers) with their files. Tabular: AUC, log-loss and accuracy. Unreadable images
are skipped and counted, not fatal.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cpuai import package as pkgmod
from cpuai.errors import ConfigError, DataError

log = logging.getLogger("cpuai.evaluate")


@dataclass
class Evaluation:
    """The result of one evaluation; ``to_dict()`` is what ``--json`` prints."""

    package: str
    task: str
    backend: str
    precision: str
    data: str
    count: int
    metrics: dict[str, float]
    labels: list[str] | None = None
    per_class: list[dict[str, Any]] | None = None
    confusion: list[list[int]] | None = None
    mistakes: list[dict[str, Any]] | None = None
    skipped: list[str] = field(default_factory=list)
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def readable_samples(samples: list[tuple[Path, int]]) -> tuple[list[tuple[Path, int]], list[str]]:
    """Split samples into those PIL can decode and the files it cannot (logged in one warning)."""
    from PIL import Image

    good, bad = [], []
    for path, label in samples:
        try:
            with Image.open(path) as img:
                img.load()
            good.append((path, label))
        except Exception:
            bad.append(str(path))
    if bad:
        log.warning(
            "warning: skipped %d unreadable image(s) of %d (%s%s)",
            len(bad),
            len(samples),
            ", ".join(bad[:3]),
            ", ..." if len(bad) > 3 else "",
        )
    return good, bad


def evaluate(
    package: str | Path,
    data: str | Path,
    *,
    backend: str = "auto",
    batch_size: int = 32,
    threads: int | None = None,
    split: str | None = None,
    mistakes: int = 10,
) -> Evaluation:
    """Load ``package`` with ``cpuai.runtime.load`` and score it on ``data`` (image folder or CSV)."""
    from cpuai.runtime import load
    from cpuai.tasks import for_package

    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size} is below 1", fix="pass --batch-size 1 or more")
    pkg = pkgmod.read(package)
    task = for_package(pkg)
    kind = pkg.manifest.task
    dataset: list[Any]
    skipped: list[str] = []
    if kind == "image-classification":
        dataset, skipped = _image_dataset(pkg, Path(data), split)
    elif kind == "tabular":
        from cpuai.tasks.tabular import csv_dataset

        dataset = list(csv_dataset(data, task))  # type: ignore[arg-type]
    else:
        raise ConfigError(
            f"cpuai evaluate does not score '{kind}' packages",
            fix="evaluate an image-classification or tabular package",
        )
    engine = load(pkg, backend=backend, threads=threads)
    try:
        score = task.score(engine, dataset, batch_size=batch_size)
    finally:
        engine.close()
    result = Evaluation(
        package=str(pkg.path),
        task=kind,
        backend=engine.backend,
        precision=engine.precision,
        data=str(data),
        count=score.count,
        metrics={k: float(v) for k, v in score.values.items()},
        labels=pkg.labels,
        skipped=skipped,
        name=pkg.manifest.name,
    )
    if kind == "image-classification":
        _classification_details(result, score.details, mistakes)
    return result


def _image_dataset(
    pkg: pkgmod.ModelPackage, data: Path, split: str | None
) -> tuple[list[tuple[str, int]], list[str]]:
    from cpuai.data.imagefolder import ImageFolder

    folder = ImageFolder.open(data, split, classes=pkg.labels)
    good, skipped = readable_samples(folder.samples)
    if not good:
        raise DataError(
            f"none of the {len(folder.samples)} images in {folder.root} can be read",
            fix="check the image files",
        )
    return [(str(p), y) for p, y in good], skipped


def _classification_details(result: Evaluation, details: dict[str, Any], top: int) -> None:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = result.labels or [str(i) for i in range(np.asarray(details["probabilities"]).shape[1])]
    k = len(labels)
    y = np.asarray(details["targets"])
    pred = np.asarray(details["predictions"])
    probs = np.asarray(details["probabilities"])
    precision, recall, _f1, support = precision_recall_fscore_support(
        y, pred, labels=list(range(k)), zero_division=0
    )
    result.per_class = [
        {
            "label": labels[i],
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "support": int(support[i]),
        }
        for i in range(k)
    ]
    result.confusion = confusion_matrix(y, pred, labels=list(range(k))).tolist()
    wrong = np.flatnonzero(pred != y)
    order = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:top]
    paths = details.get("paths") or [None] * len(y)
    result.mistakes = [
        {
            "file": paths[i],
            "actual": labels[y[i]],
            "predicted": labels[pred[i]],
            "confidence": float(probs[i, pred[i]]),
            "actual_score": float(probs[i, y[i]]),
        }
        for i in order
    ]


def plot_confusion(result: Evaluation, path: str | Path) -> Path:
    """Draw the confusion matrix (rows actual, columns predicted) as a PNG with matplotlib's Agg backend."""
    if result.confusion is None:
        raise ConfigError(f"a {result.task} evaluation has no confusion matrix to plot", fix="drop --plot")
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--plot {out} does not end in .png", fix="name the plot like confusion.png")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(result.confusion)
    labels = result.labels or [str(i) for i in range(len(cm))]
    size = max(4.0, 0.5 * len(cm) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90 if len(labels) > 12 else 0)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    top1 = result.metrics.get("top1", float("nan"))
    ax.set_title(
        f"{result.name or Path(result.package).name} ({result.backend}/{result.precision}): top-1 {top1:.4f}"
    )
    threshold = cm.max() / 2 if cm.size else 0
    if len(cm) <= 30:
        for i in range(len(cm)):
            for j in range(len(cm)):
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if cm[i, j] > threshold else "black",
                )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
