"""The load generator's lean HTTP/1.1 connection: real sockets on loopback, good and bad servers."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from cpuai.serve.lean_client import encode_request
from cpuai.serve.loadtest import Payload, run


@contextmanager
def raw_server(behaviour: str) -> Iterator[tuple[str, list[bytes]]]:
    """A tiny socket server on loopback answering every request in the named (mis)behaviour."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    seen: list[bytes] = []
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        with conn:
            buf = b""
            while not stop.is_set():
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    head, rest = buf.split(b"\r\n\r\n", 1)
                    length = next(
                        (
                            int(h.split(b":")[1])
                            for h in head.split(b"\r\n")
                            if h.lower().startswith(b"content-length")
                        ),
                        0,
                    )
                    if len(rest) < length:
                        break
                    seen.append(head + b"\r\n\r\n" + rest[:length])
                    buf = rest[length:]
                    if behaviour == "close":
                        return  # hang up without answering
                    if behaviour == "garbage":
                        conn.sendall(b"this is not http\r\n\r\n")
                        return
                    if behaviour == "silent":
                        stop.wait(5)
                        return
                    status = b"404 Not Found" if behaviour == "404" else b"200 OK"
                    body = b'{"ok":true}'
                    # answer in two pieces, so the parser must join them
                    conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n" % len(body))
                    conn.sendall(b"Content-Type: application/json\r\n\r\n" + body)

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/v1/models/m/predict?x=1", seen
    finally:
        stop.set()
        listener.close()
        thread.join(2)


def test_encode_request_is_valid_http_with_length_and_host():
    raw = encode_request("http://h:81/a/b?q=1", "POST", b"xyz", {"content-type": "text/plain"})
    head, body = raw.split(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /a/b?q=1 HTTP/1.1"
    assert "Host: h:81" in lines and "Content-Length: 3" in lines and "content-type: text/plain" in lines
    assert body == b"xyz"
    get = encode_request("http://h", "GET", b"", {})
    assert get.startswith(b"GET / HTTP/1.1\r\n") and b"Content-Length" not in get


def test_keep_alive_connections_answer_every_request_and_send_each_body():
    with raw_server("ok") as (url, seen):
        bodies = [b'{"text": "a"}', b'{"text": "bb"}']
        result = run(url, Payload(bodies=bodies, content_type="application/json"), concurrency=3, requests=30)
        assert result.ok == 30 and result.errors == {}
        assert result.p50_ms <= result.p99_ms <= result.max_ms
        sent_bodies = [r.split(b"\r\n\r\n", 1)[1] for r in seen]
        assert sent_bodies.count(bodies[0]) == 15 and sent_bodies.count(bodies[1]) == 15


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [("404", "404"), ("close", "ConnectionLost"), ("garbage", "ConnectionLost")],
)
def test_a_misbehaving_server_is_counted_not_raised(behaviour, error):
    with raw_server(behaviour) as (url, _):
        result = run(url, Payload(body=b"{}"), concurrency=2, requests=6, duration=10, timeout=5)
        assert result.ok == 0 and result.errors == {error: 6}


def test_a_server_that_never_answers_times_out():
    with raw_server("silent") as (url, _):
        result = run(url, Payload(body=b"{}"), concurrency=1, requests=2, duration=10, timeout=0.3)
        assert result.errors == {"TimeoutError": 2}


def test_nothing_listening_is_counted_as_connection_lost():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    result = run(f"http://127.0.0.1:{port}/", Payload(body=b"x"), concurrency=2, requests=4, timeout=2)
    assert result.ok == 0 and result.errors == {"ConnectionLost": 4}


def test_the_event_loop_is_left_clean():
    with raw_server("ok") as (url, _):
        run(url, Payload(body=b"x"), concurrency=2, requests=4)
    asyncio.run(asyncio.sleep(0))  # a fresh loop still works after run() closed its own
