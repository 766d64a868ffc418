"""Aggregate throughput of `cpuai launch` (N pinned single-thread instances) vs one N-thread process.

Workload: float32 square matmuls in torch (matmul-heavy, like the dense layers of a model). Every
process imports torch first, then all wait for one shared start time and count the matmuls they
finish within the same window of D seconds, so start-up cost never enters the figures. Rows:

- baseline: one process, ``torch.set_num_threads(N)``, not pinned (what a user runs by default);
- unpinned: N single-thread processes, not pinned (separates "several processes" from "pinning");
- cpuai launch: ``launch.plan(ninstances=N)`` + ``launch.run`` — N pinned single-thread instances.

    .venv/bin/python benchmarks/launch_scaling.py --quick    # ~15 s
    .venv/bin/python benchmarks/launch_scaling.py            # full: sizes 128 and 512, 3 rounds
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cpuai import hardware, launch

WORKER = r"""
import json, os, sys, time
import torch
size, duration, start = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
a, b = torch.randn(size, size), torch.randn(size, size)
for _ in range(3):
    a @ b
while time.time() < start:
    time.sleep(0.005)
n, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < duration:
    a @ b
    n += 1
print(json.dumps({"matmuls": n, "seconds": time.perf_counter() - t0, "threads": torch.get_num_threads()}))
"""

RESULTS = Path(__file__).parent / "results" / "launch_scaling.json"


def _argv(size: int, duration: float, start: float) -> list[str]:
    return [sys.executable, "-c", WORKER, str(size), str(duration), str(start)]


def _rate(reports: list[dict]) -> float:
    """Aggregate matmuls per second over the shared window."""
    return sum(r["matmuls"] / r["seconds"] for r in reports)


def baseline(n: int, size: int, duration: float, lead: float) -> float:
    """One process with n threads, not pinned."""
    env = {**os.environ, "OMP_NUM_THREADS": str(n)}
    out = subprocess.run(
        _argv(size, duration, time.time() + lead), env=env, capture_output=True, text=True, check=True
    )
    return _rate([json.loads(out.stdout)])


def unpinned(n: int, size: int, duration: float, lead: float) -> float:
    """n single-thread processes, not pinned."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.time() + lead
    procs = [
        subprocess.Popen(_argv(size, duration, start), env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    return _rate([json.loads(p.communicate()[0]) for p in procs])


def launched(n: int, size: int, duration: float, lead: float) -> float:
    """n pinned single-thread instances via cpuai.launch."""
    plans = launch.plan(ninstances=n)
    buf = io.StringIO()
    code = launch.run(plans, _argv(size, duration, time.time() + lead), stdout=buf)
    if code:
        raise SystemExit(f"launch failed with code {code}:\n{buf.getvalue()}")
    reports = [
        json.loads(line.split(" ", 1)[1]) for line in buf.getvalue().splitlines() if line.startswith("[")
    ]
    return _rate(reports)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one size, one round, 1 s windows")
    ap.add_argument("--ninstances", type=int, default=None, help="default: usable physical cores")
    args = ap.parse_args()
    n = args.ninstances or hardware.current().usable_physical_cores
    if n < 2:
        raise SystemExit("needs at least 2 usable physical cores")
    sizes, rounds, duration = ([256], 1, 1.0) if args.quick else ([128, 512], 3, 4.0)
    lead = 3.0  # seconds for every process to import torch before the shared start
    rows = []
    for size in sizes:
        samples: dict[str, list[float]] = {"baseline": [], "unpinned": [], "launch": []}
        for _ in range(rounds):  # interleave the three so that load from others hits all of them
            samples["baseline"].append(baseline(n, size, duration, lead))
            samples["unpinned"].append(unpinned(n, size, duration, lead))
            samples["launch"].append(launched(n, size, duration, lead))
        med = {k: statistics.median(v) for k, v in samples.items()}
        rows.append(
            {
                "size": size,
                "gflop_per_matmul": 2 * size**3 / 1e9,
                "baseline_matmuls_per_s": med["baseline"],
                "unpinned_matmuls_per_s": med["unpinned"],
                "launch_matmuls_per_s": med["launch"],
                "launch_vs_baseline": med["launch"] / med["baseline"],
                "launch_vs_unpinned": med["launch"] / med["unpinned"],
                "samples": samples,
            }
        )
    print(
        f"{n} instances x 1 thread (cpuai launch) vs 1 process x {n} threads; median of {rounds} round(s), "
        f"{duration:g} s windows"
    )
    print(
        f"{'size':>6} {f'1x{n}T /s':>12} {'unpinned /s':>12} {'launch /s':>12} {'launch/1xNT':>12} "
        f"{'launch/unpinned':>16}"
    )
    for r in rows:
        print(
            f"{r['size']:>6} {r['baseline_matmuls_per_s']:>12.1f} {r['unpinned_matmuls_per_s']:>12.1f} "
            f"{r['launch_matmuls_per_s']:>12.1f} {r['launch_vs_baseline']:>12.2f} "
            f"{r['launch_vs_unpinned']:>16.2f}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "launch_scaling",
                "mode": "quick" if args.quick else "full",
                "ninstances": n,
                "duration_s": duration,
                "rounds": rounds,
                "machine": hardware.current().summary(),
                "command": "benchmarks/launch_scaling.py" + (" --quick" if args.quick else ""),
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
