"""Tabular CSV data sets with declared numeric and categorical columns.

``fit_preprocessing`` learns each numeric column's mean/std and each categorical column's
vocabulary (index 0 is ``<unk>`` for values never seen in training); ``encode`` turns rows into the
``numeric`` float32 and ``categorical`` int64 arrays a Wide & Deep model takes. The learned
preprocessing goes into the package manifest (``preprocessing.tabular``), so serving encodes the
same way.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpuai.errors import DataError
from cpuai.package import TabularColumn, TabularPreprocessing

UNKNOWN = "<unk>"


@dataclass
class TabularArrays:
    """Encoded rows: ``numeric`` (N x n_num float32), ``categorical`` (N x n_cat int64), ``target``."""

    numeric: np.ndarray
    categorical: np.ndarray
    target: np.ndarray | None

    def __len__(self) -> int:
        return len(self.numeric)


def read_csv(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a CSV file; DataError when it is missing or empty."""
    p = Path(path)
    if not p.is_file():
        raise DataError(
            f"CSV file {p} does not exist",
            fix="check the path, or make one with 'cpuai data ctr --out FILE.csv'",
        )
    with p.open(newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    if not header or not rows:
        raise DataError(f"CSV file {p} holds no data rows", fix="write a header line and at least one row")
    return header, rows


def check_columns(header: Sequence[str], declared: Sequence[str], source: str) -> None:
    """DataError naming every declared column the CSV lacks."""
    missing = [c for c in declared if c not in header]
    if missing:
        raise DataError(
            f"{source} is missing declared column(s) {', '.join(repr(c) for c in missing)}"
            f" (columns: {', '.join(header)})",
            fix="fix --numeric/--categorical/--target to name existing columns, or add them to the CSV",
        )


def _float(value: str, column: str, row: int, source: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(
            f"{source} row {row}: column '{column}' is declared numeric but holds {value!r}",
            fix="declare it with --categorical, or clean the value",
        ) from None


def fit_preprocessing(
    rows: Sequence[Mapping[str, str]],
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    target: str | None,
    source: str = "CSV",
) -> TabularPreprocessing:
    """Learn numeric means/stds and categorical vocabularies from training rows."""
    columns: list[TabularColumn] = []
    for name in numeric:
        values = np.array(
            [_float(r[name], name, i + 2, source) for i, r in enumerate(rows)], dtype=np.float64
        )
        std = float(values.std())
        columns.append(
            TabularColumn(name=name, kind="numeric", mean=float(values.mean()), std=std if std > 0 else 1.0)
        )
    for name in categorical:
        vocab = sorted({r[name] for r in rows})
        columns.append(TabularColumn(name=name, kind="categorical", vocabulary=[UNKNOWN, *vocab]))
    return TabularPreprocessing(columns=columns, target=target)


def encode(
    rows: Sequence[Mapping[str, object]], prep: TabularPreprocessing, *, source: str = "input"
) -> TabularArrays:
    """Rows (dicts of column -> value) to model arrays, using the learned preprocessing."""
    num_cols = [c for c in prep.columns if c.kind == "numeric"]
    cat_cols = [c for c in prep.columns if c.kind == "categorical"]
    if rows:
        check_columns(list(rows[0].keys()), [c.name for c in prep.columns], source)
    numeric = np.zeros((len(rows), len(num_cols)), dtype=np.float32)
    for j, c in enumerate(num_cols):
        mean, std = c.mean or 0.0, c.std or 1.0
        numeric[:, j] = [
            (_float(str(r[c.name]), c.name, i + 2, source) - mean) / std for i, r in enumerate(rows)
        ]
    categorical = np.zeros((len(rows), len(cat_cols)), dtype=np.int64)
    for j, c in enumerate(cat_cols):
        index = {v: k for k, v in enumerate(c.vocabulary or [UNKNOWN])}
        categorical[:, j] = [index.get(str(r[c.name]), 0) for r in rows]
    target = None
    if prep.target is not None and rows and prep.target in rows[0]:
        target = np.array(
            [_float(str(r[prep.target]), prep.target, i + 2, source) for i, r in enumerate(rows)],
            dtype=np.float32,
        )
    return TabularArrays(numeric, categorical, target)


def split_rows(n: int, *, val: float, test: float, seed: int) -> dict[str, np.ndarray]:
    """Seeded random train/val/test row indices."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val, n_test = int(round(n * val)), int(round(n * test))
    return {"val": perm[:n_val], "test": perm[n_val : n_val + n_test], "train": perm[n_val + n_test :]}
