"""``cpuai train``: image-classification and wide-deep training jobs, and ``--resume JOBDIR``.

A thin layer over ``cpuai.train``: options become a ``TrainSpec``; the job runs in the foreground
and writes JOBDIR (spec.yaml, train.log, metrics.jsonl, checkpoints, package/).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import typer

from cpuai.errors import JobError

train_app = typer.Typer(help="Train a model as a job: JOBDIR gets the log, metrics, checkpoints and package.")


def register(app: typer.Typer) -> None:
    """Add the ``train`` verb group."""
    app.add_typer(train_app, name="train")


class JobStopped(JobError):
    """Stopped on a signal after checkpointing; exits 128 + the signal number, like a killed process."""

    def __init__(self, signum: int, job: Path) -> None:
        self.exit_code = 128 + signum
        super().__init__(
            f"stopped by {signal.Signals(signum).name}: checkpoint written",
            fix=f"continue with: cpuai train --resume {job}",
        )


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _run(values: dict[str, Any] | None, *, resume: Path | None = None, json: bool = False) -> None:
    from cpuai.cli.output import console, print_json, table
    from cpuai.train.jobs import _NodeDone, resume_job, run_job
    from cpuai.train.loop import Interrupted
    from cpuai.train.spec import make_spec

    try:
        if resume is not None:
            package = resume_job(resume)
            out = resume
        else:
            assert values is not None
            spec = make_spec(**values)
            out = Path(spec.out)
            package = run_job(spec)
    except Interrupted as err:
        raise JobStopped(err.signum or signal.SIGTERM, out) from None
    except _NodeDone as done:
        typer.echo(done.message)
        return
    metrics = package.manifest.metrics
    if json:
        print_json({"job": str(out), "package": str(package.path), "metrics": metrics})
        return
    console.print(table(f"job {out}: package {package.path}", ["metric", "value"], sorted(metrics.items())))


def _common(
    data: str,
    out: Path,
    model: str | None,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    from_: str | None,
    precision: str,
    workers: int,
    nnodes: int,
    node_rank: int,
    master_addr: str,
    master_port: int,
    seed: int,
    patience: int,
    limit: int | None,
    threads: int | None,
    log_every: int,
    checkpoint_every: int,
    name: str | None,
) -> dict[str, Any]:
    return {
        "data": data,
        "out": str(out),
        "model": model,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "from": from_,
        "precision": precision,
        "workers": workers,
        "nnodes": nnodes,
        "node_rank": node_rank,
        "master_addr": master_addr,
        "master_port": master_port,
        "seed": seed,
        "patience": patience,
        "limit": limit,
        "threads": threads,
        "log_every": log_every,
        "checkpoint_every": checkpoint_every,
        "name": name,
    }


@train_app.callback(invoke_without_command=True)
def train_root(
    ctx: typer.Context,
    resume: Path | None = typer.Option(
        None, "--resume", help="Continue the job in JOBDIR from its last checkpoint."
    ),
    json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train a model as a job, or continue one with --resume JOBDIR."""
    if ctx.invoked_subcommand is not None:
        if resume is not None:
            from cpuai.errors import ConfigError

            raise ConfigError("--resume takes no recipe", fix=f"run 'cpuai train --resume {resume}' alone")
        return
    if resume is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    _run(None, resume=resume, json=json)


DATA_HELP = "Image folder: DIR/train|val|test/<label>/<image> (or DIR/<label>/<image>)."


