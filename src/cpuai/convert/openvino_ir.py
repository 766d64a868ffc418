"""OpenVINO IR: ``openvino.convert_model`` on an ONNX file or a TF/Keras model, saved as model.xml/bin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cpuai import package as pkgmod
from cpuai.errors import ModelError


def save_ir(ov_source: Any, dest: Path, *, precision: str, what: str, **convert_kwargs: Any) -> Any:
    """Convert ``ov_source`` (a path or an in-memory model) and save it to ``dest`` (model.xml).

    fp16 stores compressed weights; bf16 is a run-time precision, so its IR is stored as fp32.
    Returns the ``openvino.Model`` (for its tensor specs).
    """
    import openvino as ov

    try:
        ov_model = ov.convert_model(ov_source, **convert_kwargs)
    except Exception as err:
        raise ModelError(
            f"openvino.convert_model failed on {what}: {str(err)[:300]}",
            fix="check the ONNX model with --to onnx first",
        ) from None
    ov.save_model(ov_model, str(dest), compress_to_fp16=precision == "fp16")
    return ov_model


def ov_specs(model: Any) -> tuple[list[Any], list[Any]]:
    """Input and output TensorSpecs of an ``openvino.Model`` (dynamic dims become -1)."""
    from cpuai.runtime.openvino import _info

    def spec(port: Any) -> pkgmod.TensorSpec:
        info = _info(port)
        return pkgmod.TensorSpec(name=info.name, dtype=info.dtype, shape=list(info.shape))

    return [spec(p) for p in model.inputs], [spec(p) for p in model.outputs]
