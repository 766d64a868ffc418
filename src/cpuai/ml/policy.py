"""Which estimators and methods to accelerate: ``all`` (what ``python -m sklearnex`` does) or ``measured``.

``measured`` patches only estimators that calibration on this machine found faster in every repeat
at both sizes, and lets only the chosen methods take the oneDAL path (all of them, or just the
faster one); everything else, including what calibration does not cover, runs stock scikit-learn.
The plan also explains itself, for the report: each decision carries calibration's reason and the
per-repeat ratios behind it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cpuai.errors import ConfigError
from cpuai.ml.calibration import THRESHOLD, Calibration

POLICIES = ("measured", "all")


def check_policy(policy: str) -> str:
    """Validate a policy name at the edge."""
    if policy not in POLICIES:
        raise ConfigError(f"unknown policy {policy!r}", fix=f"use one of: {', '.join(POLICIES)}")
    return policy


@dataclass
class Plan:
    """What to patch (sklearn names), which methods each patched class may accelerate, and why."""

    policy: str
    patched: list[str]
    allowed: dict[str, set[str]] = field(default_factory=dict)
    stock: list[str] = field(default_factory=list)
    calibration: Calibration | None = None

    def decision(self, name: str) -> dict[str, Any]:
        """How the plan treats one sklearn name, with the calibrated speed-ups when measured."""
        speedups = self.calibration.speedups.get(name, {}) if self.calibration else {}
        if self.policy == "all":
            return {"patched": True, "accelerated_methods": "all", "speedups": speedups}
        choice = self.calibration.choices.get(name, {}) if self.calibration else {}
        evidence: dict[str, Any] = {
            k: choice[k] for k in ("candidates", "methods", "evidence") if k in choice
        }
        if name not in self.patched:
            if self.calibration and name in self.calibration.skipped:
                why = "not calibrated (calibration time budget ran out before it)"
            elif not speedups:
                why = "not calibrated"
            else:
                why = choice.get("why") or f"not >= {THRESHOLD}x faster in calibration"
            return {
                "patched": False,
                "why": why,
                "speedups": speedups,
                "workload_speedup": choice.get("speedup"),
                **evidence,
            }
        methods = sorted(self.allowed[name]) if name in self.allowed else "all"
        return {
            "patched": True,
            "accelerated_methods": methods,
            "why": choice.get("why", ""),
            "speedups": speedups,
            "workload_speedup": choice.get("speedup"),
            **evidence,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        cal = self.calibration
        return {
            "policy": self.policy,
            "threshold": THRESHOLD,
            "rule": f"accelerate only what won every calibration repeat at both sizes by >= {THRESHOLD}x",
            "patched": self.patched,
            "stock": self.stock,
            "calibration": None
            if cal is None
            else {
                "path": str(cal.path) if cal.path else None,
                "created": cal.created,
                "fingerprint": cal.fingerprint,
            },
        }


def make_plan(
    policy: str,
    names: list[str],
    *,
    calibration: Calibration | None = None,
    progress: Callable[[str], None] | None = None,
) -> Plan:
    """The plan for ``policy`` over the patchable sklearn ``names``; ``measured`` calibrates if needed."""
    check_policy(policy)
    if policy == "all":
        return Plan(policy=policy, patched=list(names), calibration=calibration)
    if calibration is None:
        from cpuai.ml.calibration import load_or_calibrate

        calibration = load_or_calibrate(progress=progress)
    plan = Plan(policy=policy, patched=[], calibration=calibration)
    for name in names:
        allowed = calibration.allowed(name)
        if allowed is None:
            plan.patched.append(name)
        elif allowed:
            plan.patched.append(name)
            plan.allowed[name] = set(allowed)
        else:
            plan.stock.append(name)
    return plan
