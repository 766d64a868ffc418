"""INT8 quantization that tunes itself to an accuracy tolerance.

    >>> from cpuai.quantize import quantize
    >>> tuner = quantize("digits-onnx", "calib.npy", "eval.npz", "digits-int8", tolerance="1%")
    >>> tuner.report_["tolerance_met"], tuner.speed_["latency_speedup"]

Modules: ``config`` (QuantConfig, Tolerance), ``samples`` (calibration/evaluation data),
``quantizers`` (ONNX Runtime and OpenVINO/NNCF), ``sensitivity`` (per-layer output error),
``strategies`` (candidate iterators), ``space`` (declared search spaces), ``metrics``,
``speed``, ``tuner`` (the loop, the stop rule, the report) and ``report`` (tables).
"""

from cpuai.quantize.config import QuantConfig, Tolerance
from cpuai.quantize.metrics import UserMetric
from cpuai.quantize.quantizers import OnnxRuntimeQuantizer, OpenVinoQuantizer, make_quantizer
from cpuai.quantize.samples import Samples, load_samples
from cpuai.quantize.strategies import STRATEGIES
from cpuai.quantize.tuner import StopRule, Trial, Tuner, quantize

__all__ = [
    "STRATEGIES",
    "OnnxRuntimeQuantizer",
    "OpenVinoQuantizer",
    "QuantConfig",
    "Samples",
    "StopRule",
    "Tolerance",
    "Trial",
    "Tuner",
    "UserMetric",
    "load_samples",
    "make_quantizer",
    "quantize",
]
