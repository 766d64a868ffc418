"""``cpuai bench``: latency, throughput and cold start of a package, sweeps, scaling, comparison, accuracy.

A thin layer over ``cpuai.bench.run``: it parses the options, picks the mode, prints the tables and
writes ``--json`` / ``--csv`` / ``--plot``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cpuai.errors import ConfigError


def register(app: typer.Typer) -> None:
    """Add the ``bench`` verb."""
    app.command("bench")(bench)


class Steps:
    """Prints ``[Step n/N] text`` for each progress message of a run whose step count is known."""

    def __init__(self, total: int) -> None:
        self.total, self.n = total, 0

    def __call__(self, text: str) -> None:
        from cpuai.cli.output import step

        self.n += 1
        step(min(self.n, self.total), self.total, text)


def bench(
    packages: list[Path] = typer.Argument(..., help="Model package(s); several with --compare."),
    backend: str = typer.Option(
        "auto", "--backend", help="auto, onnxruntime, openvino or torch (a list with --compare)."
    ),
    batch: str = typer.Option("1", "--batch", help="Batch sizes, e.g. 1,8,32."),
    threads: str | None = typer.Option(None, "--threads", help="Threads per stream (a list makes a sweep)."),
    streams: str | None = typer.Option(None, "--streams", help="Parallel streams (a list makes a sweep)."),
    precision: str | None = typer.Option(None, "--precision", help="Run precision, e.g. bf16 on OpenVINO."),
    hint: str = typer.Option("latency", "--hint", help="Engine hint: latency or throughput."),
    api: str = typer.Option("both", "--api", help="sync (latency), async (throughput) or both."),
    duration: str | None = typer.Option(
        None, "--duration", help="Time per measurement, e.g. 10s (default 2s)."
    ),
    iterations: int | None = typer.Option(
        None, "--iterations", help="Timed requests per measurement instead of a time."
    ),
    warmup: int = typer.Option(5, "--warmup", help="Untimed requests before each measurement."),
    max_spread: float = typer.Option(
        0.10, "--max-spread", help="Repeat until round medians agree within this."
    ),
    cores: int | None = typer.Option(
        None, "--cores", help="Cores the benchmark may use (default: all usable)."
    ),
    data: Path | None = typer.Option(None, "--data", help="Accuracy mode: the task metric on this data set."),
    sweep: bool = typer.Option(False, "--sweep", help="Grid over --threads × --streams × --batch."),
    scaling: bool = typer.Option(False, "--scaling", help="Latency and throughput against cores used, 1..N."),
    compare: bool = typer.Option(
        False, "--compare", help="Compare the packages (and --backend list) side by side."
    ),
    json_file: Path | None = typer.Option(None, "--json", help="Write the full report as JSON here."),
    csv_file: Path | None = typer.Option(
        None, "--csv", help="Write one row per configuration and batch here."
    ),
    plot_file: Path | None = typer.Option(None, "--plot", help="Draw latency/throughput curves to this PNG."),
) -> None:
    """Measure a model package: latency (median/p90/p99/min/max), throughput over streams, cold start."""
    from cpuai import hardware, package
    from cpuai.bench import run
    from cpuai.bench.config import (
        RunConfig,
        check_backend,
        check_cores,
        parse_duration,
        parse_int_list,
        parse_str_list,
    )
    from cpuai.bench.measure import Budget
    from cpuai.bench.perf import check_api

    modes = [
        m
        for m, on in (("--sweep", sweep), ("--scaling", scaling), ("--compare", compare), ("--data", data))
        if on
    ]
    if len(modes) > 1:
        raise ConfigError(f"{' and '.join(modes)} cannot be combined", fix="run one mode at a time")
    if len(packages) > 1 and not compare:
        raise ConfigError(
            f"{len(packages)} packages given without --compare", fix="add --compare, or give one package"
        )
    check_api(api)
    backends = parse_str_list(backend) or ["auto"]
    for b in backends:
        check_backend(b)
    if len(backends) > 1 and not compare:
        raise ConfigError(
            f"--backend {backend!r} lists several backends", fix="use one backend, or add --compare"
        )
    batches = parse_int_list(batch, "--batch") or [1]
    threads_list = parse_int_list(threads, "--threads")
    streams_list = parse_int_list(streams, "--streams")
    budget = Budget(
        duration=parse_duration(duration), iterations=iterations, warmup=warmup, max_spread=max_spread
    )
    budget_cores = check_cores(cores, hardware.core_budget())
    pkgs = [package.read(p) for p in packages]
    is_sweep = sweep or len(threads_list or []) > 1 or len(streams_list or []) > 1
    config = RunConfig(
        backend=backends[0],
        precision=precision,
        threads=threads_list[0] if threads_list and not is_sweep else None,
        streams=streams_list[0] if streams_list and not is_sweep else None,
        batch=batches[0],
        hint=hint,
    )
    from cpuai.bench.config import check_batch, resolve

    for size in batches:
        check_batch(size)
    if not is_sweep and not scaling:
        config = resolve(config, budget_cores)  # refuses threads × streams beyond the cores, before any work

    if data is not None:
        report = run.accuracy(
            pkgs[0], config, str(data), batch=batches[0], cores=budget_cores, progress=Steps(2)
        )
    elif compare:
        n = len(pkgs) * len(backends)
        report = run.compare(
            pkgs,
            config,
            backends=backends,
            batches=batches,
            budget=budget,
            cores=budget_cores,
            api=api,
            progress=Steps(n),
        )
    elif scaling:
        report = run.scaling(
            pkgs[0],
            config,
            batch=batches[0],
            budget=budget,
            cores=budget_cores,
            progress=Steps(2 * budget_cores),
        )
    elif is_sweep:
        from cpuai.bench.sweep import grid

        t_list = threads_list or sorted({1, budget_cores})
        s_list = streams_list or sorted({1, budget_cores})
        runnable, _ = grid(config, t_list, s_list, budget_cores)
        report = run.sweep(
            pkgs[0],
            config,
            threads=t_list,
            streams=s_list,
            batches=batches,
            budget=budget,
            cores=budget_cores,
            api=api,
            progress=Steps(len(runnable)),
        )
    else:
        per_batch = 2 if api == "both" else 1
        report = run.performance(
            pkgs[0],
            config,
            batches,
            budget,
            cores=budget_cores,
            api=api,
            progress=Steps(1 + per_batch * len(batches)),
        )
    show(report)
    written = []
    if json_file is not None:
        written.append(report.write_json(json_file))
    if csv_file is not None:
        written.append(report.write_csv(csv_file))
    if plot_file is not None:
        from cpuai.bench.plots import plot_report

        written.append(plot_report(report, plot_file))
    from cpuai.cli.output import console

    for w in written:
        console.print(f"wrote {w}")


def _machine_line(machine: dict[str, Any]) -> str:
    cpu = machine.get("model") or machine.get("cpu") or "?"
    fast = ", ".join(f"{k} ({v})" for k, v in (machine.get("accelerated_precisions") or {}).items())
    cores = machine.get("thread_budget") or machine.get("core_budget")
    return f"machine: {cpu}; {cores} usable core(s)" + (f"; accelerated: {fast}" if fast else "")


def show(report: Any) -> None:
    """Print a report's tables: per mode, the figures a person compares."""
    from cpuai.cli.output import console, table

    console.print(_machine_line(report.machine))
    if report.kind == "accuracy":
        acc = report.accuracy
        eng = report.settings["engine"]
        console.print(
            f"accuracy of {report.packages[0]['name']} on {acc['data']}: {acc['count']} samples, "
            f"{eng['backend']} {eng['precision']} (the metric cpuai evaluate reports)"
        )
        console.print(table(None, ["metric", "value"], [(k, v) for k, v in acc["values"].items()]))
        return
    if report.kind == "scaling":
        rows = report.extra["scaling"]
        console.print(
            table(
                f"core scaling of {report.packages[0]['name']} (batch {report.settings['batches'][0]})",
                [
                    "cores",
                    "median ms (1 stream)",
                    "p99 ms",
                    "latency speed-up",
                    "samples/s (c streams)",
                    "throughput speed-up",
                ],
                [
                    (
                        r["cores"],
                        r.get("median_ms"),
                        r.get("p99_ms"),
                        r.get("latency_speedup"),
                        r.get("samples_per_s"),
                        r.get("throughput_speedup"),
                    )
                    for r in rows
                ],
            )
        )
        return
    if report.kind == "compare":
        rows = report.extra["comparison"]
        short = {"onnxruntime": "ort", "openvino": "ov"}
        console.print(
            table(
                "comparison: speed-up = first entry's median / this median; ratio = this samples/s / first's",
                ["entry", "batch", "median ms", "p99 ms", "samples/s", "speed-up", "ratio"],
                [
                    (
                        f"{r['package']} {r['precision']} {short.get(r['backend'], r['backend'])}",
                        r["batch"],
                        r["median_ms"],
                        r["p99_ms"],
                        r["samples_per_s"],
                        r.get("latency_speedup"),
                        r.get("throughput_ratio"),
                    )
                    for r in rows
                ],
            )
        )
        return
    rows = report.rows()
    name = report.packages[0]["name"]
    engines = sorted({f"{r['backend']} {r['precision']}" for r in rows})
    console.print(f"{report.kind} {name} on {', '.join(engines)}; config = threads per stream × streams")
    lat = [r for r in rows if r.get("median_ms") is not None]
    if lat:
        console.print(
            table(
                "latency per request, sync (ms)",
                ["config", "batch", "median", "p90", "p99", "min", "max", "spread", "samples/s"],
                [
                    (
                        f"{r['threads']}t×{r['streams']}s",
                        r["batch"],
                        r["median_ms"],
                        r["p90_ms"],
                        r["p99_ms"],
                        r["min_ms"],
                        r["max_ms"],
                        f"{r['spread']:.0%}" + ("" if r["stable"] else "!"),
                        r.get("sync_samples_per_s"),
                    )
                    for r in lat
                ],
            )
        )
    tp = [r for r in rows if r.get("samples_per_s") is not None]
    if tp:
        console.print(
            table(
                "throughput, async (requests in flight = streams)",
                ["config", "batch", "in flight", "samples/s", "requests/s", "median ms", "p99 ms"],
                [
                    (
                        f"{r['threads']}t×{r['streams']}s",
                        r["batch"],
                        r["in_flight"],
                        r["samples_per_s"],
                        r["requests_per_s"],
                        r["loaded_median_ms"],
                        r["loaded_p99_ms"],
                    )
                    for r in tp
                ],
            )
        )
    for res in report.results:
        cs, eng = res["cold_start"], res["engine"]
        console.print(
            f"cold start ({eng['backend']} {eng['threads']}t×{eng['streams']}s): load {cs['load_ms']:.1f} ms"
            f" + first inference {cs['first_infer_ms']:.2f} ms = {cs['total_ms']:.1f} ms"
        )
    if any(r.get("stable") is False for r in rows):
        console.print("! spread above --max-spread: the round medians disagreed; these figures are noisy")
    for s in report.skipped:
        console.print(f"skipped {s['threads']} thread(s) × {s['streams']} stream(s): {s['reason']}")
