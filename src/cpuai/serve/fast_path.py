"""The plain endpoint's hot path as a bare ASGI layer, in front of FastAPI's router.

On a small machine the server's Python time per request is taken from the engine's cores: FastAPI's
routing, dependency solving and response classes cost about half a millisecond a request here,
as much as tokenising and pooling together. ``PlainFastPath`` answers the common plain requests
(``POST|PUT /service`` and ``/v1/models/{name}/predict`` with a raw, JSON or multipart body)
itself, with the same parsing, answers and errors as the FastAPI route (both call
``protocols.plain``). Everything else, unexpected query parameters included, goes on to FastAPI. It
sits inside ``OperationsMiddleware``, so request ids, the token, the body limit, metrics and the
access log apply to it as to every route.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from cpuai.errors import CpuaiError
from cpuai.serve.errors import error_body, error_reply
from cpuai.serve.registry import Registry

log = logging.getLogger("cpuai.serve")
PREFIX, SUFFIX = "/v1/models/", "/predict"
DEFAULT_TOP_K, MAX_TOP_K = 5, 1000  # the FastAPI route's Query(5, ge=1, le=1000)
JSON_HEADERS = [(b"content-type", b"application/json")]


def route(path: str) -> str | None:
    """``""`` for /service, the model name for /v1/models/{name}/predict, None for any other path."""
    if path == "/service":
        return ""
    if path.startswith(PREFIX) and path.endswith(SUFFIX):
        name = path[len(PREFIX) : -len(SUFFIX)]
        if name and "/" not in name:
            return name
    return None


def top_k_of(query: bytes) -> int | None:
    """The request's top_k when the query is empty or only a valid top_k; None lets FastAPI decide."""
    if not query:
        return DEFAULT_TOP_K
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    if len(pairs) != 1 or pairs[0][0] != "top_k" or not pairs[0][1].isdigit():
        return None
    value = int(pairs[0][1])
    return value if 1 <= value <= MAX_TOP_K else None


class PlainFastPath:
    """Answers plain raw/JSON requests without FastAPI's router; passes every other request on."""

    def __init__(self, app: ASGIApp, *, registry: Registry) -> None:
        self.app = app
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT"):
            await self.app(scope, receive, send)
            return
        name = route(scope["path"])
        top_k = top_k_of(scope.get("query_string", b"")) if name is not None else None
        ctype = ""
        for key, value in scope["headers"]:
            if key == b"content-type":
                ctype = value.decode("latin-1")
                break
        if name is None or top_k is None:
            await self.app(scope, receive, send)
            return
        extra: list[tuple[bytes, bytes]] = []
        try:
            status, body = 200, await self._answer(scope, receive, name, ctype, top_k)
        except CpuaiError as exc:
            status, body, extra = error_reply(exc)
            if status >= 500:
                log.warning("%s: %s", type(exc).__name__, exc)
        except _Disconnected:
            return
        except Exception as exc:  # a bug must still answer in the API's error shape
            log.exception("internal error on %s", scope["path"])
            status, body = 500, error_body(f"internal error: {type(exc).__name__}: {exc}")
        headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope, receive: Receive, name: str, ctype: str, top_k: int) -> bytes:
        from cpuai.serve.protocols.plain import answer, items_from_body

        state: dict[str, Any] = scope.setdefault("state", {})
        if name:
            state["cpuai"] = (name, "plain")  # tagged before lookup, so unknown names are counted too
            model = self.registry.get(name, None)
        else:
            model = self.registry.only()
            state["cpuai"] = (model.name, "plain")
        items, many = items_from_body(await _read_body(receive), ctype, model)
        out = await answer(model, items, many, ctype, top_k)
        return orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY)


class _Disconnected(Exception):
    """The client went away before its body arrived; there is nobody to answer."""


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
