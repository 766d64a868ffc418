"""``cpuai ml run``: a real scikit-learn script under sklearnex, the report, and the bad inputs.

The script uses KMeans, LogisticRegression and LogisticRegression(class_weight="balanced"), which
sklearnex does not support (it falls back). Data: scikit-learn's handwritten digits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cpuai.cli.app import main

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from sklearn.datasets import load_digits
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    X, y = X[:600] / 16.0, y[:600]
    km = KMeans(n_clusters=10, init=X[:10], n_init=1, max_iter=100).fit(X)
    labels = km.predict(X)
    lr = LogisticRegression(max_iter=200).fit(X, y)
    weighted = LogisticRegression(max_iter=200, class_weight="balanced").fit(X, y)
    out = {"inertia": float(km.inertia_), "n_labels": int(len(set(labels.tolist()))),
           "accuracy": float(lr.score(X, y)), "weighted_accuracy": float(weighted.score(X, y)),
           "kmeans_class": type(km).__module__, "argv": sys.argv[1:]}
    with open(sys.argv[1], "w") as f:
        json.dump(out, f)
    sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    """
)


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ml") / "fit_models.py"
    path.write_text(SCRIPT)
    return path


@pytest.fixture(autouse=True)
def _one_core(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # one thread keeps the shared 2-core machine responsive; the cache goes to a temporary directory
    monkeypatch.setenv("CPUAI_CORES", "1")
    monkeypatch.setenv("CPUAI_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def stock_result(script: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same script under plain Python: stock scikit-learn."""
    out = tmp_path_factory.mktemp("stock") / "out.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), str(out)], check=True, env=env, timeout=300)
    return json.loads(out.read_text())


def test_report_names_accelerated_and_fallen_back(script, stock_result, tmp_path, capfd):
    out, report = tmp_path / "out.json", tmp_path / "report.json"
    code = main(["ml", "run", "--policy", "all", "--report", str(report), str(script), str(out)])
    captured = capfd.readouterr()
    assert code == 0, captured.err
    result, rep = json.loads(out.read_text()), json.loads(report.read_text())
    rows = {f"{r['estimator']}.{r['method']}": r for r in rep["rows"]}

    assert result["kmeans_class"].startswith("sklearnex")  # the script really got the patched class
    assert rows["KMeans.fit"]["status"] == "accelerated" and rows["KMeans.fit"]["calls"] == 1
    assert rows["KMeans.predict"]["accelerated"] == 1
    lr_fit = rows["LogisticRegression.fit"]
    assert lr_fit["calls"] == 2 and lr_fit["accelerated"] == 1 and lr_fit["fallback"] == 1
    assert lr_fit["status"] == "mixed"
    assert any("Class weights are not supported" in why for why in lr_fit["reasons"])
    assert "LogisticRegression.fit" in rep["fallen_back"]
    assert "KMeans.fit" not in rep["fallen_back"]
    assert all(r["seconds"] > 0 for r in rep["rows"])
    # the printed report says the same
    assert "KMeans.fit" in captured.err and "Class weights are not supported" in captured.err
    assert "policy: all" in captured.err

    # results agree with stock scikit-learn within tolerance
    assert result["inertia"] == pytest.approx(stock_result["inertia"], rel=1e-4)
    assert result["n_labels"] == stock_result["n_labels"]
    assert abs(result["accuracy"] - stock_result["accuracy"]) <= 0.01
    assert abs(result["weighted_accuracy"] - stock_result["weighted_accuracy"]) <= 1e-9  # stock code path


def test_arguments_and_exit_code_pass_through(script, tmp_path, capfd):
    out = tmp_path / "out.json"
    code = main(["ml", "run", "--policy", "all", str(script), str(out), "3", "--policy", "x", "-h"])
    err = capfd.readouterr().err
    assert code == 3
    assert json.loads(out.read_text())["argv"] == [str(out), "3", "--policy", "x", "-h"]  # all for the script
    assert "exit code 3" in err and "KMeans.fit" in err  # the report is still printed
    assert "exited with code 3" in err


def test_script_that_raises_propagates_code_and_still_reports(tmp_path, capfd):
    bad = tmp_path / "boom.py"
    bad.write_text(
        textwrap.dedent("""
        import numpy as np
        from sklearn.cluster import KMeans
        KMeans(n_clusters=2, n_init=1, random_state=0).fit(np.random.RandomState(0).rand(50, 3))
        raise ValueError("deliberate failure in the user's script")
    """)
    )
    code = main(["ml", "run", "--policy", "all", str(bad)])
    err = capfd.readouterr().err
    assert code == 1
    assert "deliberate failure in the user's script" in err  # the script's own traceback
    assert "exit code 1" in err and "KMeans.fit" in err and "accelerated" in err


def test_missing_script_is_one_line_error(tmp_path, capfd):
    missing = tmp_path / "nope.py"
    assert main(["ml", "run", str(missing)]) == 2
    err = capfd.readouterr().err.strip()
    assert err == f"error: script not found: {missing}; give the path of an existing Python script"


def test_directory_instead_of_script(tmp_path, capfd):
    assert main(["ml", "run", str(tmp_path)]) == 2
    assert "not a file" in capfd.readouterr().err


def test_unknown_policy(script, capfd):
    assert main(["ml", "run", "--policy", "fastest", str(script)]) == 2
    err = capfd.readouterr().err
    assert "unknown policy 'fastest'" in err and "measured, all" in err


def test_sklearnex_missing_gives_install_hint(script, tmp_path):
    # a shadow package that fails to import, first on the path, stands in for a missing sklearnex
    shadow = tmp_path / "shadow" / "sklearnex"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'sklearnex'\")\n")
    env = {**os.environ, "PYTHONPATH": str(shadow.parent)}
    cpuai = Path(sys.executable).parent / "cpuai"
    proc = subprocess.run(
        [str(cpuai), "ml", "run", "--policy", "all", str(script), str(tmp_path / "o.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: scikit-learn-intelex is not installed")
    assert "pip install 'cpuai[ml]'" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o.json").exists()  # the script never ran


def test_measured_policy_uses_cached_calibration(script, tmp_path, capfd, monkeypatch):
    from cpuai.ml import calibration

    cal = calibration.Calibration(
        fingerprint=calibration.fingerprint(),
        speedups={
            "sklearn.cluster.KMeans": {"fit": 3.0, "predict": 0.5},
            "sklearn.linear_model.LogisticRegression": {"fit": 0.6, "predict": 0.2},
        },
        choices={
            "sklearn.cluster.KMeans": {"allowed": ["fit"], "speedup": 2.5},
            "sklearn.linear_model.LogisticRegression": {"allowed": [], "speedup": 0.5},
        },
    )
    path = calibration.save(cal)
    assert path.parent == tmp_path / "cache"
    out, report = tmp_path / "out.json", tmp_path / "report.json"
    assert main(["ml", "run", "--report", str(report), str(script), str(out)]) == 0
    err = capfd.readouterr().err
    rows = {f"{r['estimator']}.{r['method']}": r for r in json.loads(report.read_text())["rows"]}
    assert rows["KMeans.fit"]["status"] == "accelerated"
    assert rows["KMeans.predict"]["status"] == "stock (policy)"
    assert rows["LogisticRegression.fit"]["status"] == "stock"
    assert rows["LogisticRegression.fit"]["patched"] is False
    assert "calibrating" not in err  # the cache was used, not re-measured
    assert "KMeans: accelerated fit" in err and "LogisticRegression: kept stock" in err
