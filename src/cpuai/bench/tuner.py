"""``tune``: find the deployment (backend, precision, threads, streams, batch) that wins for a goal.

The search is a plain loop over candidates with a separate stop rule (successive halving):

1. the space: installed backends that can run the package × the precisions available (the
   package's own; BF16 on OpenVINO only when the CPU accelerates it) × threads/streams × batch.
   Latency runs one stream at batch 1 over a coarse set of thread counts (1, 2, 4, ... cores);
   throughput runs the (threads, streams) pairs that use every core, over the batch sizes. Each
   backend's own default configuration is always in the space (``library_defaults``), so the pick
   is never a configuration worse than what the library does untuned: ONNX Runtime's default
   session (all physical cores intra-op, one stream, spin-waiting on: cpuai's one-stream engines
   spin too) and what OpenVINO's LATENCY or THROUGHPUT hint chooses on these cores;
2. rung 0 measures every candidate briefly; configurations over ``max_p99_ms`` are dropped, the
   best third go on (coarse-to-fine: thread counts between the best and its neighbours join);
3. each further rung measures the survivors ``eta`` times longer, until two remain; the best of
   the last rung wins. Every trial, pruned or not, stays in the table with its reason.

The pick is written to the package's ``deploy`` section (``cpuai serve`` reads it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from cpuai.bench.config import RunConfig, check_batch
from cpuai.bench.engines import backends_for, open_engine
from cpuai.bench.feeds import make_feeds
from cpuai.bench.machine import bf16_accelerated
from cpuai.bench.measure import Budget, measure_latency, measure_throughput
from cpuai.errors import ConfigError, CpuaiError, EngineError, ResourceError
from cpuai.package import Deploy, LineageStep, ModelPackage, update_manifest

OBJECTIVES = ("latency", "throughput")
DEFAULT_BATCHES = (1, 8, 32)
Progress = Callable[[str], None]


@dataclass
class Trial:
    """One measured candidate in one rung, and what became of it."""

    config: RunConfig
    rung: int
    budget: dict[str, Any]
    median_ms: float | None = None
    p99_ms: float | None = None
    samples_per_s: float | None = None
    spread: float | None = None
    status: str = "measured"  # measured | kept | pruned | over-limit | failed | picked | runner-up
    reason: str = ""

    def row(self) -> dict[str, Any]:
        c = self.config
        return {
            "rung": self.rung,
            "backend": c.backend,
            "precision": c.precision,
            "threads": c.threads,
            "streams": c.streams,
            "batch": c.batch,
            "median_ms": self.median_ms,
            "p99_ms": self.p99_ms,
            "samples_per_s": self.samples_per_s,
            "spread": self.spread,
            "status": self.status,
            "reason": self.reason,
        }


@dataclass
class TuneResult:
    """The winner, the runner-up, every trial, and the sentence saying why the winner won."""

    objective: str
    best: Trial
    runner_up: Trial | None
    trials: list[Trial]
    space: dict[str, Any]
    why: str
    deploy: Deploy
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "pick": self.best.row(),
            "runner_up": self.runner_up.row() if self.runner_up else None,
            "why": self.why,
            "deploy": self.deploy.model_dump(mode="json"),
            "space": self.space,
            "settings": self.settings,
            "trials": [t.row() for t in self.trials],
        }


def check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise ConfigError(
            f"unknown objective {objective!r}", fix="use --objective latency or --objective throughput"
        )
    return objective


def coarse_threads(cores: int) -> list[int]:
    """1, 2, 4, ... up to ``cores``, always including ``cores`` itself."""
    values = [2**i for i in range(int(math.log2(cores)) + 1)]
    return sorted(set(values) | {cores})


def refine_threads(best: int, tried: Sequence[int], cores: int) -> list[int]:
    """Thread counts halfway between ``best`` and its tried neighbours, not yet tried (coarse-to-fine)."""
    ordered = sorted(set(tried))
    i = ordered.index(best)
    out = []
    if i > 0:
        out.append((ordered[i - 1] + best) // 2)
    if i + 1 < len(ordered):
        out.append((best + ordered[i + 1]) // 2)
    return [t for t in out if 1 <= t <= cores and t not in ordered]


def precisions_for(package: ModelPackage, backend: str) -> tuple[list[str], str]:
    """The precisions worth trying on ``backend`` and a note saying why."""
    stored = package.manifest.precision
    if stored != "fp32":
        return [stored], f"{stored} package: runs as stored"
    if backend == "openvino" and bf16_accelerated():
        return ["fp32", "bf16"], "fp32 package; BF16 tried on OpenVINO because this CPU accelerates it"
    if backend == "openvino":
        return ["fp32"], "fp32 package; BF16 skipped: this CPU has no BF16 acceleration"
    return ["fp32"], f"fp32 package; {backend} runs the graph as stored"


def ort_default_pair(cores: int) -> tuple[int, int]:
    """ONNX Runtime's default session within ``cores``: one intra-op thread per physical core, one stream."""
    try:
        from cpuai.hardware import current

        physical = current().usable_physical_cores
    except Exception:  # noqa: BLE001 - an unreadable topology: all cores, as the thread budget says
        physical = cores
    return max(1, min(cores, physical)), 1


