"""The Task contract: raw inputs to tensors, outputs to answers, and a score on a data set.

quantize, evaluate, bench and serve all go through a Task, so a new task lights up everywhere.
``cpuai.tasks.for_package(package)`` returns the Task for a package's ``task`` field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from cpuai.runtime.engine import Engine


@dataclass
class Score:
    """A task metric on a data set: ``primary`` names the metric the tuner compares (higher is better)."""

    primary: str
    values: dict[str, float]
    count: int
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float:
        return self.values[self.primary]


class Task(Protocol):
    """Per-task preprocessing, postprocessing and metric."""

    kind: str

    def preprocess(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        """Raw items (image bytes / PIL images / arrays / strings) to one batch of input tensors."""
        ...

    def postprocess(self, outputs: dict[str, np.ndarray], *, top_k: int = 5) -> list[Any]:
        """One batch of output tensors to one answer per item."""
        ...

    def score(self, engine: Engine, dataset: Iterable[Any], *, batch_size: int = 32) -> Score:
        """Run the engine over a data set and measure the task metric."""
        ...
