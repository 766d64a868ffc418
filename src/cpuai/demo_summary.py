"""The demo's summary, read back from the artifacts the steps left (placeholder until shapes are known)."""

from __future__ import annotations

from typing import Any


def summarize(paths: Any, settings: Any) -> dict[str, Any]:
    return {}


def render(summary: dict[str, Any]) -> None:
    print(summary)
