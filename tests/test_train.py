"""cpuai train: package contract, log line, transfer learning, bad inputs, resume, signals, workers."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cpuai import package as pkgmod
from cpuai.cli.app import main
from cpuai.data.digits import export_digits

CLASSIC = re.compile(r"step \d+, loss = \d+\.\d\d \(\d+\.\d examples/sec, \d+\.\d\d\d sec/batch\)")
SMALL = [
    "--epochs",
    "2",
    "--limit",
    "320",
    "--width",
    "8",
    "--threads",
    "1",
    "--log-every",
    "2",
    "--precision",
    "fp32",
]
CLI = [sys.executable, "-m", "cpuai.cli.app"]


@pytest.fixture(scope="module")
def digits16(tmp_path_factory) -> Path:
    """The real digits exported at 16x16 (small, so test runs take seconds)."""
    return export_digits(tmp_path_factory.mktemp("data") / "digits16", size=16).root


@pytest.fixture(scope="module")
def trained_job(digits16, tmp_path_factory) -> Path:
    job = tmp_path_factory.mktemp("jobs") / "small"
    assert main(["train", "image-classification", "--data", str(digits16), "--out", str(job), *SMALL]) == 0
    return job


def _train(data: Path, job: Path, *extra: str) -> int:
    return main(["train", "image-classification", "--data", str(data), "--out", str(job), *SMALL, *extra])


def _wait_for(predicate, timeout: float = 900.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"process ended early with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
            )
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def _epochs_done(job: Path) -> int:
    path = job / "metrics.jsonl"
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if '"kind": "epoch"' in line)


def test_package_contract(trained_job):
    package = pkgmod.read(trained_job / "package")
    m = package.manifest
    assert m.format == "torchscript" and m.task == "image-classification" and m.precision == "fp32"
    assert (
        m.inputs[0].name == "input" and m.inputs[0].shape == [-1, 1, 16, 16] and m.inputs[0].layout == "NCHW"
    )
    assert m.outputs[0].name == "logits" and m.outputs[0].shape == [-1, 10]
    assert m.labels == [str(i) for i in range(10)]
    assert (trained_job / "package" / "labels.txt").read_text().split() == m.labels
    pre = m.preprocessing.image
    assert pre.size == (16, 16) and pre.color == "gray" and pre.scale == pytest.approx(1 / 255)
    assert 0.0 < pre.mean[0] < 0.5 and 0.1 < pre.std[0] < 0.6  # measured on the training images
    assert {"val_top1", "val_top5", "test_top1", "test_top5"} <= set(m.metrics)
    assert m.architecture.factory == "cpuai.models.smallcnn:smallcnn"
    assert m.architecture.kwargs == {"num_classes": 10, "in_channels": 1, "width": 8}
    assert m.lineage[0].command == "cpuai train image-classification" and m.lineage[0].settings["epochs"] == 2
    # model.pt: traced, FP32, NCHW, dynamic batch; agrees with the eager weights
    traced = torch.jit.load(str(package.model_file))
    from cpuai.models.smallcnn import smallcnn

    eager = smallcnn(**m.architecture.kwargs)
    eager.load_state_dict(torch.load(package.file("weights.pt"), weights_only=True))
    eager.eval()
    for n in (1, 5):
        x = torch.rand(n, 1, 16, 16)
        out = traced(x)
        assert out.shape == (n, 10) and out.dtype == torch.float32
        torch.testing.assert_close(out, eager(x), rtol=1e-4, atol=1e-4)


def test_job_dir_log_metrics_and_status(trained_job):
    log = (trained_job / "train.log").read_text()
    assert CLASSIC.search(log), log[:2000]
    records = [json.loads(line) for line in (trained_job / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2]
    assert all(r["examples_per_sec"] > 0 for r in records if r["kind"] == "step")
    assert json.loads((trained_job / "status.json").read_text())["state"] == "finished"
    assert (trained_job / "checkpoint.pt").exists() and (trained_job / "spec.yaml").exists()
    assert not list(trained_job.glob(".*tmp*"))  # no half-written files left behind


def test_package_predicts_through_the_runtime(trained_job, digits16):
    from cpuai.runtime import load
    from cpuai.tasks import for_package

    package = pkgmod.read(trained_job / "package")
    engine = load(package, backend="torch", threads=1)
    task = for_package(package)
    files = sorted((digits16 / "test" / "7").glob("*.png"))[:4]
    answers = task.postprocess(engine.infer(task.preprocess([str(f) for f in files])), top_k=3)
    assert len(answers) == 4 and all(len(a) == 3 for a in answers)
    assert {a[0]["label"] for a in answers} <= set(package.labels)


def test_package_converts_to_onnx(trained_job, tmp_path):
    convert = pytest.importorskip("cpuai.convert")
    if not hasattr(convert, "convert"):
        pytest.skip("cpuai.convert.convert is not there yet")
    assert (
        main(["convert", str(trained_job / "package"), "--to", "onnx", "--out", str(tmp_path / "onnx")]) == 0
    )
    onnx_pkg = pkgmod.read(tmp_path / "onnx")
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_pkg.model_file), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((3, 1, 16, 16), dtype=np.float32)
    traced = torch.jit.load(str(trained_job / "package" / "model.pt"))
    np.testing.assert_allclose(
        session.run(None, {"input": x})[0], traced(torch.from_numpy(x)).detach().numpy(), rtol=1e-3, atol=1e-4
    )


def test_transfer_learning_replaces_the_head(trained_job, digits16, tmp_path):
    five = tmp_path / "five"
    for split in ("train", "val", "test"):
        for label in "01234":
            shutil.copytree(digits16 / split / label, five / split / label)
    job = tmp_path / "tl"
    assert (
        main(
            [
                "train",
                "image-classification",
                "--data",
                str(five),
                "--out",
                str(job),
                "--epochs",
                "1",
                "--threads",
                "1",
                "--from",
                str(trained_job),
            ]
        )
        == 0
    )
    m = pkgmod.read(job / "package").manifest
    assert m.labels == list("01234") and m.outputs[0].shape == [-1, 5]
    assert m.architecture.kwargs["num_classes"] == 5 and m.architecture.kwargs["width"] == 8
    source = torch.load(trained_job / "package" / "weights.pt", weights_only=True)
    target = torch.load(job / "package" / "weights.pt", weights_only=True)
    assert target["head.weight"].shape == (5, 32) and source["head.weight"].shape == (10, 32)
    # the features were loaded from the source model (then fine-tuned), not re-initialised
    a, b = source["features.0.weight"].flatten(), target["features.0.weight"].flatten()
    assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.9


def test_empty_data_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert _train(tmp_path / "empty", tmp_path / "job") == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: data folder")
        and "has no class subfolders" in err
        and "DIR/<label>/<image>" in err
    )


def test_one_class_folder(digits16, tmp_path, capsys):
    shutil.copytree(digits16 / "train" / "3", tmp_path / "one" / "3")
    assert _train(tmp_path / "one", tmp_path / "job") == 2
    err = capsys.readouterr().err
    assert "has only one class ('3')" in err and "at least two class folders" in err


def test_unreadable_image_is_skipped_and_counted(digits16, tmp_path, capsys):
    data = tmp_path / "d"
    shutil.copytree(digits16, data)
    (data / "train" / "4" / "corrupt.png").write_bytes(b"\x89PNG broken")
    Image.new("L", (3, 3)).save(data / "train" / "4" / "ok-but-tiny.png")  # readable: resized, kept
    job = tmp_path / "job"
    assert _train(data, job, "--epochs", "1") == 0
    log = (job / "train.log").read_text()
    assert "skipped 1 unreadable image(s) of 1259" in log and "corrupt.png" in log
    assert pkgmod.read(job / "package").manifest.extra["skipped_images"] == 1


def test_bad_flags(digits16, tmp_path, capsys):
    assert _train(digits16, tmp_path / "j", "--model", "vgg") == 2
    assert "--model 'vgg' is not a image-classification model" in capsys.readouterr().err
    assert _train(digits16, tmp_path / "j", "--batch-size", "0") == 2
    assert "--batch-size 0 is invalid" in capsys.readouterr().err


def test_resume_refuses_finished_foreign_and_reused_dirs(trained_job, digits16, tmp_path, capsys):
    assert main(["train", "--resume", str(trained_job)]) == 2
    err = capsys.readouterr().err
    assert "has already finished" in err and "another --out" in err
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("hello")
    assert main(["train", "--resume", str(tmp_path / "foreign")]) == 2
    err = capsys.readouterr().err
    assert "is not a cpuai training job (no spec.yaml)" in err
    assert main(["train", "--resume", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert _train(digits16, trained_job) == 2
    assert "already holds a training job" in capsys.readouterr().err
    assert _train(digits16, tmp_path / "foreign") == 2
    assert "exists and is not empty" in capsys.readouterr().err


def _start(data: Path, job: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [*CLI, "train", "image-classification", "--data", str(data), "--out", str(job), *SMALL, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _test_top1(job: Path) -> float:
    return pkgmod.read(job / "package").manifest.metrics["test_top1"]


@pytest.mark.slow
def test_kill_9_then_resume_matches_an_uninterrupted_run(digits16, tmp_path):
    # enough epochs that the run cannot finish between the poll and the kill
    flags = ("--epochs", "20", "--patience", "0")
    reference = tmp_path / "reference"
    assert _train(digits16, reference, *flags) == 0
    job = tmp_path / "crashed"
    proc = _start(digits16, job, *flags)
    _wait_for(lambda: _epochs_done(job) >= 1 and (job / "checkpoint.pt").exists(), proc=proc)
    proc.kill()  # SIGKILL: no handler runs
    proc.wait()
    assert not (job / "package").exists()
    assert main(["jobs", "show", str(job), "--json"]) == 0
    assert main(["train", "--resume", str(job)]) == 0
    assert json.loads((job / "status.json").read_text())["state"] == "finished"
    assert "resumed from" in (job / "train.log").read_text()
    assert abs(_test_top1(job) - _test_top1(reference)) <= 0.03
    epochs = [
        json.loads(line)["epoch"]
        for line in (job / "metrics.jsonl").read_text().splitlines()
        if '"epoch", ' in line or '"kind": "epoch"' in line
    ]
    assert epochs[-1] == 20


@pytest.mark.slow
def test_sigterm_writes_a_fresh_checkpoint_then_resume_finishes(digits16, tmp_path):
    job = tmp_path / "term"
    # 40 short epochs (about 2 s) so the signal lands mid-run; 3 epochs once finished before it
    proc = _start(digits16, job, "--epochs", "40", "--patience", "0")
    _wait_for(
        lambda: (job / "train.log").exists() and CLASSIC.search((job / "train.log").read_text()), proc=proc
    )
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "error: stopped by SIGTERM: checkpoint written; continue with: cpuai train --resume" in err
    assert (job / "checkpoint.pt").stat().st_mtime >= sent - 0.01
    ckpt = torch.load(job / "checkpoint.pt", weights_only=False)
    assert ckpt["loop"]["global_step"] >= 2
    status = json.loads((job / "status.json").read_text())
    assert status["state"] == "interrupted" and status["signal"] == signal.SIGTERM
    assert main(["train", "--resume", str(job)]) == 0
    assert pkgmod.read(job / "package").manifest.metrics["epochs"] == 40


@pytest.mark.slow
def test_two_workers_train_to_the_same_accuracy_band(digits16, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    flags = ("--epochs", "3", "--limit", "640")
    assert _train(digits16, one, *flags) == 0
    assert _train(digits16, two, *flags, "--workers", "2") == 0
    log = (two / "train.log").read_text()
    assert "started 2 worker(s)" in log and re.search(r"2 worker\(s\) x \d+ thread\(s\)", log)
    assert CLASSIC.search(log)
    a, b = _test_top1(one), _test_top1(two)
    assert a > 0.5 and b > 0.5 and abs(a - b) <= 0.1, (a, b)
    # same global batch: the same number of optimizer steps
    def last_step(job: Path) -> int:
        lines = (job / "metrics.jsonl").read_text().splitlines()
        return [json.loads(x)["step"] for x in lines if '"kind": "step"' in x][-1]

    assert last_step(one) == last_step(two)


@pytest.mark.slow
def test_default_digits_run_reaches_97_percent(tmp_path):
    """The issue's bar: default settings on the exported digits reach >= 97 % test accuracy."""
    data = export_digits(tmp_path / "digits").root
    job = tmp_path / "job"
    assert main(["train", "image-classification", "--data", str(data), "--out", str(job)]) == 0
    assert _test_top1(job) >= 0.97
    assert CLASSIC.search((job / "train.log").read_text())
