"""The short per-machine calibration behind ``--policy measured``, cached per machine and versions.

A single noisy timing is not evidence: on a shared machine one run can make an algorithm look 1.3x
faster that is 0.8x in the next. So for every workload, stock and accelerated scikit-learn run
interleaved, ``REPEATS`` times at each of two data sizes (``SIZES``: 5,000 and 10,000 rows, the
latter the ``small`` bench size), and each repeat gives one stock/accelerated ratio for fit, for
the predict-like method and for both together (after one untimed warm-up round on a few rows,
since an estimator's first call pays one-time costs). A variant is accelerated only if it won *every*
repeat at *both* sizes by at least ``THRESHOLD`` (see :func:`decide`); anything ambiguous stays
stock. Per method: when only some methods win robustly, the mixed variant (just those methods on
oneDAL) is timed against stock the same way, and the variant with the best worst-case ratio wins.
The result, with every ratio and the reason for each decision, is cached as
``<cache>/ml-calibration-<hash>.json``; the hash covers the CPU model, the core budget and the
versions of Python, numpy, scipy, scikit-learn and sklearnex. ``CPUAI_CACHE_DIR`` moves the cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cpuai.hardware import core_budget

if TYPE_CHECKING:
    from cpuai.ml.timing import Timing

THRESHOLD = 1.10
"""Accelerate only if the accelerated variant was at least this much faster in every repeat."""

SIZES = ("calibration", "small")
"""The two data sizes (workloads.SIZES) calibration runs at; a win is required at both."""

REPEATS = 3
"""Interleaved stock/accelerated repeats per size; each one must be a win."""

BUDGET_S = 900.0
"""Calibration stops starting new workloads after this many seconds (the rest stay stock)."""

WARMUP_ROWS = 500
"""Rows of the untimed warm-up round each variant runs before its timed repeats."""

VERSION = 5
"""Bump when the calibration workloads or the decision rule change, so old caches are not reused."""


def cache_dir() -> Path:
    """Where cpuai caches machine-specific results: ``$CPUAI_CACHE_DIR`` or ``~/.cache/cpuai``."""
    env = os.environ.get("CPUAI_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cpuai"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "missing"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fingerprint() -> dict[str, Any]:
    """What the calibration depends on: this CPU, the core budget and the library versions."""
    return {
        "calibration_version": VERSION,
        "cpu": _cpu_model(),
        "machine": platform.machine(),
        "cores": core_budget(),
        "python": platform.python_version(),
        **{d: _version(d) for d in ("numpy", "scipy", "scikit-learn", "scikit-learn-intelex")},
    }


def cache_path(fp: dict[str, Any] | None = None) -> Path:
    """The cache file for this fingerprint."""
    fp = fp or fingerprint()
    digest = hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / f"ml-calibration-{digest}.json"


# --- the decision rule (pure functions on recorded ratios) -------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Whether a variant's recorded ratios justify accelerating it, and why (in words)."""

    accelerate: bool
    worst: float
    median: float
    why: str


def _fmt(ratios: list[float]) -> str:
    return ", ".join(f"{r:.2f}" for r in ratios)


def decide(ratios: list[float], margin: float = THRESHOLD) -> Verdict:
    """Accelerate only if every repeat's stock/accelerated ratio is at least ``margin``.

    The worst repeat decides, not the mean or the best: one lost repeat, or a win that does not clear
    the margin, means the speed-up is within this machine's noise, and then stock is the safe choice.
    """
    vals = [float(r) for r in ratios if r is not None and r > 0]
    if not vals:
        return Verdict(False, 0.0, 0.0, "no timings")
    worst, median = min(vals), statistics.median(vals)
    lost = sum(v < 1.0 for v in vals)
    if lost:
        why = f"lost {lost} of {len(vals)} repeats (ratios {_fmt(vals)})"
        return Verdict(False, worst, median, why)
    if worst < margin:
        why = (
            f"won every repeat but the worst, {worst:.2f}x, is below the {margin:.2f}x margin "
            f"(ratios {_fmt(vals)})"
        )
        return Verdict(False, worst, median, why)
    why = f"won every repeat by >= {margin:.2f}x, worst {worst:.2f}x (ratios {_fmt(vals)})"
    return Verdict(True, worst, median, why)


