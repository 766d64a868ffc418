"""Running the app on uvicorn: in the foreground (``cpuai serve``) or in a thread (tests, benchmarks).

Shutdown is graceful: uvicorn stops accepting connections and waits up to ``drain_seconds`` for
requests in flight; then the lifespan drains every model's queue and closes its engines.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from cpuai.errors import ConfigError, ResourceError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def uvicorn_config(app: Any, host: str, port: int, drain_seconds: float = 30.0) -> Any:
    import uvicorn

    from cpuai.serve.http_protocol import OneWriteHttpTools

    if not (0 <= port <= 65535):
        raise ConfigError(f"port {port} is out of range", fix="use a port between 1 and 65535")
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=int(drain_seconds),
        lifespan="on",
        http=OneWriteHttpTools,  # httptools (the C parser: a fraction of h11's CPU), one write a response
        loop="uvloop",
        timeout_keep_alive=30,
        backlog=2048,
    )


class _QuietStartupFailure(logging.Filter):
    """Drop uvicorn's lifespan traceback when start-up failed on a user error (shown on one line instead)."""

    def __init__(self, app: Any) -> None:
        super().__init__()
        self.app = app

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(getattr(self.app, "state", None), "startup_error", None) is None:
            return True
        text = record.getMessage()
        return not (text.startswith("Traceback") or "startup failed" in text)


def run(app: Any, *, host: str = "127.0.0.1", port: int = 8080, drain_seconds: float = 30.0) -> None:
    """Serve in the foreground until SIGINT/SIGTERM, then drain; SIGTERM after a clean drain exits 0."""
    import signal

    import uvicorn

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            if sig == signal.SIGTERM:  # uvicorn re-raises captured signals; a drained SIGTERM is success
                self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]

    server = _Server(uvicorn_config(app, host, port, drain_seconds))
    quiet = _QuietStartupFailure(app)
    logging.getLogger("uvicorn.error").addFilter(quiet)
    try:
        server.run()
    except SystemExit:  # uvicorn exits with 3 when start-up fails
        if getattr(getattr(app, "state", None), "startup_error", None) is None:
            raise
    except OSError as err:
        raise ResourceError(f"cannot listen on {host}:{port}: {err}", fix="choose another --port") from None
    finally:
        logging.getLogger("uvicorn.error").removeFilter(quiet)
    error = getattr(getattr(app, "state", None), "startup_error", None)
    if error is not None:
        raise error
    if not server.started:
        raise ResourceError(
            f"the server did not start on {host}:{port}", fix="check the log above; try another --port"
        )


class ServerThread:
    """Run an app on a loopback port in a background thread: ``with ServerThread(app) as url: ...``."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        drain_seconds: float = 10.0,
        start_timeout: float = 60.0,
    ) -> None:
        import uvicorn

        self.host, self.port = host, port or free_port(host)
        self.server = uvicorn.Server(uvicorn_config(app, self.host, self.port, drain_seconds))
        self.thread = threading.Thread(target=self.server.run, name="cpuai-serve", daemon=True)
        self.start_timeout = start_timeout

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise ResourceError(f"the server on {self.url} stopped during start-up", fix="see the log")
            if time.monotonic() > deadline:
                raise ResourceError(
                    f"the server on {self.url} did not start in {self.start_timeout} s", fix="see the log"
                )
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        """Graceful stop: finish requests in flight, then return."""
        self.server.should_exit = True
        self.thread.join(timeout=60)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
