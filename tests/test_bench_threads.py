"""No sweep, scaling run, comparison or tuning starts more threads than the cores it may use."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import psutil
import pytest

import cpuai.runtime
from cpuai.cli.app import main
from cpuai.hardware import core_budget

FAST = ["--iterations", "10", "--warmup", "1"]


@pytest.fixture
def engines(monkeypatch) -> list[dict]:
    """Every engine opened through cpuai.runtime.load, with the threads it was built with."""
    seen: list[dict] = []
    real = cpuai.runtime.load

    def recording_load(*args, **kwargs):
        engine = real(*args, **kwargs)
        entry = {"backend": engine.backend, "threads": engine.threads, "streams": engine.streams}
        if engine.backend == "openvino":  # what the CPU plugin really compiled with, not what was asked
            entry["ov_threads"] = int(engine.property("INFERENCE_NUM_THREADS"))
            entry["ov_streams"] = int(engine.property("NUM_STREAMS"))
        seen.append(entry)
        return engine

    monkeypatch.setattr(cpuai.runtime, "load", recording_load)
    return seen


def _within(seen: list[dict], budget: int) -> None:
    assert seen, "no engine was opened"
    for e in seen:
        assert e["threads"] * e["streams"] <= budget, e
        if "ov_threads" in e:
            assert e["ov_threads"] <= budget and e["ov_streams"] <= budget, e


@pytest.mark.parametrize("budget", sorted({1, core_budget()}))
def test_sweep_stays_within_the_core_budget(
    digits_onnx_package: Path, engines, monkeypatch, budget: int
) -> None:
    monkeypatch.setenv("CPUAI_CORES", str(budget))
    for backend in ("onnxruntime", "openvino"):
        assert (
            main(
                [
                    "bench",
                    str(digits_onnx_package),
                    "--backend",
                    backend,
                    "--threads",
                    "1,2,4",
                    "--streams",
                    "1,2,4",
                    "--batch",
                    "1,4",
                    *FAST,
                ]
            )
            == 0
        )
    _within(engines, budget)
    ran = {(e["threads"], e["streams"]) for e in engines}
    assert ran == {(t, s) for t in (1, 2, 4) for s in (1, 2, 4) if t * s <= budget}


def test_scaling_and_compare_stay_within_the_core_budget(digits_onnx_package: Path, engines) -> None:
    budget = core_budget()
    assert main(["bench", str(digits_onnx_package), "--scaling", "--backend", "openvino", *FAST]) == 0
    assert (
        main(["bench", "--compare", str(digits_onnx_package), "--backend", "onnxruntime,openvino", *FAST])
        == 0
    )
    _within(engines, budget)
    assert max(e["threads"] * e["streams"] for e in engines) == budget  # the curve reaches every core


def test_tune_stays_within_the_cores_given(digits_onnx_package: Path, engines, tmp_path: Path) -> None:
    pkg = tmp_path / "digits"
    shutil.copytree(digits_onnx_package, pkg)
    assert (
        main(
            [
                "tune",
                str(pkg),
                "--objective",
                "throughput",
                "--cores",
                "1",
                "--batch",
                "1,8",
                "--budget",
                "50ms",
            ]
        )
        == 0
    )
    _within(engines, 1)
    assert {e["backend"] for e in engines} == {"onnxruntime", "openvino"}


def _peak_threads(fn) -> int:
    """The most OS threads this process had while ``fn`` ran (sampled every millisecond)."""
    proc = psutil.Process()
    peak = [proc.num_threads()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.num_threads())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        assert fn() == 0
    finally:
        stop.set()
        sampler.join()
    return peak[0]


def test_os_threads_of_a_one_core_sweep_match_a_one_core_run(digits_onnx_package: Path, monkeypatch) -> None:
    """With one core, a sweep asking for up to 4 × 4 threads starts no more OS threads than a 1 × 1 run."""
    monkeypatch.setenv("CPUAI_CORES", "1")
    pkg = str(digits_onnx_package)
    single = _peak_threads(
        lambda: main(
            [
                "bench",
                pkg,
                "--backend",
                "onnxruntime",
                "--threads",
                "1",
                "--streams",
                "1",
                "--batch",
                "1,4",
                *FAST,
            ]
        )
    )
    sweep = _peak_threads(
        lambda: main(
            [
                "bench",
                pkg,
                "--backend",
                "onnxruntime",
                "--threads",
                "1,2,4",
                "--streams",
                "1,2,4",
                "--batch",
                "1,4",
                *FAST,
            ]
        )
    )
    assert sweep <= single
