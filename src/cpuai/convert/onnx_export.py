"""PyTorch to ONNX (opset 17+, dynamic batch and token axes), fp16 storage, and ONNX tensor specs.

The default exporter is the TorchScript-based one (``dynamo=False``); docs/benchmarks.md#engines has
the measurement behind that choice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cpuai import package as pkgmod
from cpuai.convert.inputs import InputPlan
from cpuai.errors import ConfigError, ModelError

EXPORTERS = ("torchscript", "dynamo")
DEFAULT_EXPORTER = "torchscript"
MIN_OPSET = 17


def torch_outputs(module: Any, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
    import torch

    with torch.inference_mode():
        out = module(*[torch.from_numpy(feeds[n]) for n in names])
    if hasattr(out, "to_tuple"):  # transformers ModelOutput
        out = out.to_tuple()
    if isinstance(out, dict):
        out = list(out.values())
    if not isinstance(out, list | tuple):
        out = [out]
    return [o.detach().float().numpy() for o in out if isinstance(o, torch.Tensor)]


def export_onnx(
    module: Any,
    plan: InputPlan,
    output_names: list[str],
    dest: Path,
    *,
    opset: int = MIN_OPSET,
    exporter: str = DEFAULT_EXPORTER,
    output_dynamic: list[dict[int, str]] | None = None,
) -> None:
    """Write ``module`` to ``dest`` as ONNX with the plan's dynamic axes, using the chosen exporter."""
    import torch

    if opset < MIN_OPSET:
        raise ConfigError(f"opset {opset} is older than {MIN_OPSET}", fix=f"use --opset {MIN_OPSET} or newer")
    if exporter not in EXPORTERS:
        raise ConfigError(f"unknown exporter {exporter!r}", fix=f"use one of: {', '.join(EXPORTERS)}")
    sample = plan.sample(batch=max(1, plan.shapes[0][0]))
    args = tuple(torch.from_numpy(sample[n]) for n in plan.names)
    dynamic_axes: dict[str, dict[int, str]] = dict(zip(plan.names, plan.dynamic, strict=True))
    for i, name in enumerate(output_names):
        dynamic_axes[name] = output_dynamic[i] if output_dynamic else {0: "batch"}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # the dynamo exporter needs opset 18+ and would split big weights into external files
            dynamo = exporter == "dynamo"
            extra: dict[str, Any] = {"external_data": False, "verbose": False} if dynamo else {}
            torch.onnx.export(
                module,
                args,
                str(dest),
                input_names=plan.names,
                output_names=output_names,
                dynamic_axes=dynamic_axes,
                opset_version=max(opset, 18) if dynamo else opset,
                dynamo=dynamo,
                **extra,
            )
        except Exception as err:
            raise ModelError(
                f"torch.onnx.export ({exporter}) failed: {type(err).__name__}: {str(err)[:300]}",
                fix="try --exporter dynamo/torchscript, or check --input-shape",
            ) from None


def to_fp16_onnx(src: Path, dest: Path) -> None:
    """Store the ONNX weights and compute in float16, keeping float32 inputs and outputs."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dest))


def onnx_specs(path: Path, dynamic: list[dict[int, str]] | None = None) -> tuple[list[Any], list[Any]]:
    """Input and output TensorSpecs read from the ONNX file (symbolic dims become -1)."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    model = onnx.load(str(path), load_external_data=False)
    init = {i.name for i in model.graph.initializer}

    def spec(v: Any) -> pkgmod.TensorSpec:
        t = v.type.tensor_type
        dtype = np.dtype(tensor_dtype_to_np_dtype(t.elem_type)).name
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in t.shape.dim]
        return pkgmod.TensorSpec(name=v.name, dtype=dtype, shape=shape)

    inputs = [spec(v) for v in model.graph.input if v.name not in init]
    outputs = [spec(v) for v in model.graph.output]
    return inputs, outputs
