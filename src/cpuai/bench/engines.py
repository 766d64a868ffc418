"""Opening engines for measurement, always with an explicit thread budget.

Every engine a benchmark, sweep or tuner opens goes through ``open_engine``: it resolves the
configuration against the core budget (refusing threads × streams beyond it) and passes explicit
``threads`` and ``streams`` to ``cpuai.runtime.load``, so no engine falls back to "all cores".
"""

from __future__ import annotations

import importlib.util
from typing import Any

from cpuai.bench.config import RunConfig, resolve
from cpuai.errors import ConfigError, DependencyError
from cpuai.package import ModelPackage
from cpuai.runtime.engine import Engine
from cpuai.runtime.loader import FORMAT_BACKENDS

_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "torch": "torch"}


def installed(backend: str) -> bool:
    return importlib.util.find_spec(_MODULES[backend]) is not None


def backends_for(package: ModelPackage, wanted: list[str] | None = None) -> list[str]:
    """The installed backends that can run ``package`` (optionally limited to ``wanted``)."""
    fmt = package.manifest.format
    able = [b for b in FORMAT_BACKENDS.get(fmt, ()) if installed(b)]
    if wanted is None:
        if not able:
            raise DependencyError(
                f"no installed backend can run a '{fmt}' package",
                fix="pip install 'cpuai[engines]' (or 'cpuai[train]' for torch)",
            )
        return able
    for b in wanted:
        if b not in FORMAT_BACKENDS.get(fmt, ()):
            raise ConfigError(
                f"backend {b!r} cannot run a '{fmt}' package {package.path.name}",
                fix=f"use one of: {', '.join(FORMAT_BACKENDS.get(fmt, ()))}, or convert it (cpuai convert)",
            )
        if not installed(b):
            raise DependencyError(f"backend {b!r} is not installed", fix="pip install 'cpuai[engines]'")
    return list(wanted)


def open_engine(package: ModelPackage, config: RunConfig, cores: int) -> tuple[Engine, RunConfig]:
    """Load ``package`` with ``config`` resolved against ``cores``; return the engine and settings used."""
    resolved = resolve(config, cores)
    kwargs: dict[str, Any] = {
        "backend": resolved.backend,
        "threads": resolved.threads,
        "streams": resolved.streams,
        "hint": resolved.hint,
    }
    if resolved.precision is not None:
        kwargs["precision"] = resolved.precision
    from cpuai import runtime

    engine = runtime.load(package, **kwargs)
    actual = resolved.with_(backend=engine.backend, precision=engine.precision)
    return engine, actual


def engine_settings(engine: Engine) -> dict[str, Any]:
    """What the engine says it runs: backend, precision, threads, streams."""
    return {
        "backend": engine.backend,
        "precision": engine.precision,
        "threads": engine.threads,
        "streams": engine.streams,
    }
