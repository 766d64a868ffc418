"""``cpuai data``: write ready-made data sets (real digits as an image folder, synthetic CTR as CSV)."""

from __future__ import annotations

from pathlib import Path

import typer

data_app = typer.Typer(
    help="Write ready-made data sets: digits (real) and ctr (synthetic).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add the ``data`` verb group."""
    app.add_typer(data_app, name="data")


@data_app.command("digits")
def digits(
    out: Path = typer.Option(..., "--out", help="Folder to write train/val/test/<label>/<i>.png into."),
    size: int = typer.Option(32, "--size", help="Image side in pixels (the 8x8 digits are upscaled)."),
    rgb: bool = typer.Option(False, "--rgb", help="Write 3-channel RGB PNGs instead of gray."),
    seed: int = typer.Option(0, "--seed", help="Seed of the stratified 70/15/15 split."),
    json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Export scikit-learn's real handwritten digits (1797 images) as an image folder."""
    from cpuai.cli.output import console, print_json, table
    from cpuai.data.digits import export_digits

    result = export_digits(out, size=size, rgb=rgb, seed=seed)
    if json:
        print_json(
            {"root": str(result.root), "counts": result.counts, "size": result.size, "color": result.color}
        )
        return
    console.print(
        table(
            f"digits -> {result.root} ({result.color} {size}x{size})",
            ["split", "images"],
            [*result.counts.items(), ("total", sum(result.counts.values()))],
        )
    )


@data_app.command("ctr")
def ctr(
    out: Path = typer.Option(
        Path("ctr-synthetic.csv"), "--out", help="CSV file to write (a .json description goes beside it)."
    ),
    rows: int = typer.Option(20000, "--rows", help="Number of synthetic impressions."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generating model and the draws."),
    json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Write SYNTHETIC click-through data drawn from a known model with interactions (for Wide & Deep)."""
    from cpuai.cli.output import console, print_json
    from cpuai.data.ctr import write_ctr

    result = write_ctr(out, rows=rows, seed=seed)
    summary = {
        "csv": str(result.csv),
        "description": str(result.description),
        "rows": result.rows,
        "click_rate": round(result.click_rate, 4),
        "oracle_auc": round(result.oracle_auc, 4),
        "synthetic": True,
    }
    if json:
        print_json(summary)
        return
    console.print(
        f"wrote {result.rows} SYNTHETIC rows to {result.csv} (click rate {result.click_rate:.3f}); "
        f"the true model's AUC is {result.oracle_auc:.4f}; description in {result.description}"
    )


@data_app.command("docstrings")
def docstrings_cmd(
    out: Path = typer.Option(..., "--out", help="Text file to write, one docstring per line."),
    heldout: Path | None = typer.Option(
        None, "--heldout", help="Also write held-out docstrings (not in --out) here."
    ),
    heldout_count: int = typer.Option(200, "--heldout-count", help="How many held-out docstrings."),
    limit: int | None = typer.Option(
        None, "--limit", help="At most this many docstrings in --out (default: all)."
    ),
    json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Write Python's own docstrings (real text, first paragraphs) as a corpus for embeddings and search."""
    from cpuai.cli.output import console, print_json
    from cpuai.data.corpus import split_docstrings, write_lines

    corpus, held = split_docstrings(limit, heldout_count if heldout else 0)
    write_lines(corpus, out)
    if heldout:
        write_lines(held, heldout)
    summary = {
        "corpus": str(out),
        "texts": len(corpus),
        "heldout": str(heldout) if heldout else None,
        "heldout_texts": len(held),
    }
    if json:
        print_json(summary)
        return
    console.print(
        f"wrote {len(corpus)} docstrings to {out}"
        + (f" and {len(held)} held-out ones to {heldout}" if heldout else "")
    )
