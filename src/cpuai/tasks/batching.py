"""Batching helpers shared by the tasks: split a data set into batches of (items, targets)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from cpuai.errors import ConfigError


def check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(
            f"batch size must be a whole number >= 1, got {batch_size!r}", fix="pass --batch 1 or more"
        )
    return batch_size


def pairs(dataset: Any) -> Iterable[tuple[Any, Any]]:
    """(item, target) pairs from an ImageFolder, an iterable of pairs, or a tuple of two arrays (x, y)."""
    if (
        isinstance(dataset, tuple)
        and len(dataset) == 2
        and isinstance(dataset[0], np.ndarray)
        and isinstance(dataset[1], np.ndarray)
    ):
        return zip(dataset[0], dataset[1], strict=True)
    samples = getattr(dataset, "samples", None)
    return samples if samples is not None else dataset


def batches(dataset: Any, batch_size: int) -> Iterator[tuple[list[Any], list[Any]]]:
    """Yield (items, targets) lists of at most ``batch_size``."""
    check_batch_size(batch_size)
    items: list[Any] = []
    targets: list[Any] = []
    for item, target in pairs(dataset):
        items.append(item)
        targets.append(target)
        if len(items) == batch_size:
            yield items, targets
            items, targets = [], []
    if items:
        yield items, targets


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive slices of ``items`` of at most ``size``."""
    check_batch_size(size)
    for i in range(0, len(items), size):
        yield items[i : i + size]
