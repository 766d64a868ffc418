"""Strategies: iterators of candidate ``QuantConfig`` over a small declared search space.

A strategy only proposes; the tuner (``cpuai.quantize.tuner``) quantizes, evaluates, records and
asks its stop rule. A strategy sees the trials recorded so far through its ``SearchContext``, so
adaptive ones (``basic``, ``tpe``, ``bayesian``) learn from each result.

    basic       the default config; then the space's refinements (knobs that cost quantization time
                but no inference speed, e.g. NNCF's full bias correction), one at a time; then
                keep the most sensitive operators in FP32 one more at a time (ranked by relative
                output error), on top of the best of those; then the rest of the space
    mse         like basic, but operators ranked by plain MSE of their outputs
    random      seeded random points of the space (default first)
    exhaustive  every point of the space, fewest FP32 operators first
    tpe         optuna's TPESampler over the space (default enqueued first)
    bayesian    optuna's GPSampler (Gaussian-process Bayesian optimisation) over the space

Every strategy proposes the backend's default configuration first, and never the same
configuration twice.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cpuai.errors import ConfigError
from cpuai.quantize.config import QuantConfig

STRATEGIES = ("basic", "mse", "random", "exhaustive", "tpe", "bayesian")
FALLBACK = "fallback"  # the dimension "how many of the most sensitive operators stay FP32"


@dataclass
class Space:
    """A default config and the choices of each knob; ``fallback`` counts operators kept in FP32."""

    default: QuantConfig
    dims: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    #: single-knob changes to the default that may recover accuracy at no inference cost; ``basic``
    #: tries them before it keeps any operator in FP32 (which does cost speed).
    refinements: tuple[dict[str, Any], ...] = ()

    def point(self, config: QuantConfig) -> dict[str, Any]:
        values = {k: getattr(config, k) for k in self.dims if k != FALLBACK}
        if FALLBACK in self.dims:
            values[FALLBACK] = len(config.exclude)
        return values

    def size(self) -> int:
        n = 1
        for choices in self.dims.values():
            n *= len(choices)
        return n


@dataclass
class TrialView:
    """What a strategy may see of a finished trial."""

    config: QuantConfig
    metric: float | None
    within: bool
    score: float  # higher is better: speed-up when within tolerance, metric minus the floor (< 0) otherwise


@dataclass
class SearchContext:
    """The search space, the trials so far, and a lazily computed operator ranking."""

    space: Space
    trials: list[TrialView] = field(default_factory=list)
    ranker: Callable[[str], list[str]] | None = None
    seed: int = 0
    _rankings: dict[str, list[str]] = field(default_factory=dict)

    def ranking(self, by: str = "nmse") -> list[str]:
        """Operator names, most sensitive first (measured once on the default config)."""
        if by not in self._rankings:
            self._rankings[by] = list(self.ranker(by)) if self.ranker is not None else []
        return self._rankings[by]

    def config(self, point: dict[str, Any], by: str = "nmse") -> QuantConfig:
        """The config for a point of the space (``fallback`` = k keeps the k most sensitive ops in FP32)."""
        changes = {k: v for k, v in point.items() if k != FALLBACK}
        k = int(point.get(FALLBACK, 0))
        exclude = tuple(self.ranking(by)[:k]) if k else ()
        return self.space.default.replace(**changes, exclude=exclude)

    @property
    def last(self) -> TrialView | None:
        return self.trials[-1] if self.trials else None


def _unique(configs: Iterator[QuantConfig]) -> Iterator[QuantConfig]:
    seen: set[QuantConfig] = set()
    for c in configs:
        if c not in seen:
            seen.add(c)
            yield c


def _grid(ctx: SearchContext, by: str) -> Iterator[QuantConfig]:
    dims = ctx.space.dims
    names = list(dims)
    points = [dict(zip(names, values, strict=True)) for values in itertools.product(*dims.values())]
    points.sort(key=lambda p: p.get(FALLBACK, 0))  # stable: declared order within the same fallback count
    for p in points:
        if p.get(FALLBACK, 0) > len(ctx.ranking(by)):
            continue
        yield ctx.config(p, by)


class Basic:
    """Default first; then greedy fallback of the most sensitive operators; then the rest of the space."""

    def __init__(self, ctx: SearchContext, *, by: str = "nmse") -> None:
        self.ctx = ctx
        self.by = by

    def __iter__(self) -> Iterator[QuantConfig]:
        return _unique(self._candidates())

    def _candidates(self) -> Iterator[QuantConfig]:
        ctx = self.ctx
        default = ctx.space.default
        yield default
        for change in ctx.space.refinements:
            if ctx.last and ctx.last.within:
                break
            yield default.replace(**change)
        if FALLBACK in ctx.space.dims and not (ctx.last and ctx.last.within):
            base = max(ctx.trials, key=lambda t: t.score).config if ctx.trials else default
            ranking = ctx.ranking(self.by)
            for k in range(1, len(ranking) + 1):
                yield base.replace(exclude=tuple(ranking[:k]))
                if ctx.last and ctx.last.within:
                    break
        yield from _grid(ctx, self.by)


class Exhaustive:
    """Every point of the declared space, fewest FP32 operators first."""

    def __init__(self, ctx: SearchContext) -> None:
        self.ctx = ctx

    def __iter__(self) -> Iterator[QuantConfig]:
        return _unique(itertools.chain([self.ctx.space.default], _grid(self.ctx, "nmse")))


class Random:
    """Seeded random points of the space, the default first."""

    def __init__(self, ctx: SearchContext) -> None:
        self.ctx = ctx

    def __iter__(self) -> Iterator[QuantConfig]:
        return _unique(self._candidates())

    def _candidates(self) -> Iterator[QuantConfig]:
        yield self.ctx.space.default
        points = list(_grid(self.ctx, "nmse"))
        random.Random(self.ctx.seed).shuffle(points)
        yield from points


class Optuna:
    """An optuna sampler over the space through ask-and-tell; the trial's ``score`` is the objective."""

    def __init__(self, ctx: SearchContext, sampler: str) -> None:
        self.ctx = ctx
        self.sampler = sampler

    def _sampler(self) -> Any:
        import optuna

        if self.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=self.ctx.seed, n_startup_trials=3)
        return optuna.samplers.GPSampler(seed=self.ctx.seed, n_startup_trials=3)

    def __iter__(self) -> Iterator[QuantConfig]:
        import optuna
        from optuna.distributions import BaseDistribution, CategoricalDistribution

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        ctx = self.ctx
        dims = dict(ctx.space.dims)
        if FALLBACK in dims:
            limit = len(ctx.ranking("nmse"))
            dims[FALLBACK] = tuple(k for k in dims[FALLBACK] if k <= limit)
        # optuna's GP sampler works on numbers; categories are given as indices into each choice list
        distributions: dict[str, BaseDistribution] = {
            k: CategoricalDistribution(list(range(len(v)))) for k, v in dims.items()
        }
        study = optuna.create_study(direction="maximize", sampler=self._sampler())
        default_point = ctx.space.point(ctx.space.default)
        study.enqueue_trial({k: dims[k].index(default_point[k]) for k in dims})
        seen: dict[QuantConfig, float] = {}
        total = 1
        for v in dims.values():
            total *= len(v)
        misses = 0
        while len(seen) < total and misses < 50:
            trial = study.ask(distributions)
            config = ctx.config({k: dims[k][i] for k, i in trial.params.items()})
            if config in seen:  # already measured: tell optuna the known result, propose again
                study.tell(trial, seen[config])
                misses += 1
                continue
            misses = 0
            yield config
            last = ctx.last
            score = last.score if last is not None and last.config == config else float("-inf")
            seen[config] = score
            study.tell(trial, score if score != float("-inf") else -1e9)


def make_strategy(name: str, ctx: SearchContext) -> Any:
    """The strategy called ``name`` over ``ctx``; ConfigError for an unknown name."""
    if name == "basic":
        return Basic(ctx, by="nmse")
    if name == "mse":
        return Basic(ctx, by="mse")
    if name == "random":
        return Random(ctx)
    if name == "exhaustive":
        return Exhaustive(ctx)
    if name in ("tpe", "bayesian"):
        return Optuna(ctx, name)
    raise ConfigError(f"unknown strategy {name!r}", fix=f"use one of: {', '.join(STRATEGIES)}")
