"""Server settings: one keyword-only dataclass, validated where it is built (flags or code)."""

from __future__ import annotations

from dataclasses import dataclass

from cpuai.errors import ConfigError


@dataclass(kw_only=True)
class ServeConfig:
    """How ``cpuai serve`` batches, sizes engines and guards its door.

    >>> ServeConfig(max_batch=16, max_delay_ms=2).max_delay_s
    0.002

    ``instances``/``threads``/``streams``/``backend`` left as None come from the package's
    ``deploy`` section (``cpuai tune``) or the defaults; ``cores`` None means ``core_budget()``.
    ``spin`` None keeps the engine's own rule (ONNX Runtime's threads spin-wait with one stream);
    False makes them sleep between runs, for hosts whose cores other work needs (docs/serving.md).
    ``split`` None loads per-core engines for batches under load in the default layout only
    (``budget.plan``); True adds them to any one-instance, one-stream layout; False never.
    """

    max_batch: int = 32
    max_delay_ms: float = 5.0
    max_queue: int = 256
    instances: int | None = None
    threads: int | None = None
    streams: int | None = None
    backend: str | None = None
    cores: int | None = None
    token: str | None = None
    max_body_bytes: int = 16 * 1024 * 1024
    poll_seconds: float | None = None
    preprocess_workers: int | None = None
    top_k: int = 5
    access_log: bool = True
    drain_seconds: float = 30.0
    spin: bool | None = None
    split: bool | None = None

    def __post_init__(self) -> None:
        checks = [
            ("max_batch", self.max_batch, 1, 4096),
            ("max_delay_ms", self.max_delay_ms, 0, 10_000),
            ("max_queue", self.max_queue, 1, 1_000_000),
            ("max_body_bytes", self.max_body_bytes, 1, 2**40),
            ("top_k", self.top_k, 1, 10_000),
        ]
        for name in ("instances", "threads", "streams", "cores", "preprocess_workers"):
            value = getattr(self, name)
            if value is not None:
                checks.append((name, value, 1, 4096))
        for name, value, low, high in checks:
            if isinstance(value, bool) or not isinstance(value, int | float) or not (low <= value <= high):
                flag = "--" + name.replace("_", "-")
                raise ConfigError(
                    f"{name} must be between {low} and {high}, got {value!r}",
                    fix=f"pass {flag} within that range",
                )
        for name in ("spin", "split"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise ConfigError(
                    f"{name} must be True, False or None, got {value!r}", fix=f"pass --{name} or --no-{name}"
                )
        if self.poll_seconds is not None and self.poll_seconds <= 0:
            raise ConfigError(
                f"poll interval must be positive, got {self.poll_seconds!r}",
                fix="pass --poll 5 (seconds) or leave it off",
            )
        if self.backend is not None and self.backend not in ("auto", "onnxruntime", "openvino", "torch"):
            raise ConfigError(
                f"unknown backend {self.backend!r}", fix="use auto, onnxruntime, openvino or torch"
            )

    @property
    def max_delay_s(self) -> float:
        return self.max_delay_ms / 1000.0
