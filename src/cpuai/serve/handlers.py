"""Custom handlers: your own Python code behind the server's protocols, batching and metrics.

Declare it in model.yaml as ``handler: "module:Class"``; ``module`` is looked up first as
``<package dir>/<module>.py``, then on ``sys.path``. The server drives it through two hooks:

1. ``load_model(self, model_dir)`` runs once when the model is loaded (at start, on
   ``POST /v2/repository/models/{name}/load`` or on hot reload), in a worker thread. Load weights,
   engines, tokenizers here. If it raises, the model is marked failed and is not served.
2. ``execute(self, data, batch_size)`` runs per batch, in a worker thread. ``data`` is a list of
   ``batch_size`` request payloads, each a dict: ``{"body": bytes, "content_type": str}`` for the
   plain endpoint, ``{"inputs": {name: ndarray}}`` for KServe v2 / TF-Serving. Return a list of
   exactly ``batch_size`` results, in order: a JSON-able object per request (plain endpoint) or a
   ``{name: ndarray}`` dict (tensor protocols). An exception fails the requests of that batch only
   (500 ``{"error": ...}``); raise ``cpuai.errors.InvalidInput`` to answer 400 instead.

Optionally ``close(self)`` runs when the model is unloaded.

Example::

    class Echo:
        def load_model(self, model_dir):
            self.scale = 2.0
        def execute(self, data, batch_size):
            return [{"length": len(d["body"]) * self.scale} for d in data]
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cpuai.errors import ModelError


@runtime_checkable
class Handler(Protocol):
    """The two hooks a custom handler implements (see the module docstring for the lifecycle)."""

    def load_model(self, model_dir: str) -> None: ...

    def execute(self, data: list[Any], batch_size: int) -> list[Any]: ...


def load_handler(spec: str, package_dir: Path) -> Handler:
    """Import ``module:Class`` (from the package directory first), instantiate it and check its hooks."""
    module_name, sep, class_name = spec.partition(":")
    if not sep or not module_name or not class_name:
        raise ModelError(
            f"handler {spec!r} in {package_dir}/model.yaml is not 'module:Class'",
            fix='write handler: "my_handler:MyHandler"',
        )
    local = package_dir / (module_name.replace(".", "/") + ".py")
    try:
        if local.exists():
            unique = f"cpuai_handler_{abs(hash(str(local)))}_{module_name.replace('.', '_')}"
            loader_spec = importlib.util.spec_from_file_location(unique, local)
            assert loader_spec is not None and loader_spec.loader is not None
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[unique] = module
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ModelError(
            f"handler module '{module_name}' cannot be imported: {err}",
            fix=f"put {module_name}.py in the package directory or install it",
        ) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ModelError(
            f"handler module '{module_name}' has no class '{class_name}'",
            fix="check the class name in model.yaml 'handler'",
        )
    instance = cls()
    missing = [hook for hook in ("load_model", "execute") if not callable(getattr(instance, hook, None))]
    if missing:
        raise ModelError(
            f"handler {spec} lacks {', '.join(missing)}()",
            fix="implement load_model(self, model_dir) and execute(self, data, batch_size)",
        )
    return instance
