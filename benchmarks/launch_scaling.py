"""Aggregate throughput of `cpuai launch` (N pinned single-thread instances) vs one N-thread process.

Workload: float32 square matmuls in torch (matmul-heavy, like the dense layers of a model). Every
process imports torch and warms up, then all meet at a file barrier and count the matmuls they
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
import tempfile
from pathlib import Path

from cpuai import hardware, launch

WORKER = r"""
import json, os, sys, time
from pathlib import Path
import torch
size, duration, barrier, parties = int(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
a, b = torch.randn(size, size), torch.randn(size, size)
for _ in range(3):
    a @ b
# Barrier: every process waits until all are warm, then all start at the same instant.
(barrier / f"ready-{os.getpid()}").touch()
while len(list(barrier.glob("ready-*"))) < parties:
    time.sleep(0.01)
start = max(p.stat().st_mtime for p in barrier.glob("ready-*")) + 0.2
while time.time() < start:
    time.sleep(0.002)
n, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < duration:
    a @ b
    n += 1
print(json.dumps({"matmuls": n, "seconds": time.perf_counter() - t0, "threads": torch.get_num_threads()}))
"""

RESULTS = Path(__file__).parent / "results" / "launch_scaling.json"


def _argv(size: int, duration: float, barrier: str, parties: int) -> list[str]:
    return [sys.executable, "-c", WORKER, str(size), str(duration), barrier, str(parties)]


def _rate(reports: list[dict]) -> float:
    """Aggregate matmuls per second over the shared window."""
    return sum(r["matmuls"] / r["seconds"] for r in reports)


def baseline(n: int, size: int, duration: float) -> float:
    """One process with n threads, not pinned (n=1: the single-core reference)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(n)}
    with tempfile.TemporaryDirectory() as barrier:
        argv = _argv(size, duration, barrier, 1)
        out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    return _rate([json.loads(out.stdout)])


def unpinned(n: int, size: int, duration: float) -> float:
    """n single-thread processes, not pinned."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as barrier:
        argv = _argv(size, duration, barrier, n)
        procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True) for _ in range(n)]
        return _rate([json.loads(p.communicate()[0]) for p in procs])


def launched(n: int, size: int, duration: float) -> float:
    """n pinned single-thread instances via cpuai.launch."""
    plans = launch.plan(ninstances=n)
    buf = io.StringIO()
    with tempfile.TemporaryDirectory() as barrier:
        code = launch.run(plans, _argv(size, duration, barrier, n), stdout=buf)
    if code:
        raise SystemExit(f"launch failed with code {code}:\n{buf.getvalue()}")
    lines = [line for line in buf.getvalue().splitlines() if line.startswith("[") and "{" in line]
    return _rate([json.loads(line.split(" ", 1)[1]) for line in lines])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one size, one round, 1 s windows")
    ap.add_argument("--ninstances", type=int, default=None, help="default: usable physical cores")
    args = ap.parse_args()
    n = args.ninstances or hardware.current().usable_physical_cores
    if n < 2:
        raise SystemExit("needs at least 2 usable physical cores")
    sizes, rounds, duration = ([256], 1, 1.0) if args.quick else ([128, 512], 3, 4.0)
    rows = []
    load_before = os.getloadavg()[0]
    for size in sizes:
        samples: dict[str, list[float]] = {"single_core": [], "baseline": [], "unpinned": [], "launch": []}
        for _ in range(rounds):  # interleave them so that load from others hits all of them
            samples["single_core"].append(baseline(1, size, duration))
            samples["baseline"].append(baseline(n, size, duration))
            samples["unpinned"].append(unpinned(n, size, duration))
            samples["launch"].append(launched(n, size, duration))
            print(
                f"size {size}: " + ", ".join(f"{k} {v[-1]:.1f}/s" for k, v in samples.items()),
                file=sys.stderr,
            )
        med = {k: statistics.median(v) for k, v in samples.items()}
        rows.append(
            {
                "size": size,
                "gflop_per_matmul": 2 * size**3 / 1e9,
                "single_core_matmuls_per_s": med["single_core"],
                "baseline_matmuls_per_s": med["baseline"],
                "unpinned_matmuls_per_s": med["unpinned"],
                "launch_matmuls_per_s": med["launch"],
                "launch_vs_baseline": med["launch"] / med["baseline"],
                "launch_vs_unpinned": med["launch"] / med["unpinned"],
                "baseline_scaling": med["baseline"] / (n * med["single_core"]),
                "launch_scaling": med["launch"] / (n * med["single_core"]),
                "samples": samples,
            }
        )
    print(
        f"{n} instances x 1 thread (cpuai launch) vs 1 process x {n} threads; median of {rounds} round(s), "
        f"{duration:g} s windows; load average before/after {load_before:.1f}/{os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'size':>5} {'1x1T /s':>9} {f'1x{n}T /s':>9} {'unpinned':>9} {'launch':>9} "
        f"{'launch/1xNT':>11} {'launch/unpinned':>15} {'1xNT scaling':>12} {'launch scaling':>14}"
    )
    for r in rows:
        print(
            f"{r['size']:>5} {r['single_core_matmuls_per_s']:>9.1f} {r['baseline_matmuls_per_s']:>9.1f} "
            f"{r['unpinned_matmuls_per_s']:>9.1f} {r['launch_matmuls_per_s']:>9.1f} "
            f"{r['launch_vs_baseline']:>11.2f} {r['launch_vs_unpinned']:>15.2f} "
            f"{r['baseline_scaling']:>12.2f} {r['launch_scaling']:>14.2f}"
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
                "load_average_before_after": [load_before, os.getloadavg()[0]],
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
