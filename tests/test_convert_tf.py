"""cpuai convert on TensorFlow sources: Keras files and SavedModels to IR and ONNX, agreeing with Keras."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from cpuai import package as pkg
from cpuai.cli.app import main
from cpuai.convert import convert
from cpuai.errors import ModelError
from cpuai.runtime import load

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("tensorflow") is None, reason="needs tensorflow (pip install 'cpuai[tf]')"
    ),
]


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory) -> dict[str, Path]:
    """A one-input Sequential and a two-input, two-output functional model, saved as .keras files."""
    import keras

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("keras")
    mlp = keras.Sequential(
        [keras.Input((8,), name="features"), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)]
    )
    num, extra = keras.Input((8,), name="num"), keras.Input((4,), name="extra")
    h = keras.layers.Dense(12, activation="tanh")(keras.layers.Concatenate()([num, extra]))
    two = keras.Model(
        [num, extra], [keras.layers.Dense(3)(h), keras.layers.Dense(1, activation="sigmoid")(h)]
    )
    out = {"mlp": root / "mlp.keras", "two": root / "two.keras"}
    mlp.save(out["mlp"])
    two.save(out["two"])
    return out


def _keras(path: Path, *xs: np.ndarray) -> list[np.ndarray]:
    import keras

    model = keras.models.load_model(path)
    y = model(list(xs) if len(xs) > 1 else xs[0])
    return [np.asarray(o) for o in (y if isinstance(y, list | tuple) else [y])]


@pytest.mark.parametrize("to", ["openvino", "onnx"])
def test_keras_file_converts_and_agrees(keras_files, tmp_path, to):
    out = convert(keras_files["mlp"], to=to, out=tmp_path / to)
    m = out.manifest
    assert m.format == to and m.name == "mlp" and m.task == "generic"
    assert [(t.name, t.shape) for t in m.inputs] == [("features", [-1, 8])]  # dynamic batch kept
    assert [(t.name, t.shape) for t in m.outputs] == [("output_0", [-1, 3])]
    step = m.lineage[-1]
    assert step.settings["from"] == "tf-keras" and step.results["tolerance"] == 1e-3
    assert step.results["max_rel_error"] <= 1e-3 and step.results["checked_batch"] == 3
    x = np.random.default_rng(0).random((5, 8), dtype=np.float32)
    with load(out) as engine:
        got = engine.infer({"features": x})["output_0"]
    np.testing.assert_allclose(got, _keras(keras_files["mlp"], x)[0], atol=1e-5)


def test_two_input_keras_to_onnx_keeps_names_and_order(keras_files, tmp_path):
    out = convert(keras_files["two"], to="onnx", out=tmp_path / "two")
    assert sorted(t.name for t in out.manifest.inputs) == ["extra", "num"]
    assert [t.name for t in out.manifest.outputs] == ["output_0", "output_1"]
    rng = np.random.default_rng(1)
    num, extra = rng.random((4, 8), dtype=np.float32), rng.random((4, 4), dtype=np.float32)
    with load(out) as engine:
        got = engine.infer({"num": num, "extra": extra})
    want = _keras(keras_files["two"], num, extra)
    np.testing.assert_allclose(got["output_0"], want[0], atol=1e-5)
    np.testing.assert_allclose(got["output_1"], want[1], atol=1e-5)


def test_saved_model_to_ir_and_onnx_on_the_command_line(keras_files, tmp_path, capsys):
    import keras

    saved = tmp_path / "saved"
    keras.models.load_model(keras_files["mlp"]).export(str(saved), format="tf_saved_model", verbose=False)
    x = np.random.default_rng(2).random((3, 8), dtype=np.float32)
    want = _keras(keras_files["mlp"], x)[0]
    for to in ("openvino", "onnx"):
        capsys.readouterr()
        assert main(["convert", str(saved), "--to", to, "--out", str(tmp_path / to)]) == 0
        assert "agreement with the source on a batch of 3" in capsys.readouterr().out
        converted = pkg.read(tmp_path / to)
        assert converted.manifest.lineage[-1].settings["from"] == "tf-saved_model"
        with load(converted) as engine:
            np.testing.assert_allclose(engine.infer({"features": x})["output_0"], want, atol=1e-5)


def test_fp16_ir_from_keras_and_bad_keras_file(keras_files, tmp_path):
    half = convert(keras_files["mlp"], to="openvino", out=tmp_path / "half", precision="fp16")
    assert half.manifest.precision == "fp16" and half.manifest.lineage[-1].results["max_rel_error"] <= 2e-2
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="is not a loadable Keras model"):
        convert(broken, to="openvino", out=tmp_path / "x")
    assert not (tmp_path / "x").exists()
