"""cpuai convert: real round trips (torch -> ONNX -> IR) on the digits CNN, agreement, bad inputs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from cpuai import package as pkg
from cpuai.cli.app import main
from cpuai.convert import compare, convert, parse_input_shapes
from cpuai.errors import ConfigError, DependencyError, ModelError
from cpuai.runtime import load

DIGITS_META = {
    "task": "image-classification",
    "labels": [str(i) for i in range(10)],
    "preprocessing": {"image": {"size": [32, 32], "color": "gray"}},
}


@pytest.fixture(scope="module")
def held_out(digits_arrays) -> np.ndarray:
    return digits_arrays[0][1400:1500]


def _eager(model, x):
    import torch

    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def cnn_onnx(digits_cnn, tmp_path_factory) -> pkg.ModelPackage:
    return convert(
        digits_cnn,
        to="onnx",
        out=tmp_path_factory.mktemp("cv") / "onnx",
        input_shapes={"input": (1, 1, 32, 32)},
        output_names=["logits"],
        manifest=DIGITS_META,
        name="digits",
    )


def test_torch_to_onnx_to_ir_round_trip(digits_cnn, cnn_onnx, held_out, tmp_path):
    m = cnn_onnx.manifest
    assert (m.format, m.task, m.labels, m.name) == (
        "onnx",
        "image-classification",
        DIGITS_META["labels"],
        "digits",
    )
    assert m.inputs[0].shape == [-1, 1, 32, 32] and m.outputs[0].shape == [-1, 10]  # dynamic batch
    import onnx

    assert onnx.load(str(cnn_onnx.model_file)).opset_import[0].version >= 17
    step = m.lineage[-1]
    assert step.command == "convert" and step.results["max_abs_error"] < 1e-4
    ir = convert(cnn_onnx, to="openvino", out=tmp_path / "ir")
    assert ir.manifest.format == "openvino" and [s.command for s in ir.manifest.lineage] == [
        "convert",
        "convert",
    ]
    assert ir.manifest.lineage[-1].results["max_rel_error"] <= ir.manifest.lineage[-1].results["tolerance"]
    want = _eager(digits_cnn, held_out)
    labels = []
    for p, backend in [(cnn_onnx, "onnxruntime"), (ir, "openvino")]:
        with load(p, backend=backend) as engine:
            got = engine.infer({"input": held_out})["logits"]
        assert np.abs(got - want).max() < 1e-4
        labels.append(got.argmax(1))
    np.testing.assert_array_equal(labels[0], labels[1])
    np.testing.assert_array_equal(labels[0], want.argmax(1))


def test_training_package_rebuilds_eager_module(digits_cnn, held_out, tmp_path):
    """A training-style package (model.pt + architecture + weights.pt) exports the eager module."""
    import torch

    manifest = pkg.Manifest(
        name="trained",
        task="image-classification",
        format="torchscript",
        inputs=[pkg.TensorSpec(name="input", shape=[-1, 1, 32, 32], layout="NCHW")],
        outputs=[pkg.TensorSpec(name="logits", shape=[-1, 10])],
        preprocessing=pkg.Preprocessing(image=pkg.ImagePreprocessing(size=(32, 32), color="gray")),
        labels=DIGITS_META["labels"],
        metrics={"val_top1": 0.9},
        architecture=pkg.Architecture(
            factory="cpuai.models.smallcnn:smallcnn", kwargs={"num_classes": 10, "in_channels": 1, "width": 8}
        ),
    )

    def files(tmp: Path) -> None:
        torch.jit.trace(digits_cnn, torch.zeros(1, 1, 32, 32)).save(str(tmp / "model.pt"))
        torch.save(digits_cnn.state_dict(), tmp / "weights.pt")

    src = pkg.write(tmp_path / "trained", manifest, files)
    out = convert(src, to="onnx", out=tmp_path / "onnx")
    assert out.manifest.metrics == {"val_top1": 0.9} and out.manifest.inputs[0].layout == "NCHW"
    assert (out.path / "weights.pt").exists() and out.manifest.architecture is not None
    with load(out) as engine:
        np.testing.assert_allclose(
            engine.infer({"input": held_out})["logits"], _eager(digits_cnn, held_out), atol=1e-4
        )
    # a job directory holding package/ converts the same way
    job = tmp_path / "job"
    job.mkdir()
    pkg.copy_with(src, job / "package")
    assert convert(job, to="openvino", out=tmp_path / "job-ir").manifest.format == "openvino"


def test_cli_factory_and_torchscript_file(digits_cnn, tmp_path, capsys):
    import torch

    capsys.readouterr()
    rc = main(
        [
            "convert",
            "cpuai.models.smallcnn:smallcnn",
            "--to",
            "onnx",
            "--input-shape",
            "input:1,1,32,32",
            "--out",
            str(tmp_path / "factory"),
            "--json",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert (
        out["format"] == "onnx"
        and out["inputs"][0]["shape"] == [-1, 1, 32, 32]
        and out["max_abs_error"] < 1e-4
    )
    script = tmp_path / "cnn.pt"
    torch.jit.trace(digits_cnn, torch.zeros(1, 1, 32, 32)).save(str(script))
    assert (
        main(
            [
                "convert",
                str(script),
                "--to",
                "openvino",
                "--input-shape",
                "1,1,32,32",
                "--out",
                str(tmp_path / "ts-ir"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "max abs error" in text and "openvino" in text


def test_fp16_conversions_stay_close(cnn_onnx, held_out, tmp_path):
    half = convert(cnn_onnx, to="onnx", out=tmp_path / "fp16", precision="fp16")
    assert half.manifest.precision == "fp16" and half.size_bytes() < cnn_onnx.size_bytes()
    assert half.manifest.lineage[-1].results["max_rel_error"] < 2e-2
    with load(half) as engine:
        assert engine.infer({"input": held_out})["logits"].dtype == np.float32  # float32 I/O kept
    ir16 = convert(cnn_onnx, to="openvino", out=tmp_path / "ir16", precision="fp16")
    assert ir16.manifest.precision == "fp16"


def test_divergence_is_refused_and_nothing_written(cnn_onnx, tmp_path):
    out = tmp_path / "refused"
    with pytest.raises(ModelError, match="diverges from the source.*above the tolerance 1e-09"):
        convert(cnn_onnx, to="onnx", out=out, precision="fp16", tolerance=1e-9)
    assert not out.exists()


def test_compare_reports_abs_and_rel():
    a = {"y": np.array([[1.0, -2.0]], np.float32)}
    b = {"y": np.array([[1.0, -2.5]], np.float32)}
    agreement = compare(a, b, tolerance=0.1)
    assert agreement.max_abs == pytest.approx(0.5) and agreement.max_rel == pytest.approx(0.25)
    assert not agreement.ok


def test_bad_sources_and_options(cnn_onnx, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    with pytest.raises(ModelError, match="not a model this converter reads"):
        convert(notes, to="onnx", out=tmp_path / "x")
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"\x00\x01garbage")
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        convert(fake, to="openvino", out=tmp_path / "x")
    fake_pt = tmp_path / "fake.pt"
    fake_pt.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="not a TorchScript model"):
        convert(fake_pt, to="onnx", out=tmp_path / "x")
    with pytest.raises(ModelError, match="does not exist"):
        convert(tmp_path / "nothing", to="onnx", out=tmp_path / "x")
    with pytest.raises(ConfigError, match="unknown target format 'tflite'"):
        convert(cnn_onnx, to="tflite", out=tmp_path / "x")
    with pytest.raises(ConfigError, match="bf16 is a run-time precision"):
        convert(cnn_onnx, to="onnx", out=tmp_path / "x", precision="bf16")
    with pytest.raises(ConfigError, match="input shape of .* is unknown"):
        convert("cpuai.models.smallcnn:smallcnn", to="onnx", out=tmp_path / "x")
    with pytest.raises(ModelError, match="no callable 'nope'"):
        convert("cpuai.models.smallcnn:nope", to="onnx", out=tmp_path / "x")
    with pytest.raises(ConfigError, match="opset 13 is older than 17"):
        convert(
            "cpuai.models.smallcnn:smallcnn",
            to="onnx",
            out=tmp_path / "x",
            opset=13,
            input_shapes={"input": (1, 1, 32, 32)},
        )
    with pytest.raises(ConfigError, match="NAME:D1,D2"):
        parse_input_shapes(["input:1,a,3"])
    assert parse_input_shapes(["ids:1,16", "2,3"]) == {"ids": (1, 16), "input": (2, 3)}
    for args, needle in [
        (
            ["convert", str(notes), "--to", "onnx", "--out", str(tmp_path / "x")],
            "not a model this converter reads",
        ),
        (
            [
                "convert",
                str(cnn_onnx.path),
                "--to",
                "onnx",
                "--precision",
                "int4",
                "--out",
                str(tmp_path / "x"),
            ],
            "unknown precision 'int4'",
        ),
    ]:
        capsys.readouterr()
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and needle in err and "\n" not in err


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None, reason="tensorflow is installed")
def test_tensorflow_source_needs_the_tf_extra(tmp_path):
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    with pytest.raises(DependencyError, match=r"pip install 'cpuai\[tf\]'"):
        convert(saved, to="openvino", out=tmp_path / "x")


@pytest.mark.slow
def test_dynamo_exporter_agrees(digits_cnn, held_out, tmp_path):
    out = convert(
        digits_cnn,
        to="onnx",
        out=tmp_path / "dynamo",
        exporter="dynamo",
        input_shapes={"input": (1, 1, 32, 32)},
        output_names=["logits"],
    )
    assert out.manifest.lineage[-1].settings["exporter"] == "dynamo"
    with load(out) as engine:
        np.testing.assert_allclose(
            engine.infer({"input": held_out})["logits"], _eager(digits_cnn, held_out), atol=1e-4
        )
