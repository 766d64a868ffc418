"""``cpuai ml``: run scikit-learn scripts accelerated by scikit-learn-intelex, calibrate, and benchmark."""

from __future__ import annotations

from pathlib import Path

import typer

ml_app = typer.Typer(
    help="Accelerated scikit-learn (scikit-learn-intelex) with honest reports.", no_args_is_help=True
)


def _wide_console(stderr: bool):  # type: ignore[no-untyped-def]
    """A rich console that does not wrap wide tables at 80 columns when output is piped."""
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, width=180)
    return console


@ml_app.command(
    "run",
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
    },
)
def run_command(
    script: Path = typer.Argument(..., help="The Python script to run.", show_default=False),
    args: list[str] = typer.Argument(None, help="Arguments passed to the script.", show_default=False),
    policy: str = typer.Option(
        "measured", "--policy", help="measured: only what calibration found faster; all."
    ),
    report: Path = typer.Option(None, "--report", help="Also write the report as JSON to this file."),
    echo: bool = typer.Option(False, "--echo", help="Also print sklearnex's own log lines."),
) -> None:
    """Run SCRIPT with scikit-learn patched by sklearnex; print what ran accelerated (to stderr)."""
    import orjson

    from cpuai.ml.run import ScriptExit, run_script

    result = run_script(script, list(args or []), policy=policy, echo=echo)
    console = _wide_console(stderr=True)
    if result.report is None:
        console.print(f"cpuai ml: the script exited with code {result.exit_code} before a report was written")
    else:
        result.report.render(console)
        if report is not None:
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_bytes(orjson.dumps(result.report.to_dict(), option=orjson.OPT_INDENT_2))
    if result.exit_code != 0:
        # main() turns a CpuaiError into its exit code: the script's own code passes through
        raise ScriptExit(script, result.exit_code)


@ml_app.command("calibrate")
def calibrate_command(
    force: bool = typer.Option(False, "--force", help="Measure again even if a cached calibration exists."),
    json_out: bool = typer.Option(False, "--json", help="Print the calibration as JSON."),
) -> None:
    """Measure stock vs accelerated per estimator on this machine (cached; used by --policy measured)."""
    from cpuai.cli.output import console, print_json, table
    from cpuai.ml.calibration import SIZES, THRESHOLD, load_or_calibrate

    cal = load_or_calibrate(
        force=force, progress=None if json_out else lambda k: console.print(f"calibrating {k}")
    )
    if json_out:
        print_json({**cal.to_dict(), "path": str(cal.path)})
        return
    rows = []
    for name, speed in sorted(cal.speedups.items()):
        allowed = cal.allowed(name)
        chosen = "all methods" if allowed is None else (", ".join(allowed) + " only" if allowed else "stock")
        per_method = ", ".join(f"{m} {s:.2f}x" for m, s in speed.items())
        choice = cal.choices.get(name, {})
        worst = choice.get("speedup")
        rows.append(
            (
                name.rsplit(".", 1)[-1],
                per_method,
                "-" if worst is None else f"{worst:.2f}x",
                chosen,
                choice.get("why", ""),
            )
        )
    _wide_console(stderr=False).print(
        table(
            f"calibration ({cal.path}; {cal.seconds:.0f} s; accelerate only what won every repeat "
            f"at {' and '.join(SIZES)} size by >= {THRESHOLD}x)",
            ["estimator", "median per method", "worst repeat", "measured policy runs", "why"],
            rows,
        )
    )
    if cal.skipped:
        console.print(f"not calibrated (time budget), kept stock: {', '.join(cal.skipped)}")


@ml_app.command("bench")
def bench_command(
    size: str = typer.Option("small", "--size", help="Data size: small or medium."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    plot: Path = typer.Option(None, "--plot", help="Write a bar chart of the speed-ups to this PNG."),
    only: str = typer.Option(None, "--only", help="Comma-separated algorithm keys (default: all)."),
    repeats: int = typer.Option(3, "--repeats", help="Runs per measurement; the best is kept."),
    min_time: float = typer.Option(
        0.3, "--min-time", help="Keep repeating quick workloads up to this many s."
    ),
) -> None:
    """Stock vs accelerated (policy all and measured) in one run: fit/predict times, speed-ups, agreement."""
    from cpuai.cli.output import console, print_json
    from cpuai.ml.bench import plot_speedups, run_bench

    keys = [k.strip() for k in only.split(",") if k.strip()] if only else None
    result = run_bench(
        size=size,
        keys=keys,
        repeats=repeats,
        min_seconds=min_time,
        progress=None if json_out else lambda k: console.print(f"timing {k}"),
    )
    if plot is not None:
        plot_speedups(result, plot)
    if json_out:
        print_json(result.to_dict())
        return
    result.render(_wide_console(stderr=False))
    if plot is not None:
        console.print(f"chart: {plot}")


def register(app: typer.Typer) -> None:
    """Add the ``ml`` verb group."""
    app.add_typer(ml_app, name="ml")
