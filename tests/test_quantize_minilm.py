"""INT8 MiniLM from the bundled package: mean cosine >= 0.99 to FP32 on held-out Python docstrings."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm(tmp_path_factory) -> dict[str, Path]:
    """The exported MiniLM package and two disjoint sets of docstrings (calibration, held-out evaluation)."""
    from cpuai.data.docstrings import docstrings
    from cpuai.models.minilm import export

    root = tmp_path_factory.mktemp("minilm")
    pkg = export(root / "minilm", max_length=64).path
    texts = docstrings(limit=260, seed=3, unit="sentence")
    (root / "calib.txt").write_text("\n".join(texts[:60]) + "\n")
    (root / "eval.txt").write_text("\n".join(texts[60:260]) + "\n")
    return {"pkg": pkg, "calib": root / "calib.txt", "eval": root / "eval.txt"}


def test_minilm_int8_cosine_above_099(minilm, tmp_path):
    from cpuai import package as pkgmod
    from cpuai.quantize import QuantConfig, load_samples, make_quantizer, quantize
    from cpuai.quantize.metrics import EmbeddingCosine
    from cpuai.runtime import load

    tuner = quantize(
        minilm["pkg"],
        minilm["calib"],
        minilm["eval"],
        tmp_path / "int8",
        tolerance="1%",
        backend="onnxruntime",
        max_trials=4,
        timing_runs=3,
    )
    assert tuner.metric_name_ == "cosine"
    assert tuner.met_ and tuner.best_.metric >= 0.99
    out = pkgmod.read(tmp_path / "int8")
    assert out.manifest.precision == "int8" and (out.path / "tokenizer.json").exists()

    # per-tensor dynamic INT8 falls short of 0.99 here, so the tuner must not have returned it
    pkg = pkgmod.read(minilm["pkg"])
    evals = load_samples(minilm["eval"], pkg)
    metric = EmbeddingCosine(evals, pkg)
    fp32 = load(pkg, backend="onnxruntime")
    metric.reference(fp32)
    fp32.close()
    calib = load_samples(minilm["calib"], pkg)
    per_tensor = make_quantizer(pkg, QuantConfig(method="dynamic", per_channel=False)).fit(calib)
    saved = per_tensor.save(tmp_path / "per-tensor")
    per_tensor.close()
    engine = load(saved, backend="onnxruntime")
    cosine_per_tensor = metric(engine)
    engine.close()
    assert cosine_per_tensor < tuner.best_.metric
    if cosine_per_tensor < 0.99:
        assert tuner.best_.config.per_channel or tuner.best_.config.method != "dynamic"
    # the saved INT8 package embeds like the report says
    engine = load(out, backend="onnxruntime")
    assert metric(engine) == pytest.approx(tuner.best_.metric, abs=1e-5)
    vec = metric._vectors(engine, evals.batches[:1])
    engine.close()
    assert np.allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-4)


def test_minilm_nncf_int8(minilm, tmp_path):
    from cpuai.quantize import quantize

    tuner = quantize(
        minilm["pkg"],
        minilm["calib"],
        minilm["eval"],
        tmp_path / "ov",
        tolerance="1%",
        backend="openvino",
        max_trials=3,
        timing_runs=3,
    )
    assert tuner.trials_[0].config.method == "nncf"
    assert tuner.met_ and tuner.best_.metric >= 0.99
    assert tuner.package_.manifest.format == "openvino"
