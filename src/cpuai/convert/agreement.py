"""The agreement check every conversion ends with: converted outputs against the source's, same inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cpuai.errors import ModelError

#: Largest accepted relative error (max |a-b| / max |reference|) per precision.
TOLERANCES = {"fp32": 1e-3, "fp16": 2e-2, "bf16": 6e-2}


@dataclass
class Agreement:
    """How far the converted model's outputs are from the source's on the same inputs."""

    max_abs: float
    max_rel: float
    tolerance: float
    batch: int

    @property
    def ok(self) -> bool:
        return self.max_rel <= self.tolerance

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_abs_error": self.max_abs,
            "max_rel_error": self.max_rel,
            "tolerance": self.tolerance,
            "checked_batch": self.batch,
        }


def compare(
    reference: dict[str, np.ndarray], result: dict[str, np.ndarray], *, tolerance: float, batch: int = 0
) -> Agreement:
    """Max absolute error and max relative error (to the reference's largest magnitude) over outputs."""
    max_abs = max_rel = 0.0
    for name, ref in reference.items():
        if name not in result:
            raise ModelError(
                f"the converted model has no output '{name}' (it has {list(result)})",
                fix="check the output names",
            )
        a = np.asarray(ref, dtype=np.float64)
        b = np.asarray(result[name], dtype=np.float64)
        if a.shape != b.shape:
            raise ModelError(
                f"output '{name}' has shape {list(b.shape)} after conversion, {list(a.shape)} before",
                fix="check the dynamic axes (--input-shape)",
            )
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        max_abs = max(max_abs, diff)
        max_rel = max(max_rel, diff / (float(np.max(np.abs(a))) + 1e-12) if a.size else 0.0)
    return Agreement(max_abs=max_abs, max_rel=max_rel, tolerance=tolerance, batch=batch)
