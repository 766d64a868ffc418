"""Installed software that matters for speed: engine versions and the allocators launch can preload."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

from cpuai.hardware.sources import as_seen_on_machine

# Engines whose versions matter for performance; read with importlib.metadata (never imported).
ENGINE_DISTRIBUTIONS: tuple[str, ...] = (
    "onnxruntime",
    "openvino",
    "torch",
    "faiss-cpu",
    "scikit-learn-intelex",
    "scikit-learn",
    "nncf",
    "numpy",
)

# Allocators the launcher can preload: name -> (shared object names, Debian package).
ALLOCATORS: dict[str, tuple[tuple[str, ...], str]] = {
    "jemalloc": (("libjemalloc.so.2", "libjemalloc.so"), "libjemalloc2"),
    "tcmalloc": (("libtcmalloc.so.4", "libtcmalloc_minimal.so.4", "libtcmalloc.so"), "libgoogle-perftools4"),
}

# Library directories searched for an allocator, relative to the machine's root.
LIB_DIRS = (
    "usr/lib/x86_64-linux-gnu",
    "usr/lib/aarch64-linux-gnu",
    "lib/x86_64-linux-gnu",
    "usr/lib64",
    "usr/lib",
    "usr/local/lib",
    "lib64",
    "lib",
)


def engine_versions() -> dict[str, str | None]:
    """Installed versions of the inference and ML engines (None when absent), without importing them."""
    out: dict[str, str | None] = {}
    for dist in ENGINE_DISTRIBUTIONS:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def find_allocator(name: str, root: str | Path = "/") -> str | None:
    """Path of the shared library for allocator ``name`` (jemalloc, tcmalloc), or None if absent."""
    libs, _package = ALLOCATORS[name]
    r = Path(root)
    dirs = [r / d for d in LIB_DIRS]
    if r.resolve() == Path("/"):
        for var in ("CONDA_PREFIX", "VIRTUAL_ENV"):
            if os.environ.get(var):
                dirs.append(Path(os.environ[var]) / "lib")
    for d in dirs:
        for lib in libs:
            p = d / lib
            if p.exists():
                return as_seen_on_machine(p, r)
    return None
