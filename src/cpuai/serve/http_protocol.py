"""uvicorn's httptools protocol, sending a response's head and body in one system call.

uvicorn writes the status line and headers on ``http.response.start`` and the body on
``http.response.body``: two ``send`` calls on the socket and two TCP segments for every small
JSON answer. On the server's event loop those writes were the largest Python-side cost of a
request (a quarter of the loop thread's GIL time serving MiniLM at concurrency 32, py-spy
``--gil``). ``OneWriteHttpTools`` hands uvicorn a transport that holds a write back until the next
one and sends both together; a lone write (a ``100 Continue``, the last chunk of a stream) goes out
when the loop next turns, so nothing waits longer than that, and order is kept.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _PairedWrites:
    """A transport writing in pairs: the first write waits for the second, or for the loop's next turn."""

    __slots__ = ("_transport", "_loop", "_held")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is None:
            self._held = bytes(data)
            self._loop.call_soon(self._flush)
            return
        self._held = None
        self._transport.write(held + data)

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # everything else is the real transport's
        return getattr(self._transport, name)


class OneWriteHttpTools(HttpToolsProtocol):
    """``HttpToolsProtocol`` on a transport that sends a response's head and body together."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_PairedWrites(transport, self.loop))  # type: ignore[arg-type]
