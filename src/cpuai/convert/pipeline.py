"""``convert()``: check the request, open the source, build the target file, check it, write the package."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cpuai import package as pkgmod
from cpuai.convert.agreement import TOLERANCES
from cpuai.convert.inputs import categorical_ranges, plan_inputs
from cpuai.convert.onnx_export import (
    DEFAULT_EXPORTER,
    MIN_OPSET,
    export_onnx,
    onnx_specs,
    to_fp16_onnx,
    torch_outputs,
)
from cpuai.convert.openvino_ir import ov_specs, save_ir
from cpuai.convert.results import Reference, check_agreement, open_engine, write_converted
from cpuai.convert.sources import Source, resolve_source
from cpuai.errors import ConfigError

TARGETS = ("onnx", "openvino")
PRECISIONS = ("fp32", "fp16", "bf16")


def convert(
    src: Any,
    *,
    to: str,
    out: str | Path,
    precision: str = "fp32",
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    output_names: list[str] | None = None,
    tolerance: float | None = None,
    opset: int = MIN_OPSET,
    exporter: str = DEFAULT_EXPORTER,
    name: str | None = None,
    manifest: dict[str, Any] | None = None,
    files: Sequence[Path] = (),
    check_batch: int = 3,
) -> pkgmod.ModelPackage:
    """Convert ``src`` to an ONNX or OpenVINO IR package at ``out``, checked against the source.

    ``manifest`` adds or overrides manifest fields (task, labels, preprocessing) for sources that
    carry none (a bare module or file; a checkpoint takes its ``labels`` from here when given).
    Raises ``ModelError`` when the outputs diverge beyond ``tolerance`` (default per precision:
    ``TOLERANCES``). ``files`` are copied into the package (e.g. a tokenizer.json).
    """
    if to not in TARGETS:
        raise ConfigError(f"unknown target format {to!r}", fix=f"use --to {' or --to '.join(TARGETS)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}", fix=f"use one of: {', '.join(PRECISIONS)}")
    if precision == "bf16" and to == "onnx":
        raise ConfigError(
            "bf16 is a run-time precision on OpenVINO, not an ONNX storage type",
            fix="use --to openvino --precision bf16, or keep fp32 and load with precision='bf16'",
        )
    if tolerance is not None and not (0 < tolerance < 1):
        raise ConfigError(
            f"tolerance {tolerance} is not between 0 and 1", fix="pass a relative error like 1e-3"
        )
    if check_batch < 1:
        raise ConfigError(f"check batch {check_batch} must be >= 1", fix="use 1 or more")
    tol = tolerance if tolerance is not None else TOLERANCES[precision]
    source = resolve_source(src, hints=manifest)
    if source.kind == "tf":
        from cpuai.convert.tf_models import convert_tf

        return convert_tf(
            source,
            to=to,
            out=Path(out),
            precision=precision,
            tol=tol,
            opset=opset,
            name=name,
            manifest=manifest,
            input_shapes=input_shapes,
            files=files,
            check_batch=check_batch,
        )

    with tempfile.TemporaryDirectory(prefix="cpuai-convert-") as work_dir:
        work = Path(work_dir)
        reference: Reference
        if source.kind == "torch":
            onnx_path, plan, reference = _export_torch(
                source, work, input_shapes, output_names, manifest, opset=opset, exporter=exporter
            )
            settings_src = "torch"
        else:
            assert source.path is not None
            onnx_path = source.path
            ins, _ = onnx_specs(onnx_path)
            plan = plan_inputs(
                ins,
                input_shapes,
                text=bool(source.manifest and source.manifest.task == "text-embedding"),
                tabular=bool(source.manifest and source.manifest.task == "tabular"),
                label=source.label,
            )
            plan.int_ranges = categorical_ranges(source.manifest, plan)
            ref_engine = open_engine(onnx_path, "onnxruntime")

            def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
                return ref_engine.infer(feeds)

            settings_src = "onnx"

        result_dir = work / "result"
        result_dir.mkdir()
        if to == "onnx":
            if precision == "fp16":
                to_fp16_onnx(onnx_path, result_dir / "model.onnx")
            else:
                shutil.copy2(onnx_path, result_dir / "model.onnx")
            inputs, outputs = onnx_specs(result_dir / "model.onnx")
            engine = open_engine(result_dir / "model.onnx", "onnxruntime")
        else:
            ov_model = save_ir(
                str(onnx_path), result_dir / "model.xml", precision=precision, what=str(onnx_path)
            )
            inputs, outputs = ov_specs(ov_model)
            engine = open_engine(
                result_dir / "model.xml", "openvino", precision="bf16" if precision == "bf16" else "fp32"
            )
        agreement = check_agreement(
            reference, engine, plan, to=to, tolerance=tol, batch=check_batch, label=source.label
        )
        return write_converted(
            source,
            out=out,
            result_dir=result_dir,
            to=to,
            precision=precision,
            inputs=inputs,
            outputs=outputs,
            agreement=agreement,
            settings={
                "to": to,
                "precision": precision,
                "from": settings_src,
                "opset": opset,
                "exporter": exporter if settings_src == "torch" else None,
            },
            name=name,
            manifest=manifest,
            files=files,
        )


def _export_torch(
    source: Source,
    work: Path,
    input_shapes: dict[str, tuple[int, ...]] | None,
    output_names: list[str] | None,
    manifest: dict[str, Any] | None,
    *,
    opset: int,
    exporter: str,
) -> tuple[Path, Any, Reference]:
    """Export a torch source to ``work/model.onnx``; the input plan and the eager reference."""
    given = manifest or {}
    specs = (
        source.manifest.inputs
        if source.manifest
        else [pkgmod.TensorSpec.model_validate(s) for s in given.get("inputs", [])]
    )
    task = source.manifest.task if source.manifest else given.get("task")
    plan = plan_inputs(
        specs, input_shapes, text=task == "text-embedding", tabular=task == "tabular", label=source.label
    )
    plan.int_ranges = categorical_ranges(source.manifest, plan)
    sample = plan.sample(batch=1)
    n_out = len(torch_outputs(source.module, sample, plan.names))
    if output_names is None and source.manifest is not None and len(source.manifest.outputs) == n_out:
        output_names = [o.name for o in source.manifest.outputs]
    if output_names is None:
        output_names = ["output"] if n_out == 1 else [f"output_{i}" for i in range(n_out)]
    if len(output_names) != n_out:
        raise ConfigError(
            f"{len(output_names)} output names given but the model has {n_out} outputs",
            fix="give one name per output",
        )
    text = any(len(a) >= 2 for a in plan.dynamic)
    out_dyn = None
    if text:  # token outputs keep a sequence axis when they have one
        probe = torch_outputs(source.module, plan.sample(batch=1), plan.names)
        seq = plan.shapes[0][1]
        out_dyn = [
            {0: "batch", 1: "sequence"} if o.ndim >= 3 and o.shape[1] == seq else {0: "batch"} for o in probe
        ]
    onnx_path = work / "model.onnx"
    export_onnx(
        source.module, plan, output_names, onnx_path, opset=opset, exporter=exporter, output_dynamic=out_dyn
    )
    module, names, outs = source.module, plan.names, output_names

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(outs, torch_outputs(module, feeds, names), strict=False))

    return onnx_path, plan, reference
