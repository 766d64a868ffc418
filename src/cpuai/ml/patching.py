"""The thin layer over scikit-learn-intelex: load it safely, list what it patches, gate methods.

sklearnex is imported only here and only on demand. Loading it after OpenVINO in one process fails
(OpenVINO ships an older libtbb), so :func:`load_sklearnex` refuses with a clear error instead.
:func:`gated` makes chosen methods of an accelerated class take sklearnex's own fallback path, which
is how the ``measured`` policy keeps a method on stock scikit-learn where stock was faster.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from cpuai.errors import DependencyError

INSTALL_HINT = "install it with: pip install 'cpuai[ml]' (or: pip install scikit-learn-intelex)"
POLICY_CAUSE = "cpuai policy: stock scikit-learn measured faster for this method on this machine"

# Patch-map entries that are configuration plumbing, not estimators or functions a user calls.
_PLUMBING = {
    "sklearn.set_config",
    "sklearn.get_config",
    "sklearn.config_context",
    "sklearn.utils.parallel.get_config",
    "sklearn.utils.parallel._funcwrapper",
    "sklearn.ensemble._gb_losses.DummyRegressor",
}


def check_openvino_not_loaded() -> None:
    """Refuse when OpenVINO is loaded but sklearnex is not yet: sklearnex would then fail to load."""
    if "openvino" in sys.modules and "daal4py._daal4py" not in sys.modules:
        raise DependencyError(
            "openvino is already imported in this process, and its older libtbb breaks "
            "scikit-learn-intelex when loaded after it",
            fix="run the script with 'cpuai ml run script.py' (a fresh process), or import "
            "cpuai.ml.accelerated before anything imports openvino",
        )


def load_sklearnex() -> ModuleType:
    """Import sklearnex (after the OpenVINO check); a missing library raises DependencyError with the hint."""
    check_openvino_not_loaded()
    first = "sklearnex" not in sys.modules
    try:
        import sklearnex
    except ImportError as exc:
        raise DependencyError(
            f"scikit-learn-intelex is not installed or cannot be imported ({exc})", fix=INSTALL_HINT
        ) from None
    if first:
        import logging

        logger = logging.getLogger("sklearnex")
        if logger.level == logging.NOTSET:  # SKLEARNEX_VERBOSE not set: keep its per-call lines quiet
            logger.setLevel(logging.WARNING)
    return sklearnex


@dataclass(frozen=True)
class Patchable:
    """One thing sklearnex can patch: its sklearn name, where it lives, stock and accelerated objects."""

    name: str
    module: ModuleType
    attr: str
    accelerated: Any
    stock: Any

    @property
    def short_name(self) -> str:
        """The class or function name, e.g. ``KMeans``."""
        return self.attr

    @property
    def is_class(self) -> bool:
        """True for estimators, False for functions such as ``pairwise_distances``."""
        return inspect.isclass(self.accelerated)

    @property
    def gateable(self) -> bool:
        """Whether single methods can be sent to stock (the class asks ``_onedal_cpu_supported``)."""
        return self.is_class and hasattr(self.accelerated, "_onedal_cpu_supported")


def patchables() -> dict[str, Patchable]:
    """Everything this sklearnex version can patch on CPU, by sklearn name (plumbing left out)."""
    load_sklearnex()
    from sklearnex.dispatcher import get_patch_map

    out: dict[str, Patchable] = {}
    for name, (module, attr, accelerated, stock) in get_patch_map().items():
        if name in _PLUMBING or stock is None:
            continue
        out[name] = Patchable(name=name, module=module, attr=attr, accelerated=accelerated, stock=stock)
    return out


def patch(names: list[str] | None) -> None:
    """Patch the named sklearn estimators (all when None), quietly."""
    load_sklearnex()
    from sklearnex import patch_sklearn

    if names is not None and not names:
        return
    patch_sklearn(names, verbose=False)


def unpatch(names: list[str] | None) -> None:
    """Undo :func:`patch` for the named estimators (all when None)."""
    from sklearnex import unpatch_sklearn

    if names is not None and not names:
        return
    unpatch_sklearn(names)


def set_threads(n: int) -> None:
    """Give oneDAL an explicit thread budget (it would otherwise take every core)."""
    import daal4py

    daal4py.daalinit(n)


def _denied(scope: str) -> Any:
    from sklearnex._utils import PatchingConditionsChain

    status = PatchingConditionsChain(scope)
    status.and_conditions([(False, POLICY_CAUSE)])
    return status


@contextlib.contextmanager
def gated(cls: type, allowed: set[str], sklearn_name: str) -> Iterator[None]:
    """While active, methods of accelerated class ``cls`` not in ``allowed`` fall back to stock scikit-learn.

    It wraps the class's own support check, so sklearnex logs the fallback with :data:`POLICY_CAUSE`.
    """
    had_own = "_onedal_cpu_supported" in cls.__dict__
    original = cls.__dict__.get("_onedal_cpu_supported")
    inherited = cls._onedal_cpu_supported  # type: ignore[attr-defined]
    module = sklearn_name.rsplit(".", 1)[0]

    def _supported(self: Any, method_name: str, *data: Any) -> Any:
        if method_name not in allowed:
            return _denied(f"{module}.{type(self).__name__}.{method_name}")
        return inherited(self, method_name, *data)

    cls._onedal_cpu_supported = _supported  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if had_own:
            cls._onedal_cpu_supported = original  # type: ignore[attr-defined]
        else:
            delattr(cls, "_onedal_cpu_supported")