def choose(candidates: dict[str, list[float]], margin: float = THRESHOLD) -> dict[str, Any]:
    """Pick, among variants with recorded total ratios, the accepted one with the best worst case.

    ``candidates`` maps ``"all"`` (every method on oneDAL) or a comma-joined method list (only those
    on oneDAL) to the per-repeat ratios of the whole workload. The result is a cache ``choice``:
    ``allowed`` (None for all methods, a method list, or [] for stock), ``speedup`` (the chosen, or
    else the best, variant's worst ratio), ``why`` and every candidate's verdict.
    """
    verdicts = {name: decide(r, margin) for name, r in candidates.items()}
    if not verdicts:
        return {"allowed": [], "speedup": None, "why": "not timed", "candidates": {}}
    recorded = {
        name: {
            "worst": round(v.worst, 4),
            "median": round(v.median, 4),
            "accelerate": v.accelerate,
            "why": v.why,
        }
        for name, v in verdicts.items()
    }
    accepted = {n: v for n, v in verdicts.items() if v.accelerate}
    if not accepted:
        best = max(verdicts, key=lambda n: verdicts[n].worst)
        why = "stock: " + "; ".join(f"{_label(n)} {v.why}" for n, v in verdicts.items())
        return {"allowed": [], "speedup": round(verdicts[best].worst, 4), "why": why, "candidates": recorded}
    name = max(accepted, key=lambda n: accepted[n].worst)
    allowed = None if name == "all" else name.split(",")
    why = f"{_label(name)} {accepted[name].why}"
    return {"allowed": allowed, "speedup": round(accepted[name].worst, 4), "why": why, "candidates": recorded}


def _label(candidate: str) -> str:
    return "all methods accelerated:" if candidate == "all" else f"only {candidate} accelerated:"


def ratios(repeats: list[dict[str, Timing]], base: str, other: str, part: str) -> list[float]:
    """Per repeat, ``base`` seconds over ``other`` seconds for ``fit``, ``method`` or ``total``."""
    out = []
    for times in repeats:
        a, b = _part(times[base], part), _part(times[other], part)
        if a is not None and b:
            out.append(a / b)
    return out


def _part(t: Timing, part: str) -> float | None:
    return {"fit": t.fit_s, "method": t.method_s, "total": t.total_s}[part]


# --- the cache ----------------------------------------------------------------------------------


