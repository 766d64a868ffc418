"""``cpuai quantize PKG --calib DATA --eval DATA --tolerance 1% --out DIR``: INT8 tuned to a tolerance."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from cpuai.quantize.tuner import Trial


def register(app: typer.Typer) -> None:
    """Add the ``quantize`` verb."""
    app.command("quantize")(quantize)


def quantize(
    package: Path = typer.Argument(..., help="FP32 model package (onnx or openvino format)."),
    calib: Path = typer.Option(
        ..., "--calib", help="Calibration data: image folder, .txt sentences, .npy/.npz."
    ),
    eval_data: Path = typer.Option(
        ..., "--eval", help="Evaluation data (labels for top-1/AUC; sentences for cosine)."
    ),
    out: Path = typer.Option(..., "--out", help="Where to write the INT8 package."),
    tolerance: str = typer.Option("1%", "--tolerance", help="Allowed metric loss vs FP32, e.g. 1% or 0.01."),
    relative: bool = typer.Option(
        False, "--relative/--absolute", help="Tolerance as a fraction of FP32 or in points."
    ),
    backend: str = typer.Option("auto", "--backend", help="auto, openvino (NNCF) or onnxruntime."),
    strategy: str = typer.Option(
        "basic", "--strategy", help="basic, mse, random, exhaustive, tpe or bayesian."
    ),
    max_trials: int = typer.Option(10, "--max-trials", help="Most candidates to try."),
    timeout: str | None = typer.Option(
        None, "--timeout", help="Search this long (90s, 10m) and keep the fastest within tolerance."
    ),
    objective: str = typer.Option(
        "latency", "--objective", help="latency (batch 1) or throughput (batch 32)."
    ),
    int8_only: bool = typer.Option(False, "--int8-only", help="Full INT8 only: no FP32 fallback, no BF16."),
    calib_limit: int = typer.Option(300, "--calib-limit", help="Use at most this many calibration samples."),
    eval_limit: int | None = typer.Option(
        None, "--eval-limit", help="Use at most this many evaluation samples."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for random/tpe/bayesian and data subsets."),
    json: bool = typer.Option(False, "--json", help="Print the tuning report as JSON."),
) -> None:
    """Post-training INT8 quantization that searches until the metric is within tolerance of FP32."""
    from cpuai import package as pkgmod
    from cpuai.cli.output import console, print_json, step, table
    from cpuai.errors import ConfigError
    from cpuai.quantize import Tolerance, Tuner, load_samples
    from cpuai.quantize.tuner import parse_duration, parse_objective

    if calib_limit < 1:
        raise ConfigError(
            f"--calib-limit must be 1 or more, got {calib_limit}", fix="pass --calib-limit 100 or more"
        )
    tol = Tolerance.parse(tolerance, relative=relative)
    pkg = pkgmod.read(package)

    def on_trial(trial: Trial) -> None:
        if json:
            return
        if trial.error:
            console.print(f"  trial {trial.index}: {trial.config.label()}: failed: {trial.error}")
        else:
            mark = "within" if trial.within else "outside"
            console.print(
                f"  trial {trial.index}: {trial.config.label()}: metric {trial.metric:.4f} "
                f"(delta {trial.delta:+.4f}, {mark} tolerance), {trial.latency_ms:.3f} ms"
            )

    tuner = Tuner(
        pkg,
        tolerance=tol,
        backend=backend,
        strategy=strategy,
        max_trials=max_trials,
        timeout=parse_duration(timeout),
        objective=parse_objective(objective),
        int8_only=int8_only,
        seed=seed,
        on_trial=on_trial,
    )
    if not json:
        step(1, 3, f"reading calibration data {calib} and evaluation data {eval_data}")
    cal = load_samples(calib, pkg, limit=calib_limit, seed=seed)
    evals = load_samples(eval_data, pkg, limit=eval_limit, seed=seed)
    if not json:
        step(
            2,
            3,
            f"tuning with strategy {strategy} (at most {max_trials} trials) for {tol.describe()} tolerance",
        )
    try:
        tuner.fit(cal, evals)
        if not json:
            step(3, 3, f"saving the chosen candidate to {out}")
        saved = tuner.save(out)
    finally:
        tuner.close()
    report = tuner.report_
    if json:
        print_json({"package": str(saved.path), **report})
        return
    b = report["baseline"]
    rows: list[tuple[Any, ...]] = [
        ("fp32", "-", b["metric"], 0.0, b["latency_ms"], 1.0, b["size_bytes"] / 1024, "-")
    ]
    for t in report["trials"]:
        if t["error"]:
            rows.append((t["trial"], t["label"], None, None, None, None, None, "failed"))
            continue
        chosen = " (chosen)" if t["trial"] == report["choice"]["trial"] else ""
        rows.append(
            (
                t["trial"],
                t["label"],
                t["metric"],
                t["delta"],
                t["latency_ms"],
                b["latency_ms"] / t["latency_ms"],
                (t["size_bytes"] or 0) / 1024,
                ("yes" if t["within_tolerance"] else "no") + chosen,
            )
        )
    console.print(
        table(
            f"tuning trials ({report['metric']}, {report['backend']}; stopped: {report['stopped']})",
            ["trial", "config", "metric", "delta", "latency ms", "speed-up", "KiB", "within"],
            rows,
        )
    )
    console.print(tuner.message())
    s = report["speed"]
    console.print(
        f"speed vs FP32 on {s['backend']} ({s['threads']} threads): batch 1 x{s['latency_speedup']:.2f} "
        f"({s['fp32_latency_ms']:.3f} -> {s['latency_ms']:.3f} ms), batch {s['batch']} "
        f"x{s['throughput_speedup']:.2f} ({s['fp32_throughput']:.0f} -> {s['throughput']:.0f} items/s)"
    )
    if not s["faster"]:
        console.print("warning: the chosen candidate is NOT faster than FP32 on this CPU at every batch size")
    console.print(
        f"wrote {saved.path} ({saved.manifest.format}/{saved.manifest.precision}; report in tuning.json)"
    )
