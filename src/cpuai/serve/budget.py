"""Core planning for a served model: instances x threads x streams never exceeds the core budget.

Precedence: command-line flag > the package's ``deploy`` section (written by ``cpuai tune``) >
defaults (one instance, one stream, every core). The default layout also splits under load: beside
the all-core engine it keeps one small engine per core (at most ``MAX_SPLIT`` of them), so a lone
request runs on every core and, while batches queue, each core runs a batch of its own (on MiniLM
at concurrency 32 that served 1.2-1.3x the requests of one 2-thread engine; docs/serving.md).
``CoreGate`` then makes models that share a server share its cores: every batch holds its
engine's threads from one server-wide pool, and ``pinned`` keeps a per-core engine's batch on its
own core (3-4 % more requests on MiniLM at concurrency 32 here, the batches no longer migrating
between cores when the server's other threads wake).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from cpuai.errors import ResourceError
from cpuai.package import Deploy

log = logging.getLogger("cpuai.serve")

#: At most this many per-core engines: each is a full copy of the model in memory.
MAX_SPLIT = 8


@dataclass(frozen=True, kw_only=True)
class EnginePlan:
    """How one model runs: ``instances`` engines, each with ``streams`` streams of ``threads`` threads.

    >>> EnginePlan(backend="auto", instances=1, threads=2, streams=1, hint="latency").cores
    2
    """

    backend: str
    instances: int
    threads: int
    streams: int
    hint: str
    precision: str | None = None
    source: str = "default"
    split_engines: int = 0  # engines of split_threads threads each, used while batches queue
    split_threads: int = 1

    @property
    def cores(self) -> int:
        return self.instances * self.threads * self.streams

    @property
    def slots(self) -> int:
        """Batches that may run at once on the instances (per-core engines add theirs)."""
        return self.instances * self.streams


def plan(
    budget: int,
    deploy: Deploy | None = None,
    *,
    instances: int | None = None,
    threads: int | None = None,
    streams: int | None = None,
    backend: str | None = None,
    split: bool | None = None,
) -> EnginePlan:
    """Resolve flags, deploy section and defaults into a plan that fits ``budget`` cores.

    ``split`` None splits the cores under load only in the default layout (no flags, no deploy
    section: those fix the layout on purpose); True splits any one-instance, one-stream plan.
    """
    if budget < 1:
        raise ResourceError(f"the core budget is {budget}", fix="set CPUAI_CORES to 1 or more")
    source = "deploy" if deploy is not None else "default"
    inst = instances or (deploy.instances if deploy else 1)
    strm = streams or (deploy.streams if deploy else 1)
    if inst * strm > budget:
        raise ResourceError(
            f"{inst} instance(s) x {strm} stream(s) need at least {inst * strm} cores "
            f"but this server may use {budget}",
            fix=f"use --instances {max(1, budget // strm)} or fewer (or raise CPUAI_CORES)",
        )
    fit = max(1, budget // (inst * strm))
    thr = threads or (deploy.threads if deploy else fit)
    if inst * strm * thr > budget:
        log.warning(
            "threads %d x streams %d x instances %d exceed the %d-core budget; using %d threads",
            thr,
            strm,
            inst,
            budget,
            fit,
        )
        thr = fit
    source = "flags" if (instances or threads or streams) else source
    wanted = split if split is not None else source == "default"
    split_engines = min(thr, MAX_SPLIT) if wanted and inst == 1 and strm == 1 and thr > 1 else 0
    return EnginePlan(
        split_engines=split_engines,
        split_threads=thr // split_engines if split_engines else 1,
        backend=backend or (deploy.backend if deploy else "auto"),
        instances=inst,
        threads=thr,
        streams=strm,
        hint=deploy.hint if deploy else ("throughput" if strm > 1 else "latency"),
        precision=deploy.precision if deploy else None,
        source=source,
    )


class CoreGate:
    """A server-wide pool of cores: a batch holds its engine's threads while it runs.

    Thread-safe: the idle fast path takes cores from a worker thread with ``try_acquire``, batch
    threads wait with ``acquire_blocking``, and ``acquire`` waits on the event loop (polling
    briefly, only when models contend for cores).
    """

    def __init__(self, cores: int) -> None:
        self.cores = cores
        self._free = cores
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)

    @property
    def free(self) -> int:
        return self._free

    def try_acquire(self, n: int) -> int:
        """Take ``n`` cores now if they are free; return how many were taken (0 if none)."""
        n = min(n, self.cores)
        with self._lock:
            if self._free >= n:
                self._free -= n
                return n
        return 0

    async def acquire(self, n: int) -> int:
        while True:
            held = self.try_acquire(n)
            if held:
                return held
            await asyncio.sleep(0.0005)

    def acquire_blocking(self, n: int) -> int:
        """Take ``n`` cores, waiting in this (non-loop) thread until they are free."""
        n = min(n, self.cores)
        with self._freed:
            while self._free < n:
                self._freed.wait()
            self._free -= n
        return n

    def release(self, n: int) -> None:
        with self._freed:
            self._free += n
            self._freed.notify_all()


@contextlib.contextmanager
def pinned(cpus: Sequence[int] | None) -> Iterator[None]:
    """Run the calling thread on ``cpus`` for the block, then where it ran before (None: no change).

    Only the calling thread moves: a one-thread ONNX Runtime/OpenVINO engine computes in it, so
    its batch stays on its core; an engine's own pool threads keep their placement.
    """
    if not cpus or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, cpus)
    except OSError:  # a CPU outside this process's cpuset: run unpinned rather than fail
        yield
        return
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
