"""The declared search space per backend and model kind, and the backend ``auto`` picks.

Defaults come from measurements on Xeon CPUs: ONNX Runtime runs u8 activations with s8 weights
fast (s8/s8 QDQ ran no faster than FP32 on a ResNet), dynamic INT8 only pays off for MatMul
models (no ConvInteger kernel), and per-channel weights keep MiniLM's cosine above 0.99 where
per-tensor ones do not. OpenVINO's NNCF INT8 is the fastest where it is installed.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from cpuai.errors import ConfigError, DependencyError
from cpuai.package import ModelPackage
from cpuai.quantize.config import QuantConfig
from cpuai.quantize.quantizers import CONV_OPS, onnx_op_types
from cpuai.quantize.strategies import FALLBACK, Space

BACKEND_CHOICES = ("auto", "openvino", "onnxruntime")
FALLBACK_COUNTS = (0, 1, 2, 4)


def cpu_has_bf16() -> bool:
    """True when ``cpuai.hardware`` finds BF16 math accelerated (AVX512-BF16, or AMX-BF16 the OS enables)."""
    from cpuai.hardware import current

    return current().has_bf16


def choose_backend(package: ModelPackage, backend: str = "auto") -> str:
    """``auto``: OpenVINO for IR packages and, when installed, for ONNX ones; else ONNX Runtime."""
    if backend not in BACKEND_CHOICES:
        raise ConfigError(
            f"unknown quantization backend {backend!r}", fix=f"use one of: {', '.join(BACKEND_CHOICES)}"
        )
    fmt = package.manifest.format
    if fmt == "torchscript":
        raise ConfigError(
            f"package {package.path} is TorchScript; INT8 quantization runs on ONNX or OpenVINO IR",
            fix="convert it first: cpuai convert PKG --to onnx (or --to openvino)",
        )
    has_ov = importlib.util.find_spec("openvino") is not None and importlib.util.find_spec("nncf") is not None
    if backend == "auto":
        return "openvino" if fmt == "openvino" or has_ov else "onnxruntime"
    if backend == "onnxruntime" and fmt != "onnx":
        raise ConfigError(
            f"--backend onnxruntime needs an onnx package; {package.path} is {fmt}",
            fix="use --backend openvino",
        )
    if backend == "openvino" and not has_ov:
        raise DependencyError(
            "the OpenVINO backend needs 'openvino' and 'nncf'",
            fix="install them with: pip install 'cpuai[engines]'",
        )
    return backend


def is_transformer(package: ModelPackage) -> bool:
    """A MatMul model without convolutions (text encoders): dynamic INT8 and SmoothQuant apply."""
    if package.manifest.task == "text-embedding":
        return True
    if package.manifest.format == "onnx":
        ops = onnx_op_types(package.model_file)
        return not (ops & CONV_OPS) and "MatMul" in ops
    return False


def space_for(package: ModelPackage, backend: str, *, int8_only: bool = False) -> Space:
    """The default candidate and the declared knobs for this package on ``backend``."""
    transformer = is_transformer(package)
    fallback = {} if int8_only else {FALLBACK: FALLBACK_COUNTS}
    if backend == "onnxruntime":
        if transformer:
            default = QuantConfig(backend="onnxruntime", method="dynamic", weight="s8", per_channel=True)
            dims: dict[str, tuple[Any, ...]] = {
                "method": ("dynamic", "static"),
                "per_channel": (True, False),
                "calibrate": ("minmax", "percentile"),
            }
        else:
            default = QuantConfig(
                backend="onnxruntime",
                method="static",
                activation="u8",
                weight="s8",
                per_channel=True,
                calibrate="minmax",
            )
            dims = {
                "per_channel": (True, False),
                "calibrate": ("minmax", "percentile", "entropy"),
                "activation": ("u8", "s8"),
            }
        return Space(default=default, dims={**dims, **fallback})
    default = QuantConfig(backend="openvino", method="nncf", preset="performance")
    ov_dims: dict[str, tuple[Any, ...]] = {
        "preset": ("performance", "mixed"),
        "fast_bias_correction": (True, False),
    }
    if transformer:
        ov_dims["smooth_quant"] = (None, 0.5, 0.95)
    if not int8_only and cpu_has_bf16():
        ov_dims = {"method": ("nncf", "bf16"), **ov_dims}
    # NNCF's full bias correction (instead of the fast one) costs quantization time only; on the
    # undertrained quick-demo CNN it turned a 3-point top-1 loss into none.
    return Space(
        default=default,
        dims={**ov_dims, **fallback},
        refinements=({"fast_bias_correction": False},),
    )
