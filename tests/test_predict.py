"""``cpuai predict``: a folder of digit images gives the in-memory model's labels; bad inputs are one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cpuai.cli.app import main


@pytest.fixture(scope="module")
def digit_folder(digits_arrays, tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """40 held-out digits written as 8-bit PNGs under DIR/<label>/; returns the folder, pixels and labels."""
    from PIL import Image

    x, y = digits_arrays
    root = tmp_path_factory.mktemp("predict") / "digits"
    pixels = np.round(x[1500:1540, 0] * 255).astype(np.uint8)
    for i, (img, label) in enumerate(zip(pixels, y[1500:1540], strict=True)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, mode="L").save(root / str(label) / f"{i:03d}.png")
    return root, pixels, y[1500:1540]


def _predict_json(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(["predict", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_predict_folder_matches_in_memory_model(
    backend, digits_onnx_package, digits_cnn, digit_folder, capsys
):
    import torch

    root, pixels, labels = digit_folder
    out = _predict_json(capsys, str(digits_onnx_package), str(root), "--backend", backend, "--batch", "16")
    assert out["backend"] == backend and len(out["results"]) == 40
    got = {r["input"]: r["predictions"][0]["label"] for r in out["results"]}
    with torch.inference_mode():
        want = digits_cnn(torch.from_numpy(pixels[:, None].astype(np.float32) / 255)).argmax(1).numpy()
    for i, (label, w) in enumerate(zip(labels, want, strict=True)):
        assert got[f"{label}/{i:03d}.png"] == str(w)
    assert all(len(r["predictions"]) == 5 for r in out["results"])
    accuracy = np.mean([got[f"{label}/{i:03d}.png"] == str(label) for i, label in enumerate(labels)])
    assert accuracy > 0.8  # the CNN really classifies the files


def test_predict_table_files_and_npy(digits_onnx_package, digit_folder, tmp_path, capsys):
    root, pixels, _ = digit_folder
    files = sorted(root.rglob("*.png"))[:2]
    capsys.readouterr()
    assert main(["predict", str(digits_onnx_package), *map(str, files), "--top-k", "2"]) == 0
    text = capsys.readouterr().out
    assert files[0].name in text and "label" in text
    npy = tmp_path / "x.npy"
    np.save(npy, pixels[:3, None].astype(np.float32) / 255)
    out = _predict_json(capsys, str(digits_onnx_package), str(npy), "--top-k", "1")
    assert [r["input"] for r in out["results"]] == ["x.npy[0]", "x.npy[1]", "x.npy[2]"]
    assert all(len(r["predictions"]) == 1 for r in out["results"])


def _one_line_error(capsys, args: list[str], *needles: str) -> str:
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    return err


def test_predict_bad_inputs(digits_onnx_package, tmp_path, capsys):
    import shutil

    pkg = str(digits_onnx_package)
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    _one_line_error(capsys, ["predict", pkg, str(corrupt)], "broken.png", "corrupted or not an image")
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((2, 3, 32, 32), np.float32))  # three channels for a gray model
    _one_line_error(
        capsys,
        ["predict", pkg, str(wrong), "--backend", "onnxruntime"],
        "item has shape [3, 32, 32], expected [1, 32, 32]",
    )
    _one_line_error(
        capsys, ["predict", pkg, str(corrupt), "--backend", "tensorrt"], "unknown backend 'tensorrt'"
    )
    _one_line_error(capsys, ["predict", pkg, str(tmp_path / "nope.png")], "nope.png")
    missing = tmp_path / "missing"
    shutil.copytree(digits_onnx_package, missing)
    (missing / "model.onnx").unlink()
    _one_line_error(capsys, ["predict", str(missing), str(corrupt)], "model.onnx' is missing")
    badprec = tmp_path / "badprec"
    shutil.copytree(digits_onnx_package, badprec)
    (badprec / "model.yaml").write_text(
        (badprec / "model.yaml").read_text().replace("precision: fp32", "precision: fp7")
    )
    _one_line_error(capsys, ["predict", str(badprec), str(corrupt)], "precision", "fp7")
    notmodel = tmp_path / "notmodel"
    notmodel.mkdir()
    (notmodel / "readme.txt").write_text("hello")
    _one_line_error(capsys, ["predict", str(notmodel), str(corrupt)], "not a model package")
    _one_line_error(capsys, ["predict", pkg, str(corrupt), "--top-k", "0"], "--top-k")
