"""cpuai bench: real engines on the digits CNN; reports carry every field; bad input is one clear line."""

from __future__ import annotations

import csv
import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from cpuai import package as pkgmod
from cpuai.bench.config import RunConfig, parse_duration, resolve
from cpuai.bench.measure import Budget, measure_latency, measure_throughput
from cpuai.cli.app import main
from cpuai.errors import ConfigError, ResourceError
from cpuai.hardware import core_budget
from cpuai.runtime.engine import TensorInfo

QUICK = ["--iterations", "40", "--warmup", "3"]


# ---- a fake engine: counts calls and the requests in flight --------------------------------------


class CountingEngine:
    """Engine protocol in a few lines: records calls and the largest number of requests at once."""

    backend, precision, threads = "fake", "fp32", 1

    def __init__(self, streams: int = 1) -> None:
        self.streams = streams
        self.inputs = [TensorInfo("x", "float32", (-1, 4))]
        self.outputs = [TensorInfo("y", "float32", (-1, 4))]
        self.calls = 0
        self.active = self.max_active = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=streams)

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            self.calls += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        time.sleep(0.0005)
        with self._lock:
            self.active -= 1
        return {"y": feeds["x"] * 2}

    def submit(self, feeds: dict[str, np.ndarray]) -> Future[dict[str, np.ndarray]]:
        return self._pool.submit(self.infer, feeds)

    def close(self) -> None:
        self._pool.shutdown()


def test_latency_excludes_warmup_and_times_exactly_the_requests_asked_for() -> None:
    engine = CountingEngine()
    stats = measure_latency(engine, {"x": np.ones((2, 4), np.float32)}, Budget(iterations=23, warmup=4))
    assert engine.calls == 27
    assert stats.count == 23 and stats.rounds == 5
    assert stats.min_ms <= stats.median_ms <= stats.p90_ms <= stats.p99_ms <= stats.max_ms
    assert stats.min_ms >= 0.5  # each call sleeps 0.5 ms: the timer wraps the call


def test_throughput_keeps_streams_requests_in_flight() -> None:
    engine = CountingEngine(streams=3)
    tp = measure_throughput(
        engine, {"x": np.ones((2, 4), np.float32)}, Budget(iterations=60, warmup=3), batch=2
    )
    engine.close()
    assert tp.in_flight == 3 and tp.requests == 60
    assert engine.max_active == 3  # never more than the streams, and the streams were all used
    assert tp.samples_per_s == pytest.approx(2 * tp.requests_per_s)


def test_resolve_refuses_oversubscription_and_fills_threads_from_the_budget() -> None:
    assert resolve(RunConfig(streams=2), cores=4).threads == 2
    assert resolve(RunConfig(), cores=3).threads == 3
    with pytest.raises(ResourceError, match=r"2 stream\(s\) × 3 thread\(s\) = 6 .*refused, not clamped"):
        resolve(RunConfig(threads=3, streams=2), cores=4)
    with pytest.raises(ConfigError, match="batch size 0"):
        resolve(RunConfig(batch=0), cores=2)
    assert parse_duration("500ms") == 0.5 and parse_duration("2m") == 120.0
    with pytest.raises(ConfigError, match="duration"):
        parse_duration("soon")


# ---- the real thing: cpuai bench on the digits CNN -----------------------------------------------


