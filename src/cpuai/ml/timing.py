"""Time one workload with one estimator class: best-of-n fit and method times, and its score.

Stock and accelerated runs go through the same function with the same data and the same explicit
thread budget (``n_jobs`` where the estimator has it, BLAS/OpenMP via threadpoolctl, oneDAL via
``daalinit``), so the only difference measured is the library.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from cpuai.ml.workloads import Data, Workload


@dataclass(frozen=True)
class Timing:
    """Best fit seconds, best method seconds (None when the workload has no method), and the score."""

    fit_s: float
    method_s: float | None
    score: float

    @property
    def total_s(self) -> float:
        """Fit plus method time: the cost of the whole workload."""
        return self.fit_s + (self.method_s or 0.0)


def _with_jobs(model: Any, threads: int) -> Any:
    if "n_jobs" in model.get_params():
        model.set_params(n_jobs=threads)
    return model


def time_workload(
    workload: Workload,
    cls: type,
    data: Data,
    *,
    threads: int,
    repeats: int = 3,
    min_seconds: float = 0.3,
    max_repeats: int = 15,
) -> Timing:
    """Fit ``cls`` on the train split and run the method on the test split; keep the best of the runs.

    It runs at least ``repeats`` times and, for quick workloads, keeps going until ``min_seconds``
    have been spent (at most ``max_repeats`` runs), so millisecond timings are not one noisy sample.
    """
    import warnings

    from threadpoolctl import threadpool_limits

    best_fit = best_method = float("inf")
    model: Any = None
    output: Any = None
    spent, runs = 0.0, 0
    with threadpool_limits(limits=threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while runs < max(1, repeats) or (spent < min_seconds and runs < max_repeats):
            runs += 1
            model = _with_jobs(workload.make(cls), threads)
            start = time.perf_counter()
            if data.y_train is None or workload.unsupervised:
                model.fit(data.x_train)
            else:
                model.fit(data.x_train, data.y_train)
            fit_s = time.perf_counter() - start
            best_fit = min(best_fit, fit_s)
            spent += fit_s
            if workload.method is not None:
                start = time.perf_counter()
                output = getattr(model, workload.method)(data.x_test)
                method_s = time.perf_counter() - start
                best_method = min(best_method, method_s)
                spent += method_s
    score = workload.metric(model, data, output)
    return Timing(fit_s=best_fit, method_s=None if workload.method is None else best_method, score=score)
