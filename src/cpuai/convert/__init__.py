"""Model conversion: PyTorch / TorchScript / checkpoints / cpuai packages / TF to ONNX and OpenVINO IR.

Every conversion ends the same way: the source and the result run on the same inputs, the largest
absolute and relative difference go into the new package's lineage, and a result that diverges
beyond the tolerance is refused with ``ModelError`` (nothing is written). The modules:

- ``sources``: what ``src`` is (module, factory string, TorchScript, package, job dir) and opening it;
- ``checkpoints``: a bare ``cpuai train`` checkpoint rebuilt from the model registry;
- ``inputs``: ``--input-shape`` parsing and the deterministic sample inputs;
- ``onnx_export``: torch to ONNX (opset 17+, dynamic batch and token axes), fp16 storage;
- ``openvino_ir``: ``openvino.convert_model`` and IR tensor specs;
- ``tf_models``: Keras files and SavedModels (needs ``pip install 'cpuai[tf]'``);
- ``agreement`` and ``results``: the check against the source and the converted package;
- ``pipeline``: ``convert()``, which ties them together.
"""

from __future__ import annotations

from cpuai.convert.agreement import TOLERANCES, Agreement, compare
from cpuai.convert.inputs import InputPlan, parse_input_shapes, plan_inputs
from cpuai.convert.onnx_export import (
    DEFAULT_EXPORTER,
    EXPORTERS,
    MIN_OPSET,
    export_onnx,
    onnx_specs,
    to_fp16_onnx,
    torch_outputs,
)
from cpuai.convert.pipeline import PRECISIONS, TARGETS, convert
from cpuai.convert.sources import Source, rebuild_module, resolve_source

__all__ = [
    "DEFAULT_EXPORTER",
    "EXPORTERS",
    "MIN_OPSET",
    "PRECISIONS",
    "TARGETS",
    "TOLERANCES",
    "Agreement",
    "InputPlan",
    "Source",
    "compare",
    "convert",
    "export_onnx",
    "onnx_specs",
    "parse_input_shapes",
    "plan_inputs",
    "rebuild_module",
    "resolve_source",
    "to_fp16_onnx",
    "torch_outputs",
]
