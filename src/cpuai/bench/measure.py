"""The three measurements: sync latency, throughput with requests in flight, and cold start.

All timing is ``time.perf_counter`` around the engine call, warm-up excluded. A latency run is cut
into rounds; with a time budget it keeps adding rounds (up to three times the budget) until the
round medians agree within ``max_spread``, otherwise it reports the spread it saw.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cpuai.bench.stats import LatencyStats
from cpuai.errors import ConfigError, EngineError
from cpuai.runtime.engine import Engine

ROUNDS = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """How long to measure: a duration in seconds or a count of timed requests, plus warm-up.

    >>> Budget(duration=2.0).describe()
    {'duration_s': 2.0, 'iterations': None, 'warmup': 5, 'max_spread': 0.1}
    """

    duration: float | None = None
    iterations: int | None = None
    warmup: int = 5
    max_spread: float = 0.10

    def __post_init__(self) -> None:
        if self.duration is None and self.iterations is None:
            object.__setattr__(self, "duration", 2.0)
        if self.duration is not None and self.iterations is not None:
            raise ConfigError(
                "both a duration and an iteration count were given",
                fix="pass only one of --duration / --iterations",
            )
        if self.iterations is not None and self.iterations < 1:
            raise ConfigError(
                f"--iterations {self.iterations} is not allowed", fix="use --iterations 1 or more"
            )
        if self.warmup < 0:
            raise ConfigError(f"warm-up {self.warmup} is not allowed", fix="use a warm-up of 0 or more")

    def scaled(self, factor: float) -> Budget:
        """The same budget, ``factor`` times longer (successive halving gives survivors more time)."""
        if self.iterations is not None:
            return Budget(
                iterations=max(1, int(self.iterations * factor)),
                warmup=self.warmup,
                max_spread=self.max_spread,
            )
        return Budget(
            duration=(self.duration or 0.0) * factor, warmup=self.warmup, max_spread=self.max_spread
        )

    def describe(self) -> dict[str, Any]:
        return {
            "duration_s": self.duration,
            "iterations": self.iterations,
            "warmup": self.warmup,
            "max_spread": self.max_spread,
        }


def _call(engine: Engine, feeds: dict[str, np.ndarray]) -> None:
    try:
        engine.infer(feeds)
    except Exception as exc:  # noqa: BLE001 - a failing engine is reported, not a traceback
        raise EngineError(
            f"{engine.backend} engine failed during the benchmark: {exc}",
            fix="check the model with cpuai evaluate",
        ) from exc


def measure_latency(engine: Engine, feeds: dict[str, np.ndarray], budget: Budget) -> LatencyStats:
    """Sync latency of ``engine.infer(feeds)``: one request at a time, warm-up excluded."""
    for _ in range(budget.warmup):
        _call(engine, feeds)
    rounds: list[list[float]] = []
    if budget.iterations is not None:
        per_round = [
            budget.iterations // ROUNDS + (1 if i < budget.iterations % ROUNDS else 0) for i in range(ROUNDS)
        ]
        for n in per_round:
            rounds.append(_timed(engine, feeds, count=n))
        return LatencyStats.from_rounds(rounds, max_spread=budget.max_spread)
    duration = float(budget.duration or 0.0)
    round_s = duration / ROUNDS
    start = time.perf_counter()
    while True:
        rounds.append(_timed(engine, feeds, seconds=round_s))
        elapsed = time.perf_counter() - start
        if elapsed >= duration and len(rounds) >= ROUNDS:
            stats = LatencyStats.from_rounds(rounds[-ROUNDS:], max_spread=budget.max_spread)
            if stats.stable or elapsed >= 3 * duration:
                return LatencyStats.from_rounds(rounds, max_spread=budget.max_spread)


def _timed(
    engine: Engine, feeds: dict[str, np.ndarray], *, count: int | None = None, seconds: float | None = None
) -> list[float]:
    times: list[float] = []
    clock = time.perf_counter
    end = clock() + (seconds or 0.0)
    while (count is not None and len(times) < count) or (count is None and (not times or clock() < end)):
        t0 = clock()
        _call(engine, feeds)
        times.append(clock() - t0)
    return times


@dataclass(frozen=True, slots=True)
class Throughput:
    """Requests completed with ``in_flight`` outstanding ``submit`` calls over ``seconds``."""

    batch: int
    in_flight: int
    requests: int
    seconds: float
    requests_per_s: float
    samples_per_s: float
    median_ms: float  # request latency under load
    p99_ms: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_throughput(
    engine: Engine, feeds: dict[str, np.ndarray], budget: Budget, *, batch: int, in_flight: int | None = None
) -> Throughput:
    """Throughput with ``in_flight`` requests (default: the engine's streams) in flight via ``submit``."""
    depth = max(1, in_flight or engine.streams)
    warm = max(budget.warmup, depth)
    _drain([engine.submit(feeds) for _ in range(warm)], engine)
    clock = time.perf_counter
    landed: queue.SimpleQueue[tuple[Future[Any], float, float]] = queue.SimpleQueue()
    latencies: list[float] = []
    limit_n, limit_s = budget.iterations, budget.duration

    def launch() -> None:
        # A completion only records the time; the next request is submitted from this thread, never
        # from an engine's callback thread (OpenVINO's start_async would wait on the request in its callback).
        started = clock()
        engine.submit(feeds).add_done_callback(lambda fut: landed.put((fut, started, clock())))

    t0 = clock()
    for _ in range(depth):
        launch()
    submitted, outstanding = depth, depth
    while outstanding:
        fut, started, ended = landed.get()
        outstanding -= 1
        _result(fut, engine)
        latencies.append(ended - started)
        if (limit_n is not None and submitted < limit_n) or (limit_s is not None and ended - t0 < limit_s):
            launch()
            submitted += 1
            outstanding += 1
    seconds = clock() - t0
    lat = np.asarray(latencies) * 1e3
    return Throughput(
        batch=batch,
        in_flight=depth,
        requests=len(latencies),
        seconds=seconds,
        requests_per_s=len(latencies) / seconds,
        samples_per_s=len(latencies) * batch / seconds,
        median_ms=float(np.median(lat)),
        p99_ms=float(np.percentile(lat, 99)),
    )


def _result(fut: Future[Any], engine: Engine) -> Any:
    try:
        return fut.result()
    except Exception as exc:  # noqa: BLE001
        raise EngineError(
            f"{engine.backend} engine failed during the benchmark: {exc}",
            fix="check the model with cpuai evaluate",
        ) from exc


def _drain(futures: list[Future[Any]], engine: Engine) -> None:
    for fut in futures:
        _result(fut, engine)


@dataclass(frozen=True, slots=True)
class ColdStart:
    """Time to load the engine and to run its first inference, measured separately."""

    load_ms: float
    first_infer_ms: float

    @property
    def total_ms(self) -> float:
        return self.load_ms + self.first_infer_ms

    def to_dict(self) -> dict[str, Any]:
        return {"load_ms": self.load_ms, "first_infer_ms": self.first_infer_ms, "total_ms": self.total_ms}


def measure_cold_start(
    load: Callable[[], Engine], make_feeds: Callable[[Engine], dict[str, np.ndarray]]
) -> tuple[ColdStart, Engine]:
    """Load an engine and run one inference, timing each; returns the timings and the engine."""
    t0 = time.perf_counter()
    engine = load()
    t1 = time.perf_counter()
    feeds = make_feeds(engine)
    t2 = time.perf_counter()
    _call(engine, feeds)
    t3 = time.perf_counter()
    return ColdStart(load_ms=(t1 - t0) * 1e3, first_infer_ms=(t3 - t2) * 1e3), engine
