"""cpuai: a CPU-first AI platform for cloud servers.

Heavy engines (torch, onnxruntime, openvino, faiss, sklearnex) are imported lazily inside the
modules that need them, so ``import cpuai`` and the CLI start fast.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cpuai")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
