"""``cpuai ml bench``: stock vs accelerated scikit-learn in one run, for policy ``all`` and ``measured``.

Each workload is timed on the same data and thread budget with stock scikit-learn and with sklearnex
with every method accelerated (``all``); the measured policy runs one of those two code paths (its
time is that run's) or, when it accelerates only some methods, is timed on its own. Speed-ups are
stock time over accelerated time for fit, for the predict-like method, and for both together;
agreement compares each result's score with stock within the workload's stated tolerance.
"""

from __future__ import annotations

import functools
import math
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cpuai.hardware import core_budget
from cpuai.ml.timing import Timing
from cpuai.ml.workloads import Workload


@dataclass
class Row:
    """One workload's times (seconds) under stock, all and measured, and its scores."""

    key: str
    estimator: str
    method: str | None
    metric: str
    tolerance: str
    stock: Timing
    all: Timing
    measured: Timing
    measured_methods: list[str]
    rows: int = 0
    features: int = 0
    repeats: int = 0

    def speedup(self, policy: str, part: str = "total") -> float | None:
        """Stock time over the policy's time for ``fit``, ``method`` or ``total``."""
        other: Timing = getattr(self, policy)
        a = {"fit": self.stock.fit_s, "method": self.stock.method_s, "total": self.stock.total_s}[part]
        b = {"fit": other.fit_s, "method": other.method_s, "total": other.total_s}[part]
        return None if a is None or not b else a / b

    def agrees(self, workload: Workload, policy: str) -> bool:
        """Whether the policy's score is within tolerance of stock."""
        return workload.agree(self.stock.score, getattr(self, policy).score)

    def to_dict(self, workload: Workload) -> dict[str, Any]:
        """JSON-ready form with times, speed-ups and agreement."""
        out: dict[str, Any] = {
            "key": self.key,
            "estimator": self.estimator,
            "method": self.method,
            "metric": self.metric,
            "tolerance": self.tolerance,
            "measured_accelerates": self.measured_methods,
            "rows": self.rows,
            "features": self.features,
            "repeats": self.repeats,
        }
        for policy in ("stock", "all", "measured"):
            out[policy] = asdict(getattr(self, policy))
        for policy in ("all", "measured"):
            out[f"speedup_{policy}"] = {p: self.speedup(policy, p) for p in ("fit", "method", "total")}
            out[f"agree_{policy}"] = self.agrees(workload, policy)
        return out


def geomean(values: list[float]) -> float:
    """Geometric mean of positive values (the right average for ratios)."""
    vals = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else float("nan")


