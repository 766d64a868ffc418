"""The Engine contract: one small protocol over ONNX Runtime, OpenVINO and PyTorch.

``cpuai.runtime.load(package, backend="auto", threads=None, streams=None, hint="latency")``
returns an ``Engine``. Backends implement this protocol; a fake backend for tests is a few lines.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

Hint = Literal["latency", "throughput"]
BACKENDS = ("onnxruntime", "openvino", "torch")


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """A tensor the engine takes or gives: ``shape`` has -1 for dynamic dimensions."""

    name: str
    dtype: str  # numpy dtype name, e.g. "float32", "int64"
    shape: tuple[int, ...]


@runtime_checkable
class Engine(Protocol):
    """A loaded model ready to run batches.

    ``infer`` runs one batch synchronously. ``submit`` queues a batch on one of ``streams``
    parallel requests and returns a Future, so several requests can be in flight. ``precision``
    is what the engine actually runs (OpenVINO may run BF16 under the hood; the engine says so).
    """

    backend: str
    precision: str
    threads: int
    streams: int
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def submit(self, feeds: dict[str, np.ndarray]) -> Future[dict[str, np.ndarray]]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Engine: ...

    def __exit__(self, *exc: object) -> None: ...
