"""``cpuai evaluate PKG --data DIR``: task metrics of a package through cpuai.runtime (FP32 or INT8)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` verb."""
    app.command("evaluate")(evaluate)


def evaluate(
    package: Path = typer.Argument(..., help="Model package directory."),
    data: Path = typer.Option(
        ..., "--data", help="Image folder (DIR/<label>/..., or its test split) or CSV."
    ),
    backend: str = typer.Option("auto", "--backend", help="auto, onnxruntime, openvino or torch."),
    split: str | None = typer.Option(None, "--split", help="Image folder split (default: test if present)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images or rows per inference batch."),
    threads: int | None = typer.Option(None, "--threads", help="Engine threads (default: all usable cores)."),
    plot: Path | None = typer.Option(None, "--plot", help="Write the confusion matrix as this PNG."),
    mistakes: int = typer.Option(10, "--mistakes", help="How many of the hardest mistakes to list."),
    json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
) -> None:
    """Accuracy (top-1/top-5, per-class precision/recall, confusion matrix, mistakes) or AUC/log-loss."""
    from cpuai.cli.output import console, print_json, table
    from cpuai.evaluate import evaluate as run
    from cpuai.evaluate import plot_confusion

    if plot is not None and plot.suffix.lower() != ".png":
        from cpuai.errors import ConfigError

        raise ConfigError(f"--plot {plot} does not end in .png", fix="name the plot like confusion.png")
    result = run(
        package, data, backend=backend, batch_size=batch_size, threads=threads, split=split, mistakes=mistakes
    )
    if plot is not None:
        plot_confusion(result, plot)
    if json:
        out = result.to_dict()
        if plot is not None:
            out["plot"] = str(plot)
        print_json(out)
        return
    console.print(
        table(
            f"{result.package} on {result.data} ({result.count} items, {result.backend}/{result.precision})",
            ["metric", "value"],
            list(result.metrics.items()),
        )
    )
    if result.per_class:
        console.print(
            table(
                "per class",
                ["label", "precision", "recall", "support"],
                [(c["label"], c["precision"], c["recall"], c["support"]) for c in result.per_class],
            )
        )
    if result.confusion:
        labels = result.labels or [str(i) for i in range(len(result.confusion))]
        console.print(
            table(
                "confusion matrix (rows actual, columns predicted)",
                ["actual", *labels],
                [(labels[i], *row) for i, row in enumerate(result.confusion)],
            )
        )
    if result.mistakes:
        console.print(
            table(
                "hardest mistakes",
                ["file", "actual", "predicted", "confidence"],
                [(m["file"], m["actual"], m["predicted"], m["confidence"]) for m in result.mistakes],
            )
        )
    if result.skipped:
        console.print(f"skipped {len(result.skipped)} unreadable image(s)")
    if plot is not None:
        console.print(f"confusion matrix written to {plot}")
