"""``cpuai jobs list|show|logs``: read training job directories (state, metrics, log)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

jobs_app = typer.Typer(
    help="Read training job directories: list, show, logs [--follow].", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add the ``jobs`` verb group."""
    app.add_typer(jobs_app, name="jobs")


def _summary(path: Path) -> dict:
    from cpuai.train.jobdir import JobDir

    job = JobDir.open(path)
    spec = job.spec()
    epochs = [m for m in job.metrics() if m.get("kind") == "epoch"]
    steps = [m for m in job.metrics() if m.get("kind") == "step"]
    status = job.status()
    return {
        "job": str(job.path),
        "state": job.state(),
        "recipe": spec.recipe,
        "model": spec.model,
        "data": spec.data,
        "workers": spec.world_size,
        "epoch": epochs[-1]["epoch"] if epochs else 0,
        "epochs": spec.epochs,
        "step": steps[-1]["step"] if steps else 0,
        "last_epoch": epochs[-1] if epochs else None,
        "examples_per_sec": steps[-1]["examples_per_sec"] if steps else None,
        "checkpoint": str(job.checkpoint_file) if job.checkpoint_file.exists() else None,
        "package": str(job.package_dir) if job.package_dir.is_dir() else None,
        "error": status.get("error"),
    }


@jobs_app.command("list")
def list_jobs(
    root: Path = typer.Argument(Path("."), help="Folder holding job directories (searched two levels down)."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the training jobs under ROOT, newest first."""
    from cpuai.cli.output import console, print_json, table
    from cpuai.train.jobdir import find_jobs

    rows = [_summary(j.path) for j in find_jobs(root)]
    if json:
        print_json(rows)
        return
    if not rows:
        console.print(f"no training jobs under {root}")
        return
    console.print(
        table(
            None,
            ["job", "state", "recipe", "model", "epoch", "val"],
            [
                (
                    r["job"],
                    r["state"],
                    r["recipe"],
                    r["model"],
                    f"{r['epoch']}/{r['epochs']}",
                    _val(r["last_epoch"]),
                )
                for r in rows
            ],
        )
    )


def _val(record: dict | None) -> str:
    if not record:
        return "-"
    return ", ".join(
        f"{k[4:]} {v:.4f}" for k, v in record.items() if k.startswith("val_") and k != "val_loss"
    )


@jobs_app.command("show")
def show(
    job: Path = typer.Argument(..., help="A job directory."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one job: state, spec, progress, last validation scores, checkpoint and package."""
    from cpuai.cli.output import console, print_json, table
    from cpuai.train.jobdir import JobDir

    summary = _summary(job)
    if json:
        summary["spec"] = JobDir(job).spec().model_dump(mode="json", by_alias=True)
        print_json(summary)
        return
    rows = [(k, v if not isinstance(v, dict) else _val(v)) for k, v in summary.items()]
    console.print(table(f"job {job}", ["field", "value"], rows))


@jobs_app.command("logs")
def logs(
    job: Path = typer.Argument(..., help="A job directory."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines until the job stops."),
    tail: int | None = typer.Option(None, "--tail", help="Only the last N lines."),
) -> None:
    """Print the job's train.log (with --follow, like tail -f, until the job is no longer running)."""
    from cpuai.train.jobdir import JobDir

    jd = JobDir.open(job)
    path = jd.log_file
    while follow and not path.exists() and jd.state() in ("created", "running"):
        time.sleep(0.2)
    if not path.exists():
        typer.echo(f"{job}: no train.log yet")
        return
    with path.open() as f:
        lines = f.readlines()
        for line in lines[-tail:] if tail else lines:
            typer.echo(line.rstrip("\n"))
        while follow:
            line = f.readline()
            if line:
                typer.echo(line.rstrip("\n"))
                continue
            if jd.state() not in ("created", "running"):
                for rest in f.readlines():
                    typer.echo(rest.rstrip("\n"))
                break
            time.sleep(0.2)
