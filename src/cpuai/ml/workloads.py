"""The algorithm workloads that calibration and ``cpuai ml bench`` time: data, estimator, agreement.

Each workload names the sklearn estimator (as sklearnex's patch map spells it), makes seeded
*synthetic* data (scikit-learn's generators) of a given size, and says how to compare the stock and
the accelerated results (accuracy, R², inertia, explained variance, neighbours) and within what
tolerance, so a speed-up is only claimed for answers that agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

SIZES = ("calibration", "small", "medium")
"""Data sizes: ``calibration`` is the short per-machine run; ``small`` and ``medium`` are for bench."""

_ROWS = {"calibration": 5_000, "small": 10_000, "medium": 60_000}
_FEATURES = {"calibration": 20, "small": 30, "medium": 50}


@dataclass(frozen=True, kw_only=True)
class Data:
    """Train and test arrays of one synthetic data set."""

    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None


@dataclass(frozen=True, kw_only=True)
class Workload:
    """One algorithm to time: fit on train data, then run ``method`` on test data.

    ``metric(model, data, output)`` scores the result; two results agree when their scores differ
    by at most ``tolerance`` (absolute, or relative to the stock score when ``relative``).
    """

    key: str
    estimator: str
    params: dict[str, Any]
    data: Callable[[str], Data]
    method: str | None
    metric_name: str
    metric: Callable[[Any, Data, Any], float]
    tolerance: float
    relative: bool = False
    unsupervised: bool = False

    def make(self, cls: type) -> Any:
        """A fresh estimator of class ``cls`` (stock or accelerated) with this workload's params."""
        return cls(**self.params)

    @property
    def short_name(self) -> str:
        """The class name, e.g. ``KMeans``."""
        return self.estimator.rsplit(".", 1)[-1]

    def agree(self, stock: float, accelerated: float) -> bool:
        """Whether the accelerated score is within tolerance of the stock score."""
        diff = abs(accelerated - stock)
        if self.relative:
            diff /= max(abs(stock), 1e-12)
        return bool(diff <= self.tolerance)


def _rows(size: str, cap: int | None = None) -> int:
    if size not in _ROWS:
        from cpuai.errors import ConfigError

        raise ConfigError(f"unknown size {size!r}", fix=f"use one of: {', '.join(SIZES)}")
    n = _ROWS[size]
    return min(n, cap) if cap else n


def _split(x: np.ndarray, y: np.ndarray | None, test: float = 0.25) -> Data:
    n_test = int(len(x) * test)
    return Data(
        x_train=x[n_test:],
        y_train=None if y is None else y[n_test:],
        x_test=x[:n_test],
        y_test=None if y is None else y[:n_test],
    )


def classification(size: str, cap: int | None = None) -> Data:
    """Synthetic 4-class classification data (sklearn ``make_classification``, seed 0)."""
    from sklearn.datasets import make_classification

    n = _rows(size, cap)
    x, y = make_classification(
        n_samples=n,
        n_features=_FEATURES[size],
        n_informative=_FEATURES[size] // 2,
        n_classes=4,
        random_state=0,
    )
    return _split(x.astype(np.float64), y)


def regression(size: str, cap: int | None = None) -> Data:
    """Synthetic linear regression data with noise (sklearn ``make_regression``, seed 0)."""
    from sklearn.datasets import make_regression

    n = _rows(size, cap)
    x, y = make_regression(n_samples=n, n_features=_FEATURES[size], noise=5.0, random_state=0)
    return _split(x, y)


def blobs(size: str, cap: int | None = None) -> Data:
    """Synthetic Gaussian blobs, 8 centres (sklearn ``make_blobs``, seed 0)."""
    from sklearn.datasets import make_blobs

    n = _rows(size, cap)
    x, y = make_blobs(n_samples=n, n_features=_FEATURES[size], centers=8, cluster_std=1.0, random_state=0)
    return _split(x, y)


def _accuracy(model: Any, data: Data, out: Any) -> float:
    return float(np.mean(out == data.y_test))


def _r2(model: Any, data: Data, out: Any) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(data.y_test, out))


def _inertia(model: Any, data: Data, out: Any) -> float:
    return float(model.inertia_)


def _explained(model: Any, data: Data, out: Any) -> float:
    return float(np.sum(model.explained_variance_ratio_))


def _n_clusters(model: Any, data: Data, out: Any) -> float:
    labels = np.asarray(model.labels_)
    return float(len(set(labels.tolist()) - {-1}))


def _mean_kth_distance(model: Any, data: Data, out: Any) -> float:
    distances, _ = out
    return float(np.mean(distances[:, -1]))


