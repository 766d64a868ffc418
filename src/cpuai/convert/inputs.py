"""What a conversion feeds the model: ``--input-shape`` parsing and the deterministic sample inputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cpuai.errors import ConfigError


def parse_input_shapes(values: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """``["input:1,3,224,224"]`` to ``{"input": (1, 3, 224, 224)}``; a bare shape names the input 'input'."""
    shapes: dict[str, tuple[int, ...]] = {}
    for text in values:
        name, _, dims = text.rpartition(":")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip())
        except ValueError:
            shape = ()
        if not shape or any(d < 1 for d in shape):
            raise ConfigError(
                f"--input-shape {text!r} is not NAME:D1,D2,... with positive sizes",
                fix="write it like input:1,3,224,224",
            )
        shapes[name or "input"] = shape
    return shapes


@dataclass
class InputPlan:
    """The inputs to export with: names, example shapes, dtypes and which axes are dynamic."""

    names: list[str]
    shapes: list[tuple[int, ...]]
    dtypes: list[str]
    dynamic: list[dict[int, str]]
    #: Exclusive upper bound per last-axis column of an integer input (categorical indices).
    int_ranges: dict[str, list[int]] = field(default_factory=dict)

    def sample(self, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Deterministic inputs with batch ``batch``: uniform floats, small token ids, masks of ones.

        An input with ``int_ranges`` gets indices ``0 <= i < range`` per column instead of token ids.
        """
        rng = np.random.default_rng(seed)
        feeds: dict[str, np.ndarray] = {}
        for name, shape, dtype in zip(self.names, self.shapes, self.dtypes, strict=True):
            full = (batch, *shape[1:])
            if dtype.startswith("int"):
                if name in self.int_ranges:
                    arr = rng.integers(0, np.array(self.int_ranges[name]), size=full).astype(dtype)
                elif "mask" in name:
                    arr = np.ones(full, dtype=dtype)
                elif "type" in name:
                    arr = np.zeros(full, dtype=dtype)
                else:
                    arr = rng.integers(100, 2000, size=full).astype(dtype)
            else:
                arr = rng.random(full, dtype=np.float32).astype(dtype)
            feeds[name] = arr
        return feeds


def plan_inputs(
    specs: Sequence[Any],
    shapes: dict[str, tuple[int, ...]] | None,
    *,
    text: bool = False,
    tabular: bool = False,
    label: str = "the model",
) -> InputPlan:
    """Input names/shapes from ``--input-shape`` or the specs; batch (and token) axes dynamic.

    Integer inputs are token ids with a dynamic sequence axis, except in a ``tabular`` model, whose
    integer input is a fixed set of categorical columns.
    """
    if shapes:
        names = list(shapes)
        by_name = {s.name: s for s in specs}
        dtypes = [by_name[n].dtype if n in by_name else "float32" for n in names]
        dims = [shapes[n] for n in names]
    elif specs:
        names = [s.name for s in specs]
        dtypes = [s.dtype for s in specs]
        dims = [
            tuple(1 if d == -1 and i == 0 else (16 if d == -1 else d) for i, d in enumerate(s.shape))
            for s in specs
        ]
    else:
        raise ConfigError(
            f"the input shape of {label} is unknown", fix="pass --input-shape NAME:1,3,224,224 (batch first)"
        )
    dynamic: list[dict[int, str]] = []
    for dtype, shape in zip(dtypes, dims, strict=True):
        axes = {0: "batch"}
        if (text or (dtype.startswith("int") and not tabular)) and len(shape) >= 2:
            axes[1] = "sequence"
        dynamic.append(axes)
    return InputPlan(names=names, shapes=list(dims), dtypes=dtypes, dynamic=dynamic)


def categorical_ranges(manifest: Any, plan: InputPlan) -> dict[str, list[int]]:
    """Vocabulary sizes for the integer input of a tabular package (its categorical columns).

    Without them the sample would hold token-like ids far past the embeddings' size.
    """
    tabular = manifest.preprocessing.tabular if manifest is not None else None
    if tabular is None:
        return {}
    sizes = [len(c.vocabulary or [""]) for c in tabular.columns if c.kind == "categorical"]
    return {
        name: sizes
        for name, shape, dtype in zip(plan.names, plan.shapes, plan.dtypes, strict=True)
        if dtype.startswith("int") and sizes and shape[-1] == len(sizes)
    }
