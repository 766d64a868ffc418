"""One exception hierarchy for cpuai.

Every error a user can cause is a ``CpuaiError`` whose message says what was wrong, the value
seen, and what to do. The CLI prints it on one line and exits with ``exit_code``; the server
answers 4xx with ``{"error": message}``.

    CpuaiError                    base; never raised directly
    ├── ConfigError               a bad option, argument or parameter value (batch 0, tolerance 150 %)
    ├── InvalidInput              request or tensor data that does not fit the model (name, dtype, shape)
    ├── DataError                 a data set that is missing, empty, unreadable or malformed
    ├── ModelError                a model package or model file that cannot be used
    │   └── ManifestError         model.yaml fails validation (names the field, the value, the fix)
    ├── DependencyError           an optional library or system package is not installed (names it)
    ├── ResourceError             not enough cores, memory or capacity for what was asked
    ├── JobError                  a training job directory that cannot be resumed or read
    └── EngineError               an inference engine failed while running (exit code 1, not the user's fault)
"""

from __future__ import annotations


class CpuaiError(Exception):
    """Base of every cpuai error; ``fix`` says what the user should do."""

    exit_code = 2

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.message}; {self.fix}" if self.fix else self.message


class ConfigError(CpuaiError):
    """A bad option, argument or parameter value."""


class InvalidInput(CpuaiError):
    """Input data that does not fit the model: wrong name, dtype, rank or size."""


class DataError(CpuaiError):
    """A data set that is missing, empty, unreadable or malformed."""


class ModelError(CpuaiError):
    """A model package or model file that cannot be used."""


class ManifestError(ModelError):
    """model.yaml fails validation."""


class DependencyError(CpuaiError):
    """An optional library or system package is missing."""


class ResourceError(CpuaiError):
    """Not enough cores, memory or capacity for the request."""


class JobError(CpuaiError):
    """A training job directory that cannot be resumed or read."""


class EngineError(CpuaiError):
    """An inference engine failed while running; not caused by the user's input."""

    exit_code = 1


def require(module: str, extra: str) -> None:
    """Raise DependencyError naming the pip extra when an optional module is not importable."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise DependencyError(
            f"the optional library '{module}' is not installed",
            fix=f"install it with: pip install 'cpuai[{extra}]'",
        )
