"""The tabular task: CSV rows to ``numeric``/``categorical`` feeds via ``preprocessing.tabular``.

An item is one row, a mapping of column name to value (as ``csv.DictReader`` gives). The model's
output is one logit per row (binary) or one per class; ``score`` reports AUC (the primary
metric), log-loss and accuracy.

    >>> task = for_package(read("jobs/ctr/package"))
    >>> task.score(engine, csv_dataset("ctr.csv", task)).values   # doctest: +SKIP
    {'auc': 0.83, 'logloss': 0.49, 'accuracy': 0.77}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cpuai.errors import InvalidInput, ModelError
from cpuai.runtime.engine import Engine
from cpuai.tasks.base import Score
from cpuai.tasks.batching import batches


def binary_metrics(target: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """AUC, log-loss and accuracy (threshold 0.5) of click probabilities against 0/1 targets."""
    from sklearn.metrics import log_loss, roc_auc_score

    y = np.asarray(target).astype(np.int64)
    p = np.clip(np.asarray(probability, dtype=np.float64), 1e-7, 1 - 1e-7)
    auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")
    return {
        "auc": auc,
        "logloss": float(log_loss(y, p, labels=[0, 1])),
        "accuracy": float(((p >= 0.5) == y).mean()),
    }


def _probabilities(out: np.ndarray) -> np.ndarray:
    """Per row, the probability of each class: sigmoid for one logit, softmax for several."""
    z = np.asarray(out, dtype=np.float64).reshape(len(out), -1)
    if z.shape[1] == 1:
        p = 1.0 / (1.0 + np.exp(-z[:, 0]))
        return np.stack([1 - p, p], axis=1)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class TabularTask:
    """The tabular task of one package: its declared columns, learned encoding and labels."""

    kind = "tabular"

    def __init__(self, package: Any) -> None:
        m = package.manifest
        if m.preprocessing.tabular is None:
            raise ModelError(
                f"package {package.path} is a tabular model without preprocessing.tabular",
                fix="add preprocessing.tabular (columns with kind, mean/std, vocabulary) to model.yaml",
            )
        self.package = package
        self.prep = m.preprocessing.tabular
        floats = [i for i in m.inputs if i.dtype.startswith("float")]
        ints = [i for i in m.inputs if i.dtype.startswith("int")]
        self.numeric_input = floats[0].name if floats else None
        self.categorical_input = ints[0].name if ints else None
        self.output = m.outputs[0].name
        self.labels = list(m.labels) if m.labels else None
        self.columns = [c.name for c in self.prep.columns]

    def preprocess(self, items: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """Rows to ``{numeric input: N x n_num float32, categorical input: N x n_cat int64}``."""
        from cpuai.data.tabular import encode
        from cpuai.errors import DataError

        if len(items) == 0:
            raise InvalidInput("no rows to preprocess", fix="pass at least one row")
        for row in items:
            if not isinstance(row, Mapping):
                raise InvalidInput(
                    f"a tabular item must be a mapping of column to value, got {type(row).__name__}",
                    fix=f"pass rows like {{{', '.join(repr(c) + ': ...' for c in self.columns[:3])}}}",
                )
        try:
            arrays = encode(list(items), self.prep.model_copy(update={"target": None}), source="row")
        except DataError as err:
            raise InvalidInput(err.message, fix=err.fix) from None
        feeds: dict[str, np.ndarray] = {}
        if self.numeric_input:
            feeds[self.numeric_input] = arrays.numeric
        if self.categorical_input:
            feeds[self.categorical_input] = arrays.categorical
        return feeds

    def probabilities(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        out = outputs[self.output] if self.output in outputs else next(iter(outputs.values()))
        return _probabilities(out)

    def postprocess(self, outputs: dict[str, np.ndarray], *, top_k: int = 5) -> list[dict[str, Any]]:
        """Per row ``{"label", "probability", "probabilities"}``: the likeliest class, all probabilities."""
        probs = self.probabilities(outputs)
        labels = self.labels or [str(i) for i in range(probs.shape[1])]
        answers = []
        for row in probs:
            best = int(np.argmax(row))
            answers.append(
                {
                    "label": labels[best],
                    "probability": float(row[-1] if len(row) == 2 else row[best]),
                    "probabilities": {labels[i]: float(p) for i, p in enumerate(row)},
                }
            )
        return answers

    def score(self, engine: Engine, dataset: Iterable[Any], *, batch_size: int = 256) -> Score:
        """AUC (primary), log-loss and accuracy over (row, target) pairs, e.g. ``csv_dataset(path, task)``."""
        probs: list[np.ndarray] = []
        targets: list[int] = []
        for items, ys in batches(dataset, batch_size):
            probs.append(self.probabilities(engine.infer(self.preprocess(items))))
            targets.extend(int(float(y)) for y in ys)
        if not targets:
            raise InvalidInput("the data set is empty", fix="point at a CSV with rows")
        p = np.concatenate(probs)
        y = np.asarray(targets)
        if p.shape[1] == 2:
            values = binary_metrics(y, p[:, 1])
        else:
            from sklearn.metrics import log_loss, roc_auc_score

            values = {
                "auc": float(roc_auc_score(y, p, multi_class="ovr", labels=list(range(p.shape[1])))),
                "logloss": float(log_loss(y, p, labels=list(range(p.shape[1])))),
                "accuracy": float((p.argmax(axis=1) == y).mean()),
            }
        return Score(
            primary="auc", values=values, count=len(y), details={"probabilities": p, "targets": y.tolist()}
        )


def csv_dataset(path: str | Path, task: TabularTask) -> list[tuple[dict[str, str], str]]:
    """(row, target) pairs of a CSV for ``score``; DataError when a declared column is missing."""
    from cpuai.data.tabular import check_columns, read_csv
    from cpuai.errors import DataError

    header, rows = read_csv(path)
    target = task.prep.target
    if target is None:
        raise DataError(
            f"package {task.package.path} declares no target column", fix="set preprocessing.tabular.target"
        )
    check_columns(header, [*task.columns, target], str(path))
    return [(row, row[target]) for row in rows]


def from_package(package: Any) -> TabularTask:
    """Factory that ``cpuai.tasks.for_package`` calls for ``task: tabular`` packages."""
    return TabularTask(package)
