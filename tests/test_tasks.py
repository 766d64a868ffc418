"""cpuai.tasks: image preprocessing from every kind of item, top-k, scores, generic and text."""

from __future__ import annotations

import io
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest

from cpuai import package as pkg
from cpuai.data.imagefolder import ImageFolder
from cpuai.errors import ConfigError, InvalidInput, ModelError
from cpuai.runtime.engine import TensorInfo
from cpuai.tasks import for_package
from cpuai.tasks.generic import Generic
from cpuai.tasks.image import ImageClassification


def _package(tmp_path: Path, **fields) -> pkg.ModelPackage:
    base = {
        "name": "t",
        "format": "onnx",
        "inputs": [{"name": "input", "shape": [-1, 3, 4, 4]}],
        "outputs": [{"name": "logits", "shape": [-1, 3]}],
    }
    base.update(fields)
    return pkg.ModelPackage(tmp_path, pkg.validate_manifest(base))


def test_image_items_of_every_kind_give_the_same_tensor(tmp_path):
    from PIL import Image

    p = _package(
        tmp_path,
        task="image-classification",
        labels=["a", "b", "c"],
        preprocessing={
            "image": {"size": [4, 4], "color": "rgb", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.5, 1.0]}
        },
    )
    task = for_package(p)
    assert isinstance(task, ImageClassification)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)  # resized to 4x4
    image = Image.fromarray(pixels)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    image.save(tmp_path / "x.png")
    feeds = task.preprocess([buf.getvalue(), image, tmp_path / "x.png", str(tmp_path / "x.png"), pixels])
    x = feeds["input"]
    assert x.shape == (5, 3, 4, 4) and x.dtype == np.float32
    for i in range(1, 5):
        np.testing.assert_allclose(x[i], x[0], atol=1e-6)
    small = np.asarray(image.resize((4, 4), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    want = ((small - 0.5) / np.array([0.25, 0.5, 1.0], np.float32)).transpose(2, 0, 1)
    np.testing.assert_allclose(x[0], want, atol=1e-5)
    tensor = rng.random((3, 4, 4), dtype=np.float32)  # already preprocessed
    np.testing.assert_array_equal(task.preprocess([tensor])["input"][0], tensor)


def test_image_bad_items(tmp_path):
    p = _package(
        tmp_path, task="image-classification", preprocessing={"image": {"size": [4, 4], "color": "rgb"}}
    )
    task = for_package(p)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(InvalidInput, match="bad.jpg.*corrupted or not an image"):
        task.preprocess([tmp_path / "bad.jpg"])
    with pytest.raises(InvalidInput, match="image bytes.*corrupted"):
        task.preprocess([b"not an image"])
    with pytest.raises(InvalidInput, match=r"item has shape \[1, 4, 4\], expected \[3, 4, 4\]"):
        task.preprocess([np.zeros((1, 4, 4), np.float32)])
    with pytest.raises(InvalidInput, match="does not exist"):
        task.preprocess([tmp_path / "missing.png"])
    with pytest.raises(InvalidInput, match="cannot read an image from dict"):
        task.preprocess([{}])
    with pytest.raises(InvalidInput, match="no images"):
        task.preprocess([])


def test_postprocess_top_k_labels_and_probabilities(tmp_path):
    p = _package(
        tmp_path,
        task="image-classification",
        labels=["cat", "dog", "owl"],
        preprocessing={"image": {"size": [4, 4]}},
    )
    task = for_package(p)
    answers = task.postprocess({"logits": np.array([[0.0, 3.0, 1.0], [5.0, 0.0, 0.0]], np.float32)}, top_k=2)
    assert [a["label"] for a in answers[0]] == ["dog", "owl"] and answers[1][0]["label"] == "cat"
    assert answers[0][0]["score"] == pytest.approx(np.exp(3) / (1 + np.exp(3) + np.exp(1)), rel=1e-5)
    assert len(task.postprocess({"logits": np.zeros((1, 3), np.float32)}, top_k=50)[0]) == 3
    probs = np.array([[0.2, 0.7, 0.1]], np.float32)  # already probabilities: kept, not re-softmaxed
    assert task.postprocess({"logits": probs}, top_k=1)[0][0]["score"] == pytest.approx(0.7)


def test_image_score_on_folder_with_real_engine(digits_onnx_package, digits_arrays, tmp_path):
    """top1/top5 on an ImageFolder of real digits, with the details evaluate needs for a confusion matrix."""
    from PIL import Image

    from cpuai.runtime import load

    x, y = digits_arrays
    for i in range(1400, 1460):
        (tmp_path / "d" / str(y[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(x[i, 0] * 255).astype(np.uint8)).save(
            tmp_path / "d" / str(y[i]) / f"{i}.png"
        )
    package = pkg.read(digits_onnx_package)
    data = ImageFolder.open(tmp_path / "d", classes=package.labels)
    task = for_package(package)
    with load(package) as engine:
        score = task.score(engine, data, batch_size=16)
        arrays = task.score(engine, (np.round(x[1400:1460] * 255) / 255, y[1400:1460]), batch_size=7)
    d = score.details
    assert score.primary == "top1" and score.count == 60 and 0.8 < score.value <= score.values["top5"] <= 1
    assert len(d["predictions"]) == len(d["targets"]) == len(d["paths"]) == 60
    assert d["probabilities"].shape == (60, 10)
    np.testing.assert_array_equal(np.asarray(d["predictions"]), d["probabilities"].argmax(1))
    assert score.value == pytest.approx(np.mean(np.asarray(d["predictions"]) == np.asarray(d["targets"])))
    assert all(Path(p).exists() for p in d["paths"])
    assert arrays.values["top1"] == pytest.approx(score.values["top1"])  # same digits from arrays


class _Echo:
    """A fake engine for the generic task: output = input summed over its last axis."""

    backend, precision, threads, streams = "fake", "fp32", 1, 1
    inputs = [TensorInfo("x", "float32", (-1, 2))]
    outputs = [TensorInfo("y", "float32", (-1,))]

    def infer(self, feeds):
        return {"y": feeds["x"] * np.array([1.0, -1.0], np.float32)}

    def submit(self, feeds):
        f: Future = Future()
        f.set_result(self.infer(feeds))
        return f

    def close(self):
        pass


def test_generic_task(tmp_path):
    p = _package(
        tmp_path, inputs=[{"name": "x", "shape": [-1, 2]}], outputs=[{"name": "y", "shape": [-1, 2]}]
    )
    task = for_package(p)
    assert isinstance(task, Generic)
    feeds = task.preprocess([[1, 2], np.array([3, 4])])
    assert feeds["x"].dtype == np.float32 and feeds["x"].shape == (2, 2)
    split = task.postprocess(_Echo().infer(feeds))
    np.testing.assert_array_equal(split[1]["y"], [3, -4])
    score = task.score(_Echo(), [([2, 1], 0), ([1, 2], 0), ([1, 0], 1)])
    assert score.values["accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ConfigError, match="integer class targets"):
        task.score(_Echo(), [([2, 1], "cat")])


def test_for_package_unknown_task_and_missing_preprocessing(tmp_path):
    with pytest.raises(ModelError, match="without preprocessing.image"):
        for_package(_package(tmp_path, task="image-classification"))
    with pytest.raises(ModelError, match="without preprocessing.text"):
        for_package(_package(tmp_path, task="text-embedding"))


# -- text ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_package(tmp_path_factory) -> pkg.ModelPackage:
    import shutil

    from cpuai.models.minilm import weights_dir

    root = tmp_path_factory.mktemp("text")
    shutil.copy(weights_dir() / "tokenizer.json", root / "tokenizer.json")
    names = ("input_ids", "attention_mask", "token_type_ids")
    return pkg.ModelPackage(
        root,
        pkg.validate_manifest(
            {
                "name": "text",
                "format": "onnx",
                "task": "text-embedding",
                "inputs": [{"name": n, "dtype": "int64", "shape": [-1, -1]} for n in names],
                "outputs": [{"name": "last_hidden_state", "shape": [-1, -1, 4]}],
                "preprocessing": {"text": {"max_length": 12}},
            }
        ),
    )


def test_text_pads_to_longest_and_truncates(text_package):
    task = for_package(text_package)
    feeds = task.preprocess(["a b", "the quick brown fox"])
    assert set(feeds) == {"input_ids", "attention_mask", "token_type_ids"}
    assert feeds["input_ids"].dtype == np.int64
    assert feeds["input_ids"].shape == (
        2,
        6,
    )  # [CLS] the quick brown fox [SEP], not 128 (the file's fixed pad)
    assert feeds["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1] * 6]
    long = task.preprocess(["word " * 100])
    assert long["input_ids"].shape == (1, 12)
    with pytest.raises(InvalidInput, match="text 0 is a int"):
        task.preprocess([3])


class _TokenEngine:
    """A fake encoder: each token's state is [id, 1, 0, 0], so the pooled vector reveals the text."""

    backend, precision, threads, streams = "fake", "fp32", 1, 1

    def __init__(self):
        self.batch_shapes = []

    def infer(self, feeds):
        ids = feeds["input_ids"].astype(np.float32)
        self.batch_shapes.append(ids.shape)
        hidden = np.stack([ids, np.ones_like(ids), np.zeros_like(ids), np.zeros_like(ids)], axis=-1)
        hidden[feeds["attention_mask"] == 0] = 1000.0  # padding must not leak into the mean
        return {"last_hidden_state": hidden}


def test_embed_batches_by_length_and_keeps_order(text_package):
    from cpuai.tasks.text import TextEmbedding, embed, l2_normalize, mean_pool

    task = TextEmbedding(text_package)
    texts = ["one two three four five six", "hi", "a b c", "hello", "x y z w v u t s"]
    engine = _TokenEngine()
    vecs = embed(engine, texts, batch_size=2, package=text_package)
    assert vecs.shape == (5, 4)
    for text, v in zip(texts, vecs, strict=True):
        feeds = task.preprocess([text])
        want = l2_normalize(
            mean_pool(_TokenEngine().infer(feeds)["last_hidden_state"], feeds["attention_mask"])
        )
        np.testing.assert_allclose(v, want[0], rtol=1e-6)
    assert [s[1] for s in engine.batch_shapes] == [3, 8, 10]  # sorted by length: little padding
    feeds = task.preprocess(texts[:2])
    out = task.postprocess(_TokenEngine().infer(feeds), feeds=feeds)
    assert out[0]["dim"] == 4 and out[0]["norm"] == pytest.approx(1.0)
    with pytest.raises(ModelError, match="pass package="):
        embed(engine, texts)