@dataclass
class Calibration:
    """Per estimator and method: the measured speed-ups, the decision and the evidence behind it."""

    fingerprint: dict[str, Any]
    speedups: dict[str, dict[str, float]] = field(default_factory=dict)
    choices: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: float = 0.0
    path: Path | None = None
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)

    def allowed(self, estimator: str) -> list[str] | None:
        """Methods the measured policy accelerates: None for all, [] for none (stock or not calibrated)."""
        choice = self.choices.get(estimator)
        return [] if choice is None else choice.get("allowed")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the cache file holds)."""
        return {
            "fingerprint": self.fingerprint,
            "threshold": THRESHOLD,
            "rule": f"accelerate only if every repeat at every size was >= {THRESHOLD}x faster",
            "sizes": list(SIZES),
            "created": self.created,
            "seconds": round(self.seconds, 3),
            "speedups": self.speedups,
            "choices": self.choices,
            "skipped": self.skipped,
        }


def load(path: Path | None = None) -> Calibration | None:
    """The cached calibration for this machine, or None when absent or unreadable."""
    fp = fingerprint()
    path = path or cache_path(fp)
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if raw.get("fingerprint") != fp or not isinstance(raw.get("speedups"), dict):
        return None
    return Calibration(
        fingerprint=fp,
        speedups=raw["speedups"],
        choices=raw.get("choices", {}),
        created=raw.get("created", 0.0),
        path=path,
        seconds=raw.get("seconds", 0.0),
        skipped=raw.get("skipped", []),
    )


def save(cal: Calibration) -> Path:
    """Write the calibration atomically to its cache file."""
    path = cal.path or cache_path(cal.fingerprint)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(cal.to_dict(), indent=2, sort_keys=True))
    tmp.replace(path)
    cal.path = path
    return path


# --- measuring ----------------------------------------------------------------------------------


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]


def calibrate(
    *,
    progress: Callable[[str], None] | None = None,
    repeats: int = REPEATS,
    keys: list[str] | None = None,
    sizes: tuple[str, ...] = SIZES,
    sample_seconds: float = 0.1,
    budget_s: float = BUDGET_S,
) -> Calibration:
    """Time every workload stock vs accelerated, interleaved, ``repeats`` times at each of ``sizes``.

    Per workload the evidence kept is every repeat's ratio (fit, method, total) at every size; the
    decision is :func:`choose` over "all methods accelerated" and, when some but not all methods
    won every repeat, the mixed variant (only those on oneDAL, timed against stock in its own
    interleaved repeats, since a stock fit can stop an accelerated predict). ``keys`` limits it to
    some workloads; workloads not started within ``budget_s`` seconds are skipped (they, like
    anything not calibrated, stay stock under ``measured``).
    """
    from cpuai.ml import patching, timing, workloads

    items = patching.patchables()
    threads = core_budget()
    patching.set_threads(threads)
    start = time.perf_counter()
    cal = Calibration(fingerprint=fingerprint(), created=time.time())
    chosen = [workloads.by_key(k) for k in keys] if keys else workloads.all_workloads()

    def measure(w: workloads.Workload, pair: dict[str, timing.Variant], other: str) -> dict[str, Any]:
        # one untimed round on a few rows first: the first call of an estimator pays one-time costs
        # (oneDAL's lazy loading, caches) that made the first repeat look like a loss
        warm = workloads.subset(w.data(sizes[0]), WARMUP_ROWS)
        timing.time_variants(w, pair, warm, threads=threads, repeats=1, min_seconds=0)
        out: dict[str, Any] = {}
        for size in sizes:
            data = w.data(size)
            runs = timing.time_repeats(
                w, pair, data, threads=threads, repeats=repeats, sample_seconds=sample_seconds
            )
            out[size] = {
                "rows": len(data.x_train) + len(data.x_test),
                **{p: _rounded(ratios(runs, "stock", other, p)) for p in ("fit", "method", "total")},
            }
        return out

    for w in chosen:
        if w.estimator not in items:
            continue
        if time.perf_counter() - start > budget_s:
            cal.skipped.append(w.estimator)
            continue
        if progress:
            progress(w.key)
        item = items[w.estimator]
        both = {"stock": timing.Variant(item.stock), "all": timing.Variant(item.accelerated)}
        evidence = {"all": measure(w, both, "all")}
        methods = ["fit"] + ([w.method] if w.method is not None else [])
        per_method = {
            m: [r for s in sizes for r in evidence["all"][s]["fit" if m == "fit" else "method"]]
            for m in methods
        }
        cal.speedups[w.estimator] = {m: round(statistics.median(r), 4) for m, r in per_method.items() if r}
        winners = [m for m in methods if decide(per_method[m]).accelerate]
        if item.gateable and 0 < len(winners) < len(methods):
            gate = set(winners)
            pair = {
                "stock": timing.Variant(item.stock),
                "mixed": timing.Variant(
                    item.accelerated,
                    context=functools.partial(patching.gated, item.accelerated, gate, w.estimator),
                ),
            }
            evidence[",".join(winners)] = measure(w, pair, "mixed")
        totals = {name: [r for s in sizes for r in ev[s]["total"]] for name, ev in evidence.items()}
        choice = choose(totals)
        choice["methods"] = {m: decide(per_method[m]).why for m in methods}
        choice["evidence"] = evidence
        cal.choices[w.estimator] = choice
    cal.seconds = time.perf_counter() - start
    return cal


def load_or_calibrate(*, force: bool = False, progress: Callable[[str], None] | None = None) -> Calibration:
    """The cached calibration, or a fresh one (saved) when there is none or ``force``."""
    if not force:
        cached = load()
        if cached is not None:
            return cached
    cal = calibrate(progress=progress)
    save(cal)
    return cal
