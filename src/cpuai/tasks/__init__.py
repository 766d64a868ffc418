"""Tasks: preprocessing, postprocessing and metrics per model kind.

``for_package(package)`` returns the Task for the package's ``task`` field. Each task module is
imported only when asked for; a module registers a kind by name in ``TASKS`` ("module:factory",
where the factory takes the ``ModelPackage``), or at run time with ``register(kind, factory)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cpuai.errors import ModelError
from cpuai.tasks.base import Score, Task

#: task kind -> "module:factory"; the factory is called with the ModelPackage.
TASKS: dict[str, str] = {
    "image-classification": "cpuai.tasks.image:ImageClassification",
    "text-embedding": "cpuai.tasks.text:TextEmbedding",
    "generic": "cpuai.tasks.generic:Generic",
    "tabular": "cpuai.tasks.tabular:from_package",
}

_registered: dict[str, Callable[[Any], Task]] = {}


def register(kind: str, factory: Callable[[Any], Task]) -> None:
    """Make ``for_package`` build ``factory(package)`` for packages whose task is ``kind``."""
    _registered[kind] = factory


def _factory(kind: str) -> Callable[[Any], Task]:
    if kind in _registered:
        return _registered[kind]
    target = TASKS.get(kind)
    if target is None:
        raise ModelError(f"no task '{kind}' is known", fix=f"use one of: {', '.join(TASKS)}")
    module_name, attr = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ModelError(
            f"the '{kind}' task is not available ({err})", fix="install cpuai with its extras"
        ) from None
    factory = getattr(module, attr, None)
    if factory is None:  # a task module may also register itself on import
        factory = _registered.get(kind)
    if factory is None:
        raise ModelError(
            f"{module_name} defines no '{attr}' for the '{kind}' task",
            fix=f"add {attr}(package) to {module_name}",
        )
    return factory


def for_package(package: Any) -> Task:
    """The Task for a package (a ``ModelPackage`` or its path), chosen by ``manifest.task``."""
    from cpuai import package as pkgmod

    if isinstance(package, str | Path):
        package = pkgmod.read(package)
    return _factory(package.manifest.task)(package)


__all__ = ["TASKS", "Score", "Task", "for_package", "register"]
