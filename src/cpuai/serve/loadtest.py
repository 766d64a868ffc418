"""A closed-loop HTTP load generator: ``concurrency`` clients each send a request, wait, and repeat.

Bounded in count (``requests``) and time (``duration``); reports req/s and latency percentiles.
Used by ``cpuai loadtest`` and by benchmarks/serve.py, so every server is measured the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cpuai.errors import ConfigError, DataError


@dataclass(kw_only=True)
class Payload:
    """What every request sends: a body (or ``bodies``, cycled), its content type and the HTTP method."""

    body: bytes = b""
    bodies: list[bytes] = field(default_factory=list)
    content_type: str | None = None
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | Path, *, content_type: str | None = None) -> Payload:
        """A payload from a file: ``.json`` is sent as JSON, anything else as raw bytes."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"payload file {path} does not exist", fix="check the --payload path")
        guessed = "application/json" if path.suffix == ".json" else "application/octet-stream"
        return cls(body=path.read_bytes(), content_type=content_type or guessed)


@dataclass
class LoadResult:
    """What a load test measured; latencies in milliseconds."""

    url: str
    concurrency: int
    requests: int
    ok: int
    errors: dict[str, int]
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(concurrency: int, requests: int, duration: float | None) -> None:
    if concurrency < 1 or concurrency > 4096:
        raise ConfigError(f"concurrency must be 1..4096, got {concurrency}", fix="pass --concurrency 8")
    if requests < 1:
        raise ConfigError(f"requests must be at least 1, got {requests}", fix="pass --requests 1000")
    if duration is not None and duration <= 0:
        raise ConfigError(f"duration must be positive, got {duration}", fix="pass --duration 30")


async def run_async(
    url: str,
    payload: Payload,
    *,
    concurrency: int = 8,
    requests: int = 1000,
    duration: float | None = 60.0,
    warmup: int = 0,
    timeout: float = 30.0,
) -> LoadResult:
    """Drive ``url`` closed-loop; stop after ``requests`` answers or ``duration`` seconds.

    Plain ``http://`` goes through ``LeanConnection`` (one per client, requests pre-encoded), so the
    generator costs little CPU beside the server it measures; ``https://`` goes through httpx.
    """
    _check(concurrency, requests, duration)
    headers = dict(payload.headers)
    if payload.content_type:
        headers["content-type"] = payload.content_type
    bodies = payload.bodies or [payload.body]
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    sent = [0]
    async with _senders(url, payload.method, bodies, headers, concurrency, timeout) as senders:

        async def once(send: _Send) -> None:
            which = sent[0] % len(bodies)
            sent[0] += 1
            start = time.perf_counter()
            try:
                status = await send(which)
            except Exception as err:  # a failed request is counted by its kind, never raised
                errors[type(err).__name__] += 1
                return
            if status < 400:
                latencies.append(time.perf_counter() - start)
            else:
                errors[str(status)] += 1

        for _ in range(warmup):
            await once(senders[0])
        latencies.clear()
        errors.clear()
        issued = 0
        deadline = None if duration is None else time.perf_counter() + duration

        async def worker(send: _Send) -> None:
            nonlocal issued
            while issued < requests and (deadline is None or time.perf_counter() < deadline):
                issued += 1
                await once(send)

        started = time.perf_counter()
        await asyncio.gather(*(worker(s) for s in senders))
        seconds = time.perf_counter() - started
    lat = np.asarray(latencies) * 1e3 if latencies else np.asarray([np.nan])
    done = len(latencies)
    return LoadResult(
        url=url,
        concurrency=concurrency,
        requests=done + sum(errors.values()),
        ok=done,
        errors=dict(errors),
        seconds=seconds,
        rps=done / seconds if seconds > 0 else 0.0,
        p50_ms=float(np.percentile(lat, 50)),
        p90_ms=float(np.percentile(lat, 90)),
        p99_ms=float(np.percentile(lat, 99)),
        mean_ms=float(np.mean(lat)),
        max_ms=float(np.max(lat)),
    )


_Send = Callable[[int], Awaitable[int]]  # body index -> status code


@contextlib.asynccontextmanager
async def _senders(
    url: str, method: str, bodies: list[bytes], headers: dict[str, str], count: int, timeout: float
) -> AsyncIterator[list[_Send]]:
    """``count`` senders, one connection each: lean HTTP/1.1 for http://, httpx for https://."""
    if url.startswith("http://"):
        from cpuai.serve.lean_client import LeanConnection, encode_request

        prepared = [encode_request(url, method, b, headers) for b in bodies]
        connections = [LeanConnection.for_url(url) for _ in range(count)]

        def lean(conn: LeanConnection) -> _Send:
            return lambda which: conn.send(prepared[which], timeout)

        try:
            yield [lean(c) for c in connections]
        finally:
            for c in connections:
                c.close()
        return
    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one log line per request would swamp the report
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

        async def send(which: int) -> int:
            r = await client.request(method, url, content=bodies[which], headers=headers)
            return r.status_code

        yield [send] * count


def run(url: str, payload: Payload, **kwargs: Any) -> LoadResult:
    """Synchronous wrapper around ``run_async`` (its own event loop)."""
    return asyncio.run(run_async(url, payload, **kwargs))
