"""MiniLM (all-MiniLM-L6-v2, offline): export with the CLI, torch -> ONNX -> IR agreement, embeddings."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from cpuai.cli.app import main

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Real text: Python's own docstrings, of different lengths (so batches carry padding).
SENTENCES = [
    (len.__doc__ or "").strip(),
    (str.split.__doc__ or "").strip()[:300],
    "Return the sum of two numbers.",
    (open.__doc__ or "").strip()[:500],
    "Dict.",
]


@pytest.fixture(scope="module")
def minilm_packages(tmp_path_factory):
    from cpuai import package as pkg

    root = tmp_path_factory.mktemp("minilm")
    assert main(["models", "export", "minilm", "--out", str(root / "onnx"), "--json"]) == 0
    assert main(["models", "export", "minilm", "--format", "openvino", "--out", str(root / "ir")]) == 0
    return pkg.read(root / "onnx"), pkg.read(root / "ir")


@pytest.fixture(scope="module")
def torch_reference():
    """Eager PyTorch embeddings: the transformer's hidden states, mean-pooled and normalised."""
    import torch

    from cpuai.models.minilm import transformer
    from cpuai.tasks.text import l2_normalize, mean_pool

    def run(feeds):
        module = transformer()
        with torch.inference_mode():
            hidden = module(
                *[torch.from_numpy(feeds[n]) for n in ("input_ids", "attention_mask", "token_type_ids")]
            )
        return hidden.numpy(), l2_normalize(mean_pool(hidden.numpy(), feeds["attention_mask"]))

    return run


@pytest.mark.slow
def test_manifest_of_the_export(minilm_packages):
    onnx_pkg, ir_pkg = minilm_packages
    for p in (onnx_pkg, ir_pkg):
        m = p.manifest
        assert m.task == "text-embedding" and m.preprocessing.text.max_length == 256
        assert (p.path / "tokenizer.json").exists()
        assert [i.name for i in m.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
        assert all(i.shape == [-1, -1] and i.dtype == "int64" for i in m.inputs)  # dynamic batch and sequence
        assert m.outputs[0].name == "last_hidden_state" and m.outputs[0].shape == [-1, -1, 384]
        assert m.lineage[0].results["max_abs_error"] < 1e-4
    assert [s.settings["to"] for s in ir_pkg.manifest.lineage] == ["onnx", "openvino"]


@pytest.mark.slow
def test_three_backends_agree_on_minilm(minilm_packages, torch_reference):
    """torch eager vs ONNX Runtime vs OpenVINO FP32 on a padded batch: max abs diff < 1e-4."""
    from cpuai.runtime import load
    from cpuai.tasks import for_package
    from cpuai.tasks.text import embed

    onnx_pkg, ir_pkg = minilm_packages
    task = for_package(onnx_pkg)
    feeds = task.preprocess(SENTENCES)
    assert feeds["input_ids"].shape[1] < 256  # padded to the longest, not to max_length
    hidden_ref, vec_ref = torch_reference(feeds)
    for p, backend in [(onnx_pkg, "onnxruntime"), (ir_pkg, "openvino"), (onnx_pkg, "openvino")]:
        with load(p, backend=backend) as engine:
            assert engine.precision == "fp32"
            hidden = engine.infer(feeds)["last_hidden_state"]
            vecs = embed(engine, SENTENCES, batch_size=2)
        mask = feeds["attention_mask"].astype(bool)
        assert np.abs(hidden - hidden_ref)[mask].max() < 1e-4, backend
        assert np.abs(vecs - vec_ref).max() < 1e-5, backend
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_matches_sentence_transformers(minilm_packages):
    from sentence_transformers import SentenceTransformer

    from cpuai.models.minilm import weights_dir
    from cpuai.runtime import load
    from cpuai.tasks.text import embed

    st = SentenceTransformer(str(weights_dir()), device="cpu")
    want = st.encode(SENTENCES, normalize_embeddings=True)
    with load(minilm_packages[0]) as engine:
        got = embed(engine, SENTENCES)
    assert np.abs(got - want).max() < 1e-5
    sims = got @ got.T  # the two str/len-like docstrings are closer to each other than to "Dict."
    assert sims[0, 2] > sims[0, 4]


@pytest.mark.slow
def test_predict_texts_and_bad_model_name(minilm_packages, tmp_path, capsys):
    lines = tmp_path / "lines.txt"
    lines.write_text("first line\n\nsecond line here\n")
    capsys.readouterr()
    assert main(["predict", str(minilm_packages[0].path), "a loose string", str(lines), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["input"] for r in out["results"]] == ["a loose string", "lines.txt:1", "lines.txt:3"]
    assert all(r["dim"] == 384 and abs(r["norm"] - 1) < 1e-5 for r in out["results"])
    assert main(["predict", str(minilm_packages[0].path), "hello"]) == 0
    assert "384" in capsys.readouterr().out
    assert main(["models", "export", "bert-large", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: unknown bundled model 'bert-large'; use one of: minilm"
