"""cpuai evaluate: accuracy, per-class scores, confusion matrix (printed and PNG), mistakes; FP32 and INT8."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cpuai import package as pkgmod
from cpuai.cli.app import main
from cpuai.data.digits import export_digits


@pytest.fixture(scope="module")
def digits32(tmp_path_factory) -> Path:
    return export_digits(tmp_path_factory.mktemp("data") / "digits", size=32).root


def _reference_top1(model: Path, folder: Path) -> tuple[float, int]:
    """Top-1 computed independently: PIL + onnxruntime, no cpuai code in the path."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    files = sorted(folder.glob("*/*.png"))
    x = np.stack([np.asarray(Image.open(f).convert("L"), dtype=np.float32)[None] / 255.0 for f in files])
    y = np.array([int(f.parent.name) for f in files])
    pred = session.run(None, {"input": x})[0].argmax(axis=1)
    return float((pred == y).mean()), len(files)


def test_image_evaluation_matches_an_independent_computation(digits_onnx_package, digits32, tmp_path, capsys):
    plot = tmp_path / "cm.png"
    assert (
        main(["evaluate", str(digits_onnx_package), "--data", str(digits32), "--json", "--plot", str(plot)])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    top1, count = _reference_top1(digits_onnx_package / "model.onnx", digits32 / "test")
    assert (
        result["count"] == count == 270
        and result["backend"] == "onnxruntime"
        and result["precision"] == "fp32"
    )
    assert result["metrics"]["top1"] == pytest.approx(top1, abs=1e-9)
    assert result["metrics"]["top5"] >= result["metrics"]["top1"]
    cm = np.array(result["confusion"])
    assert cm.shape == (10, 10) and cm.sum() == 270
    support = [len(list((digits32 / "test" / str(i)).glob("*.png"))) for i in range(10)]
    assert cm.sum(axis=1).tolist() == support  # rows are the actual classes
    assert np.trace(cm) / cm.sum() == pytest.approx(top1)
    recall = [c["recall"] for c in result["per_class"]]
    np.testing.assert_allclose(recall, np.diag(cm) / cm.sum(axis=1))
    precision = [c["precision"] for c in result["per_class"]]
    np.testing.assert_allclose(precision, np.diag(cm) / np.maximum(cm.sum(axis=0), 1))
    wrong = 270 - int(np.trace(cm))
    assert len(result["mistakes"]) == min(10, wrong)
    confidences = [m["confidence"] for m in result["mistakes"]]
    assert confidences == sorted(confidences, reverse=True)  # hardest (most confident) first
    for m in result["mistakes"]:
        assert Path(m["file"]).parent.name == m["actual"] != m["predicted"]
    with Image.open(plot) as img:
        assert img.format == "PNG" and img.size[0] >= 300


def test_human_output_prints_the_tables(digits_onnx_package, digits32, capsys):
    assert (
        main(
            [
                "evaluate",
                str(digits_onnx_package),
                "--data",
                str(digits32),
                "--split",
                "val",
                "--mistakes",
                "3",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "top1" in out and "per class" in out and "confusion matrix (rows actual, columns predicted)" in out
    assert "hardest mistakes" in out


def test_int8_package_evaluates_the_same_way(digits_onnx_package, digits32, tmp_path, capsys):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    x = np.stack(
        [
            np.asarray(Image.open(f).convert("L"), dtype=np.float32)[None] / 255.0
            for f in sorted((digits32 / "train").glob("*/*.png"))[::20]
        ]
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"input": x[i : i + 1]} for i in range(len(x))])

        def get_next(self):
            return next(self.items, None)

    fp32 = pkgmod.read(digits_onnx_package)
    int8 = pkgmod.copy_with(fp32, tmp_path / "int8", precision="int8")
    from cpuai.hardware import current

    quantize_static(  # 7-bit weights where u8 x s8 sums saturate (no VNNI), as cpuai quantize does
        str(fp32.model_file),
        str(int8.model_file),
        Reader(),
        quant_format=QuantFormat.QDQ,
        reduce_range=not current().has_int8_dot,
    )
    assert main(["evaluate", str(int8.path), "--data", str(digits32), "--json"]) == 0
    q = json.loads(capsys.readouterr().out)
    top1, _ = _reference_top1(int8.model_file, digits32 / "test")
    assert q["metrics"]["top1"] == pytest.approx(top1, abs=1e-9)
    assert main(["evaluate", str(fp32.path), "--data", str(digits32), "--json"]) == 0
    f = json.loads(capsys.readouterr().out)
    assert abs(q["metrics"]["top1"] - f["metrics"]["top1"]) < 0.05


def test_torchscript_package_from_training(digits32, tmp_path, capsys):
    job = tmp_path / "job"
    assert (
        main(
            [
                "train",
                "image-classification",
                "--data",
                str(digits32),
                "--out",
                str(job),
                "--epochs",
                "1",
                "--limit",
                "256",
                "--width",
                "8",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["evaluate", str(job / "package"), "--data", str(digits32), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["backend"] == "torch" and result["count"] == 270
    recorded = pkgmod.read(job / "package").manifest.metrics["test_top1"]
    assert result["metrics"]["top1"] == pytest.approx(recorded, abs=0.01)  # same model, same test split


def test_unreadable_image_is_skipped_and_counted(digits_onnx_package, digits32, tmp_path, capsys):
    data = tmp_path / "d"
    shutil.copytree(digits32 / "test", data)
    (data / "2" / "bad.png").write_text("not an image")
    assert main(["evaluate", str(digits_onnx_package), "--data", str(data), "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["count"] == 270 and len(result["skipped"]) == 1 and result["skipped"][0].endswith("bad.png")


def test_bad_inputs(digits_onnx_package, digits32, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", str(digits_onnx_package), "--data", str(tmp_path / "empty")]) == 2
    assert "has no class subfolders" in capsys.readouterr().err
    assert main(["evaluate", str(digits_onnx_package), "--data", str(digits32), "--plot", "cm.jpg"]) == 2
    assert "--plot cm.jpg does not end in .png" in capsys.readouterr().err
    (tmp_path / "extra" / "cat").mkdir(parents=True)
    Image.new("L", (32, 32)).save(tmp_path / "extra" / "cat" / "1.png")
    assert main(["evaluate", str(digits_onnx_package), "--data", str(tmp_path / "extra")]) == 2
    assert "classes ['cat'] that the model does not know" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nope"), "--data", str(digits32)]) == 2
    assert "does not exist" in capsys.readouterr().err
