"""Time one workload under several variants (stock, accelerated, gated): best-of-n times and scores.

The variants run round-robin (stock, accelerated, stock, accelerated, ...) rather than one after the
other, so a burst of load from other processes hits them alike; each keeps its best run. All share
the same data and explicit thread budget (``n_jobs`` where the estimator has it, BLAS/OpenMP via
threadpoolctl, oneDAL via ``daalinit``), so the only difference measured is the library.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
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


@dataclass(frozen=True)
class Variant:
    """One way to run a workload: an estimator class, optionally inside a context (a method gate)."""

    cls: type
    context: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext


def _with_jobs(model: Any, threads: int) -> Any:
    if "n_jobs" in model.get_params():
        model.set_params(n_jobs=threads)
    return model


def _once(
    workload: Workload, variant: Variant, data: Data, threads: int
) -> tuple[float, float | None, Any, Any]:
    with variant.context():
        model = _with_jobs(workload.make(variant.cls), threads)
        start = time.perf_counter()
        if data.y_train is None or workload.unsupervised:
            model.fit(data.x_train)
        else:
            model.fit(data.x_train, data.y_train)
        fit_s = time.perf_counter() - start
        if workload.method is None:
            return fit_s, None, model, None
        start = time.perf_counter()
        output = getattr(model, workload.method)(data.x_test)
        return fit_s, time.perf_counter() - start, model, output


def time_variants(
    workload: Workload,
    variants: dict[str, Variant],
    data: Data,
    *,
    threads: int,
    repeats: int = 3,
    min_seconds: float = 0.3,
    max_repeats: int = 15,
) -> dict[str, Timing]:
    """Run every variant round-robin and keep each one's best fit and method time, plus its score.

    Each variant runs at least ``repeats`` times; quick workloads keep going until every variant has
    spent ``min_seconds`` (at most ``max_repeats`` rounds), so millisecond timings are not one sample.
    """
    import warnings

    from threadpoolctl import threadpool_limits

    best: dict[str, list[float]] = {k: [float("inf"), float("inf")] for k in variants}
    spent = dict.fromkeys(variants, 0.0)
    last: dict[str, tuple[Any, Any]] = {}
    rounds = 0
    with threadpool_limits(limits=threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while rounds < max(1, repeats) or (min(spent.values()) < min_seconds and rounds < max_repeats):
            rounds += 1
            for key, variant in variants.items():
                fit_s, method_s, model, output = _once(workload, variant, data, threads)
                best[key][0] = min(best[key][0], fit_s)
                if method_s is not None:
                    best[key][1] = min(best[key][1], method_s)
                spent[key] += fit_s + (method_s or 0.0)
                last[key] = (model, output)
    out = {}
    for key in variants:
        model, output = last[key]
        out[key] = Timing(
            fit_s=best[key][0],
            method_s=None if workload.method is None else best[key][1],
            score=workload.metric(model, data, output),
        )
    return out


def time_workload(
    workload: Workload, cls: type, data: Data, *, threads: int, repeats: int = 3, min_seconds: float = 0.3
) -> Timing:
    """Time one estimator class alone (see :func:`time_variants`)."""
    return time_variants(
        workload, {"only": Variant(cls)}, data, threads=threads, repeats=repeats, min_seconds=min_seconds
    )["only"]


def time_repeats(
    workload: Workload,
    variants: dict[str, Variant],
    data: Data,
    *,
    threads: int,
    repeats: int = 3,
    sample_seconds: float = 0.1,
    max_inner: int = 10,
) -> list[dict[str, Timing]]:
    """``repeats`` independent, interleaved samples of every variant, for a decision on each repeat.

    Each repeat is one :func:`time_variants` round-robin (quick workloads run several times inside
    it until ``sample_seconds``, keeping the best), so a repeat's stock and accelerated times were
    measured side by side under the same load, and a ratio per repeat can be formed.
    """
    return [
        time_variants(
            workload,
            variants,
            data,
            threads=threads,
            repeats=1,
            min_seconds=sample_seconds,
            max_repeats=max_inner,
        )
        for _ in range(max(1, repeats))
    ]
