"""``cpuai.ml.accelerated()`` and ``cpuai.ml.report()``, the OpenVINO guard, and the tracker's log reading.

Blocks that load sklearnex run in a fresh subprocess: another test module may have imported
OpenVINO into the pytest process, which is exactly what the guard refuses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter

import pytest

from cpuai.ml.report import Report
from cpuai.ml.tracker import MethodStats, Tracker


def _python(code: str, tmp_path, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "CPUAI_CORES": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "CPUAI_CACHE_DIR": str(tmp_path / "cache"),
    }
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def test_accelerated_patches_tracks_and_restores(tmp_path):
    proc = _python(
        """
        import json
        import numpy as np
        import sklearn.cluster
        from sklearn.datasets import load_digits
        import cpuai.ml

        X = load_digits().data[:500] / 16.0
        stock_cls = sklearn.cluster.KMeans
        stock = stock_cls(n_clusters=5, init=X[:5], n_init=1).fit(X)
        with cpuai.ml.accelerated(policy="all") as session:
            from sklearn.cluster import KMeans
            from sklearn.decomposition import PCA
            inside = KMeans is not stock_cls
            fast = KMeans(n_clusters=5, init=X[:5], n_init=1).fit(X)
            PCA(n_components=3).fit_transform(X)
            live = cpuai.ml.report().accelerated
        after = sklearn.cluster.KMeans is stock_cls and not hasattr(stock_cls.fit, "_cpuai_wrapped")
        r = cpuai.ml.report()
        print(json.dumps({"inside": inside, "after": after, "live": live, "report": r.to_dict(),
                          "stock": stock.inertia_, "fast": fast.inertia_}))
    """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["inside"] and out["after"]
    assert "KMeans.fit" in out["live"]
    rows = {f"{r['estimator']}.{r['method']}": r for r in out["report"]["rows"]}
    assert rows["KMeans.fit"]["status"] == "accelerated"
    assert rows["PCA.fit_transform"]["accelerated"] == 1
    assert "KMeans.fit" not in {k for k in rows if rows[k]["status"] == "stock"}
    assert out["fast"] == pytest.approx(out["stock"], rel=1e-4)
    # a stock call before the block is not in the report
    assert rows["KMeans.fit"]["calls"] == 1
    assert "running accelerated" not in proc.stderr  # sklearnex's own lines stay quiet


def test_guard_refuses_after_openvino(tmp_path):
    proc = _python(
        """
        import openvino
        import cpuai.ml
        from cpuai.errors import DependencyError
        try:
            with cpuai.ml.accelerated(policy="all"):
                pass
        except DependencyError as exc:
            print("refused:", exc)
        import sys
        print("daal4py loaded:", "daal4py._daal4py" in sys.modules)
    """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "refused: openvino is already imported in this process" in proc.stdout
    assert "cpuai ml run" in proc.stdout
    assert "daal4py loaded: False" in proc.stdout  # nothing half-loaded
    assert "undefined symbol" not in proc.stderr


def test_cpuai_ml_run_isolates_a_script_that_imports_openvino(tmp_path):
    script = tmp_path / "ov_then_sklearn.py"
    script.write_text(
        textwrap.dedent("""
        import openvino
        import numpy as np
        from sklearn.cluster import KMeans
        km = KMeans(n_clusters=3, n_init=1, random_state=0).fit(np.random.RandomState(0).rand(300, 4))
        print("fitted", type(km).__module__, openvino.Core().available_devices)
    """)
    )
    proc = _python(
        f"""
        import sys
        from cpuai.cli.app import main
        sys.exit(main(["ml", "run", "--policy", "all", {str(script)!r}]))
    """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "fitted sklearnex" in proc.stdout and "CPU" in proc.stdout
    assert "KMeans.fit" in proc.stderr and "accelerated" in proc.stderr


def test_report_without_a_block_is_an_error(tmp_path):
    proc = _python(
        """
        import cpuai.ml
        from cpuai.errors import ConfigError
        try:
            cpuai.ml.report()
        except ConfigError as exc:
            print(exc)
    """,
        tmp_path,
        timeout=60,
    )
    assert "no accelerated() block has run" in proc.stdout


def test_tracker_charges_log_lines_to_calls():
    tracker = Tracker()

    def fake_fit(self, logs):
        for line in logs:
            tracker._on_log(line)
        return self

    class LogisticRegression:  # stands in for the patched class; the logs are sklearnex's wording
        fit = tracker._wrap(fake_fit, "LogisticRegression", "fit", patched=True)

    est = LogisticRegression()
    scope = "sklearn.linear_model.LogisticRegression.fit"
    est.fit([f"{scope}: running accelerated version on CPU"])
    est.fit(
        [
            f"{scope}: running accelerated version on CPU",
            f"{scope}: debugging for the patch is enabled to track the usage of oneAPI Data Analytics",
            f"{scope}: patching failed with cause - Class weights are not supported.",
            f"{scope}: fallback to original Scikit-learn",
        ]
    )
    est.fit(
        [
            f"{scope}: patching failed with cause - cpuai policy: stock scikit-learn measured faster "
            "for this method on this machine",
            f"{scope}: fallback to original Scikit-learn",
        ]
    )
    s = tracker.stats[("LogisticRegression", "fit")]
    assert (s.calls, s.accelerated, s.fallback, s.policy) == (3, 1, 1, 1)
    assert s.reasons == Counter({"Class weights are not supported.": 1})
    assert s.status == "mixed"


def test_report_round_trip_and_render():
    row = MethodStats(estimator="KMeans", method="fit", patched=True, calls=2, accelerated=2, seconds=0.5)
    rep = Report(rows=[row], plan={"policy": "all"}, exit_code=0, script="s.py")
    again = Report.from_dict(json.loads(json.dumps(rep.to_dict())))
    assert again.accelerated == ["KMeans.fit"] and again.row("KMeans", "fit").calls == 2
    from rich.console import Console

    console = Console(record=True, width=200)
    Report(rows=[], plan={"policy": "all"}, script="s.py", exit_code=1).render(console)
    assert "no scikit-learn estimator covered by sklearnex was called" in console.export_text()


def test_runner_exit_codes():
    from cpuai.ml.runner import _exit_code

    assert _exit_code(SystemExit(None)) == 0
    assert _exit_code(SystemExit(4)) == 4
    assert _exit_code(SystemExit("message")) == 1


def test_tracker_charges_function_logs_to_the_function():
    from cpuai.ml.tracker import CALL

    tracker = Tracker()

    def split(*arrays):
        tracker._on_log("sklearn.model_selection.train_test_split: running accelerated version on CPU")
        return arrays

    wrapped = tracker._wrap(split, "train_test_split", CALL, patched=True, function=True)
    assert wrapped(1, 2) == (1, 2)
    s = tracker.stats[("train_test_split", CALL)]
    assert (s.calls, s.accelerated, s.name) == (1, 1, "train_test_split()")
    assert ("model_selection", "train_test_split") not in tracker.stats