def test_bench_report_has_every_field(digits_onnx_package: Path, tmp_path: Path, capsys) -> None:
    out_json, out_csv, out_png = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "r.png"
    rc = main(
        [
            "bench",
            str(digits_onnx_package),
            "--backend",
            "onnxruntime",
            "--batch",
            "1,8",
            "--streams",
            "1",
            *QUICK,
            "--json",
            str(out_json),
            "--csv",
            str(out_csv),
            "--plot",
            str(out_png),
        ]
    )
    printed = capsys.readouterr().out
    assert rc == 0
    assert "[Step 1/5] cold start" in printed and "[Step 5/5] throughput at batch 8" in printed
    assert "latency per request" in printed and "cold start (onnxruntime" in printed
    report = json.loads(out_json.read_text())
    assert report["kind"] == "bench"
    assert report["machine"]["source"] == "cpuai.hardware.probe" and report["machine"]["thread_budget"] >= 1
    assert report["settings"]["requested"]["backend"] == "onnxruntime"
    assert report["settings"]["iterations"] == 40 and report["settings"]["warmup"] == 3
    res = report["results"][0]
    assert res["engine"] == {
        "backend": "onnxruntime",
        "precision": "fp32",
        "threads": core_budget(),
        "streams": 1,
    }
    assert res["cold_start"]["load_ms"] > 0 and res["cold_start"]["first_infer_ms"] > 0
    assert (
        res["inputs"]["8"]["shapes"] == {"input": [8, 1, 32, 32]}
        and "synthetic" in res["inputs"]["8"]["source"]
    )
    assert [r["batch"] for r in res["latency"]] == [1, 8]
    for lat in res["latency"]:
        assert lat["count"] == 40
        assert lat["min_ms"] <= lat["median_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["max_ms"]
        assert {"spread", "stable", "rounds", "mean_ms", "std_ms"} <= set(lat)
    for tp in res["throughput"]:
        assert tp["in_flight"] == 1 and tp["samples_per_s"] > 0 and tp["requests"] >= 40
    rows = list(csv.DictReader(out_csv.open()))
    assert [int(r["batch"]) for r in rows] == [1, 8] and float(rows[1]["samples_per_s"]) > 0
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_openvino_reports_what_it_ran(digits_onnx_package: Path, tmp_path: Path) -> None:
    out = tmp_path / "ov.json"
    assert (
        main(
            [
                "bench",
                str(digits_onnx_package),
                "--backend",
                "openvino",
                "--precision",
                "fp32",
                "--api",
                "sync",
                *QUICK,
                "--json",
                str(out),
            ]
        )
        == 0
    )
    res = json.loads(out.read_text())["results"][0]
    assert res["engine"]["backend"] == "openvino" and res["engine"]["precision"] == "fp32"
    assert res["throughput"] == [] and len(res["latency"]) == 1


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory) -> Path:
    from cpuai.data.digits import export_digits

    root = tmp_path_factory.mktemp("digits-images") / "digits"
    export_digits(root, size=32)
    return root


