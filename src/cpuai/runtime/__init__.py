"""Inference engines over ONNX Runtime, OpenVINO and PyTorch behind one ``Engine`` protocol."""

from cpuai.runtime.engine import BACKENDS, Engine, Hint, TensorInfo

__all__ = ["BACKENDS", "Engine", "Hint", "TensorInfo"]