def all_workloads() -> list[Workload]:
    """Every workload, in report order (the estimators sklearnex accelerates on CPU)."""
    forest = {"n_estimators": 30, "max_depth": 10, "random_state": 0}
    return [
        Workload(
            key="linear_regression",
            estimator="sklearn.linear_model.LinearRegression",
            params={},
            data=regression,
            method="predict",
            metric_name="r2",
            metric=_r2,
            tolerance=1e-4,
        ),
        Workload(
            key="ridge",
            estimator="sklearn.linear_model.Ridge",
            params={"alpha": 1.0},
            data=regression,
            method="predict",
            metric_name="r2",
            metric=_r2,
            tolerance=1e-4,
        ),
        Workload(
            key="logistic_regression",
            estimator="sklearn.linear_model.LogisticRegression",
            params={"max_iter": 300},
            data=classification,
            method="predict",
            metric_name="accuracy",
            metric=_accuracy,
            tolerance=0.01,
        ),
        Workload(
            key="pca",
            estimator="sklearn.decomposition.PCA",
            params={"n_components": 10, "svd_solver": "full"},
            data=classification,
            method="transform",
            metric_name="explained_variance",
            metric=_explained,
            tolerance=1e-4,
            relative=True,
            unsupervised=True,
        ),
        Workload(
            key="kmeans",
            estimator="sklearn.cluster.KMeans",
            params={"n_clusters": 8, "n_init": 1, "max_iter": 100, "random_state": 0},
            data=blobs,
            method="predict",
            metric_name="inertia",
            metric=_inertia,
            tolerance=0.01,
            relative=True,
            unsupervised=True,
        ),
        Workload(
            key="dbscan",
            estimator="sklearn.cluster.DBSCAN",
            params={"eps": 6.0, "min_samples": 5},
            data=lambda s: blobs(s, cap=12_000),
            method=None,
            metric_name="clusters",
            metric=_n_clusters,
            tolerance=0.0,
            unsupervised=True,
        ),
        Workload(
            key="knn_classifier",
            estimator="sklearn.neighbors.KNeighborsClassifier",
            params={"n_neighbors": 5},
            data=classification,
            method="predict",
            metric_name="accuracy",
            metric=_accuracy,
            tolerance=0.01,
        ),
        Workload(
            key="nearest_neighbors",
            estimator="sklearn.neighbors.NearestNeighbors",
            params={"n_neighbors": 10},
            data=classification,
            method="kneighbors",
            metric_name="mean_kth_distance",
            metric=_mean_kth_distance,
            tolerance=1e-6,
            relative=True,
            unsupervised=True,
        ),
        Workload(
            key="svc",
            estimator="sklearn.svm.SVC",
            params={"kernel": "rbf", "C": 1.0},
            data=lambda s: classification(s, cap=3_000 if s == "calibration" else 8_000),
            method="predict",
            metric_name="accuracy",
            metric=_accuracy,
            tolerance=0.01,
        ),
        Workload(
            key="svr",
            estimator="sklearn.svm.SVR",
            params={"kernel": "rbf", "C": 10.0},
            data=lambda s: regression(s, cap=3_000 if s == "calibration" else 6_000),
            method="predict",
            metric_name="r2",
            metric=_r2,
            tolerance=0.01,
        ),
        Workload(
            key="random_forest_classifier",
            estimator="sklearn.ensemble.RandomForestClassifier",
            params=forest,
            data=classification,
            method="predict",
            metric_name="accuracy",
            metric=_accuracy,
            tolerance=0.03,
        ),
        Workload(
            key="random_forest_regressor",
            estimator="sklearn.ensemble.RandomForestRegressor",
            params=forest,
            data=regression,
            method="predict",
            metric_name="r2",
            metric=_r2,
            tolerance=0.03,
        ),
        Workload(
            key="extra_trees_classifier",
            estimator="sklearn.ensemble.ExtraTreesClassifier",
            params=forest,
            data=classification,
            method="predict",
            metric_name="accuracy",
            metric=_accuracy,
            tolerance=0.03,
        ),
    ]


def by_key(key: str) -> Workload:
    """The workload named ``key``; a ConfigError lists the known keys."""
    for w in all_workloads():
        if w.key == key:
            return w
    from cpuai.errors import ConfigError

    raise ConfigError(
        f"unknown algorithm {key!r}", fix=f"use one of: {', '.join(w.key for w in all_workloads())}"
    )


def subset(data: Data, rows: int) -> Data:
    """The first ``rows`` rows of ``data`` (train and test shrunk alike, keeping the 3:1 split).

    How a benchmark cuts an expensive workload to a smaller size without changing its generator.
    """
    total = len(data.x_train) + len(data.x_test)
    if rows >= total:
        return data
    n_test = max(1, int(len(data.x_test) * rows / total))
    n_train = max(1, rows - n_test)
    return Data(
        x_train=data.x_train[:n_train],
        y_train=None if data.y_train is None else data.y_train[:n_train],
        x_test=data.x_test[:n_test],
        y_test=None if data.y_test is None else data.y_test[:n_test],
    )
