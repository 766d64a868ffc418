"""Benchmark: stock scikit-learn vs scikit-learn-intelex under ``--policy all`` and ``--policy measured``.

All three run in this one process on the same synthetic data and thread budget (see cpuai.ml.bench).
Prints the table, the geometric-mean speed-ups, every algorithm or method slower than stock, and
whether ``measured`` met its target (no algorithm below 1.0x); writes benchmarks/results/ml.json
(``--quick`` also keeps a copy as results/ml-small.json).

The full (medium) mode is planned to fit ``--budget-min`` (15 minutes): it estimates every
algorithm's medium run time from the last small run (results/ml-small.json, scaled by rows and
features per algorithm and by how fast this machine is now, from a few seconds of re-timing), and
while the estimate is over budget it cuts the slowest algorithm, first to best of 2, then to fewer
rows. Cuts are printed, kept in the JSON (``cuts``, ``medium_plan``) and marked in the table.

    .venv/bin/python benchmarks/ml.py --quick           # small data, best of 2
    .venv/bin/python benchmarks/ml.py --plan-only       # medium: print the estimate and cuts, run nothing
    .venv/bin/python benchmarks/ml.py                   # medium data, best of 3, cut to ~15 minutes
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "ml.json"
SMALL = RESULTS.with_name("ml-small.json")


def _small_result(path: Path | None) -> tuple[dict[str, Any], Path] | None:
    """The small-mode JSON to estimate from: ``path``, else ml-small.json, else ml.json if small."""
    for candidate in [path] if path else [SMALL, RESULTS]:
        try:
            data = json.loads(candidate.read_text())
        except (OSError, ValueError):
            continue
        if data.get("size") == "small" and data.get("rows"):
            return data, candidate
    return None


def _medium_plan(console: Any, args: argparse.Namespace, keys: list[str] | None) -> Any:
    """Estimate the medium run from the small one and cut the slowest algorithms to fit the budget."""
    from cpuai.ml import workloads
    from cpuai.ml.bench_budget import Shape, plan, probe_factor

    found = _small_result(args.estimate_from)
    if found is None:
        console.print(
            "error: no small-mode result to estimate the medium run from; run "
            "'benchmarks/ml.py --quick' first (or pass --no-cut to run medium uncut)"
        )
        return None
    small, path = found
    chosen = [workloads.by_key(k) for k in keys] if keys else workloads.all_workloads()
    shapes = {}
    for w in chosen:
        s, m = w.data("small"), w.data("medium")
        shapes[w.key] = (
            Shape(len(s.x_train) + len(s.x_test), int(s.x_train.shape[1])),
            Shape(len(m.x_train) + len(m.x_test), int(m.x_train.shape[1])),
        )
    factor, probes = probe_factor(small)
    p = plan(small, shapes, repeats=3, budget_s=args.budget_min * 60, factor=factor)
    console.print(
        f"medium plan from {path} (small run: {small.get('seconds', '?')} s at load "
        f"{', '.join(f'{v:.1f}' for v in small.get('load_average', []))}); this machine now runs at "
        f"{factor:.2f}x the small run's times ({', '.join(f'{k} {v:.2f}' for k, v in probes.items())})"
    )
    for key, e in p.estimates.items():
        mark = f"  CUT to {e.note}" if e.cut else ""
        console.print(f"  {key:26s} {e.rows:>7,} rows  best of {e.repeats}  ~{e.seconds / 60:5.1f} min{mark}")
    console.print(
        f"estimated {p.uncut_s / 60:.1f} min uncut, {p.total_s / 60:.1f} min as planned "
        f"(budget {args.budget_min:g} min{'' if p.within_budget else ', STILL OVER: nothing left to cut'}; "
        "calibration, if not cached, and data generation come on top)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, best of 2")
    parser.add_argument("--only", default=None, help="comma-separated algorithm keys")
    parser.add_argument("--recalibrate", action="store_true", help="measure the calibration again first")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--plot", type=Path, default=None, help="also write a bar chart PNG")
    parser.add_argument("--budget-min", type=float, default=15.0, help="medium: time budget in minutes")
    parser.add_argument("--estimate-from", type=Path, default=None, help="medium: the small-mode JSON")
    parser.add_argument(
        "--plan-only", action="store_true", help="medium: print the estimate and cuts, then stop"
    )
    parser.add_argument("--no-cut", action="store_true", help="medium: run every algorithm at full size")
    args = parser.parse_args(argv)

    from rich.console import Console

    console = Console(highlight=False, width=200)
    from cpuai.ml import calibration
    from cpuai.ml.bench import plot_speedups, run_bench

    start = time.perf_counter()
    keys = args.only.split(",") if args.only else None
    medium_plan = None
    if not args.quick and not args.no_cut:
        medium_plan = _medium_plan(console, args, keys)
        if medium_plan is None:
            return 2
        if args.plan_only:
            return 0
    cal = calibration.load_or_calibrate(
        force=args.recalibrate, progress=lambda k: console.print(f"calibrating {k}")
    )
    console.print(f"calibration: {cal.path} ({cal.seconds:.0f} s when measured)")
    size, repeats = ("small", 2) if args.quick else ("medium", 3)
    result = run_bench(
        size=size,
        keys=keys,
        repeats=repeats,
        progress=lambda k: console.print(f"timing {k}"),
        row_caps=medium_plan.row_caps() if medium_plan else None,
        repeats_for=medium_plan.repeats_for() if medium_plan else None,
        cuts=medium_plan.cuts() if medium_plan else None,
    )
    result.render(console)
    below = [r.key for r in result.rows if (r.speedup("measured") or 0) < 1.0]
    target = "met" if not below else f"MISSED for {', '.join(below)}"
    console.print(f"target (measured never below 1.0x per algorithm, fit+method): {target}")
    data = {
        "benchmark": "ml",
        "command": " ".join(["benchmarks/ml.py", *(argv if argv is not None else sys.argv[1:])]),
        "load_average": os.getloadavg(),
        "seconds": round(time.perf_counter() - start, 1),
        "calibration": {
            "path": str(cal.path),
            "seconds": cal.seconds,
            "choices": cal.choices,
            "speedups": cal.speedups,
            "skipped": cal.skipped,
        },
        "measured_below_1x": below,
        "medium_plan": medium_plan.to_dict() if medium_plan else None,
        **result.to_dict(),
    }
    if args.plot is not None:
        console.print(f"chart: {plot_speedups(result, args.plot)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2, default=str))
    if args.quick and not keys and args.out == RESULTS:
        SMALL.write_text(args.out.read_text())
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
