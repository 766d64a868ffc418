"""The main job end to end: `cpuai demo --quick` runs, its summary matches its artifacts, reruns reuse all."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cpuai import package as pkg
from cpuai.demo import COMPARED, DemoSettings, Paths, benchmarked, plan


def _demo(workdir, *extra):
    proc = subprocess.run(
        [sys.executable, "-m", "cpuai", "demo", "--quick", "--workdir", str(workdir), "--json", *extra],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    return workdir, _demo(workdir)


@pytest.mark.slow
def test_summary_matches_the_artifacts(demo_run):
    workdir, summary = demo_run
    paths = Paths(workdir)
    bench = json.loads((paths.reports / "bench.json").read_text())
    assert [r["name"] for r in summary["models"]] == list(COMPARED)
    for entry, (row, package_dir) in enumerate(zip(summary["models"], benchmarked(paths), strict=True)):
        evaluation = json.loads((paths.reports / f"evaluate-{row['name']}.json").read_text())
        assert row["test_top1"] == evaluation["metrics"]["top1"]
        assert row["size_mb"] == pkg.read(package_dir).size_bytes() / 1e6
        b1 = next(r for r in bench["comparison"] if r["entry"] == entry and r["batch"] == 1)
        b32 = next(r for r in bench["comparison"] if r["entry"] == entry and r["batch"] == 32)
        assert row["p50_ms_b1"] == b1["median_ms"] and row["p99_ms_b1"] == b1["p99_ms"]
        assert row["throughput_b32"] == b32["samples_per_s"]
        assert row["latency_speedup_b1"] == pytest.approx(
            bench["comparison"][0]["median_ms"] / b1["median_ms"]
        )
    precisions = {r["name"]: pkg.read(r["path"]).manifest.precision for r in summary["models"]}
    assert precisions["digits-int8-ir"] == precisions["digits-int8-onnx"] == "int8"
    # the tuned deployment was written into the package that serve will use
    deploy = pkg.read(paths.model("digits-int8-ir")).manifest.deploy
    assert deploy is not None and summary["tuned"]["deploy"] == deploy.model_dump()
    minilm = pkg.read(paths.model("minilm-int8")).manifest
    assert minilm.precision == "int8" and summary["minilm"]["metrics"] == minilm.metrics
    assert (paths.reports / "confusion.png").stat().st_size > 1000
    assert summary["search"]["result"] == json.loads((paths.reports / "search.json").read_text())
    assert any("cpuai serve" in c for c in summary["next"]) and any(
        c.startswith("curl") for c in summary["next"]
    )


@pytest.mark.slow
def test_second_run_reuses_everything(demo_run):
    workdir, _ = demo_run
    again = _demo(workdir)
    assert {s["outcome"] for s in again["steps"]} == {"reused"}
    assert len(again["steps"]) == len(plan(DemoSettings.make(workdir=workdir, quick=True)))
