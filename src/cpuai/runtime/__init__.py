"""Inference engines over ONNX Runtime, OpenVINO and PyTorch behind one ``Engine`` protocol.

``load(package, backend="auto", threads=None, streams=None, hint="latency", precision=None,
spin=None)`` returns an ``Engine``; see ``cpuai.runtime.loader`` for the backend rule and the thread
budget, and ``cpuai.runtime.onnxruntime`` for ``spin``.
"""

from cpuai.runtime.engine import BACKENDS, Engine, Hint, TensorInfo
from cpuai.runtime.loader import FORMAT_BACKENDS, choose_backend, load, plan_threads

__all__ = [
    "BACKENDS",
    "FORMAT_BACKENDS",
    "Engine",
    "Hint",
    "TensorInfo",
    "choose_backend",
    "load",
    "plan_threads",
]
