"""The acceleration report: per estimator method, how calls ran (accelerated, fallback, stock), why, and time.

It is built from a :class:`~cpuai.ml.tracker.Tracker` and the :class:`~cpuai.ml.policy.Plan`, and
renders as a table (for people) or a dict (for ``--report FILE.json``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cpuai.ml.tracker import FALLBACK, MethodStats


@dataclass
class Report:
    """What ran how. ``rows`` are per ``Estimator.method``; ``plan`` is the policy summary."""

    rows: list[MethodStats]
    plan: dict[str, Any]
    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    exit_code: int | None = None
    script: str | None = None
    seconds: float | None = None

    def row(self, estimator: str, method: str) -> MethodStats | None:
        """The row for ``Estimator.method``, if it was called."""
        return next((r for r in self.rows if r.estimator == estimator and r.method == method), None)

    @property
    def accelerated(self) -> list[str]:
        """``Estimator.method`` names with at least one accelerated call."""
        return [r.name for r in self.rows if r.accelerated]

    @property
    def fallen_back(self) -> list[str]:
        """``Estimator.method`` names with at least one sklearnex fallback (unsupported params or data)."""
        return [r.name for r in self.rows if r.fallback]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "script": self.script,
            "exit_code": self.exit_code,
            "seconds": self.seconds,
            "plan": self.plan,
            "decisions": self.decisions,
            "rows": [r.to_dict() for r in self.rows],
            "accelerated": self.accelerated,
            "fallen_back": self.fallen_back,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """Rebuild a report written by :meth:`to_dict` (the child process hands it over this way)."""
        from collections import Counter

        rows = []
        for r in data.get("rows", []):
            rows.append(
                MethodStats(
                    estimator=r["estimator"],
                    method=r["method"],
                    patched=r["patched"],
                    calls=r["calls"],
                    accelerated=r["accelerated"],
                    fallback=r["fallback"],
                    policy=r["stock_by_policy"],
                    stock=r["stock"],
                    seconds=r["seconds"],
                    reasons=Counter(r.get("reasons", {})),
                )
            )
        return cls(
            rows=rows,
            plan=data.get("plan", {}),
            decisions=data.get("decisions", {}),
            exit_code=data.get("exit_code"),
            script=data.get("script"),
            seconds=data.get("seconds"),
        )

    def render(self, console: Any) -> None:
        """Print the report table and the policy summary on a rich console."""
        from cpuai.cli.output import table

        title = "scikit-learn-intelex report"
        if self.script:
            title += f" for {self.script}"
        if self.exit_code is not None:
            title += f" (exit code {self.exit_code})"
        rows = []
        for r in sorted(self.rows, key=lambda r: (r.estimator, r.method)):
            why = "; ".join(f"{k} (x{n})" if n > 1 else k for k, n in r.reasons.items()) if r.fallback else ""
            if r.policy and not why:
                why = "policy: stock faster here"
            elif not r.patched and not why:
                why = "policy: not patched"
            elif r.stock and not why:
                why = "sklearnex has no accelerated path for this method"
            rows.append(
                (
                    r.name,
                    r.status,
                    r.calls,
                    r.accelerated,
                    r.fallback,
                    r.policy + r.stock,
                    f"{r.seconds:.4f}",
                    why,
                )
            )
        if rows:
            console.print(
                table(
                    title,
                    ["estimator.method", "status", "calls", "accel", "fallback", "stock", "time s", "why"],
                    rows,
                )
            )
        else:
            console.print(
                f"{title}: no scikit-learn estimator covered by sklearnex was called", soft_wrap=True
            )
        policy = self.plan.get("policy", "?")
        line = f"policy: {policy}"
        cal = self.plan.get("calibration")
        if policy == "measured" and cal:
            line += (
                f" (calibration {cal.get('path')}; accelerate only what won every repeat "
                f"by >= {self.plan.get('threshold')}x)"
            )
        console.print(line, soft_wrap=True)
        used = {r.estimator for r in self.rows}
        for name, d in sorted(self.decisions.items()):
            short = name.rsplit(".", 1)[-1]
            if short not in used or policy != "measured":
                continue
            speed = ", ".join(f"{m} {s:.2f}x" for m, s in sorted(d.get("speedups", {}).items()))
            methods = d.get("accelerated_methods") or []
            if d.get("patched"):
                which = "all methods" if methods == "all" else ", ".join(methods)
                why = f"; {d['why']}" if d.get("why") else ""
                console.print(f"  {short}: accelerated {which} (median {speed}{why})", soft_wrap=True)
            else:
                extra = f" (median {speed})" if speed else ""
                why = str(d.get("why", "")).removeprefix("stock: ")
                console.print(f"  {short}: kept stock{extra}: {why}", soft_wrap=True)
        if any(r.status == FALLBACK or r.fallback for r in self.rows):
            console.print(
                "fallback: sklearnex did not support these calls (see why) and ran stock scikit-learn"
            )
