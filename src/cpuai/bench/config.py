"""What a benchmark run measures, checked where it enters: batch sizes, threads, streams, backend.

The core rule: ``threads × streams`` of one engine may not exceed the cores this process may use
(``cpuai.hardware.core_budget()``). cpuai *refuses* an explicit setting that would oversubscribe
(a ``ResourceError`` naming both numbers) rather than silently clamping it, so a reported figure is
always for the settings asked for. Sweeps skip (and list) grid points over the budget.

    >>> RunConfig(backend="onnxruntime", threads=2, streams=1, batch=8).label()
    'onnxruntime fp32 2t×1s b8'
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Any

from cpuai.errors import ConfigError, ResourceError
from cpuai.runtime.engine import BACKENDS

HINTS = ("latency", "throughput")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """One engine configuration: backend, precision, threads per stream, streams, batch and hint."""

    backend: str = "auto"
    precision: str | None = None
    threads: int | None = None
    streams: int | None = None
    batch: int = 1
    hint: str = "latency"

    def label(self) -> str:
        return f"{self.backend} {self.precision or 'fp32'} {self.threads}t×{self.streams}s b{self.batch}"

    def with_(self, **changes: Any) -> RunConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_backend(backend: str) -> str:
    """The backend name, or ConfigError listing the known ones."""
    if backend != "auto" and backend not in BACKENDS:
        raise ConfigError(
            f"unknown backend {backend!r}",
            fix=f"use one of: auto, {', '.join(BACKENDS)}",
        )
    return backend


def check_batch(batch: int) -> int:
    if batch < 1:
        raise ConfigError(
            f"batch size {batch} is not allowed", fix="use a batch of 1 or more, e.g. --batch 1,8,32"
        )
    return batch


def check_positive(name: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise ConfigError(f"{name} {value} is not allowed", fix=f"use {name} of 1 or more")
    return value


def check_cores(cores: int | None, budget: int) -> int:
    """The core budget to use: ``cores`` if given (1..budget), else ``budget``; refuses more than exist."""
    if cores is None:
        return budget
    if cores < 1:
        raise ConfigError(f"--cores {cores} is not allowed", fix="use --cores 1 or more")
    if cores > budget:
        raise ResourceError(
            f"--cores {cores} is more than the {budget} core(s) this process may use",
            fix=f"use --cores {budget} or fewer (or raise CPUAI_CORES / the container's CPU limit)",
        )
    return cores


def resolve(config: RunConfig, cores: int) -> RunConfig:
    """Fill in threads/streams from the core budget and refuse threads × streams beyond it.

    Streams default to 1; threads default to ``cores // streams``. Nothing is clamped.
    """
    check_backend(config.backend)
    check_batch(config.batch)
    check_positive("threads", config.threads)
    check_positive("streams", config.streams)
    if config.hint not in HINTS:
        raise ConfigError(f"unknown hint {config.hint!r}", fix=f"use one of: {', '.join(HINTS)}")
    if config.precision is not None and config.precision not in PRECISIONS:
        raise ConfigError(
            f"unknown precision {config.precision!r}", fix=f"use one of: {', '.join(PRECISIONS)}"
        )
    streams = config.streams or 1
    if streams > cores:
        raise ResourceError(
            f"{streams} streams need at least {streams} cores but only {cores} may be used "
            "(refused, not clamped)",
            fix=f"use --streams {cores} or fewer",
        )
    threads = config.threads or max(1, cores // streams)
    if threads * streams > cores:
        raise ResourceError(
            f"{streams} stream(s) × {threads} thread(s) = {threads * streams} threads is more than the "
            f"{cores} core(s) this process may use (refused, not clamped)",
            fix=f"lower --threads/--streams so that threads × streams <= {cores}",
        )
    return config.with_(threads=threads, streams=streams)


def parse_int_list(text: str | None, name: str) -> list[int] | None:
    """``"1,8,32"`` -> [1, 8, 32]; ConfigError naming the option on anything else."""
    if text is None or str(text).strip() == "":
        return None
    values: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not re.fullmatch(r"-?\d+", part):
            raise ConfigError(
                f"{name} {text!r} is not a list of whole numbers", fix=f"write e.g. {name} 1,8,32"
            )
        values.append(int(part))
    return values


def parse_str_list(text: str | None) -> list[str] | None:
    if text is None or str(text).strip() == "":
        return None
    return [p.strip() for p in str(text).split(",") if p.strip()]


def parse_duration(text: str | None) -> float | None:
    """``"10s"``, ``"500ms"``, ``"1m"`` or ``"2.5"`` (seconds) -> seconds."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*", str(text))
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(
            f"duration {text!r} is not a positive time", fix="write e.g. --duration 10s, 500ms or 1m"
        )
    value = float(m.group(1))
    unit = m.group(2) or "s"
    return value / 1000.0 if unit == "ms" else value * 60.0 if unit == "m" else value