@dataclass
class BenchResult:
    """All rows plus the machine and settings they were measured with."""

    size: str
    repeats: int
    threads: int
    rows: list[Row]
    workloads: dict[str, Workload]
    machine: dict[str, Any] = field(default_factory=dict)
    cuts: dict[str, str] = field(default_factory=dict)
    """Workloads run smaller or with fewer repeats than the size says, and why (``key -> note``)."""

    def geomean(self, policy: str, part: str = "total") -> float:
        """Geometric-mean speed-up over all workloads for ``policy``."""
        return geomean([s for r in self.rows if (s := r.speedup(policy, part)) is not None])

    def slower(self, policy: str) -> list[str]:
        """``key.part`` entries where the policy was slower than stock (speed-up below 1.0)."""
        out = []
        for r in self.rows:
            for part in ("fit", "method"):
                s = r.speedup(policy, part)
                if s is not None and s < 1.0:
                    out.append(f"{r.key}.{r.method if part == 'method' else 'fit'} {s:.2f}x")
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``--json`` prints and ``benchmarks/ml.py`` writes)."""
        return {
            "size": self.size,
            "repeats": self.repeats,
            "threads": self.threads,
            "machine": self.machine,
            "geomean_speedup": {
                p: {part: self.geomean(p, part) for part in ("fit", "method", "total")}
                for p in ("all", "measured")
            },
            "slower_than_stock": {p: self.slower(p) for p in ("all", "measured")},
            "cuts": self.cuts,
            "rows": [r.to_dict(self.workloads[r.key]) for r in self.rows],
        }

    def render(self, console: Any) -> None:
        """Print the table and the geometric means."""
        from cpuai.cli.output import table

        def x(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f}x"

        rows = []
        for r in self.rows:
            w = self.workloads[r.key]
            ok = r.agrees(w, "all") and r.agrees(w, "measured")
            rows.append(
                (
                    r.key,
                    r.method or "-",
                    f"{r.stock.fit_s:.4f}",
                    f"{r.stock.method_s:.4f}" if r.stock.method_s else "-",
                    x(r.speedup("all", "fit")),
                    x(r.speedup("all", "method")),
                    x(r.speedup("all")),
                    x(r.speedup("measured")),
                    ",".join(r.measured_methods) or "stock",
                    f"{r.metric} {'ok' if ok else 'DIFFERS'} ({r.tolerance})",
                )
            )
        console.print(
            table(
                f"scikit-learn stock vs sklearnex ({self.size}, {self.threads} threads, "
                f"best of {self.repeats})",
                [
                    "algorithm",
                    "method",
                    "stock fit s",
                    "stock method s",
                    "all fit",
                    "all method",
                    "all total",
                    "measured total",
                    "measured accelerates",
                    "agreement",
                ],
                rows,
            )
        )
        console.print(
            f"geometric-mean speed-up (fit+method): all {self.geomean('all'):.2f}x, "
            f"measured {self.geomean('measured'):.2f}x"
        )
        for p in ("all", "measured"):
            slow = self.slower(p)
            if slow:
                console.print(f"slower than stock under {p}: {', '.join(slow)}")
        for key, note in self.cuts.items():
            console.print(f"cut for time: {key}: {note}")


def _tolerance(w: Workload) -> str:
    return f"{'rel' if w.relative else 'abs'} {w.tolerance:g}"


def run_bench(
    *,
    size: str = "small",
    keys: list[str] | None = None,
    repeats: int = 3,
    min_seconds: float = 0.3,
    progress: Callable[[str], None] | None = None,
    row_caps: dict[str, int] | None = None,
    repeats_for: dict[str, int] | None = None,
    cuts: dict[str, str] | None = None,
) -> BenchResult:
    """Time every (or the chosen) workload stock, all and measured in this process.

    ``row_caps`` caps a workload's data (key -> rows) and ``repeats_for`` overrides its repeats, so an
    expensive size can be cut to fit a time budget; ``cuts`` says why, for the output.
    """
    from cpuai.errors import ConfigError
    from cpuai.ml import patching, timing, workloads
    from cpuai.ml.policy import make_plan

    if size not in ("small", "medium"):
        raise ConfigError(f"unknown size {size!r}", fix="use --size small or --size medium")
    if repeats < 1:
        raise ConfigError(f"--repeats must be at least 1, got {repeats}", fix="use --repeats 3")
    if min_seconds < 0:
        raise ConfigError(f"--min-time must not be negative, got {min_seconds}", fix="use --min-time 0.3")
    chosen = [workloads.by_key(k) for k in keys] if keys else workloads.all_workloads()
    items = patching.patchables()
    threads = core_budget()
    patching.set_threads(threads)
    plan = make_plan("measured", list(items), progress=progress and (lambda k: progress(f"calibration: {k}")))
    rows: list[Row] = []
    for w in chosen:
        if w.estimator not in items:
            continue
        if progress:
            progress(w.key)
        item = items[w.estimator]
        data = w.data(size)
        if row_caps and w.key in row_caps:
            data = workloads.subset(data, row_caps[w.key])
        n_repeats = (repeats_for or {}).get(w.key, repeats)
        allowed = plan.allowed.get(w.estimator)
        variants = {"stock": timing.Variant(item.stock), "all": timing.Variant(item.accelerated)}
        gated = w.estimator in plan.patched and bool(allowed) and item.gateable
        if gated:
            gate = allowed or set()
            variants["measured"] = timing.Variant(
                item.accelerated,
                context=functools.partial(patching.gated, item.accelerated, gate, w.estimator),
            )
        times = timing.time_variants(
            w, variants, data, threads=threads, repeats=n_repeats, min_seconds=min_seconds
        )
        stock, fast = times["stock"], times["all"]
        # measured runs exactly the stock class or the ungated accelerated class unless it is mixed:
        # those timings are reused (timing the same code twice would only add noise)
        if w.estimator not in plan.patched:
            measured, chosen_methods = stock, []
        elif not gated:
            measured, chosen_methods = fast, ["all"]
        else:
            measured, chosen_methods = times["measured"], sorted(allowed or [])
        rows.append(
            Row(
                key=w.key,
                estimator=w.estimator,
                method=w.method,
                metric=w.metric_name,
                tolerance=_tolerance(w),
                stock=stock,
                all=fast,
                measured=measured,
                measured_methods=chosen_methods,
                rows=len(data.x_train) + len(data.x_test),
                features=int(data.x_train.shape[1]),
                repeats=n_repeats,
            )
        )
    machine = {
        "cpu": plan.calibration.fingerprint.get("cpu") if plan.calibration else platform.processor(),
        "calibration": str(plan.calibration.path) if plan.calibration else None,
        **(plan.calibration.fingerprint if plan.calibration else {}),
    }
    return BenchResult(
        size=size,
        repeats=repeats,
        threads=threads,
        rows=rows,
        workloads={w.key: w for w in chosen},
        machine=machine,
        cuts=dict(cuts or {}),
    )


def plot_speedups(result: BenchResult, path: Path) -> Path:
    """A bar chart of total speed-ups per algorithm for ``all`` and ``measured``, with the 1.0x line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = [r.key for r in result.rows]
    allv = [r.speedup("all") or 0.0 for r in result.rows]
    meas = [r.speedup("measured") or 0.0 for r in result.rows]
    pos = np.arange(len(keys))
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(keys) + 2), 4.5))
    ax.bar(pos - 0.2, allv, 0.4, label=f"policy all (geomean {result.geomean('all'):.2f}x)")
    ax.bar(pos + 0.2, meas, 0.4, label=f"policy measured (geomean {result.geomean('measured'):.2f}x)")
    ax.axhline(1.0, color="black", linewidth=1)
    ax.set_yscale("log")
    ax.set_xticks(pos, keys, rotation=40, ha="right")
    ax.set_ylabel("speed-up over stock scikit-learn (fit + predict)")
    ax.set_title(f"sklearnex vs stock scikit-learn, {result.size} data, {result.threads} threads")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
