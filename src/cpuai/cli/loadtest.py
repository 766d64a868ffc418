"""``cpuai loadtest``: a closed-loop load generator printing req/s and latency percentiles."""

from __future__ import annotations

from pathlib import Path

import typer

from cpuai.cli.output import console, print_json, table


def loadtest(
    url: str = typer.Argument(..., help="Endpoint to call, e.g. http://127.0.0.1:8080/service"),
    concurrency: int = typer.Option(
        8, "--concurrency", "-c", help="Clients, each with one request in flight."
    ),
    requests: int = typer.Option(1000, "--requests", "-n", help="Requests to send in total."),
    payload: Path | None = typer.Option(
        None, "--payload", help="Body file (.json sent as JSON, else raw bytes)."
    ),
    content_type: str | None = typer.Option(
        None, "--content-type", help="Override the payload's content type."
    ),
    method: str = typer.Option("POST", "--method", help="HTTP method (GET for health checks)."),
    token: str | None = typer.Option(None, "--token", envvar="CPUAI_SERVE_TOKEN", help="Bearer token."),
    duration: float = typer.Option(60.0, "--duration", help="Stop after this many seconds even if not done."),
    warmup: int = typer.Option(10, "--warmup", help="Requests sent first and not counted."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Send --requests requests from --concurrency clients and report req/s and p50/p90/p99 latency."""
    from cpuai.errors import ConfigError
    from cpuai.serve.loadtest import Payload, run

    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"URL {url!r} is not http(s)", fix="pass e.g. http://127.0.0.1:8080/service")
    body = (
        Payload.from_file(payload, content_type=content_type)
        if payload
        else Payload(content_type=content_type)
    )
    body.method = method.upper()
    if token:
        body.headers["authorization"] = f"Bearer {token}"
    result = run(url, body, concurrency=concurrency, requests=requests, duration=duration, warmup=warmup)
    if as_json:
        print_json(result.as_dict())
        return
    errors = ", ".join(f"{k}: {v}" for k, v in result.errors.items()) or "none"
    console.print(
        table(
            f"loadtest {url}",
            ["concurrency", "requests", "ok", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"],
            [
                [
                    result.concurrency,
                    result.requests,
                    result.ok,
                    result.rps,
                    result.p50_ms,
                    result.p90_ms,
                    result.p99_ms,
                    result.max_ms,
                ]
            ],
        )
    )
    console.print(f"errors: {errors}")


def register(app: typer.Typer) -> None:
    app.command("loadtest")(loadtest)
