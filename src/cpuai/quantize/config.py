"""Quantization settings: one candidate configuration and the tolerance it is judged by.

A ``QuantConfig`` is what a strategy yields and a quantizer consumes; it is frozen, hashable and
turns into a short label and a JSON dict for the tuning report.

>>> QuantConfig(backend="onnxruntime").label()
'ort-static u8/s8 per-channel minmax'
>>> Tolerance.parse("1%").allows(baseline=0.95, value=0.945)
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from cpuai.errors import ConfigError

QBackend = Literal["onnxruntime", "openvino"]
Method = Literal["static", "dynamic", "nncf", "bf16"]
QType = Literal["u8", "s8"]
Calibrate = Literal["minmax", "entropy", "percentile"]
Preset = Literal["performance", "mixed"]

METHODS_BY_BACKEND: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("static", "dynamic"),
    "openvino": ("nncf", "bf16"),
}


@dataclass(frozen=True, kw_only=True)
class QuantConfig:
    """One candidate: backend, method and its knobs, and the operators kept in FP32 (``exclude``).

    ONNX Runtime ``static`` uses QDQ with ``activation``/``weight`` types (u8/s8 is the pair this
    CPU runs fast), ``per_channel`` weights and a ``calibrate`` method; ``dynamic`` quantizes
    MatMul weights only (transformers). OpenVINO ``nncf`` uses ``preset``, ``fast_bias_correction``
    and ``smooth_quant`` (alpha, transformers); ``bf16`` keeps FP32 weights and runs BF16 math.
    """

    backend: QBackend = "onnxruntime"
    method: Method = "static"
    activation: QType = "u8"
    weight: QType = "s8"
    per_channel: bool = True
    calibrate: Calibrate = "minmax"
    preset: Preset = "performance"
    fast_bias_correction: bool = True
    smooth_quant: float | None = None
    exclude: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.method not in METHODS_BY_BACKEND.get(self.backend, ()):
            raise ConfigError(
                f"quantization method {self.method!r} does not exist for backend {self.backend!r}",
                fix=f"use one of {', '.join(METHODS_BY_BACKEND.get(self.backend, ()))}",
            )
        object.__setattr__(self, "exclude", tuple(self.exclude))
        # knobs a method ignores are reset, so equal candidates compare (and de-duplicate) equal
        ignored = {
            "static": ("preset", "fast_bias_correction", "smooth_quant"),
            "dynamic": ("activation", "calibrate", "preset", "fast_bias_correction", "smooth_quant"),
            "nncf": ("activation", "weight", "per_channel", "calibrate"),
            "bf16": (
                "activation",
                "weight",
                "per_channel",
                "calibrate",
                "preset",
                "fast_bias_correction",
                "smooth_quant",
                "exclude",
            ),
        }[self.method]
        for name in ignored:
            object.__setattr__(self, name, _DEFAULTS[name])

    @property
    def precision(self) -> str:
        return "bf16" if self.method == "bf16" else "int8"

    def replace(self, **changes: Any) -> QuantConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def label(self) -> str:
        """A short human label for tables, e.g. ``ort-static u8/s8 per-channel minmax +2 fp32``."""
        if self.method == "static":
            text = (
                f"ort-static {self.activation}/{self.weight}"
                f" {'per-channel' if self.per_channel else 'per-tensor'}"
                f" {self.calibrate}"
            )
        elif self.method == "dynamic":
            text = f"ort-dynamic {self.weight} {'per-channel' if self.per_channel else 'per-tensor'}"
        elif self.method == "nncf":
            text = f"nncf {self.preset}{'' if self.fast_bias_correction else ' full-bias-corr'}"
            if self.smooth_quant is not None:
                text += f" sq={self.smooth_quant:g}"
        else:
            text = "openvino bf16"
        if self.exclude:
            text += f" +{len(self.exclude)} fp32"
        return text

    def to_dict(self) -> dict[str, Any]:
        """The knobs that matter for this method, for the report and the manifest."""
        data: dict[str, Any] = {"backend": self.backend, "method": self.method}
        if self.method == "static":
            data.update(
                activation=self.activation,
                weight=self.weight,
                per_channel=self.per_channel,
                calibrate=self.calibrate,
            )
        elif self.method == "dynamic":
            data.update(weight=self.weight, per_channel=self.per_channel)
        elif self.method == "nncf":
            data.update(
                preset=self.preset,
                fast_bias_correction=self.fast_bias_correction,
                smooth_quant=self.smooth_quant,
            )
        data["exclude"] = list(self.exclude)
        return data


@dataclass(frozen=True, kw_only=True)
class Tolerance:
    """How far below the FP32 metric a candidate may be: ``absolute`` (points) or ``relative`` (fraction).

    ``Tolerance.parse("1%")`` is 0.01; ``"0.5"`` is read as a fraction only when below 1, so both
    ``1%`` and ``0.01`` mean one point of top-1 (absolute) or one percent of it (relative).
    """

    value: float
    relative: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.value < 1.0:
            raise ConfigError(
                f"tolerance {self.value:.4g} is out of range",
                fix="give a tolerance from 0% up to (not including) 100%, e.g. --tolerance 1%",
            )

    @classmethod
    def parse(cls, text: str | float, *, relative: bool = False) -> Tolerance:
        """Read ``"1%"``, ``"0.01"`` or ``0.01``; ConfigError for a non-number or a value out of range."""
        raw = str(text).strip()
        try:
            value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
        except ValueError:
            raise ConfigError(
                f"tolerance {raw!r} is not a number", fix="write it as a percentage (1%) or a fraction (0.01)"
            ) from None
        if value != value:  # NaN
            raise ConfigError(f"tolerance {raw!r} is not a number", fix="write it as 1% or 0.01")
        if not 0.0 <= value < 1.0:
            raise ConfigError(
                f"tolerance {raw!r} is out of range (it means {value:.4g} of the metric)",
                fix="give a tolerance from 0% up to (not including) 100%, e.g. --tolerance 1%",
            )
        return cls(value=value, relative=relative)

    def floor(self, baseline: float) -> float:
        """The lowest metric value that is still within tolerance of ``baseline``."""
        return baseline * (1.0 - self.value) if self.relative else baseline - self.value

    def allows(self, *, baseline: float, value: float) -> bool:
        return value >= self.floor(baseline) - 1e-12

    def describe(self) -> str:
        return f"{self.value * 100:g}% {'relative' if self.relative else 'absolute'}"


_DEFAULTS: dict[str, Any] = {
    f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)  # type: ignore[misc]
    for f in dataclasses.fields(QuantConfig)
}
