"""Model packages: validation names the field and the fix; writes are atomic; repository layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cpuai import package as pkg
from cpuai.errors import ManifestError, ModelError


def _manifest(**changes) -> pkg.Manifest:
    base = dict(
        name="m",
        task="generic",
        format="onnx",
        inputs=[{"name": "x", "dtype": "float32", "shape": [-1, 4]}],
        outputs=[{"name": "y", "dtype": "float32", "shape": [-1, 2]}],
    )
    base.update(changes)
    return pkg.validate_manifest(base)


def _write_model(tmp: Path) -> None:
    (tmp / "model.onnx").write_bytes(b"not really onnx, enough for package tests")


def test_write_then_read_round_trip(tmp_path):
    written = pkg.write(tmp_path / "p", _manifest(labels=["a", "b"]), _write_model)
    again = pkg.read(tmp_path / "p")
    assert again.manifest == written.manifest
    assert (tmp_path / "p" / "labels.txt").read_text().split() == ["a", "b"]
    assert again.model_file.name == "model.onnx"
    assert again.size_bytes() > 0


def test_unknown_precision_names_field_value_and_fix(tmp_path):
    pkg.write(tmp_path / "p", _manifest(), _write_model)
    data = yaml.safe_load((tmp_path / "p" / "model.yaml").read_text())
    data["precision"] = "int3"
    (tmp_path / "p" / "model.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ManifestError) as err:
        pkg.read(tmp_path / "p")
    text = str(err.value)
    assert "precision" in text and "int3" in text and "fp32" in text


def test_missing_field_and_unknown_field(tmp_path):
    with pytest.raises(ManifestError, match="format"):
        pkg.validate_manifest({"name": "m", "inputs": [], "outputs": []})
    with pytest.raises(ManifestError, match="colour"):
        _manifest(colour="red")


def test_bad_dtype_and_shape():
    with pytest.raises(ManifestError, match="float13"):
        _manifest(inputs=[{"name": "x", "dtype": "float13", "shape": [1]}])
    with pytest.raises(ManifestError, match="shape"):
        _manifest(inputs=[{"name": "x", "shape": [0, 3]}])


def test_missing_model_file_is_model_error(tmp_path):
    pkg.write(tmp_path / "p", _manifest(), _write_model)
    (tmp_path / "p" / "model.onnx").unlink()
    with pytest.raises(ModelError, match=r"model\.onnx"):
        pkg.read(tmp_path / "p")


def test_not_a_package(tmp_path):
    with pytest.raises(ModelError, match="not a model package"):
        pkg.read(tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        pkg.read(tmp_path / "nope")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.yaml").write_text("name: [unclosed")
    with pytest.raises(ManifestError, match="not valid YAML"):
        pkg.read(tmp_path / "bad")


def test_failed_write_leaves_destination_untouched(tmp_path):
    first = pkg.write(tmp_path / "p", _manifest(), _write_model)

    def crash(tmp: Path) -> None:
        (tmp / "model.onnx").write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        pkg.write(tmp_path / "p", _manifest(name="other"), crash)
    assert pkg.read(tmp_path / "p").manifest == first.manifest
    assert [p.name for p in tmp_path.iterdir()] == ["p"]  # no temporary leftovers


def test_update_manifest_and_copy_with(tmp_path):
    p = pkg.write(tmp_path / "p", _manifest(), _write_model)
    deploy = pkg.Deploy(backend="onnxruntime", threads=2)
    p2 = pkg.update_manifest(p, deploy=deploy)
    assert pkg.read(p.path).manifest.deploy == deploy == p2.manifest.deploy
    c = pkg.copy_with(p2, tmp_path / "c", precision="int8")
    assert c.manifest.precision == "int8" and (c.path / "model.onnx").exists()
    with pytest.raises(ManifestError, match="precision"):
        pkg.copy_with(p2, tmp_path / "d", precision="int4")


def test_repository_versions(tmp_path):
    p = pkg.write(tmp_path / "p", _manifest(name="digits"), _write_model)
    repo = pkg.Repository(tmp_path / "repo")
    one = repo.add(p)
    two = repo.add(p)
    assert (one.manifest.version, two.manifest.version) == (1, 2)
    assert repo.names() == ["digits"] and repo.versions("digits") == [1, 2]
    assert repo.read("digits").manifest.version == 2
    assert pkg.read(tmp_path / "repo" / "digits").manifest.version == 2  # repo/<name> reads the latest
    with pytest.raises(ModelError, match="no version 7"):
        repo.read("digits", 7)
    with pytest.raises(ModelError, match="not in repository"):
        repo.read("cats")
