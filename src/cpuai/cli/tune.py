"""``cpuai tune``: search backend × precision × threads × streams × batch and write the winner to deploy.

A thin layer over ``cpuai.bench.tuner.tune``: options in, the table of trials and the reason out.
"""

from __future__ import annotations

from pathlib import Path

import typer

SHORT = {"onnxruntime": "ort", "openvino": "ov"}


def register(app: typer.Typer) -> None:
    """Add the ``tune`` verb."""
    app.command("tune")(tune)


def tune(
    package_dir: Path = typer.Argument(
        ..., help="The model package to tune (its model.yaml gets a deploy section)."
    ),
    objective: str = typer.Option(
        "latency", "--objective", help="latency (median at batch 1) or throughput."
    ),
    max_p99_ms: float | None = typer.Option(
        None, "--max-p99-ms", help="Reject configurations whose p99 is above this."
    ),
    cores: int | None = typer.Option(
        None, "--cores", help="Cores the deployment may use (default: all usable)."
    ),
    backend: str | None = typer.Option(
        None, "--backend", help="Limit the search to these backends, e.g. openvino."
    ),
    batch: str | None = typer.Option(None, "--batch", help="Batch sizes to try (throughput default 1,8,32)."),
    budget: str = typer.Option(
        "0.3s", "--budget", help="Time per trial in the first rung (later rungs: × eta)."
    ),
    eta: int = typer.Option(3, "--eta", help="Successive halving: keep the best 1/eta of each rung."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Search and report, but do not write deploy."),
    json_file: Path | None = typer.Option(None, "--json", help="Write the report (all trials) as JSON here."),
    csv_file: Path | None = typer.Option(None, "--csv", help="Write the trials as CSV here."),
) -> None:
    """Find the fastest deployment for the objective under the p99 limit and write it into the package."""
    import csv

    from cpuai import hardware, package
    from cpuai.bench.config import check_backend, check_cores, parse_duration, parse_int_list, parse_str_list
    from cpuai.bench.measure import Budget
    from cpuai.bench.report import Report, package_summary
    from cpuai.bench.tuner import check_objective
    from cpuai.bench.tuner import tune as run_tune
    from cpuai.cli.output import console, step, table

    check_objective(objective)
    backends = parse_str_list(backend)
    for b in backends or []:
        check_backend(b)
    backends = [b for b in backends or [] if b != "auto"] or None
    batches = parse_int_list(batch, "--batch")
    per_trial = Budget(duration=parse_duration(budget), warmup=2)
    budget_cores = check_cores(cores, hardware.core_budget())
    pkg = package.read(package_dir)

    step(
        1,
        3,
        f"search space for {pkg.manifest.name} ({pkg.manifest.format}/{pkg.manifest.precision}), "
        f"objective {objective}, {budget_cores} core(s)",
    )
    result = run_tune(
        pkg,
        objective=objective,
        cores=budget_cores,
        max_p99_ms=max_p99_ms,
        backends=backends,
        batches=batches,
        budget=per_trial,
        eta=eta,
        write=False,
        progress=lambda text: step(2, 3, text),
    )
    rows = [t.row() for t in result.trials]
    console.print(
        table(
            f"trials ({len(rows)}), best first within each rung",
            ["rung", "backend", "prec", "t×s", "batch", "median ms", "p99 ms", "samples/s", "status"],
            [
                (
                    r["rung"],
                    SHORT.get(r["backend"], r["backend"]),
                    r["precision"],
                    f"{r['threads']}×{r['streams']}",
                    r["batch"],
                    r["median_ms"],
                    r["p99_ms"],
                    None if r["samples_per_s"] is None else round(r["samples_per_s"]),
                    r["status"],
                )
                for r in sorted(rows, key=_order(objective))
            ],
        )
    )
    console.print("ort = ONNX Runtime, ov = OpenVINO; t×s = threads per stream × streams")
    for r in rows:
        if r["status"] == "failed":
            console.print(
                f"failed: {r['backend']} {r['precision']} {r['threads']}×{r['streams']}: {r['reason']}"
            )
    console.print(f"why: {result.why}")
    d = result.deploy
    if dry_run:
        step(
            3,
            3,
            f"dry run: deploy not written (would be {d.backend} {d.precision} {d.threads} threads × "
            f"{d.streams} streams, batch {d.batch})",
        )
    else:
        from cpuai.package import LineageStep, update_manifest

        lineage = [
            *pkg.manifest.lineage,
            LineageStep(command="cpuai tune", settings=result.settings, results=dict(d.measured)),
        ]
        update_manifest(pkg, deploy=d, lineage=lineage)
        step(
            3,
            3,
            f"wrote deploy to {pkg.path / 'model.yaml'}: {d.backend} {d.precision} {d.threads} threads × "
            f"{d.streams} streams, batch {d.batch}, hint {d.hint}",
        )
    if json_file is not None:
        report = Report("tune", result.settings, [package_summary(pkg)], [], extra={"tune": result.to_dict()})
        console.print(f"wrote {report.write_json(json_file)}")
    if csv_file is not None:
        csv_file.parent.mkdir(parents=True, exist_ok=True)
        with csv_file.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        console.print(f"wrote {csv_file}")


def _order(objective: str):  # type: ignore[no-untyped-def]
    def key(r: dict) -> tuple:
        if objective == "latency":
            value = r["median_ms"] if r["median_ms"] is not None else float("inf")
        else:
            value = -(r["samples_per_s"] or 0.0)
        return (r["rung"], value)

    return key
