"""Fitting the medium bench into a time budget: estimates from a small run, cuts of the slowest."""

from __future__ import annotations

import pytest

from cpuai.ml.bench_budget import Shape, estimate_seconds, load_factor, plan


def _row(key: str, stock: float, fast: float, measured: list[str] | None = None) -> dict:
    t = lambda s: {"fit_s": s, "method_s": None, "score": 1.0}  # noqa: E731
    return {
        "key": key,
        "stock": t(stock),
        "all": t(fast),
        "measured": t(fast),
        "measured_accelerates": measured or [],
    }


SMALL = Shape(10_000, 30)
MEDIUM = Shape(60_000, 30)


def test_estimate_scales_by_the_cost_model_and_rounds():
    row = _row("kmeans", 2.0, 1.0)  # linear in rows: 6x
    assert estimate_seconds(row, SMALL, MEDIUM, repeats=3) == pytest.approx(3 * 6 * 3.0)
    assert estimate_seconds(row, SMALL, MEDIUM, repeats=3, factor=0.5) == pytest.approx(3 * 6 * 3.0 / 2)
    quad = _row("svc", 2.0, 1.0)  # quadratic in rows: 36x
    assert estimate_seconds(quad, SMALL, MEDIUM, repeats=2) == pytest.approx(2 * 36 * 3.0)
    quick = _row("ridge", 0.001, 0.001)  # quick workloads repeat until 0.3 s, at most 15 rounds
    assert estimate_seconds(quick, SMALL, SMALL, repeats=3) == pytest.approx(15 * 0.002)


def test_plan_cuts_the_slowest_first_repeats_then_rows():
    small = {
        "threads": 2,
        "load_average": [1.0, 1.0, 1.0],
        "rows": [_row("kmeans", 1.0, 0.5), _row("svc", 10.0, 5.0)],
    }
    shapes = {"kmeans": (SMALL, MEDIUM), "svc": (SMALL, MEDIUM)}
    p = plan(small, shapes, repeats=3, budget_s=1000)
    assert p.uncut_s == pytest.approx(3 * 6 * 1.5 + 3 * 36 * 15)
    assert p.within_budget and p.total_s <= 1000
    svc, km = p.estimates["svc"], p.estimates["kmeans"]
    assert svc.repeats == 2 and svc.rows == 30_000 and svc.cut == ["best of 2", "30000 rows"]
    assert km.rows == 60_000 and km.repeats == 3 and not km.cut  # the cheap one is left alone
    assert p.row_caps() == {"svc": svc.rows} and set(p.cuts()) == {"svc"}
    assert p.to_dict()["cuts"]["svc"] == f"{svc.rows:,} of 60,000 rows, best of 2"


def test_plan_never_cuts_below_the_small_size_and_says_so():
    small = {"threads": 2, "load_average": [0, 0, 0], "rows": [_row("svc", 100.0, 100.0)]}
    p = plan(small, {"svc": (SMALL, MEDIUM)}, repeats=3, budget_s=1.0)
    assert p.estimates["svc"].rows == 10_000 and p.estimates["svc"].repeats == 2
    assert not p.within_budget


def test_plan_within_budget_cuts_nothing():
    small = {"threads": 2, "load_average": [0, 0, 0], "rows": [_row("kmeans", 1.0, 0.5)]}
    p = plan(small, {"kmeans": (SMALL, MEDIUM)}, budget_s=900)
    assert p.cuts() == {} and p.row_caps() == {} and p.repeats_for() == {"kmeans": 3}


def test_load_factor():
    assert load_factor([3.0, 20.0, 25.0], 2) == pytest.approx(0.1)
    assert load_factor([0.5, 1.0, 1.0], 2) == 1.0
