"""Image classification: raw images to the tensor the manifest describes, logits to top-k labels.

An item is image bytes, a ``PIL.Image``, a path to an image file, or a numpy array. A float array
is a preprocessed tensor and must have the shape of one model input (e.g. 1×32×32); an integer
array is pixels (H×W or H×W×3, 0..255) and goes through the same resize and normalisation as a file.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cpuai.errors import InvalidInput, ModelError
from cpuai.runtime.engine import Engine
from cpuai.tasks.base import Score
from cpuai.tasks.batching import batches


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 for stability, returned as float32."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def as_probabilities(outputs: np.ndarray) -> np.ndarray:
    """Softmax of logits; rows that already are probabilities (non-negative, summing to 1) are kept."""
    out = np.asarray(outputs, dtype=np.float32).reshape(len(outputs), -1)
    if out.min() >= 0.0 and np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
        return out
    return softmax(out)


class ImageClassification:
    """The image-classification task of one package (its preprocessing, labels and input name)."""

    kind = "image-classification"

    def __init__(self, package: Any) -> None:
        m = package.manifest
        if m.preprocessing.image is None:
            raise ModelError(
                f"package {package.path} is an image classifier without preprocessing.image",
                fix="add preprocessing.image (size, color, mean, std) to model.yaml",
            )
        self.package = package
        self.config = m.preprocessing.image
        self.input = m.inputs[0]
        self.output = m.outputs[0].name
        self.labels = list(m.labels) if m.labels else None
        channels = 1 if self.config.color == "gray" else 3
        h, w = self.config.size
        self.item_shape = (channels, h, w) if self.config.layout == "NCHW" else (h, w, channels)
        self.mean = np.asarray(self.config.mean, dtype=np.float32)
        self.std = np.asarray(self.config.std, dtype=np.float32)

    # -- preprocessing -------------------------------------------------------------------------
    def _open(self, item: Any) -> Any:
        from PIL import Image, UnidentifiedImageError

        if isinstance(item, Image.Image):
            return item
        name = "image bytes"
        try:
            if isinstance(item, bytes | bytearray | memoryview):
                image = Image.open(io.BytesIO(bytes(item)))
            elif isinstance(item, str | Path):
                name = f"image file '{item}'"
                if not Path(item).is_file():
                    raise InvalidInput(f"{name} does not exist", fix="check the path")
                image = Image.open(item)
            else:
                raise InvalidInput(
                    f"cannot read an image from {type(item).__name__}",
                    fix="pass image bytes, a PIL image, a file path or a numpy array",
                )
            image.load()
            return image
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise InvalidInput(
                f"cannot read {name}: it is corrupted or not an image ({err})",
                fix="pass a PNG, JPEG, BMP, GIF, WebP or TIFF file",
            ) from None

    def _pixels(self, image: Any) -> np.ndarray:
        from PIL import Image

        image = image.convert("L" if self.config.color == "gray" else "RGB")
        h, w = self.config.size
        if image.size != (w, h):
            resample = {
                "bilinear": Image.Resampling.BILINEAR,
                "nearest": Image.Resampling.NEAREST,
                "bicubic": Image.Resampling.BICUBIC,
            }[self.config.resize]
            image = image.resize((w, h), resample)
        arr = np.asarray(image, dtype=np.float32)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        arr = (arr * self.config.scale - self.mean) / self.std  # HWC, mean/std broadcast over channels
        return arr.transpose(2, 0, 1) if self.config.layout == "NCHW" else arr

    def _array(self, arr: np.ndarray) -> np.ndarray:
        from PIL import Image

        if arr.dtype.kind == "f":  # a preprocessed tensor: it must fit one model input exactly
            if arr.shape != self.item_shape:
                raise InvalidInput(
                    f"input '{self.input.name}' item has shape {list(arr.shape)}, "
                    f"expected {list(self.item_shape)}",
                    fix="pass float arrays of the model's input shape, or uint8 pixels to resize",
                )
            return arr.astype(np.float32, copy=False)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[:, :, 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
            raise InvalidInput(
                f"pixel array has shape {list(arr.shape)}; expected H×W or H×W×3",
                fix=f"pass one image per item (uint8 pixels) or a float tensor {list(self.item_shape)}",
            )
        return self._pixels(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)))

    def tensor(self, item: Any) -> np.ndarray:
        """One raw item to one preprocessed input tensor (without the batch axis)."""
        if isinstance(item, np.ndarray):
            return self._array(item)
        return self._pixels(self._open(item))

    def preprocess(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        """Raw items to one batch ``{input name: N×C×H×W}`` in the manifest's dtype."""
        if len(items) == 0:
            raise InvalidInput("no images to preprocess", fix="pass at least one image")
        batch = np.stack([self.tensor(item) for item in items]).astype(self.input.dtype, copy=False)
        return {self.input.name: batch}

    # -- postprocessing ------------------------------------------------------------------------
    def probabilities(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        out = outputs[self.output] if self.output in outputs else next(iter(outputs.values()))
        return as_probabilities(out)

    def label(self, index: int) -> str:
        return self.labels[index] if self.labels and index < len(self.labels) else str(index)

    def postprocess(self, outputs: dict[str, np.ndarray], *, top_k: int = 5) -> list[list[dict[str, Any]]]:
        """Per item, the ``top_k`` classes as ``[{"label", "index", "score"}]`` best first."""
        probs = self.probabilities(outputs)
        k = max(1, min(int(top_k), probs.shape[1]))
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [
            [{"label": self.label(int(i)), "index": int(i), "score": float(row[i])} for i in idx]
            for row, idx in zip(probs, order, strict=True)
        ]

    # -- metric --------------------------------------------------------------------------------
    def score(self, engine: Engine, dataset: Iterable[Any], *, batch_size: int = 32) -> Score:
        """Top-1 and top-5 accuracy over (item, class index) pairs, e.g. an ``ImageFolder``.

        ``details`` holds ``predictions``, ``targets``, ``paths`` (None for in-memory items) and
        ``probabilities`` (N×classes) so a caller can draw a confusion matrix or list mistakes.
        """
        preds: list[int] = []
        targets: list[int] = []
        paths: list[str | None] = []
        probs_all: list[np.ndarray] = []
        top5_hits = 0
        for items, ys in batches(dataset, batch_size):
            probs = self.probabilities(engine.infer(self.preprocess(items)))
            k = min(5, probs.shape[1])
            top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
            y = np.asarray(ys, dtype=np.int64)
            preds.extend(int(p) for p in top[:, 0])
            targets.extend(int(t) for t in y)
            top5_hits += int((top == y[:, None]).any(axis=1).sum())
            paths.extend(str(i) if isinstance(i, str | Path) else None for i in items)
            probs_all.append(probs)
        n = len(targets)
        if n == 0:
            raise InvalidInput("the data set is empty", fix="point at a folder with images")
        top1 = float(np.mean(np.asarray(preds) == np.asarray(targets)))
        return Score(
            primary="top1",
            values={"top1": top1, "top5": top5_hits / n},
            count=n,
            details={
                "predictions": preds,
                "targets": targets,
                "paths": paths,
                "probabilities": np.concatenate(probs_all),
                "labels": self.labels,
            },
        )
