"""Fit a ``cpuai ml`` bench size into a time budget: estimate it from a smaller run, cut the slowest.

The medium size (60,000 rows x 50 features) can take far longer than anyone waits for, almost all
of it in a few stock fits (random forests, SVMs, DBSCAN). :func:`plan` scales each algorithm's
measured small-size seconds to the target size with a per-algorithm cost model
(``rows**a * features**b``, :data:`COST_EXPONENTS`), corrects for the load the small run saw, and,
while the total exceeds the budget, first drops one repeat (never below ``min_repeats``) and then
halves the rows (never below the small size) of the currently slowest algorithm. Every cut is
reported, so a figure from a cut workload is never mistaken for the full size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

COST_EXPONENTS: dict[str, tuple[float, float]] = {
    "linear_regression": (1.0, 2.0),
    "ridge": (1.0, 2.0),
    "logistic_regression": (1.0, 1.0),
    "pca": (1.0, 2.0),
    "kmeans": (1.0, 1.0),
    "dbscan": (2.0, 1.0),
    "knn_classifier": (2.0, 1.0),
    "nearest_neighbors": (2.0, 1.0),
    "svc": (2.0, 1.0),
    "svr": (2.0, 1.0),
    "random_forest_classifier": (1.1, 0.5),
    "random_forest_regressor": (1.1, 1.0),
    "extra_trees_classifier": (1.1, 0.5),
}
"""Per algorithm, how its cost grows with rows and features: (rows exponent, features exponent).

From the algorithms (brute-force neighbours, kernel SVMs and DBSCAN are quadratic in rows; depth-
limited forests about n log n, on sqrt(features) for classifiers); an estimate, not a measurement.
"""


@dataclass(frozen=True)
class Shape:
    """Rows (train + test) and features of one workload's data at one size."""

    rows: int
    features: int


@dataclass
class Estimate:
    """One algorithm at the target size: rows and repeats to run, estimated seconds, and any cut."""

    key: str
    full_rows: int
    rows: int
    repeats: int
    seconds: float
    cut: list[str] = field(default_factory=list)

    @property
    def note(self) -> str:
        """The cut in words, e.g. ``30,000 of 60,000 rows, best of 2``."""
        return f"{self.rows:,} of {self.full_rows:,} rows, best of {self.repeats}"


@dataclass
class BudgetPlan:
    """Per algorithm estimates after cutting, the budget and the load correction used."""

    estimates: dict[str, Estimate]
    budget_s: float
    load_factor: float
    uncut_s: float

    @property
    def total_s(self) -> float:
        """Estimated seconds of the whole run (calibration and data generation not included)."""
        return sum(e.seconds for e in self.estimates.values())

    @property
    def within_budget(self) -> bool:
        """Whether the cuts brought the estimate under the budget."""
        return self.total_s <= self.budget_s

    def row_caps(self) -> dict[str, int]:
        """``key -> rows`` for the algorithms whose rows were cut (for ``run_bench(row_caps=)``)."""
        return {k: e.rows for k, e in self.estimates.items() if e.rows < e.full_rows}

    def repeats_for(self) -> dict[str, int]:
        """``key -> repeats`` for every algorithm (for ``run_bench(repeats_for=)``)."""
        return {k: e.repeats for k, e in self.estimates.items()}

    def cuts(self) -> dict[str, str]:
        """``key -> note`` for every algorithm that was cut."""
        return {k: e.note for k, e in self.estimates.items() if e.cut}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "budget_s": self.budget_s,
            "load_factor": round(self.load_factor, 4),
            "estimated_uncut_s": round(self.uncut_s, 1),
            "estimated_s": round(self.total_s, 1),
            "within_budget": self.within_budget,
            "per_algorithm": {
                k: {
                    "rows": e.rows,
                    "full_rows": e.full_rows,
                    "repeats": e.repeats,
                    "estimated_s": round(e.seconds, 1),
                }
                for k, e in self.estimates.items()
            },
            "cuts": self.cuts(),
        }


def load_factor(load_average: list[float] | tuple[float, ...], threads: int) -> float:
    """How much faster an idle machine would have been than the measured run (<= 1).

    With a 5-minute load average above the thread count, a run got roughly ``threads / load`` of
    the CPU it asked for, so its seconds scale down by that factor; below it, nothing changes.
    """
    load = float(load_average[1] if len(load_average) > 1 else load_average[0])
    return min(1.0, threads / max(float(threads), load)) if threads > 0 else 1.0


def _variant_seconds(row: dict[str, Any]) -> list[float]:
    """Seconds of one round of every variant the bench ran for this row (stock, all, and mixed)."""

    def total(t: dict[str, Any]) -> float:
        return float(t["fit_s"]) + float(t.get("method_s") or 0.0)

    out = [total(row["stock"]), total(row["all"])]
    if row.get("measured_accelerates") not in ([], ["all"]):
        out.append(total(row["measured"]))
    return out


