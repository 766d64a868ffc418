"""The accuracy-driven tuner: a plain loop over a strategy's candidates with a separate stop rule.

    baseline   FP32 metric and speed on the chosen backend, through the package's task metric
    loop       candidate = next(strategy); quantize (fit); save; load; evaluate; time; record
    stop?      ``StopRule``: first candidate within tolerance (mode "first"), or the trial budget /
               timeout ran out (mode "best", which returns the fastest candidate within tolerance)
    choose     the best candidate within tolerance; if none, the closest one, saying by how much
               the tolerance was missed -- something is always saved
    verify     batch-1 latency and batch-32 throughput of FP32 and the choice, side by side

``Tuner(package, tolerance=...).fit(calibration, evaluation).save(dest)`` is the whole API;
``quantize(...)`` wraps it for paths.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from cpuai import package as pkgmod
from cpuai.errors import ConfigError, CpuaiError, EngineError
from cpuai.hardware import core_budget
from cpuai.package import ModelPackage
from cpuai.quantize.config import QuantConfig, Tolerance
from cpuai.quantize.metrics import metric_for
from cpuai.quantize.quantizers import Quantizer, make_quantizer
from cpuai.quantize.samples import Samples, load_samples
from cpuai.quantize.space import choose_backend, space_for
from cpuai.quantize.speed import measure
from cpuai.quantize.strategies import STRATEGIES, SearchContext, TrialView, make_strategy

log = logging.getLogger(__name__)

Objective = Literal["latency", "throughput"]
Mode = Literal["first", "best"]
TUNING_FILE = "tuning.json"
SENSITIVITY_SAMPLES = 64


@dataclass
class Trial:
    """One measured candidate."""

    index: int
    config: QuantConfig
    metric: float | None = None
    delta: float | None = None  # metric - FP32 metric (negative = lost accuracy)
    within: bool = False
    latency_ms: float | None = None
    throughput: float | None = None
    size_bytes: int | None = None
    seconds: float = 0.0
    error: str | None = None
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial": self.index,
            "label": self.config.label(),
            "config": self.config.to_dict(),
            "metric": self.metric,
            "delta": self.delta,
            "within_tolerance": self.within,
            "latency_ms": self.latency_ms,
            "throughput": self.throughput,
            "size_bytes": self.size_bytes,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


@dataclass
class Baseline:
    """The FP32 model on the tuning backend."""

    backend: str
    metric: float
    latency_ms: float
    throughput: float | None
    size_bytes: int


@dataclass
class StopRule:
    """When the loop ends: a trial budget, a deadline, and in mode ``first`` the first success."""

    mode: Mode = "first"
    max_trials: int = 10
    timeout: float | None = None  # seconds
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if not isinstance(self.max_trials, int) or self.max_trials < 1:
            raise ConfigError(
                f"max trials must be 1 or more, got {self.max_trials!r}", fix="pass --max-trials 1 or more"
            )
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(
                f"timeout must be positive, got {self.timeout!r}", fix="pass e.g. --timeout 10m"
            )
        if self.mode not in ("first", "best"):
            raise ConfigError(f"unknown stop mode {self.mode!r}", fix="use first or best")

    def reason(self, trials: list[Trial]) -> str | None:
        """Why to stop now, or None to go on."""
        if self.mode == "first" and trials and trials[-1].within:
            return "a candidate met the tolerance"
        if len(trials) >= self.max_trials:
            return f"the trial budget ({self.max_trials}) is used up"
        if self.timeout is not None and time.monotonic() - self.started >= self.timeout:
            return f"the timeout ({self.timeout:g} s) ran out"
        return None


def parse_objective(text: str) -> Objective:
    """``latency`` or ``throughput``; ConfigError otherwise."""
    if text == "latency":
        return "latency"
    if text == "throughput":
        return "throughput"
    raise ConfigError(f"unknown objective {text!r}", fix="use latency or throughput")


def parse_duration(text: str | float | None) -> float | None:
    """``"10m"``, ``"90s"``, ``"1h"`` or a number of seconds; ConfigError otherwise."""
    if text is None:
        return None
    raw = str(text).strip().lower()
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    try:
        value = float(raw[:-1]) * units[raw[-1]] if raw and raw[-1] in units else float(raw)
    except (ValueError, KeyError):
        raise ConfigError(f"timeout {text!r} is not a duration", fix="write it as 90s, 10m or 1h") from None
    if value <= 0:
        raise ConfigError(f"timeout {text!r} must be positive", fix="write it as 90s, 10m or 1h")
    return value


class Tuner:
    """Finds an INT8 (or BF16) candidate within ``tolerance`` of FP32; ``fit`` searches, ``save`` writes it.

    Learned state: ``baseline_``, ``trials_``, ``best_`` (and its ``best_metric_``), ``met_``,
    ``margin_``, ``speed_``, ``report_``; ``save`` sets ``package_``.
    """

    def __init__(
        self,
        package: ModelPackage,
        *,
        tolerance: Tolerance | str | float = "1%",
        backend: str = "auto",
        strategy: str = "basic",
        max_trials: int = 10,
        timeout: float | None = None,
        mode: Mode | None = None,
        objective: Objective = "latency",
        int8_only: bool = False,
        metric: Callable[..., float] | Any | None = None,
        seed: int = 0,
        timing_runs: int = 30,
        on_trial: Callable[[Trial], None] | None = None,
    ) -> None:
        self.package = package
        self.tolerance = tolerance if isinstance(tolerance, Tolerance) else Tolerance.parse(tolerance)
        self.backend = backend
        self.strategy = strategy
        self.max_trials = max_trials
        self.timeout = timeout
        self.mode = mode or ("best" if timeout is not None else "first")
        self.objective = objective
        self.int8_only = int8_only
        self.metric = metric
        self.seed = seed
        self.timing_runs = timing_runs
        self._per_trial_tput = objective == "throughput"
        self.on_trial = on_trial
        if strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {strategy!r}", fix=f"use one of: {', '.join(STRATEGIES)}")
        if objective not in ("latency", "throughput"):
            raise ConfigError(f"unknown objective {objective!r}", fix="use latency or throughput")
        StopRule(mode=self.mode, max_trials=max_trials, timeout=timeout)  # validates early

    # -- the loop ---------------------------------------------------------------------------------

    def fit(self, calibration: Samples, evaluation: Samples) -> Tuner:
        """Measure FP32, then try candidates until the stop rule says so; keep every trial."""
        from cpuai.runtime import load

        started = time.monotonic()
        backend = choose_backend(self.package, self.backend)
        calibration = load_samples(calibration, self.package)
        evaluation = load_samples(evaluation, self.package)
        metric = metric_for(self.package, evaluation, self.metric)
        self.backend_ = backend
        self.metric_name_ = metric.name
        self._feed = evaluation.batches[0]
        self._work = Path(tempfile.mkdtemp(prefix="cpuai-tune-"))
        threads = core_budget()

        fp32 = load(self.package, backend=backend, threads=threads, streams=1)
        try:
            metric.reference(fp32)
            speed = measure(fp32, self._feed, with_throughput=self._per_trial_tput, runs=self.timing_runs)
            self.baseline_ = Baseline(
                backend, metric(fp32), speed.latency_ms, speed.throughput, self.package.size_bytes()
            )
        finally:
            fp32.close()
        floor = self.tolerance.floor(self.baseline_.metric)

        space = space_for(self.package, backend, int8_only=self.int8_only)
        self._quantizers: dict[QuantConfig, Quantizer] = {}
        self._default = space.default

        def ranker(by: str) -> list[str]:
            from cpuai.quantize.sensitivity import rank_layers

            q = self._quantizers.get(space.default) or make_quantizer(self.package, space.default).fit(
                calibration
            )
            self._quantizers[space.default] = q
            ranked = rank_layers(q, calibration.head(SENSITIVITY_SAMPLES), by=by)
            self.sensitivity_ = [e.to_dict() for e in ranked]
            return [e.name for e in ranked]

        ctx = SearchContext(space=space, ranker=ranker, seed=self.seed)
        stop = StopRule(mode=self.mode, max_trials=self.max_trials, timeout=self.timeout)
        self.trials_: list[Trial] = []
        self.sensitivity_ = []
        self.stopped_ = "the strategy has no more candidates"
        for config in make_strategy(self.strategy, ctx):
            trial = self._trial(len(self.trials_) + 1, config, calibration, metric, floor, threads)
            self.trials_.append(trial)
            ctx.trials.append(TrialView(config, trial.metric, trial.within, self._score(trial, floor)))
            if self.on_trial is not None:
                self.on_trial(trial)
            reason = stop.reason(self.trials_)
            if reason:
                self.stopped_ = reason
                break
        for q in self._quantizers.values():
            q.close()
        self._choose(floor)
        self._verify(threads)
        self.seconds_ = time.monotonic() - started
        self.report_ = self._report(floor)
        return self

    def _trial(
        self, index: int, config: QuantConfig, calibration: Samples, metric: Any, floor: float, threads: int
    ) -> Trial:
        from cpuai.runtime import load

        trial = Trial(index=index, config=config)
        t0 = time.monotonic()
        engine = None
        try:
            quantizer = make_quantizer(self.package, config).fit(calibration)
            saved = quantizer.save(self._work / f"trial-{index:02d}")
            if config == self._default and config not in self._quantizers:
                self._quantizers[config] = quantizer  # kept for the sensitivity ranking
            else:
                quantizer.close()
            trial.path = saved.path
            trial.size_bytes = saved.size_bytes()
            engine = load(
                saved,
                backend=config.backend,
                threads=threads,
                streams=1,
                precision="bf16" if config.method == "bf16" else None,
            )
            trial.metric = float(metric(engine))
            trial.delta = trial.metric - self.baseline_.metric
            trial.within = trial.metric >= floor - 1e-12
            speed = measure(engine, self._feed, with_throughput=self._per_trial_tput, runs=self.timing_runs)
            trial.latency_ms, trial.throughput = speed.latency_ms, speed.throughput
        except ConfigError as err:
            trial.error = str(err)
        except CpuaiError as err:
            trial.error = str(err)
            log.debug("trial %d failed", index, exc_info=True)
        finally:
            if engine is not None:
                engine.close()
        trial.seconds = time.monotonic() - t0
        return trial

    def _speedup(self, trial: Trial) -> float:
        b = self.baseline_
        if self.objective == "throughput" and trial.throughput and b.throughput:
            return trial.throughput / b.throughput
        return b.latency_ms / trial.latency_ms if trial.latency_ms else 0.0

    def _score(self, trial: Trial, floor: float) -> float:
        if trial.metric is None:
            return float("-inf")
        return self._speedup(trial) if trial.within else trial.metric - floor

    def _choose(self, floor: float) -> None:
        done = [(t, t.metric) for t in self.trials_ if t.metric is not None]
        if not done:
            errors = "; ".join(f"trial {t.index} ({t.config.label()}): {t.error}" for t in self.trials_)
            raise EngineError(
                f"no candidate could be quantized and measured: {errors}",
                fix="try another --backend or --strategy; rerun with --debug for details",
            )
        within = [(t, m) for t, m in done if t.within]
        if within:
            best, value = (
                within[0] if self.mode == "first" else max(within, key=lambda p: self._speedup(p[0]))
            )
        else:
            best, value = max(done, key=lambda p: (p[1], self._speedup(p[0])))
        self.best_ = best
        self.best_metric_: float = value
        self.met_ = best.within
        self.margin_ = float(value - floor)  # >= 0: headroom below the metric; < 0: missed by

    def _chosen_path(self) -> Path:
        """Where the chosen candidate's trial package was written (every measured trial has one)."""
        path = self.best_.path
        if path is None:
            raise EngineError("the chosen candidate has no saved model", fix="rerun the tuning")
        return path

    def _verify(self, threads: int) -> None:
        """Batch-1 latency and batch-32 throughput of FP32 and the choice on the same backend."""
        from cpuai.runtime import load

        best = self.best_
        speeds = {}
        for name, pkg, precision in (
            ("fp32", self.package, None),
            ("chosen", pkgmod.read(self._chosen_path()), "bf16" if best.config.method == "bf16" else None),
        ):
            engine = load(pkg, backend=best.config.backend, threads=threads, streams=1, precision=precision)
            try:
                speeds[name] = measure(engine, self._feed, with_throughput=True, runs=self.timing_runs)
            finally:
                engine.close()
        f, c = speeds["fp32"], speeds["chosen"]
        self.speed_: dict[str, Any] = {
            "backend": best.config.backend,
            "threads": threads,
            "batch": c.batch,
            "fp32_latency_ms": f.latency_ms,
            "latency_ms": c.latency_ms,
            "latency_speedup": f.latency_ms / c.latency_ms,
            "fp32_throughput": f.throughput,
            "throughput": c.throughput,
            "throughput_speedup": (c.throughput or 0) / (f.throughput or 1),
        }
        self.speed_["faster"] = (
            self.speed_["latency_speedup"] > 1.0 and self.speed_["throughput_speedup"] > 1.0
        )
        if not self.speed_["faster"]:
            log.warning(
                "the chosen %s candidate is not faster than FP32 on this CPU (batch-1 x%.2f, batch-%d x%.2f)",
                best.config.precision,
                self.speed_["latency_speedup"],
                c.batch,
                self.speed_["throughput_speedup"],
            )

    # -- the result -------------------------------------------------------------------------------

    def message(self) -> str:
        """One sentence on the outcome: met with how much headroom, or missed by how much."""
        b, t = self.baseline_, self.best_
        tol = self.tolerance.describe()
        if self.met_:
            return (
                f"tolerance {tol} met: {self.metric_name_} {t.metric:.4f} vs FP32 {b.metric:.4f} "
                f"(delta {t.delta:+.4f}, {self.margin_:.4f} to spare) with {t.config.label()}"
            )
        return (
            f"tolerance {tol} NOT met: the closest candidate, {t.config.label()}, has {self.metric_name_} "
            f"{t.metric:.4f} vs FP32 {b.metric:.4f} (delta {t.delta:+.4f}), missing the tolerance by "
            f"{-self.margin_:.4f}; it was saved anyway"
        )

    def _report(self, floor: float) -> dict[str, Any]:
        return {
            "metric": self.metric_name_,
            "tolerance": {"value": self.tolerance.value, "relative": self.tolerance.relative, "floor": floor},
            "strategy": self.strategy,
            "mode": self.mode,
            "objective": self.objective,
            "backend": self.backend_,
            "int8_only": self.int8_only,
            "max_trials": self.max_trials,
            "timeout_s": self.timeout,
            "baseline": asdict(self.baseline_),
            "trials": [t.to_dict() for t in self.trials_],
            "sensitivity": self.sensitivity_,
            "choice": {
                "trial": self.best_.index,
                "label": self.best_.config.label(),
                "config": self.best_.config.to_dict(),
                "metric": self.best_.metric,
            },
            "tolerance_met": self.met_,
            "margin": self.margin_,
            "message": self.message(),
            "speed": self.speed_,
            "stopped": self.stopped_,
            "wall_seconds": round(self.seconds_, 2),
        }

    def save(self, dest: str | Path) -> ModelPackage:
        """Write the chosen candidate to ``dest``; the report goes in lineage, metrics and ``tuning.json``."""
        best = self.best_
        chosen = pkgmod.read(self._chosen_path())
        (chosen.path / TUNING_FILE).write_text(json.dumps(self.report_, indent=2, default=str))
        m = chosen.manifest
        step = m.lineage[-1].model_copy(
            update={
                "settings": {
                    "strategy": self.strategy,
                    "mode": self.mode,
                    "objective": self.objective,
                    "tolerance": self.tolerance.describe(),
                    "backend": self.backend_,
                    "max_trials": self.max_trials,
                    "timeout_s": self.timeout,
                    "int8_only": self.int8_only,
                    "config": best.config.to_dict(),
                },
                "results": self.report_,
            }
        )
        name = self.metric_name_
        metrics = dict(m.metrics)
        metrics.update(
            {
                name: self.best_metric_,
                f"fp32_{name}": float(self.baseline_.metric),
                "latency_ms": float(self.speed_["latency_ms"]),
                "throughput": float(self.speed_["throughput"] or 0),
                "latency_speedup": float(self.speed_["latency_speedup"]),
                "throughput_speedup": float(self.speed_["throughput_speedup"]),
            }
        )
        self.package_: ModelPackage = pkgmod.copy_with(
            chosen, dest, metrics=metrics, lineage=[*m.lineage[:-1], step]
        )
        return self.package_

    def close(self) -> None:
        """Remove the trial packages."""
        work = getattr(self, "_work", None)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


def quantize(
    package: ModelPackage | str | Path,
    calibration: str | Path | Samples,
    evaluation: str | Path | Samples,
    out: str | Path,
    *,
    calib_limit: int = 300,
    eval_limit: int | None = None,
    **options: Any,
) -> Tuner:
    """Tune and save in one call; returns the fitted ``Tuner`` (its ``report_`` is the tuning report)."""
    pkg = package if isinstance(package, ModelPackage) else pkgmod.read(package)
    tuner = Tuner(pkg, **options)
    calib = load_samples(calibration, pkg, limit=calib_limit)
    evals = load_samples(evaluation, pkg, limit=eval_limit)
    try:
        tuner.fit(calib, evals)
        tuner.save(out)
    finally:
        tuner.close()
    return tuner
