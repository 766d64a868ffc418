"""Input checks shared by every backend: a feed that does not fit the model raises ``InvalidInput``.

The message names the input, what the model expects and what came, so a caller (CLI, server) can
show it on one line. A dimension of -1 is dynamic (any size); every other dimension must match.

``FeedCheck`` is the per-call form engines use: it precomputes, per input, the numpy dtype, the rank
and the fixed dimensions, so a feed that fits costs a few attribute reads (about a microsecond) and
is passed on as it is. Anything unusual (a wrong name, dtype, rank or dimension, an empty
dimension, a non-contiguous array, a big-endian dtype) goes through ``check_feeds``, which builds
the messages, so the fast path can never accept what ``check_feeds`` refuses.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence

import numpy as np

from cpuai.errors import InvalidInput
from cpuai.runtime.engine import TensorInfo


def _shape(shape: Sequence[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _numpy_dtype(name: str) -> np.dtype | None:
    """The numpy dtype for a dtype name, or None when numpy has none (bfloat16, strings)."""
    try:
        return np.dtype(name)
    except TypeError:
        return None


class FeedCheck:
    """``check_feeds`` for one model's inputs, with the checks precomputed for the per-call path."""

    __slots__ = ("inputs", "_plan", "_count", "_fast")

    def __init__(self, inputs: Sequence[TensorInfo]) -> None:
        self.inputs = list(inputs)
        plan = []
        for info in self.inputs:
            axes = tuple(axis for axis, want in enumerate(info.shape) if want != -1)
            wants = tuple(info.shape[axis] for axis in axes)
            # itemgetter reads the fixed dimensions in one C call (a scalar for a single axis).
            fixed = (operator.itemgetter(*axes), wants if len(axes) > 1 else wants[0]) if axes else None
            plan.append((info.name, _numpy_dtype(info.dtype), len(info.shape), fixed))
        self._plan = tuple(plan)
        self._count = len(self.inputs)
        # A dtype numpy cannot name would compare loosely (None coerces to float64): no fast path.
        self._fast = all(dtype is not None for _, dtype, _, _ in plan)

    def __call__(self, feeds: Mapping[str, object]) -> dict[str, np.ndarray]:
        """The feeds, checked: the same dict when it already fits, else what ``check_feeds`` returns."""
        if self._fast and type(feeds) is dict and len(feeds) == self._count:
            for name, dtype, rank, fixed in self._plan:
                value = feeds.get(name)
                if (
                    type(value) is not np.ndarray
                    or value.dtype != dtype
                    or value.ndim != rank
                    or value.size == 0
                    or not value.flags.c_contiguous
                    or (fixed is not None and fixed[0](value.shape) != fixed[1])
                ):
                    break
            else:
                return feeds  # type: ignore[return-value]  # every value was checked to be an ndarray
        return check_feeds(feeds, self.inputs)


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
