"""``cpuai serve``: online inference over KServe v2, TF-Serving and a plain endpoint (see docs/serving.md)."""

from __future__ import annotations

from pathlib import Path

import typer


def serve(
    source: Path = typer.Argument(
        ..., help="A model package, repo/<name>, or a repository repo/<name>/<version>/."
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (0.0.0.0 for every interface)."
    ),
    port: int = typer.Option(8080, "--port", help="TCP port."),
    max_batch: int = typer.Option(
        32, "--max-batch", envvar="CPUAI_MAX_BATCH", help="Most rows per engine batch."
    ),
    max_delay_ms: float = typer.Option(
        5.0,
        "--max-delay-ms",
        envvar="CPUAI_MAX_DELAY_MS",
        help="Longest wait for a fuller batch while engines are partly busy.",
    ),
    max_queue: int = typer.Option(256, "--max-queue", help="Requests that may wait per model before 503."),
    instances: int | None = typer.Option(
        None, "--instances", help="Engine instances per model (default: deploy section or 1)."
    ),
    threads: int | None = typer.Option(None, "--threads", help="Threads per engine stream."),
    streams: int | None = typer.Option(None, "--streams", help="Parallel streams per engine."),
    backend: str | None = typer.Option(None, "--backend", help="auto, onnxruntime, openvino or torch."),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="CPUAI_SERVE_TOKEN",
        help="Require 'Authorization: Bearer <token>' (health stays open).",
    ),
    max_body_mb: float = typer.Option(16.0, "--max-body-mb", help="Largest request body in MiB (413 above)."),
    poll: float | None = typer.Option(
        None, "--poll", help="Seconds between repository scans for new versions."
    ),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="Log one line per request."),
    drain: float = typer.Option(30.0, "--drain", help="Seconds to finish requests in flight on shutdown."),
    spin: bool | None = typer.Option(
        None,
        "--spin/--no-spin",
        help="ONNX Runtime threads spin-wait between runs (default: with one stream, as cpuai bench).",
    ),
    split: bool | None = typer.Option(
        None,
        "--split/--no-split",
        help="Under load, run batches on one engine per core; a lone request keeps every core "
        "(default: on unless --instances/--threads/--streams or a deploy section set the layout).",
    ),
) -> None:
    """Serve a model package or repository with dynamic batching on the cores this process may use."""
    from cpuai.hardware import core_budget
    from cpuai.serve import ServeConfig, create_app, run

    config = ServeConfig(
        max_batch=max_batch,
        max_delay_ms=max_delay_ms,
        max_queue=max_queue,
        instances=instances,
        threads=threads,
        streams=streams,
        backend=backend,
        token=token,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        poll_seconds=poll,
        access_log=access_log,
        drain_seconds=drain,
        spin=spin,
        split=split,
    )
    app = create_app(source, config)
    url = f"http://{host}:{port}"
    names = ", ".join(app.state.registry.names()) or "no models"
    say = typer.echo
    say(f"cpuai serve: {names} from {source} on {core_budget()} core(s)")
    if app.state.indexes:
        say(f"  indexes     {url}/v1/indexes/<name>/search ({', '.join(app.state.indexes)})")
    say(f"  KServe v2   {url}/v2/models/<name>/infer")
    say(f"  TF-Serving  {url}/v1/models/<name>:predict")
    say(
        f"  plain       {url}/v1/models/<name>/predict"
        + (f"  and  {url}/service" if "," not in names else "")
    )
    say(f"  metrics     {url}/metrics   docs {url}/docs")
    run(app, host=host, port=port, drain_seconds=drain)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
