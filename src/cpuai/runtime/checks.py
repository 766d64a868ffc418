"""Input checks shared by every backend: a feed that does not fit the model raises ``InvalidInput``.

The message names the input, what the model expects and what came, so a caller (CLI, server) can
show it on one line. A dimension of -1 is dynamic (any size); every other dimension must match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cpuai.errors import InvalidInput
from cpuai.runtime.engine import TensorInfo


def _shape(shape: Sequence[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def check_feeds(feeds: Mapping[str, object], inputs: Sequence[TensorInfo]) -> dict[str, np.ndarray]:
    """Validate ``feeds`` against the model's inputs; return them as C-contiguous arrays."""
    if not isinstance(feeds, Mapping):
        raise InvalidInput(
            f"feeds must be a dict of input name to array, got {type(feeds).__name__}",
            fix="pass {'<input name>': numpy_array}",
        )
    expected = {t.name: t for t in inputs}
    names = ", ".join(expected)
    unknown = [n for n in feeds if n not in expected]
    if unknown:
        raise InvalidInput(f"unknown input '{unknown[0]}'; the model takes: {names}", fix="rename the feed")
    checked: dict[str, np.ndarray] = {}
    for info in inputs:
        if info.name not in feeds:
            raise InvalidInput(
                f"input '{info.name}' is missing; the model takes: {names}", fix=f"add '{info.name}'"
            )
        value = feeds[info.name]
        if not isinstance(value, np.ndarray):
            raise InvalidInput(
                f"input '{info.name}' must be a numpy array, got {type(value).__name__}",
                fix=f"pass np.asarray(value, dtype=np.{info.dtype})",
            )
        if value.dtype.name != info.dtype:
            raise InvalidInput(
                f"input '{info.name}' has dtype {value.dtype.name}, expected {info.dtype}",
                fix=f"cast it with .astype(np.{info.dtype})",
            )
        if value.ndim != len(info.shape):
            raise InvalidInput(
                f"input '{info.name}' has shape {_shape(value.shape)} (rank {value.ndim}), "
                f"expected rank {len(info.shape)} {_shape(info.shape)}",
                fix="reshape the input to the model's shape (-1 is any size)",
            )
        for axis, (want, got) in enumerate(zip(info.shape, value.shape, strict=True)):
            if got == 0:
                raise InvalidInput(
                    f"input '{info.name}' has an empty dimension {axis} (shape {_shape(value.shape)})",
                    fix="send at least one item",
                )
            if want != -1 and want != got:
                raise InvalidInput(
                    f"input '{info.name}' dimension {axis} is {got}, expected {want} "
                    f"(got shape {_shape(value.shape)}, expected {_shape(info.shape)})",
                    fix="resize the input to the model's shape (-1 is any size)",
                )
        checked[info.name] = np.ascontiguousarray(value)
    return checked
