"""``cpuai demo``: the main job, from the digits to a tuned INT8 model and a semantic search."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    workdir: Path = typer.Option(
        Path("demo-work"), "--workdir", help="Where every artifact of the demo goes."
    ),
    quick: bool = typer.Option(False, "--quick", help="Fewer epochs and trials, a smaller corpus (for CI)."),
    fresh: bool = typer.Option(False, "--fresh", help="Delete WORKDIR first and start clean."),
    json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Train, convert, quantize, bench and tune a digits CNN, then build a semantic search; print a summary.

    A second run in the same WORKDIR reuses every finished step (and resumes an interrupted training job).
    """
    from cpuai import demo as pipeline
    from cpuai.cli.output import console, err_console, print_json
    from cpuai.demo_summary import render

    say = err_console if json else console  # with --json, stdout holds only the JSON
    if fresh and workdir.exists():
        say.print(f"starting clean: removing {workdir}")
        shutil.rmtree(workdir)
    elif workdir.exists() and any(workdir.iterdir()):
        say.print(f"reusing what is already in {workdir} (pass --fresh to start clean)")
    settings = pipeline.DemoSettings.make(workdir=workdir, quick=quick)

    def echo(line: str) -> None:
        say.print(line, markup=False, highlight=False)

    summary = pipeline.run(settings, echo=echo)
    if json:
        print_json(summary)
    else:
        render(summary)
