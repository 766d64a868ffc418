"""Serving errors and the HTTP status each one maps to, so every route answers ``{"error": "..."}``.

These extend the shared hierarchy in ``cpuai.errors``; ``status_for`` is the single place that
turns an exception into a status code (4xx for the caller's mistakes, 5xx for ours).
"""

from __future__ import annotations

import orjson

from cpuai.errors import (
    ConfigError,
    CpuaiError,
    DataError,
    EngineError,
    InvalidInput,
    ModelError,
    ResourceError,
)


class NotFound(ModelError):
    """An unknown model, version or route (404)."""


class NotReady(ModelError):
    """The model exists but is loading, unloading or failed to load (503)."""


class PayloadTooLarge(InvalidInput):
    """The request body is larger than the server's limit (413)."""


class Unauthorized(CpuaiError):
    """A missing or wrong bearer token (401)."""


class QueueFull(ResourceError):
    """The model's request queue is full; the client should retry later (503 + Retry-After)."""

    retry_after = 1


class HandlerFailed(EngineError):
    """A custom handler raised while running a batch (500 for that batch's requests only)."""


def status_for(exc: BaseException) -> int:
    """The HTTP status for an exception raised while serving a request."""
    order: list[tuple[type[BaseException], int]] = [
        (Unauthorized, 401),
        (NotFound, 404),
        (PayloadTooLarge, 413),
        (QueueFull, 503),
        (NotReady, 503),
        (InvalidInput, 400),
        (ConfigError, 400),
        (DataError, 400),
        (ResourceError, 503),
        (EngineError, 500),
        (ModelError, 500),
    ]
    for cls, status in order:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(message: str) -> bytes:
    """The one error shape of the API."""
    return orjson.dumps({"error": message})


def error_reply(exc: CpuaiError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Status, body and extra headers answering ``exc`` (``Retry-After`` when the queue is full)."""
    extra = [(b"retry-after", str(QueueFull.retry_after).encode())] if isinstance(exc, QueueFull) else []
    return status_for(exc), error_body(str(exc)), extra
