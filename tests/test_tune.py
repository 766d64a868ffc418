"""cpuai tune: a pruned search over real engines that writes the winner into the package's deploy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

import cpuai.bench.tuner as tuner
import cpuai.runtime
from cpuai import package as pkgmod
from cpuai.bench.measure import Budget
from cpuai.cli.app import main
from cpuai.hardware import core_budget


@pytest.fixture
def digits_copy(digits_onnx_package: Path, tmp_path: Path) -> Path:
    """A private copy of the digits package: tune rewrites model.yaml."""
    dest = tmp_path / "digits"
    shutil.copytree(digits_onnx_package, dest)
    return dest


@pytest.mark.slow
def test_tune_latency_writes_deploy_that_runtime_uses(digits_copy: Path, capsys) -> None:
    rc = main(["tune", str(digits_copy), "--objective", "latency", "--budget", "100ms"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "[Step 1/3] search space" in out and "[Step 3/3] wrote deploy" in out
    assert "why: " in out and "has the lowest median latency" in out and "picked" in out
    manifest = yaml.safe_load((digits_copy / "model.yaml").read_text())
    deploy = manifest["deploy"]
    assert deploy["objective"] == "latency" and deploy["hint"] == "latency"
    assert deploy["batch"] == 1 and deploy["streams"] == 1
    assert deploy["threads"] * deploy["streams"] <= core_budget()
    assert deploy["backend"] in ("onnxruntime", "openvino")
    assert (
        deploy["measured"]["median_ms"] > 0
        and deploy["measured"]["p99_ms"] >= deploy["measured"]["median_ms"]
    )
    assert manifest["lineage"][-1]["command"] == "cpuai tune"
    engine = cpuai.runtime.load(pkgmod.read(digits_copy))  # auto: the deploy section decides
    try:
        assert (engine.backend, engine.threads, engine.streams) == (deploy["backend"], deploy["threads"], 1)
    finally:
        engine.close()


@pytest.mark.slow
def test_tune_throughput_prunes_and_respects_the_p99_limit(digits_copy: Path, tmp_path: Path) -> None:
    import json

    out = tmp_path / "tune.json"
    rc = main(
        [
            "tune",
            str(digits_copy),
            "--objective",
            "throughput",
            "--max-p99-ms",
            "1000",
            "--batch",
            "1,8,32",
            "--budget",
            "100ms",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["machine"]["thread_budget"] >= 1
    result = report["tune"]
    trials = result["trials"]
    rung0 = [t for t in trials if t["rung"] == 0]
    assert len(rung0) == result["space"]["candidates"]
    assert len([t for t in trials if t["rung"] == 1]) < len(rung0)  # pruned, not the full grid again
    assert any(t["status"] == "pruned" for t in trials)
    picked = [t for t in trials if t["status"] == "picked"]
    assert len(picked) == 1 and picked[0]["p99_ms"] <= 1000
    last = [t for t in trials if t["rung"] == picked[0]["rung"] and t["status"] in ("picked", "runner-up")]
    assert picked[0]["samples_per_s"] == max(t["samples_per_s"] for t in last)
    deploy = pkgmod.read(digits_copy).manifest.deploy
    assert deploy is not None and deploy.objective == "throughput" and deploy.batch == picked[0]["batch"]
    assert (deploy.threads, deploy.streams, deploy.backend) == (
        picked[0]["threads"],
        picked[0]["streams"],
        picked[0]["backend"],
    )


def test_no_configuration_meets_the_limit_leaves_the_package_alone(digits_copy: Path, capsys) -> None:
    before = (digits_copy / "model.yaml").read_text()
    rc = main(
        [
            "tune",
            str(digits_copy),
            "--objective",
            "latency",
            "--max-p99-ms",
            "0.000001",
            "--backend",
            "onnxruntime",
            "--budget",
            "50ms",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: no configuration meets --max-p99-ms 1e-06 (lowest p99 seen:")
    assert "raise --max-p99-ms" in err
    assert (digits_copy / "model.yaml").read_text() == before


def test_search_space_precisions(digits_onnx_package: Path, tmp_path: Path, monkeypatch) -> None:
    pkg = pkgmod.read(digits_onnx_package)
    monkeypatch.setattr(tuner, "bf16_accelerated", lambda: True)
    configs, space = tuner.candidates(pkg, "latency", 2)
    assert {(c.backend, c.precision) for c in configs} == {
        ("onnxruntime", "fp32"),
        ("openvino", "fp32"),
        ("openvino", "bf16"),
    }
    assert {c.batch for c in configs} == {1} and {c.streams for c in configs} == {1}
    monkeypatch.setattr(tuner, "bf16_accelerated", lambda: False)
    configs, space = tuner.candidates(pkg, "throughput", 4)
    assert {c.precision for c in configs} == {"fp32"} and "no BF16 acceleration" in space["precisions"][
        "openvino"
    ]
    pairs = {(c.threads, c.streams) for c in configs}
    defaults = {tuple(p) for p in space["library_defaults"].values()}
    assert pairs - defaults == {(1, 4), (2, 2), (4, 1)}  # every core used, besides the libraries' own
    assert all(t * s <= 4 for t, s in pairs)
    assert {c.batch for c in configs} == {1, 8, 32}
    int8 = pkgmod.copy_with(pkg, tmp_path / "int8", precision="int8")
    configs, _ = tuner.candidates(int8, "latency", 2)
    assert {c.precision for c in configs} == {"int8"}


def test_search_space_holds_each_librarys_default_configuration(digits_onnx_package: Path) -> None:
    """ONNX Runtime's default session and OpenVINO's hints are candidates, so tune cannot pick worse."""
    import openvino as ov

    from cpuai.hardware import current

    pkg = pkgmod.read(digits_onnx_package)
    cores = core_budget()
    ort_threads = min(cores, current().usable_physical_cores)  # ORT's default: one per physical core
    for objective in ("latency", "throughput"):
        configs, space = tuner.candidates(pkg, objective, cores)
        compiled = ov.Core().compile_model(
            str(pkg.model_file), "CPU", {"PERFORMANCE_HINT": objective.upper()}
        )
        streams = int(compiled.get_property("NUM_STREAMS"))
        hint = (int(compiled.get_property("INFERENCE_NUM_THREADS")) // streams, streams)
        assert space["library_defaults"] == {"onnxruntime": [ort_threads, 1], "openvino": list(hint)}
        pairs = {(c.backend, c.threads, c.streams) for c in configs}
        assert ("onnxruntime", ort_threads, 1) in pairs and ("openvino", *hint) in pairs
        assert all(c.hint == objective for c in configs)


def test_coarse_to_fine_thread_refinement() -> None:
    assert tuner.coarse_threads(12) == [1, 2, 4, 8, 12]
    assert tuner.refine_threads(8, [1, 2, 4, 8, 12], 12) == [6, 10]
    assert tuner.refine_threads(1, [1, 2], 2) == []


def test_tune_library_dry_run_does_not_write(digits_onnx_package: Path) -> None:
    pkg = pkgmod.read(digits_onnx_package)
    result = tuner.tune(
        pkg, objective="latency", cores=1, backends=["onnxruntime"], budget=Budget(iterations=20), write=False
    )
    assert result.best.config.threads == 1 and result.deploy.threads == 1
    assert pkgmod.read(digits_onnx_package).manifest.deploy is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--objective", "speed"], "error: unknown objective 'speed'; use --objective latency or"),
        (["--cores", "999"], "error: --cores 999 is more than the"),
        (["--cores", "0"], "error: --cores 0 is not allowed"),
        (["--backend", "tpu"], "error: unknown backend 'tpu'"),
        (["--batch", "0", "--objective", "throughput"], "error: batch size 0 is not allowed"),
        (["--max-p99-ms", "-1"], "error: --max-p99-ms -1 is not allowed"),
        (["--backend", "torch"], "error: backend 'torch' cannot run a 'onnx' package"),
    ],
)
def test_tune_bad_input(digits_copy: Path, capsys, args: list[str], message: str) -> None:
    rc = main(["tune", str(digits_copy), *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(message) and err.count("\n") == 1