@train_app.command("image-classification")
def image_classification(
    data: str = typer.Option(..., "--data", help=DATA_HELP),
    out: Path = typer.Option(..., "--out", help="Job directory to create."),
    model: str | None = typer.Option(None, "--model", help="smallcnn (default), resnet8 or resnet18."),
    epochs: int | None = typer.Option(None, "--epochs", help="Epochs (default 15)."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Global batch over all workers (default 64)."
    ),
    lr: float | None = typer.Option(None, "--lr", help="Peak AdamW learning rate (default 0.003)."),
    from_: str | None = typer.Option(
        None, "--from", help="Start from a package, job dir or checkpoint; replaces its head."
    ),
    precision: str = typer.Option(
        "auto", "--precision", help="auto (bf16 where the CPU has AMX/AVX512-BF16), fp32, bf16."
    ),
    size: int | None = typer.Option(
        None, "--size", help="Image side after resize (default: the images' own)."
    ),
    color: str = typer.Option("auto", "--color", help="auto, rgb or gray."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Random shifts during training."),
    hflip: bool = typer.Option(
        False, "--hflip", help="Also random horizontal flips (not for digits or text)."
    ),
    width: int | None = typer.Option(None, "--width", help="Base channel width of the model."),
    workers: int = typer.Option(1, "--workers", help="Data-parallel worker processes on this node (gloo)."),
    nnodes: int = typer.Option(1, "--nnodes", help="Machines in the job (each runs --workers)."),
    node_rank: int = typer.Option(0, "--node-rank", help="This machine's index, 0..nnodes-1."),
    master_addr: str = typer.Option("127.0.0.1", "--master-addr", help="Address of node 0 (multi-node)."),
    master_port: int = typer.Option(29511, "--master-port", help="Port on node 0 (multi-node)."),
    seed: int = typer.Option(0, "--seed", help="Seed for init, data order and augmentation."),
    patience: int = typer.Option(
        5, "--patience", help="Early stop after this many epochs without a better val score (0: never)."
    ),
    limit: int | None = typer.Option(None, "--limit", help="Train on a seeded subset of this many images."),
    threads: int | None = typer.Option(
        None, "--threads", help="Threads per worker (default: its share of the cores)."
    ),
    log_every: int = typer.Option(10, "--log-every", help="Steps between log lines."),
    checkpoint_every: int = typer.Option(
        0, "--checkpoint-every", help="Also checkpoint every N steps (0: each epoch)."
    ),
    name: str | None = typer.Option(None, "--name", help="Package name (default: the data folder's name)."),
    json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train an image classifier on an image folder; the package lands in OUT/package."""
    values = _common(
        data,
        out,
        model,
        epochs,
        batch_size,
        lr,
        from_,
        precision,
        workers,
        nnodes,
        node_rank,
        master_addr,
        master_port,
        seed,
        patience,
        limit,
        threads,
        log_every,
        checkpoint_every,
        name,
    )
    values.update(
        recipe="image-classification", size=size, color=color, augment=augment, hflip=hflip, width=width
    )
    _run(values, json=json)


@train_app.command("wide-deep")
def wide_deep(
    data: str = typer.Option(..., "--data", help="CSV file with a header line."),
    out: Path = typer.Option(..., "--out", help="Job directory to create."),
    numeric: str | None = typer.Option(
        None, "--numeric", help="Numeric columns, comma-separated (default: the CSV's .json)."
    ),
    categorical: str | None = typer.Option(
        None, "--categorical", help="Categorical columns, comma-separated."
    ),
    target: str | None = typer.Option(None, "--target", help="The 0/1 target column."),
    model: str | None = typer.Option(
        None, "--model", help="wide-deep (default) or wide (logistic baseline)."
    ),
    epochs: int | None = typer.Option(None, "--epochs", help="Epochs (default 8)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Global batch (default 128)."),
    lr: float | None = typer.Option(None, "--lr", help="Peak AdamW learning rate (default 0.02)."),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32 or bf16."),
    val_fraction: float = typer.Option(0.15, "--val-fraction", help="Rows held out for validation."),
    test_fraction: float = typer.Option(0.15, "--test-fraction", help="Rows held out for the test."),
    workers: int = typer.Option(1, "--workers", help="Data-parallel worker processes on this node (gloo)."),
    nnodes: int = typer.Option(1, "--nnodes", help="Machines in the job."),
    node_rank: int = typer.Option(0, "--node-rank", help="This machine's index."),
    master_addr: str = typer.Option("127.0.0.1", "--master-addr", help="Address of node 0."),
    master_port: int = typer.Option(29511, "--master-port", help="Port on node 0."),
    seed: int = typer.Option(0, "--seed", help="Seed for split, init and data order."),
    patience: int = typer.Option(3, "--patience", help="Early stop patience in epochs (0: never)."),
    limit: int | None = typer.Option(None, "--limit", help="Train on the first N training rows."),
    threads: int | None = typer.Option(None, "--threads", help="Threads per worker."),
    log_every: int = typer.Option(20, "--log-every", help="Steps between log lines."),
    checkpoint_every: int = typer.Option(0, "--checkpoint-every", help="Also checkpoint every N steps."),
    name: str | None = typer.Option(None, "--name", help="Package name (default: the CSV's name)."),
    json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train Wide & Deep (or the wide-only logistic baseline) on a CSV; reports AUC, log-loss, accuracy."""
    values = _common(
        data,
        out,
        model,
        epochs,
        batch_size,
        lr,
        None,
        precision,
        workers,
        nnodes,
        node_rank,
        master_addr,
        master_port,
        seed,
        patience,
        limit,
        threads,
        log_every,
        checkpoint_every,
        name,
    )
    values.update(
        recipe="wide-deep",
        numeric=_split(numeric),
        categorical=_split(categorical),
        target=target,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
    )
    _run(values, json=json)
