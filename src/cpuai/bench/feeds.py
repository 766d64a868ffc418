"""Benchmark inputs: one batch of tensors shaped for the engine, and a note of where they came from.

Text models get real text (Python's own docstrings) through the package's Task, since sequence
length drives their cost. Other models get synthetic tensors (uniform [0, 1) floats, labelled
``synthetic`` in every report): a CNN's speed does not depend on pixel values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cpuai.errors import ConfigError, CpuaiError
from cpuai.package import ModelPackage
from cpuai.runtime.engine import Engine, TensorInfo

DEFAULT_SEQUENCE = 128


@dataclass
class Feeds:
    """A batch of named input arrays and a description of them for the report."""

    arrays: dict[str, np.ndarray]
    source: str

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "shapes": {k: list(v.shape) for k, v in self.arrays.items()},
            "dtypes": {k: str(v.dtype) for k, v in self.arrays.items()},
        }


def python_docstrings(count: int) -> list[str]:
    """``count`` real English paragraphs: first paragraphs of Python's own docstrings (repeated if needed)."""
    from cpuai.data.docstrings import docstrings

    texts = docstrings(limit=max(count, 1), seed=0)
    return [texts[i % len(texts)] for i in range(count)]


def _synthetic(info: TensorInfo, batch: int, sequence: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dims = list(info.shape) or [batch]
    shape = [batch if i == 0 and d == -1 else (sequence if d == -1 else d) for i, d in enumerate(dims)]
    dtype = np.dtype(info.dtype if info.dtype != "bfloat16" else "float32")
    name = info.name.lower()
    if dtype.kind in "iu":
        if "mask" in name:
            return np.ones(shape, dtype=dtype)
        if "type" in name or "segment" in name:
            return np.zeros(shape, dtype=dtype)
        return rng.integers(1, 1000, size=shape).astype(dtype)
    if dtype.kind == "b":
        return np.ones(shape, dtype=dtype)
    return rng.random(shape, dtype=np.float32).astype(dtype)


def make_feeds(package: ModelPackage, engine: Engine, batch: int, *, seed: int = 0) -> Feeds:
    """One input batch of ``batch`` items for ``engine``; refuses a batch the model cannot take."""
    for info in engine.inputs:
        if info.shape and info.shape[0] not in (-1, batch):
            raise ConfigError(
                f"model input '{info.name}' has a fixed batch of {info.shape[0]}; batch {batch} cannot run",
                fix=f"use --batch {info.shape[0]}, or re-export the model with a dynamic batch dimension",
            )
    text = package.manifest.preprocessing.text
    if package.manifest.task == "text-embedding" and text is not None:
        try:
            from cpuai.tasks import for_package

            arrays = for_package(package).preprocess(python_docstrings(batch))
            names = {i.name for i in engine.inputs}
            arrays = {k: v for k, v in arrays.items() if k in names}
            if arrays:
                return Feeds(
                    arrays, f"real text: {batch} Python docstrings, tokenized (max_length {text.max_length})"
                )
        except (ImportError, CpuaiError):
            pass
    sequence = text.max_length if text is not None else DEFAULT_SEQUENCE
    arrays = {info.name: _synthetic(info, batch, sequence, seed + i) for i, info in enumerate(engine.inputs)}
    return Feeds(arrays, "synthetic: uniform [0,1) floats / token ids, fixed seed")
