"""cpuai convert on a bare training checkpoint: rebuilt from the model registry, weights loaded, exported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cpuai import package as pkgmod
from cpuai.cli.app import main
from cpuai.convert import convert
from cpuai.data.digits import export_digits
from cpuai.errors import ModelError
from cpuai.runtime import load

SMALL = ["--epochs", "1", "--limit", "200", "--width", "8", "--threads", "1", "--precision", "fp32"]


@pytest.fixture(scope="module")
def digits16(tmp_path_factory) -> Path:
    return export_digits(tmp_path_factory.mktemp("data") / "digits16", size=16).root


@pytest.fixture(scope="module")
def checkpoint(digits16, tmp_path_factory) -> Path:
    """A real checkpoint.pt from a one-epoch run, copied away from its job directory (no package/)."""
    job = tmp_path_factory.mktemp("jobs") / "digits"
    assert main(["train", "image-classification", "--data", str(digits16), "--out", str(job), *SMALL]) == 0
    bare = tmp_path_factory.mktemp("bare") / "checkpoint.pt"
    shutil.copy2(job / "checkpoint.pt", bare)
    return bare


def _eager_from(checkpoint: Path) -> torch.nn.Module:
    from cpuai.models.smallcnn import smallcnn

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = smallcnn(**ckpt["extra"]["architecture"]["kwargs"])
    model.load_state_dict(ckpt["model"])
    return model.eval()


def test_checkpoint_converts_to_onnx_and_ir(checkpoint, digits16, tmp_path, capsys):
    capsys.readouterr()
    rc = main(["convert", str(checkpoint), "--to", "onnx", "--out", str(tmp_path / "onnx"), "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["inputs"][0]["shape"] == [-1, 1, 16, 16] and printed["max_rel_error"] <= 1e-3
    onnx_pkg = pkgmod.read(tmp_path / "onnx")
    m = onnx_pkg.manifest
    assert (m.format, m.task, m.labels) == ("onnx", "image-classification", [str(i) for i in range(10)])
    assert m.preprocessing.image is not None and m.preprocessing.image.size == (16, 16)
    assert m.inputs[0].layout == "NCHW" and m.outputs[0].shape == [-1, 10]
    assert [s.command for s in m.lineage] == ["cpuai train image-classification", "convert"]
    assert m.lineage[-1].source == str(checkpoint)
    assert m.architecture is not None and (onnx_pkg.path / "weights.pt").exists()
    x = np.random.default_rng(3).random((5, 1, 16, 16), dtype=np.float32)
    with torch.inference_mode():
        want = _eager_from(checkpoint)(torch.from_numpy(x)).numpy()
    with load(onnx_pkg, backend="onnxruntime") as engine:
        np.testing.assert_allclose(engine.infer({"input": x})["logits"], want, atol=1e-4)
    ir = convert(checkpoint, to="openvino", out=tmp_path / "ir")
    with load(ir, backend="openvino") as engine:
        np.testing.assert_allclose(engine.infer({"input": x})["logits"], want, atol=1e-4)


def test_checkpoint_without_its_data_needs_labels(checkpoint, tmp_path):
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    ckpt["spec"]["data"] = str(tmp_path / "gone")
    moved = tmp_path / "moved.pt"
    torch.save(ckpt, moved)
    with pytest.raises(ModelError, match=r"class names and its training data .*gone.* is gone") as err:
        convert(moved, to="onnx", out=tmp_path / "x")
    assert "--labels" in (err.value.fix or "")
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"digit-{i}" for i in range(10)) + "\n")
    assert (
        main(["convert", str(moved), "--to", "onnx", "--labels", str(labels), "--out", str(tmp_path / "o")])
        == 0
    )
    assert pkgmod.read(tmp_path / "o").labels == [f"digit-{i}" for i in range(10)]
    with pytest.raises(ModelError, match="names 2 classes but the checkpoint's model has 10"):
        convert(moved, to="onnx", out=tmp_path / "y", manifest={"labels": ["a", "b"]})


def test_not_a_checkpoint(tmp_path, capsys):
    state = tmp_path / "state.pt"
    torch.save({"weight": torch.zeros(2, 2)}, state)
    with pytest.raises(ModelError, match="a bare state dict, not a cpuai training checkpoint"):
        convert(state, to="onnx", out=tmp_path / "x")
    capsys.readouterr()
    assert main(["convert", str(state), "--to", "onnx", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "module.path:factory" in err and not (tmp_path / "x").exists()


def test_wide_deep_checkpoint_refits_its_preprocessing(tmp_path):
    """A tabular checkpoint keeps no preprocessing: it is refit on the spec's CSV; the package agrees."""
    from cpuai.data.ctr import write_ctr

    csv = write_ctr(tmp_path / "ctr-synthetic.csv", rows=1500, seed=0).csv
    job = tmp_path / "job"
    flags = ["--epochs", "1", "--threads", "1", "--precision", "fp32"]
    assert main(["train", "wide-deep", "--data", str(csv), "--out", str(job), *flags]) == 0
    bare = tmp_path / "bare" / "checkpoint.pt"
    bare.parent.mkdir()
    shutil.copy2(job / "checkpoint.pt", bare)
    ir = convert(bare, to="openvino", out=tmp_path / "ir")
    trained = pkgmod.read(job / "package").manifest
    assert ir.manifest.preprocessing.tabular == trained.preprocessing.tabular  # the same fitted columns
    assert [i.name for i in ir.manifest.inputs] == ["numeric", "categorical"]
    assert ir.manifest.lineage[-1].results["max_rel_error"] <= 1e-3
    rng = np.random.default_rng(0)
    cards = [
        len(c.vocabulary or []) for c in trained.preprocessing.tabular.columns if c.kind == "categorical"
    ]
    feeds = {
        "numeric": rng.standard_normal((6, 3)).astype(np.float32),
        "categorical": rng.integers(0, np.array(cards), size=(6, len(cards))).astype(np.int64),
    }
    with load(job / "package", backend="torch") as ref, load(ir, backend="openvino") as got:
        np.testing.assert_allclose(got.infer(feeds)["logits"], ref.infer(feeds)["logits"], atol=1e-4)
