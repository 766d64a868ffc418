"""The ASGI app: protocol routers, one JSON error shape, and the operations middleware.

``create_app(source, config)`` builds a FastAPI app serving a package or repository. The
middleware gives every request an id (``X-Request-ID``, echoed back), enforces the body limit
(413) and bearer token (401; health stays open), writes the access log line and records
per-model request metrics. Every error, from a route, a validator or a wrong URL, is
``{"error": "..."}`` with a 4xx/5xx status; ``QueueFull`` adds ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import itertools
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cpuai.errors import CpuaiError
from cpuai.hardware import core_budget
from cpuai.serve.budget import CoreGate
from cpuai.serve.config import ServeConfig
from cpuai.serve.errors import PayloadTooLarge, error_body, error_reply
from cpuai.serve.fast_path import PlainFastPath
from cpuai.serve.metrics import ServerMetrics
from cpuai.serve.model import Shared
from cpuai.serve.protocols import kserve, plain, tfserving
from cpuai.serve.registry import Registry

log = logging.getLogger("cpuai.serve")
access = logging.getLogger("cpuai.serve.access")
OPEN_PATHS = ("/v2/health/live", "/v2/health/ready")
#: Request ids a client did not give: this process's random prefix and a count, as unique as a
#: uuid4 within the server and without a system call for random bytes on every request.
_ID_PREFIX, _ID_COUNT = os.urandom(8).hex(), itertools.count()
INDEX_SETTINGS = "index.json"  # what marks a cpuai vector index directory


class OperationsMiddleware:
    """Request id, body limit, bearer token, access log and request metrics as one ASGI layer."""

    def __init__(self, app: ASGIApp, *, config: ServeConfig, metrics: ServerMetrics) -> None:
        self.app = app
        self.config = config
        self.metrics = metrics
        self.token = f"Bearer {config.token}".encode() if config.token else None

    async def _reject(
        self, send: Send, status: int, message: str, rid: str, extra: list | None = None
    ) -> None:
        body = error_body(message)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", rid.encode()),
            *(extra or []),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = dict(scope["headers"])
        asked = headers.get(b"x-request-id", b"").decode("latin-1")[:128]
        rid = asked or f"{_ID_PREFIX}{next(_ID_COUNT):016x}"
        scope["cpuai_request_id"] = rid
        path = scope["path"]
        status_seen = [0]

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_seen[0] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            if self.token is not None and path not in OPEN_PATHS:
                given = headers.get(b"authorization", b"")
                if not hmac.compare_digest(given, self.token):
                    status_seen[0] = 401
                    what = "a wrong bearer token" if given else "no bearer token"
                    await self._reject(
                        send,
                        401,
                        f"the request has {what}; this server needs 'Authorization: Bearer <token>'",
                        rid,
                        [(b"www-authenticate", b"Bearer")],
                    )
                    return
            limit = self.config.max_body_bytes
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                status_seen[0] = 413
                await self._reject(
                    send,
                    413,
                    f"the request body has {int(length)} bytes, more than the {limit}-byte limit",
                    rid,
                )
                return
            received = [0]

            async def receive_limited() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    received[0] += len(message.get("body", b""))
                    if received[0] > limit:
                        raise PayloadTooLarge(
                            f"the request body is over the {limit}-byte limit",
                            fix="send a smaller body or raise --max-body",
                        )
                return message

            await self.app(scope, receive_limited, send_wrapped)
        finally:
            took = time.perf_counter() - start
            tagged = scope.get("state", {}).get("cpuai")
            if tagged is None and path.startswith("/v1/indexes/"):
                tagged = (path.split("/")[3], "vectors")
            if tagged is not None:
                model, protocol = tagged
                self.metrics.requests.labels(model, protocol, str(status_seen[0])).inc()
                self.metrics.latency.labels(model, protocol).observe(took)
            if self.config.access_log:
                client = scope.get("client") or ("-", 0)
                access.info(
                    '%s %s "%s %s" %d %.2fms',
                    client[0],
                    rid,
                    scope["method"],
                    path,
                    status_seen[0],
                    took * 1e3,
                )


class ServeApp(FastAPI):
    """FastAPI with the operations layer and the plain fast path in front of its own middleware.

    HTTP requests enter ``front`` (``OperationsMiddleware`` around ``PlainFastPath``); what the fast
    path does not answer goes on to FastAPI as usual. The plain requests, the bulk of a serving
    load, so skip FastAPI's own layers (telemetry, body limit, error middleware, each a wrapper
    around ``send``) that they do not use: the fast path answers its own errors.
    """

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is not None and scope["type"] == "http":
            await self.front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def behind_front(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI itself, for the requests ``front`` passes on."""
        await super().__call__(scope, receive, send)


