"""The generic task: tensors in, tensors out, for models that have no task of their own.

An item is one input array (single-input models) or a dict of arrays (one per input), without the
batch axis; ``preprocess`` stacks items into a batch and ``postprocess`` splits outputs back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from cpuai.errors import ConfigError, InvalidInput
from cpuai.runtime.engine import Engine
from cpuai.tasks.base import Score
from cpuai.tasks.batching import batches


class Generic:
    """Stack items into a batch per input; split each output back into one array per item."""

    kind = "generic"

    def __init__(self, package: Any) -> None:
        self.package = package
        self.inputs = list(package.manifest.inputs)
        self.outputs = [o.name for o in package.manifest.outputs]

    def preprocess(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        if len(items) == 0:
            raise InvalidInput("no items to preprocess", fix="pass at least one item")
        feeds: dict[str, np.ndarray] = {}
        for spec in self.inputs:
            rows = []
            for item in items:
                if isinstance(item, dict):
                    if spec.name not in item:
                        raise InvalidInput(f"item is missing input '{spec.name}'", fix="give every input")
                    rows.append(np.asarray(item[spec.name]))
                elif len(self.inputs) == 1:
                    rows.append(np.asarray(item))
                else:
                    raise InvalidInput(
                        f"the model takes {len(self.inputs)} inputs; items must be dicts",
                        fix=f"pass {{{', '.join(repr(s.name) for s in self.inputs)}: array}}",
                    )
            feeds[spec.name] = np.stack(rows).astype(spec.dtype, copy=False)
        return feeds

    def postprocess(self, outputs: dict[str, np.ndarray], *, top_k: int = 5) -> list[dict[str, np.ndarray]]:
        n = len(next(iter(outputs.values())))
        return [{name: value[i] for name, value in outputs.items()} for i in range(n)]

    def score(self, engine: Engine, dataset: Iterable[Any], *, batch_size: int = 32) -> Score:
        """Accuracy of the first output's argmax against integer targets (the only generic metric)."""
        hits = n = 0
        for items, ys in batches(dataset, batch_size):
            out = engine.infer(self.preprocess(items))
            first = out[self.outputs[0]] if self.outputs[0] in out else next(iter(out.values()))
            try:
                y = np.asarray(ys, dtype=np.int64)
            except (TypeError, ValueError):
                raise ConfigError(
                    "a generic model can only be scored against integer class targets",
                    fix="give the package a task (image-classification, text-embedding)",
                ) from None
            hits += int((first.reshape(len(first), -1).argmax(axis=1) == y).sum())
            n += len(y)
        if n == 0:
            raise InvalidInput("the data set is empty", fix="pass at least one (item, target) pair")
        return Score(primary="accuracy", values={"accuracy": hits / n}, count=n)
