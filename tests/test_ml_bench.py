"""``cpuai ml bench`` and the calibration behind ``--policy measured`` (synthetic data, small sizes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cpuai.cli.app import main

CPUAI = str(Path(sys.executable).parent / "cpuai")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("CPUAI_CORES", "1")
    monkeypatch.setenv("CPUAI_CACHE_DIR", str(tmp_path / "cache"))
    return {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _write_calibration() -> None:
    from cpuai.ml import calibration

    calibration.save(
        calibration.Calibration(
            fingerprint=calibration.fingerprint(),
            speedups={
                "sklearn.cluster.KMeans": {"fit": 4.0, "predict": 3.0},
                "sklearn.decomposition.PCA": {"fit": 5.0, "transform": 0.4},
            },
            choices={
                "sklearn.cluster.KMeans": {"allowed": None, "speedup": 3.5},
                "sklearn.decomposition.PCA": {"allowed": ["fit"], "speedup": 4.0},
            },
        )
    )


def test_bench_json_and_plot(env, tmp_path):
    _write_calibration()
    png = tmp_path / "ml.png"
    proc = subprocess.run(
        [
            CPUAI,
            "ml",
            "bench",
            "--only",
            "kmeans,pca,ridge",
            "--repeats",
            "1",
            "--min-time",
            "0",
            "--json",
            "--plot",
            str(png),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    rows = {r["key"]: r for r in data["rows"]}
    assert set(rows) == {"kmeans", "pca", "ridge"}
    for r in rows.values():
        assert r["agree_all"] and r["agree_measured"], r
        assert r["stock"]["fit_s"] > 0 and r["all"]["fit_s"] > 0
        assert r["speedup_all"]["total"] > 0
    assert rows["kmeans"]["measured_accelerates"] == ["all"]
    assert rows["pca"]["measured_accelerates"] == ["fit"]
    assert rows["ridge"]["measured_accelerates"] == []  # not in the calibration: stays stock
    assert rows["ridge"]["measured"] == rows["ridge"]["stock"]  # the very same code path, timed once
    assert rows["kmeans"]["measured"] == rows["kmeans"]["all"]
    assert rows["pca"]["measured"] != rows["pca"]["all"]  # mixed: timed on its own
    assert rows["pca"]["tolerance"] == "rel 0.0001"
    assert data["geomean_speedup"]["all"]["total"] > 0
    assert set(data["slower_than_stock"]) == {"all", "measured"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_table_renders_speedups_and_slowdowns():
    from rich.console import Console

    from cpuai.ml.bench import BenchResult, Row
    from cpuai.ml.timing import Timing
    from cpuai.ml.workloads import by_key

    w = by_key("kmeans")
    row = Row(
        key="kmeans",
        estimator=w.estimator,
        method="predict",
        metric="inertia",
        tolerance="rel 0.01",
        stock=Timing(fit_s=1.0, method_s=0.1, score=100.0),
        all=Timing(fit_s=0.25, method_s=0.2, score=100.5),
        measured=Timing(fit_s=0.25, method_s=0.1, score=100.5),
        measured_methods=["fit"],
    )
    result = BenchResult(size="small", repeats=1, threads=1, rows=[row], workloads={"kmeans": w})
    assert row.speedup("all", "fit") == pytest.approx(4.0) and row.speedup("all", "method") == pytest.approx(
        0.5
    )
    assert result.geomean("measured") == pytest.approx(1.1 / 0.35)
    assert result.slower("all") == ["kmeans.predict 0.50x"] and result.slower("measured") == []
    console = Console(record=True, width=250)
    result.render(console)
    text = console.export_text()
    assert "inertia ok (rel 0.01)" in text and "slower than stock under all: kmeans.predict 0.50x" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "huge"], "unknown size 'huge'"),
        (["--only", "kmeans,nosuch"], "unknown algorithm 'nosuch'"),
        (["--repeats", "0"], "--repeats must be at least 1, got 0"),
        (["--min-time", "-1"], "--min-time must not be negative, got -1.0"),
    ],
)
def test_bench_bad_options(env, capfd, args, message):
    assert main(["ml", "bench", *args]) == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_real_calibration_is_cached_per_fingerprint(env, tmp_path):
    code = textwrap.dedent("""
        import json
        from cpuai.ml import calibration
        cal = calibration.calibrate(keys=["kmeans", "linear_regression"], repeats=2, sample_seconds=0)
        path = calibration.save(cal)
        again = calibration.load()
        print(json.dumps({"path": str(path), "speedups": cal.speedups, "choices": cal.choices,
                          "loaded": again is not None and again.choices == cal.choices}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(out["path"]).parent == tmp_path / "cache"
    assert Path(out["path"]).name.startswith("ml-calibration-")
    assert out["loaded"]
    km = out["speedups"]["sklearn.cluster.KMeans"]
    assert set(km) == {"fit", "predict"} and all(v > 0 for v in km.values())
    for choice in out["choices"].values():
        # measured accelerates only what won every repeat at both sizes for the whole workload
        assert (choice["allowed"] == []) == (choice["speedup"] < 1.10)
        runs = choice["evidence"]["all"]
        assert set(runs) == {"calibration", "small"} and runs["small"]["rows"] > runs["calibration"]["rows"]
        assert all(len(runs[s]["total"]) == 2 for s in runs)  # one ratio per repeat, recorded
        assert choice["why"] and set(choice["methods"]) >= {"fit"}


def test_calibration_cache_ignores_other_machines(env, monkeypatch):
    from cpuai.ml import calibration

    _write_calibration()
    assert calibration.load() is not None
    monkeypatch.setenv("CPUAI_CORES", "7")  # another core budget is another fingerprint
    assert calibration.load() is None
    assert calibration.cache_path() != calibration.cache_path({"other": 1})


def test_plan_from_calibration():
    from cpuai.ml.calibration import Calibration
    from cpuai.ml.policy import make_plan

    cal = Calibration(
        fingerprint={},
        speedups={"a.A": {"fit": 2.0}},
        choices={
            "a.A": {"allowed": None, "speedup": 2.0},
            "b.B": {"allowed": ["fit"], "speedup": 1.5},
            "c.C": {"allowed": [], "speedup": 0.8},
        },
    )
    plan = make_plan("measured", ["a.A", "b.B", "c.C", "d.D"], calibration=cal)
    assert plan.patched == ["a.A", "b.B"] and plan.stock == ["c.C", "d.D"]
    assert plan.allowed == {"b.B": {"fit"}}
    assert plan.decision("d.D")["why"] == "not calibrated"
    assert make_plan("all", ["a.A", "c.C"], calibration=cal).patched == ["a.A", "c.C"]


def test_bench_row_caps_and_repeats_are_applied_and_reported(env):
    # a fresh process: earlier tests in this session may have imported openvino, after which
    # sklearnex cannot load (cpuai refuses with a DependencyError, as it should)
    _write_calibration()
    code = textwrap.dedent("""
        import json
        from cpuai.ml.bench import run_bench
        result = run_bench(
            size="small", keys=["ridge", "kmeans"], repeats=1, min_seconds=0,
            row_caps={"ridge": 2_000}, repeats_for={"ridge": 2},
            cuts={"ridge": "2,000 of 10,000 rows, best of 2"},
        )
        rows = {r.key: r for r in result.rows}
        print(json.dumps({
            "ridge": [rows["ridge"].rows, rows["ridge"].repeats],
            "kmeans": [rows["kmeans"].rows, rows["kmeans"].repeats, rows["kmeans"].features],
            "ridge_agrees": bool(rows["ridge"].agrees(result.workloads["ridge"], "all")),
            "data": result.to_dict(),
        }))
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ridge"] == [2_000, 2]
    assert out["kmeans"] == [10_000, 1, 30]
    assert out["ridge_agrees"]
    data = out["data"]
    assert data["cuts"] == {"ridge": "2,000 of 10,000 rows, best of 2"}
    assert {r["key"]: r["rows"] for r in data["rows"]} == {"ridge": 2_000, "kmeans": 10_000}
