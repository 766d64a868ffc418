"""Which estimator methods ran accelerated, which fell back and why, with call counts and time.

The tracker listens to sklearnex's own logger ("sklearnex": "running accelerated version on CPU",
"fallback to original Scikit-learn", "patching failed with cause - ...") and wraps the public
methods of each patchable class so that every call is counted and timed. A log line is charged to
the innermost active call of the same method; a call's outcome is the worst it logged (fallback
beats accelerated), and an outer call (``fit_predict``) inherits the outcomes of its inner calls.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from types import FunctionType
from typing import Any

from cpuai.ml.patching import POLICY_CAUSE, Patchable

METHODS = (
    "fit",
    "partial_fit",
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "transform",
    "fit_transform",
    "inverse_transform",
    "fit_predict",
    "score",
    "score_samples",
    "kneighbors",
    "radius_neighbors",
    "kneighbors_graph",
    "radius_neighbors_graph",
)

ACCELERATED = "accelerated"
FALLBACK = "fallback"
POLICY = "stock (policy)"
STOCK = "stock"

CALL = "__call__"
"""The method name under which plain functions (``pairwise_distances``) are counted."""

_LINE = re.compile(r"^(?P<scope>[\w.]+): (?P<text>.*)$")
_CAUSE = "patching failed with cause - "


@dataclass
class MethodStats:
    """Calls of one ``Estimator.method``: how many ran each way, why they fell back, total seconds."""

    estimator: str
    method: str
    patched: bool
    calls: int = 0
    accelerated: int = 0
    fallback: int = 0
    policy: int = 0
    stock: int = 0
    seconds: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def name(self) -> str:
        """``Estimator.method``, or ``function()`` for a patched function."""
        return f"{self.estimator}()" if self.method == CALL else f"{self.estimator}.{self.method}"

    @property
    def status(self) -> str:
        """One word for the row: accelerated, fallback, mixed, stock (policy) or stock."""
        kinds = [
            k
            for k, n in (
                (ACCELERATED, self.accelerated),
                (FALLBACK, self.fallback),
                (POLICY, self.policy),
                (STOCK, self.stock),
            )
            if n
        ]
        if len(kinds) == 1:
            return kinds[0]
        return "mixed" if kinds else STOCK

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "estimator": self.estimator,
            "method": self.method,
            "patched": self.patched,
            "status": self.status,
            "calls": self.calls,
            "accelerated": self.accelerated,
            "fallback": self.fallback,
            "stock_by_policy": self.policy,
            "stock": self.stock,
            "seconds": round(self.seconds, 6),
            "reasons": dict(self.reasons),
        }


@dataclass
class _Frame:
    key: tuple[str, str]
    obj: Any
    accelerated: bool = False
    fallback: bool = False
    policy: bool = False
    reasons: list[str] = field(default_factory=list)


class _Handler(logging.Handler):
    def __init__(self, tracker: Tracker) -> None:
        super().__init__(level=logging.DEBUG)
        self.tracker = tracker

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # a report must never break the user's program
            self.tracker._on_log(record.getMessage().strip())


class Tracker:
    """Counts and times calls of wrapped classes and functions and reads sklearnex's log lines."""

    def __init__(self) -> None:
        self.stats: dict[tuple[str, str], MethodStats] = {}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._restore: list[tuple[Any, str, Any, bool]] = []
        self._handler = _Handler(self)
        self._logger = logging.getLogger("sklearnex")
        self._saved_level = self._logger.level
        self._saved_propagate = self._logger.propagate
        self._saved_handler_levels: list[tuple[logging.Handler, int]] = []

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, *, echo: bool = False) -> None:
        """Listen to sklearnex's logger at DEBUG; its own console handler is quieted unless ``echo``."""
        for h in self._logger.handlers:
            self._saved_handler_levels.append((h, h.level))
            h.setLevel(logging.INFO if echo else logging.WARNING)
        self._saved_propagate = self._logger.propagate
        if not echo:
            self._logger.propagate = False
        self._logger.addHandler(self._handler)
        self._logger.setLevel(logging.DEBUG)

    def stop(self) -> None:
        """Remove the wrappers and the log handler, restoring everything as it was."""
        self._logger.removeHandler(self._handler)
        self._logger.setLevel(self._saved_level)
        self._logger.propagate = self._saved_propagate
        for h, level in self._saved_handler_levels:
            h.setLevel(level)
        self._saved_handler_levels.clear()
        for owner, attr, original, had_own in reversed(self._restore):
            if had_own:
                setattr(owner, attr, original)
            else:
                delattr(owner, attr)
        self._restore.clear()

    # -- wrapping --------------------------------------------------------------------------
    def watch(self, item: Patchable, *, patched: bool) -> None:
        """Wrap the public methods of the object sklearn now exposes for ``item`` (or the function)."""
        current = getattr(item.module, item.attr, None)
        if current is None:
            return
        if not inspect.isclass(current):
            wrapper = self._wrap(current, item.short_name, CALL, patched, function=True)
            self._set(item.module, item.attr, wrapper)
            return
        for method in METHODS:
            raw = inspect.getattr_static(current, method, None)
            if isinstance(raw, FunctionType) and not getattr(raw, "_cpuai_wrapped", False):
                self._set(current, method, self._wrap(raw, item.short_name, method, patched))

    def _set(self, owner: Any, attr: str, value: Any) -> None:
        had_own = attr in getattr(owner, "__dict__", {})
        self._restore.append((owner, attr, getattr(owner, "__dict__", {}).get(attr), had_own))
        setattr(owner, attr, value)

    def _stats(self, estimator: str, method: str, patched: bool) -> MethodStats:
        key = (estimator, method)
        if key not in self.stats:
            self.stats[key] = MethodStats(estimator=estimator, method=method, patched=patched)
        return self.stats[key]

    def _wrap(self, func: Any, estimator: str, method: str, patched: bool, function: bool = False) -> Any:
        tracker = self

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            obj = None if function or not args else args[0]
            name = type(obj).__name__ if obj is not None and type(obj).__name__ else estimator
            frame = _Frame(key=(name if not function else estimator, method), obj=obj)
            stack = tracker._stack()
            stack.append(frame)
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                stack.pop()
                tracker._finish(frame, elapsed, patched, stack)

        wrapper.__name__ = getattr(func, "__name__", method)
        wrapper.__qualname__ = getattr(func, "__qualname__", method)
        wrapper.__doc__ = getattr(func, "__doc__", None)
        wrapper.__wrapped__ = func  # type: ignore[attr-defined]
        wrapper._cpuai_wrapped = True  # type: ignore[attr-defined]
        return wrapper

    def _stack(self) -> list[_Frame]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _finish(self, frame: _Frame, elapsed: float, patched: bool, stack: list[_Frame]) -> None:
        outer = next((f for f in reversed(stack) if f.key == frame.key), None)
        if outer is not None:  # a nested call of the same method (super().fit): fold into the outer
            outer.accelerated |= frame.accelerated
            outer.fallback |= frame.fallback
            outer.policy |= frame.policy
            outer.reasons.extend(frame.reasons)
            return
        if stack and stack[-1].obj is frame.obj and frame.obj is not None:
            parent = stack[-1]  # fit inside fit_predict: the outer call inherits the outcome
            parent.accelerated |= frame.accelerated
            parent.fallback |= frame.fallback
            parent.policy |= frame.policy
        with self._lock:
            s = self._stats(*frame.key, patched=patched)
            s.calls += 1
            s.seconds += elapsed
            if frame.policy and not frame.fallback:
                s.policy += 1
            elif frame.fallback:
                s.fallback += 1
                s.reasons.update(frame.reasons or ["(no cause logged)"])
            elif frame.accelerated:
                s.accelerated += 1
            else:
                s.stock += 1

    # -- logs ------------------------------------------------------------------------------
    def _on_log(self, message: str) -> None:
        m = _LINE.match(message)
        if not m:
            return
        scope, text = m.group("scope"), m.group("text")
        parts = scope.rsplit(".", 2)
        if len(parts) < 3:
            return
        estimator, method = parts[-2], parts[-1]
        stack = self._stack()
        frame = next((f for f in reversed(stack) if f.key == (estimator, method)), None)
        if frame is None:  # a function such as sklearn.model_selection.train_test_split
            frame = next((f for f in reversed(stack) if f.key == (method, CALL)), None)
            if frame is not None:
                estimator, method = frame.key
        if frame is None:
            frame = next((f for f in reversed(stack) if f.key[0] == estimator), None)
        if text.startswith(_CAUSE):
            cause = text[len(_CAUSE) :].strip()
            if frame is not None:
                if cause == POLICY_CAUSE:
                    frame.policy = True
                else:
                    frame.reasons.append(cause)
            return
        kind = (
            FALLBACK
            if "fallback to original" in text
            else (ACCELERATED if text.startswith("running accelerated") else None)
        )
        if kind is None:
            return
        if frame is None:  # a call we did not wrap: count it from the log alone
            with self._lock:
                s = self._stats(estimator, method, patched=True)
                s.calls += 1
                if kind == FALLBACK:
                    s.fallback += 1
                else:
                    s.accelerated += 1
            return
        if kind == FALLBACK:
            if not frame.policy:
                frame.fallback = True
        else:
            frame.accelerated = True
