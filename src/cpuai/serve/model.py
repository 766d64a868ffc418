"""One served model version: its engines (or custom handler), task, batch queue and state.

Requests reach it in two forms. Tensor protocols (KServe v2, TF-Serving) call ``infer(feeds)``;
the plain endpoint calls ``predict(body, content_type)``, whose decoding (image decode,
tokenisation) runs in the server's bounded preprocessing pool off the event loop. Either way each
request is validated on its own before it joins a batch, so bad data fails only its request.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cpuai.errors import CpuaiError, EngineError, InvalidInput
from cpuai.hardware.limits import usable_cpus
from cpuai.package import ModelPackage
from cpuai.runtime.checks import FeedCheck
from cpuai.runtime.engine import TensorInfo
from cpuai.serve.batching import BatchQueue
from cpuai.serve.budget import CoreGate, EnginePlan, pinned
from cpuai.serve.codec import v2_datatype
from cpuai.serve.config import ServeConfig
from cpuai.serve.errors import HandlerFailed, NotReady
from cpuai.serve.handlers import Handler, load_handler
from cpuai.serve.metrics import ServerMetrics

log = logging.getLogger("cpuai.serve")

#: Text inputs are grouped into length buckets of this many tokens to limit padding (4 beat 8 by
#: 3-9 % rows/s on real docstring sentences, 32 or 8 requests waiting; benchmarks/serve.py mix).
LENGTH_BUCKET = 4
PLAIN_TASKS = ("image-classification", "text-embedding")
#: Backends whose engines keep their own thread pools, so per-core engines can live beside an
#: all-core one (PyTorch's thread count is per process).
SPLIT_BACKENDS = ("onnxruntime", "openvino")
#: After a batch on a per-core engine, keep using per-core engines this long even if the queue
#: empties for a moment: under load, a batch on the all-core engine would stall the other cores'
#: batches (and leave its spinning threads in their way).
SPLIT_HOLD_S = 0.05
#: Split only models whose rows take the engine call at least this long each (the calling
#: thread's CPU time, scaled to the all-core engine), about what the server's own Python costs a
#: request (HTTP, decoding, answering: 0.3-0.6 ms on a 2-vCPU VM). Below it that Python, not the
#: engine, bounds throughput, and two batch threads only contend for it: the digits CNN (0.03-0.1
#: ms a row) lost 10-20 % req/s split. The engine call's CPU time, per row: on contended cores a
#: digits batch took 2.5-3 ms end to end, and even its 0.1 ms engine call's wall time includes
#: waiting to take the interpreter back; the earlier rule (2 ms a batch, end to end) split it.
SPLIT_MIN_ROW_S = 0.0005


@dataclass
class _Item:
    """One request inside the batch queue: its tensors (or raw payload), rows and how to answer."""

    payload: Any
    rows: int
    length: int | None = None  # own token length for padded text inputs
    top_k: int | None = None  # set for plain requests: the answer is the task's postprocessed item


@dataclass
class Shared:
    """What every model of one server shares: the core gate, the preprocessing pool, metrics."""

    config: ServeConfig
    gate: CoreGate
    pool: ThreadPoolExecutor
    metrics: ServerMetrics
    budget: int
    extra: dict[str, Any] = field(default_factory=dict)

    def pool_backlog(self) -> int:
        """Tasks waiting for a preprocessing thread (the executor's queue; 0 if it has none)."""
        work = getattr(self.pool, "_work_queue", None)
        return work.qsize() if work is not None else 0


def _feeds_rows(feeds: dict[str, np.ndarray]) -> int:
    rows = {a.shape[0] for a in feeds.values()}
    if len(rows) != 1:
        raise InvalidInput(
            f"inputs disagree on the batch size: {sorted(rows)}",
            fix="give every input the same first dimension",
        )
    return rows.pop()


class ServedModel:
    """A loaded model version ready to answer requests."""

    def __init__(self, package: ModelPackage, plan: EnginePlan, shared: Shared) -> None:
        self.package = package
        self.name = package.manifest.name
        self.version = package.manifest.version
        self.plan = plan
        self.shared = shared
        self.state = "LOADING"
        self.reason = ""
        self.engines: list[Any] = []
        self.split_engines: list[Any] = []  # one per core, for batches while others run or wait
        self.handler: Handler | None = None
        self.task: Any = None
        self._busy: list[int] = []
        self._split_busy: list[int] = []
        self._split_until = 0.0  # perf_counter time until which batches stay on per-core engines
        # the last batches' engine time per row, scaled to the all-core engine; _done takes their
        # median, since an engine's first call costs several times its usual (0.7 vs 0.09 ms a digits row)
        self._row_times: deque[float] = deque(maxlen=16)
        self._splitting = False  # the median of _row_times reaches SPLIT_MIN_ROW_S (per-core engines pay)
        self._handler_pool: ThreadPoolExecutor | None = None
        self._cpus = usable_cpus()  # per-core engine i runs its batches on its own core(s) of these
        self._engine_lock = threading.Lock()  # guards _busy, which batch threads change
        self.inputs: list[TensorInfo] = [
            TensorInfo(t.name, t.dtype, tuple(t.shape)) for t in package.manifest.inputs
        ]
        self.outputs: list[TensorInfo] = [
            TensorInfo(t.name, t.dtype, tuple(t.shape)) for t in package.manifest.outputs
        ]
        self._check = FeedCheck(self.inputs)  # precomputed: a fitting feed costs about a microsecond
        self._pad_inputs: set[str] = set()
        self._mask = "attention_mask"
        cfg = shared.config
        self.queue = BatchQueue(
            self._run_batch,
            max_batch=cfg.max_batch,
            max_delay_s=cfg.max_delay_s,
            max_queue=cfg.max_queue,
            slots=plan.slots,  # per-core engines add slots once splitting pays (``_done``)
            name=self.name,
            observe=shared.metrics.observer(self.name),
        )

    # -- lifecycle -----------------------------------------------------------------------------
    def load(self) -> None:
        """Build engines, task and handler (blocking; the registry runs it in a worker thread)."""
        m = self.package.manifest
        if m.handler:
            self.handler = load_handler(m.handler, self.package.path)
            self.handler.load_model(str(self.package.path))
            self._handler_pool = ThreadPoolExecutor(
                self.queue.slots, thread_name_prefix=f"cpuai-handler-{self.name}"
            )
        else:
            from cpuai.runtime import load

            def engine(threads: int) -> Any:
                return load(
                    self.package,
                    backend=self.plan.backend,
                    threads=threads,
                    streams=self.plan.streams,
                    hint=self.plan.hint,
                    precision=self.plan.precision,
                    spin=self.shared.config.spin,
                )

            self.engines = [engine(self.plan.threads) for _ in range(self.plan.instances)]
            if self.plan.split_engines and self.engines[0].backend in SPLIT_BACKENDS:
                self.split_engines = [engine(self.plan.split_threads) for _ in range(self.plan.split_engines)]
            self._busy, self._split_busy = [0] * len(self.engines), [0] * len(self.split_engines)
            self.queue.use_threads(self._compute_batch, max(self.plan.slots, len(self.split_engines)))
            self.inputs, self.outputs = list(self.engines[0].inputs), list(self.engines[0].outputs)
            self._check = FeedCheck(self.inputs)
        if m.task in PLAIN_TASKS:
            from cpuai.tasks import for_package

            self.task = for_package(self.package)
        if m.task == "text-embedding" and m.preprocessing.text is not None:
            names = m.preprocessing.text.input_names
            self._pad_inputs = {names.get(k, k) for k in ("input_ids", "attention_mask", "token_type_ids")}
            self._mask = names.get("attention_mask", "attention_mask")
        self.state = "READY"

    async def close(self, *, drain: bool = True) -> None:
        """Stop taking requests, finish (or fail) the queued ones, and free the engines."""
        self.state = "UNLOADING"
        await self.queue.close(drain=drain)
        loop = asyncio.get_running_loop()
        for engine in self.engines + self.split_engines:
            await loop.run_in_executor(None, engine.close)
        closer = getattr(self.handler, "close", None)
        if callable(closer):
            await loop.run_in_executor(None, closer)
        if self._handler_pool is not None:
            self._handler_pool.shutdown(wait=False)
        self.state = "UNAVAILABLE"

    def ready(self) -> bool:
        return self.state == "READY"

    def require_ready(self) -> None:
        if self.state != "READY":
            raise NotReady(
                f"model '{self.name}' version {self.version} is {self.state.lower()}"
                + (f": {self.reason}" if self.reason else ""),
                fix="wait for it to load, or load it again",
            )

    # -- metadata ------------------------------------------------------------------------------
    @property
    def platform(self) -> str:
        if self.handler is not None:
            return "cpuai_handler"
        return {
            "onnxruntime": "onnxruntime_onnx",
            "openvino": "openvino",
            "torch": "pytorch_torchscript",
        }.get(self.engines[0].backend if self.engines else self.plan.backend, self.package.manifest.format)

    def metadata(self, versions: Sequence[int]) -> dict[str, Any]:
        """KServe v2 model metadata."""
        return {
            "name": self.name,
            "versions": [str(v) for v in versions],
            "platform": self.platform,
            "inputs": [
                {"name": t.name, "datatype": v2_datatype(t.dtype), "shape": list(t.shape)}
                for t in self.inputs
            ],
            "outputs": [
                {"name": t.name, "datatype": v2_datatype(t.dtype), "shape": list(t.shape)}
                for t in self.outputs
            ],
            "parameters": {
                "task": self.package.manifest.task,
                "precision": self.package.manifest.precision,
                "instances": self.plan.instances,
                "threads": self.plan.threads,
                "streams": self.plan.streams,
                "plan_source": self.plan.source,
                "split_engines": len(self.split_engines),
                "split_threads": self.plan.split_threads if self.split_engines else 0,
                **(
                    {"spin": self.engines[0].spin}
                    if self.engines and isinstance(getattr(self.engines[0], "spin", None), bool)
                    else {}
                ),
            },
        }

    # -- requests ------------------------------------------------------------------------------
    def check(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate one request's tensors against the model's inputs (InvalidInput on mismatch)."""
        return self._check(feeds)

    async def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one request's tensors through the batch queue; outputs keep the request's rows."""
        self.require_ready()
        if self.handler is not None:
            rows = _feeds_rows(feeds)
            return await self.queue.put(_Item({"inputs": feeds}, rows), rows=1, key="handler")
        feeds = self.check(feeds)
        rows = _feeds_rows(feeds)
        key = tuple((n, a.shape[1:]) for n, a in feeds.items())
        return await self.queue.put(_Item(feeds, rows), rows=rows, key=key)

    async def predict(self, item: Any, *, content_type: str = "", top_k: int = 5) -> Any:
        """Answer one raw item (image bytes or a text) with the task's answer (labels or embedding)."""
        self.require_ready()
        if self.handler is not None:
            return await self.queue.put(_Item({"body": item, "content_type": content_type}, 1), key="handler")
        if self.task is None:
            raise InvalidInput(
                f"model '{self.name}' has task '{self.package.manifest.task}', which the plain "
                "endpoint does not serve",
                fix="call /v2/models/{name}/infer with tensors instead",
            )
        loop = asyncio.get_running_loop()
        done, value = await loop.run_in_executor(self.shared.pool, self._preprocess_or_run, item, top_k)
        if done:
            return value
        feeds = value
        length = None
        if self._pad_inputs:
            length = int(feeds[self._mask].shape[1]) if self._mask in feeds else None
            key: Any = ("text", -(-(length or 0) // LENGTH_BUCKET))
        else:
            key = tuple((n, a.shape[1:]) for n, a in feeds.items())
        return await self.queue.put(_Item(feeds, 1, length, top_k), rows=1, key=key)

    def _preprocess_or_run(self, item: Any, top_k: int) -> tuple[bool, Any]:
        """In a pool thread: preprocess; if the model is idle, also run and answer here (one hop less).

        Not while other requests wait for a pool thread: an engine call here would hold up their
        decoding, and with one pool thread (a 1-core budget) no request would ever reach the batch
        queue, so nothing would batch.
        """
        feeds = self._preprocess_one(item)
        if len(self.engines) == 0 or self.shared.pool_backlog() or not self.queue.try_reserve():
            return False, feeds
        engines, busy, threads, index = self._pick()
        held = self.shared.gate.try_acquire(threads)
        if not held:
            self._done(busy, index, None)
            self.queue.release(0, 0.0)
            return False, feeds
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            with pinned(self._cores_of(engines, index)):
                outputs = engines[index].infer(feeds)
        finally:
            self.shared.gate.release(held)
            took = time.perf_counter() - start
            self._done(busy, index, time.thread_time() - cpu)
            self.queue.release(1, took)
        return True, self._answers(outputs, top_k, feeds)[0]

    def _preprocess_one(self, item: Any) -> dict[str, np.ndarray]:
        try:
            feeds = self.task.preprocess([item])
        except CpuaiError:
            raise
        except Exception as err:  # a library's complaint about this request's data
            raise InvalidInput(
                f"cannot preprocess the request for '{self.name}': {type(err).__name__}: {err}",
                fix="send a valid image (PNG/JPEG) or text",
            ) from None
        if self._pad_inputs and self._mask in feeds:  # trim tokenizer padding: batches re-pad per bucket
            n = max(1, int(np.asarray(feeds[self._mask]).sum()))
            feeds = {k: (v[:, :n] if k in self._pad_inputs and v.ndim == 2 else v) for k, v in feeds.items()}
        return self.check(feeds)

    # -- batches -------------------------------------------------------------------------------
    async def _run_batch(self, items: list[_Item]) -> list[Any]:
        """A handler's batch (engine batches run in the queue's threads: ``_compute_batch``)."""
        return await self._run_handler(items)

    def _compute_batch(self, items: list[_Item]) -> list[Any]:
        """In a batch thread: the least busy engine, holding its cores, answers ``items``.

        With per-core engines, a batch alone (nothing else running or waiting) takes the all-core
        engine, for its latency; otherwise it takes a free per-core engine, so under load each core
        runs a batch of its own instead of every core sharing each small batch.
        """
        engines, busy, threads, index = self._pick()
        held = self.shared.gate.acquire_blocking(threads)
        engine_s: float | None = None  # the engine call's CPU time (None: the batch failed)
        try:  # padding, the engine, splitting and postprocessing all run in this thread
            with pinned(self._cores_of(engines, index)):
                results, engine_s = self._compute(engines[index], items)
            return results
        finally:
            self.shared.gate.release(held)
            self._done(busy, index, engine_s, sum(i.rows for i in items))

    def _cores_of(self, engines: list[Any], index: int) -> list[int] | None:
        """The CPUs of per-core engine ``index`` (None for the all-core engine: it floats)."""
        if engines is not self.split_engines:
            return None
        n = self.plan.split_threads
        group = self._cpus[index * n : (index + 1) * n]
        return group if len(group) == n else None

    def _pick(self) -> tuple[list[Any], list[int], int, int]:
        """Choose and mark busy an engine: (engine list, its busy counts, threads, index)."""
        with self._engine_lock:
            loaded = sum(self._busy) + sum(self._split_busy) + self.queue.depth
            if self._splitting and (loaded or time.perf_counter() < self._split_until):
                engines, busy, threads = self.split_engines, self._split_busy, self.plan.split_threads
            else:
                engines, busy, threads = self.engines, self._busy, self.plan.threads
            index = min(range(len(engines)), key=busy.__getitem__)
            busy[index] += 1
        return engines, busy, threads, index

    def _done(self, busy: list[int], index: int, seconds: float | None, rows: int = 1) -> None:
        """Free an engine from ``_pick``; a batch of ``rows`` that ran (``seconds``, None if it did
        not) is counted by engine kind and updates the time per row that decides whether splitting
        pays."""
        split = busy is self._split_busy
        with self._engine_lock:
            busy[index] -= 1
            if seconds is None:
                return
            if split:
                self._split_until = time.perf_counter() + SPLIT_HOLD_S
                seconds *= self.plan.split_threads / self.plan.threads  # as if on every core
            self._row_times.append(seconds / max(1, rows))
            if self.split_engines:  # side-by-side batches only while splitting pays
                self._splitting = statistics.median(self._row_times) >= SPLIT_MIN_ROW_S
                self.queue.slots = len(self.split_engines) if self._splitting else self.plan.slots
        self.shared.metrics.engine_batches.labels(self.name, "per-core" if split else "all-cores").inc()

    def _compute(self, engine: Any, items: list[_Item]) -> tuple[list[Any], float]:
        """In a batch thread: one engine call for ``items``, then each item's own answer; also the
        engine call's CPU seconds in this thread."""
        feeds, padded = self._concat(items)
        start = time.thread_time()  # CPU: waiting to take the interpreter back is not the engine's time
        outputs = engine.infer(feeds)
        engine_s = time.thread_time() - start
        total = sum(i.rows for i in items)
        for name, value in outputs.items():
            if len(value) != total:
                raise EngineError(
                    f"model '{self.name}' output '{name}' has {len(value)} rows for a batch of {total}",
                    fix="the model must keep the batch axis first",
                )
        top_k = items[0].top_k
        if top_k is not None and all(i.top_k == top_k and i.rows == 1 for i in items):
            # plain requests: the task answers the whole batch in one vectorised call (mean pooling
            # uses the batch's padded attention mask, so each row pools over its own tokens only)
            return self._answers(outputs, top_k, feeds), engine_s
        results: list[Any] = []
        start = 0
        for item in items:
            own = {k: v[start : start + item.rows] for k, v in outputs.items()}
            if padded is not None and item.length is not None:
                own = {
                    k: (v[:, : item.length] if v.ndim >= 2 and v.shape[1] == padded else v)
                    for k, v in own.items()
                }
            start += item.rows
            if item.top_k is not None:  # a plain request batched with tensor requests of its shape
                own = self._answers(own, item.top_k, item.payload)[0]
            results.append(own)
        return results, engine_s

    def _answers(self, outputs: dict[str, np.ndarray], top_k: int, feeds: dict[str, np.ndarray]) -> list[Any]:
        """The task's answers, one per row; text pooling needs the rows' attention mask from ``feeds``
        (embeddings stay float32 arrays: the responses' orjson writes them in half the bytes)."""
        if self._pad_inputs:
            return self.task.postprocess(outputs, top_k=top_k, feeds=feeds, arrays=True)
        return self.task.postprocess(outputs, top_k=top_k)

    def _concat(self, items: list[_Item]) -> tuple[dict[str, np.ndarray], int | None]:
        if len(items) == 1:
            return items[0].payload, None
        names = items[0].payload.keys()
        if self._pad_inputs and any(i.length is not None for i in items):
            longest = max(i.payload[n].shape[1] for i in items for n in names if n in self._pad_inputs)
            out = {}
            for n in names:
                if n not in self._pad_inputs:
                    out[n] = np.concatenate([i.payload[n] for i in items])
                    continue
                first = items[0].payload[n]
                rows = sum(i.payload[n].shape[0] for i in items)
                block = np.zeros((rows, longest), dtype=first.dtype)  # pad id 0, mask 0, type 0
                at = 0
                for i in items:
                    part = i.payload[n]
                    block[at : at + part.shape[0], : part.shape[1]] = part
                    at += part.shape[0]
                out[n] = block
            return out, longest
        return {n: np.concatenate([i.payload[n] for i in items]) for n in names}, None

    async def _run_handler(self, items: list[_Item]) -> list[Any]:
        """Run a handler batch; if it raises, rerun its items one by one so only the guilty fail."""
        try:
            return await self._execute([i.payload for i in items])
        except CpuaiError as err:
            if len(items) == 1:
                raise
            log.info("handler batch of %d failed (%s); retrying its requests one by one", len(items), err)
        results: list[Any] = []
        for item in items:
            try:
                results.extend(await self._execute([item.payload]))
            except CpuaiError as err:
                results.append(err)
        return results

    async def _execute(self, data: list[Any]) -> list[Any]:
        assert self.handler is not None and self._handler_pool is not None
        handler = self.handler
        held = await self.shared.gate.acquire(self.plan.threads)
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self._handler_pool, handler.execute, data, len(data)
            )
        except CpuaiError:
            raise
        except Exception as err:
            log.warning("handler of '%s' raised %s: %s", self.name, type(err).__name__, err)
            raise HandlerFailed(
                f"the handler of model '{self.name}' failed: {type(err).__name__}: {err}",
                fix="fix the handler's execute(); other requests are unaffected",
            ) from None
        finally:
            self.shared.gate.release(held)
        if not isinstance(results, list | tuple) or len(results) != len(data):
            got = f"{len(results)} results" if isinstance(results, list | tuple) else type(results).__name__
            raise HandlerFailed(
                f"the handler of model '{self.name}' returned {got} for {len(data)} requests",
                fix="execute() must return a list with one result per item",
            )
        return list(results)
