"""``accelerated()``: patch scikit-learn with sklearnex under a policy, track every call, unpatch on exit.

Inside the block, import estimators from ``sklearn`` as usual (imports made *before* the block keep
the stock classes). ``report()`` returns the report of the running or the last finished block::

    with cpuai.ml.accelerated(policy="all"):
        from sklearn.cluster import KMeans
        KMeans(n_clusters=8).fit(X)
    print(cpuai.ml.report().accelerated)   # ['KMeans.fit']
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from cpuai.errors import ConfigError
from cpuai.hardware import core_budget
from cpuai.ml import patching
from cpuai.ml.calibration import Calibration
from cpuai.ml.policy import Plan, check_policy, make_plan
from cpuai.ml.report import Report
from cpuai.ml.tracker import Tracker

_MANDATORY = [
    "sklearn.set_config",
    "sklearn.get_config",
    "sklearn.config_context",
    "sklearn.utils.parallel.get_config",
    "sklearn.utils.parallel._funcwrapper",
]


@dataclass
class Session:
    """One ``accelerated()`` block: its plan, its tracker and when it started and ended."""

    plan: Plan
    tracker: Tracker
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None

    def report(self, *, script: str | None = None, exit_code: int | None = None) -> Report:
        """The report of this block so far."""
        end = self.ended if self.ended is not None else time.perf_counter()
        decisions = {name: self.plan.decision(name) for name in self.plan.patched + self.plan.stock}
        return Report(
            rows=list(self.tracker.stats.values()),
            plan=self.plan.to_dict(),
            decisions=decisions,
            script=script,
            exit_code=exit_code,
            seconds=round(end - self.started, 4),
        )


_current: Session | None = None
_last: Session | None = None


@contextlib.contextmanager
def accelerated(
    policy: str = "measured",
    *,
    calibration: Calibration | None = None,
    threads: int | None = None,
    echo: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Iterator[Session]:
    """Patch scikit-learn with sklearnex under ``policy`` ("measured" or "all") and track every call.

    ``threads`` caps oneDAL's threads (default ``core_budget()``); ``echo`` also lets sklearnex print
    its own log lines. Refuses when OpenVINO was loaded first (it would break sklearnex).
    """
    global _current, _last
    check_policy(policy)
    if _current is not None:
        raise ConfigError("cpuai.ml.accelerated() is already active", fix="do not nest accelerated() blocks")
    items = patching.patchables()
    plan = make_plan(policy, list(items), calibration=calibration, progress=progress)
    patching.set_threads(threads or core_budget())
    names = list(plan.patched)
    with contextlib.ExitStack() as stack:
        patching.patch(names)
        stack.callback(patching.unpatch, names + _MANDATORY if names else [])
        for name, allowed in plan.allowed.items():
            item = items[name]
            if item.gateable:
                stack.enter_context(patching.gated(item.accelerated, allowed, name))
        tracker = Tracker()
        tracker.start(echo=echo)
        stack.callback(tracker.stop)
        for name, item in items.items():
            tracker.watch(item, patched=name in plan.patched)
        session = Session(plan=plan, tracker=tracker)
        _current = session
        try:
            yield session
        finally:
            session.ended = time.perf_counter()
            _current, _last = None, session


def report() -> Report:
    """The report of the running ``accelerated()`` block, or else of the last one."""
    session = _current or _last
    if session is None:
        raise ConfigError(
            "no accelerated() block has run in this process",
            fix="wrap your scikit-learn code in 'with cpuai.ml.accelerated():' first",
        )
    return session.report()
