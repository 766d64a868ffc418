"""``cpuai convert SRC --to onnx|openvino --out DIR``: a thin layer over ``cpuai.convert.convert``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``convert`` verb."""
    app.command("convert")(convert)


def convert(
    src: str = typer.Argument(
        ...,
        help="A package, job dir, .pt (TorchScript or training checkpoint), .onnx/.keras file, SavedModel "
        "or module.path:factory.",
    ),
    to: str = typer.Option(..., "--to", help="Target format: onnx or openvino."),
    out: Path = typer.Option(..., "--out", help="Directory for the converted package."),
    precision: str = typer.Option(
        "fp32", "--precision", help="fp32, fp16 (stored weights) or bf16 (OpenVINO)."
    ),
    input_shape: list[str] = typer.Option([], "--input-shape", help="NAME:1,3,224,224 (repeat per input)."),
    tolerance: float | None = typer.Option(None, "--tolerance", help="Max relative error accepted."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (17 or newer)."),
    exporter: str = typer.Option("torchscript", "--exporter", help="torchscript (default) or dynamo."),
    name: str | None = typer.Option(None, "--name", help="Package name (default: the source's)."),
    labels: Path | None = typer.Option(
        None, "--labels", help="Class names, one a line (for a checkpoint whose data folder is gone)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Convert a model to an ONNX or OpenVINO IR package; refuses if the result diverges from the source."""
    from cpuai import convert as conv
    from cpuai.cli.output import console, print_json, table

    shapes = conv.parse_input_shapes(input_shape) if input_shape else None
    extra = {"labels": _read_labels(labels)} if labels is not None else None
    package = conv.convert(
        src,
        to=to,
        out=out,
        precision=precision,
        input_shapes=shapes,
        tolerance=tolerance,
        opset=opset,
        exporter=exporter,
        name=name,
        manifest=extra,
    )
    m = package.manifest
    check = m.lineage[-1].results
    if json_out:
        print_json(
            {
                "package": str(package.path),
                "format": m.format,
                "precision": m.precision,
                "inputs": [i.model_dump() for i in m.inputs],
                "outputs": [o.model_dump() for o in m.outputs],
                **check,
            }
        )
        return
    console.print(f"wrote {package.path} ({m.format}, {m.precision}, {package.size_bytes() / 1e6:.2f} MB)")
    console.print(
        table(
            None,
            ["tensor", "dtype", "shape"],
            [(f"in  {t.name}", t.dtype, t.shape) for t in m.inputs]
            + [(f"out {t.name}", t.dtype, t.shape) for t in m.outputs],
        )
    )
    console.print(
        f"agreement with the source on a batch of {check['checked_batch']}: max abs error "
        f"{check['max_abs_error']:.3g}, max rel error {check['max_rel_error']:.3g} "
        f"(tolerance {check['tolerance']:g})"
    )


def _read_labels(path: Path) -> list[str]:
    """Non-empty lines of a labels file; ConfigError when it is missing or empty."""
    from cpuai.errors import ConfigError

    try:
        labels = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as err:
        raise ConfigError(
            f"--labels {path} cannot be read ({err.strerror})", fix="give a text file"
        ) from None
    if not labels:
        raise ConfigError(f"--labels {path} has no class names", fix="write one class name a line")
    return labels