def scale(key: str, frm: Shape, to: Shape) -> float:
    """Cost ratio of running ``key`` at shape ``to`` instead of ``frm`` (from :data:`COST_EXPONENTS`)."""
    a, b = COST_EXPONENTS.get(key, (1.0, 1.0))
    return (to.rows / frm.rows) ** a * (to.features / frm.features) ** b


def estimate_seconds(
    row: dict[str, Any],
    frm: Shape,
    to: Shape,
    *,
    repeats: int,
    factor: float = 1.0,
    min_seconds: float = 0.3,
    max_repeats: int = 15,
) -> float:
    """Seconds the bench would spend on one algorithm at shape ``to``, from its row at shape ``frm``.

    Mirrors :func:`cpuai.ml.timing.time_variants`: ``repeats`` rounds, more for quick workloads
    until each variant spent ``min_seconds`` (at most ``max_repeats``).
    """
    k = scale(row["key"], frm, to) * factor
    variants = [s * k for s in _variant_seconds(row)]
    quickest = max(min(variants), 1e-9)
    rounds = min(max_repeats, max(repeats, math.ceil(min_seconds / quickest)))
    return rounds * sum(variants)


def plan(
    small: dict[str, Any],
    shapes: dict[str, tuple[Shape, Shape]],
    *,
    repeats: int = 3,
    budget_s: float = 900.0,
    min_repeats: int = 2,
    min_seconds: float = 0.3,
    factor: float | None = None,
) -> BudgetPlan:
    """Estimate the target size from the ``small`` bench JSON and cut the slowest until it fits.

    ``shapes`` maps each algorithm key to (its shape in the small run, its full target shape).
    ``factor`` converts the small run's seconds to this machine now (see :func:`probe_factor`);
    by default it comes from the small run's load average (:func:`load_factor`, a rougher guess).
    Algorithms missing from ``small`` are estimated at zero and never cut (say so where it matters).
    """
    if factor is None:
        factor = load_factor(small.get("load_average") or [0.0, 0.0, 0.0], int(small.get("threads") or 1))
    by_key = {r["key"]: r for r in small.get("rows", [])}

    def secs(key: str, rows: int, reps: int) -> float:
        if key not in by_key:
            return 0.0
        frm, to = shapes[key]
        return estimate_seconds(
            by_key[key], frm, Shape(rows, to.features), repeats=reps, factor=factor, min_seconds=min_seconds
        )

    estimates = {
        key: Estimate(
            key=key, full_rows=to.rows, rows=to.rows, repeats=repeats, seconds=secs(key, to.rows, repeats)
        )
        for key, (_, to) in shapes.items()
    }
    uncut = sum(e.seconds for e in estimates.values())
    while sum(e.seconds for e in estimates.values()) > budget_s:
        cuttable = [
            e for e in estimates.values() if e.repeats > min_repeats or e.rows > max(shapes[e.key][0].rows, 1)
        ]
        if not cuttable:
            break
        e = max(cuttable, key=lambda e: e.seconds)
        if e.repeats > min_repeats:
            e.repeats -= 1
            e.cut.append(f"best of {e.repeats}")
        else:
            floor = shapes[e.key][0].rows
            e.rows = max(floor, int(e.rows / 2) // 1000 * 1000 or floor)
            e.cut.append(f"{e.rows} rows")
        e.seconds = secs(e.key, e.rows, e.repeats)
    return BudgetPlan(estimates=estimates, budget_s=budget_s, load_factor=factor, uncut_s=uncut)


PROBE_KEYS = ("kmeans", "pca", "random_forest_classifier")
"""Cheap stock workloads re-timed now to compare this machine's speed with the small run's."""


def probe_factor(small: dict[str, Any], keys: tuple[str, ...] = PROBE_KEYS) -> tuple[float, dict[str, float]]:
    """How fast this machine is now relative to the recorded small run: median of now/then seconds.

    Re-times a few quick stock workloads at the small size (a few seconds), so a small run measured
    under heavy load does not make the estimate for an idle machine too high, or the other way round.
    Returns the factor and the per-workload ratios; 1.0 when none of the keys were recorded.
    """
    import statistics

    from cpuai.hardware import core_budget
    from cpuai.ml import patching, timing, workloads

    by_key = {r["key"]: r for r in small.get("rows", [])}
    items = patching.patchables()
    threads = core_budget()
    ratios: dict[str, float] = {}
    for key in keys:
        row = by_key.get(key)
        w = workloads.by_key(key)
        if row is None or w.estimator not in items:
            continue
        now = timing.time_workload(w, items[w.estimator].stock, w.data("small"), threads=threads, repeats=1)
        then = float(row["stock"]["fit_s"]) + float(row["stock"].get("method_s") or 0.0)
        if then > 0:
            ratios[key] = now.total_s / then
    return (statistics.median(ratios.values()) if ratios else 1.0), ratios