def test_accuracy_mode_equals_cpuai_evaluate(
    digits_onnx_package: Path, digits_folder: Path, tmp_path: Path
) -> None:
    from cpuai.evaluate import evaluate

    out = tmp_path / "acc.json"
    assert (
        main(
            [
                "bench",
                str(digits_onnx_package),
                "--backend",
                "onnxruntime",
                "--data",
                str(digits_folder),
                "--batch",
                "32",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    acc = json.loads(out.read_text())["accuracy"]
    reference = evaluate(digits_onnx_package, digits_folder, backend="onnxruntime", batch_size=32)
    assert acc["primary"] == "top1" and acc["count"] == reference.count > 200
    assert acc["values"] == pytest.approx(reference.metrics, abs=1e-12)


def test_sweep_grid_and_skipped_points(digits_onnx_package: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "sweep.json"
    cores = core_budget()
    rc = main(
        [
            "bench",
            str(digits_onnx_package),
            "--backend",
            "onnxruntime",
            "--threads",
            f"1,{cores}",
            "--streams",
            f"1,{cores}",
            "--batch",
            "1,4",
            "--iterations",
            "20",
            "--warmup",
            "1",
            "--json",
            str(out),
            "--plot",
            str(tmp_path / "sweep.png"),
        ]
    )
    assert rc == 0
    report = json.loads(out.read_text())
    ran = {(r["engine"]["threads"], r["engine"]["streams"]) for r in report["results"]}
    assert all(t * s <= cores for t, s in ran)
    assert (1, 1) in ran
    if cores > 1:
        assert {(s["threads"], s["streams"]) for s in report["skipped"]} == {(cores, cores)}
        assert "skipped" in capsys.readouterr().out
    assert all(len(r["rows"]) == 2 for r in report["results"])


def test_scaling_curve_over_cores(digits_onnx_package: Path, tmp_path: Path) -> None:
    out, png = tmp_path / "scale.json", tmp_path / "scale.png"
    assert (
        main(
            [
                "bench",
                str(digits_onnx_package),
                "--backend",
                "onnxruntime",
                "--scaling",
                "--batch",
                "4",
                "--iterations",
                "20",
                "--warmup",
                "1",
                "--json",
                str(out),
                "--plot",
                str(png),
            ]
        )
        == 0
    )
    table = json.loads(out.read_text())["scaling"]
    assert [r["cores"] for r in table] == list(range(1, core_budget() + 1))
    assert all(r["median_ms"] > 0 and r["samples_per_s"] > 0 for r in table)
    assert table[0]["latency_speedup"] == 1.0 and table[0]["throughput_speedup"] == 1.0
    assert png.stat().st_size > 1000


def test_compare_backends_side_by_side_with_ratios(digits_onnx_package: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cmp.json"
    assert (
        main(
            [
                "bench",
                "--compare",
                str(digits_onnx_package),
                "--backend",
                "onnxruntime,openvino",
                "--precision",
                "fp32",
                "--batch",
                "1,8",
                *QUICK,
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert "comparison: speed-up = first entry" in capsys.readouterr().out
    rows = json.loads(out.read_text())["comparison"]
    assert [(r["backend"], r["batch"]) for r in rows] == [
        ("onnxruntime", 1),
        ("onnxruntime", 8),
        ("openvino", 1),
        ("openvino", 8),
    ]
    assert rows[0]["latency_speedup"] == 1.0 and rows[0]["throughput_ratio"] == 1.0
    ov = rows[2]
    assert ov["latency_speedup"] == pytest.approx(rows[0]["median_ms"] / ov["median_ms"])


# ---- bad input: one line naming the problem, the value and the fix -----------------------------


@pytest.fixture(scope="module")
def generic_package(digits_onnx_package: Path, tmp_path_factory) -> Path:
    pkg = pkgmod.read(digits_onnx_package)
    return pkgmod.copy_with(pkg, tmp_path_factory.mktemp("generic") / "digits-generic", task="generic").path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch", "0"], "error: batch size 0 is not allowed; use a batch of 1 or more"),
        (["--batch", "1,x"], "error: --batch '1,x' is not a list of whole numbers"),
        (["--threads", "2", "--streams", "99"], "error: 99 streams need at least 99 cores"),
        (
            ["--backend", "tpu"],
            "error: unknown backend 'tpu'; use one of: auto, onnxruntime, openvino, torch",
        ),
        (["--api", "fast"], "error: unknown --api 'fast'"),
        (["--duration", "soon"], "error: duration 'soon' is not a positive time"),
        (["--cores", "999"], "error: --cores 999 is more than the"),
    ],
)
def test_bad_input_is_one_clear_line(
    digits_onnx_package: Path, capsys, args: list[str], message: str
) -> None:
    rc = main(["bench", str(digits_onnx_package), *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err


def test_threads_times_streams_beyond_cores_is_refused_not_clamped(digits_onnx_package: Path, capsys) -> None:
    cores = core_budget()
    rc = main(["bench", str(digits_onnx_package), "--threads", str(cores), "--streams", "2"])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"2 stream(s) × {cores} thread(s) = {2 * cores} threads is more than the {cores} core(s)" in err
    assert "refused, not clamped" in err and "threads × streams <=" in err


def test_accuracy_mode_on_a_package_without_a_task_metric(
    generic_package: Path, tmp_path: Path, capsys
) -> None:
    rc = main(["bench", str(generic_package), "--data", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "has task 'generic', which has no task metric for --data; drop --data" in err