def _error_response(exc: CpuaiError) -> Response:
    status, body, extra = error_reply(exc)
    if status >= 500:
        log.warning("%s: %s", type(exc).__name__, exc)
    headers = {k.decode(): v.decode() for k, v in extra}
    return Response(body, status_code=status, media_type="application/json", headers=headers or None)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(CpuaiError)
    async def _cpuai(request: Request, exc: CpuaiError) -> Response:
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        msg = f"{where} is invalid (got {first.get('input')!r}): {first.get('msg', 'bad value')}"
        return Response(error_body(msg), status_code=400, media_type="application/json")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}; see /docs for the API"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs for the API"
        return Response(
            error_body(message),
            status_code=exc.status_code,
            media_type="application/json",
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s", request.url.path)
        return Response(
            error_body(f"internal error: {type(exc).__name__}: {exc}"),
            status_code=500,
            media_type="application/json",
        )


def create_app(
    source: str | Path, config: ServeConfig | None = None, *, indexes: dict[str, Any] | None = None
) -> ServeApp:
    """A FastAPI app serving the package or repository at ``source``; models load at startup."""
    config = config or ServeConfig()
    budget = config.cores or core_budget()
    metrics = ServerMetrics()
    workers = config.preprocess_workers or max(1, min(4, budget))
    pool = ThreadPoolExecutor(workers, thread_name_prefix="cpuai-preprocess")
    shared = Shared(config=config, gate=CoreGate(budget), pool=pool, metrics=metrics, budget=budget)
    if indexes is None:
        indexes = find_indexes(source)
    registry = Registry(source, shared, allow_empty=bool(indexes))
    index_router = _index_router(indexes, budget) if indexes else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        shared.gate = CoreGate(budget)
        try:
            await registry.load_all()
        except CpuaiError as err:  # reported on one line by server.run, not as a lifespan traceback
            app.state.startup_error = err
            raise
        if threading.current_thread() is threading.main_thread():  # a process that only serves
            # Everything loaded so far (libraries, engines, tokenizers) lives as long as the
            # server: out of the collector's reach, a full collection takes ~0 ms instead of ~40.
            gc.freeze()
        poller = None
        if config.poll_seconds:
            poller = asyncio.get_running_loop().create_task(_poll(registry, config.poll_seconds))
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            await registry.close()
            if index_router is not None and hasattr(index_router, "state"):
                await asyncio.get_running_loop().run_in_executor(None, index_router.state.close)
            pool.shutdown(wait=False)

    app = ServeApp(
        title="cpuai serve",
        version="0.1.0",
        lifespan=lifespan,
        description="KServe v2, TF-Serving and plain task endpoints over cpuai model packages.",
    )
    app.state.registry = registry
    app.state.startup_error = None
    app.state.metrics = metrics
    app.state.config = config
    _install_errors(app)
    app.include_router(kserve.router)
    app.include_router(tfserving.router)
    app.include_router(plain.router)

    @app.get("/metrics", tags=["operations"])
    async def prometheus() -> Response:
        for name, model in registry.models.items():
            metrics.queue_depth.labels(name).set(model.queue.depth)
            metrics.in_flight.labels(name).set(model.queue.in_flight)
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    app.state.indexes = sorted(indexes or {})
    if index_router is not None:
        app.include_router(index_router)
    app.front = OperationsMiddleware(
        PlainFastPath(app.behind_front, registry=registry), config=config, metrics=metrics
    )
    return app


def find_indexes(source: str | Path) -> dict[str, Path]:
    """Vector index directories (holding ``index.json``) in a served directory, by directory name."""
    root = Path(source)
    if (root / INDEX_SETTINGS).is_file():
        return {root.name: root}
    if not root.is_dir() or (root / "model.yaml").exists():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and (p / INDEX_SETTINGS).is_file()}


def _index_router(indexes: dict[str, Any], budget: int) -> Any:
    """``cpuai.vectors.routes.make_router`` for /v1/indexes/{name}/search|add|delete (None if unavailable)."""
    try:
        from cpuai.vectors.routes import make_router
    except ImportError as err:
        log.warning("vector indexes found but cpuai.vectors cannot be imported (%s); not serving them", err)
        return None
    return make_router(indexes, threads=budget)


async def _poll(registry: Registry, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await registry.poll()
        except Exception:  # keep polling; one bad version must not stop hot reload
            log.exception("polling the repository failed")
