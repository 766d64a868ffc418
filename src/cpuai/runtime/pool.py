"""The shared body of the backends: a pool of ``streams`` workers, checked feeds, and ``submit``.

A backend builds one worker per stream (an ONNX Runtime session, an OpenVINO infer request, a
TorchScript module) and implements ``_run(worker, feeds)``. ``infer`` borrows a free worker, so any
number of caller threads may call it and at most ``streams`` batches run at once; ``submit`` does
the same from a small executor of ``streams`` threads and returns a Future.

The per-call path is kept to a few microseconds, because small models run in tens of them: the
free workers sit in a ``queue.SimpleQueue`` (a C queue, ~0.1 µs to borrow and return, where
``queue.Queue`` costs ~3.5 µs) and the feeds go through a precomputed ``FeedCheck``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from cpuai.errors import CpuaiError, EngineError
from cpuai.runtime.checks import FeedCheck
from cpuai.runtime.engine import TensorInfo


class PooledEngine:
    """Base class of the cpuai engines; subclasses set the attributes and call ``_start(workers)``."""

    backend: str = "?"
    precision: str = "fp32"
    threads: int = 1
    streams: int = 1
    hint: str = "latency"
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    def _start(self, workers: Sequence[Any]) -> None:
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._check = FeedCheck(self.inputs)
        for w in workers:
            self._free.put(w)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(backend={self.backend}, precision={self.precision}, "
            f"threads={self.threads}, streams={self.streams})"
        )

    def __enter__(self) -> PooledEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, worker: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def check(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate feeds against ``inputs`` (InvalidInput names the input, expected and got)."""
        return self._check(feeds)

    def _infer_checked(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._closed:
            raise EngineError(f"the {self.backend} engine is closed", fix="load the model again")
        worker = self._free.get()
        try:
            return self._run(worker, feeds)
        except CpuaiError:
            raise
        except Exception as err:  # the engine failed on input that passed the checks
            raise EngineError(
                f"{self.backend} failed to run the model: {type(err).__name__}: {err}",
                fix="rerun with --debug; check the model with another backend",
            ) from err
        finally:
            self._free.put(worker)

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch synchronously; outputs keyed by output name."""
        return self._infer_checked(self.check(feeds))

    def submit(self, feeds: dict[str, np.ndarray]) -> Future[dict[str, np.ndarray]]:
        """Queue one batch on a free stream; the input is checked now, the result comes in the Future."""
        checked = self.check(feeds)
        if checked is feeds:  # the caller may change its dict before the batch runs
            checked = dict(feeds)
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.streams, thread_name_prefix=f"cpuai-{self.backend}"
                )
            executor = self._executor
        return executor.submit(self._infer_checked, checked)

    def close(self) -> None:
        """Wait for batches in flight, then free the workers."""
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
        self._closed = True
        while not self._free.empty():
            self._free.get_nowait()
