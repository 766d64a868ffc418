"""The measured policy's decision rule, on recorded timings (pure functions: no estimator runs)."""

from __future__ import annotations

import pytest

from cpuai.ml.calibration import THRESHOLD, Calibration, choose, decide, ratios
from cpuai.ml.policy import make_plan
from cpuai.ml.timing import Timing


def test_wins_in_every_repeat_accelerates():
    v = decide([1.5, 1.62, 1.41, 1.8, 1.55, 1.47])
    assert v.accelerate and v.worst == pytest.approx(1.41) and v.median == pytest.approx(1.525)
    assert "won every repeat" in v.why and "1.41" in v.why


def test_one_lost_repeat_keeps_stock():
    v = decide([1.5, 1.62, 0.93, 1.8, 1.55, 1.47])
    assert not v.accelerate
    assert v.why.startswith("lost 1 of 6 repeats") and "0.93" in v.why


def test_win_below_margin_keeps_stock():
    v = decide([1.05, 1.08, 1.06])
    assert not v.accelerate and v.worst == pytest.approx(1.05)
    assert f"below the {THRESHOLD:.2f}x margin" in v.why


def test_no_timings_keeps_stock():
    assert not decide([]).accelerate


def test_choose_all_methods_when_total_wins_everywhere():
    choice = choose({"all": [3.1, 2.9, 3.4, 2.5, 2.7, 2.6]})
    assert choice["allowed"] is None and choice["speedup"] == pytest.approx(2.5)
    assert choice["why"].startswith("all methods accelerated: won every repeat")
    assert choice["candidates"]["all"]["accelerate"] is True


def test_choose_prefers_the_best_worst_case_not_the_best_median():
    # "all" has the higher median but lost a repeat; the mixed variant won every one
    choice = choose({"all": [4.0, 5.0, 0.9, 4.5], "predict": [1.4, 1.5, 1.3, 1.45]})
    assert choice["allowed"] == ["predict"] and choice["speedup"] == pytest.approx(1.3)
    assert choice["candidates"]["all"]["accelerate"] is False
    # both robust: the larger worst case wins
    assert choose({"all": [2.0, 2.2], "fit": [1.5, 3.0]})["allowed"] is None


def test_svc_case_from_the_bench_stays_stock():
    # a past run: the mixed SVC variant was 1.32x at 5,000 rows, then 0.76x at 10,000 rows
    choice = choose(
        {"all": [0.84, 0.88, 0.91, 0.86, 0.9, 0.89], "predict": [1.32, 1.29, 1.35, 0.76, 0.81, 0.9]}
    )
    assert choice["allowed"] == [] and choice["speedup"] == pytest.approx(0.84)
    assert choice["why"].startswith("stock: ") and "lost 3 of 6 repeats" in choice["why"]


def test_ratios_per_repeat_from_recorded_timings():
    runs = [
        {
            "stock": Timing(fit_s=1.0, method_s=0.2, score=1.0),
            "all": Timing(fit_s=0.5, method_s=0.4, score=1.0),
        },
        {
            "stock": Timing(fit_s=1.2, method_s=0.2, score=1.0),
            "all": Timing(fit_s=0.4, method_s=0.1, score=1.0),
        },
    ]
    assert ratios(runs, "stock", "all", "fit") == pytest.approx([2.0, 3.0])
    assert ratios(runs, "stock", "all", "method") == pytest.approx([0.5, 2.0])
    assert ratios(runs, "stock", "all", "total") == pytest.approx([1.2 / 0.9, 1.4 / 0.5])
    assert not decide(ratios(runs, "stock", "all", "method")).accelerate


def test_plan_carries_the_reason_and_the_evidence():
    evidence = {"all": {"calibration": {"rows": 5000, "fit": [0.5], "method": [0.6], "total": [0.5]}}}
    choice = choose({"all": [0.5]})
    cal = Calibration(
        fingerprint={},
        speedups={"a.A": {"fit": 0.5, "predict": 0.6}},
        choices={
            "a.A": {**choice, "evidence": evidence},
            "s.S": {"allowed": None, "speedup": 2.0, "why": "w"},
        },
        skipped=["b.B"],
    )
    plan = make_plan("measured", ["a.A", "b.B", "s.S"], calibration=cal)
    a = plan.decision("a.A")
    assert a["patched"] is False and "lost 1 of 1 repeats" in a["why"] and a["evidence"] == evidence
    assert "time budget" in plan.decision("b.B")["why"]
    assert plan.decision("s.S")["why"] == "w" and plan.patched == ["s.S"]
