"""The short per-machine calibration behind ``--policy measured``, cached per machine and versions.

For every workload it times stock and accelerated scikit-learn on the same synthetic data (fit and
the predict-like method) and picks, per estimator, the fastest of: stock, all methods accelerated,
or only the faster method accelerated. It accelerates only when that is clearly faster than stock
for the whole workload (``THRESHOLD``); anything within noise stays stock.
The result is cached as ``<cache>/ml-calibration-<hash>.json`` where the hash covers the CPU
model, the core budget and the versions of Python, numpy, scipy, scikit-learn and sklearnex;
``CPUAI_CACHE_DIR`` moves the cache (tests point it at a temporary directory).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
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
"""Accelerate only if calibration measured the workload at least this much faster than stock."""

VERSION = 4
"""Bump when the calibration workloads change, so old caches are not reused."""


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


@dataclass
class Calibration:
    """Per estimator and method: the measured speed-up and whether the policy accelerates it."""

    fingerprint: dict[str, Any]
    speedups: dict[str, dict[str, float]] = field(default_factory=dict)
    choices: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: float = 0.0
    path: Path | None = None
    seconds: float = 0.0

    def allowed(self, estimator: str) -> list[str] | None:
        """Methods the measured policy accelerates: None for all, [] for none (stock or not calibrated)."""
        choice = self.choices.get(estimator)
        return [] if choice is None else choice.get("allowed")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the cache file holds)."""
        return {
            "fingerprint": self.fingerprint,
            "threshold": THRESHOLD,
            "created": self.created,
            "seconds": round(self.seconds, 3),
            "speedups": self.speedups,
            "choices": self.choices,
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


def _choose(stock: Timing, fast: Timing, mixed: tuple[list[str], Timing, Timing] | None) -> dict[str, Any]:
    """The fastest of stock, all-accelerated and the mixed variant; accelerate only if clearly faster.

    ``mixed`` is (methods, stock, mixed) timed together, so its speed-up is against its own stock run.
    """
    options: list[tuple[list[str] | None, float]] = [(None, stock.total_s / fast.total_s)]
    if mixed is not None:
        options.append((mixed[0], mixed[1].total_s / mixed[2].total_s))
    allowed, speedup = max(options, key=lambda o: o[1])
    if speedup < THRESHOLD:
        return {"allowed": [], "speedup": round(speedup, 4)}
    return {"allowed": allowed, "speedup": round(speedup, 4)}


def calibrate(
    *,
    progress: Callable[[str], None] | None = None,
    repeats: int = 2,
    keys: list[str] | None = None,
    min_seconds: float = 0.3,
) -> Calibration:
    """Time every workload stock and accelerated on this machine (about a minute on 2 busy cores).

    When fit and the predict-like method disagree (one faster, one slower), the mixed variant is
    timed too (only the faster method on oneDAL), because a stock fit can stop an accelerated predict.
    ``keys`` limits it to some workloads (the others then stay stock under ``measured``).
    """
    from cpuai.ml import patching, timing, workloads

    items = patching.patchables()
    threads = core_budget()
    patching.set_threads(threads)
    start = time.perf_counter()
    cal = Calibration(fingerprint=fingerprint(), created=time.time())
    chosen = [workloads.by_key(k) for k in keys] if keys else workloads.all_workloads()
    for w in chosen:
        if w.estimator not in items:
            continue
        if progress:
            progress(w.key)
        item = items[w.estimator]
        data = w.data("calibration")
        both = {"stock": timing.Variant(item.stock), "all": timing.Variant(item.accelerated)}
        times = timing.time_variants(w, both, data, threads=threads, repeats=repeats, min_seconds=min_seconds)
        stock, fast = times["stock"], times["all"]
        entry: dict[str, Any] = {"fit": round(stock.fit_s / fast.fit_s, 4)}
        if w.method is not None and stock.method_s and fast.method_s:
            entry[w.method] = round(stock.method_s / fast.method_s, 4)
        mixed = None
        winners = [m for m, v in entry.items() if v >= THRESHOLD]
        if item.gateable and 0 < len(winners) < len(entry):
            gate = set(winners)
            pair = {
                "stock": timing.Variant(item.stock),
                "mixed": timing.Variant(
                    item.accelerated,
                    context=functools.partial(patching.gated, item.accelerated, gate, w.estimator),
                ),
            }
            again = timing.time_variants(
                w, pair, data, threads=threads, repeats=repeats, min_seconds=min_seconds
            )
            mixed = (winners, again["stock"], again["mixed"])
        choice = _choose(stock, fast, mixed)
        cal.speedups[w.estimator] = entry
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
