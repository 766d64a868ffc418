"""A keep-alive HTTP/1.1 connection for the load generator: pre-encoded requests, httptools parsing.

A load generator shares the server's cores in most setups (always on a small machine), so every
microsecond it spends per request is taken from the server it measures. httpx costs 4-11 ms of CPU
per request here; this connection writes a request prepared once as bytes and parses the answer
with httptools (uvicorn's own C parser), a few tens of microseconds. Plain ``http://`` only;
``https`` stays on httpx (see ``cpuai.serve.loadtest``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from urllib.parse import urlsplit

import httptools


class ConnectionLost(Exception):
    """The server closed the connection before answering (or never accepted it)."""


def encode_request(url: str, method: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    """One request as the bytes sent on the wire, with Host, Content-Length and keep-alive."""
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method not in ("GET", "HEAD"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Protocol(asyncio.Protocol):
    """Feeds received bytes to httptools and resolves the waiting future with the status code."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as err:
            self._fail(ConnectionLost(f"unparsable response: {err}"))
            self.drop()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionLost(str(exc) if exc else "the server closed the connection"))

    # httptools callbacks
    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(self.parser.get_status_code())

    def drop(self) -> None:
        """Close the connection now; the next request opens a new one."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, err: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(err)


class LeanConnection:
    """One keep-alive connection sending prepared requests one at a time; reconnects when closed."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._protocol: _Protocol | None = None

    @classmethod
    def for_url(cls, url: str) -> LeanConnection:
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 80)

    async def send(self, request: bytes, timeout: float) -> int:
        """Send ``request`` and return the response's status code (``ConnectionLost``/``TimeoutError``)."""
        loop = asyncio.get_running_loop()
        if self._protocol is None or self._protocol.closed:
            try:
                _, protocol = await asyncio.wait_for(
                    loop.create_connection(_Protocol, self.host, self.port), timeout
                )
            except OSError as err:
                raise ConnectionLost(f"cannot connect to {self.host}:{self.port}: {err}") from None
            self._protocol = protocol
        protocol = self._protocol
        assert protocol.transport is not None
        waiter: asyncio.Future[int] = loop.create_future()
        protocol.waiter = waiter
        protocol.transport.write(request)
        timer = loop.call_later(timeout, _expire, waiter, protocol)
        try:
            return await waiter
        finally:
            timer.cancel()

    def close(self) -> None:
        if self._protocol is not None:
            self._protocol.drop()
        self._protocol = None


def _expire(waiter: asyncio.Future[int], protocol: _Protocol) -> None:
    """A request past its timeout: fail it and drop the connection (its answer may still come)."""
    if not waiter.done():
        waiter.set_exception(TimeoutError("no answer within the timeout"))
        protocol.drop()
