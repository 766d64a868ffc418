"""Shared fixtures: real data (scikit-learn's digits) and a tiny real CNN trained in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# Keep test engines from fighting over the 2 cores of the CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "2")

DIGITS_SIZE = 32


@pytest.fixture(scope="session")
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits as 1x32x32 float32 in [0, 1], and int64 labels.

    Made exactly as ``cpuai data digits`` writes its PNGs (uint8, bilinear resize), so a model
    trained on these arrays scores the same on the exported image folder.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    pixels = np.clip(d.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    resized = [
        np.asarray(
            Image.fromarray(img, mode="L").resize((DIGITS_SIZE, DIGITS_SIZE), Image.Resampling.BILINEAR)
        )
        for img in pixels
    ]
    images = (np.stack(resized).astype(np.float32) / 255.0)[:, None, :, :]
    return images, d.target.astype(np.int64)


@pytest.fixture(scope="session")
def digits_cnn(digits_arrays):
    """A SmallCNN trained for a few seconds on the first 1400 digits (eval mode). Held-out accuracy ~0.92."""
    import torch

    from cpuai.models.smallcnn import smallcnn

    torch.manual_seed(0)
    x, y = digits_arrays
    xt, yt = torch.from_numpy(x[:1400]), torch.from_numpy(y[:1400])
    model = smallcnn(num_classes=10, in_channels=1, width=8)
    opt = torch.optim.Adam(model.parameters(), lr=0.003)
    for _epoch in range(10):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    model.eval()
    return model


@pytest.fixture(scope="session")
def digits_onnx_package(digits_cnn, tmp_path_factory) -> Path:
    """The trained digits CNN as an FP32 ONNX model package (image-classification, labels 0-9)."""
    import torch

    from cpuai import package as pkg

    out = tmp_path_factory.mktemp("pkgs") / "digits-onnx"
    manifest = pkg.Manifest(
        name="digits",
        task="image-classification",
        format="onnx",
        precision="fp32",
        inputs=[
            pkg.TensorSpec(
                name="input", dtype="float32", shape=[-1, 1, DIGITS_SIZE, DIGITS_SIZE], layout="NCHW"
            )
        ],
        outputs=[pkg.TensorSpec(name="logits", dtype="float32", shape=[-1, 10])],
        preprocessing=pkg.Preprocessing(
            image=pkg.ImagePreprocessing(size=(DIGITS_SIZE, DIGITS_SIZE), color="gray", mean=[0.0], std=[1.0])
        ),
        labels=[str(i) for i in range(10)],
    )

    def files(tmp: Path) -> None:
        torch.onnx.export(
            digits_cnn,
            (torch.zeros(1, 1, DIGITS_SIZE, DIGITS_SIZE),),
            str(tmp / "model.onnx"),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )

    return pkg.write(out, manifest, files).path