def ov_hint_pair(package: ModelPackage, objective: str, cores: int) -> tuple[int, int] | None:
    """The (threads per stream, streams) OpenVINO's hint for ``objective`` picks within ``cores``.

    The hint's choice depends on the model (THROUGHPUT sizes streams by how memory-bound it is) and
    on the machine (LATENCY keeps to one socket), so it is read back from a model compiled with only
    the hint and ``INFERENCE_NUM_THREADS=cores``. None when OpenVINO cannot compile the model.
    """
    try:
        import openvino as ov

        compiled = ov.Core().compile_model(
            str(package.model_file),
            "CPU",
            {"PERFORMANCE_HINT": objective.upper(), "INFERENCE_NUM_THREADS": cores},
        )
        streams = max(1, int(compiled.get_property("NUM_STREAMS")))
        threads = max(1, int(compiled.get_property("INFERENCE_NUM_THREADS")) // streams)
        del compiled
    except Exception:  # noqa: BLE001 - the search still runs; the load failure shows in its trials
        return None
    streams = max(1, min(streams, cores))
    return max(1, min(threads, cores // streams)), streams


def library_defaults(
    package: ModelPackage, backends: Sequence[str], objective: str, cores: int
) -> dict[str, tuple[int, int]]:
    """Each backend's untuned configuration as (threads per stream, streams), to be searched too."""
    out: dict[str, tuple[int, int]] = {}
    for backend in backends:
        if backend == "onnxruntime":
            out[backend] = ort_default_pair(cores)
        elif backend == "openvino":
            pair = ov_hint_pair(package, objective, cores)
            if pair is not None:
                out[backend] = pair
    return out


def candidates(
    package: ModelPackage,
    objective: str,
    cores: int,
    *,
    backends: Sequence[str] | None = None,
    batches: Sequence[int] | None = None,
) -> tuple[list[RunConfig], dict[str, Any]]:
    """The rung-0 candidates and a description of the search space."""
    check_objective(objective)
    chosen = backends_for(package, list(backends) if backends else None)
    hint = objective
    if objective == "latency":
        pairs = [(t, 1) for t in coarse_threads(cores)]
        batch_list = [1] if not batches else list(batches)
    else:
        coarse = coarse_threads(cores)
        pairs = [(t, cores // t) for t in coarse if cores // t >= 1]
        batch_list = list(batches) if batches else list(DEFAULT_BATCHES)
    for b in batch_list:
        check_batch(b)
    notes: dict[str, str] = {}
    defaults = library_defaults(package, chosen, objective, cores)
    configs = []
    for backend in chosen:
        precisions, notes[backend] = precisions_for(package, backend)
        own = pairs + [defaults[backend]] if backend in defaults and defaults[backend] not in pairs else pairs
        for precision in precisions:
            for t, s in own:
                for b in batch_list:
                    configs.append(
                        RunConfig(
                            backend=backend, precision=precision, threads=t, streams=s, batch=b, hint=hint
                        )
                    )
    space = {
        "backends": chosen,
        "precisions": notes,
        "threads_streams": [list(p) for p in pairs],
        "library_defaults": {b: list(p) for b, p in defaults.items()},
        "batches": batch_list,
        "cores": cores,
        "candidates": len(configs),
    }
    return configs, space


def _engine_key(c: RunConfig) -> tuple[Any, ...]:
    return (c.backend, c.precision, c.threads, c.streams, c.hint)


def measure_trials(
    package: ModelPackage, configs: Sequence[RunConfig], objective: str, budget: Budget, cores: int, rung: int
) -> list[Trial]:
    """Measure each configuration (one engine per backend/precision/threads/streams, reused over batches)."""
    trials: list[Trial] = []
    ordered = sorted(configs, key=lambda c: (_engine_key(c), c.batch))
    for _key, group in groupby(ordered, key=_engine_key):
        group_list = list(group)
        try:
            engine, _used = open_engine(package, group_list[0], cores)
        except (CpuaiError, ImportError, RuntimeError) as exc:
            for c in group_list:
                trials.append(
                    Trial(c, rung, budget.describe(), status="failed", reason=f"load failed: {exc}")
                )
            continue
        try:
            for c in group_list:
                trial = Trial(c.with_(precision=engine.precision), rung, budget.describe())
                try:
                    feeds = make_feeds(package, engine, c.batch).arrays
                    if objective == "latency":
                        lat = measure_latency(engine, feeds, budget)
                        trial.median_ms, trial.p99_ms, trial.spread = lat.median_ms, lat.p99_ms, lat.spread
                        trial.samples_per_s = c.batch * 1e3 / lat.median_ms if lat.median_ms > 0 else None
                    else:
                        tp = measure_throughput(engine, feeds, budget, batch=c.batch)
                        trial.median_ms, trial.p99_ms, trial.samples_per_s = (
                            tp.median_ms,
                            tp.p99_ms,
                            tp.samples_per_s,
                        )
                except CpuaiError as exc:
                    trial.status, trial.reason = "failed", str(exc)
                trials.append(trial)
        finally:
            engine.close()
    return trials


def _score(trial: Trial, objective: str) -> float:
    """Higher is better: -median latency, or samples per second."""
    if objective == "latency":
        return -(trial.median_ms or math.inf)
    return trial.samples_per_s or 0.0


def tune(
    package: ModelPackage,
    *,
    objective: str = "latency",
    cores: int,
    max_p99_ms: float | None = None,
    backends: Sequence[str] | None = None,
    batches: Sequence[int] | None = None,
    budget: Budget | None = None,
    eta: int = 3,
    write: bool = True,
    progress: Progress | None = None,
) -> TuneResult:
    """Search, pick the best configuration for ``objective`` under ``max_p99_ms``, and write ``deploy``."""
    check_objective(objective)
    if max_p99_ms is not None and max_p99_ms <= 0:
        raise ConfigError(
            f"--max-p99-ms {max_p99_ms:g} is not allowed", fix="give a positive limit in milliseconds"
        )
    if eta < 2:
        raise ConfigError(f"eta {eta} is not allowed", fix="use eta 2 or more")
    budget = budget or Budget(duration=0.3, warmup=2)
    say = progress or (lambda _text: None)
    pool, space = candidates(package, objective, cores, backends=backends, batches=batches)
    trials: list[Trial] = []
    rung, rung_budget = 0, budget
    tried_threads: dict[tuple[Any, ...], set[int]] = {}
    survivors: list[Trial] = []
    while pool:
        say(f"rung {rung}: {len(pool)} configuration(s), {_budget_text(rung_budget)} each")
        measured = measure_trials(package, pool, objective, rung_budget, cores, rung)
        trials += measured
        for c in pool:
            tried_threads.setdefault((c.backend, c.precision, c.streams, c.batch), set()).add(c.threads or 1)
        ok = [t for t in measured if t.status == "measured"]
        for t in ok:
            if max_p99_ms is not None and (t.p99_ms or math.inf) > max_p99_ms:
                t.status, t.reason = "over-limit", f"p99 {t.p99_ms:.3g} ms > --max-p99-ms {max_p99_ms:g}"
        ok = sorted(
            (t for t in ok if t.status == "measured"), key=lambda t: _score(t, objective), reverse=True
        )
        if not ok:
            break
        if len(ok) <= 2 and rung > 0:
            survivors = ok
            break
        keep = min(len(ok), max(2, math.ceil(len(ok) / eta)))
        for t in ok[keep:]:
            t.status, t.reason = "pruned", f"rung {rung}: not in the best {keep} of {len(ok)}"
        for t in ok[:keep]:
            t.status, t.reason = "kept", f"rung {rung}: in the best {keep} of {len(ok)}"
        pool = [t.config for t in ok[:keep]]
        if rung == 0 and objective == "latency":
            best_config = ok[0].config
            key = (best_config.backend, best_config.precision, best_config.streams, best_config.batch)
            tried = sorted(tried_threads.get(key, {1}))
            for th in refine_threads(best_config.threads or 1, tried, cores):
                pool.append(best_config.with_(threads=th))
        rung, rung_budget = rung + 1, rung_budget.scaled(eta)
        survivors = ok[:keep]
    if not survivors:
        seen = [t for t in trials if t.p99_ms is not None]
        if max_p99_ms is not None and seen:
            low = min(seen, key=lambda t: t.p99_ms or math.inf)
            raise ResourceError(
                f"no configuration meets --max-p99-ms {max_p99_ms:g} (lowest p99 seen: {low.p99_ms:.3g} ms "
                f"with {low.config.label()})",
                fix="raise --max-p99-ms, allow smaller batches (--batch 1), or give it more cores",
            )
        reasons = "; ".join(sorted({t.reason for t in trials if t.status == "failed"}))[:400]
        raise EngineError(
            f"every configuration failed to run: {reasons}", fix="check the package with cpuai bench"
        )
    survivors.sort(key=lambda t: _score(t, objective), reverse=True)
    best = survivors[0]
    runner = survivors[1] if len(survivors) > 1 else None
    best.status, best.reason = "picked", f"best {objective} in the last rung"
    if runner is not None:
        runner.status, runner.reason = "runner-up", f"second-best {objective} in the last rung"
    why = explain(best, runner, trials, objective, max_p99_ms, eta)
    c = best.config
    deploy = Deploy(
        backend=c.backend,  # type: ignore[arg-type]
        precision=(c.precision or "fp32"),  # type: ignore[arg-type]
        threads=c.threads or 1,
        streams=c.streams or 1,
        batch=c.batch,
        instances=1,
        hint=c.hint,  # type: ignore[arg-type]
        objective=objective,  # type: ignore[arg-type]
        measured={
            k: v
            for k, v in (
                ("median_ms", best.median_ms),
                ("p99_ms", best.p99_ms),
                ("samples_per_s", best.samples_per_s),
            )
            if v is not None
        },
        ann={"cores": cores, "max_p99_ms": max_p99_ms, "trials": len(trials), "why": why},
    )
    settings = {
        "objective": objective,
        "cores": cores,
        "max_p99_ms": max_p99_ms,
        "eta": eta,
        "budget": budget.describe(),
        "backends": space["backends"],
        "batches": space["batches"],
    }
    result = TuneResult(objective, best, runner, trials, space, why, deploy, settings)
    if write:
        step = LineageStep(command="cpuai tune", settings=settings, results=dict(deploy.measured))
        update_manifest(package, deploy=deploy, lineage=[*package.manifest.lineage, step])
    return result


def explain(
    best: Trial,
    runner: Trial | None,
    trials: Sequence[Trial],
    objective: str,
    max_p99_ms: float | None,
    eta: int,
) -> str:
    """One sentence saying what won, by how much over the runner-up, and how the search went."""
    if objective == "latency":
        text = f"{best.config.label()} has the lowest median latency, {best.median_ms:.3g} ms"
        if runner and runner.median_ms and best.median_ms:
            text += f" ({runner.median_ms / best.median_ms:.2f}× faster than {runner.config.label()})"
    else:
        text = f"{best.config.label()} has the highest throughput, {best.samples_per_s:,.0f} samples/s"
        if runner and runner.samples_per_s and best.samples_per_s:
            text += f" ({best.samples_per_s / runner.samples_per_s:.2f}× {runner.config.label()})"
    if max_p99_ms is not None:
        text += f"; p99 {best.p99_ms:.3g} ms within --max-p99-ms {max_p99_ms:g}"
    counts = {s: sum(1 for t in trials if t.status == s) for s in ("pruned", "over-limit", "failed")}
    rungs = max(t.rung for t in trials) + 1
    text += (
        f"; {len(trials)} trial(s) in {rungs} rung(s) of successive halving (eta {eta}): "
        f"{counts['pruned']} pruned, {counts['over-limit']} over the p99 limit, {counts['failed']} failed"
    )
    return text


def _budget_text(b: Budget) -> str:
    return f"{b.iterations} requests" if b.iterations is not None else f"{b.duration:.2g} s"
