"""Benchmark: stock scikit-learn vs scikit-learn-intelex under ``--policy all`` and ``--policy measured``.

All three run in this one process on the same synthetic data and thread budget (see cpuai.ml.bench).
Prints the table, the geometric-mean speed-ups, every algorithm or method slower than stock, and
whether ``measured`` met its target (no algorithm below 1.0x); writes benchmarks/results/ml.json.

    .venv/bin/python benchmarks/ml.py --quick     # small data, best of 2 (a few minutes on 2 cores)
    .venv/bin/python benchmarks/ml.py             # medium data, best of 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "ml.json"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, best of 2")
    parser.add_argument("--only", default=None, help="comma-separated algorithm keys")
    parser.add_argument("--recalibrate", action="store_true", help="measure the calibration again first")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--plot", type=Path, default=None, help="also write a bar chart PNG")
    args = parser.parse_args(argv)

    from rich.console import Console

    console = Console(highlight=False, width=200)
    from cpuai.ml import calibration
    from cpuai.ml.bench import plot_speedups, run_bench

    start = time.perf_counter()
    cal = calibration.load_or_calibrate(
        force=args.recalibrate, progress=lambda k: console.print(f"calibrating {k}")
    )
    size, repeats = ("small", 2) if args.quick else ("medium", 3)
    keys = args.only.split(",") if args.only else None
    result = run_bench(size=size, keys=keys, repeats=repeats, progress=lambda k: console.print(f"timing {k}"))
    result.render(console)
    below = [r.key for r in result.rows if (r.speedup("measured") or 0) < 1.0]
    target = "met" if not below else f"MISSED for {', '.join(below)}"
    console.print(f"target (measured never below 1.0x per algorithm, fit+method): {target}")
    data = {
        "benchmark": "ml",
        "command": " ".join(["benchmarks/ml.py", *(argv if argv is not None else sys.argv[1:])]),
        "load_average": os.getloadavg(),
        "seconds": round(time.perf_counter() - start, 1),
        "calibration": {"path": str(cal.path), "choices": cal.choices, "speedups": cal.speedups},
        "measured_below_1x": below,
        **result.to_dict(),
    }
    if args.plot is not None:
        console.print(f"chart: {plot_speedups(result, args.plot)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2, default=str))
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
